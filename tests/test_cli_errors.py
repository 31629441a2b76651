"""No traceback from the boundary: every `mygo` command, fed one malformed value per kind of
argument it takes (a missing or unreadable input, a file of the wrong format or shape, an output
that cannot be written, a bad number, choice or device, an unknown name), answers with one clear
line that names what is wrong, and exit status 2 (a usage error, before any work) or 1."""
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from conftest import ROOT
from mygo.cli import COMMANDS
from test_compare import exp_show


@pytest.fixture(scope="module")
def world(demo_processed, trained, tmp_path_factory):
    """Good inputs to put one bad value among, and bad ones of every kind."""
    tmp = tmp_path_factory.mktemp("malformed")
    (tmp / "text.txt").write_text("not a table, a checkpoint or JSON\n")
    (tmp / "empty").mkdir()
    (tmp / "object.json").write_text(json.dumps({"workspace": {"baseline": {"data": {}}}}))
    (tmp / "rows.json").write_text(json.dumps([1, 2, 3]))
    (tmp / "show.json").write_text(json.dumps(exp_show()))
    (tmp / "broken.json").write_text('[{"rev": ')
    (tmp / "queries.tsv").write_text("chair_000\tmade_of\n")                  # two columns, not three
    (tmp / "params_list.yaml").write_text("- 1\n- 2\n")
    (tmp / "params_bad.yaml").write_text("train: [unclosed\n")
    gpu_params = (demo_processed / "params.yaml").read_text().replace("device: cpu", "device: cuda:7")
    (tmp / "params_gpu.yaml").write_text(gpu_params)
    (tmp / "nonempty").mkdir()
    (tmp / "nonempty/keep.txt").write_text("mine\n")
    return SimpleNamespace(tmp=tmp, kg=demo_processed / "kg", tokens=demo_processed / "tokens",
                           text=demo_processed / "text", params=demo_processed / "params.yaml", model=trained,
                           text_file=tmp / "text.txt", missing=tmp / "missing", empty=tmp / "empty",
                           under_file=tmp / "text.txt" / "out")


