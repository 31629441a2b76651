"""End-to-end: the real `dvc repro` / `dvc exp run` / remotes in temporary clones of this repo."""
import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
import yaml

from conftest import ROOT
from helpers import BIN, dvc, make_clone, ran, run_queue, sh, wait_for_queue

pytestmark = pytest.mark.slow
def lock_outs(clone: Path) -> dict:
    lock = yaml.safe_load((clone / "dvc.lock").read_text())
    return {out["path"]: out.get("md5") for stage in lock["stages"].values() for out in stage.get("outs", [])}


@pytest.fixture(scope="module")
def repro_clone(tmp_path_factory):
    clone = make_clone(tmp_path_factory.mktemp("e2e"), "a")
    result = dvc(clone, "repro")
    assert ran(result) == ["check_params", "prepare", "download_images", "tokenize_images", "tokenize_text",
                           "select_tokens",
                           "train", "evaluate"]
    sh(clone, "git", "add", "-A")
    sh(clone, "git", "commit", "-qm", "repro")
    return clone


def test_repro_outputs(repro_clone):
    metrics = json.loads((repro_clone / "metrics/eval.json").read_text())
    for key in ("mrr", "mr", "hits@1", "hits@3", "hits@10"):
        assert key in metrics and all(key in metrics[group] for group in ("optimistic", "pessimistic", "head", "tail"))
        assert key == "mr" or 0.0 <= metrics[key] <= 1.0
    tokens = pq.read_table(repro_clone / "data/processed/entity_tokens/entity_tokens.parquet").to_pylist()
    manifest = pq.read_table(repro_clone / "data/processed/image_manifest.parquet").to_pylist()
    with_images = {r["entity"] for r in manifest if r["status"] == "ok"}
    assert with_images and {"missing_file"} == {r["status"] for r in manifest} - {"ok"}
    for row in tokens:
        assert any(row["visual_mask"]) == (row["entity"] in with_images)
        assert len(row["text"]) == 4 and any(row["text_mask"])
    assert (repro_clone / "metrics/per_relation.json").exists()
    live = repro_clone / "metrics/train"
    history = (live / "plots/metrics/train/loss.tsv").read_text().splitlines()
    summary = json.loads((live / "metrics.json").read_text())
    assert history[0] == "step\tloss" and len(history) == 1 + summary["epochs"] == 1 + summary["step"]
    assert summary["best"]["mrr"] == max(float(line.split("\t")[1]) for line in
                                         (live / "plots/metrics/valid/mrr.tsv").read_text().splitlines()[1:])


def test_nothing_to_do_after_repro(repro_clone):
    assert ran(dvc(repro_clone, "repro")) == []


@pytest.mark.parametrize("param, value, column, slots", [
    ("max_txt_token", 2, "text", 2), ("max_vis_token", 16, "visual", 16)])
def test_exp_run_reruns_selection_and_after_only(repro_clone, param, value, column, slots):
    result = dvc(repro_clone, "exp", "run", "-S", f"{param}={value}")
    assert ran(result) == ["check_params", "select_tokens", "train", "evaluate"]
    table = pq.read_table(repro_clone / "data/processed/entity_tokens/entity_tokens.parquet")
    assert {len(x) for x in table[column].to_pylist()} == {slots}
    shown = dvc(repro_clone, "exp", "show", "--json")
    assert "mrr" in shown.stdout and param in shown.stdout
    sh(repro_clone, "git", "checkout", "-q", "--", ".")
    dvc(repro_clone, "checkout", "-q", check=False)


def test_the_tucker_baseline_is_one_param_away(repro_clone):
    """`dvc exp run -S train.model.name=tucker` trains and evaluates the baseline (train and
    evaluate only); the workspace's own run is untouched afterwards."""
    result = dvc(repro_clone, "exp", "run", "-n", "tucker", "-S", "train.model.name=tucker")
    assert ran(result) == ["check_params", "train", "evaluate"]
    assert torch.load(repro_clone / "models/model.pt", weights_only=True)["model_name"] == "tucker"
    rows = {r["Experiment"]: r for r in csv.DictReader(io.StringIO(dvc(repro_clone, "exp", "show", "--csv").stdout))}
    assert rows["tucker"]["train.model.name"] == "tucker" and 0.0 <= float(rows["tucker"]["mrr"]) <= 1.0
    sh(repro_clone, "git", "checkout", "-q", "--", ".")
    dvc(repro_clone, "checkout", "-q", check=False)
    assert "model_name" not in torch.load(repro_clone / "models/model.pt", weights_only=True)


