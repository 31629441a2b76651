"""Byte-reproducible CPU arithmetic: the same params give the same bytes on any x86-64 CPU with AVX2.

What makes a CPU's floating-point results differ from another's, and a training run amplifies
the last-bit differences into different weights and metrics:

- torch picks its vectorised kernels by the CPU (AVX2 or AVX-512 code paths);
- MKL picks its BLAS code path by the CPU's vendor and instruction set, and honours a request
  for an instruction set's path (MKL_CBWR=AVX2) on Intel processors only: on an AMD EPYC it runs
  its AUTO path instead (read back from MKL, `mkl_branch`); its COMPATIBLE path is the one it
  runs alike on both vendors;
- MKL's vector maths (VML), through which torch computes sqrt, exp, log, tanh and the other
  functions of tests/vendor_ops.py's VML_OPS on float CPU tensors, ignores MKL_CBWR altogether
  and rounds differently on Intel and on AMD: no environment pins it, so no training or
  evaluation operation may use it (Adam is torch's fused update, whose square root is the CPU's
  exact instruction; tests/test_vendor_ops.py checks the operations both run);
- oneDNN picks its kernels by the instruction set;
- the project's C kernels (mygo.fast.counter) are compiled for the CPU at hand;
- reductions split their work by the intra-op thread count, which follows the core count.

The pinned mode (param `reproducible: true`, the default) fixes the environment before torch
loads: AVX2 kernels, MKL's conditional numerical reproducibility on its COMPATIBLE path (strict:
SSE2 without the approximate reciprocal instructions, whose results differ between vendors),
oneDNN capped at AVX2, the C kernels compiled for x86-64-v3 (MYGO_KERNEL_MARCH) instead of
-march=native, and one intra-op thread, whatever the machine and the user's shell say. It is a
property of the environment only: the model, training and checkpoint code build the same
operations in both modes. `reproducible: false` lets each machine use its fastest kernels and
all its cores (docs/reproducibility.md has the measured cost). CUDA arithmetic is not affected by
either mode.

`apply()` must run before torch is imported: the stage commands (`mygo.cli`) call it right after
parsing their arguments.

In both modes denormal floats (magnitudes below 1.2e-38) are flushed to zero on the CPU
(`flush_denormals`): a softmax over thousands of entities gives gradients that small, and a
matrix product whose worker threads meet them runs up to 100x slower (a DB15K step: 15.3 s ->
11.5 s, docs/benchmarks.md). Worker threads inherit the setting only when it is made before
torch starts its thread pool, so it is made right after torch loads. MYGO_KEEP_DENORMALS=1 keeps
them (IEEE gradual underflow, as torch's default).
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("mygo.reproducible")

THREADS = 1
PINNED_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",          # torch's kernels
    "MKL_CBWR": "COMPATIBLE,STRICT",        # MKL's BLAS code path, the same on Intel and AMD
    "ONEDNN_MAX_CPU_ISA": "AVX2",           # oneDNN's kernels
    "DNNL_MAX_CPU_ISA": "AVX2",             # the same for older oneDNN builds
    "OMP_NUM_THREADS": str(THREADS),        # intra-op threads
    "MKL_NUM_THREADS": str(THREADS),
}
CAPABILITY = "AVX2"
MKL_BRANCH = PINNED_ENV["MKL_CBWR"].split(",")[0]     # the branch the pin asks MKL for
_MKL_BRANCHES = {2: "AUTO", 3: "COMPATIBLE"}        # mkl.h's MKL_CBWR_AUTO, MKL_CBWR_COMPATIBLE


def wanted(params_path: str | Path) -> bool:
    """The `reproducible` param of a params file; True when the file or the key is missing or
    unreadable (the params check reports those with the file and line)."""
    try:
        import yaml
        raw = yaml.safe_load(Path(params_path).read_text(encoding="utf-8-sig"))
    except Exception:        # unreadable or not YAML: the params check names the problem
        return True
    value = raw.get("reproducible", True) if isinstance(raw, dict) else True
    return value is not False


def apply(enabled: bool) -> dict[str, str]:
    """Pin (or, when disabled, leave alone) the CPU arithmetic of this process and its children.

    Returns the environment it set. Called after torch was imported, it still takes effect for
    the kernels and threads (torch reads them lazily) but MKL may already have chosen its path:
    call it first."""
    if not enabled:
        os.environ["MYGO_REPRODUCIBLE"] = "0"
        return {}
    os.environ.update(PINNED_ENV)
    os.environ["MYGO_REPRODUCIBLE"] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(THREADS)
    return dict(PINNED_ENV)


def pinned() -> bool:
    """Whether this process runs in the pinned mode (`apply(True)` ran here or in a parent)."""
    return os.environ.get("MYGO_REPRODUCIBLE") == "1"


def flush_denormals() -> bool:
    """Flush denormals to zero (FTZ and DAZ) in this thread and in the threads torch starts later;
    call it before torch's first parallel operation. False where the CPU cannot, or when
    MYGO_KEEP_DENORMALS=1."""
    import torch
    if os.environ.get("MYGO_KEEP_DENORMALS") == "1":
        return False
    return bool(torch.set_flush_denormal(True))


def mkl_branch() -> str | None:
    """The code branch MKL runs in this process (its CNR setting read back: 'AUTO', 'COMPATIBLE'
    or 'branch N'); None where torch carries no MKL."""
    import ctypes

    import torch
    try:
        get = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so")).mkl_serv_cbwr_get
    except (OSError, AttributeError):
        return None
    get.restype, get.argtypes = ctypes.c_int, [ctypes.c_int]
    value = get(1)                                  # MKL_CBWR_BRANCH: the branch alone
    return _MKL_BRANCHES.get(value, f"branch {value}")


def check() -> str:
    """After torch loaded: flush denormals (`flush_denormals`), log the mode in one line; warn when
    the pinned kernels are not the ones in use (a CPU without AVX2 cannot give the committed
    bytes). Returns torch's CPU capability."""
    import torch
    flush_denormals()
    capability = torch.backends.cpu.get_cpu_capability()
    if os.environ.get("MYGO_REPRODUCIBLE") == "0":
        log.info("reproducible: false: this CPU's fastest kernels (%s), %d threads; results differ "
                 "between CPU kinds", capability, torch.get_num_threads())
        return capability
    if pinned():
        torch.set_num_threads(THREADS)
        branch = mkl_branch()
        if capability != CAPABILITY:
            log.warning("reproducible: true, but torch runs %s kernels here, not %s: results will not match "
                        "other machines' bytes", capability, CAPABILITY)
        elif branch not in (None, MKL_BRANCH):
            log.warning("reproducible: true, but MKL runs its %s path here, not %s: results will not match "
                        "other machines' bytes", branch, MKL_BRANCH)
        else:
            log.info("reproducible: true: %s kernels, MKL CBWR %s, %d thread (`reproducible: false` for speed)",
                     capability, PINNED_ENV["MKL_CBWR"], THREADS)
    return capability
