"""The folders the stages hand each other (data/processed/*), one small type each: its file
names, and its read and write, defined once. Every write builds the whole folder beside its
destination and swaps it in when complete (mygo.io.atomic_dir).

    KGFolder            prepare -> everything       entities, relations, train / valid / test
    ImageTokensFolder   tokenize_images -> select   image_tokens.parquet, codebook.pt
    TextTokensFolder    tokenize_text -> select     text_tokens.parquet, text_embeddings.pt
    EntityTokensFolder  select_tokens -> train      entity_tokens.parquet, visual_table.pt, text_table.pt
    ImageManifest       download_images -> tokenize_images (one Parquet file, one row per URL)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from mygo import tables
from mygo.io import atomic_dir, load_torch, save_torch, write_json

if TYPE_CHECKING:
    import torch

SPLITS = ("train", "valid", "test")


class _Located:
    """A folder or file at `path` (given as a str or a Path)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"


class KGFolder(_Located):
    """The prepared graph: ids are row numbers; names as in the raw data."""
    ENTITIES = "entities.parquet"
    RELATIONS = "relations.parquet"
    SUMMARY = "summary.json"

    def split_file(self, split: str) -> Path:
        return self.path / f"{split}.parquet"

    def entities(self) -> pa.Table:
        return tables.read_entities(self.path / self.ENTITIES)

    def relations(self) -> pa.Table:
        return tables.read_relations(self.path / self.RELATIONS)

    def entity_names(self) -> list[str]:
        return self.entities()["name"].to_pylist()

    def relation_names(self) -> list[str]:
        return self.relations()["name"].to_pylist()

    def split(self, split: str) -> np.ndarray:
        """(T, 3) int64 triples of one split."""
        table = tables.read_triples(self.split_file(split))
        return np.stack([table[c].to_numpy() for c in ("head", "relation", "tail")], axis=1).astype(np.int64)

    def splits(self) -> dict[str, np.ndarray]:
        return {s: self.split(s) for s in SPLITS}

    def write(self, entities: pa.Table, relations: pa.Table, splits: dict[str, np.ndarray], summary: dict) -> None:
        with atomic_dir(self.path) as tmp:
            tables.write_entities(tmp / self.ENTITIES, entities)
            tables.write_relations(tmp / self.RELATIONS, relations)
            for split, rows in splits.items():
                tables.write_triples(tmp / f"{split}.parquet", pa.table({
                    "head": rows[:, 0].astype(np.int32),
                    "relation": rows[:, 1].astype(np.int32),
                    "tail": rows[:, 2].astype(np.int32),
                }))
            write_json(tmp / self.SUMMARY, summary)


class ImageTokensFolder(_Located):
    """Each downloaded image's token ids and the codebook they index."""
    TOKENS = "image_tokens.parquet"
    CODEBOOK = "codebook.pt"

    def exists(self) -> bool:
        return (self.path / self.TOKENS).exists()

    def tokens(self) -> pa.Table:
        return tables.read_image_tokens(self.path / self.TOKENS)

    @property
    def codebook(self) -> Path:
        return self.path / self.CODEBOOK

    def write(self, entities: list[int], images: list[str], ids: list[list[int]], codebook, source: dict) -> None:
        """`source`: the tokenizer and the params that made the ids (TokenizeImagesParams.provenance)."""
        with atomic_dir(self.path) as tmp:
            tables.write_image_tokens(tmp / self.TOKENS, pa.table({
                "entity": pa.array(entities, pa.int32()),
                "image": images,
                "tokens": pa.array(ids, type=pa.list_(pa.int32())),
            }))
            save_torch(tmp / self.CODEBOOK, {"weight": codebook, "source": source})


class TextTokensFolder(_Located):
    """Each entity's text as word-piece ids and the text model's input embedding table."""
    TOKENS = "text_tokens.parquet"
    EMBEDDINGS = "text_embeddings.pt"

    def tokens(self) -> pa.Table:
        return tables.read_text_tokens(self.path / self.TOKENS)

    @property
    def embeddings(self) -> Path:
        return self.path / self.EMBEDDINGS

    def write(self, entities, tokens: list[list[int]], weight, source: str) -> None:
        with atomic_dir(self.path) as tmp:
            tables.write_text_tokens(tmp / self.TOKENS, pa.table({
                "entity": entities,
                "tokens": pa.array(tokens, type=pa.list_(pa.int32())),
            }))
            save_torch(tmp / self.EMBEDDINGS, {"weight": weight, "source": source})


@dataclass
class EntityTokens:
    """What the model reads of an entity-tokens folder: each entity's token ids and masks
    (N, m) / (N, n) and the compact frozen tables they index."""
    visual_ids: torch.Tensor
    visual_mask: torch.Tensor
    text_ids: torch.Tensor
    text_mask: torch.Tensor
    visual_table: torch.Tensor
    text_table: torch.Tensor


class EntityTokensFolder(_Located):
    """The selected tokens per entity (padding id 0, masks) and the compact frozen tables."""
    TOKENS = "entity_tokens.parquet"
    VISUAL_TABLE = "visual_table.pt"
    TEXT_TABLE = "text_table.pt"
    SUMMARY = "summary.json"

    def files(self) -> list[Path]:
        """The files a model's inputs come from (for fingerprints)."""
        return [self.path / name for name in (self.TOKENS, self.VISUAL_TABLE, self.TEXT_TABLE)]

    def read(self, num_entities: int) -> EntityTokens:
        import torch
        path = self.path / self.TOKENS
        table = tables.read_entity_tokens(path)
        if len(table) != num_entities or table["entity"].to_pylist() != list(range(num_entities)):
            raise ValueError(f"{path}: expected one row per entity 0..{num_entities - 1}, got {len(table)} rows")

        def matrix(column, dtype):
            values = table[column].to_pylist()
            return torch.tensor(np.array(values, dtype=dtype).reshape(len(values), -1))

        def compact(name):
            obj = load_torch(self.path / name, "a frozen token table", "re-run the select_tokens stage "
                             "(`dvc repro select_tokens`)")
            if not isinstance(obj, dict) or not isinstance(obj.get("weight"), torch.Tensor):
                raise ValueError(f"{self.path / name}: not a frozen token table (needs 'weight'); re-run select_tokens")
            return obj["weight"].float()

        return EntityTokens(matrix("visual", np.int64), matrix("visual_mask", bool), matrix("text", np.int64),
                            matrix("text_mask", bool), compact(self.VISUAL_TABLE), compact(self.TEXT_TABLE))

    def write(self, table: pa.Table, visual_table, text_table, summary: dict) -> None:
        """`table` in tables.ENTITY_TOKENS' schema; the frozen tables (mygo.selection.CompactTable:
        `weight` (rows, dim) and the `source_ids` each row came from)."""
        with atomic_dir(self.path) as tmp:
            tables.write_entity_tokens(tmp / self.TOKENS, table)
            for name, compact in ((self.VISUAL_TABLE, visual_table), (self.TEXT_TABLE, text_table)):
                save_torch(tmp / name, {"weight": compact.weight, "source_ids": compact.source_ids})
            write_json(tmp / self.SUMMARY, summary)


class ImageManifest(_Located):
    """One row per image URL: its status, HTTP code, attempts, bytes, hash and stored file."""

    def read(self) -> pa.Table:
        return tables.read_image_manifest(self.path)

    def write(self, table: pa.Table) -> None:
        tables.write_image_manifest(self.path, table)


__all__ = ["KGFolder", "ImageTokensFolder", "TextTokensFolder", "EntityTokens", "EntityTokensFolder",
           "ImageManifest", "SPLITS"]
