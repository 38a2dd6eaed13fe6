"""Win / tie / lose, the hard subset and the case viewer, on hand-made rankings and real code."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.case_studies import (
    CaseViewer,
    case_table,
    examples_html,
    hard_subset,
    hard_subset_table,
    most_different_query,
    mrr_table,
    outcomes,
    rankings,
    region_examples,
    region_profile,
    top_k_frame,
    win_tie_lose,
    win_tie_lose_table,
)
from workbench.embeddings import TaskEmbeddings
from workbench.errors import ParameterError
from workbench.tasks import RetrievalTask


def _table(ranks: dict[str, int]) -> pd.DataFrame:
    """A ranking table as evaluate() writes it (rank 0 = gold beyond k)."""
    r = pd.Series(ranks)
    return pd.DataFrame({"qid": r.index, "rank": r.to_numpy(), "rr": [1 / x if x else 0.0 for x in r]})


# model A and B on one task; q5 is beyond k for A, q6 beyond k for both
A = _table({"q1": 1, "q2": 3, "q3": 2, "q4": 7, "q5": 0, "q6": 0})
B = _table({"q1": 2, "q2": 3, "q3": 1, "q4": 4, "q5": 9, "q6": 0})
Z = _table({"q1": 1, "q2": 5, "q3": 4, "q4": 2, "q5": 1, "q6": 0})


def test_win_tie_lose_by_hand():
    o = outcomes(A, B)
    assert o.to_dict() == {"q1": "win", "q2": "tie", "q3": "lose", "q4": "lose", "q5": "lose", "q6": "tie"}
    assert win_tie_lose(A, B) == {"win": 1, "tie": 2, "lose": 3, "total": 6}
    # symmetric: B's wins are A's losses
    assert win_tie_lose(B, A) == {"win": 3, "tie": 2, "lose": 1, "total": 6}
    # only the queries both were asked count
    assert win_tie_lose(A.iloc[:3], B)["total"] == 3


def test_win_tie_lose_table_sums_tasks():
    per_query = {"a": {"t1": A, "t2": A.iloc[:2]}, "b": {"t1": B, "t2": B.iloc[:2], "t3": B}}
    table = win_tie_lose_table(per_query, "a", "b")
    assert list(table.index) == ["t1", "t2", "all"]
    assert table.loc["t2"].to_dict() == {"win": 1, "tie": 1, "lose": 0, "total": 2}
    assert table.loc["all"].to_dict() == {"win": 2, "tie": 3, "lose": 3, "total": 8}
    with pytest.raises(ParameterError, match="no rankings of model 'c'"):
        win_tie_lose_table(per_query, "a", "c")


def test_hard_subset_and_its_mrr_by_hand():
    # gold not first under any of A, B, Z: q2 (3,3,5), q6 (beyond, beyond, beyond); q4 (7,4,2) too
    assert hard_subset({"A": A, "B": B, "Z": Z}) == ["q2", "q4", "q6"]
    assert hard_subset({"A": A, "B": B}) == ["q2", "q4", "q5", "q6"]
    table = hard_subset_table({"A": {"t": A}, "B": {"t": B}, "Z": {"t": Z}}, ["A", "B", "Z"])
    row = table.loc["t"]
    assert row["hard"] == 3 and row["queries"] == 6
    assert row["A"] == pytest.approx(round((1 / 3 + 1 / 7 + 0) / 3 * 100, 2))
    assert row["B"] == pytest.approx(round((1 / 3 + 1 / 4 + 0) / 3 * 100, 2))
    assert row["Z"] == pytest.approx(round((1 / 5 + 1 / 2 + 0) / 3 * 100, 2))
    # MRR on the hard subset is below 50 by construction (no rank 1)
    assert (table[["A", "B", "Z"]] < 50).all(axis=None)


def test_case_table_and_the_most_different_query():
    cases = case_table({"A": {"t": A}, "B": {"t": B}}, "A", "B")
    assert list(cases.columns) == ["task", "qid", "rank_a", "rank_b", "outcome"]
    assert cases.set_index("qid").loc["q4", ["rank_a", "rank_b", "outcome"]].tolist() == [7, 4, "lose"]
    # the largest |log rank_a - log rank_b| with both ranks within max_rank; beyond-k never counts
    a, b = _table({"x": 1, "y": 7, "z": 0, "w": 30}), _table({"x": 2, "y": 1, "z": 1, "w": 1})
    assert most_different_query(a, b, max_rank=10) == "y"
    assert most_different_query(a, b, max_rank=50) == "w"
    assert most_different_query(A, B, max_rank=2) == "q1"  # q1 (1 vs 2) and q3 (2 vs 1) tie: the first
    with pytest.raises(ParameterError, match="within rank 0"):
        most_different_query(A, B, max_rank=0)


def test_rank_tables_are_checked():
    with pytest.raises(ParameterError, match="no column"):
        outcomes(pd.DataFrame({"qid": ["a"]}), B)
    with pytest.raises(ParameterError, match="share no query"):
        outcomes(_table({"x": 1}), B)
    with pytest.raises(ParameterError, match="appears twice"):
        outcomes(pd.DataFrame({"qid": ["a", "a"], "rank": [1, 2]}), B)


CODES = {
    "c1": "def add(a, b):\n    return a + b\n",
    "c2": "def mul(a, b):\n    return a * b\n",
    "c3": "def neg(a):\n    return -a\n",
    "c4": "def ident(a):\n    return a\n",
}


def _embeddings() -> TaskEmbeddings:
    task = RetrievalTask("t", {"qa": "add two numbers", "qb": "negate"}, dict(CODES), {"qa": {"c1": 1}, "qb": {"c3": 1}})
    # 2-D embeddings: qa is closest to c2, then c1; qb closest to c3
    corpus = np.array([[0.8, 0.6], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], np.float32)
    queries = np.array([[1.0, 0.1], [0.1, 1.0]], np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return TaskEmbeddings(task, ["qa", "qb"], list(CODES), queries, corpus)


def test_top_k_frame_marks_the_gold_and_appends_it_with_its_rank():
    e = _embeddings()
    top = top_k_frame(e, "qa", k=1)
    assert top["cid"].tolist() == ["c2", "c1"] and top["rank"].tolist() == [1, 2]
    assert top["gold"].tolist() == [False, True]
    assert top_k_frame(e, "qb", k=2)["gold"].tolist() == [True, False]
    with pytest.raises(ParameterError, match="not in task 't'"):
        top_k_frame(e, "zz")
    per_query = rankings({"m": {"t": e}})
    assert per_query["m"]["t"].set_index("qid")["rank"].to_dict() == {"qa": 2, "qb": 1}
    assert mrr_table(per_query).loc["m", "t"] == pytest.approx(75.0)


def test_case_viewer_renders_both_models_and_the_gold():
    e = _embeddings()
    e2 = TaskEmbeddings(e.task, e.qids, e.cids, e.queries[::-1].copy(), e.corpus)  # a worse model: swapped queries
    per_query = rankings({"good": {"t": e}, "bad": {"t": e2}})
    cases = case_table(per_query, "good", "bad")
    viewer = CaseViewer({"good": {"t": e}, "bad": {"t": e2}}, cases, ["good", "bad"], k=2,
                        categories={"qa": "ambiguous"},
                        augmentations=pd.DataFrame({"pair_id": ["qa"], "kind": ["query rewrite"], "text": ["sum two values"]}))
    page = viewer.html("t", "qa")
    assert "add two numbers" in page and "good" in page and "bad" in page
    assert page.count("&#10003; gold") == 2  # once per model column
    assert "data-map region: <b>ambiguous</b>" in page and "sum two values" in page
    assert "<span" in page  # pygments highlighting
    task, qid = viewer.random_case("win")
    assert cases.set_index("qid").loc[qid, "outcome"] == "win"
    with pytest.raises(ParameterError, match="outcome must be one of"):
        viewer.random_case("draw")
    box = viewer.widget()
    assert "add two numbers" in box.children[2].value or "negate" in box.children[2].value
    with pytest.raises(ParameterError, match="two models"):
        CaseViewer({"good": {"t": e}}, cases, ["good"])


def test_region_examples_and_profile():
    pairs = pd.DataFrame({"id": [f"p{i}" for i in range(9)], "query": [f"query {i} words" for i in range(9)],
                          "code": [f"def f{i}():\n    return {i}\n" for i in range(9)]})
    cats = ["easy-to-learn"] * 3 + ["ambiguous"] * 3 + ["hard-to-learn"] * 3
    dmap = pd.DataFrame({"pair_id": pairs["id"], "confidence": np.linspace(0.9, 0.1, 9),
                         "variability": [0.1, 0.1, 0.1, 0.3, 0.35, 0.4, 0.1, 0.1, 0.05], "correctness": 0.5,
                         "category": cats})
    ex = region_examples(dmap, pairs, n=1)
    assert ex["category"].tolist() == ["easy-to-learn", "ambiguous", "hard-to-learn"]
    assert ex["pair_id"].tolist() == ["p1", "p4", "p7"]  # the median member of each region
    assert "query 4 words" in examples_html(ex)
    ranks = {"a": _table({f"p{i}": 1 + (i % 2) for i in range(9)}), "b": _table({f"p{i}": 1 for i in range(9)})}
    prof = region_profile(dmap, pairs, ranks, "a", "b")
    assert prof.loc["easy-to-learn", "pairs"] == 3 and prof.loc["easy-to-learn", "query words (median)"] == 3
    assert prof.loc["easy-to-learn", "MRR a"] == pytest.approx(round((1 + 0.5 + 1) / 3 * 100, 2))
    assert prof.loc["ambiguous", ["a win", "a tie", "a lose"]].tolist() == [0, 1, 2]
