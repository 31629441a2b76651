import numpy as np
import pytest

from mygo.evaluation import KnownAnswers
from mygo.prediction import Query, parse_query_line, predict
from test_model import tiny_model


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
