"""Raw knowledge-graph datasets: parsing, validation and the canonical Parquet tables.

Three raw layouts are read (see docs/formats.md):

* named:     train.tsv / valid.tsv / test.tsv (`head<TAB>relation<TAB>tail` by name) and
             entities.tsv (`name<TAB>description[<TAB>image url]...`);
* MyGO release: train.txt / valid.txt / test.txt (`head relation tail` by integer id),
             entity2id.txt and relation2id.txt (optional count line, then `name<space-or-tab>id`);
* NativE release: the same splits stored `head tail relation`, entities.txt and relations.txt
             (one name per line, id = line index).

Every text file may start with a UTF-8 BOM and use CRLF line ends.

Canonical ids are 0..N-1: entities in the order of the entities file (named) or of their
original ids (benchmark); relations likewise (named: order of first appearance in
train, valid, test).
"""
from __future__ import annotations

import logging
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from mygo.folders import KGFolder
from mygo.io import check_file

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")


@dataclass
class KnowledgeGraph:
    entity_names: list[str]
    entity_descriptions: list[str | None]
    entity_images: list[list[str]]
    relation_names: list[str]
    splits: dict[str, np.ndarray]                 # split -> (T, 3) int64 [head, relation, tail]
    summary: dict = field(default_factory=dict)

    @property
    def num_entities(self) -> int:
        return len(self.entity_names)

    @property
    def num_relations(self) -> int:
        return len(self.relation_names)


def readable_name(name: str) -> str:
    """`<http://dbpedia.org/resource/Gary_Rydstrom>` -> `Gary Rydstrom`; opaque ids (Q42) -> ``."""
    core = name.strip().removeprefix("<").removesuffix(">")
    if "/resource/" in core:                       # DBpedia: the title may itself hold '/'
        core = core.split("/resource/", 1)[1]
    elif "://" in core:
        core = re.split(r"[/#]", core.rstrip("/"))[-1]
    core = urllib.parse.unquote(core).replace("_", " ").strip()
    if re.fullmatch(r"[QP]\d+", core):
        return ""
    return core


def _read_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) for every non-blank line of a UTF-8 file; a leading BOM and CRLF line
    ends are accepted, undecodable bytes name their line."""
    check_file(path, "a text file")
    out = []
    data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"{path}: line {number}: undecodable bytes {raw[err.start:err.end]!r} "
                             f"(files must be UTF-8)") from None
        text = text.rstrip("\r")
        if text.strip():
            out.append((number, text))
    return out


def _read_id_map(path: Path) -> list[str]:
    """Parse entity2id.txt / relation2id.txt into names ordered by id, which must be 0..K-1.

    Lines are `name<space-or-tab>id`; a leading count line (as in the MyGO and OpenKE releases)
    is optional and, when present, must match the number of entries.
    """
    lines = _read_lines(path)
    if not lines:
        raise ValueError(f"{path}: file is empty")
    declared = None
    number, first = lines[0]
    if len(first.split()) == 1:
        try:
            declared = int(first.strip())
        except ValueError:
            raise ValueError(f"{path}: line {number}: expected a count or 'name id', got {first!r}") from None
        lines = lines[1:]
    by_id: dict[int, str] = {}
    seen: dict[str, int] = {}
    for number, text in lines:
        parts = text.rsplit(None, 1)
        if len(parts) != 2:
            raise ValueError(f"{path}: line {number}: expected 'name id', got {text!r}")
        name, raw_id = parts[0].strip(), parts[1]
        try:
            index = int(raw_id)
        except ValueError:
            raise ValueError(f"{path}: line {number}: id {raw_id!r} is not an integer") from None
        if index in by_id:
            raise ValueError(f"{path}: line {number}: duplicate id {index} "
                             f"(also given to {by_id[index]!r})")
        if name in seen:
            raise ValueError(f"{path}: line {number}: duplicate name {name!r} (also id {seen[name]})")
        by_id[index] = name
        seen[name] = index
    if declared is not None and len(by_id) != declared:
        raise ValueError(f"{path}: line 1: declares {declared} entries but lists {len(by_id)}")
    if sorted(by_id) != list(range(len(by_id))):
        missing = sorted(set(range(len(by_id))) - set(by_id))[:5]
        raise ValueError(f"{path}: ids must be 0..{len(by_id) - 1}; missing e.g. {missing}")
    return [by_id[i] for i in range(len(by_id))]


def _read_name_list(path: Path) -> list[str]:
    """entities.txt / relations.txt (NativE layout): one name per line, the id is the line's index."""
    names: list[str] = []
    seen: dict[str, int] = {}
    for number, text in _read_lines(path):
        name = text.strip()
        if name in seen:
            raise ValueError(f"{path}: line {number}: duplicate name {name!r} (first on entry {seen[name]})")
        seen[name] = len(names)
        names.append(name)
    if not names:
        raise ValueError(f"{path}: file is empty")
    return names


