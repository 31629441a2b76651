"""The operations the pinned mode computes with, on fixed inputs, each output hashed: the
early warning of a CPU vendor's bytes differing (tests/test_vendor_ops.py).

    python tests/vendor_ops.py            print {case: md5} as JSON, in the pinned mode
    python tests/vendor_ops.py --write    (re)write tests/golden/vendor_ops.json

Each case is one kind of operation at the shapes of the demo's training and of a DB15K step:
matrix products in the three layouts a forward and backward pass take (A B, A B^T, A^T B),
batched products, softmax and log-softmax with their backwards, scaled dot-product attention,
layer and batch norm with their backwards, ReLU, sums, norms, cross-entropy, scatter-adds, the
fused Adam update, gradient clipping and the project's C kernels (counter dropout masks,
the token gather and scatter, the masked outer products). It does not change when the model
does. The inputs are integers scaled by powers of two, drawn from torch's integer generator, so
they are the same bytes on every machine before any arithmetic runs.

What the pinned mode must never call is listed in VML_OPS: torch computes those elementwise
functions with MKL's vector maths (VML), which ignores MKL_CBWR and rounds differently on Intel
and on AMD processors (a float32 `sqrt` in Adam's per-operation update was the first operation
to differ between the two). tests/test_vendor_ops.py checks that training and evaluation call
none of them and nothing this file does not cover.
"""
from __future__ import annotations

import sys
from pathlib import Path

from mygo import reproducible

reproducible.apply(True)

import ctypes  # noqa: E402
import hashlib  # noqa: E402  (after the pin, like every stage)
import json  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

GOLDEN = Path(__file__).parent / "golden" / "vendor_ops.json"

# aten operations torch routes through MKL's VML for float32 / float64 CPU tensors
# (ATen/cpu/vml.h, IMPLEMENT_VML_MKL): vendor-dependent whatever MKL_CBWR says
VML_OPS = ("acos", "asin", "atan", "cos", "erf", "erfc", "erfinv", "exp", "log", "log10", "log2", "sin", "sqrt",
           "tan", "tanh", "trunc")

# (M, K, N) of the products: the demo's (dim 32, 650 entities, batch 128, 7168 sequence rows)
# and a DB15K step's (dim 256, hidden 1024, 12,842 entities)
DEMO_PRODUCTS = [(128, 32, 650), (128, 650, 32), (32, 7168, 32), (7168, 32, 96), (115, 384, 32), (1024, 128, 32),
                 (650, 64, 32), (42, 64, 32)]
DB15K_PRODUCTS = [(2048, 256, 12842), (2048, 12842, 256), (12842, 256, 768), (4096, 1024, 256), (256, 4096, 1024),
                  (30523, 384, 256)]
DEMO_BATCHED = [(650, 2, 14, 32), (1024, 14, 16, 14), (1024, 14, 14, 16), (2, 650, 16, 32), (256, 3, 16, 3)]
DB15K_BATCHED = [(2048, 1, 256, 256), (12842, 2, 14, 128), (4096, 14, 128, 14)]


