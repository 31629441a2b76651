"""Recipes (conf/, DVC's Hydra composition), param validation, and the paper's runs set up as the
README says: benchmark folders tracked by DVC, queued sweeps, released token files."""
import argparse
import csv
import io
import json
from pathlib import Path

import pytest
import torch
import yaml

from conftest import ROOT, write_params
from helpers import dvc, make_clone, ran, run_queue, sh
from mygo.params import load_params

RECIPES = sorted(p.stem for p in (ROOT / "conf" / "recipe").glob("*.yaml"))


def compose(tmp_path, overrides=()) -> Path:
    from dvc.utils.hydra import compose_and_dump
    out = tmp_path / "params.yaml"
    compose_and_dump(out, str(ROOT / "conf"), None, "config", "", list(overrides))
    return out


def test_params_yaml_is_the_composed_default_recipe(tmp_path):
    """`dvc exp run` without -S rewrites params.yaml from conf/: it must come out unchanged."""
    assert compose(tmp_path).read_text() == (ROOT / "params.yaml").read_text()


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_composes_into_valid_params(tmp_path, recipe):
    params = load_params(compose(tmp_path, [f"recipe={recipe}"]))
    assert params.recipe == recipe
    assert params.train.model.init == "reference"


def test_paper_recipes_hold_the_run_script_values(tmp_path):
    db15k = load_params(compose(tmp_path, ["recipe=db15k"]))
    assert (db15k.dataset, db15k.max_vis_token, db15k.max_txt_token) == ("DB15K", 8, 4)
    assert (db15k.train.model.dim, db15k.train.model.hidden_dim, db15k.train.model.num_head, db15k.train.model.num_layer_dec) == (256, 1024, 2, 1)
    assert (db15k.train.model.emb_dropout, db15k.train.model.vis_dropout, db15k.train.model.txt_dropout) == (0.6, 0.3, 0.1)
    train = db15k.train
    assert (train.lr, train.mu, train.epochs, train.batch_size, train.t0, train.eval_every) == (1e-3, 0.01, 1500, 2048, 50, 50)
    mkgw = load_params(compose(tmp_path, ["recipe=mkg-w"]))
    assert (mkgw.dataset, mkgw.max_txt_token, mkgw.train.model.num_head, mkgw.train.model.num_layer_dec) == ("MKG-W", 8, 4, 2)
    assert (mkgw.train.model.emb_dropout, mkgw.train.model.vis_dropout, mkgw.train.lr, mkgw.train.mu) == (0.9, 0.4, 5e-4, 1e-3)


def test_overrides_apply_on_top_of_a_recipe(tmp_path):
    params = load_params(compose(tmp_path, ["recipe=db15k", "max_vis_token=16", "train.model.init=ours",
                                            "dataset=MyGraph"]))
    assert (params.max_vis_token, params.train.model.init, params.dataset, params.train.model.dim) == (16, "ours", "MyGraph", 256)


def test_unknown_recipe_lists_the_known_ones(tmp_path):
    with pytest.raises(Exception, match="db15k"):
        compose(tmp_path, ["recipe=nope"])


