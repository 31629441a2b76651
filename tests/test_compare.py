"""`mygo compare` (scripts/compare.py): the params that differ and the headline metrics, seeds
averaged; the workspace when it differs; runs still training marked; verdicts against a baseline,
per relation too."""
import json
import statistics
import subprocess
import sys

import pytest

from conftest import ROOT
from mygo.compare import (ABOVE, ONE_SEED, WITHIN, against_baseline, legend, per_relation, repeats, runs_from_exp_show,
                          short_headers, table, text, verdict, welch)


def entry(rev, name, seed, m, mrr, best_epoch=10):
    params = {"recipe": "demo", "max_vis_token": m, "train": {"seed": seed, "lr": 0.001, "model": {"dim": 64}}}
    metrics = {"metrics/eval.json": {"data": {"mrr": mrr, "hits@1": mrr / 2, "hits@3": mrr, "hits@10": 2 * mrr}},
               "metrics/train/metrics.json": {"data": {"best_epoch": best_epoch, "best": {"mrr": mrr + 0.01}}}}
    return {"rev": rev, "name": name, "error": None, "experiments": None,
            "data": {"rev": rev, "timestamp": None, "params": {"params.yaml": {"data": params}}, "metrics": metrics,
                     "deps": {}, "outs": {}, "meta": {}}}


def exp_show():
    """The shape of `dvc exp show --json` (DVC 3): the workspace, a commit, its experiments."""
    experiments = [{"revs": [entry(f"{i:040x}", name, seed, m, mrr)], "executor": None, "name": name}
                   for i, (name, seed, m, mrr) in enumerate([("m4-s1", 1, 4, 0.20), ("m4-s2", 2, 4, 0.22),
                                                             ("m4-s3", 3, 4, 0.24), ("m16", 2024, 16, 0.15)])]
    main = entry("a" * 40, "main", 2024, 8, 0.17)
    main["experiments"] = experiments
    return [entry("workspace", None, 2024, 8, 0.17), main]


def test_seeds_are_averaged_and_only_differing_params_shown():
    header, rows = table(runs_from_exp_show(exp_show()))
    assert header == ["runs", "max_vis_token", "seeds", "valid MRR", "test MRR", "Hits@1", "Hits@3", "Hits@10",
                      "best epoch"]                       # train.lr, train.model.dim, recipe: the same everywhere
    by_runs = {row[0]: row for row in rows}
    assert set(by_runs) == {"main", "m4-s1, m4-s2, m4-s3", "m16"}
    assert by_runs["m4-s1, m4-s2, m4-s3"][1:5] == ["4", "3", "0.2300 ± 0.0200", "0.2200 ± 0.0200"]
    assert by_runs["m16"][1:5] == ["16", "1", "0.1600", "0.1500"]
    _, rows = table(runs_from_exp_show(exp_show()), percent=True)
    assert {row[0]: row for row in rows}["m4-s1, m4-s2, m4-s3"][4] == "22.00 ± 2.00"


