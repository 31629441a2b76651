"""Which device a stage runs on, and whether it computes in bf16.

`auto` takes CUDA when present (under torchrun, the rank's own GPU, set by
mygo.distributed.init_from_env). bf16 autocast (`train.amp`, `evaluate.amp`) runs on CUDA and
on CPUs that compute bf16 natively (AVX512-BF16 or AMX) when torch's kernels reach those units:
under AVX2 kernels (what the pinned mode, `reproducible: true`, sets) bf16 is emulated and
slower than float32, so those runs stay in float32.
"""
from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)


def pick_device(name: str) -> torch.device:
    if name == "auto" and torch.cuda.is_available() and torch.distributed.is_available() \
            and torch.distributed.is_initialized():
        return torch.device("cuda", torch.cuda.current_device())
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device is {name!r} but CUDA is not available")
    device = torch.device(name)
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ValueError(f"device is {name!r} but this machine has {count} CUDA device{'s' if count != 1 else ''} "
                         f"(cuda:0{f' to cuda:{count - 1}' if count > 1 else ''})")
    return device


def cpu_bf16_units() -> str | None:
    """The CPU's native bf16 instructions ('AMX' or 'AVX512-BF16'), or None."""
    probes = (("AMX", "_is_amx_tile_supported"), ("AVX512-BF16", "_is_avx512_bf16_supported"))
    for label, probe in probes:
        check = getattr(torch.cpu, probe, None)
        if check is not None and check():
            return label
    return None


def kernel_capability() -> str:
    """The instruction set of torch's CPU kernels in this process ('AVX2' under the pinned mode)."""
    return torch.backends.cpu.get_cpu_capability()


def use_bf16(requested: bool, device: torch.device, what: str = "train.amp") -> bool:
    """Whether `what` (an amp param set to `requested`) runs under bf16 autocast on `device`;
    logs the decision on CPU."""
    if not requested:
        return False
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    units = cpu_bf16_units()
    capability = kernel_capability()
    if units is not None and not capability.startswith("AVX512"):
        log.info("%s: float32 (torch runs %s kernels here, which emulate bf16; reproducible: true pins "
                 "them, `reproducible: false` allows bf16 on this CPU's %s)", what, capability, units)
        return False
    if units is None:
        log.info("%s: float32 (this CPU has no native bf16 instructions)", what)
        return False
    log.info("%s: bf16 autocast on this CPU's %s", what, units)
    return True