def outputs(clone: Path) -> dict[str, str]:
    """Every output and metric of the pipeline, by content."""
    import hashlib
    files = [p for folder in ("data/processed", "models", "metrics", "reports") for p in (clone / folder).rglob("*")
             if p.is_file()]
    return {str(p.relative_to(clone)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(files)}


@pytest.mark.parametrize("override, message", [
    ("max_vis_token=-3", "max_vis_token = -3: must be >= 0"),
    ("train.lr=0", "train.lr = 0: must be > 0"),
    ("train.model.name=transe", "train.model.name = 'transe': must be one of"),
    ("prepare.triple_order=rht", "prepare.triple_order = 'rht': must be one of"),
    ("evaluate.batch_size=abc", "evaluate.batch_size = 'abc': expected an integer"),
])
def test_a_bad_param_leaves_every_output_in_place(repro_clone, override, message):
    """check_params fails first, before DVC removes the outputs of the stages the param feeds."""
    before = outputs(repro_clone)
    result = dvc(repro_clone, "exp", "run", "-S", override, check=False)
    assert result.returncode != 0 and message in result.stdout + result.stderr
    assert "`git checkout params.yaml` restores the committed params" in result.stdout + result.stderr
    assert ran(result) == ["check_params"]
    sh(repro_clone, "git", "checkout", "params.yaml")                # the way back the error names
    assert outputs(repro_clone) == before


def test_editing_the_model_reruns_train_and_evaluate_only(repro_clone):
    model_py = repro_clone / "src/mygo/model.py"
    try:
        model_py.write_text(model_py.read_text() + "\n# edited\n")
        assert ran(dvc(repro_clone, "repro", "--dry")) == ["train", "evaluate"]
    finally:
        sh(repro_clone, "git", "checkout", "-q", "--", "src")
    assert ran(dvc(repro_clone, "repro", "--dry")) == []


def test_editing_the_text_tokenizer_reruns_it_and_what_its_output_changes(repro_clone):
    text_py = repro_clone / "src/mygo/text.py"
    try:
        text_py.write_text(text_py.read_text() + "\n# edited\n")
        assert ran(dvc(repro_clone, "repro", "--dry")) == ["tokenize_text"]
        # A comment changes no token: DVC re-runs the stage, sees the same output, stops there.
        assert ran(dvc(repro_clone, "repro")) == ["tokenize_text"]
    finally:
        sh(repro_clone, "git", "checkout", "-q", "--", "src")
    # Back to the original code: the run-cache still holds that run, so nothing runs again.
    assert ran(dvc(repro_clone, "repro")) == []
    assert sh(repro_clone, "git", "status", "--porcelain").stdout.strip() == ""


def test_two_runs_are_byte_identical(repro_clone, tmp_path):
    other = make_clone(tmp_path, "b")
    dvc(other, "repro")
    assert lock_outs(other) == lock_outs(repro_clone)
    assert (other / "metrics/eval.json").read_text() == (repro_clone / "metrics/eval.json").read_text()


def _push_pull(repro_clone: Path, tmp_path: Path, url: str, settings: list[list[str]] = ()):
    dvc(repro_clone, "remote", "add", "-f", "-d", "shared", url)
    try:
        for setting in settings:
            dvc(repro_clone, "remote", "modify", "shared", *setting)
        dvc(repro_clone, "push")
        dvc(repro_clone, "push", "--run-cache")
        source = tmp_path / "origin.git"
        subprocess.run(["git", "clone", "-q", "--bare", str(repro_clone), str(source)], check=True)
        fresh = tmp_path / "fresh"
        subprocess.run(["git", "clone", "-q", str(source), str(fresh)], check=True)
        shutil.copy(repro_clone / ".dvc/config", fresh / ".dvc/config")     # the remote, as a colleague adds it
        dvc(fresh, "pull")
        assert (fresh / "models/model.pt").exists()
        assert (fresh / "data/processed/entity_tokens/entity_tokens.parquet").exists()
        assert ran(dvc(fresh, "repro")) == [], dvc(fresh, "status").stdout
        assert (fresh / "metrics/eval.json").read_text() == (repro_clone / "metrics/eval.json").read_text()
    finally:
        dvc(repro_clone, "remote", "remove", "shared", check=False)


def test_share_through_a_local_remote(repro_clone, tmp_path):
    _push_pull(repro_clone, tmp_path, str(tmp_path / "store"))


def test_share_through_an_s3_remote(repro_clone, tmp_path, monkeypatch):
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="mygo")
        _push_pull(repro_clone, tmp_path, "s3://mygo/cache", [["endpointurl", endpoint]])
    finally:
        server.stop()