def test_the_script_prints_markdown_or_csv(tmp_path):
    path = tmp_path / "show.json"
    path.write_text(json.dumps(exp_show()))
    out = subprocess.run([sys.executable, str(ROOT / "scripts/compare.py"), "--json", str(path), "--format",
                          "markdown"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("| runs | max_vis_token | seeds | valid MRR |") and "| m16 | 16 | 1 |" in out
    out = subprocess.run([sys.executable, str(ROOT / "scripts/compare.py"), "--json", str(path), "--csv", "--percent"],
                         capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[0] == "runs,max_vis_token,seeds,valid MRR,test MRR,Hits@1,Hits@3,Hits@10,best epoch"
    path.write_text("{ not json")
    bad = subprocess.run([sys.executable, str(ROOT / "scripts/compare.py"), "--json", str(path)], capture_output=True,
                         text=True)
    assert bad.returncode == 1 and "show.json: line 1: not JSON" in bad.stderr and "Traceback" not in bad.stderr


def test_the_workspace_is_a_row_when_its_results_differ_from_its_commit():
    show = exp_show()
    assert "workspace" not in {run.name for run in runs_from_exp_show(show)}       # same as main: no row
    show[0] = entry("workspace", None, 2024, 8, 0.19)                               # a repro made other bytes
    runs = runs_from_exp_show(show)
    assert [run.name for run in runs][:2] == ["workspace", "main"]
    rows = {row[0]: row for row in table(runs)[1]}
    assert rows["workspace"][4] == "0.1900" and rows["main"][4] == "0.1700"
    show[0] = entry("workspace", None, 2024, 16, 0.15)                              # m16's results, left there
    assert "workspace" not in {run.name for run in runs_from_exp_show(show)}
    note = legend(runs)
    assert "`main` is commit aaaaaaa" in note and "`workspace` is this folder's results, which differ from main's" in note
    assert "`m4-s1`, `m4-s2`, `m4-s3`, `m16` are experiments on main" in note


def test_a_run_still_training_shows_no_earlier_test_metrics():
    show = exp_show()
    running = show[1]["experiments"][3]["revs"][0]                      # m16: a live log, no end summary yet
    running["data"]["metrics"]["metrics/train/metrics.json"]["data"].update(step=12)
    queued = entry("f" * 40, "m32", 2024, 32, 0.0)
    queued["data"] = {"rev": "f" * 40}
    show[1]["experiments"].append({"revs": [queued], "executor": {"state": "queued"}, "name": "m32"})
    runs = runs_from_exp_show(show)
    rows = {row[0]: row for row in table(runs)[1]}
    assert rows["m16 (training)"][2:5] == ["0", "0.1600", ""]           # live valid MRR, no test MRR, 0 finished
    assert rows["m32 (queued)"][2:] == ["0", "", "", "", "", "", ""]
    assert "(training): still training" in legend(runs)


@pytest.mark.parametrize("a, b, expected", [
    ([0.10, 0.12, 0.11], [0.30, 0.31, 0.29], ABOVE),
    ([0.10, 0.20, 0.30], [0.15, 0.25, 0.35], WITHIN),
    ([0.10, 0.11, 0.12, 0.10, 0.11], [0.13, 0.14, 0.12, 0.13, 0.15], ABOVE),
    ([0.10], [0.90], ONE_SEED),                       # one seed a side: never a finding
    ([0.10, 0.11, 0.12], [0.90], ONE_SEED),
])
def test_verdicts_follow_welchs_test(a, b, expected):
    diff, se, p, said = verdict(a, b)
    assert said == expected
    assert diff == pytest.approx(statistics.mean(b) - statistics.mean(a))
    if expected != ONE_SEED:
        from scipy.stats import ttest_ind
        assert p == pytest.approx(ttest_ind(b, a, equal_var=False).pvalue)
        assert se == pytest.approx((statistics.variance(a) / len(a) + statistics.variance(b) / len(b)) ** 0.5)


def test_welch_by_hand():
    """t = 0.2 / sqrt(0.01 / 3 + 0.01 / 3) = 2.449, df = 4: two-sided p = 0.0705 (tables)."""
    diff, p = welch([0.0, 0.1, 0.2], [0.2, 0.3, 0.4])
    assert diff == pytest.approx(0.2) and p == pytest.approx(0.0705, abs=5e-4)


def test_one_seed_a_side_is_never_above_the_noise():
    show = exp_show()                 # main and m16: one seed each, m4: three
    header, rows = against_baseline(runs_from_exp_show(show), "main")
    by = {(row[0], row[header.index("metric")]): row for row in rows}
    assert all(row[-1] == ONE_SEED for row in rows)                    # the baseline has a single seed
    assert by[("m4-s1, m4-s2, m4-s3", "test MRR")][header.index("difference")] == "+0.0500 ± 0.0000"


def test_against_a_seed_group_and_per_relation():
    show = exp_show()
    for i, seed in enumerate((1, 2)):                                   # main's group gets 3 seeds
        extra = entry(f"{i + 10:040x}", f"main-s{seed}", seed, 8, 0.17 + 0.01 * (i + 1))
        show[1]["experiments"].append({"revs": [extra], "executor": None, "name": extra["name"]})
    runs = runs_from_exp_show(show)
    header, rows = against_baseline(runs, "main-s1")
    by = {(row[0], row[header.index("metric")]): row for row in rows}
    assert by[("m4-s1, m4-s2, m4-s3", "test MRR")][header.index("seeds")] == "3 vs 3"
    assert by[("m16", "test MRR")][-1] == ONE_SEED
    per = {"main": {"has_color": 0.2, "made_of": 0.5}, "main-s1": {"has_color": 0.21, "made_of": 0.52},
           "main-s2": {"has_color": 0.19, "made_of": 0.51}, "m4-s1": {"has_color": 0.8, "made_of": 0.5},
           "m4-s2": {"has_color": 0.82, "made_of": 0.49}, "m4-s3": {"has_color": 0.81, "made_of": 0.53},
           "m16": {"has_color": 0.5, "made_of": 0.5}}

    def reader(run):
        return json.dumps([{"name": k, "mrr": v} for k, v in per[run.name].items()])
    header, rows = per_relation(runs, "main", reader=reader)
    assert [(row[0], row[1], row[-1]) for row in rows][:2] == [("has_color", "m4-s1, m4-s2, m4-s3", ABOVE),
                                                               ("has_color", "m16", ONE_SEED)]
    assert ("made_of", "m4-s1, m4-s2, m4-s3", WITHIN) in [(row[0], row[1], row[-1]) for row in rows]
    header, rows = per_relation(runs, "main", ["made_of"], reader=reader)
    assert {row[0] for row in rows} == {"made_of"}
    with pytest.raises(ValueError, match="--relations: colour: not a relation of the test split"):
        per_relation(runs, "main", ["colour"], reader=reader)
    with pytest.raises(ValueError, match="--baseline 'nope': no run of that name"):
        against_baseline(runs, "nope")


@pytest.mark.parametrize("content, message", [
    ('{"rev": "workspace"}', "not the output of `dvc exp show --json`"),
    ('[1, 2]', "not the output of `dvc exp show --json`"),
    ('"text"', "not the output of `dvc exp show --json`"),
])
def test_a_saved_file_of_another_shape_is_one_clear_line(tmp_path, content, message):
    path = tmp_path / "show.json"
    path.write_text(content)
    bad = subprocess.run([sys.executable, str(ROOT / "scripts/compare.py"), "--json", str(path)], capture_output=True,
                         text=True)
    assert bad.returncode == 1 and message in bad.stderr and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_the_command_prints_verdicts_and_json(tmp_path):
    path = tmp_path / "show.json"
    path.write_text(json.dumps(exp_show()))
    out = subprocess.run([sys.executable, str(ROOT / "scripts/compare.py"), "--json", str(path), "--baseline", "main",
                          "--format", "json"], capture_output=True, text=True, check=True).stdout
    rows = json.loads(out)
    assert {row["verdict"] for row in rows} == {ONE_SEED} and rows[0]["metric"] == "valid MRR"
    bad = subprocess.run([sys.executable, str(ROOT / "scripts/compare.py"), "--json", str(path), "--per-relation"],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "add --baseline NAME" in bad.stderr



def grid():
    """`dvc exp show --json` after the 9-run grid of docs/experiments.md (m 4 / 8 / 16, seeds 1 to
    3, DVC's generated names) on a commit whose own run has seed 2024."""
    names = ["tidal-mule", "lumpy-bark", "sappy-ruts", "dusty-trap", "brave-fern", "quiet-lamp", "shiny-crab",
             "rusty-moth", "sunny-kite"]
    runs = [entry(f"{i:040x}", names[i], seed, m, 0.2 + 0.01 * m + 0.003 * seed, best_epoch=40 + i)
            for i, (m, seed) in enumerate((m, seed) for m in (4, 8, 16) for seed in (1, 2, 3))]
    main = entry("a" * 40, "main", 2024, 8, 0.17)
    main["experiments"] = [{"revs": [run], "executor": None, "name": run["name"]} for run in runs]
    return [entry("workspace", None, 2024, 8, 0.17), main]


@pytest.mark.parametrize("extra", [[], ["--percent"], ["--baseline", "tidal-mule"],
                                   ["--baseline", "tidal-mule", "--percent"]])
def test_the_default_table_fits_a_120_column_terminal(tmp_path, extra):
    path = tmp_path / "show.json"
    path.write_text(json.dumps(grid()))
    out = subprocess.run([sys.executable, "-m", "mygo", "compare", "--json", str(path), *extra], capture_output=True,
                         text=True, check=True).stdout
    assert max(len(line) for line in out.splitlines()) <= 120, out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["runs", "max_vis_token", "seeds"] and set(lines[1]) == {"-", " "}
    named = any(line.startswith("tidal-mule +2 ") for line in lines)       # a group of 3: its first name +2
    assert named == ("--baseline" not in extra)                           # (the baseline is no row)
    assert all(name in out for name in ("lumpy-bark", "sunny-kite"))           # the legend names every run


def test_a_group_of_many_runs_is_named_by_their_prefix():
    show = exp_show()
    for i, seed in enumerate((4, 5, 6)):
        extra = entry(f"{i + 20:040x}", f"m4-s{seed}", seed, 4, 0.21)
        show[1]["experiments"].append({"revs": [extra], "executor": None, "name": extra["name"]})
    header, rows = table(runs_from_exp_show(show), compact=True)
    by_runs = {row[0]: row for row in rows}
    assert by_runs["m4-*"][1:4] == ["4", "6", "0.225±0.014"]
    assert table(runs_from_exp_show(show))[1][1][0] == "m4-s1, m4-s2, m4-s3, m4-s4, m4-s5, m4-s6"   # Markdown: all


def test_short_headers_keep_columns_apart():
    assert short_headers(["runs", "train.model.use_visual", "train.model.use_text", "seeds"]) == [
        "runs", "use_visual", "use_text", "seeds"]
    assert short_headers(["train.seed", "select_tokens.seed", "max_vis_token"]) == [
        "train.seed", "select_tokens.seed", "max_vis_token"]
    assert text(["a.b", "n"], [["x", "1.5"], ["yy", "+10"]]).splitlines() == ["b     n", "--  ---", "x   1.5",
                                                                               "yy  +10"]


def test_the_baseline_may_be_the_prefix_of_a_seed_groups_names():
    show = exp_show()
    runs = runs_from_exp_show(show)
    header, rows = against_baseline(runs, "m4")                        # m4-s1, m4-s2, m4-s3
    assert {row[0] for row in rows} == {"main", "m16"}
    show[1]["experiments"].append({"revs": [entry("e" * 40, "m4-big", 1, 64, 0.3)], "executor": None,
                                   "name": "m4-big"})
    with pytest.raises(ValueError, match="2 groups of runs are named m4-"):
        against_baseline(runs_from_exp_show(show), "m4")


def test_a_run_that_repeats_another_is_counted_once():
    """An experiment with its commit's params and seed (the demo ablation's all-modalities run
    with seed 2024, say) is the same run again: one seed, not two."""
    show = exp_show()
    again = entry("d" * 40, "main-again", 2024, 8, 0.17)
    other = entry("c" * 40, "main-s1", 1, 8, 0.19)
    show[1]["experiments"] += [{"revs": [run], "executor": None, "name": run["name"]} for run in (again, other)]
    runs = runs_from_exp_show(show)
    assert repeats(runs) == {"main-again": "main"}
    rows = {row[0]: row for row in table(runs)[1]}
    assert rows["main, main-s1"][2] == "2"                               # two seeds, not three
    assert "`main-again` repeats `main` (the same params and seed: counted once)" in legend(runs)
    header, rows = against_baseline(runs, "main-again")                  # the repeat names its group
    assert {row[0] for row in rows} == {"m4-s1, m4-s2, m4-s3", "m16"}
