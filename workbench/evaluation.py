"""Exact search, ranks, retrieval metrics, bootstrap intervals and paired tests.

Conventions (see ``docs/methods.md``):

- **Search** (:func:`workbench.retrieval.search`) is exact maximum inner product (faiss
  ``IndexFlatIP``) over L2-normalised embeddings, i.e. cosine. Ties: faiss returns equal scores in
  an unspecified (heap) order, so the search
  re-sorts the top k with equal scores in corpus-row order (lower row first); which of several
  codes tied at the k-th score make the cut stays faiss's choice. CodeXGLUE sorts the full score
  matrix with numpy, whose tie order is also arbitrary, so a tied gold's rank may differ there;
  dense embeddings rarely tie, bag-of-words scores (e.g. all zero) do.
- **MRR** follows CodeXGLUE: the reciprocal rank of the first relevant code within the *whole*
  pool, counted 0 when it is beyond rank ``k`` (default 1000): MRR@1000, reported in percent.
- **recall@n** = relevant codes in the top n / relevant codes of the query (BEIR); with one gold
  per query it is the hit rate (success@n).
- **ndcg@10**: gains ``2**grade - 1`` discounted by ``log2(rank + 1)``, ideal DCG from the qrels.
  With binary qrels this equals BEIR / pytrec_eval's value (which uses linear gains, equal for 0/1).
- **ap** (MAP): sum of precision@i at every relevant rank i <= k, divided by
  ``min(n_relevant, k)`` so a query whose relevant set cannot fit in the top k can still reach 1.
  Equal to trec_eval's AP whenever n_relevant <= k (always, on the tasks here).

Each definition is checked query by query against trec_eval (``pytrec_eval``: ``recip_rank``,
``recall_k``, ``ndcg_cut_10``, ``map``) on CoSQA dev and on a graded BEIR-layout task with several
relevant codes per query (``tests/test_metric_reference.py``). The one that differs: nDCG@10 with
grades above 1, where trec_eval's gain is the grade and ours ``2**grade - 1`` (BEIR's definition goes
through trec_eval, so BEIR and MTEB numbers on graded qrels are trec_eval's, not this one).

Every metric in :func:`metrics_from_table`, :func:`bootstrap_ci` and the paired tests is in percent.
The paired tests also give the **minimum detectable effect** (:func:`minimum_detectable_effect`):
the smallest true difference the comparison would detect with 80% power at alpha 0.05.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from workbench.errors import WorkbenchError
from workbench.retrieval import as_matrix, embed_texts, search
from workbench.tasks import RetrievalTask

__all__ = [
    "METRIC_COLUMNS",
    "Encoder",
    "EvalResult",
    "bootstrap_ci",
    "evaluate",
    "metrics_from_table",
    "minimum_detectable_effect",
    "minimum_detectable_effect_of_average",
    "paired_bootstrap",
    "paired_randomization_test",
    "rank_of_first_relevant",
    "rank_order",
    "ranking_table",
]

#: reported metric -> per-query column of the ranking table
METRIC_COLUMNS: dict[str, str] = {
    "mrr": "rr",
    "recall@1": "recall@1",
    "recall@5": "recall@5",
    "recall@10": "recall@10",
    "ndcg@10": "ndcg@10",
    "map": "ap",
}
TABLE_COLUMNS = ["qid", "rank", "n_relevant", "rr", "recall@1", "recall@5", "recall@10", "ndcg@10", "ap"]
_CHUNK = 4096  # queries searched and scored at a time (bounds memory at k=1000)


class Encoder(Protocol):
    """What :func:`evaluate` needs: L2-normalised float32 rows, one per text."""

    def encode(
        self, texts: list[str], kind: str, batch_size: int, bf16: bool, show_progress: bool
    ) -> np.ndarray: ...


def rank_order(scores: np.ndarray) -> np.ndarray:
    """Corpus rows by decreasing score, equal scores by row: the order :func:`search` returns, over
    the whole pool (for the rank of a gold far below any top k)."""
    s = np.asarray(scores)
    return np.lexsort((np.arange(len(s)), -s))


def rank_of_first_relevant(ranked: Sequence[Any], relevant: Collection[Any]) -> int:
    """1-based position of the first item of ``ranked`` that is in ``relevant``; 0 if none is."""
    relevant = relevant if isinstance(relevant, (set, frozenset, dict)) else set(relevant)
    for i, item in enumerate(ranked, start=1):
        if item in relevant:
            return i
    return 0


def _discounts(n: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, n + 2, dtype=np.float64))


def ranking_table(
    task: RetrievalTask,
    query_emb: np.ndarray,
    corpus_emb: np.ndarray,
    qids: Sequence[str],
    cids: Sequence[str],
    k: int = 1000,
) -> pd.DataFrame:
    """One row per query: ``qid, rank, n_relevant, rr, recall@1/5/10, ndcg@10, ap`` (fractions, not %).

    ``qids`` / ``cids`` name the rows of ``query_emb`` / ``corpus_emb``. ``rank`` is the 1-based rank
    of the first relevant code within the top ``k`` (0 beyond; CodeXGLUE MRR@k); relevance is
    ``task.qrels`` grade > 0. Every query must have a relevant code among ``cids``.
    """
    qids, cids = list(qids), list(cids)
    query_emb, corpus_emb = as_matrix(query_emb, "query embeddings"), as_matrix(corpus_emb, "corpus embeddings")
    if len(qids) != len(query_emb) or len(cids) != len(corpus_emb):
        raise WorkbenchError(
            f"{len(qids)} qids / {len(query_emb)} query rows, "
            f"{len(cids)} cids / {len(corpus_emb)} corpus rows: they must match"
        )
    if k < 1:
        raise WorkbenchError(f"k must be >= 1, got {k}")
    pos = {c: i for i, c in enumerate(cids)}
    if len(pos) != len(cids):
        raise WorkbenchError("cids holds duplicates")
    n_corpus = len(cids)
    k_eff = min(k, n_corpus)
    depth = min(max(k, 10), n_corpus)  # recall@10 / ndcg@10 need 10 even when k < 10
    disc = _discounts(10)

    # relevant (query row, corpus row, grade) as sorted keys q * n_corpus + c for a vectorised lookup
    keys, grades, n_rel, idcg = [], [], np.zeros(len(qids), np.int64), np.zeros(len(qids))
    for qi, qid in enumerate(qids):
        rels = {c: g for c, g in task.qrels.get(qid, {}).items() if g > 0}
        if not rels:
            raise WorkbenchError(f"task '{task.name}': query {qid!r} has no relevant code in qrels")
        for c, g in rels.items():
            if c not in pos:
                raise WorkbenchError(
                    f"task '{task.name}': relevant code {c!r} of query {qid!r} is not in cids"
                )
            keys.append(qi * n_corpus + pos[c])
            grades.append(g)
        n_rel[qi] = len(rels)
        ideal = np.sort(np.asarray(list(rels.values()), np.float64))[::-1][:10]
        idcg[qi] = float(((2.0**ideal - 1.0) * disc[: len(ideal)]).sum())
    keys_a, grades_a = np.asarray(keys, np.int64), np.asarray(grades, np.float64)
    order = np.argsort(keys_a)
    keys_a, grades_a = keys_a[order], grades_a[order]

    cols: dict[str, list[np.ndarray]] = {c: [] for c in TABLE_COLUMNS[1:]}
    for start in range(0, len(qids), _CHUNK):
        stop = min(start + _CHUNK, len(qids))
        _, idx = search(query_emb[start:stop], corpus_emb, depth)
        flat = (np.arange(start, stop, dtype=np.int64)[:, None] * n_corpus + idx).ravel()
        at = np.minimum(np.searchsorted(keys_a, flat), len(keys_a) - 1)
        g = np.where(keys_a[at] == flat, grades_a[at], 0.0).reshape(idx.shape)
        hit = g > 0
        nr = n_rel[start:stop]

        top = hit[:, :k_eff]
        found = top.any(axis=1)
        rank = np.where(found, top.argmax(axis=1) + 1, 0)
        cols["rank"].append(rank)
        cols["n_relevant"].append(nr)
        cols["rr"].append(np.where(found, 1.0 / np.maximum(rank, 1), 0.0))
        for n in (1, 5, 10):
            cols[f"recall@{n}"].append(hit[:, :n].sum(axis=1) / nr)
        w = min(10, depth)
        dcg = ((2.0 ** g[:, :w] - 1.0) * disc[:w]).sum(axis=1)
        cols["ndcg@10"].append(dcg / idcg[start:stop])
        prec = np.cumsum(top, axis=1) / np.arange(1, k_eff + 1)
        cols["ap"].append((prec * top).sum(axis=1) / np.minimum(nr, k_eff))

    table = pd.DataFrame({"qid": qids})
    for c, parts in cols.items():
        table[c] = np.concatenate(parts) if parts else np.zeros(0)
    table["rank"] = table["rank"].astype("int64")
    table["n_relevant"] = table["n_relevant"].astype("int64")
    return table


def _column(table: pd.DataFrame, metric: str) -> str:
    col = METRIC_COLUMNS.get(metric, metric)
    if col not in table.columns or col in ("qid", "rank", "n_relevant"):
        raise WorkbenchError(
            f"unknown metric {metric!r}; use one of {sorted(METRIC_COLUMNS)} or "
            f"{sorted(METRIC_COLUMNS.values())}"
        )
    return col


def metrics_from_table(table: pd.DataFrame) -> dict[str, float]:
    """Mean of each per-query column, in percent: mrr, recall@1/5/10, ndcg@10, map; plus n_queries."""
    out: dict[str, float] = {
        m: float(table[c].mean() * 100.0) if len(table) else float("nan") for m, c in METRIC_COLUMNS.items()
    }
    out["n_queries"] = int(len(table))
    return out


def _bootstrap_means(values: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """``(n_boot, n_metrics)`` means of ``values`` ``(n, n_metrics)`` over resampled rows."""
    rng = np.random.default_rng(seed)
    n = values.shape[0]
    chunk = max(1, int(4e6 // max(1, n * values.shape[1])))
    out = []
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        idx = rng.integers(0, n, size=(b, n))
        out.append(values[idx].mean(axis=1))
    return np.concatenate(out, axis=0)


def bootstrap_ci(
    table: pd.DataFrame, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval (resampling queries) for each metric, in percent."""
    if len(table) == 0:
        return {m: (float("nan"), float("nan")) for m in METRIC_COLUMNS}
    values = table[list(METRIC_COLUMNS.values())].to_numpy(np.float64)
    means = _bootstrap_means(values, n_boot, seed) * 100.0
    lo = np.quantile(means, alpha / 2, axis=0)
    hi = np.quantile(means, 1 - alpha / 2, axis=0)
    return {m: (float(lo[i]), float(hi[i])) for i, m in enumerate(METRIC_COLUMNS)}