# (command, argument kind, argv from the world, a fragment the error line holds)
CASES = [
    ("validate-params", "missing params file", lambda w: ["--params", w.missing], "params file not found"),
    ("validate-params", "params not YAML", lambda w: ["--params", w.tmp / "params_bad.yaml"], "invalid YAML"),
    ("validate-params", "params not a mapping", lambda w: ["--params", w.tmp / "params_list.yaml"], "expected a mapping"),
    ("validate-params", "output under a file", lambda w: [w.under_file, "--params", w.params], "text.txt"),
    ("prepare", "missing input folder", lambda w: [w.missing, w.tmp / "kg1", "--params", w.params], "missing"),
    ("prepare", "input is a file", lambda w: [w.text_file, w.tmp / "kg2", "--params", w.params], "text.txt"),
    ("prepare", "empty input folder", lambda w: [w.empty, w.tmp / "kg3", "--params", w.params], "empty"),
    ("prepare", "output under a file", lambda w: [ROOT / "data/raw/demo", w.under_file, "--params", w.params],
     "text.txt"),
    ("download-images", "missing KG folder", lambda w: [w.missing, w.tmp / "img", w.tmp / "m.parquet", "--params",
                                                        w.params], "missing"),
    ("download-images", "KG folder of no tables", lambda w: [w.empty, w.tmp / "img", w.tmp / "m.parquet", "--params",
                                                             w.params], "empty"),
    ("tokenize-images", "missing manifest", lambda w: [w.missing, w.tmp / "img", w.tmp / "it", "--params", w.params],
     "missing"),
    ("tokenize-images", "manifest not Parquet", lambda w: [w.text_file, w.tmp / "img", w.tmp / "it", "--params",
                                                           w.params], "text.txt"),
    ("tokenize-text", "missing KG folder", lambda w: [w.missing, w.tmp / "tt", "--params", w.params], "missing"),
    ("tokenize-text", "params not YAML", lambda w: [w.kg, w.tmp / "tt", "--params", w.tmp / "params_bad.yaml"],
     "invalid YAML"),
    ("select-tokens", "missing KG folder", lambda w: [w.missing, w.tmp / "st", "--params", w.params], "missing"),
    ("select-tokens", "missing text folder", lambda w: [w.kg, w.tmp / "st", "--text-dir", w.missing, "--params",
                                                        w.params], "missing"),
    ("select-tokens", "image folder is a file", lambda w: [w.kg, w.tmp / "st", "--text-dir", w.text, "--image-dir",
                                                           w.text_file, "--params", w.params], "text.txt"),
    ("train", "missing tokens folder", lambda w: [w.kg, w.missing, w.tmp / "m.pt", "--params", w.params], "missing"),
    ("train", "tokens folder empty", lambda w: [w.kg, w.empty, w.tmp / "m.pt", "--params", w.params], "empty"),
    ("train", "resume state not a checkpoint", lambda w: [w.kg, w.tokens, w.tmp / "m.pt", "--resume", w.text_file,
                                                          "--params", w.params], "text.txt"),
    ("train", "device not present", lambda w: [w.kg, w.tokens, w.tmp / "m.pt", "--params",
                                               w.tmp / "params_gpu.yaml"], "cuda:7"),
    ("evaluate", "missing model", lambda w: [w.kg, w.missing, w.tmp / "e.json", w.tmp / "p.json", "--params",
                                             w.params], "missing"),
    ("evaluate", "model not a checkpoint", lambda w: [w.kg, w.text_file, w.tmp / "e.json", w.tmp / "p.json",
                                                      "--params", w.params], "text.txt"),
    ("evaluate", "unknown split", lambda w: [w.kg, w.model, w.tmp / "e.json", w.tmp / "p.json", "--split", "dev"],
     "invalid choice: 'dev'"),
    ("evaluate", "output under a file", lambda w: [w.kg, w.model, w.under_file, w.tmp / "p.json", "--params",
                                                   w.params], "text.txt"),
    ("evaluate", "device not present", lambda w: [w.kg, w.model, w.tmp / "e.json", w.tmp / "p.json", "--params",
                                                  w.tmp / "params_gpu.yaml"], "cuda:7"),
    ("predict", "k not a number", lambda w: ["--model", w.model, "--kg", w.kg, "--head", "chair_000", "--relation",
                                             "made_of", "--k", "ten"], "--k"),
    ("predict", "k below one", lambda w: ["--model", w.model, "--kg", w.kg, "--head", "chair_000", "--relation",
                                          "made_of", "--k", "0"], "--k 0"),
    ("predict", "device misspelt", lambda w: ["--model", w.model, "--kg", w.kg, "--head", "chair_000", "--relation",
                                              "made_of", "--device", "gpu"], "gpu"),
    ("predict", "device not present", lambda w: ["--model", w.model, "--kg", w.kg, "--head", "chair_000",
                                                 "--relation", "made_of", "--device", "cuda:7"], "cuda:7"),
    ("predict", "missing model", lambda w: ["--model", w.missing, "--kg", w.kg, "--head", "chair_000", "--relation",
                                            "made_of"], "missing"),
    ("predict", "unknown entity", lambda w: ["--model", w.model, "--kg", w.kg, "--head", "chair_999", "--relation",
                                             "made_of"], "chair_999"),
    ("predict", "unknown relation", lambda w: ["--model", w.model, "--kg", w.kg, "--head", "chair_000", "--relation",
                                               "made_off"], "made_off"),
    ("predict", "queries file of two columns", lambda w: ["--model", w.model, "--kg", w.kg, "--queries",
                                                          w.tmp / "queries.tsv"], "queries.tsv"),
    ("predict", "missing queries file", lambda w: ["--model", w.model, "--kg", w.kg, "--queries", w.missing],
     "missing"),
    ("predict", "no query", lambda w: ["--model", w.model, "--kg", w.kg], "--relation"),
    ("compare", "saved rows of another shape", lambda w: ["--json", w.tmp / "object.json"], "object.json"),
    ("compare", "saved rows not objects", lambda w: ["--json", w.tmp / "rows.json"], "rows.json"),
    ("compare", "saved rows not JSON", lambda w: ["--json", w.tmp / "broken.json"], "broken.json"),
    ("compare", "missing saved rows", lambda w: ["--json", w.missing], "missing"),
    ("compare", "unknown format", lambda w: ["--format", "html"], "invalid choice: 'html'"),
    ("compare", "unknown baseline", lambda w: ["--json", w.tmp / "show.json", "--baseline", "nosuchrun"], "nosuchrun"),
    ("compare", "not a DVC project", lambda w: [], "dvc"),
    ("plots", "scale not a number", lambda w: ["--scale", "big"], "--scale"),
    ("plots", "scale not positive", lambda w: ["--scale", "-1"], "--scale"),
    ("plots", "unknown format", lambda w: ["--format", "gif"], "invalid choice: 'gif'"),
    ("plots", "not a DVC project", lambda w: ["--out", w.tmp / "plots"], "dvc"),
    ("init", "folder not empty", lambda w: [w.tmp / "nonempty"], "nonempty"),
    ("init", "folder is a file", lambda w: [w.text_file], "text.txt"),
]


def test_every_command_has_cases():
    assert {command for command, *_ in CASES} == set(COMMANDS)


@pytest.fixture(scope="module")
def results(world):
    """Every case's run, several at a time (each is a process that mostly loads modules)."""
    def run(case):
        command, _, argv, _ = case
        return subprocess.run([sys.executable, "-m", "mygo", command, *map(str, argv(world))], cwd=world.tmp,
                              capture_output=True, text=True, timeout=600)
    with ThreadPoolExecutor(4) as pool:
        return dict(zip((case[:2] for case in CASES), pool.map(run, CASES)))


@pytest.mark.parametrize("command, kind, fragment", [(c, k, f) for c, k, _, f in CASES],
                         ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_a_malformed_argument_is_one_clear_line(world, results, command, kind, fragment):
    result = results[command, kind]
    assert result.returncode in (1, 2), (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line or ": error: " in line]
    assert len(errors) == 1, result.stderr[-3000:]
    assert fragment in errors[0], errors[0]
    assert (world.tmp / "text.txt").is_file() and (world.tmp / "nonempty/keep.txt").read_text() == "mine\n"