def test_experiment_workflow(repro_clone, tmp_path):
    """The README's experiment commands: its queued seed sweep exactly as printed (one line that
    queues and starts a worker), exp show, the diffs, plots diff, exp branch and exp apply."""
    readme = (ROOT / "README.md").read_text().split("## Experiments and comparing them")[1]
    sweep = next(line.split("   #")[0].strip() for line in readme.splitlines() if "--queue" in line)
    assert sweep == "dvc exp run --queue -S 'train.seed=range(1,4)' && dvc queue start -j 1", sweep
    log = tmp_path / "worker.log"                  # the worker outlives the line: its output to a file
    sh(repro_clone, "bash", "-c", f"PATH={BIN}:$PATH; {{ {sweep} ; }} > {log} 2>&1 < /dev/null")
    status = wait_for_queue(repro_clone, 900, log, tasks=3)
    assert status.count("Success") == 3, status

    rows = list(csv.DictReader(io.StringIO(dvc(repro_clone, "exp", "show", "--csv").stdout)))
    by_seed = {row["train.seed"]: row for row in rows if row["Experiment"]}
    assert {"1", "2", "3"} <= set(by_seed), rows
    runs = {f"seed-{seed}": by_seed[seed] for seed in ("1", "2")}
    for name, row in runs.items():
        assert all(0.0 <= float(row[key]) <= 1.0 for key in ("mrr", "hits@1", "hits@3", "hits@10"))
    names = {name: row["Experiment"] for name, row in runs.items()}

    diff = json.loads(dvc(repro_clone, "exp", "diff", names["seed-1"], names["seed-2"], "--json").stdout)
    assert (diff["params"]["params.yaml"]["train.seed"]["old"], diff["params"]["params.yaml"]["train.seed"]["new"]) == (1, 2)
    assert "mrr" in diff["metrics"]["metrics/eval.json"]

    plots = tmp_path / "plots"
    dvc(repro_clone, "plots", "diff", names["seed-1"], names["seed-2"], "-o", str(plots))
    html = (plots / "index.html").read_text()
    assert names["seed-1"] in html and names["seed-2"] in html and "per_relation" in html

    dvc(repro_clone, "exp", "branch", names["seed-2"], "winner")
    assert sh(repro_clone, "git", "rev-parse", "--verify", "winner").returncode == 0
    try:
        dvc(repro_clone, "exp", "apply", names["seed-1"])
        assert yaml.safe_load((repro_clone / "params.yaml").read_text())["train"]["seed"] == 1
        params = json.loads(dvc(repro_clone, "params", "diff", "--json").stdout)
        assert params["params.yaml"]["train.seed"]["new"] == 1
        metrics = json.loads(dvc(repro_clone, "metrics", "diff", "--json").stdout)
        assert metrics["metrics/eval.json"]["mrr"]["new"] == pytest.approx(float(runs["seed-1"]["mrr"]))
    finally:
        sh(repro_clone, "git", "checkout", "-q", "--", ".")
        dvc(repro_clone, "checkout", "-f", "-q", check=False)


