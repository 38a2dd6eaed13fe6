"""Search, per-query ranks and metrics against hand-computed values; bootstrap and paired tests;
a TF-IDF encoder (real computation, scikit-learn) evaluated end to end on the real CoSQA dev task."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from workbench import paths
from workbench.errors import WorkbenchError
from workbench.evaluation import (
    EvalResult,
    bootstrap_ci,
    evaluate,
    metrics_from_table,
    minimum_detectable_effect,
    minimum_detectable_effect_of_average,
    paired_bootstrap,
    paired_randomization_test,
    rank_of_first_relevant,
    ranking_table,
)
from workbench.retrieval import search
from workbench.tasks import RetrievalTask, load_cosqa


def score_task(scores: np.ndarray, qrels: dict[str, dict[str, int]], k: int = 1000) -> pd.DataFrame:
    """Ranking table where query i scores code j exactly ``scores[i, j]`` (query rows = scores, codes = I)."""
    nq, nc = scores.shape
    qids, cids = [f"q{i}" for i in range(nq)], [f"c{j}" for j in range(nc)]
    task = RetrievalTask("hand", {q: "text" for q in qids}, {c: "code" for c in cids}, qrels).validate()
    return ranking_table(task, scores.astype(np.float32), np.eye(nc, dtype=np.float32), qids, cids, k=k)


def descending(nc: int, order: list[int]) -> np.ndarray:
    """A score row putting codes in ``order`` first (rank 1, 2, ...), the others after."""
    row = np.zeros(nc)
    for r, j in enumerate(order):
        row[j] = nc - r
    return row


# ----------------------------------------------------------------------------------- hand-computed


def test_mrr_recall_map_ranks_1_4_and_beyond_k() -> None:
    nc, k = 7, 5
    scores = np.stack(
        [
            descending(nc, [0, 1, 2, 3, 4, 5, 6]),  # gold c0 at rank 1
            descending(nc, [0, 1, 2, 3, 4, 5, 6]),  # gold c3 at rank 4
            descending(nc, [0, 1, 2, 3, 4, 5, 6]),  # gold c5 at rank 6 > k: counts 0
        ]
    )
    table = score_task(scores, {"q0": {"c0": 1}, "q1": {"c3": 1}, "q2": {"c5": 1}}, k=k)
    assert table["qid"].tolist() == ["q0", "q1", "q2"]
    assert table["rank"].tolist() == [1, 4, 0]
    assert table["rr"].tolist() == [1.0, 0.25, 0.0]
    m = metrics_from_table(table)
    assert m["mrr"] == pytest.approx((1 + 0.25 + 0) / 3 * 100)
    assert round(m["mrr"], 2) == 41.67
    assert round(m["recall@1"], 2) == 33.33
    assert round(m["recall@5"], 2) == 66.67
    assert m["recall@10"] == pytest.approx(100.0)  # the pool (7) is smaller than 10: all retrieved
    assert round(m["map"], 2) == 41.67  # one gold per query: AP = RR within k
    assert m["n_queries"] == 3
    # NDCG@10, one gold: 1/log2(rank+1) -> 1, 1/log2(5), 1/log2(7)
    assert table["ndcg@10"].tolist() == pytest.approx([1.0, 1 / math.log2(5), 1 / math.log2(7)])


def test_graded_multi_relevant_query_ndcg_and_ap() -> None:
    nc = 12
    # ranking c0..c11 in order; relevant: c1 (grade 2) at rank 2, c3 (grade 1) at rank 4, c11 (grade 1) at rank 12
    scores = descending(nc, list(range(nc)))[None, :]
    qrels = {"q0": {"c1": 2, "c3": 1, "c11": 1, "c5": 0}}  # a grade-0 judgement is not relevant
    row = score_task(scores, qrels).iloc[0]
    dcg = (2**2 - 1) / math.log2(3) + (2**1 - 1) / math.log2(5)  # c11 is beyond 10
    idcg = (2**2 - 1) / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert row["ndcg@10"] == pytest.approx(dcg / idcg)
    assert row["ndcg@10"] == pytest.approx(0.562456, abs=1e-6)
    assert row["rank"] == 2 and row["rr"] == 0.5 and row["n_relevant"] == 3
    assert (
        row["recall@1"] == 0.0
        and row["recall@5"] == pytest.approx(2 / 3)
        and row["recall@10"] == pytest.approx(2 / 3)
    )
    # AP over the top 1000: precision 1/2, 2/4, 3/12 at the relevant ranks, over 3 relevant
    assert row["ap"] == pytest.approx((1 / 2 + 2 / 4 + 3 / 12) / 3)
    # AP over the top 5: relevant at 2 and 4 only, normalised by min(3, 5) = 3
    assert score_task(scores, qrels, k=5).iloc[0]["ap"] == pytest.approx((1 / 2 + 2 / 4) / 3)
    # normalised by min(n_relevant, k): with k = 2 the one relevant in reach counts in full
    assert score_task(scores, qrels, k=2).iloc[0]["ap"] == pytest.approx((1 / 2) / 2)


def test_map_two_queries_hand_computed() -> None:
    nc = 6
    scores = np.stack([descending(nc, [0, 1, 2, 3, 4, 5]), descending(nc, [5, 4, 3, 2, 1, 0])])
    # q0: relevant c0, c2 -> ranks 1, 3 -> AP = (1/1 + 2/3) / 2 ; q1: relevant c0 -> rank 6 -> AP = 1/6
    table = score_task(scores, {"q0": {"c0": 1, "c2": 1}, "q1": {"c0": 1}})
    assert table["ap"].tolist() == pytest.approx([(1 + 2 / 3) / 2, 1 / 6])
    assert metrics_from_table(table)["map"] == pytest.approx(((1 + 2 / 3) / 2 + 1 / 6) / 2 * 100)
    assert metrics_from_table(table)["mrr"] == pytest.approx((1 + 1 / 6) / 2 * 100)


def test_rank_of_first_relevant() -> None:
    assert rank_of_first_relevant(["a", "b", "c"], {"c", "z"}) == 3
    assert rank_of_first_relevant(["a", "b"], ["z"]) == 0
    assert rank_of_first_relevant([], {"a"}) == 0


def test_search_exact_and_clipped() -> None:
    rng = np.random.default_rng(0)
    q, c = rng.normal(size=(5, 8)), rng.normal(size=(30, 8))  # float64: converted
    scores, idx = search(q, c, k=10)
    full = q @ c.T
    assert idx.shape == (5, 10) and scores.dtype == np.float32
    assert (idx == np.argsort(-full, axis=1)[:, :10]).all()
    assert np.allclose(scores, np.sort(full, axis=1)[:, ::-1][:, :10], atol=1e-5)
    assert search(q, c, k=1000)[1].shape == (5, 30)
    with pytest.raises(WorkbenchError, match="dim"):
        search(q, c[:, :4], k=3)
    with pytest.raises(WorkbenchError, match="NaN"):
        search(np.full((1, 8), np.nan), c, k=3)


def test_search_orders_ties_by_corpus_row() -> None:
    c = np.zeros((50, 2), np.float32)
    c[:, 0] = [1.0 if j % 3 == 0 else 0.5 for j in range(50)]  # many exact ties
    scores, idx = search(np.ones((25, 2), np.float32), c, k=50)
    assert idx[0].tolist() == list(range(0, 50, 3)) + [j for j in range(50) if j % 3]
    assert (idx == idx[0]).all()
    # at a cut-off inside a tie, which tied codes make it is faiss's choice, but they come in row order
    scores, idx = search(np.ones((25, 2), np.float32), c, k=30)
    assert idx[0, :17].tolist() == list(range(0, 50, 3))
    assert (np.diff(idx[:, 17:], axis=1) > 0).all() and (idx[:, 17:] % 3 != 0).all()
    assert (np.diff(scores, axis=1) <= 0).all()


def test_ranking_table_matches_codexglue_style_argsort() -> None:
    """Random embeddings (no ties): ranks equal a full numpy sort of the score matrix, as CodeXGLUE does."""
    rng = np.random.default_rng(1)
    nq, nc = 40, 1500
    q, c = rng.normal(size=(nq, 16)).astype(np.float32), rng.normal(size=(nc, 16)).astype(np.float32)
    gold = rng.integers(0, nc, size=nq)
    qids, cids = [f"q{i}" for i in range(nq)], [f"c{j}" for j in range(nc)]
    task = RetrievalTask(
        "r", {x: "t" for x in qids}, {x: "t" for x in cids}, {qids[i]: {cids[gold[i]]: 1} for i in range(nq)}
    )
    table = ranking_table(task, q, c, qids, cids, k=1000)
    sort_ids = np.argsort(-(q @ c.T), axis=1)
    ranks = np.array([int(np.where(sort_ids[i] == gold[i])[0][0]) + 1 for i in range(nq)])
    expect_rr = np.where(ranks <= 1000, 1.0 / ranks, 0.0)
    assert table["rank"].tolist() == [r if r <= 1000 else 0 for r in ranks]
    assert table["rr"].to_numpy() == pytest.approx(expect_rr)
    assert (ranks > 1000).any()  # the cut-off is exercised


def test_ranking_table_rejects_unjudged_query() -> None:
    task = RetrievalTask("t", {"q": "a"}, {"c": "b"}, {})
    with pytest.raises(WorkbenchError, match="no relevant code"):
        ranking_table(task, np.ones((1, 2)), np.ones((1, 2)), ["q"], ["c"])


# ------------------------------------------------------------------------------- bootstrap, paired


def table_from_rr(rr: np.ndarray) -> pd.DataFrame:
    n = len(rr)
    return pd.DataFrame(
        {
            "qid": [f"q{i}" for i in range(n)],
            "rank": 1,
            "n_relevant": 1,
            "rr": rr,
            "recall@1": (rr == 1).astype(float),
            "recall@5": (rr >= 0.2).astype(float),
            "recall@10": (rr >= 0.1).astype(float),
            "ndcg@10": rr,
            "ap": rr,
        }
    )


def test_bootstrap_ci_contains_estimate_and_zero_width_when_constant() -> None:
    rng = np.random.default_rng(0)
    table = table_from_rr(1.0 / rng.integers(1, 20, size=300))
    m, ci = metrics_from_table(table), bootstrap_ci(table, n_boot=2000, seed=0)
    assert set(ci) == {"mrr", "recall@1", "recall@5", "recall@10", "ndcg@10", "map"}
    for name, (lo, hi) in ci.items():
        assert lo <= m[name] <= hi and lo < hi
    assert bootstrap_ci(table, n_boot=500, seed=7) == bootstrap_ci(table, n_boot=500, seed=7)
    flat = bootstrap_ci(table_from_rr(np.full(50, 0.5)), n_boot=200)
    assert flat["mrr"] == pytest.approx((50.0, 50.0))


def test_paired_tests_detect_a_clear_difference_and_not_a_null_one() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 0.6, size=400)
    a = table_from_rr(base)
    better = table_from_rr(np.minimum(base + rng.uniform(0.05, 0.35, size=400), 1.0)).iloc[
        ::-1
    ]  # order: by qid
    boot = paired_bootstrap(a, better, metric="mrr", n_boot=2000, seed=0)
    assert boot["delta"] > 10 and boot["ci"][0] > 0 and boot["p_value"] < 0.01
    assert boot["mean_b"] - boot["mean_a"] == pytest.approx(boot["delta"])
    perm = paired_randomization_test(a, better, n_perm=2000, seed=0)
    assert perm["delta"] == pytest.approx(boot["delta"]) and perm["p_value"] < 0.01

    same_dist = table_from_rr(rng.uniform(0, 0.6, size=400))
    boot0 = paired_bootstrap(a, same_dist, n_boot=2000, seed=0)
    assert boot0["ci"][0] < 0 < boot0["ci"][1] and boot0["p_value"] > 0.05
    assert paired_randomization_test(a, same_dist, n_perm=2000, seed=0)["p_value"] > 0.05
    ident = paired_randomization_test(a, a, n_perm=500)
    assert ident["delta"] == 0 and ident["p_value"] == 1.0
    with pytest.raises(WorkbenchError, match="different queries"):
        paired_bootstrap(a, a.iloc[:10])


Z_SUM = 1.959964 + 0.841621  # z_{0.975} + z_{0.80}: a two-sided test at alpha 0.05 with 80% power


def test_minimum_detectable_effect_by_hand() -> None:
    # diffs [1, -1, 2, 0, 3, -2, 1, 0]: sum 4, mean 0.5; deviations +-0.5 (x4), +-1.5 (x2), +-2.5 (x2)
    # -> squares 4 * 0.25 + 2 * 2.25 + 2 * 6.25 = 18; var (ddof 1) 18 / 7; sd 1.603567
    # -> SE = sd / sqrt(8) = 0.566947; MDE = 2.801585 * 0.566947 = 1.588350
    diffs = np.array([1, -1, 2, 0, 3, -2, 1, 0], dtype=float)
    assert minimum_detectable_effect(diffs) == pytest.approx(Z_SUM * math.sqrt(18 / 7) / math.sqrt(8), rel=1e-6)
    assert minimum_detectable_effect(diffs) == pytest.approx(1.588350, abs=1e-5)
    # alpha 0.01, power 0.9: (2.575829 + 1.281552) * 0.566947 = 2.186929
    assert minimum_detectable_effect(diffs, alpha=0.01, power=0.9) == pytest.approx(2.186929, abs=1e-5)
    # the same spread over 4x the queries: half the MDE (sd with ddof 1 moves a little: 18*4 / 31)
    assert minimum_detectable_effect(np.tile(diffs, 4)) == pytest.approx(Z_SUM * math.sqrt(72 / 31) / math.sqrt(32), rel=1e-6)
    assert math.isnan(minimum_detectable_effect([3.0])) and math.isnan(minimum_detectable_effect([]))
    assert minimum_detectable_effect([2.0, 2.0, 2.0]) == 0.0
    with pytest.raises(WorkbenchError, match="power"):
        minimum_detectable_effect(diffs, power=1.0)


def test_minimum_detectable_effect_of_an_average_by_hand() -> None:
    # set 1: the diffs above, var 18/7 over n 8; set 2: [2, 4, 0, 2], mean 2, squares 0+4+4+0 = 8,
    # var 8/3 over n 4. SE of the average of the two set means = sqrt(18/56 + 8/12) / 2
    # = sqrt(0.321429 + 0.666667) / 2 = 0.497015; MDE = 2.801585 * 0.497015 = 1.392430
    d1 = [1, -1, 2, 0, 3, -2, 1, 0]
    d2 = [2, 4, 0, 2]
    assert minimum_detectable_effect_of_average([d1, d2]) == pytest.approx(
        Z_SUM * math.sqrt(18 / 56 + 8 / 12) / 2, rel=1e-6)
    assert minimum_detectable_effect_of_average([d1, d2]) == pytest.approx(1.392430, abs=1e-5)
    # one set: the plain MDE
    assert minimum_detectable_effect_of_average([d1]) == pytest.approx(minimum_detectable_effect(d1))
    assert math.isnan(minimum_detectable_effect_of_average([d1, [1.0]]))
    assert math.isnan(minimum_detectable_effect_of_average([]))


def test_paired_tests_report_the_minimum_detectable_effect() -> None:
    # rr of a: [0.5, 0.5, 0.2, 1.0], of b: [1.0, 0.5, 0.25, 0.5] -> diffs (percent) [50, 0, 5, -50]
    # mean 1.25; deviations 48.75, -1.25, 3.75, -51.25 -> squares 2376.5625 + 1.5625 + 14.0625
    # + 2626.5625 = 5018.75; var (ddof 1) 1672.9167; sd 40.9013; SE 20.4506; MDE 2.801585 * 20.4506 = 57.2942
    a = table_from_rr(np.array([0.5, 0.5, 0.2, 1.0]))
    b = table_from_rr(np.array([1.0, 0.5, 0.25, 0.5]))
    boot = paired_bootstrap(a, b, n_boot=200, seed=0)
    assert boot["delta"] == pytest.approx(1.25)
    assert boot["mde"] == pytest.approx(Z_SUM * math.sqrt(5018.75 / 3) / 2, rel=1e-6)
    assert boot["mde"] == pytest.approx(57.2942, abs=1e-3)
    assert paired_randomization_test(a, b, n_perm=100)["mde"] == pytest.approx(boot["mde"])


# ------------------------------------------------------------------------------ end to end, TF-IDF

_WORD = re.compile(r"[A-Za-z][a-z]+|[A-Z]+(?![a-z])|\d+")


def identifier_words(text: str) -> list[str]:
    """Words with snake_case and camelCase split: 'is_iterableButNot' -> is, iterable, but, not."""
    return [w.lower() for w in _WORD.findall(text)]


class TfidfEncoder:
    """A real, deterministic bag-of-words encoder: TF-IDF fitted on the pool, L2-normalised rows."""

    name = "tfidf"

    def __init__(self, codes: list[str]):
        self.vectorizer = TfidfVectorizer(
            tokenizer=identifier_words,
            lowercase=False,
            token_pattern=None,
            sublinear_tf=True,
            dtype=np.float32,
        )
        self.vectorizer.fit(codes)

    def encode(
        self,
        texts: list[str],
        kind: str,
        batch_size: int = 64,
        bf16: bool = False,
        show_progress: bool = False,
    ) -> np.ndarray:
        assert kind in ("query", "code")
        return self.vectorizer.transform(texts).toarray().astype(np.float32)


@pytest.fixture(scope="module")
def tfidf_cosqa() -> tuple[RetrievalTask, TfidfEncoder, EvalResult]:
    if not (paths.cosqa_dir() / "cosqa-retrieval-dev-500.json").is_file():
        pytest.skip(f"CoSQA files not found in {paths.cosqa_dir()}")
    task = load_cosqa()
    enc = TfidfEncoder(list(task.corpus.values()))
    return task, enc, evaluate(enc, task, n_boot=1000, seed=0, show_progress=False)


def test_tfidf_on_cosqa_dev(tfidf_cosqa) -> None:
    _, _, res = tfidf_cosqa
    m = res.metrics
    # measured once (scikit-learn TF-IDF, identifier-split words, sublinear tf, fitted on the 6,267 codes)
    assert m["n_queries"] == 500
    assert m["mrr"] == pytest.approx(29.31, abs=0.5)
    assert m["recall@1"] == pytest.approx(17.2, abs=0.5)
    assert m["recall@5"] == pytest.approx(42.4, abs=0.5)
    assert m["recall@10"] == pytest.approx(53.0, abs=0.5)
    assert m["ndcg@10"] == pytest.approx(34.05, abs=0.5)
    assert m["map"] == pytest.approx(m["mrr"])  # one gold per query
    lo, hi = res.ci["mrr"]
    assert lo < m["mrr"] < hi and 4 < hi - lo < 8
    assert res.model == "tfidf" and res.task == "cosqa-dev" and len(res.per_query) == 500
    d = res.to_dict()
    json.dumps(d)
    assert d["n"] == 500 and d["metrics"]["mrr"] == pytest.approx(m["mrr"])
    assert set(d["seconds"]) >= {"encode_queries", "encode_corpus", "search", "total"}


def test_tfidf_ranks_agree_with_brute_force(tfidf_cosqa) -> None:
    """Each rank lies between the optimistic and pessimistic rank under ties of a full dense scoring."""
    task, enc, res = tfidf_cosqa
    qids, cids = list(task.queries), list(task.corpus)
    q = enc.encode([task.queries[x] for x in qids], "query")
    c = enc.encode([task.corpus[x] for x in cids], "code")
    s = q @ c.T
    gold = np.array([cids.index(next(iter(task.qrels[x]))) for x in qids])
    g = s[np.arange(len(qids)), gold][:, None]
    best = (s > g + 1e-6).sum(axis=1) + 1
    worst = (s >= g - 1e-6).sum(axis=1)
    rank = res.per_query["rank"].to_numpy()
    inside = rank > 0
    assert ((best[inside] <= rank[inside]) & (rank[inside] <= worst[inside])).all()
    assert (worst[~inside] > 1000).all()  # rank 0: at least 1000 codes score >= the gold
    assert (rank == 1).mean() * 100 == pytest.approx(res.metrics["recall@1"])


def test_evaluate_skips_unjudged_queries_and_names_model() -> None:
    class OneHot:
        def encode(self, texts, kind, batch_size, bf16, show_progress):
            vocab = ["sort", "read", "add"]
            return np.array([[float(w in t) for w in vocab] for t in texts], np.float32)

    task = RetrievalTask(
        "tiny",
        {"q1": "sort", "q2": "read", "q3": "unjudged add"},
        {"c1": "read", "c2": "sort", "c3": "add"},
        {"q1": {"c2": 1}, "q2": {"c1": 1}},
    )
    res = evaluate(OneHot(), task, n_boot=100, show_progress=False, model_name="onehot")
    assert res.model == "onehot" and res.metrics["n_queries"] == 2 and res.metrics["mrr"] == 100.0
    assert res.meta["n_queries_skipped"] == 1
    assert res.ci["mrr"] == (100.0, 100.0)