def draw(*shape: int, seed: int, bits: int = 12) -> torch.Tensor:
    """Integers in [-2^bits, 2^bits) scaled to [-1, 1): exact float32 values from an integer draw."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-2**bits, 2**bits, shape, generator=g).to(torch.float32) * 2.0**-bits


def products() -> dict:
    cases = {}
    for group, shapes in (("demo", DEMO_PRODUCTS), ("db15k", DB15K_PRODUCTS)):
        for i, (m, k, n) in enumerate(shapes):
            a, b, bias = draw(m, k, seed=10 + i), draw(k, n, seed=20 + i), draw(n, seed=30 + i)
            cases[f"{group} mm {m}x{k} @ {k}x{n}"] = lambda a=a, b=b: a @ b
            cases[f"{group} mm {m}x{k} @ ({n}x{k})^T"] = lambda a=a, b=b: a @ b.t().contiguous().t()
            cases[f"{group} mm ({k}x{m})^T @ {k}x{n}"] = lambda a=a, b=b: a.t().contiguous().t() @ b
            cases[f"{group} addmm {m}x{k} @ {k}x{n} + bias"] = lambda a=a, b=b, bias=bias: torch.addmm(bias, a, b)
    for group, shapes in (("demo", DEMO_BATCHED), ("db15k", DB15K_BATCHED)):
        for i, (bt, m, k, n) in enumerate(shapes):
            a, b = draw(bt, m, k, seed=40 + i), draw(bt, k, n, seed=50 + i)
            cases[f"{group} bmm {bt}x{m}x{k} @ {bt}x{k}x{n}"] = lambda a=a, b=b: torch.bmm(a, b)
            cases[f"{group} bmm {bt}x{m}x{k} @ ({bt}x{n}x{k})^T"] = \
                lambda a=a, b=b: torch.bmm(a, b.transpose(1, 2).contiguous().transpose(1, 2))
    return cases


def with_grad(fn, *inputs: torch.Tensor, seed: int):
    """fn's output and the inputs' gradients for a fixed upstream gradient."""
    leaves = [x.clone().requires_grad_(True) for x in inputs]
    out = fn(*leaves)
    out.backward(draw(*out.shape, seed=seed))
    return (out.detach(), *[x.grad for x in leaves])


def elementwise() -> dict:
    scores = draw(128, 650, seed=60) * 8
    big = draw(2048, 12842, seed=61) * 8
    x = draw(7168, 32, seed=62) * 4
    q, k, v = (draw(650, 2, 14, 16, seed=63 + i) for i in range(3))
    mask = draw(650, 1, 1, 14, seed=66) > -0.5
    targets = torch.randint(0, 650, (128,), generator=torch.Generator().manual_seed(67))
    big_targets = torch.randint(0, 12842, (2048,), generator=torch.Generator().manual_seed(68))
    w, b = draw(32, seed=69), draw(32, seed=70)
    rows = torch.randint(0, 650, (7168,), generator=torch.Generator().manual_seed(71))
    cases = {
        "softmax 128x650 (+ backward)": lambda: with_grad(lambda s: s.softmax(-1), scores, seed=1),
        "safe softmax 650x2x14x14, masked rows": lambda: torch._safe_softmax(
            draw(650, 2, 14, 14, seed=73).masked_fill(mask.view(650, 1, 1, 14).logical_not(), float("-inf")), -1),
        "log_softmax 128x650 (+ backward)": lambda: with_grad(lambda s: s.log_softmax(-1), scores, seed=2),
        "log_softmax 2048x12842 (+ backward)": lambda: with_grad(lambda s: s.log_softmax(-1), big, seed=3),
        "cross_entropy 128x650, smoothing 0.1 (+ backward)":
            lambda: with_grad(lambda s: F.cross_entropy(s, targets, label_smoothing=0.1), scores, seed=4),
        "cross_entropy 2048x12842 (+ backward)":
            lambda: with_grad(lambda s: F.cross_entropy(s, big_targets), big, seed=5),
        "scaled_dot_product_attention 650x2x14x16, mask (+ backward)":
            lambda: with_grad(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, attn_mask=mask), q, k, v,
                              seed=6),
        "scaled_dot_product_attention 650x2x14x16 (+ backward)":
            lambda: with_grad(lambda a, b, c: F.scaled_dot_product_attention(a, b, c), q, k, v, seed=7),
        "layer_norm 7168x32 (+ backward)":
            lambda: with_grad(lambda t, w, b: F.layer_norm(t, (32,), w, b), x, w, b, seed=8),
        "batch_norm 7168x32, training (+ backward)":
            lambda: with_grad(lambda t, w, b: F.batch_norm(t, torch.zeros(32), torch.ones(32), w, b, training=True),
                              x, w, b, seed=9),
        "relu 7168x32 (+ backward)": lambda: with_grad(F.relu, x, seed=10),
        "sigmoid 7168x32": lambda: torch.sigmoid(x),
        "div, reciprocal, sub 7168x32": lambda: (x / (x.abs() + 0.5), (x.abs() + 0.5).reciprocal(), 1 - x, x - x * 0.5),
        "sum dim 0, dim 1, all 7168x32": lambda: (x.sum(0), x.sum(1), x.sum(), x.mean(), x.double().sum(0)),
        "sum dim 0, dim 1 2048x12842": lambda: (big.sum(0), big.sum(1)),
        "linalg_vector_norm 7168x32, rows": lambda: (torch.linalg.vector_norm(x), x.norm(dim=1, keepdim=True)),
        "normalize rows 7168x32": lambda: F.normalize(x, dim=-1),
        "index_add (scatter-add) 7168 rows into 650x32": lambda: torch.zeros(650, 32).index_add_(0, rows, x),
        "index_put accumulate 7168 rows into 650x32":
            lambda: torch.zeros(650, 32).index_put_((rows,), x, accumulate=True),
        "embedding backward 7168 ids of 650x32":
            lambda: with_grad(lambda t: F.embedding(rows, t), draw(650, 32, seed=72), seed=11)[1],
        "cumsum 7168x32 along rows, and of 7168 counts": lambda: (x.cumsum(0), rows.cumsum(0)),
        "lerp, addcmul, addcdiv 7168x32":
            lambda: (torch.lerp(x, x * 0.5, 0.1), torch.addcmul(x, x, x, value=0.001),
                     torch.addcdiv(x, x, x.abs() + 1, value=-0.01)),
    }
    return cases


def optimiser() -> dict:
    def adam(shapes, steps=3):
        params = [torch.nn.Parameter(draw(*s, seed=80 + i)) for i, s in enumerate(shapes)]
        opt = torch.optim.Adam(params, lr=0.001, fused=True)
        for step in range(steps):
            for i, p in enumerate(params):
                p.grad = draw(*p.shape, seed=90 + 10 * step + i) * 2.0**-(8 + 4 * i)   # small, as gradients are
            torch.nn.utils.clip_grad_norm_(params, 0.1, foreach=True)
            opt.step()
        return [p.detach() for p in params]
    return {"fused Adam, demo parameters, 3 steps with clipping": lambda: adam([(650, 32), (32, 384), (96, 32), (32,)]),
            "fused Adam, DB15K parameters, 3 steps with clipping": lambda: adam([(12842, 256), (256, 256, 256)])}


def layers() -> dict:
    def encoder(train: bool):
        torch.manual_seed(7)
        layer = torch.nn.TransformerEncoderLayer(32, 2, 64, dropout=0.0, batch_first=True).train(train)
        x = draw(388, 3, 32, seed=110)
        if train:
            return with_grad(layer, x, seed=12)
        with torch.no_grad():                               # torch's fused inference path
            return layer(x)
    return {"transformer encoder layer 388x3x32, inference (fused)": lambda: encoder(False),
            "transformer encoder layer 388x3x32, training (+ backward)": lambda: encoder(True)}


def random_draws() -> dict:
    def g():
        return torch.Generator().manual_seed(2024)
    return {"rand, uniform_, normal_ 7168x32": lambda: (torch.rand(7168, 32, generator=g()),
                                                       torch.empty(7168, 32).uniform_(-0.1, 0.1, generator=g()),
                                                       torch.empty(7168, 32).normal_(0, 0.02, generator=g()),
                                                       torch.randn(7168, 32, generator=g())),
            "randint, randperm, bernoulli_ 7168x32": lambda: (torch.randint(0, 650, (7168,), generator=g()),
                                                             torch.randperm(12842, generator=g()),
                                                             torch.empty(7168, 32).bernoulli_(0.3, generator=g()))}


def kernels() -> dict:
    from mygo.fast import counter
    from mygo.fast.counter import Counter
    mask = Counter(seed=123456789, threshold=counter.keep_threshold(0.3))
    x = draw(7168, 32, seed=100)
    rows, bias = draw(650, 32, seed=101), draw(4, 32, seed=102)
    ids = torch.randint(0, 650, (512, 4), generator=torch.Generator().manual_seed(103))
    a, c = draw(2048, 256, seed=104), draw(2048, 256, seed=105)

    def gathered():
        out = torch.zeros(512, 14, 32)
        counter.gather_into(out, 6, rows, ids, bias, mask, 1 / 0.7)
        return out

    return {"dropout masks (keep) 7168x32": lambda: counter.keep((7168, 32), mask),
            "dropout in place 7168x32": lambda: counter.mask_(x.clone(), mask),
            "ReLU and dropout in place 7168x32": lambda: counter.mask_(x.clone(), mask, relu=True),
            "scaled dropout 7168x32": lambda: counter.scaled(x, mask, 1 / 0.7),
            "ReLU gradient 7168x32": lambda: counter.relu_grad(x, x.relu()),
            "masked outer products 2048x256x256": lambda: counter.outer(a, c, mask),
            "token gather, dropout and bias 512x4 ids of 650x32": gathered,
            "token scatter 512x14x32 into 650x32": lambda: counter.scatter_from(draw(512, 14, 32, seed=106), 6, ids,
                                                                                650, mask, 1 / 0.7)}


CASES = {"products": products, "elementwise": elementwise, "layers": layers, "optimiser": optimiser,
         "random": random_draws, "kernels": kernels}


def digest(result) -> str:
    h = hashlib.md5()
    for t in result if isinstance(result, (tuple, list)) else [result]:
        h.update(str(tuple(t.shape)).encode() + str(t.dtype).encode())
        h.update(t.detach().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class Calls(TorchDispatchMode):
    """The aten operations (overload packets) called inside it."""

    def __init__(self):
        super().__init__()
        self.ops = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.add(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


def run() -> tuple[dict, list]:
    """{case: md5 of its outputs} for every case, in the pinned mode, and the aten operations they
    call."""
    reproducible.check()
    hashes, calls = {}, Calls()
    for group, make in CASES.items():
        for name, fn in make().items():
            with calls:
                result = fn()
            hashes[f"{group}: {name}"] = digest(result)
    return hashes, sorted(calls.ops)


def mkl_vendor() -> str | None:
    """Which vendor MKL's dispatch takes this process's CPU for: 'Intel' or 'another' (None where
    torch carries no MKL). MKL asks mkl_serv_intel_cpu_true through libtorch_cpu's PLT, so a
    definition in the process's global scope (tests/mkl_intel_dispatch.c, preloaded) answers
    before MKL's own."""
    for library in (None, str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so")):
        try:
            return "Intel" if ctypes.CDLL(library).mkl_serv_intel_cpu_true() else "another"
        except (OSError, AttributeError):
            continue
    return None


def preloaded_answers() -> int | None:
    """How many times MKL asked tests/mkl_intel_dispatch.c for the vendor (None: not preloaded)."""
    try:
        return ctypes.c_long.in_dll(ctypes.CDLL(None), "mygo_mkl_vendor_checks").value
    except ValueError:
        return None


def environment() -> dict:
    answered = preloaded_answers()              # before mkl_vendor() asks it once more
    return {"torch": torch.__version__, "capability": torch.backends.cpu.get_cpu_capability(),
            "mkl_branch": reproducible.mkl_branch(), "mkl_vendor": mkl_vendor(),
            **({} if answered is None else {"mkl_vendor_answered_by_preload": answered}),
            "threads": torch.get_num_threads()}


if __name__ == "__main__":
    hashes, operations = run()
    result = {"environment": environment(), "operations": operations, "hashes": hashes}
    if sys.argv[1:] == ["--write"]:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {len(result['hashes'])} golden hashes to {GOLDEN}", file=sys.stderr)
    else:
        print(json.dumps(result))
