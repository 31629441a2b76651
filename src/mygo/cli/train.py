"""train: KG + entity tokens -> best checkpoint (by valid MRR), training metrics and curves.

Killed runs resume: the full training state is saved to the --resume file every
train.checkpoint_every epochs and every train.checkpoint_minutes inside an epoch. That file is
deliberately not a DVC output (DVC would delete it before re-running the stage); a re-run with
the same params and inputs continues from it, any other run ignores it, and it is removed when
training finishes.
"""
from __future__ import annotations

import logging

log = logging.getLogger("mygo.train")
USES_TORCH = True


def add_arguments(parser) -> None:
    parser.add_argument("kg_dir", help="prepare's KG folder")
    parser.add_argument("tokens_dir", help="select_tokens' entity-token folder")
    parser.add_argument("model_path", help="best checkpoint to write")
    parser.add_argument("--resume", help="file holding the resumable training state")
    parser.add_argument("--keep-resume", action="store_true", help="keep the state file after training")
    parser.add_argument("--live", help="DVCLive directory: metrics.json (the summary, updated every epoch) and "
                        "plots/metrics/ (the per-epoch history)")
    parser.add_argument("--curves", help="also write the history as loss.csv and valid.csv into this directory")
    parser.add_argument("--params", default="params.yaml", help="the params file (default: %(default)s)")


def run(args) -> None:
    import dataclasses
    from pathlib import Path

    from mygo import distributed, fast
    from mygo.checkpoint import data_fingerprint, save_checkpoint
    from mygo.folders import EntityTokensFolder, KGFolder
    from mygo.model import count_parameters
    from mygo.models import build_model
    from mygo.params import load_params, log_ignored
    from mygo.training import fingerprint, train

    params = load_params(args.params)
    config = params.train
    log_ignored(config, log)
    model_params = dataclasses.asdict(config.model)
    distributed.init_from_env(config.device)

    kg, tokens_dir = KGFolder(args.kg_dir), EntityTokensFolder(args.tokens_dir)
    num_entities, num_relations = len(kg.entities()), len(kg.relations())
    tokens = tokens_dir.read(num_entities)
    model = build_model(model_params, num_entities, num_relations, tokens, seed=config.seed,
                        ops=fast.ops(distributed_step=distributed.active()))
    log.info("model: %d trainable parameters, config %s", count_parameters(model), dataclasses.asdict(model.config))
    train_triples, valid_triples = kg.split("train"), kg.split("valid")
    run_id = fingerprint(dataclasses.asdict(config), dataclasses.asdict(model.config), kg.split_file("train"),
                         kg.split_file("valid"), *tokens_dir.files())
    live = None
    if args.live and distributed.rank() == 0:
        from mygo.live import LiveLog
        live = LiveLog(args.live)
    summary = train(model, config, train_triples, valid_triples, resume_path=args.resume, run_id=run_id,
                    plots_dir=args.curves, live=live)
    if distributed.rank() != 0:
        return
    train_config = {k: v for k, v in dataclasses.asdict(config).items() if k != "model"}   # the model: its config
    save_checkpoint(args.model_path, model.cpu(), {"train_config": train_config, "best_epoch": summary["best_epoch"],
                                                   "data": data_fingerprint(kg.path)})
    if args.resume and not args.keep_resume:
        Path(args.resume).unlink(missing_ok=True)      # finished: nothing left to resume
    log.info("wrote %s (best epoch %d)", args.model_path, summary["best_epoch"])
