"""Token selection (paper section 4.1): per entity and modality keep the k most frequent ids.

Tie-break: among ids with equal counts, the one that occurs first in the entity's token
sequence wins (images in manifest order, each image's grid in raster order; text in word
order). This is the order of `collections.Counter.most_common` and does not depend on id values.

The selected ids are remapped into compact frozen tables holding a zero padding row (id 0) and
only the rows in use, so a 32,000 x 4,096 language-model table never reaches training whole.
"""
from __future__ import annotations

import difflib
import json
import logging
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from mygo.io import load_torch, read_json
from mygo.folders import ImageTokensFolder, TextTokensFolder

log = logging.getLogger(__name__)

PAD = 0


def top_k(tokens: list[int], k: int) -> list[int]:
    """The k most frequent ids of `tokens`, ties broken by first occurrence."""
    return [token for token, _ in Counter(tokens).most_common(k)] if k > 0 else []


@dataclass
class CompactTable:
    weight: torch.Tensor        # (1 + U, D) row 0 = padding (zeros), rows 1.. = used source rows
    source_ids: torch.Tensor    # (U,) long: row i + 1 is row source_ids[i] of the source table


def select(per_entity: list[list[int]], k: int, source: torch.Tensor | None,
           pad_row: int | None = None) -> tuple[np.ndarray, np.ndarray, CompactTable]:
    """Top-k per entity, padded to k slots, remapped into a compact table.

    `per_entity`: token ids per entity (ids index `source`'s rows). `pad_row`: a source row that
    means padding in released token files and is never an entity token.
    Returns ids (E, k) int32 into the compact table, mask (E, k) bool, and the table.
    """
    chosen = [top_k([t for t in tokens if t != pad_row], k) for tokens in per_entity]
    used = sorted({t for ids in chosen for t in ids})
    dim = source.shape[1] if source is not None else 1
    if used and source is None:
        raise ValueError("token ids were given without an embedding table")
    if used and (used[0] < 0 or used[-1] >= source.shape[0]):
        bad = used[0] if used[0] < 0 else used[-1]
        raise ValueError(f"token id {bad} is outside the embedding table of {source.shape[0]} rows")
    remap = {t: i + 1 for i, t in enumerate(used)}
    ids = np.full((len(per_entity), k), PAD, dtype=np.int32)
    mask = np.zeros((len(per_entity), k), dtype=bool)
    for row, tokens in enumerate(chosen):
        ids[row, :len(tokens)] = [remap[t] for t in tokens]
        mask[row, :len(tokens)] = True
    source_ids = torch.tensor(used, dtype=torch.long)
    weight = torch.zeros(1 + len(used), dim, dtype=torch.float32)
    if used:
        weight[1:] = source[source_ids].to(torch.float32)
    return ids, mask, CompactTable(weight, source_ids)


def entity_tokens_table(num_entities: int, visual: tuple[np.ndarray, np.ndarray],
                        text: tuple[np.ndarray, np.ndarray]) -> pa.Table:
    return pa.table({
        "entity": np.arange(num_entities, dtype=np.int32),
        "visual": pa.array(list(visual[0]), type=pa.list_(pa.int32())),
        "visual_mask": pa.array(list(visual[1]), type=pa.list_(pa.bool_())),
        "text": pa.array(list(text[0]), type=pa.list_(pa.int32())),
        "text_mask": pa.array(list(text[1]), type=pa.list_(pa.bool_())),
    })


def load_embedding_tensor(path: str | Path) -> torch.Tensor:
    """A 2-D float tensor saved with torch.save: bare, or under 'weight' in a dict."""
    path = Path(path)
    obj = load_torch(path, "an embedding table (a 2-D tensor)", "re-run the stage that wrote it, or, for a "
                     "released table, download it again")
    if isinstance(obj, dict):
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor) and v.dim() == 2}
        if "weight" in tensors:
            obj = tensors["weight"]
        elif len(tensors) == 1:
            obj = next(iter(tensors.values()))
        else:
            raise ValueError(f"{path}: expected one 2-D tensor, found keys {sorted(obj)}")
    if not isinstance(obj, torch.Tensor) or obj.dim() != 2:
        raise ValueError(f"{path}: expected a 2-D tensor, got {type(obj).__name__}")
    return obj.to(torch.float32)


