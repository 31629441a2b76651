"""Vendor independence where it starts: every kind of operation the pinned mode computes with gives
the golden bytes committed in tests/golden/vendor_ops.json (made on one CPU vendor, checked on
the others), and training and evaluation call no operation outside those cases, and none that
torch routes through MKL's vector maths (VML), whose results differ between Intel and AMD.

The golden values do not change when the model does; the fresh-clone test
(tests/test_pipeline.py) stays the end-to-end proof.
"""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from mygo import reproducible

sys.path.insert(0, str(ROOT / "tests"))
from vendor_ops import GOLDEN, VML_OPS  # noqa: E402

# Operations that round nothing, or whose one rounding per element is IEEE's (moves, views,
# comparisons, integer and logical operations, fills): the same bytes on any CPU that runs them.
NO_ROUNDING = {"__lshift__", "_local_scalar_dense", "all", "any", "arange", "bincount", "bitwise_and", "bitwise_not",
               "bitwise_or", "cat", "clone", "copy", "detach", "empty", "empty_like", "eq", "expand", "fill", "ge",
               "gt", "index", "index_select", "le", "lift_fresh", "lt", "masked_fill", "ne", "new_zeros", "ones",
               "ones_like", "permute", "promote_types", "repeat_interleave", "scalar_tensor", "searchsorted",
               "select", "select_backward", "set", "slice", "slice_backward", "squeeze", "stack", "t", "transpose",
               "unbind", "unsqueeze", "view", "where", "zero", "zeros", "zeros_like", "_unsafe_view", "_to_copy"}


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in reproducible.PINNED_ENV and k != "MYGO_REPRODUCIBLE"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])
    return env


def _run(script: str):
    out = subprocess.run([sys.executable, str(ROOT / "tests" / script)], env=_env(), check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout)


def _base(op: str) -> str:
    name = op.split(".", 1)[1] if "." in op else op
    return name[:-1] if name.endswith("_") and not name.endswith("__") else name


@pytest.fixture(scope="module")
def measured():
    return _run("vendor_ops.py")


def _golden(measured: dict) -> dict:
    """The golden values, or a skip under another torch than theirs."""
    golden = json.loads(GOLDEN.read_text())
    if measured["environment"]["torch"].split("+")[0] != golden["environment"]["torch"].split("+")[0]:
        pytest.skip(f"the golden values are torch {golden['environment']['torch']}'s; this is torch "
                    f"{measured['environment']['torch']} (the pinned bytes hold for the pinned torch only)")
    return golden


def _assert_golden(measured: dict) -> None:
    """measured's hashes are the golden ones (skipped under another torch than the golden values')."""
    golden = _golden(measured)
    assert measured["environment"]["capability"] == "AVX2" and measured["environment"]["threads"] == 1
    missing = sorted(set(golden["hashes"]) ^ set(measured["hashes"]))
    assert not missing, (f"cases without a golden value or gone: {missing}; after changing tests/vendor_ops.py "
                         "run `python tests/vendor_ops.py --write` on any x86-64 CPU with AVX2")
    differ = [f"{case}: {measured['hashes'][case]} here, {golden['hashes'][case]} golden"
              for case in golden["hashes"] if measured["hashes"][case] != golden["hashes"][case]]
    assert not differ, (f"{len(differ)} of {len(golden['hashes'])} operations give other bytes on this CPU "
                        f"({measured['environment']}) than on the golden values' "
                        f"({golden['environment']}):\n  " + "\n  ".join(differ))


@pytest.mark.skipif(not GOLDEN.exists(), reason="no golden values committed")
def test_pinned_operations_give_the_golden_bytes(measured):
    _assert_golden(measured)


@pytest.fixture(scope="module")
def intel_dispatch(tmp_path_factory) -> dict:
    """LD_PRELOAD of tests/mkl_intel_dispatch.c compiled: MKL's vendor check answers Intel."""
    library = tmp_path_factory.mktemp("mkl") / "libmkl_intel_dispatch.so"
    subprocess.run([os.environ.get("CC", "cc"), "-shared", "-fPIC", "-O2", "-o", str(library),
                    str(ROOT / "tests" / "mkl_intel_dispatch.c")], check=True, capture_output=True)
    return {"LD_PRELOAD": " ".join(filter(None, [str(library), os.environ.get("LD_PRELOAD")]))}


@pytest.mark.skipif(not GOLDEN.exists(), reason="no golden values committed")
def test_golden_bytes_hold_on_mkls_intel_branch(measured, intel_dispatch):
    """MKL picks its code by vendor as well as by instruction set: on a CPU MKL takes for another
    vendor's, the pinned operations run MKL's Intel branch too (its vendor check answered by
    tests/mkl_intel_dispatch.c, which counts the times MKL asked it) and must still give the golden
    bytes."""
    _golden(measured)
    vendor = measured["environment"]["mkl_vendor"]
    if vendor is None:
        pytest.skip("this torch carries no MKL whose vendor check could be answered")
    if vendor == "Intel":
        pytest.skip("MKL takes this CPU for an Intel one: test_pinned_operations_give_the_golden_bytes runs its "
                    "Intel branch already")
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "vendor_ops.py")], env={**_env(), **intel_dispatch},
                         check=True, capture_output=True, text=True)
    on_intel_branch = json.loads(out.stdout)
    assert on_intel_branch["environment"]["mkl_vendor"] == "Intel"
    assert on_intel_branch["environment"]["mkl_vendor_answered_by_preload"] > 0, \
        "MKL never asked the preloaded vendor check: its Intel branch did not run"
    _assert_golden(on_intel_branch)


def test_golden_file_lists_the_operations_its_cases_call(measured):
    golden = json.loads(GOLDEN.read_text())
    assert golden["operations"] == measured["operations"], "run `python tests/vendor_ops.py --write`"


def test_no_case_calls_the_vendor_dependent_vector_maths(measured):
    assert not [op for op in measured["operations"] if _base(op) in VML_OPS]


def test_training_and_evaluation_call_only_covered_operations(measured):
    used = _run("vendor_coverage.py")
    assert "aten.mm" in used and "aten._fused_adam_" in used          # the trace saw a real step
    vml = sorted(op for op in used if _base(op) in VML_OPS)
    assert not vml, (f"the pinned training or evaluation calls {vml}: torch computes these with MKL's vector "
                     "maths, which rounds differently on Intel and AMD CPUs; compute them another way "
                     "(e.g. fused kernels, or the project's C kernels)")
    covered = {_base(op) for op in measured["operations"]} | NO_ROUNDING
    uncovered = sorted(op for op in used if op.startswith("aten.") and _base(op) not in covered)
    assert not uncovered, (f"the pinned training or evaluation calls {uncovered}, which no case of "
                           "tests/vendor_ops.py covers: add a case (the golden values then show whether "
                           "its bytes depend on the CPU vendor)")