def test_offline_plot_images(repro_clone, tmp_path):
    """The README's plots command: images of every declared plot, rendered without network."""
    out = tmp_path / "plots"
    result = sh(repro_clone, sys.executable, "scripts/plots.py", "--out", str(out))
    names = {p.name for p in out.glob("*.png")}
    assert names == {"loss.png", "kgc_loss.png", "contrastive_loss.png", "learning_rate.png", "valid_mrr.png",
                     "per_relation_mrr.png"}, result.stdout
    assert all((out / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (out / n).stat().st_size > 5000 for n in names)
    assert "per_relation_mrr.png" in (out / "index.html").read_text()


def test_compare_lists_the_experiments_run_here(repro_clone):
    """scripts/compare.py on the real `dvc exp show --json` of this clone's experiments."""
    out = sh(repro_clone, sys.executable, "scripts/compare.py", "--format", "markdown").stdout
    assert out.startswith("| runs |") and "train.model.name" in out and "| tucker |" in out
    terminal = sh(repro_clone, sys.executable, "scripts/compare.py").stdout
    assert terminal.split()[0] == "runs" and " name " in terminal.splitlines()[0] and "tucker" in terminal
    assert "test MRR" in out.splitlines()[0]


def test_a_sweep_split_over_machines_is_collected_in_a_third_clone(repro_clone, tmp_path):
    """docs/experiments.md, "A sweep over several machines": two clones of a shared git remote each
    run two seeds of one variant from a queue and `dvc exp push` them (experiments to git, outputs
    to the DVC remote); a third clone `dvc exp pull`s them and `mygo compare` shows one row of 4
    seeds without running anything."""
    store, origin = tmp_path / "store", tmp_path / "origin.git"
    dvc(repro_clone, "remote", "add", "-f", "-d", "shared", str(store))
    try:
        sh(repro_clone, "git", "commit", "-qam", "the shared DVC remote")
        dvc(repro_clone, "push")
        subprocess.run(["git", "clone", "-q", "--bare", str(repro_clone), str(origin)], check=True)
        seeds = {"machine-a": (1, 2), "machine-b": (3, 4)}
        for machine, pair in seeds.items():
            clone = tmp_path / machine
            subprocess.run(["git", "clone", "-q", str(origin), str(clone)], check=True)
            dvc(clone, "pull")
            variant = ["-S", "max_vis_token=4", "-S", "train.epochs=2", "-S", "train.eval_every=1"]
            if machine == "machine-a":                  # from a queue, as the docs show
                for seed in pair:
                    dvc(clone, "exp", "run", "--queue", "-n", f"{machine}-s{seed}", *variant, "-S",
                        f"train.seed={seed}")
                status = run_queue(clone, timeout=900, tasks=len(pair))
                assert status.count("Success") == 2, status
            else:                                       # one run after the other, in the workspace
                for seed in pair:
                    dvc(clone, "exp", "run", "-n", f"{machine}-s{seed}", *variant, "-S", f"train.seed={seed}")
            dvc(clone, "exp", "push", "origin", *(f"{machine}-s{seed}" for seed in pair))
        third = tmp_path / "collector"
        subprocess.run(["git", "clone", "-q", str(origin), str(third)], check=True)
        for machine, pair in seeds.items():
            dvc(third, "exp", "pull", "origin", *(f"{machine}-s{seed}" for seed in pair))
        compared = sh(third, str(BIN / "mygo"), "compare", "--format", "markdown").stdout
        table = [line for line in compared.splitlines() if line.startswith("|")]
        header = [cell.strip() for cell in table[0].strip("|").split("|")]
        rows = [line for line in table if "machine-a-s1" in line]
        assert len(rows) == 1, compared
        cells = dict(zip(header, (cell.strip() for cell in rows[0].strip("|").split("|"))))
        assert all(f"{m}-s{s}" in cells["runs"] for m, pair in seeds.items() for s in pair), compared
        assert (cells["max_vis_token"], cells["seeds"]) == ("4", "4"), compared
        assert not (third / "models" / "model.pt").exists()                # nothing ran here
        verdicts = sh(third, str(BIN / "mygo"), "compare", "--baseline", "main", "--per-relation").stdout
        assert "has_color" in verdicts and "4 vs 1" in verdicts             # per-relation files came with them
    finally:
        dvc(repro_clone, "remote", "remove", "shared", check=False)


def test_the_readmes_own_data_commands_run_as_printed(repro_clone):
    """README "Your own data": the four files in the layout it shows, then its command, exactly."""
    import re as regex
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Your own data")[1].split("\n## ")[0]
    layout, command = regex.findall(r"```(?:bash)?\n(.*?)```", section, flags=regex.S)[:2]
    files = [line.split()[0] for line in layout.splitlines() if line.strip()]
    assert sorted(Path(f).name for f in files) == ["entities.tsv", "test.tsv", "train.tsv", "valid.tsv"]
    folder = repro_clone / Path(files[0]).parent
    folder.mkdir(parents=True)
    names = [f"thing_{i}" for i in range(30)]
    (folder / "entities.tsv").write_text("".join(f"{n}\ta thing number {i}\n" for i, n in enumerate(names)))
    triples = [(names[i], "near" if i % 2 else "like", names[(i * 7 + 3) % 30]) for i in range(30)]
    triples += [(names[i], "near", names[(i + 1) % 30]) for i in range(30)]
    split = {"train.tsv": triples[:48], "valid.tsv": triples[48:54], "test.tsv": triples[54:]}
    for name, rows in split.items():
        (folder / name).write_text("".join("\t".join(t) + "\n" for t in rows))
    try:
        result = sh(repro_clone, "bash", "-c", f"PATH={BIN}:$PATH; " + command.strip())
        assert "train" in ran(result) and "evaluate" in ran(result)
        metrics = json.loads((repro_clone / "metrics/eval.json").read_text())
        assert metrics["count"] == 2 * len(split["test.tsv"])
    finally:
        sh(repro_clone, "git", "checkout", "-q", "--", ".")
        shutil.rmtree(folder, ignore_errors=True)
        dvc(repro_clone, "checkout", "-f", check=False)


# placeholders of the `--help` examples, and what stands in for them on the demo
EXAMPLE_STANDINS = {"my-experiment": "m16", "show.json": "show.json", "queries.tsv": "queries.tsv"}
# examples that are walked elsewhere: a new project end to end (tests/test_packaging.py walks the
# path `mygo init` prints) and the stages with their placeholders (every `dvc repro` runs them)
EXAMPLES_WALKED_ELSEWHERE = ("mygo init", "mygo train KG")


def help_examples() -> list[str]:
    """Every example line of every `mygo` command's --help (its module docstring)."""
    import importlib
    import re as regex
    from mygo.cli import COMMANDS
    modules = ["mygo.cli"] + [f"mygo.cli.{name}" for name in dict.fromkeys(COMMANDS.values())]
    found = []
    for name in modules:
        for line in (importlib.import_module(name).__doc__ or "").splitlines():
            if match := regex.match(r"\s+(mygo\s.*?)\s*(?:#.*)?$", line):
                found.append(match[1])
    return found


def test_every_help_example_runs_on_the_demo(repro_clone, tmp_path):
    """`mygo --help` and each command's examples run on the demo as shown (placeholders of files
    and experiment names filled in), each exiting 0 without a traceback; the experiment they name
    is made by the README's own command for a named run."""
    examples = help_examples()
    assert any(e.startswith("mygo predict") for e in examples) and any("--per-relation" in e for e in examples)
    readme = (ROOT / "README.md").read_text().split("## Experiments and comparing them")[1]
    named_run = next(line.split("#")[0].strip() for line in readme.splitlines() if line.startswith("dvc exp run -n m16"))
    sh(repro_clone, "bash", "-c", f"PATH={BIN}:$PATH; {named_run}")
    (repro_clone / "show.json").write_text(dvc(repro_clone, "exp", "show", "--json").stdout)
    (repro_clone / "queries.tsv").write_text("chair_000\tmade_of\t?\n?\thas_color\tred\n")
    try:
        for example in examples:
            if example.startswith(EXAMPLES_WALKED_ELSEWHERE):
                continue
            command = " ".join(EXAMPLE_STANDINS.get(word, word) for word in example.split(" "))
            result = sh(repro_clone, "bash", "-c", f"PATH={BIN}:$PATH; {command}", check=False)
            assert result.returncode == 0 and "Traceback" not in result.stderr, (command, result.stderr[-2000:])
    finally:
        sh(repro_clone, "git", "checkout", "-q", "--", ".")
        for name in ("show.json", "queries.tsv", "runs.csv", "runs.md"):
            (repro_clone / name).unlink(missing_ok=True)
        dvc(repro_clone, "checkout", "-f", check=False)
