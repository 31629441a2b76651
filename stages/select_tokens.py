"""select_tokens: token tables -> entity_tokens.parquet + compact frozen embedding tables.

Pipeline mode reads tokenize_text / tokenize_images outputs (the image side may be absent).
Released mode (--visual-json/--text-json with --visual-table/--text-table) reads the MyGO
authors' token files instead.
"""
import argparse
import json
import logging
from pathlib import Path


from mygo import tables
from mygo.config import load_params, run_main, top_level
from mygo.io import atomic_dir, write_json
from mygo.selection import (entity_tokens_table, load_embedding_tensor, pooled_tokens,
                            read_released_tokens, save_table, select)

log = logging.getLogger("mygo.select_tokens")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kg_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--text-dir", help="tokenize_text output (text_tokens.parquet, text_embeddings.pt)")
    parser.add_argument("--image-dir", help="tokenize_images output (image_tokens.parquet, codebook.pt); "
                        "absent or missing means no visual tokens")
    parser.add_argument("--visual-json", help="released visual token file {entity: [ids]}")
    parser.add_argument("--visual-table", help="released visual table (e.g. visual.pth)")
    parser.add_argument("--visual-pad-row", type=int, help="row of the released visual table that is padding")
    parser.add_argument("--text-json", help="released text token file {entity: [ids]}")
    parser.add_argument("--text-table", help="released text table (input word embeddings)")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    params = load_params(args.params)
    m, n = int(top_level(params, "max_vis_token")), int(top_level(params, "max_txt_token"))
    entities = tables.read_entities(Path(args.kg_dir) / "entities.parquet")
    names = entities["name"].to_pylist()
    num = len(names)

    visual_tokens, visual_source, visual_pad = [[] for _ in range(num)], None, None
    if args.visual_json:
        if not args.visual_table:
            raise ValueError("--visual-json needs --visual-table")
        visual_tokens = read_released_tokens(args.visual_json, names)
        visual_source, visual_pad = load_embedding_tensor(args.visual_table), args.visual_pad_row
    elif args.image_dir and (Path(args.image_dir) / "image_tokens.parquet").exists():
        image_tokens = tables.read_image_tokens(Path(args.image_dir) / "image_tokens.parquet")
        visual_tokens = pooled_tokens(num, image_tokens["entity"].to_numpy(), image_tokens["tokens"].to_pylist())
        visual_source = load_embedding_tensor(Path(args.image_dir) / "codebook.pt")
    else:
        log.warning("no image tokens: every visual slot is padding")

    if args.text_json:
        if not args.text_table:
            raise ValueError("--text-json needs --text-table")
        text_tokens = read_released_tokens(args.text_json, names)
        text_source = load_embedding_tensor(args.text_table)
    elif args.text_dir:
        table = tables.read_text_tokens(Path(args.text_dir) / "text_tokens.parquet")
        text_tokens = pooled_tokens(num, table["entity"].to_numpy(), table["tokens"].to_pylist())
        text_source = load_embedding_tensor(Path(args.text_dir) / "text_embeddings.pt")
    else:
        raise ValueError("give --text-dir (pipeline) or --text-json/--text-table (released tokens)")

    visual = select(visual_tokens, m, visual_source, visual_pad)
    text = select(text_tokens, n, text_source)
    summary = {
        "max_vis_token": m, "max_txt_token": n, "entities": num,
        "entities_with_visual_tokens": int(visual[1].any(1).sum()),
        "entities_with_text_tokens": int(text[1].any(1).sum()),
        "mean_visual_tokens": float(visual[1].sum(1).mean()),
        "mean_text_tokens": float(text[1].sum(1).mean()),
        "visual_table_rows": int(visual[2].weight.shape[0]),
        "text_table_rows": int(text[2].weight.shape[0]),
    }
    with atomic_dir(args.out_dir) as tmp:
        tables.write_entity_tokens(tmp / "entity_tokens.parquet", entity_tokens_table(num, visual[:2], text[:2]))
        save_table(tmp / "visual_table.pt", visual[2])
        save_table(tmp / "text_table.pt", text[2])
        write_json(tmp / "summary.json", summary)
    log.info("selected tokens: %s", json.dumps(summary))


if __name__ == "__main__":
    run_main(main)