@pytest.mark.parametrize("overrides, message", [
    ({"max_vis_token": -1}, r"max_vis_token = -1: must be >= 0"),
    ({"max_vis_token": "abc"}, r"max_vis_token = 'abc': expected an integer"),
    ({"max_txt_token": 2.5}, r"max_txt_token = 2.5: expected an integer"),
    ({"train": {"lr": 0}}, r"train.lr = 0: must be > 0"),
    ({"train": {"batch_size": 0}}, r"train.batch_size = 0: must be >= 1"),
    ({"train": {"model": {"emb_dropout": 1.5}}}, r"train.model.emb_dropout = 1.5: must be >= 0 and < 1"),
    ({"train": {"model": {"core_dropout": 1.0}}}, r"train.model.core_dropout = 1.0: must be >= 0 and < 1"),
    ({"train": {"model": {"init": "kaiming"}}}, r"train.model.init = 'kaiming': must be one of 'reference', 'ours'"),
    ({"train": {"model": {"num_head": 3}}}, r"num_head = 3: must divide train.model.dim = 32"),
    ({"train": {"amp": "yes"}}, r"train.amp = 'yes': expected true or false"),
    ({"train": {"device": "gpu"}}, r"train.device = 'gpu': must be auto, cpu, cuda or cuda:N"),
    ({"train": {"epochs": "ten"}}, r"train.epochs = 'ten': expected an integer"),
    ({"train": {"lr_typo": 1}}, r"train: unknown key\(s\) \['lr_typo'\]"),
    ({"download_images": {"max_failure_rate": 2}}, r"download_images.max_failure_rate = 2: must be >= 0 and <= 1"),
    ({"download_images": {"timeout": -1}}, r"download_images.timeout = -1: must be > 0"),
    ({"tokenize_images": {"image_tokenizer": "clip"}}, r"tokenize_images.image_tokenizer = 'clip': must be one of"),
    ({"tokenize_text": {"batch_size": 0}}, r"tokenize_text.batch_size = 0: must be >= 1"),
    ({"evaluate": {"batch_size": -5}}, r"evaluate.batch_size = -5: must be >= 1"),
    ({"prepare": {"triple_order": "rth"}}, r"prepare.triple_order = 'rth': must be one of"),
    ({"select_tokens": {"visual_json": "x.json"}}, r"select_tokens.visual_json = 'x.json' and select_tokens.visual_table"),
    ({"surprise": 1}, r"unknown top-level key\(s\) \['surprise'\]"),
])
def test_bad_params_name_the_param_value_and_what_is_allowed(tmp_path, overrides, message):
    path = write_params(tmp_path / "params.yaml", overrides)
    with pytest.raises(ValueError, match=message) as err:
        load_params(path)
    assert str(err.value).startswith(str(path))


def test_missing_param_is_named(tmp_path):
    path = write_params(tmp_path / "params.yaml")
    params = yaml.safe_load(path.read_text())
    del params["train"]["model"]["init"]
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ValueError, match=r"train.model: missing key\(s\) \['init'\]"):
        load_params(path)


def test_every_stage_validates_before_work(tmp_path):
    """A bad value fails each stage at once, with the param's name (here: train, before torch work)."""
    from conftest import run_stage
    path = write_params(tmp_path / "params.yaml", {"train": {"lr": 0}})
    for stage, args in (("prepare", [ROOT / "data/raw/demo", tmp_path / "kg"]),
                        ("train", [tmp_path / "kg", tmp_path / "tokens", tmp_path / "model.pt"]),
                        ("evaluate", [tmp_path / "kg", tmp_path / "model.pt", tmp_path / "e.json", tmp_path / "p.json"])):
        result = run_stage(ROOT / f"stages/{stage}.py", *args, "--params", path, check=False)
        assert result.returncode == 1 and "train.lr = 0: must be > 0" in result.stderr, (stage, result.stderr)
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "kg").exists()


# ---- end to end: the README's set-up for the paper's runs ----------------------------------------

