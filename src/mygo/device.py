"""Which device a stage runs on: `auto` takes CUDA when present."""
from __future__ import annotations

import torch

from mygo import distributed


def pick_device(name: str) -> torch.device:
    if name == "auto" and torch.cuda.is_available() and distributed.active():
        return torch.device("cuda", torch.cuda.current_device())
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device is {name!r} but CUDA is not available")
    return torch.device(name)
