"""Dropout masks from a counter: stored nowhere, computed where they are used.

Entry i of the mask with stream `seed` is kept when the 16-bit number

    u(i) = lane i mod 4 (bits 16 (i mod 4) ... 16 (i mod 4) + 15) of splitmix64(seed + (i // 4 + 1) * GAMMA)

is below the threshold round((1 - p) 2^16): Bernoulli(1 - p') with p' = p rounded to a multiple of
2^-16, as mygo.fast.dropout.keep_mask draws, but any entry can be computed on its own. So the
forward pass masks a tensor in place in one pass (no random tensor, no comparison tensor, no float
mask), backward recomputes the mask instead of keeping it, and two threads split a tensor between
them with the same result as one. splitmix64 over a counter is the generator Java's
SplittableRandom uses; a stream's seed is one draw from torch's default generator, so a run
seeded with torch.manual_seed is reproducible.

The loops are C (counter_masks.c), compiled with the system's C compiler on first use into
$MYGO_CACHE (default ~/.cache/mygo) and loaded with ctypes, which releases the GIL, so the
threads run in parallel. Where no compiler is found (or MYGO_NATIVE_KERNELS=0), the same numbers
are computed with torch operations: the same masks and results, only slower (a warning says so).
Each operation defines its arithmetic as "x times a 0 / 1 float mask", in float for bf16 and
rounded once, and the C and torch versions are tested bit-equal.
"""
from __future__ import annotations

import ctypes
import dataclasses
import functools
import hashlib
import logging
import math
import os
import platform
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

log = logging.getLogger(__name__)

GAMMA = 0x9E3779B97F4A7C15
MIX = (0xBF58476D1CE4E5B9, 0x94D049BB133111EB)
SOURCE = Path(__file__).with_name("counter_masks.c")
# entries: a smaller tensor in one call on this thread (on a 2-core machine waking a worker
# thread cost about as much as masking a million entries)
PARALLEL_FROM = 1 << 20


def keep_threshold(p: float) -> int:
    """round((1 - p) 2^16): an entry whose uniform 16-bit number is below it is kept (both mask kinds)."""
    return round((1.0 - p) * 2**16)


@dataclasses.dataclass(frozen=True)
class Counter:
    """A mask: its stream and threshold (keep u(i) < threshold; 2^16 keeps everything)."""

    seed: int
    threshold: int

    @classmethod
    def draw(cls, p: float) -> "Counter":
        """A fresh mask for dropout p, its seed drawn from torch's default CPU generator."""
        return cls(int(torch.randint(0, 2**63 - 1, (1,), dtype=torch.int64)), keep_threshold(p))


# ---------------------------------------------------------------------------- the C library


