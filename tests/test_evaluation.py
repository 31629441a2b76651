import numpy as np
import pytest
import torch

from mygo.evaluation import KnownAnswers, metrics_from_ranks, rank, rank_filtered, summarize_ranks


def test_hand_computed_ranks_with_ties_and_filter():
    scores = torch.tensor([
        [0.9, 0.5, 0.5, 0.1, 0.7],     # target 1 (0.5): greater {0, 4}, tie {2}
        [0.2, 0.8, 0.8, 0.8, 0.1],     # target 2 (0.8): ties {1, 3}; 3 is filtered
        [1.0, 0.3, 0.2, 0.0, 0.0],     # target 0 (1.0), known includes target itself
    ])
    targets = torch.tensor([1, 2, 0])
    known = torch.tensor([
        [False, False, False, False, False],
        [False, False, False, True, False],
        [True, True, False, False, False],
    ])
    r = rank(scores, targets, known)
    assert r["optimistic"].tolist() == [3, 1, 1]
    assert r["pessimistic"].tolist() == [4, 2, 1]
    assert r["realistic"].tolist() == [3.5, 1.5, 1]


def test_filtered_entries_never_count_and_target_never_filtered():
    scores = torch.tensor([[5.0, 4.0, 3.0, 2.0]])
    known = torch.tensor([[True, True, True, True]])        # everything, target included
    r = rank(scores, torch.tensor([3]), known)
    assert r["realistic"].item() == 1.0
    assert not any(torch.isnan(v).any() for v in r.values())


def test_constant_scores_give_middle_rank():
    N = 101
    r = rank(torch.zeros(4, N), torch.tensor([0, 5, 50, 100]), torch.zeros(4, N, dtype=torch.bool))
    assert r["optimistic"].tolist() == [1] * 4
    assert r["pessimistic"].tolist() == [N] * 4
    assert r["realistic"].tolist() == [51.0] * 4
    assert summarize_ranks(r["realistic"])["hits@10"] == 0.0


def test_rank_matches_loop_reference():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (30, 12), generator=g).float()      # many ties
    targets = torch.randint(0, 12, (30,), generator=g)
    known = torch.rand(30, 12, generator=g) < 0.3
    fast = rank(scores, targets, known)
    for b in range(30):
        t = targets[b].item()
        others = [j for j in range(12) if j != t and not known[b, j]]
        greater = sum(scores[b, j] > scores[b, t] for j in others)
        equal = sum(scores[b, j] == scores[b, t] for j in others)
        assert fast["optimistic"][b] == 1 + greater
        assert fast["pessimistic"][b] == 1 + greater + equal


def test_summaries():
    s = summarize_ranks(torch.tensor([1.0, 2.0, 4.0, 20.0]))
    assert s["mrr"] == pytest.approx((1 + 0.5 + 0.25 + 0.05) / 4)
    assert s["mr"] == pytest.approx(6.75)
    assert (s["hits@1"], s["hits@3"], s["hits@10"]) == (0.25, 0.5, 0.75)


def test_known_answers_both_directions():
    known = KnownAnswers([np.array([[0, 0, 1], [0, 0, 2]]), np.array([[3, 0, 1]])])
    mask = known.mask(np.array([0, 1]), np.array([0, 0]), np.array([False, True]), 4)
    assert mask.tolist() == [[False, True, True, False], [True, False, False, True]]


def test_metrics_keys():
    ranks = {k: np.array([1.0, 3.0, 2.0, 8.0]) for k in ("optimistic", "pessimistic", "realistic")}
    ranks.update(relation=np.array([0, 0, 1, 1]), predict_head=np.array([False, True, False, True]))
    metrics, per_relation = metrics_from_ranks(ranks, ["a", "b"])
    for key in ("mrr", "mr", "hits@1", "hits@3", "hits@10"):
        assert key in metrics and key in metrics["head"] and key in metrics["optimistic"]
    assert metrics["tail"]["mrr"] == pytest.approx((1 + 0.5) / 2)
    assert [r["name"] for r in per_relation] == ["a", "b"]


def test_known_answers_pairs_equal_a_dictionary_of_the_triples():
    """Each query's answers from the sorted index are those of a plain dictionary built from the
    triples: duplicates (within and across splits) once, unknown queries none, an empty index."""
    rng = np.random.default_rng(0)
    splits = [rng.integers(0, 9, (60, 3)), rng.integers(0, 9, (15, 3))]
    splits[1][:5] = splits[0][:5]                                   # the same triples in two splits
    reference: dict[tuple[int, int, int], set[int]] = {}
    for h, r, t in np.concatenate(splits).tolist():
        reference.setdefault((h, r, 0), set()).add(t)
        reference.setdefault((t, r, 1), set()).add(h)
    known, relation = rng.integers(0, 11, 200), rng.integers(0, 11, 200)   # some ids in no triple
    head = rng.random(200) < 0.5
    for index, expected in ((KnownAnswers(splits), reference), (KnownAnswers([]), {})):
        rows, cols = index.pairs(known, relation, head)
        got: dict[int, list[int]] = {}
        for row, col in zip(rows.tolist(), cols.tolist()):
            got.setdefault(row, []).append(col)
        for i, key in enumerate(zip(known.tolist(), relation.tolist(), head.astype(int).tolist())):
            assert sorted(got.get(i, [])) == sorted(expected.get(key, set())), (i, key)
        mask = index.mask(known, relation, head, 11)
        assert mask.sum().item() == len(rows)
        assert torch.equal(rows, torch.sort(rows).values)              # each batch's rows in order
        as_tensors = index.pairs(*(torch.as_tensor(a) for a in (known, relation, head)))    # as ranking passes them
        assert torch.equal(as_tensors[0], rows) and torch.equal(as_tensors[1], cols)


def test_rank_with_answer_pairs_equals_rank_with_a_mask():
    g = torch.Generator().manual_seed(1)
    scores = torch.randint(0, 6, (40, 15), generator=g).float()      # many ties
    scores[3, 4] = float("nan")
    targets = torch.randint(0, 15, (40,), generator=g)
    known = torch.rand(40, 15, generator=g) < 0.4
    known[torch.arange(0, 40, 3), targets[::3]] = True               # the target among the answers
    dense = rank(scores, targets, known)
    rows, cols = known.nonzero(as_tuple=True)
    order = torch.randperm(len(rows), generator=g)                    # pairs in any order
    sparse = rank_filtered(scores, targets, rows[order], cols[order])
    for kind in dense:
        assert torch.equal(dense[kind], sparse[kind])
    none = rank_filtered(scores, targets, torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    assert torch.equal(none["pessimistic"], rank(scores, targets, torch.zeros_like(known))["pessimistic"])