def pooled_tokens(num_entities: int, entity: np.ndarray, tokens: list[list[int]]) -> list[list[int]]:
    """Concatenate the token lists of rows that belong to the same entity, in row order."""
    out: list[list[int]] = [[] for _ in range(num_entities)]
    for e, ids in zip(entity.tolist(), tokens):
        out[e].extend(ids)
    return out


def shortfall(per_entity: list[list[int]], k: int, pad_row: int | None = None) -> int:
    """How many entities have fewer than k distinct ids (for them a larger k selects nothing new)."""
    return sum(len({t for t in tokens if t != pad_row}) < k for tokens in per_entity)


def released_path(base_dir: str | Path, value: str, param: str) -> Path:
    """A released token file named in params, relative to the dataset folder `base_dir`.

    The file must lie inside that folder: it is a dependency of select_tokens in dvc.yaml, so
    DVC hashes the file and re-runs what depends on it when it changes.
    """
    base = Path(base_dir).resolve()
    path = (base / value).resolve()
    if not path.is_relative_to(base):
        raise ValueError(f"{param} = {value!r}: must be a file inside {base_dir} (copy it there so DVC "
                         f"tracks it; paths are relative to that folder)")
    if not path.is_file():
        raise ValueError(f"{param} = {value!r}: no such file {base_dir}/{value}")
    return path


def load_released(config, kind: str, base_dir: str | Path, names: list[str]):
    """One modality's released tokens as named by select_tokens params (`kind`: visual | text).

    Returns (token ids per entity, the table they index, its padding row or None, a description
    of the source for logs and the summary)."""
    json_path = released_path(base_dir, getattr(config, f"{kind}_json"), f"select_tokens.{kind}_json")
    table_path = released_path(base_dir, getattr(config, f"{kind}_table"), f"select_tokens.{kind}_table")
    pad_row = getattr(config, f"{kind}_pad_row")
    return (read_released_tokens(json_path, names), load_embedding_tensor(table_path),
            pad_row if pad_row >= 0 else None, f"released: {json_path} + {table_path}")


def _read_token_json(path: Path):
    """A token JSON file, or the one .json inside a .zip as the release distributes it."""
    if path.suffix.lower() != ".zip":
        return read_json(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if m.lower().endswith(".json") and not m.startswith("__MACOSX")]
            if len(members) != 1:
                raise ValueError(f"{path}: expected one .json file in the archive, found {members}")
            raw = archive.read(members[0])
    except zipfile.BadZipFile as err:
        raise ValueError(f"{path}: not a readable zip archive ({err}); download it again") from None
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}!{members[0]}: invalid JSON: {err}") from None


def read_released_tokens(path: str | Path, names: list[str]) -> list[list[int]]:
    """Token ids per entity from a released MyGO JSON file `{entity key: [ids]}` (or its .zip).

    Keys are entity names (as in entity2id.txt) or canonical integer ids. Entities that the file
    does not list get no tokens; keys that match no entity are an error.
    """
    path = Path(path)
    data = _read_token_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object {{entity: [token ids]}}")
    by_name = {n: i for i, n in enumerate(names)}
    out: list[list[int]] = [[] for _ in names]
    unmatched = [key for key in data if key not in by_name
                 and not (key.strip().isdigit() and int(key) < len(names))]
    if unmatched:
        close = difflib.get_close_matches(unmatched[0], names, n=3)
        raise ValueError(f"{path}: {len(unmatched)} of {len(data)} keys match no prepared entity (by name or "
                         f"id 0..{len(names) - 1}), e.g. {unmatched[:3]}"
                         + (f"; closest names: {close}" if close else "")
                         + "; is this token file for this dataset?")
    for key, ids in data.items():
        index = by_name[key] if key in by_name else int(key)
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise ValueError(f"{path}: value of {key!r} must be a list of integer token ids")
        out[index] = ids
    log.info("%s: tokens for %d of %d entities", path, sum(bool(t) for t in out), len(names))
    return out