def _paired(table_a: pd.DataFrame, table_b: pd.DataFrame, metric: str) -> np.ndarray:
    """Per-query differences b - a (fractions), aligned by qid; both tables must cover the same queries."""
    ca, cb = _column(table_a, metric), _column(table_b, metric)
    a = table_a.set_index("qid")[ca]
    b = table_b.set_index("qid")[cb]
    if a.index.has_duplicates or b.index.has_duplicates:
        raise WorkbenchError("paired test: a table holds duplicate qids")
    if set(a.index) != set(b.index):
        only_a, only_b = sorted(set(a.index) - set(b.index)), sorted(set(b.index) - set(a.index))
        raise WorkbenchError(
            f"paired test: the tables cover different queries "
            f"(only in a: {only_a[:3]}..., only in b: {only_b[:3]}...)"
        )
    if len(a) == 0:
        raise WorkbenchError("paired test: no queries")
    return b.loc[a.index].to_numpy(np.float64) - a.to_numpy(np.float64)


def bootstrap_interval(means: np.ndarray, alpha: float = 0.05) -> tuple[float, float, float]:
    """Percentile interval and two-sided p-value of resampled mean differences: ``(low, high, p)``,
    p = twice the smaller share of resampled deltas on either side of 0, capped at 1."""
    p = min(1.0, 2.0 * min(float((means <= 0).mean()), float((means >= 0).mean())))
    return float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2)), p