def _read_split(path: Path, parse_entity, parse_relation, order: str = "hrt", sep: str | None = "\t") -> np.ndarray:
    """Triples of one split; `order` is the column order (hrt or htr); sep None = any whitespace."""
    rows = []
    names = {"hrt": "head, relation, tail", "htr": "head, tail, relation"}[order]
    for number, text in _read_lines(path):
        parts = text.split(sep)
        if len(parts) != 3:
            kind = "tab-separated" if sep else "whitespace-separated"
            raise ValueError(f"{path}: line {number}: expected 3 {kind} columns ({names}), got {len(parts)}: {text!r}")
        if order == "htr":
            parts = [parts[0], parts[2], parts[1]]
        head = parse_entity(parts[0], path, number)
        relation = parse_relation(parts[1], path, number)
        tail = parse_entity(parts[2], path, number)
        rows.append((head, relation, tail))
    if not rows:
        raise ValueError(f"{path}: split is empty")
    return np.asarray(rows, dtype=np.int64)


def _id_parser(kind: str, count: int, map_file: str):
    def parse(value: str, path: Path, number: int) -> int:
        try:
            index = int(value)
        except ValueError:
            raise ValueError(f"{path}: line {number}: {kind} id {value!r} is not an integer") from None
        if not 0 <= index < count:
            raise ValueError(f"{path}: line {number}: unknown {kind} id {index} "
                             f"(not in {map_file}, which has 0..{count - 1})")
        return index
    return parse


def _name_parser(kind: str, index: dict[str, int], where: str, grow: bool = False):
    def parse(value: str, path: Path, number: int) -> int:
        value = value.strip()
        if value not in index:
            if not grow:
                raise ValueError(f"{path}: line {number}: unknown {kind} {value!r} (not in {where})")
            index[value] = len(index)
        return index[value]
    return parse


def _id_list(names: list[str], path: Path) -> list[str] | None:
    """When every entry of an entities.txt / relations.txt is an integer, the file is a list of
    ids, not of names (the MyGO release of MKG-Y ships them so): they must be 0..K-1, each once,
    and the ids in order are returned. None when the entries are names."""
    if not all(name.isdigit() for name in names):
        return None
    ids = [int(name) for name in names]
    if sorted(ids) != list(range(len(ids))):
        missing = sorted(set(range(len(ids))) - set(ids))[:5]
        raise ValueError(f"{path}: lists integer ids, which must be 0..{len(ids) - 1} each once; "
                         f"missing e.g. {missing}")
    return [str(i) for i in range(len(ids))]


def _read_map(raw_dir: Path, kind: str) -> tuple[list[str], str]:
    """Names ordered by id from `<kind>2id.txt` (MyGO release) or `<kind>s.txt` (NativE release).

    When both files are present they must agree line for line, unless `<kind>s.txt` holds exactly
    the ids of the map (the MyGO release of MKG-Y). A `<kind>s.txt` of ids alone names each entry
    by its id (relations.txt in that release: there are no relation names anywhere).
    """
    id_file = raw_dir / f"{kind}2id.txt"
    list_file = raw_dir / {"entity": "entities.txt", "relation": "relations.txt"}[kind]
    if id_file.exists():
        names = _read_id_map(id_file)
        if list_file.exists():
            listed = _read_name_list(list_file)
            if _id_list(listed, list_file) is not None:         # the ids of the map: nothing else to check
                if len(listed) != len(names):
                    raise ValueError(f"{list_file}: lists {len(listed)} ids but {id_file.name} has {len(names)} "
                                     f"entries; keep one layout")
                return names, id_file.name
            for index, (a, b) in enumerate(zip(names, listed)):
                if a != b:
                    raise ValueError(f"{list_file}: entry {index}: {b!r} disagrees with {id_file.name}, which gives "
                                     f"id {index} to {a!r}; keep one layout")
            if len(listed) != len(names):
                raise ValueError(f"{list_file}: lists {len(listed)} names but {id_file.name} has {len(names)}; "
                                 f"keep one layout")
        return names, id_file.name
    if list_file.exists():
        listed = _read_name_list(list_file)
        return _id_list(listed, list_file) or listed, list_file.name
    raise ValueError(f"{raw_dir}: needs {id_file.name} or {list_file.name}")


def load_benchmark(raw_dir: Path, triple_order: str = "auto") -> KnowledgeGraph:
    """The integer-id layouts: MyGO's (entity2id.txt, `h r t`) and NativE's (entities.txt, `h t r`)."""
    entities, entity_file = _read_map(raw_dir, "entity")
    relations, relation_file = _read_map(raw_dir, "relation")
    if triple_order == "auto":
        triple_order = "htr" if entity_file == "entities.txt" else "hrt"
    parse_e = _id_parser("entity", len(entities), entity_file)
    parse_r = _id_parser("relation", len(relations), relation_file)
    splits = {s: _read_split(raw_dir / f"{s}.txt", parse_e, parse_r, triple_order, sep=None) for s in SPLITS}
    return KnowledgeGraph(entities, [None] * len(entities), [[] for _ in entities], relations, splits)