def write_release_benchmark(root: Path, num_entities=120, num_relations=6, seed=0, layout="mygo", bom=False):
    """A small benchmark folder as the authors' releases lay it out: MyGO (entity2id.txt without a
    count line, `name id`, triples `h r t`) or NativE (entities.txt / relations.txt, triples `h t r`)."""
    import numpy as np
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    entities = [f"<http://dbpedia.org/resource/Thing_{i}_{'abcdefgh'[i % 8]}>" for i in range(num_entities)]
    relations = [f"<http://dbpedia.org/ontology/rel{r}>" for r in range(num_relations)]
    prefix = "\ufeff" if bom else ""
    triples = set()
    while len(triples) < 5 * num_entities:
        h, t = rng.integers(0, num_entities, 2)
        r = (h + t) % num_relations
        if h != t:
            triples.add((int(h), int(r), int(t)))
    triples = sorted(triples)
    rng.shuffle(triples)
    splits = {"train": triples[: 4 * num_entities], "valid": triples[4 * num_entities: 4 * num_entities + 40],
              "test": triples[4 * num_entities + 40: 4 * num_entities + 80]}
    if layout == "mygo":
        (root / "entity2id.txt").write_text(prefix + "".join(f"{n} {i}\n" for i, n in enumerate(entities)))
        (root / "relation2id.txt").write_text(prefix + "".join(f"{n}\t{i}\n" for i, n in enumerate(relations)))
        for split, rows in splits.items():
            (root / f"{split}.txt").write_text(prefix + "".join(f"{h} {r} {t}\n" for h, r, t in rows))
    elif layout in ("mkgy", "mkgy-count"):    # the MyGO release of MKG-Y: entities.txt / relations.txt hold ids
        count = f"{len(entities)}\r\n" if layout == "mkgy-count" else ""
        (root / "entity2id.txt").write_text(prefix + count + "".join(f"{n} {i}\r\n" for i, n in enumerate(entities)))
        (root / "entities.txt").write_text(prefix + "".join(f"{i}\n" for i in range(len(entities))))
        (root / "relations.txt").write_text(prefix + "".join(f"{r}\n" for r in range(len(relations))))
        for split, rows in splits.items():
            (root / f"{split}.txt").write_text(prefix + "".join(f"{h}\t{r}\t{t}\n" for h, r, t in rows))
    else:
        (root / "entities.txt").write_text(prefix + "\r\n".join(entities) + "\r\n")
        (root / "relations.txt").write_text(prefix + "\r\n".join(relations) + "\r\n")
        for split, rows in splits.items():
            (root / f"{split}.txt").write_text(prefix + "".join(f"{h}\t{t}\t{r}\r\n" for h, r, t in rows))
    return root


@pytest.mark.parametrize("layout, bom", [("mygo", False), ("mygo", True), ("native", False), ("native", True),
                                         ("mkgy", False), ("mkgy", True), ("mkgy-count", True)])
def test_release_layouts_prepare_to_the_same_graph(tmp_path, layout, bom):
    from mygo.graph import load_raw
    reference = load_raw(write_release_benchmark(tmp_path / "ref"))
    graph = load_raw(write_release_benchmark(tmp_path / "x", layout=layout, bom=bom))
    assert graph.entity_names == reference.entity_names
    if layout.startswith("mkgy"):              # no relation names anywhere: a relation is named by its id
        assert graph.relation_names == [str(r) for r in range(len(reference.relation_names))]
    else:
        assert graph.relation_names == reference.relation_names
    for split in ("train", "valid", "test"):
        assert (graph.splits[split] == reference.splits[split]).all()


@pytest.mark.parametrize("entities_txt, message", [
    ("0\n1\n2\n", r"entities.txt: lists 3 ids but entity2id.txt has 120 entries"),
    ("".join(f"{i}\n" for i in range(1, 121)), r"entities.txt: lists integer ids, which must be 0..119 each once; "
                                                 r"missing e.g. \[0\]"),
    ("".join(f"{i}\n" for i in [0, 0] + list(range(2, 120))), r"entities.txt: line 2: duplicate name .0."),
])
def test_an_id_list_that_is_not_the_maps_ids_is_refused(tmp_path, entities_txt, message):
    from mygo.graph import load_raw
    root = write_release_benchmark(tmp_path / "mkgy", layout="mkgy")
    (root / "entities.txt").write_text(entities_txt)
    with pytest.raises(ValueError, match=message):
        load_raw(root)