def _z_sum(alpha: float, power: float) -> float:
    """``z_{1 - alpha/2} + z_{power}`` of the standard normal (two-sided test)."""
    from scipy.stats import norm

    if not (0.0 < alpha < 1.0 and 0.0 < power < 1.0):
        raise WorkbenchError(f"minimum detectable effect: alpha ({alpha}) and power ({power}) must lie in (0, 1)")
    return float(norm.ppf(1.0 - alpha / 2.0) + norm.ppf(power))


def minimum_detectable_effect(diffs: np.ndarray | Sequence[float], alpha: float = 0.05, power: float = 0.8) -> float:
    """The minimum detectable effect of a paired comparison: the smallest true mean difference that
    a two-sided paired z-test at level ``alpha`` detects with probability ``power``, given the
    spread and number of the per-query differences ``diffs`` (standard paired-sample power analysis,
    Cohen 1988, ch. 2):

        MDE = (z_{1 - alpha/2} + z_{power}) * sd(diffs, ddof=1) / sqrt(n)

    (2.8016 * SE at alpha 0.05 and 80% power). In the units of ``diffs`` (the tables pass MRR
    percent points). When a variant has several seeds, the tables pass differences of the
    seed-averaged reciprocal ranks, so the MDE reflects the queries and the seeds together (more
    seeds shrink the seed noise in each difference, more queries shrink the standard error).
    ``nan`` when there are fewer than 2 differences.
    """
    d = np.asarray(diffs, dtype=np.float64).ravel()
    z = _z_sum(alpha, power)
    if len(d) < 2:
        return float("nan")
    return z * float(d.std(ddof=1)) / math.sqrt(len(d))


