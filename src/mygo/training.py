"""Training loop: Adam, gradient-norm clipping, cosine warm restarts, model selection on valid
MRR, early stopping and exact resume from the last saved state."""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import signal
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from mygo import distributed
from mygo.config import is_out_of_memory
from mygo.device import pick_device, use_bf16
from mygo.evaluation import KnownAnswers, compute_ranks, metrics_from_ranks
from mygo.io import atomic_path, first_line, load_torch, save_torch
from mygo.memory import choose_encoder_chunk, reuse_memory_if
from mygo.params import TrainParams
from mygo.progress import bar as progress_bar, duration

log = logging.getLogger(__name__)


def training_queries(train: np.ndarray, directions: str, generator: torch.Generator):
    """(known, relation, target, predict_head) long/bool tensors of one epoch's queries, shuffled."""
    T = len(train)
    triples = torch.as_tensor(train)
    if directions == "both":
        triples = torch.cat([triples, triples])
        predict_head = torch.cat([torch.zeros(T, dtype=torch.bool), torch.ones(T, dtype=torch.bool)])
    else:
        predict_head = torch.rand(T, generator=generator) < 0.5
    order = torch.randperm(len(triples), generator=generator)
    triples, predict_head = triples[order], predict_head[order]
    known = torch.where(predict_head, triples[:, 2], triples[:, 0])
    target = torch.where(predict_head, triples[:, 0], triples[:, 2])
    return known, triples[:, 1], target, predict_head


def selection_triples(valid: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, int]:
    """Valid triples for model selection: those also in train dropped, duplicates removed."""
    in_train = set(map(tuple, train.tolist()))
    kept, seen = [], set()
    for row in map(tuple, valid.tolist()):
        if row not in in_train and row not in seen:
            kept.append(row)
            seen.add(row)
    dropped = len(valid) - len(kept)
    return np.asarray(kept, dtype=np.int64).reshape(-1, 3), dropped


def fingerprint(*parts) -> str:
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, (str, Path)) and Path(part).is_file():
            digest.update(Path(part).read_bytes())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _rng_state(device: torch.device) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"].cpu())             # RNG states are CPU byte tensors
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


def _write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    keys = list(rows[0])
    with atomic_path(path) as tmp:
        tmp.write_text(",".join(keys) + "\n" + "".join(",".join(f"{r[k]:.6g}" if isinstance(r[k], float)
                                                                  else str(r[k]) for k in keys) + "\n" for r in rows))


