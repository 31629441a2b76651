"""Which device a stage runs on: `auto` takes CUDA when present (under torchrun, the rank's own
GPU, set by mygo.distributed.init_from_env)."""
from __future__ import annotations

import torch


def pick_device(name: str) -> torch.device:
    if name == "auto" and torch.cuda.is_available() and torch.distributed.is_available() \
            and torch.distributed.is_initialized():
        return torch.device("cuda", torch.cuda.current_device())
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device is {name!r} but CUDA is not available")
    return torch.device(name)
