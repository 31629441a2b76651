"""DVCLive logging for the train stage: what `dvc exp show`, `dvc plots` and the VS Code
extension read, updated at every epoch end while a run goes.

Per epoch (DVCLive step = epoch): `train/loss` and its parts `train/kgc_loss`,
`train/contrastive_loss`, and `train/lr`; per validation: `valid/mrr`, `valid/hits@1/3/10`. The
summary (`metrics.json`) holds the latest values and the best epoch with its valid metrics
(`best_epoch`, `best`), and at the end the run's summary (epochs, valid triples used).

The training state (`mygo.training.RunState`) is the history's source of truth: the log is
rebuilt from it when a run starts or resumes, so a resumed run's history is the uninterrupted
run's, whatever the last run wrote before it was killed.
"""
from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("mygo.live")

LOSS_KEYS = ("loss", "kgc_loss", "contrastive_loss", "lr")
VALID_KEYS = ("mrr", "hits@1", "hits@3", "hits@10")


class LiveLog:
    """The DVCLive log of one training run in `directory`."""

    def __init__(self, directory: str | Path):
        self.live = _live_class()(str(directory), resume=False, report=None, save_dvc_exp=False, dvcyaml=False,
                                  monitor_system=False)
        self.epochs_logged = 0
        self.validations_logged = 0

    def update(self, state) -> None:
        """Log what `state` (a RunState) holds beyond what is logged already; one DVCLive step per
        epoch."""
        live = self.live
        valid_by_epoch = {row["epoch"]: row for row in state.valid[self.validations_logged:]}
        for row in state.losses[self.epochs_logged:]:
            live.step = row["epoch"]
            for key in LOSS_KEYS:
                live.log_metric(f"train/{key}", row[key])
            if row["epoch"] in valid_by_epoch:
                self._log_valid(valid_by_epoch.pop(row["epoch"]))
            self._set_best(state.best_metrics, best_epoch=state.best_epoch)
            live.next_step()
        for row in valid_by_epoch.values():       # a validation after the last epoch's line (the run's end)
            live.step = row["epoch"]
            self._log_valid(row)
            self._set_best(state.best_metrics, best_epoch=state.best_epoch)
            live.make_summary()
        self.epochs_logged, self.validations_logged = len(state.losses), len(state.valid)

    def _log_valid(self, row: dict) -> None:
        for key in VALID_KEYS:
            self.live.log_metric(f"valid/{key}", row[key])

    def _set_best(self, metrics: dict, **more) -> None:
        """The summary's `best` (the best validation's metrics) and whatever else `more` names."""
        self.live.summary.update(more)
        self.live.summary["best"] = {k: metrics[k] for k in VALID_KEYS if k in metrics}

    def finish(self, summary: dict) -> None:
        """The run's summary joins the metrics (the best valid metrics as `best`)."""
        live = self.live
        live.step = summary["epochs"]
        self._set_best(summary["valid"], **{k: v for k, v in summary.items() if k != "valid"})
        live.make_summary()


def _live_class():
    """dvclive.Live whose git integration is optional: in a repository without a commit (a
    project just made by `git init`) or a broken one, it logs a warning and goes on without git,
    where DVCLive itself raises."""
    from dvclive import Live
    from dvclive.dvc import get_exp_name
    from scmrepo.exceptions import SCMError

    class OptionalGitLive(Live):
        def _init_dvc(self):
            try:
                super()._init_dvc()
            except SCMError as error:
                log.warning("DVCLive runs without git here (%s): the metrics are logged all the same; commit "
                            "the project (`git add -A && git commit -m 'MyGO project'`) for `dvc exp` to "
                            "track experiments", error)
                self._dvc_repo = None
                self._exp_name = get_exp_name(self._exp_name, None, self._baseline_rev)
                self._dvc_file = self._init_dvc_file()

    return OptionalGitLive

