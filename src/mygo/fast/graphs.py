"""A training step replayed as one CUDA graph (`train.cuda_graph`).

On a GPU, a step of this model is several hundred small kernels, and launching them one by one
from Python costs more than running them (docs/benchmarks.md, "GPU"). Captured once as a CUDA
graph, every later step is one launch: its inputs are copied into fixed tensors, the graph is
replayed, and its losses are read from fixed tensors.

What capture needs, and how the step provides it:

- fixed shapes: full batches are replayed; the epoch's last, partial batch (and any batch of
  another size) runs as the eager step (mygo.training.step_losses), on the same parameters and
  optimizer state. The encoded slots are decided once for the whole graph
  (CrossModalEntityEncoder.fix_slots), not per batch.
- nothing read back from the device inside the step: the contrastive loss's entities are drawn
  on the CPU from the step's generator before the replay (the same draw as the eager step) and
  copied in; its InfoNCE terms weight invalid rows out instead of selecting them
  (mygo.model.info_nce_terms); the losses stay on the device.
- the optimizer inside the graph: Adam is fused and capturable (its step count on the device),
  and its learning rate is a tensor the graph reads, refilled after each scheduler step
  (`set_lr`).
- bf16 autocast without its weight cache, which would keep casts made during capture.

A few eager steps run first (on a side stream, as CUDA graphs require), then the step is captured
and replayed from then on. Where capture is not possible (not CUDA, several processes, a chunked
encoder, a compiled model) or fails, the step stays eager and the log says why; training goes on.
Dropout draws from the CUDA generator's graph-safe stream, so a graphed run is another random
stream than an eager one (the same distribution).
"""
from __future__ import annotations

import logging

import torch

from mygo import distributed
from mygo.model import contrastive_sample
from mygo.training import step_losses

log = logging.getLogger(__name__)

WARMUP_STEPS = 3


def unsupported(model: torch.nn.Module, device: torch.device, compiled: bool = False) -> str | None:
    """Why a training step cannot be captured here, or None when it can."""
    if device.type != "cuda":
        return f"the device is {device.type}, not CUDA"
    if distributed.active():
        return "training runs in several processes"
    if getattr(model.config, "encoder_chunk", 0):
        return "the entity encoder runs in checkpointed chunks (train.model.encoder_chunk)"
    if compiled:
        return "the model is compiled (train.compile)"
    return None


class GraphedStep:
    """mygo.training.step_losses for batches of `batch_size` queries, captured as a CUDA graph
    after WARMUP_STEPS eager steps and replayed; other batches run step_losses itself. Call it
    like step_losses (batch, generator); it returns the step's losses as 0-dim device tensors.

    `capture=False` replays by running the same static-input step eagerly (what the tests check on
    a CPU: the fixed inputs, the drawn sample, the learning rate and the partial batch)."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, config, device: torch.device,
                 use_amp: bool, capture: bool = True):
        self.model, self.optimizer, self.config, self.device = model, optimizer, config, device
        self.use_amp, self.capture = use_amp, capture
        self.batch_size = config.batch_size
        B = self.batch_size
        self.inputs = tuple(torch.zeros(B, dtype=dtype, device=device)       # known, relation, predict_head, target
                            for dtype in (torch.long, torch.long, torch.bool, torch.long))
        N = model.config.num_entities
        self.contrastive = config.mu > 0 and hasattr(model, "contrastive_loss")
        self.sample = torch.zeros(min(config.contrastive_size, N), dtype=torch.long, device=device)
        if hasattr(getattr(model, "entity_encoder", None), "fix_slots"):
            model.entity_encoder.fix_slots()
        self.lr = torch.tensor(float(optimizer.param_groups[0]["lr"]), device=device)
        self.set_lr()
        if capture:
            for group in optimizer.param_groups:
                group["capturable"] = True           # fused Adam's step count and rate read on the device
        # one side stream for the warm-up steps and the capture: the BLAS handles and workspaces the
        # capture uses are made in the warm-ups, outside it
        self.stream = torch.cuda.Stream(device) if capture else None
        self.graph: torch.cuda.CUDAGraph | None = None
        self.outputs: dict[str, torch.Tensor] | None = None
        self.eager_steps = 0
        self.failed: str | None = None

    def set_lr(self) -> None:
        """The optimizer's learning rate as the tensor the graph reads: call after each scheduler
        step (torch's schedulers fill a tensor rate in place or replace it with a float)."""
        for group in self.optimizer.param_groups:
            value = group["lr"]
            self.lr.fill_(float(value))
            group["lr"] = self.lr

    def _static_step(self) -> dict[str, torch.Tensor]:
        """step_losses on the fixed inputs with the drawn sample, autocast without its weight cache."""
        return step_losses(self.model, self.optimizer, self.config, self.inputs, None, self.device, self.use_amp,
                           sample=self.sample if self.contrastive else None, autocast_cache=False)

    def __call__(self, batch: tuple, generator: torch.Generator) -> dict[str, torch.Tensor]:
        known = batch[0]
        if len(known) != self.batch_size or self.failed:
            return step_losses(self.model, self.optimizer, self.config, batch, generator, self.device, self.use_amp)
        for fixed, value in zip(self.inputs, batch):
            fixed.copy_(value, non_blocking=True)
        if self.contrastive:        # the eager step's draw, from the same generator
            self.sample.copy_(contrastive_sample(self.model.config.num_entities, self.config.contrastive_size,
                                                 generator), non_blocking=True)
        if not self.capture:
            return self._static_step()
        if self.eager_steps < WARMUP_STEPS:
            return self._warmup()
        if self.graph is None:
            try:
                self._capture()
            except Exception as err:          # noqa: BLE001  (any capture error: go on eagerly)
                self.failed = f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0][:300]}"
                self.graph = None
                log.warning("train.cuda_graph: the step could not be captured (%s); training goes on with "
                            "eager steps", self.failed)
                torch.cuda.synchronize(self.device)
                return self._static_step()
        self.graph.replay()
        return {k: v.clone() for k, v in self.outputs.items()}     # the next replay overwrites them

    def _warmup(self) -> dict[str, torch.Tensor]:
        """An eager step on a side stream: what CUDA graphs want before capture (workspaces,
        optimizer state and autograd's streams set up outside it)."""
        stream = self.stream
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            out = self._static_step()
        torch.cuda.current_stream(self.device).wait_stream(stream)
        self.eager_steps += 1
        return out

    def _capture(self) -> None:
        """Record the step once (nothing runs while recording: the caller replays it)."""
        self.set_lr()                      # the rate the graph reads: this tensor, whatever replaced it
        torch.cuda.synchronize(self.device)
        # step_losses sets the gradients to None inside: the graph's backward allocates and writes them
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=self.stream):
            outputs = self._static_step()
        self.graph, self.outputs = graph, outputs
        log.info("train.cuda_graph: the training step is captured as one CUDA graph (batches of %d; other "
                 "sizes run eagerly)", self.batch_size)


__all__ = ["GraphedStep", "unsupported", "WARMUP_STEPS"]
