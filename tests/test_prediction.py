import numpy as np
import pytest

from mygo.evaluation import KnownAnswers
from mygo.prediction import Query, parse_query_line, predict
from helpers import tiny_model


def test_parse_queries():
    assert parse_query_line("a\tr\t?") == Query("a", "r", None)
    assert parse_query_line("?\tr\tb") == Query(None, "r", "b")
    with pytest.raises(ValueError, match="q.tsv: line 3"):
        parse_query_line("a\tr\tb", "q.tsv", 3)


def test_predict_top_k_and_filter():
    model = tiny_model()
    names = [f"e{i}" for i in range(7)]
    relations = ["r0", "r1", "r2"]
    plain = predict(model, [Query("e0", "r0", None)], names, relations, k=7)[0]
    assert len(plain) == 7 and [s for _, s in plain] == sorted((s for _, s in plain), reverse=True)
    best = plain[0][0]
    known = KnownAnswers(np.array([[0, 0, names.index(best)]]))
    filtered = predict(model, [Query("e0", "r0", None)], names, relations, k=7, known=known)[0]
    assert best not in [n for n, _ in filtered] and len(filtered) == 6
    with pytest.raises(ValueError, match="unknown entity 'zz'"):
        predict(model, [Query("zz", "r0", None)], names, relations)


def test_unknown_names_get_the_closest_known_ones():
    model = tiny_model()
    names = ["chair_010", "chair_011", "table_003", "red", "blue", "wood", "steel"]
    relations = ["made_of", "has_color", "located_in"]
    with pytest.raises(ValueError, match=r"unknown relation 'made-of'; closest: 'made_of'"):
        predict(model, [Query("chair_010", "made-of", None)], names, relations)
    with pytest.raises(ValueError, match=r"unknown entity 'chair_01'; closest: 'chair_01[01]', 'chair_01[01]'"):
        predict(model, [Query("chair_01", "made_of", None)], names, relations)
    with pytest.raises(ValueError, match="k = 0: must be >= 1"):
        predict(model, [Query("chair_010", "made_of", None)], names, relations, k=0)


@pytest.mark.slow
def test_evaluate_and_predict_refuse_a_model_of_another_graph(demo_processed, tmp_path):
    """A model records the graph it was trained on; evaluate and predict refuse another one,
    naming both, whether the other graph is smaller, larger or the same size with other names."""
    from conftest import ROOT, run_stage, write_named, write_params
    root = demo_processed
    params = write_params(tmp_path / "params.yaml", {"train": {"epochs": 1, "eval_every": 1, "device": "cpu"}})
    run_stage(ROOT / "stages/train.py", root / "kg", root / "tokens", tmp_path / "model.pt", "--params", params)
    demo = {name: (ROOT / "data/raw/demo" / f"{name}.tsv").read_text() for name in ("entities", "train", "valid", "test")}

    def variant(label: str, entities: list[str], rename=lambda text: text):
        kept = {line.split("\t")[0] for line in entities}

        def split(text):
            rows = [row.split("\t") for row in rename(text).splitlines()]
            return "".join("\t".join(r) + "\n" for r in rows if r[0] in kept and r[2] in kept)
        write_named(tmp_path / label, "\n".join(entities) + "\n", split(demo["train"]), split(demo["valid"]),
                    split(demo["test"]))
        run_stage(ROOT / "stages/prepare.py", tmp_path / label, tmp_path / f"kg_{label}")
        return tmp_path / f"kg_{label}"

    lines = demo["entities"].splitlines()
    graphs = [variant("smaller", lines[:-10]), variant("larger", lines + [f"extra_{i}" for i in range(10)]),
              variant("renamed", [line.replace("chair_", "stool_") for line in lines],
                      lambda text: text.replace("chair_", "stool_"))]
    for kg in graphs:
        result = run_stage(ROOT / "stages/evaluate.py", kg, tmp_path / "model.pt", tmp_path / "e.json",
                           tmp_path / "p.json", "--params", params, check=False)
        trained_on = f"was trained on a graph of {len(lines)} entities"
        assert result.returncode == 1 and trained_on in result.stderr, result.stderr
        assert str(kg) in result.stderr and not (tmp_path / "e.json").exists()
        predicted = run_stage(ROOT / "scripts/predict.py", "--model", tmp_path / "model.pt", "--kg", kg,
                              "--head", "red", "--relation", "has_color", check=False)
        assert predicted.returncode == 1 and "was trained on a graph" in predicted.stderr
    bad_k = run_stage(ROOT / "scripts/predict.py", "--model", tmp_path / "model.pt", "--kg", root / "kg", "--k", "-1",
                      "--head", "red", "--relation", "has_color", check=False)
    assert bad_k.returncode == 2 and "--k -1: must be >= 1" in bad_k.stderr and "Traceback" not in bad_k.stderr
