"""select_tokens: token tables -> entity_tokens.parquet + compact frozen embedding tables.

By default it reads the tokenize_text / tokenize_images outputs (the image side may be absent).
With `select_tokens.visual_json` / `text_json` (and their tables) set in params.yaml it reads the
MyGO authors' released token files instead; those paths are relative to --released-dir (the
dataset folder, a dependency of this stage in dvc.yaml, so DVC re-runs it when they change).
"""
from __future__ import annotations

import json
import logging

log = logging.getLogger("mygo.select_tokens")


def add_arguments(parser) -> None:
    parser.add_argument("kg_dir", help="prepare's KG folder")
    parser.add_argument("out_dir", help="the entity-token folder to write")
    parser.add_argument("--text-dir", help="tokenize_text output (text_tokens.parquet, text_embeddings.pt)")
    parser.add_argument("--image-dir", help="tokenize_images output (image_tokens.parquet, codebook.pt); "
                        "left out: no visual tokens")
    parser.add_argument("--released-dir", default=".",
                        help="folder that select_tokens.*_json / *_table paths are relative to")
    parser.add_argument("--params", default="params.yaml", help="the params file (default: %(default)s)")


def run(args) -> None:
    from mygo.folders import EntityTokensFolder, ImageTokensFolder, KGFolder, TextTokensFolder
    from mygo.params import load_params, log_ignored
    from mygo.selection import select_entity_tokens
    params = load_params(args.params)
    log_ignored(params.select_tokens, log)
    selection = select_entity_tokens(KGFolder(args.kg_dir).entity_names(), params.select_tokens,
                                     params.max_vis_token, params.max_txt_token,
                                     text=TextTokensFolder(args.text_dir) if args.text_dir else None,
                                     images=ImageTokensFolder(args.image_dir) if args.image_dir else None,
                                     released_dir=args.released_dir)
    EntityTokensFolder(args.out_dir).write(selection.table, selection.visual_table, selection.text_table,
                                           selection.summary)
    log.info("selected tokens: %s", json.dumps(selection.summary))
