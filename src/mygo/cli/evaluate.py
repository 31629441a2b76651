"""evaluate: checkpoint + KG -> filtered ranking metrics on test (both directions, realistic
ranks at the top level) and a per-relation table."""
from __future__ import annotations

import logging

log = logging.getLogger("mygo.evaluate")
USES_TORCH = True


def add_arguments(parser) -> None:
    parser.add_argument("kg_dir", help="prepare's KG folder")
    parser.add_argument("model_path", help="the checkpoint train wrote")
    parser.add_argument("metrics", help="eval.json to write")
    parser.add_argument("per_relation", help="per-relation metrics JSON to write")
    parser.add_argument("--split", default="test", choices=("train", "valid", "test"),
                        help="the split to rank (default: %(default)s)")
    parser.add_argument("--params", default="params.yaml", help="the params file (default: %(default)s)")


def run(args) -> None:
    from mygo.checkpoint import check_fingerprint, load_checkpoint
    from mygo.config import is_out_of_memory
    from mygo.device import pick_device, use_bf16
    from mygo.evaluation import compute_ranks, metrics_from_ranks
    from mygo.folders import KGFolder
    from mygo.io import first_line, write_json
    from mygo.params import load_params, log_ignored

    from mygo.memory import reuse_memory_if

    params = load_params(args.params)
    config = params.evaluate
    log_ignored(config, log)
    device = pick_device(config.device)
    kg = KGFolder(args.kg_dir)
    model, checkpoint = load_checkpoint(args.model_path, device)
    check_fingerprint(checkpoint, args.model_path, kg.path)
    reuse_memory_if(params.train.reuse_memory, device, model.config.encoder_chunk)
    splits = kg.splits()
    relation_names = kg.relation_names()       # as in the raw data, spelled as predict accepts them
    try:
        ranks = compute_ranks(model, splits[args.split], list(splits.values()), config.batch_size, device,
                              amp=use_bf16(config.amp, device, "evaluate.amp"))
    except (MemoryError, RuntimeError) as err:
        if not is_out_of_memory(err):
            raise
        raise ValueError(f"out of memory evaluating {args.model_path} ({first_line(err, 160)}): "
                         f"lower evaluate.batch_size (now {config.batch_size})") from None
    metrics, per_relation = metrics_from_ranks(ranks, relation_names)
    write_json(args.metrics, metrics)
    write_json(args.per_relation, per_relation)
    log.info("%s: MRR %.4f  MR %.1f  Hits@1 %.4f  Hits@3 %.4f  Hits@10 %.4f (%d queries, realistic ranks)",
             args.split, metrics["mrr"], metrics["mr"], metrics["hits@1"], metrics["hits@3"],
             metrics["hits@10"], metrics["count"])