def load_named(raw_dir: Path) -> KnowledgeGraph:
    path = raw_dir / "entities.tsv"
    names, descriptions, images = [], [], []
    index: dict[str, int] = {}
    for number, text in _read_lines(path):
        parts = text.split("\t")
        name = parts[0].strip()
        if not name:
            raise ValueError(f"{path}: line {number}: empty entity name")
        if name in index:
            raise ValueError(f"{path}: line {number}: duplicate entity name {name!r}")
        index[name] = len(names)
        names.append(name)
        description = parts[1].strip() if len(parts) > 1 else ""
        descriptions.append(description or None)
        images.append([u.strip() for u in parts[2:] if u.strip()])
    if not names:
        raise ValueError(f"{path}: no entities")
    relation_index: dict[str, int] = {}
    parse_e = _name_parser("entity", index, "entities.tsv")
    parse_r = _name_parser("relation", relation_index, "", grow=True)
    splits = {s: _read_split(raw_dir / f"{s}.tsv", parse_e, parse_r) for s in SPLITS}
    return KnowledgeGraph(names, descriptions, images, list(relation_index), splits)


def load_raw(raw_dir: str | Path, triple_order: str = "auto") -> KnowledgeGraph:
    """Read and validate a raw dataset directory in any supported layout, and summarise it.

    `triple_order` applies to integer-id triples: hrt, htr, or auto (by layout)."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise ValueError(f"{raw_dir}: dataset folder not found (docs/paper.md shows how to bring a benchmark in)")
    if (raw_dir / "entities.tsv").exists():
        if any((raw_dir / f).exists() for f in ("entity2id.txt", "entities.txt", "train.txt")):
            raise ValueError(f"{raw_dir}: mixes the named layout (entities.tsv) with an integer-id layout "
                             f"(entity2id.txt / entities.txt / train.txt); keep one")
        graph = load_named(raw_dir)
    elif (raw_dir / "entity2id.txt").exists() or (raw_dir / "entities.txt").exists():
        graph = load_benchmark(raw_dir, triple_order)
    else:
        raise ValueError(f"{raw_dir}: not a dataset (needs entity2id.txt or entities.txt for an integer-id "
                         f"layout, or entities.tsv for the named layout)")
    graph.summary = summarize(graph)
    return graph


def _unique_rows(array: np.ndarray) -> set[tuple[int, int, int]]:
    return set(map(tuple, array.tolist()))


def summarize(graph: KnowledgeGraph) -> dict:
    """Counts and the non-fatal data problems a user must know about."""
    train = _unique_rows(graph.splits["train"])
    train_entities = set(graph.splits["train"][:, [0, 2]].ravel().tolist())
    summary = {
        "entities": graph.num_entities,
        "relations": graph.num_relations,
        **{s: int(len(graph.splits[s])) for s in SPLITS},
        "entities_with_description": sum(d is not None for d in graph.entity_descriptions),
        "entities_with_text": sum(bool(t) for t in entity_texts(graph)),
        "entities_with_images": sum(bool(i) for i in graph.entity_images),
        "image_urls": sum(len(i) for i in graph.entity_images),
    }
    for split in SPLITS:
        rows = graph.splits[split].tolist()
        summary[f"{split}_duplicate_lines"] = len(rows) - len(set(map(tuple, rows)))
    for split in ("valid", "test"):
        rows = graph.splits[split]
        summary[f"{split}_in_train"] = int(sum(tuple(r) in train for r in rows.tolist()))
        unseen = ~np.isin(rows[:, 0], list(train_entities)) | ~np.isin(rows[:, 2], list(train_entities))
        summary[f"{split}_triples_with_unseen_entity"] = int(unseen.sum())
        summary[f"{split}_unseen_entities"] = len(set(rows[:, [0, 2]].ravel().tolist()) - train_entities)
    summary["valid_in_test"] = len(_unique_rows(graph.splits["valid"]) & _unique_rows(graph.splits["test"]))
    return summary


def entity_texts(graph: KnowledgeGraph) -> list[str]:
    return [d if d is not None else readable_name(n)
            for n, d in zip(graph.entity_names, graph.entity_descriptions)]


def write_processed(graph: KnowledgeGraph, out_dir: str | Path) -> None:
    """Write the graph as a KGFolder (the canonical tables and summary.json), all or nothing."""
    n = graph.num_entities
    entities = pa.table({
        "id": np.arange(n, dtype=np.int32),
        "name": graph.entity_names,
        "description": graph.entity_descriptions,
        "text": entity_texts(graph),
        "image_urls": graph.entity_images,
    })
    relations = pa.table({
        "id": np.arange(graph.num_relations, dtype=np.int32),
        "name": graph.relation_names,
        "text": [readable_name(r) for r in graph.relation_names],
    })
    KGFolder(out_dir).write(entities, relations, graph.splits, graph.summary)
