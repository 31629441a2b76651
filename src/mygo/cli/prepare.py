"""prepare: raw dataset directory -> canonical Parquet tables + summary.json."""
from __future__ import annotations

import logging

log = logging.getLogger("mygo.prepare")


def add_arguments(parser) -> None:
    parser.add_argument("raw_dir", help="the raw dataset folder (docs/formats.md), e.g. data/raw/demo")
    parser.add_argument("out_dir", help="the KG folder to write (Parquet tables), e.g. data/processed/kg")
    parser.add_argument("--summary", help="also write the summary JSON here (tracked, not a DVC metric)")
    parser.add_argument("--params", default="params.yaml", help="the params file (default: %(default)s)")


def run(args) -> None:
    from mygo.graph import load_raw, write_processed
    from mygo.io import write_json
    from mygo.params import load_section
    config = load_section(args.params, "prepare", log)
    graph = load_raw(args.raw_dir, config.triple_order)
    write_processed(graph, args.out_dir)
    if args.summary:
        write_json(args.summary, graph.summary)
    s = graph.summary
    for split in ("valid", "test"):
        if s[f"{split}_in_train"]:
            log.warning("%d %s triples are also in train", s[f"{split}_in_train"], split)
        if s[f"{split}_triples_with_unseen_entity"]:
            log.warning("%d %s triples have an entity unseen in train (%d entities)",
                        s[f"{split}_triples_with_unseen_entity"], split, s[f"{split}_unseen_entities"])
    for split in ("train", "valid", "test"):
        if s[f"{split}_duplicate_lines"]:
            log.warning("%s has %d duplicate lines", split, s[f"{split}_duplicate_lines"])
    log.info("prepared %s: %d entities, %d relations, %d / %d / %d train / valid / test triples, "
             "%d valid triples also in train -> %s", args.raw_dir, s["entities"], s["relations"],
             s["train"], s["valid"], s["test"], s["valid_in_train"], args.out_dir)
