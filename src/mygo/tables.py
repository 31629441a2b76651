"""Every on-disk table of the pipeline: its Arrow schema and its `read_*` / `write_*` pair.

Readers check the schema and name the file and the missing column when it does not match.
"""
from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq

from mygo.io import atomic_path, check_file, describe_os_error

ENTITIES = pa.schema([
    ("id", pa.int32()),
    ("name", pa.string()),          # the name as given in the raw data
    ("description", pa.string()),   # null when the raw data has none
    ("text", pa.string()),          # description, else the readable name, else ""
    ("image_urls", pa.list_(pa.string())),
])
RELATIONS = pa.schema([("id", pa.int32()), ("name", pa.string()), ("text", pa.string())])
TRIPLES = pa.schema([("head", pa.int32()), ("relation", pa.int32()), ("tail", pa.int32())])
IMAGE_MANIFEST = pa.schema([
    ("entity", pa.int32()),
    ("url", pa.string()),
    ("status", pa.string()),        # ok | http_error | timeout | connection_error | not_an_image | too_large | ...
    ("http_code", pa.int32()),      # null when no HTTP response
    ("attempts", pa.int32()),
    ("bytes", pa.int64()),
    ("sha256", pa.string()),
    ("path", pa.string()),          # stored file, relative to the image directory; null unless ok
    ("error", pa.string()),
])
IMAGE_TOKENS = pa.schema([("entity", pa.int32()), ("image", pa.string()), ("tokens", pa.list_(pa.int32()))])
TEXT_TOKENS = pa.schema([("entity", pa.int32()), ("tokens", pa.list_(pa.int32()))])
ENTITY_TOKENS = pa.schema([
    ("entity", pa.int32()),
    ("visual", pa.list_(pa.int32())),       # ids into the compact visual table; padding id = 0
    ("visual_mask", pa.list_(pa.bool_())),  # True for a real token
    ("text", pa.list_(pa.int32())),
    ("text_mask", pa.list_(pa.bool_())),
])


def write_table(path: str | os.PathLike, table: pa.Table, schema: pa.Schema) -> None:
    """Write `table` cast to `schema`, atomically."""
    table = table.select(schema.names).cast(schema)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_table(path: str | os.PathLike, schema: pa.Schema) -> pa.Table:
    """Read a Parquet file and check it holds every column of `schema` with its type."""
    path = check_file(path, "a Parquet file")
    try:
        table = pq.read_table(path)
    except OSError as err:
        raise ValueError(describe_os_error(err, path, "read it")) from None
    except pa.ArrowException as err:
        raise ValueError(f"{path}: not a readable Parquet file: {err}") from None
    for field in schema:
        if field.name not in table.schema.names:
            raise ValueError(f"{path}: missing column {field.name!r} (has {table.schema.names})")
    for field in schema:
        actual = table.schema.field(field.name).type
        if not actual.equals(field.type):
            raise ValueError(f"{path}: column {field.name!r} has type {actual}, expected {field.type}")
    return table.select(schema.names)


def write_entities(path, table):
    write_table(path, table, ENTITIES)


def read_entities(path) -> pa.Table:
    return read_table(path, ENTITIES)


def write_relations(path, table):
    write_table(path, table, RELATIONS)


def read_relations(path) -> pa.Table:
    return read_table(path, RELATIONS)


def write_triples(path, table):
    write_table(path, table, TRIPLES)


def read_triples(path) -> pa.Table:
    return read_table(path, TRIPLES)


def write_image_manifest(path, table):
    write_table(path, table, IMAGE_MANIFEST)


def read_image_manifest(path) -> pa.Table:
    return read_table(path, IMAGE_MANIFEST)


def write_image_tokens(path, table):
    write_table(path, table, IMAGE_TOKENS)


def read_image_tokens(path) -> pa.Table:
    return read_table(path, IMAGE_TOKENS)


def write_text_tokens(path, table):
    write_table(path, table, TEXT_TOKENS)


def read_text_tokens(path) -> pa.Table:
    return read_table(path, TEXT_TOKENS)


def write_entity_tokens(path, table):
    write_table(path, table, ENTITY_TOKENS)


def read_entity_tokens(path) -> pa.Table:
    return read_table(path, ENTITY_TOKENS)
