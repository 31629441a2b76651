"""select_tokens: token tables -> entity_tokens.parquet + compact frozen embedding tables.

By default it reads the tokenize_text / tokenize_images outputs (the image side may be absent).
With `select_tokens.visual_json` / `text_json` (and their tables) set in params.yaml it reads the
MyGO authors' released token files instead; those paths are relative to --released-dir (the
dataset folder, a dependency of this stage in dvc.yaml, so DVC re-runs it when they change).
"""
import argparse
import json
import logging
from pathlib import Path

from mygo import tables
from mygo.config import run_main
from mygo.io import atomic_dir, write_json
from mygo.params import load_params
from mygo.selection import (entity_tokens_table, load_embedding_tensor, load_released, pooled_tokens, save_table,
                            select, shortfall)

log = logging.getLogger("mygo.select_tokens")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kg_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--text-dir", help="tokenize_text output (text_tokens.parquet, text_embeddings.pt)")
    parser.add_argument("--image-dir", help="tokenize_images output (image_tokens.parquet, codebook.pt); "
                        "absent or missing means no visual tokens")
    parser.add_argument("--released-dir", default=".",
                        help="folder that select_tokens.*_json / *_table paths are relative to")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    params = load_params(args.params)
    config, m, n = params.select_tokens, params.max_vis_token, params.max_txt_token
    entities = tables.read_entities(Path(args.kg_dir) / "entities.parquet")
    names = entities["name"].to_pylist()
    num = len(names)
    sources = {}

    visual_tokens, visual_source, visual_pad = [[] for _ in range(num)], None, None
    if config.visual_json:
        visual_tokens, visual_source, visual_pad, sources["visual"] = load_released(config, "visual",
                                                                                  args.released_dir, names)
    elif args.image_dir and (Path(args.image_dir) / "image_tokens.parquet").exists():
        image_tokens = tables.read_image_tokens(Path(args.image_dir) / "image_tokens.parquet")
        visual_tokens = pooled_tokens(num, image_tokens["entity"].to_numpy(), image_tokens["tokens"].to_pylist())
        visual_source = load_embedding_tensor(Path(args.image_dir) / "codebook.pt")
        sources["visual"] = f"pipeline: {args.image_dir}"
    else:
        sources["visual"] = "none"

    if config.text_json:
        text_tokens, text_source, text_pad, sources["text"] = load_released(config, "text", args.released_dir, names)
    elif args.text_dir:
        table = tables.read_text_tokens(Path(args.text_dir) / "text_tokens.parquet")
        text_tokens = pooled_tokens(num, table["entity"].to_numpy(), table["tokens"].to_pylist())
        text_source, text_pad = load_embedding_tensor(Path(args.text_dir) / "text_embeddings.pt"), None
        sources["text"] = f"pipeline: {args.text_dir}"
    else:
        raise ValueError("give --text-dir (pipeline) or select_tokens.text_json / text_table in params.yaml")

    try:
        visual = select(visual_tokens, m, visual_source, visual_pad)
    except ValueError as err:
        raise ValueError(f"visual tokens ({sources['visual']}): {err}") from None
    try:
        text = select(text_tokens, n, text_source, text_pad)
    except ValueError as err:
        raise ValueError(f"text tokens ({sources['text']}): {err}") from None
    summary = {
        "max_vis_token": m, "max_txt_token": n, "entities": num,
        "visual_source": sources["visual"], "text_source": sources["text"],
        "entities_with_visual_tokens": int(visual[1].any(1).sum()),
        "entities_with_text_tokens": int(text[1].any(1).sum()),
        "entities_with_fewer_visual_ids_than_m": shortfall(visual_tokens, m, visual_pad),
        "entities_with_fewer_text_ids_than_n": shortfall(text_tokens, n, text_pad),
        "mean_visual_tokens": float(visual[1].sum(1).mean()),
        "mean_text_tokens": float(text[1].sum(1).mean()),
        "visual_table_rows": int(visual[2].weight.shape[0]),
        "text_table_rows": int(text[2].weight.shape[0]),
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
    with atomic_dir(args.out_dir) as tmp:
        tables.write_entity_tokens(tmp / "entity_tokens.parquet", entity_tokens_table(num, visual[:2], text[:2]))
        save_table(tmp / "visual_table.pt", visual[2])
        save_table(tmp / "text_table.pt", text[2])
        write_json(tmp / "summary.json", summary)
    log.info("selected tokens: %s", json.dumps(summary))


if __name__ == "__main__":
    run_main(main)
