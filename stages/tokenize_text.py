"""tokenize_text: entity texts -> per-entity word-piece ids + the frozen word-embedding table."""
import argparse
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa

from mygo import tables
from mygo.config import run_main
from mygo.params import load_params
from mygo.io import atomic_dir, save_torch
from mygo.text import load_tokenizer, load_word_embeddings, tokenize_texts

log = logging.getLogger("mygo.tokenize_text")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kg_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    config = load_params(args.params).tokenize_text
    entities = tables.read_entities(Path(args.kg_dir) / "entities.parquet")
    texts = entities["text"].to_pylist()
    tokens = tokenize_texts(texts, load_tokenizer(config.text_model), config.batch_size)
    weight = load_word_embeddings(config.text_model)
    with atomic_dir(args.out_dir) as tmp:
        tables.write_text_tokens(tmp / "text_tokens.parquet", pa.table({
            "entity": entities["id"],
            "tokens": pa.array(tokens, type=pa.list_(pa.int32())),
        }))
        save_torch(tmp / "text_embeddings.pt", {"weight": weight, "source": config.text_model})
    empty = sum(not t for t in tokens)
    with_text = sum(bool(t.strip()) for t in texts)
    log.info("tokenized %d entity texts (%d non-empty) into %d word pieces (%.1f per entity); "
             "%d entities have no text token; table %s -> %s", len(texts), with_text,
             sum(map(len, tokens)), np.mean([len(t) for t in tokens]) if tokens else 0.0,
             empty, tuple(weight.shape), args.out_dir)


if __name__ == "__main__":
    run_main(main)