def test_mixed_layouts_are_rejected_with_file_and_entry(tmp_path):
    from mygo.graph import load_raw
    root = write_release_benchmark(tmp_path / "mixed")
    (root / "entities.txt").write_text("<http://dbpedia.org/resource/Thing_0_a>\nsomething else\n")
    with pytest.raises(ValueError, match=r"entities.txt: entry 1: 'something else' disagrees with entity2id.txt"):
        load_raw(root)


@pytest.mark.slow
def test_readme_benchmark_setup_and_queued_recipe_sweep(tmp_path):
    """README "Reproducing the paper": copy a benchmark in, `dvc add` it, commit, then a queued
    sweep over recipes runs in DVC's temporary workspaces; exp show and params diff show the
    resolved values."""
    clone = make_clone(tmp_path, "repo")
    for name, seed in (("DB15K", 1), ("MKG-W", 2)):
        write_release_benchmark(tmp_path / "shared" / name, seed=seed, bom=name == "MKG-W")
        sh(clone, "cp", "-r", str(tmp_path / "shared" / name), f"data/raw/{name}")
        dvc(clone, "add", f"data/raw/{name}")
    sh(clone, "git", "add", "data/raw")
    sh(clone, "git", "commit", "-qm", "Track the benchmarks")
    quick = ["-S", "train.epochs=2", "-S", "train.eval_every=1"]
    dvc(clone, "exp", "run", "--queue", "-n", "db15k-quick", "-S", "recipe=db15k", *quick)
    dvc(clone, "exp", "run", "--queue", "-n", "mkgw-quick", "-S", "recipe=mkg-w", *quick)
    status = run_queue(clone, timeout=1200, tasks=2)
    assert status.count("Success") == 2, status + dvc(clone, "queue", "logs", "db15k-quick", check=False).stdout[-3000:]
    rows = {r["Experiment"]: r for r in csv.DictReader(io.StringIO(dvc(clone, "exp", "show", "--csv").stdout))}
    db, mk = rows["db15k-quick"], rows["mkgw-quick"]
    assert (db["recipe"], db["dataset"], db["train.model.dim"], db["train.model.emb_dropout"], db["train.epochs"]) == (
        "db15k", "DB15K", "256", "0.6", "2")
    assert (mk["recipe"], mk["dataset"], mk["train.model.num_head"], mk["max_txt_token"]) == ("mkg-w", "MKG-W", "4", "8")
    assert 0.0 <= float(db["mrr"]) <= 1.0 and 0.0 <= float(mk["mrr"]) <= 1.0
    assert not any(key.startswith(("entities", "urls", "valid_in_train")) for key in db)   # no prepare summaries
    dvc(clone, "exp", "apply", "db15k-quick")
    diff = json.loads(dvc(clone, "params", "diff", "--json").stdout)["params.yaml"]
    assert (diff["recipe"]["old"], diff["recipe"]["new"]) == ("demo", "db15k")
    assert (diff["train.model.dim"]["old"], diff["train.model.dim"]["new"]) == (32, 256)


def run_release_dataset(tmp_path, layout: str):
    """A clone holding a `layout` release folder (with BOMs) as data/raw/<layout>, committed and
    run through `dvc exp run -S dataset=<layout>` (2 epochs), which must reach evaluate."""
    clone = make_clone(tmp_path, "repo")
    write_release_benchmark(clone / f"data/raw/{layout}", layout=layout, bom=True)
    sh(clone, "git", "add", f"data/raw/{layout}")
    sh(clone, "git", "commit", "-qm", f"a {layout}-layout dataset")
    result = dvc(clone, "exp", "run", "-S", f"dataset={layout}", "-S", "train.epochs=2")
    assert "evaluate" in ran(result)
    return clone


