"""tokenize_text: entity texts -> per-entity word-piece ids + the frozen word-embedding table."""
from __future__ import annotations

import logging

log = logging.getLogger("mygo.tokenize_text")
USES_TORCH = True


def add_arguments(parser) -> None:
    parser.add_argument("kg_dir", help="prepare's KG folder")
    parser.add_argument("out_dir", help="the text-token folder to write")
    parser.add_argument("--params", default="params.yaml", help="the params file (default: %(default)s)")


def run(args) -> None:
    import numpy as np

    from mygo.folders import KGFolder, TextTokensFolder
    from mygo.params import load_section
    from mygo.text import load_tokenizer, load_word_embeddings, tokenize_texts
    config = load_section(args.params, "tokenize_text", log)
    entities = KGFolder(args.kg_dir).entities()
    texts = entities["text"].to_pylist()
    tokens = tokenize_texts(texts, load_tokenizer(config.text_model), config.batch_size)
    weight = load_word_embeddings(config.text_model)
    TextTokensFolder(args.out_dir).write(entities["id"], tokens, weight, config.text_model)
    empty = sum(not t for t in tokens)
    with_text = sum(bool(t.strip()) for t in texts)
    log.info("tokenized %d entity texts (%d non-empty) into %d word pieces (%.1f per entity); "
             "%d entities have no text token; table %s -> %s", len(texts), with_text,
             sum(map(len, tokens)), np.mean([len(t) for t in tokens]) if tokens else 0.0,
             empty, tuple(weight.shape), args.out_dir)