def minimum_detectable_effect_of_average(
    diff_sets: Sequence[np.ndarray | Sequence[float]], alpha: float = 0.05, power: float = 0.8
) -> float:
    """The minimum detectable effect of an average over T sets of per-set mean differences (the "OOD
    avg" row: each set's mean delta, averaged with equal weights; the sets are independent):

        SE = sqrt(sum_t s_t^2 / n_t) / T,   MDE = (z_{1 - alpha/2} + z_{power}) * SE

    with ``s_t`` the sd (ddof 1) of set t's ``n_t`` per-query differences; the same two-sided paired
    z-test power calculation as :func:`minimum_detectable_effect` (which this equals for T = 1).
    ``nan`` when there is no set or a set has fewer than 2 differences.
    """
    sets = [np.asarray(d, dtype=np.float64).ravel() for d in diff_sets]
    z = _z_sum(alpha, power)
    if not sets or any(len(d) < 2 for d in sets):
        return float("nan")
    var = sum(float(d.var(ddof=1)) / len(d) for d in sets)
    return z * math.sqrt(var) / len(sets)


def paired_bootstrap(
    table_a: pd.DataFrame,
    table_b: pd.DataFrame,
    metric: str = "rr",
    n_boot: int = 10000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Paired bootstrap of ``delta = mean(b) - mean(a)`` (percent points), queries aligned by qid.

    Returns ``delta``, ``ci`` (percentile interval), ``p_value`` (two-sided: twice the smaller share of
    resampled deltas on either side of 0, capped at 1), ``mde`` (:func:`minimum_detectable_effect` at
    ``alpha`` and 80% power, percent points), ``mean_a``, ``mean_b``, ``n``.
    """
    d = _paired(table_a, table_b, metric)
    means = _bootstrap_means(d[:, None], n_boot, seed)[:, 0] * 100.0
    lo, hi, p = bootstrap_interval(means, alpha)
    a = table_a[_column(table_a, metric)].to_numpy(np.float64)
    return {
        "metric": metric,
        "delta": float(d.mean() * 100.0),
        "ci": (lo, hi),
        "p_value": p,
        "mde": minimum_detectable_effect(d * 100.0, alpha),
        "mean_a": float(a.mean() * 100.0),
        "mean_b": float((a.mean() + d.mean()) * 100.0),
        "n": int(len(d)),
    }


def paired_randomization_test(
    table_a: pd.DataFrame, table_b: pd.DataFrame, metric: str = "rr", n_perm: int = 10000, seed: int = 0
) -> dict[str, Any]:
    """Paired sign-flip (randomisation) test of ``delta = mean(b) - mean(a)`` (percent points).

    Under the null each per-query difference is equally likely to have either sign; the two-sided
    p-value is ``(1 + #{|mean(s * d)| >= |mean(d)|}) / (1 + n_perm)`` over random sign vectors s.
    ``mde``: :func:`minimum_detectable_effect` at alpha 0.05 and 80% power (percent points).
    """
    d = _paired(table_a, table_b, metric)
    rng = np.random.default_rng(seed)
    observed = abs(d.mean())
    count, chunk = 0, max(1, int(4e6 // len(d)))
    for start in range(0, n_perm, chunk):
        b = min(chunk, n_perm - start)
        signs = rng.integers(0, 2, size=(b, len(d)), dtype=np.int8) * 2 - 1
        count += int((np.abs(signs @ d / len(d)) >= observed - 1e-12).sum())
    return {
        "metric": metric,
        "delta": float(d.mean() * 100.0),
        "p_value": (1 + count) / (1 + n_perm),
        "mde": minimum_detectable_effect(d * 100.0),
        "n": int(len(d)),
    }


@dataclass
class EvalResult:
    """The outcome of :func:`evaluate`: metrics and intervals in percent, the per-query table, timings."""

    task: str
    model: str
    metrics: dict
    ci: dict
    per_query: pd.DataFrame
    seconds: dict
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no per-query table): task, model, metrics, ci, seconds, n."""

        def num(x: Any) -> Any:
            x = float(x)
            return None if math.isnan(x) else x

        return {
            "task": self.task,
            "model": self.model,
            "metrics": {k: (int(v) if k == "n_queries" else num(v)) for k, v in self.metrics.items()},
            "ci": {k: [num(lo), num(hi)] for k, (lo, hi) in self.ci.items()},
            "seconds": {k: round(float(v), 3) for k, v in self.seconds.items()},
            "n": int(len(self.per_query)),
            "meta": self.meta,
        }

    def __repr__(self) -> str:
        m = self.metrics
        return (
            f"EvalResult(task={self.task!r}, model={self.model!r}, n={len(self.per_query)}, "
            f"mrr={m.get('mrr', float('nan')):.2f}, recall@1={m.get('recall@1', float('nan')):.2f}, "
            f"ndcg@10={m.get('ndcg@10', float('nan')):.2f})"
        )


def _encode(
    encoder: Encoder, texts: list[str], kind: str, batch_size: int, bf16: bool, show_progress: bool,
    cache_dir: str | os.PathLike | None = None,
) -> np.ndarray:
    if cache_dir is not None:
        emb = embed_texts(encoder, texts, kind, cache_dir, bf16=bf16, batch_size=batch_size, show_progress=show_progress)
    else:
        emb = encoder.encode(texts, kind=kind, batch_size=batch_size, bf16=bf16, show_progress=show_progress)
    emb = as_matrix(emb, f"{kind} embeddings")
    if emb.shape[0] != len(texts):
        raise WorkbenchError(f"encoder returned {emb.shape[0]} {kind} rows for {len(texts)} texts")
    norms = np.linalg.norm(emb, axis=1)
    if len(norms) and not np.allclose(norms[norms > 0], 1.0, atol=1e-3):
        warnings.warn(
            f"{kind} embeddings are not L2-normalised: scores are inner products, not cosine", stacklevel=3
        )
    return emb


def evaluate(
    encoder: Encoder,
    task: RetrievalTask,
    *,
    k: int = 1000,
    batch_size: int = 64,
    bf16: bool = False,
    n_boot: int = 1000,
    seed: int = 0,
    show_progress: bool = True,
    model_name: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> EvalResult:
    """Encode queries and corpus, search exactly, and score: CodeXGLUE MRR@k plus BEIR-style metrics.

    Only queries with at least one relevant code (grade > 0) are evaluated, as BEIR does; the count
    of skipped queries is in ``meta``. Metrics and CIs are in percent. With ``cache_dir`` the
    embeddings go through the workbench's embedding cache (:func:`workbench.retrieval.embed_texts`,
    keyed by the weights and the texts), where later chapters find them.
    """
    task.validate()
    t_all = time.perf_counter()
    qids = task.judged_queries()
    if not qids:
        raise WorkbenchError(f"task '{task.name}': no query has a relevant code")
    cids = list(task.corpus)
    seconds: dict[str, float] = {}

    t = time.perf_counter()
    q_emb = _encode(encoder, [task.queries[q] for q in qids], "query", batch_size, bf16, show_progress, cache_dir)
    seconds["encode_queries"] = time.perf_counter() - t
    t = time.perf_counter()
    c_emb = _encode(encoder, [task.corpus[c] for c in cids], "code", batch_size, bf16, show_progress, cache_dir)
    seconds["encode_corpus"] = time.perf_counter() - t
    t = time.perf_counter()
    table = ranking_table(task, q_emb, c_emb, qids, cids, k=k)
    seconds["search"] = time.perf_counter() - t
    t = time.perf_counter()
    metrics = metrics_from_table(table)
    ci = bootstrap_ci(table, n_boot=n_boot, seed=seed) if n_boot > 0 else {}
    seconds["bootstrap"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t_all

    name = model_name or getattr(encoder, "name", None) or type(encoder).__name__
    meta = {
        "k": k,
        "n_corpus": len(cids),
        "n_queries_skipped": len(task.queries) - len(qids),
        "n_boot": n_boot,
        "seed": seed,
        "dim": int(q_emb.shape[1]),
    }
    return EvalResult(task.name, str(name), metrics, ci, table, seconds, meta)