@pytest.mark.slow
def test_mkgy_release_folder_trains_through_dvc(tmp_path):
    """The MyGO release's MKG-Y shape (entities.txt / relations.txt of ids beside entity2id.txt)
    prepares and trains through `dvc exp run -S dataset=NAME`."""
    clone = run_release_dataset(tmp_path, "mkgy")
    summary = json.loads((clone / "reports/prepare.json").read_text())
    assert (summary["entities"], summary["relations"]) == (120, 6)
    assert 0.0 <= json.loads((clone / "metrics/eval.json").read_text())["mrr"] <= 1.0


@pytest.mark.slow
def test_dataset_without_recipe_and_released_tokens_through_dvc(tmp_path):
    """`dvc exp run -S dataset=NAME` on a NativE-layout folder with BOMs and CRLFs; then released
    token files named in params go through `dvc repro`, and a second `dvc repro` does nothing."""
    clone = run_release_dataset(tmp_path, "native")
    assert json.loads((clone / "reports/prepare.json").read_text())["entities"] == 120

    # released tokens: keys by entity name (visual) and by canonical id (text), as the releases do
    names = [line.strip() for line in (clone / "data/raw/native/entities.txt").read_text("utf-8-sig").splitlines()]
    (clone / "data/raw/native/tokens").mkdir()
    import zipfile
    visual = {name: [i % 7, i % 5, 7] for i, name in enumerate(names[:100])}
    with zipfile.ZipFile(clone / "data/raw/native/tokens/native-visual.json.zip", "w") as archive:
        archive.writestr("native-visual.json", json.dumps(visual))
    torch.save(torch.randn(8, 32), clone / "data/raw/native/tokens/visual.pth")
    (clone / "data/raw/native/tokens/native-textual.json").write_text(
        json.dumps({str(i): [i % 11 + 1, 3] for i in range(len(names))}))
    torch.save(torch.randn(12, 16), clone / "data/raw/native/tokens/textual.pth")
    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["select_tokens"].update(visual_json="tokens/native-visual.json.zip", visual_table="tokens/visual.pth",
                                   visual_pad_row=7, text_json="tokens/native-textual.json",
                                   text_table="tokens/textual.pth")
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    first = dvc(clone, "repro")
    # the folder changed, so prepare re-checks it; its output is the same, so the tokenizers do not re-run
    assert "select_tokens" in ran(first) and "tokenize_text" not in ran(first)
    assert "released: " in first.stdout + first.stderr
    summary = json.loads((clone / "data/processed/entity_tokens/summary.json").read_text())
    assert summary["visual_source"].startswith("released:") and summary["entities_with_visual_tokens"] == 100
    assert summary["text_source"].startswith("released:") and summary["entities_with_text_tokens"] == 120
    second = dvc(clone, "repro")
    assert ran(second) == [], second.stdout


def test_config_and_params_doc_are_rendered_from_the_declarations():
    """conf/config.yaml and docs/params.md come from src/mygo/params.py (one place for every
    default and meaning), and params.yaml holds those defaults (the demo)."""
    import subprocess
    import sys
    from mygo.params import defaults
    result = subprocess.run([sys.executable, str(ROOT / "scripts/params_doc.py")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load((ROOT / "params.yaml").read_text()) == defaults()


def test_a_refused_value_names_the_way_back(tmp_path):
    """When the params file differs from git's last commit (what a refused `-S` leaves behind),
    the check's error says how to restore it; a committed file gets no such advice."""
    import subprocess
    from mygo.cli import check_params
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text())
    for command in (["git", "init", "-q"], ["git", "add", "params.yaml"], ["git", "commit", "-qm", "p"]):
        subprocess.run(command, cwd=tmp_path, env=env, check=True)
    assert check_params.way_back(str(params)) == ""
    params.write_text(params.read_text().replace("max_vis_token: 8", "max_vis_token: -3"))
    args = argparse.Namespace(params=str(params), raw_dir=str(tmp_path / "raw"), marker=None)
    with pytest.raises(ValueError, match=r"max_vis_token = -3: must be >= 0.*`git checkout .*params.yaml` restores"):
        check_params.run(args)