def cpu_copy(obj):
    """`obj` (dicts, lists and tuples of tensors and plain values) with every tensor copied to the
    CPU and every container copied: a snapshot that training can go on changing after."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(cpu_copy(v) for v in obj)
    return obj


class ResumeWriter:
    """Writes resume states in a background thread, one at a time. `write` takes a snapshot at once
    (cpu_copy) and returns: serialising and writing a DB15K-sized state (about 430 MB) takes seconds,
    an epoch on a GPU a fraction of one. `wait` returns when the last write is complete (the file
    renamed into place) and raises what it raised; training calls it before the next write and
    whenever it stops, so a finished or interrupted run leaves the file whole. The first write is
    waited for at once: a folder that cannot take the file (full, read-only) stops the run before
    anything else is written."""

    def __init__(self):
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.first = True

    def write(self, path: Path, state: dict) -> None:
        self.wait()
        if self.first:
            save_torch(path, state)
            self.first = False
            return
        self.thread = threading.Thread(target=self._write, args=(path, cpu_copy(state)), name="resume-writer")
        self.thread.start()

    def _write(self, path: Path, snapshot: dict) -> None:
        try:
            save_torch(path, snapshot)
        except BaseException as err:         # noqa: BLE001  (raised again by wait, in training's thread)
            self.error = err

    def wait(self) -> None:
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        if self.error is not None:
            error, self.error = self.error, None
            raise error


def adam(model: torch.nn.Module, lr: float) -> torch.optim.Adam:
    """Adam over the model's parameters: torch's fused Adam (one kernel per parameter; on CPU about
    5x faster than the per-operation update). Its square root is the CPU's own instruction, exact
    on every vendor; the per-operation update's `sqrt` goes through MKL's vector maths, whose
    results differ between Intel and AMD CPUs whatever MKL_CBWR asks (mygo.reproducible)."""
    fused = all(p.device.type in ("cpu", "cuda") for p in model.parameters())
    return torch.optim.Adam(model.parameters(), lr=lr, fused=True if fused else None)


def clip_gradients(model: torch.nn.Module, max_norm: float) -> None:
    """Clip the gradients' global norm to max_norm, with torch's multi-tensor norms."""
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm, foreach=True)


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, config: TrainParams, batch: tuple,
               generator: torch.Generator, device: torch.device, use_amp: bool = False) -> dict[str, float]:
    """One optimisation step on a batch of queries (known, relation, predict_head, target).

    Across processes, each rank takes its contiguous share of the batch and the gradients are
    summed, so the step equals a single process's step on the whole batch. Returns the loss and
    its KGC and contrastive terms (the terms: this rank's share).
    """
    return {key: float(value) for key, value in step_losses(model, optimizer, config, batch, generator, device,
                                                            use_amp).items()}


def step_losses(model: torch.nn.Module, optimizer: torch.optim.Optimizer, config: TrainParams, batch: tuple,
                generator: torch.Generator | None, device: torch.device, use_amp: bool = False, *,
                sample: torch.Tensor | None = None, autocast_cache: bool = True) -> dict[str, torch.Tensor]:
    """train_step's step, its losses left on the device as 0-dim tensors: nothing waits for the
    device, so on a GPU the next steps are queued while this one runs. `sample`: the contrastive
    loss's entities, drawn beforehand (else from `generator`); `autocast_cache: False` for a step
    captured as a CUDA graph (mygo.fast.graphs)."""
    known, relation, predict_head, target = batch
    B = len(known)
    start, end = distributed.shard(B)
    local = slice(start, end)
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp, cache_enabled=autocast_cache):
        losses = model.losses(known[local].to(device), relation[local].to(device), predict_head[local].to(device),
                              target[local].to(device), mu=config.mu, tau=config.tau,
                              contrastive_size=config.contrastive_size, label_smoothing=config.label_smoothing,
                              generator=generator, kgc_weight=(end - start) / B,
                              con_weight=1.0 / distributed.world_size(), sample=sample)
        loss = losses.total
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    value = loss.detach()
    if distributed.active():
        distributed.all_reduce_gradients(model)
        value = value.clone()
        torch.distributed.all_reduce(value)
    clip_gradients(model, config.grad_clip)
    optimizer.step()
    return {"loss": value, "kgc": losses.kgc.detach(), "contrastive": losses.contrastive.detach()}


class EpochSums:
    """An epoch's loss sums, weighted by batch size: the steps' losses are kept on the device and
    read in one transfer when the sums are needed (an epoch's end, a save inside it), then added
    in step order, as floats, exactly as reading each step's at once would."""

    KEYS = ("loss", "kgc", "contrastive")

    def __init__(self, total: float = 0.0, count: int = 0, sums: dict | None = None):
        self.total, self.count = total, count
        self.sums = dict(sums or {"kgc": 0.0, "contrastive": 0.0})
        self.pending: list[tuple[torch.Tensor, int]] = []

    def add(self, losses: dict[str, torch.Tensor], size: int) -> None:
        self.pending.append((torch.stack([losses[k].float() for k in self.KEYS]), size))

    def settle(self) -> None:
        if self.pending:
            values = torch.stack([v for v, _ in self.pending]).tolist()
            for (loss, kgc, contrastive), (_, size) in zip(values, self.pending):
                self.total += loss * size
                self.count += size
                self.sums["kgc"] += kgc * size
                self.sums["contrastive"] += contrastive * size
            self.pending = []


@dataclass
class RunState:
    """Where a run is: what the resume file holds besides the model, optimizer, scheduler and RNGs."""
    epoch: int = 0                          # epochs finished
    best_mrr: float = -1.0
    best_epoch: int = 0
    best_model: dict | None = None          # the state dict of the best valid MRR so far
    best_metrics: dict = field(default_factory=dict)
    evals_since_best: int = 0
    losses: list = field(default_factory=list)   # per epoch: loss, kgc_loss, contrastive_loss, lr
    valid: list = field(default_factory=list)    # per validation: epoch, mrr, hits@k
    position: dict | None = None            # a save inside an epoch: the batch to go on from, sums, generator
    seconds: float = 0.0                    # training time of the whole run so far, every piece of it

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}   # no copies of the tensors


class Trainer:
    """The training loop in named steps: `run` goes epoch by epoch (`run_epoch`), validates every
    `eval_every` epochs (`validate`) and saves the resume state (`save_resume`)."""

    def __init__(self, model: torch.nn.Module, config: TrainParams, train_triples: np.ndarray,
                 valid_triples: np.ndarray, resume_path: str | Path | None = None, run_id: str = "",
                 plots_dir: str | Path | None = None, progress: bool = True, live=None):
        self.model, self.config, self.train_triples = model, config, train_triples
        self.device = pick_device(config.device)
        self.use_amp = use_bf16(config.amp, self.device)
        model.to(self.device)
        if config.memory_budget_gb and not model.config.encoder_chunk and hasattr(model, "set_encoder_chunk"):
            chunk = choose_encoder_chunk(model, config.memory_budget_gb, config.batch_size, config.contrastive_size,
                                         config.mu)
            model.set_encoder_chunk(chunk)
            log.info("train.memory_budget_gb = %g: %s", config.memory_budget_gb,
                     f"entities encoded {chunk} at a time" if chunk else "one encoder pass fits")
        if reuse_memory_if(config.reuse_memory, self.device, getattr(model.config, "encoder_chunk", 0)):
            log.info("train.reuse_memory: freed memory kept for the next step (`reuse_memory: false` returns it)")
        if config.compile:
            model.compile_parts()
        torch.manual_seed(config.seed)
        self.optimizer = adam(model, config.lr)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(self.optimizer, T_0=config.t0,
                                                                              T_mult=config.t_mult)
        self.graphed = None                      # a mygo.fast.graphs.GraphedStep under train.cuda_graph
        if config.cuda_graph:
            from mygo.fast import graphs         # (imports this module)
            why = graphs.unsupported(model, self.device, config.compile)
            if why:
                log.info("train.cuda_graph: eager steps, as %s", why)
            else:
                self.graphed = graphs.GraphedStep(model, self.optimizer, config, self.device, self.use_amp)
        self.select_triples, self.dropped = selection_triples(valid_triples, train_triples)
        log.info("model selection on %d valid triples (%d dropped: in train or duplicated)",
                 len(self.select_triples), self.dropped)
        self.filters = KnownAnswers([train_triples, valid_triples])     # never test: selection must not see it
        self.resume_path = Path(resume_path) if resume_path else None
        self.writer = ResumeWriter()
        self.run_id, self.plots_dir = run_id, plots_dir
        self.live = live if distributed.rank() == 0 else None     # a mygo.live.LiveLog, or None
        self.progress = progress and distributed.rank() == 0
        num_queries = len(train_triples) * (2 if config.directions == "both" else 1)
        self.batches = math.ceil(num_queries / config.batch_size)
        self.state = RunState()
        self.last_save = time.monotonic()
        self.stop_signal: int | None = None     # SIGINT / SIGTERM received: stop after the current step
        self.epoch_seconds: list[float] = []    # this process's epochs, for the ETA
        self.started: float | None = None        # this process's training start (perf_counter)
        self.earlier_seconds = 0.0              # the run's training time before this process
        self.steps_timed = 0

    def restore(self) -> None:
        """Continue from the resume file when it belongs to this run (same `run_id`)."""
        if not (self.resume_path and self.resume_path.exists()):
            return
        saved = load_torch(self.resume_path, "a training resume state", "delete it to start this run from "
                           "scratch (it is rewritten as training goes)", map_location=self.device)
        if saved.get("run_id") != self.run_id:
            log.info("ignoring %s: it belongs to a run with other params or data", self.resume_path)
            return
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        _set_rng_state(saved["rng"], self.device)
        self.state = RunState(**saved["state"])
        log.info("resuming from %s at epoch %d", self.resume_path, self.state.epoch)

    def save_resume(self, position: dict | None = None) -> None:
        """Save everything a resume needs; `position` marks a save in the middle of an epoch."""
        self.last_save = time.monotonic()
        self._clock()
        if self.resume_path is None or distributed.rank() != 0:
            return
        self.writer.write(self.resume_path, {"run_id": self.run_id, "model": self.model.state_dict(),
                                             "optimizer": self.optimizer.state_dict(),
                                             "scheduler": self.scheduler.state_dict(), "rng": _rng_state(self.device),
                                             "state": {**self.state.as_dict(), "position": position}})

    def _clock(self) -> None:
        """The run's training time so far into the state: earlier pieces' and this process's."""
        if self.started is not None:
            self.state.seconds = self.earlier_seconds + time.perf_counter() - self.started

    def write_curves(self) -> None:
        """The history so far: to the DVCLive log, and as loss.csv / valid.csv in `plots_dir`."""
        if self.live is not None:
            self.live.update(self.state)
        if self.plots_dir and distributed.rank() == 0:
            _write_csv(Path(self.plots_dir) / "loss.csv", self.state.losses)
            _write_csv(Path(self.plots_dir) / "valid.csv", self.state.valid)

    def validate(self, epoch: int) -> None:
        """Valid MRR (filtered with train + valid); keeps the best weights."""
        state = self.state
        ranks = compute_ranks(self.model, self.select_triples, self.filters, self.config.eval_batch_size,
                              self.device, progress=False)
        metrics, _ = metrics_from_ranks(ranks)
        row = {"epoch": epoch, "mrr": metrics["mrr"], "hits@1": metrics["hits@1"],
               "hits@3": metrics["hits@3"], "hits@10": metrics["hits@10"]}
        state.valid.append(row)
        if metrics["mrr"] > state.best_mrr:
            state.best_mrr, state.best_epoch, state.evals_since_best, state.best_metrics = metrics["mrr"], epoch, 0, row
            state.best_model = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            state.evals_since_best += 1
        log.info("epoch %d: valid MRR %.4f (best %.4f at epoch %d)", epoch, metrics["mrr"], state.best_mrr,
                 state.best_epoch)

    def run_epoch(self, epoch: int) -> float:
        """One pass over the shuffled training queries (from the saved position when resumed
        inside it); appends the epoch's mean losses and steps the scheduler. Returns the mean loss."""
        config, state = self.config, self.state
        epoch_started = time.perf_counter()
        self.model.train()
        generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        queries = training_queries(self.train_triples, config.directions, generator)
        known, relation, target, predict_head = (t.to(self.device) for t in queries)   # one copy an epoch
        first, sums = 0, EpochSums()
        position, state.position = state.position, None
        if position is not None:            # resumed mid-epoch: same queries, generator where it was
            first = position["batch"]
            sums = EpochSums(position["total"], position["count"], position["sums"])
            generator.set_state(position["generator"].cpu())

        def here(b: int) -> dict:
            sums.settle()
            return {"batch": b + 1, "total": sums.total, "count": sums.count, "sums": dict(sums.sums),
                    "generator": generator.get_state()}
        for b in progress_bar(range(first, self.batches), desc=f"epoch {epoch + 1}", unit="batch", inner=True,
                              initial=first, total=self.batches, enabled=self.progress and self.batches >= 10):
            sl = slice(b * config.batch_size, (b + 1) * config.batch_size)
            batch = (known[sl], relation[sl], predict_head[sl], target[sl])
            step = (self.graphed(batch, generator) if self.graphed is not None else
                    step_losses(self.model, self.optimizer, config, batch, generator, self.device, self.use_amp))
            sums.add(step, len(known[sl]))
            self.steps_timed += 1
            if self.steps_timed == 3:
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)      # the steps done, not only queued
                self._project((time.perf_counter() - epoch_started) / (b + 1 - first), epoch)
            if b + 1 < self.batches and self.stop_signal is not None:
                self.save_resume(here(b))
                self._stop(f"epoch {epoch + 1}, batch {b + 1} of {self.batches}")
            if (config.checkpoint_minutes and b + 1 < self.batches
                    and time.monotonic() - self.last_save >= config.checkpoint_minutes * 60):
                self.save_resume(here(b))
        sums.settle()
        total, count = sums.total, sums.count
        lr = float(self.optimizer.param_groups[0]["lr"])
        self.scheduler.step()
        if self.graphed is not None:
            self.graphed.set_lr()
        # per-epoch means; kgc + contrastive = loss (single process; across ranks, rank 0's share)
        state.losses.append({"epoch": epoch + 1, "loss": total / count, "kgc_loss": sums.sums["kgc"] / count,
                             "contrastive_loss": sums.sums["contrastive"] / count, "lr": lr})
        state.epoch = epoch + 1
        self.epoch_seconds.append(time.perf_counter() - epoch_started)
        mean = sum(self.epoch_seconds) / len(self.epoch_seconds)
        log.info("epoch %d/%d: loss %.4f, lr %.3g, %s (ETA of the run %s)", epoch + 1, config.epochs, total / count,
                 lr, duration(self.epoch_seconds[-1]), duration(mean * (config.epochs - state.epoch)))
        return total / count

    def _project(self, seconds_per_step: float, epoch: int) -> None:
        """One line, after the first steps: what an epoch and the rest of the run will take."""
        per_epoch = seconds_per_step * self.batches
        log.info("first steps: %.3g s/step, %d steps an epoch: about %s an epoch, %s for the %d epochs left "
                 "(validation every %d epochs not included)", seconds_per_step, self.batches, duration(per_epoch),
                 duration(per_epoch * (self.config.epochs - epoch)), self.config.epochs - epoch,
                 self.config.eval_every)

    def _stop(self, where: str) -> None:
        name = signal.Signals(self.stop_signal).name
        log.warning("stopped by %s after %s; the resume state is saved%s", name, where,
                    ": run the same command (or `dvc repro`) to continue" if self.resume_path else "")
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def stop_gracefully(self):
        """SIGINT (Ctrl-C) and SIGTERM stop training after the current step, with the resume state
        saved at that step; a second signal stops at once."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            if self.stop_signal is not None:
                raise KeyboardInterrupt
            self.stop_signal = signum
            log.warning("%s: finishing the current step, then saving the resume state and stopping "
                        "(send it again to stop at once)", signal.Signals(signum).name)

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    def run(self, time_limit: float | None = None) -> dict:
        """Train to `config.epochs` (or early stop, or the first epoch end past `time_limit`
        seconds); the model ends with the best valid weights. Returns the run's summary."""
        with self.stop_gracefully():
            try:
                try:
                    return self._run(time_limit)
                finally:
                    self.writer.wait()         # the resume file whole, however training stops
            except (MemoryError, RuntimeError) as err:
                if not is_out_of_memory(err):
                    raise
                kept = f"; the last resume state ({self.resume_path}) is kept" if self.resume_path else ""
                raise ValueError(f"out of memory in training after epoch {self.state.epoch} "
                                 f"({first_line(err, 160)}): lower train.batch_size (or "
                                 f"train.eval_batch_size), or set train.memory_budget_gb or train.model.encoder_chunk "
                                 f"to encode the entities in bounded chunks{kept}") from None

    def _run(self, time_limit: float | None) -> dict:
        config, state = self.config, self.state
        bar = progress_bar(range(state.epoch, config.epochs), desc="train", unit="epoch", enabled=self.progress,
                           initial=state.epoch, total=config.epochs)
        self.write_curves()             # a resumed run's history first
        if self.graphed is not None:
            self.graphed.set_lr()           # a restored optimizer's rate, as the tensor the graph reads
        self.started = started = time.perf_counter()
        self.earlier_seconds, resumed_from = state.seconds, state.epoch
        stopped = False
        for epoch in bar:
            if config.patience and state.evals_since_best >= config.patience:
                log.info("early stop: no better valid MRR in %d evaluations", config.patience)
                break
            loss = self.run_epoch(epoch)
            if state.epoch % config.eval_every == 0 or state.epoch == config.epochs:
                self.validate(state.epoch)
            bar.set_postfix(loss=f"{loss:.4f}", best_mrr=f"{max(state.best_mrr, 0):.4f}")
            out_of_time = time_limit is not None and time.perf_counter() - started >= time_limit
            stopping = state.epoch < config.epochs and (self.stop_signal is not None or out_of_time)
            if state.epoch % config.checkpoint_every == 0 or state.epoch == config.epochs or stopping:
                self.save_resume()
            self.write_curves()
            if stopping and self.stop_signal is not None:
                self._stop(f"epoch {state.epoch}")
            if stopping:
                stopped = True
                log.info("time limit of %.0f s reached after epoch %d: stopping (the resume state continues the "
                         "run)", time_limit, state.epoch)
                break
        if not stopped and (not state.valid or state.valid[-1]["epoch"] != state.epoch):
            self.validate(state.epoch)
            self.save_resume()
        self.write_curves()
        if state.best_model is not None:
            self.model.load_state_dict(state.best_model)
        self._clock()
        if resumed_from:
            log.info("trained %d epochs in %.1fs (this piece: epochs %d-%d in %.1fs, resumed after epoch %d); best "
                     "valid MRR %.4f at epoch %d", state.epoch, state.seconds, resumed_from + 1, state.epoch,
                     time.perf_counter() - started, resumed_from, state.best_mrr, state.best_epoch)
        else:
            log.info("trained %d epochs in %.1fs; best valid MRR %.4f at epoch %d", state.epoch,
                     time.perf_counter() - started, state.best_mrr, state.best_epoch)
        summary = {"epochs": state.epoch, "best_epoch": state.best_epoch, "valid": state.best_metrics,
                   "valid_triples_used": len(self.select_triples), "valid_triples_dropped": self.dropped,
                   "final_loss": state.losses[-1]["loss"] if state.losses else None,
                   **({"stopped": True} if stopped else {})}
        if self.live is not None:
            self.live.finish(summary)
        return summary


def train(model: torch.nn.Module, config: TrainParams, train_triples: np.ndarray, valid_triples: np.ndarray,
          resume_path: str | Path | None = None, run_id: str = "", plots_dir: str | Path | None = None,
          progress: bool = True, time_limit: float | None = None, live=None) -> dict:
    """Train `model` in place; on return it holds the weights with the best valid MRR.

    With `resume_path`, the full training state is saved there every `checkpoint_every` epochs
    (and every `checkpoint_minutes` inside an epoch), and a state saved by a run with the same
    `run_id` is resumed from, exactly (CPU). With `time_limit` (seconds), training stops at the
    first epoch end past it, after saving the resume state: a run in pieces (a GPU job's time
    window) continues where the last piece stopped. Returns a summary: best epoch, its valid
    metrics, epochs run (and `stopped: True` when the time limit ended the run early). `live`
    (a `mygo.live.LiveLog`) receives the history at every epoch end; `plots_dir` gets it as CSV.
    """
    trainer = Trainer(model, config, train_triples, valid_triples, resume_path, run_id, plots_dir, progress, live)
    trainer.restore()
    return trainer.run(time_limit)
