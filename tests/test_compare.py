"""scripts/compare.py: the params that differ and the headline metrics, seeds averaged."""
import json
import subprocess
import sys

from conftest import ROOT
from mygo.compare import runs_from_exp_show, table


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
    out = subprocess.run([sys.executable, str(ROOT / "scripts/compare.py"), "--json", str(path)], capture_output=True,
                         text=True, check=True).stdout
    assert out.startswith("| runs | max_vis_token | seeds | valid MRR |") and "| m16 | 16 | 1 |" in out
    out = subprocess.run([sys.executable, str(ROOT / "scripts/compare.py"), "--json", str(path), "--csv", "--percent"],
                         capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[0] == "runs,max_vis_token,seeds,valid MRR,test MRR,Hits@1,Hits@3,Hits@10,best epoch"
    path.write_text("{ not json")
    bad = subprocess.run([sys.executable, str(ROOT / "scripts/compare.py"), "--json", str(path)], capture_output=True,
                         text=True)
    assert bad.returncode == 1 and "show.json: line 1: not JSON" in bad.stderr and "Traceback" not in bad.stderr