@dataclass
class Selection:
    """The select_tokens stage's result: the entity-tokens table, the compact frozen tables, and a
    summary (sources, coverage, shortfalls)."""
    table: pa.Table
    visual_table: CompactTable
    text_table: CompactTable
    summary: dict


def select_entity_tokens(names: list[str], config, m: int, n: int, text: TextTokensFolder | None = None,
                         images: ImageTokensFolder | None = None, released_dir: str | Path = ".") -> Selection:
    """Each entity's `m` most frequent visual and `n` most frequent text tokens, from the pipeline's
    token folders or, when `config` (params.select_tokens) names them, the authors' released token
    files (paths relative to `released_dir`). Logs loudly when a modality is empty."""
    log = logging.getLogger("mygo.select_tokens")
    num = len(names)
    sources = {}
    visual_tokens, visual_source, visual_pad = [[] for _ in range(num)], None, None
    if config.visual_json:
        visual_tokens, visual_source, visual_pad, sources["visual"] = load_released(config, "visual", released_dir,
                                                                                  names)
    elif images is not None:
        if not images.exists():
            raise ValueError(f"{images.path}: not an image-token folder (no {images.TOKENS}); tokenize_images writes "
                             f"one, or leave --image-dir out for no visual tokens")
        image_tokens = images.tokens()
        visual_tokens = pooled_tokens(num, image_tokens["entity"].to_numpy(), image_tokens["tokens"].to_pylist())
        visual_source = load_embedding_tensor(images.codebook)
        sources["visual"] = f"pipeline: {images.path}"
    else:
        sources["visual"] = "none"
    if config.text_json:
        text_tokens, text_source, text_pad, sources["text"] = load_released(config, "text", released_dir, names)
    elif text is not None:
        table = text.tokens()
        text_tokens = pooled_tokens(num, table["entity"].to_numpy(), table["tokens"].to_pylist())
        text_source, text_pad = load_embedding_tensor(text.embeddings), None
        sources["text"] = f"pipeline: {text.path}"
    else:
        raise ValueError("give --text-dir (pipeline) or select_tokens.text_json / text_table in params.yaml")

    try:
        visual = select(visual_tokens, m, visual_source, visual_pad)
    except ValueError as err:
        raise ValueError(f"visual tokens ({sources['visual']}): {err}") from None
    try:
        words = select(text_tokens, n, text_source, text_pad)
    except ValueError as err:
        raise ValueError(f"text tokens ({sources['text']}): {err}") from None
    summary = {
        "max_vis_token": m, "max_txt_token": n, "entities": num,
        "visual_source": sources["visual"], "text_source": sources["text"],
        "entities_with_visual_tokens": int(visual[1].any(1).sum()),
        "entities_with_text_tokens": int(words[1].any(1).sum()),
        "entities_with_fewer_visual_ids_than_m": shortfall(visual_tokens, m, visual_pad),
        "entities_with_fewer_text_ids_than_n": shortfall(text_tokens, n, text_pad),
        "mean_visual_tokens": float(visual[1].sum(1).mean()),
        "mean_text_tokens": float(words[1].sum(1).mean()),
        "visual_table_rows": int(visual[2].weight.shape[0]),
        "text_table_rows": int(words[2].weight.shape[0]),
    }
    for kind, k, key in (("visual", m, "max_vis_token"), ("text", n, "max_txt_token")):
        without = num - summary[f"entities_with_{kind}_tokens"]
        if k > 0 and without == num:
            log.warning("%s modality is EMPTY: 0 of %d entities have %s tokens (source: %s); every %s slot is "
                        "padding and the model learns from the other modalities only", kind.upper(), num, kind,
                        sources[kind], kind)
        elif k > 0 and without:
            log.warning("%d of %d entities have no %s tokens", without, num, kind)
        short = summary[f"entities_with_fewer_{kind}_ids_than_{'m' if kind == 'visual' else 'n'}"]
        if k > 0 and short:
            log.info("%s: %d of %d entities have fewer than %s=%d distinct ids (a larger %s adds nothing for them)",
                     kind, short, num, key, k, key)
    return Selection(entity_tokens_table(num, visual[:2], words[:2]), visual[2], words[2], summary)