def cache_dir() -> Path:
    root = os.environ.get("MYGO_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mygo"
    return Path(root) / "kernels"


def _cpu_identity() -> str:
    """What -march=native compiles for: the CPU's model and flags (Linux), else the platform."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return "\n".join(sorted({ln for ln in lines if ln.startswith(("model name", "flags", "Features"))}))
    except OSError:
        return platform.processor() or platform.machine()


def build(directory: Path | None = None) -> Path:
    """Compile counter_masks.c (once per source, compiler, flags and CPU) and return the library's
    path; raises OSError / subprocess.CalledProcessError / subprocess.TimeoutExpired when it cannot.

    MYGO_KERNEL_MARCH (set by the pinned mode, mygo.reproducible) compiles for that fixed
    instruction set instead of this CPU's own (-march=native)."""
    cc = os.environ.get("CC", "cc")
    source = SOURCE.read_bytes()
    directory = cache_dir() if directory is None else directory
    errors = []
    # fp-contract off: a * b + c rounded twice, as torch's separate multiply and add round it;
    # 512-bit vectors where the CPU has them (the mask's 64-bit products run ~15 % faster)
    march = os.environ.get("MYGO_KERNEL_MARCH")
    native = ["-O3", "-march=native", "-ffp-contract=off"]
    candidates = ([["-O3", f"-march={march}", "-mtune=generic", "-ffp-contract=off"]] if march
                  else [native + ["-mprefer-vector-width=512"], native])
    for flags in (*candidates, ["-O3", "-ffp-contract=off"]):
        key = hashlib.sha256(b"\0".join([source, cc.encode(), " ".join(flags).encode(),
                                         _cpu_identity().encode()])).hexdigest()[:16]
        target = directory / f"counter_masks-{key}.so"
        if target.exists():
            return target
        directory.mkdir(parents=True, exist_ok=True)
        partial = directory / f".{target.name}.{os.getpid()}.{threading.get_ident()}.partial"
        try:
            started = time.monotonic()
            subprocess.run([cc, *flags, "-shared", "-fPIC", "-o", str(partial), str(SOURCE)],
                           check=True, capture_output=True, text=True, timeout=300)
            os.replace(partial, target)                     # whole or not at all, even with racing builds
            log.info("dropout masks: compiled %s with %s %s in %.1f s", target, cc, " ".join(flags),
                     time.monotonic() - started)
            return target
        except subprocess.CalledProcessError as error:
            errors.append(f"{cc} {' '.join(flags)}: {error.stderr.strip()[-500:]}")
        finally:
            partial.unlink(missing_ok=True)
    raise OSError("; ".join(errors))


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled kernels, or None (torch operations instead) with a warning saying why."""
    if os.environ.get("MYGO_NATIVE_KERNELS", "1") == "0":
        return None
    try:
        lib = ctypes.CDLL(str(build()))
    except (OSError, subprocess.SubprocessError) as error:
        log.warning("dropout masks: the C kernels could not be built or loaded (%s); computing the same "
                    "masks with torch operations, which is slower", error)
        return None
    p, i64, u64, u32, f32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_float
    signatures = {"keep_u8": [p, i64, i64, u64, u32, ctypes.c_int]}
    for dtype in ("f32", "bf16"):
        signatures.update({f"mask_{dtype}": [p, i64, i64, u64, u32], f"relu_mask_{dtype}": [p, i64, i64, u64, u32],
                           f"scale_mask_{dtype}": [p, p, i64, i64, u64, u32, f32],
                           f"outer_mask_{dtype}": [p, p, p, i64, i64, i64, i64, u64, u32]})
    signatures.update(relu_grad_f32=[p, p, p, i64, i64], relu_grad_bf16=[p, p, p, i64, i64])
    signatures["gather_mask_bias_f32"] = [p, p, p, p, i64, i64, i64, i64, i64, i64, u64, u32, f32]
    signatures["scatter_mask_f32"] = [p, p, p, p, i64, i64, i64, i64, i64, i64, i64, u64, u32, f32]
    for name, argtypes in signatures.items():
        function = getattr(lib, name)
        function.argtypes, function.restype = argtypes, None
    return lib


_pool: tuple[int, int, ThreadPoolExecutor] | None = None


def _executor(threads: int) -> ThreadPoolExecutor:
    """A thread pool of `threads` workers for this process (a forked child makes its own)."""
    global _pool
    if _pool is None or _pool[:2] != (os.getpid(), threads):
        _pool = (os.getpid(), threads, ThreadPoolExecutor(threads, thread_name_prefix="mygo-masks"))
    return _pool[2]


def _split(n: int, per_item: int, call) -> None:
    """call(start, end) over [0, n) in torch.get_num_threads() pieces (items of `per_item` entries),
    this thread taking the first."""
    threads = max(1, min(torch.get_num_threads(), n))
    if threads == 1 or n * per_item < PARALLEL_FROM:
        call(0, n)
        return
    bounds = [n * k // threads // 4 * 4 if per_item == 1 else n * k // threads for k in range(threads)] + [n]
    pieces = [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]
    futures = [_executor(threads - 1).submit(call, a, b) for a, b in pieces[1:]]
    call(*pieces[0])                                         # this thread takes the first piece
    for future in futures:
        future.result()


def _native(*tensors: torch.Tensor):
    """The library where every tensor suits it (CPU, contiguous, float32 or bfloat16), else None."""
    if all(t.device.type == "cpu" and t.is_contiguous() and t.dtype in (torch.float32, torch.bfloat16)
           for t in tensors):
        return library()
    return None


def _suffix(t: torch.Tensor) -> str:
    return "f32" if t.dtype == torch.float32 else "bf16"


# ---------------------------------------------------------------------------- torch's version


def _signed(v: int) -> int:
    return v - 2**64 if v >= 2**63 else v


def lanes(seed: int, start: int, end: int) -> torch.Tensor:
    """u(i) - 2^15 for i in [start, end) as int16 (so that int16 order is u's order), with torch
    operations: int64 products wrap around as the C's uint64 ones do."""
    g0, g1 = start // 4, -(-end // 4)
    z = torch.arange(g0 + 1, g1 + 1, dtype=torch.int64).mul_(_signed(GAMMA)).add_(_signed(seed))
    for shift, factor in ((30, MIX[0]), (27, MIX[1]), (31, None)):
        z.bitwise_xor_(z.bitwise_right_shift(shift).bitwise_and_((1 << (64 - shift)) - 1))   # logical shift
        if factor is not None:
            z.mul_(_signed(factor))
    return z.view(torch.int16)[start - 4 * g0:end - 4 * g0].bitwise_xor(-2**15)


def _keep_torch(n: int, mask: Counter) -> torch.Tensor:
    if mask.threshold >= 2**16:
        return torch.ones(n, dtype=torch.bool)
    return lanes(mask.seed, 0, n) < mask.threshold - 2**15


# ---------------------------------------------------------------------------- the operations


def keep(shape: torch.Size | tuple, mask: Counter, dropped: bool = False) -> torch.Tensor:
    """The mask as a bool tensor of `shape` (True = kept; True = dropped with `dropped`)."""
    n = int(torch.Size(shape).numel())
    lib = library()
    if lib is None:
        out = _keep_torch(n, mask)
        return (~out if dropped else out).view(shape)
    out = torch.empty(n, dtype=torch.uint8)
    _split(n, 1, lambda a, b: lib.keep_u8(out.data_ptr(), a, b, mask.seed, mask.threshold, int(dropped)))
    return out.view(torch.bool).view(shape)


def mask_(x: torch.Tensor, mask: Counter, relu: bool = False) -> torch.Tensor:
    """x times the 0 / 1 mask in place (relu(x) times it with `relu`); returns x."""
    lib = _native(x)
    if lib is None:
        if relu:
            x.relu_()
        return x.mul_(_keep_torch(x.numel(), mask).view(x.shape).to(x.dtype))
    fn = getattr(lib, f"{'relu_' if relu else ''}mask_{_suffix(x)}")
    _split(x.numel(), 1, lambda a, b: fn(x.data_ptr(), a, b, mask.seed, mask.threshold))
    return x


def scaled(x: torch.Tensor, mask: Counter, scale: float) -> torch.Tensor:
    """x times (scale times the 0 / 1 mask), a new tensor; for bf16 computed in float, rounded once."""
    x = x.contiguous()
    lib = _native(x)
    if lib is None:
        factor = _keep_torch(x.numel(), mask).view(x.shape).to(torch.float32).mul_(scale)
        return (x.float() * factor).to(x.dtype) if x.dtype == torch.bfloat16 else x * factor.to(x.dtype)
    out = torch.empty_like(x)
    fn = getattr(lib, f"scale_mask_{_suffix(x)}")
    _split(x.numel(), 1, lambda a, b: fn(x.data_ptr(), out.data_ptr(), a, b, mask.seed, mask.threshold, scale))
    return out


def outer(a: torch.Tensor, c: torch.Tensor, mask: Counter) -> torch.Tensor:
    """(a_b c_b^T) times the 0 / 1 mask for each row b: a (B, d1), c (B, d2) of one dtype -> (B, d1, d2)
    (for bf16 each product rounded once, as a bf16 multiply does)."""
    a, c = a.contiguous(), c.contiguous()
    (B, d1), d2 = a.shape, c.shape[1]
    lib = _native(a, c)
    if lib is None:
        return (a.unsqueeze(2) * c.unsqueeze(1)).mul_(_keep_torch(B * d1 * d2, mask).view(B, d1, d2).to(a.dtype))
    out = torch.empty(B, d1, d2, dtype=a.dtype)
    fn = getattr(lib, f"outer_mask_{_suffix(a)}")
    _split(B, d1 * d2, lambda s, e: fn(a.data_ptr(), c.data_ptr(), out.data_ptr(), s, e, d1, d2, mask.seed,
                                       mask.threshold))
    return out


def relu_grad(grad: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """grad times (y > 0) as a 0 / 1 float, a new tensor: the backward of y = relu(h) times a mask,
    from y alone (grad * y.sign() for y >= 0, in one pass)."""
    grad, y = grad.contiguous(), y.contiguous()
    lib = _native(grad, y) if grad.dtype == y.dtype else None
    if lib is None:
        return grad * y.sign()
    out = torch.empty_like(grad)
    fn = getattr(lib, f"relu_grad_{_suffix(grad)}")
    _split(grad.numel(), 1, lambda a, b: fn(grad.data_ptr(), y.data_ptr(), out.data_ptr(), a, b))
    return out


def _ids(ids: torch.Tensor) -> bool:
    """Whether the C loops can read `ids` as they are: contiguous int64 on the CPU."""
    return ids.device.type == "cpu" and ids.dtype == torch.int64 and ids.is_contiguous()


def _factor(shape: tuple, mask: Counter, scale: float) -> torch.Tensor:
    """The mask as 0 / `scale` float32 entries of `shape`."""
    return _keep_torch(math.prod(shape), mask).view(shape).to(torch.float32).mul_(scale)


def gather_into(out: torch.Tensor, offset: int, rows: torch.Tensor, ids: torch.Tensor, bias: torch.Tensor,
                mask: Counter, scale: float) -> None:
    """out[:, offset:offset + k] = rows[ids] times (scale times the 0 / 1 mask) plus bias, in one
    pass: out (E, L, d), rows (V, d), ids (E, k) long, bias (k, d), all float32 but ids; the mask's
    entry (e k + j) d + c is token (e, j)'s c-th (as a dropout of rows[ids] (E, k, d) draws it)."""
    (E, L, d), k = out.shape, ids.shape[1]
    lib = _native(out, rows, bias) if out.dtype == rows.dtype == bias.dtype == torch.float32 and _ids(ids) else None
    if lib is None:
        tokens = rows.index_select(0, ids.reshape(-1)).view(E, k, d)
        torch.add(tokens * _factor((E, k, d), mask, scale), bias, out=out[:, offset:offset + k])
        return
    _split(E, k * d, lambda a, b: lib.gather_mask_bias_f32(rows.data_ptr(), ids.data_ptr(), bias.data_ptr(),
                                                           out.data_ptr(), a, b, k, d, L, offset, mask.seed,
                                                           mask.threshold, scale))


def scatter_from(grad: torch.Tensor, offset: int, ids: torch.Tensor, num_rows: int, mask: Counter,
                 scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """gather_into's backward: grad (E, L, d), the sequence's gradient -> the rows' gradient
    (num_rows, d), each token's masked and scaled gradient added into its row in token order, and
    the bias's (k, d), the gradient summed over the entities (in double)."""
    grad = grad.contiguous()
    (E, L, d), k = grad.shape, ids.shape[1]
    lib = _native(grad) if grad.dtype == torch.float32 and _ids(ids) else None
    if lib is None:
        part = grad[:, offset:offset + k]
        rows = grad.new_zeros(num_rows, d).index_add_(0, ids.reshape(-1),
                                                      (part * _factor((E, k, d), mask, scale)).reshape(-1, d))
        return rows, part.double().sum(0).to(grad.dtype)
    # Threads take ranges of rows (each reads every id, and the gradients of its rows' tokens), so
    # each row's sum runs in token order whatever the threads; the bias's sums are added up after.
    threads = max(1, min(torch.get_num_threads(), num_rows))
    if E * k * d < PARALLEL_FROM:
        threads = 1
    bounds = [num_rows * t // threads for t in range(threads + 1)]
    rows = grad.new_zeros(num_rows, d)
    sums = [torch.zeros(k, d, dtype=torch.float64) for _ in range(threads)]

    def piece(t: int) -> None:
        lib.scatter_mask_f32(grad.data_ptr(), ids.data_ptr(), rows.data_ptr(), sums[t].data_ptr(), bounds[t],
                             bounds[t + 1], E, k, d, L, offset, mask.seed, mask.threshold, scale)
    futures = [_executor(threads - 1).submit(piece, t) for t in range(1, threads)]
    piece(0)
    for future in futures:
        future.result()
    return rows, functools.reduce(torch.add, sums).to(grad.dtype)


__all__ = ["Counter", "keep_threshold", "keep", "mask_", "scaled", "outer", "gather_into", "scatter_from", "relu_grad",
           "lanes", "library", "build", "cache_dir"]
