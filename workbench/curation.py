"""CoRNStack curation: dual consistency filtering, hard-negative mining and a curriculum sampler.

Implements sections 2.2-2.3 of CoRNStack (Suresh et al. 2024, "CoRNStack: High-Quality
Contrastive Data for Better Code Ranking", ``shared/papers/004``; ``docs/methods.md`` section 4):

- **Proxy scores.** A proxy embedder N (any :class:`~workbench.models.BiEncoder`; mpnet by
  default in the notebooks, Jina-Code-v2 in the paper) embeds every text t_i and code c_j of the
  corpus; ``S = N(T) . N(C)^T`` (cosine, the rows are L2-normalised). :func:`workbench.retrieval.embed_pairs`.
- **Dual consistency filtering (section 2.2).** Keep (t_i, c_i) iff

      rank_i <= k   AND   S_ii > delta,     rank_i = 1 + #{j : S_ij > S_ii}

  (k = 2, delta = 0.7 in the paper, tuned for Jina-Code-v2: :func:`calibrate_delta` re-tunes it
  for another proxy). :func:`consistency_filter`.
- **Hard negatives, offline stage (section 2.3).** The candidates of t_i are its top-scoring
  codes; a candidate with ``S_ij > gamma * S_ii`` (gamma = 0.95) is dropped as a likely false
  negative (the "TopK-PercPos" rule of Moreira et al. 2024), as are the own code and codes whose
  text equals the positive's. :func:`workbench.retrieval.mine_hard_negatives` (shared with ChatDANCE's filter).
- **Online stage (section 2.3).** Per query, sample negatives without replacement with
  ``P(c_j | t_i) = softmax_j(S_ij / tau')`` over its candidates, tau' decayed linearly from 0.05
  to 0.001 over training (a curriculum toward harder negatives); the loss is InfoNCE over the
  in-batch positives plus the sampled negatives (``info_nce(q, c, negatives=...)``, tau = 0.07
  in the paper). :class:`NegativeSampler`, wired into :func:`workbench.training.train` by
  ``negatives=sampler.trainer_hook(codes)``.

Scale. S is never materialised: :func:`workbench.retrieval.search` runs an exact faiss ``IndexFlatIP`` search
over chunks of queries, so memory is O(chunk * k + n * d) and time O(n^2 d) (BLAS). To make the
kept set and the ranks exact rather than subject to float32 rounding in faiss's GEMM, the
retrieved candidates (searched ``RESCORE_MARGIN`` deeper than needed) and S_ii are re-scored in
float64 with one kernel (exact float32 x float32 products, summed in float64), so an exact
duplicate code ties exactly with the own code and the result equals a brute-force n x n
computation (tested). Only a cluster of more than ``RESCORE_MARGIN`` codes within float32
rounding (~1e-7) of the cut-off score could still differ.

Ties. ``rank_i = 1 + #{j : S_ij > S_ii}`` (strictly greater), so a code tied with the own code
(e.g. an identical duplicate) does not push it down: both get the better rank. Candidate lists
are sorted by decreasing score, equal scores by corpus row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import ParameterError
from workbench.retrieval import (
    HardNegatives,
    as_pairs,
    candidates,
    check_int,
    mine_hard_negatives,
    ordered_candidates,
    texts_fingerprint,
)
from workbench.store import cache_key

__all__ = [
    "ABLATION_ARMS",
    "REASONS",
    "STRATEGIES",
    "AblationArm",
    "NegativeSampler",
    "NegativesHook",
    "ablation_arms",
    "calibrate_delta",
    "consistency_filter",
    "kept_fraction_figure",
    "removed_examples",
    "score_distribution_figure",
    "suggest_delta",
]

STRATEGIES = ("topk", "softmax", "curriculum")


# ------------------------------------------------------------------------------ consistency filter
REASONS = ("kept", "not_top_k", "below_delta")


def consistency_filter(
    Q: Any,
    C: Any,
    k: int = 2,
    delta: float = 0.7,
    chunk_size: int = 8192,
    *,
    ids: Sequence[Any] | None = None,
    precomputed: tuple[np.ndarray, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Dual consistency filtering (CoRNStack section 2.2): keep pair i iff ``rank_i <= k`` and ``S_ii > delta``.

    ``Q[i]``, ``C[i]`` are the proxy embeddings of text t_i and its code c_i; ``S_ij = Q[i] . C[j]``
    over the whole corpus, ``rank_i = 1 + #{j : S_ij > S_ii}`` (ties with the own code do not
    count against it). The search is chunked (:func:`workbench.retrieval.search`), never n x n; the candidates and
    S_ii are re-scored in float64 so the result equals a brute-force computation. ``precomputed``:
    a ``search(Q, C, depth)`` result to reuse (e.g. shared with :func:`mine_hard_negatives`),
    ideally ``depth >= k + RESCORE_MARGIN``.

    Returns one row per pair, in input order: ``row``, ``id`` (when ``ids`` is given),
    ``self_score`` (S_ii, float64), ``self_rank`` (exact when <= k; ``k + 1`` means "outside the
    top k"), ``in_top_k``, ``above_delta``, ``kept``, ``reason`` ("kept", else "not_top_k" when
    the rank fails, checked first, else "below_delta"), ``top_index`` / ``top_score`` (the
    best-scoring code of the row, possibly the own one) and ``best_other_index`` /
    ``best_other_score`` (the best code that is not the own one). ``df.attrs`` holds k and delta.
    """
    q, c = as_pairs(Q, C)
    n = q.shape[0]
    k = check_int("k", k, 1)
    if isinstance(delta, bool) or not isinstance(delta, (int, float, np.integer, np.floating)) or not np.isfinite(delta):
        raise ParameterError(f"delta: expected a finite number, got {delta!r}")
    chunk_size = check_int("chunk_size", chunk_size, 1)
    if ids is not None and len(ids) != n:
        raise ParameterError(f"ids: {len(ids)} ids for {n} pairs")
    cand_all = candidates(q, c, k, chunk_size, precomputed)

    sii = np.empty(n, dtype=np.float64)
    rank = np.empty(n, dtype=np.int64)
    top_i = np.empty(n, dtype=np.int64)
    top_s = np.empty(n, dtype=np.float64)
    oth_i = np.full(n, -1, dtype=np.int64)
    oth_s = np.full(n, -np.inf, dtype=np.float64)
    for s in range(0, n, chunk_size):
        rows = np.arange(s, min(s + chunk_size, n))
        cand, sc, si = ordered_candidates(q, c, cand_all[rows], rows)
        sii[rows] = si
        greater = (sc > si[:, None]).sum(axis=1)
        # all `depth` candidates beat S_ii: the rank is beyond depth >= k + 1 (or exact when depth = n)
        rank[rows] = np.minimum(1 + greater, k + 1)
        top_i[rows], top_s[rows] = cand[:, 0], sc[:, 0]
        is_other = cand != rows[:, None]
        first = np.argmax(is_other, axis=1)
        has = is_other[np.arange(len(rows)), first]
        oth_i[rows] = np.where(has, cand[np.arange(len(rows)), first], -1)
        oth_s[rows] = np.where(has, sc[np.arange(len(rows)), first], -np.inf)
    in_top = rank <= k
    above = sii > float(delta)
    kept = in_top & above
    reason = np.where(kept, "kept", np.where(~in_top, "not_top_k", "below_delta"))
    out = pd.DataFrame({"row": np.arange(n)})
    if ids is not None:
        out["id"] = list(ids)
    out = out.assign(
        self_score=sii,
        self_rank=rank,
        in_top_k=in_top,
        above_delta=above,
        kept=kept,
        reason=pd.Categorical(reason, categories=list(REASONS)),
        top_index=top_i,
        top_score=top_s,
        best_other_index=oth_i,
        best_other_score=oth_s,
    )
    out.attrs.update({"k": k, "delta": float(delta), "n": n})
    return out


def calibrate_delta(
    filter_df_or_scores: pd.DataFrame | np.ndarray | Sequence[float],
    deltas: Sequence[float] | np.ndarray = np.linspace(0.3, 0.9, 13),
    *,
    in_top_k: np.ndarray | None = None,
) -> pd.DataFrame:
    """Kept fraction per threshold: ``delta``, ``kept_fraction``, ``kept`` (and ``in_top_k``, ``below_delta``).

    From a :func:`consistency_filter` table both criteria apply (kept = in_top_k & S_ii > delta),
    so the curve shows what the second, absolute criterion removes on top of the rank one. From a
    plain array of S_ii only the threshold applies (unless ``in_top_k`` is given). Non-increasing
    in delta.
    """
    if isinstance(filter_df_or_scores, pd.DataFrame):
        s = filter_df_or_scores["self_score"].to_numpy(dtype=np.float64)
        t = filter_df_or_scores["in_top_k"].to_numpy(dtype=bool)
    else:
        s = np.asarray(filter_df_or_scores, dtype=np.float64).ravel()
        t = np.ones(len(s), dtype=bool) if in_top_k is None else np.asarray(in_top_k, dtype=bool).ravel()
        if len(t) != len(s):
            raise ParameterError(f"in_top_k: {len(t)} flags for {len(s)} scores")
    if len(s) == 0:
        raise ParameterError("calibrate_delta: no scores")
    d = np.asarray(deltas, dtype=np.float64).ravel()
    kept = np.array([int((t & (s > x)).sum()) for x in d], dtype=np.int64)
    n_top = int(t.sum())
    return pd.DataFrame(
        {
            "delta": d,
            "kept_fraction": kept / len(s),
            "kept": kept,
            "in_top_k": n_top,
            "below_delta": n_top - kept,
        }
    )


def suggest_delta(filter_df: pd.DataFrame, rule: str = "youden", keep_fraction: float | None = None) -> dict[str, Any]:
    """A calibrated delta for a new proxy embedder, by one of three explicit rules.

    - ``"youden"``: the threshold on S_ii that best separates pairs whose own code is in the
      top k from those whose is not (max of TPR - FPR, Youden's J): the absolute criterion
      then agrees with the relative one, removing "ranked high only because the corpus is small".
    - ``"knee"``: the knee (Kneedle, Satopaa et al. 2011: the point farthest below the chord) of
      the kept-fraction curve over the observed S_ii range of the top-k pairs.
    - ``"fraction"``: the delta that keeps ``keep_fraction`` of all pairs (quantile of S_ii among
      the top-k pairs), e.g. the share CoRNStack kept.

    Returns ``{"rule", "delta", "kept_fraction", ...}``; the delta is rounded to 0.01.
    """
    s = filter_df["self_score"].to_numpy(dtype=np.float64)
    t = filter_df["in_top_k"].to_numpy(dtype=bool)
    n = len(s)
    if rule == "youden":
        grid = np.round(np.arange(np.floor(s.min() * 100) / 100, s.max() + 0.01, 0.01), 2)
        pos, neg = max(int(t.sum()), 1), max(int((~t).sum()), 1)
        j = np.array([((s > g) & t).sum() / pos - ((s > g) & ~t).sum() / neg for g in grid])
        delta = float(grid[int(np.argmax(j))])
        extra = {"youden_j": float(j.max())}
    elif rule == "knee":
        st = np.sort(s[t])
        grid = np.round(np.arange(np.floor(st.min() * 100) / 100, st.max() + 0.01, 0.01), 2)
        f = np.array([(st > g).sum() for g in grid]) / max(len(st), 1)
        x = (grid - grid[0]) / max(grid[-1] - grid[0], 1e-12)
        y = (f - f.min()) / max(f.max() - f.min(), 1e-12)
        chord = 1.0 - x  # from (0, 1) to (1, 0)
        delta = float(grid[int(np.argmax(y - chord))])
        extra = {}
    elif rule == "fraction":
        if keep_fraction is None or not 0 < keep_fraction <= 1:
            raise ParameterError(f"keep_fraction: expected a number in (0, 1], got {keep_fraction!r}")
        st = np.sort(s[t])[::-1]
        m = int(round(keep_fraction * n))
        if m >= len(st):
            delta = float(np.floor(st.min() * 100) / 100 - 0.01) if len(st) else 0.0
        else:
            delta = float(np.ceil(st[m] * 100) / 100)
        extra = {"target_fraction": keep_fraction}
    else:
        raise ParameterError(f"rule: expected 'youden', 'knee' or 'fraction', got {rule!r}")
    kept = int((t & (s > delta)).sum())
    return {"rule": rule, "delta": delta, "kept": kept, "kept_fraction": kept / n, **extra}


def score_distribution_figure(filter_df: pd.DataFrame, delta: float | None = None, nbins: int = 60, title: str | None = None):
    """Plotly histogram of S_ii for pairs whose own code is in the top k vs not, with delta marked."""
    import plotly.graph_objects as go

    k = filter_df.attrs.get("k", "k")
    delta = filter_df.attrs.get("delta") if delta is None else delta
    fig = go.Figure()
    for flag, name, color in ((True, f"own code in top-{k}", "#1f77b4"), (False, f"own code not in top-{k}", "#d62728")):
        part = filter_df.loc[filter_df["in_top_k"] == flag, "self_score"]
        fig.add_trace(
            go.Histogram(x=part, name=f"{name} ({len(part)})", nbinsx=nbins, opacity=0.6, marker_color=color)
        )
    if delta is not None:
        kept = float((filter_df["in_top_k"] & (filter_df["self_score"] > delta)).mean())
        fig.add_vline(
            x=delta, line_dash="dash", line_color="black",
            annotation_text=f"delta = {delta:.2f}: keeps {kept:.1%}", annotation_position="top left",
        )
    fig.update_layout(
        barmode="overlay",
        title=title or f"Proxy score of each pair's own code, S_ii (n = {len(filter_df)})",
        xaxis_title="S_ii (cosine of query and own code)",
        yaxis_title="pairs",
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def kept_fraction_figure(calibration: pd.DataFrame, title: str | None = None):
    """Plotly line of :func:`calibrate_delta`'s kept fraction against delta."""
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Scatter(
            x=calibration["delta"], y=calibration["kept_fraction"], mode="lines+markers",
            text=[f"{int(k)} pairs" for k in calibration["kept"]],
            hovertemplate="delta %{x:.3f}: %{y:.1%} kept (%{text})<extra></extra>",
        )
    )
    fig.update_layout(
        title=title or "Kept fraction per delta (own code in the top k and S_ii > delta)",
        xaxis_title="delta", yaxis_title="kept fraction", yaxis_tickformat=".0%",
    )
    return fig


def removed_examples(
    df: pd.DataFrame,
    filter_df: pd.DataFrame,
    n: int = 10,
    order: str = "lowest",
    *,
    reason: str | None = None,
    max_chars: int = 400,
    seed: int = 0,
) -> pd.DataFrame:
    """``n`` removed pairs with their query, code, S_ii, rank, reason and the code the proxy preferred.

    ``order``: "lowest" (smallest S_ii first: the clearest noise), "highest" (the borderline
    removals, which show what delta costs), or "random" (seeded). ``reason``: only pairs removed
    for "not_top_k" or "below_delta". Texts are cut at ``max_chars``.
    """
    if len(df) != len(filter_df):
        raise ParameterError(f"removed_examples: {len(df)} pairs but {len(filter_df)} filter rows")
    if reason is not None and reason not in REASONS[1:]:
        raise ParameterError(f"reason: expected None, 'not_top_k' or 'below_delta', got {reason!r}")
    rem = filter_df[~filter_df["kept"]]
    if reason is not None:
        rem = rem[rem["reason"] == reason]
    if order == "lowest":
        rem = rem.sort_values("self_score", kind="stable")
    elif order == "highest":
        rem = rem.sort_values("self_score", ascending=False, kind="stable")
    elif order == "random":
        rem = rem.sample(frac=1.0, random_state=seed)
    else:
        raise ParameterError(f"order: expected 'lowest', 'highest' or 'random', got {order!r}")
    rem = rem.head(n)
    src = df.reset_index(drop=True)

    def cut(x: Any) -> str:
        x = str(x)
        return x if len(x) <= max_chars else x[: max_chars - 3] + "..."

    rows = []
    for r in rem.itertuples():
        i, o = int(r.row), int(r.best_other_index)
        row = {
            "row": i,
            **({"id": src.at[i, "id"]} if "id" in src.columns else {}),
            "reason": r.reason,
            "self_score": r.self_score,
            "self_rank": r.self_rank,
            "query": cut(src.at[i, "query"]),
            "code": cut(src.at[i, "code"]),
            "preferred_score": r.best_other_score,
            "preferred_code": cut(src.at[o, "code"]) if o >= 0 else "",
        }
        if "func_name" in src.columns:
            row["func_name"] = src.at[i, "func_name"]
            row["preferred_func_name"] = src.at[o, "func_name"] if o >= 0 else ""
        rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ online sampling
class NegativeSampler:
    """Online negative sampling over :class:`HardNegatives` (CoRNStack section 2.3, online stage).

    ``strategy``: "topk" (the first ``n_per_query`` valid candidates, deterministic: the
    Moreira et al. 2024 baseline of Table 5), "softmax" (sample without replacement with
    ``P(c_j | t_i) = softmax_j(S_ij / tau)`` over the valid candidates, tau = ``tau_start`` fixed)
    or "curriculum" (the same with tau decayed linearly from ``tau_start`` to ``tau_end`` as
    training progresses: easier, more diverse negatives first, the hardest at the end).

    Sampling uses the Gumbel-top-k trick (Kool, van Hoof & Welling 2019): the n largest of
    ``S_ij / tau + G_ij``, G i.i.d. Gumbel(0, 1), are a sample without replacement from the
    softmax, and there is no exp to overflow even at tau = 0.001. The noise comes from
    ``np.random.default_rng([seed, step])``: the same (seed, step, rows) give the same
    negatives, which makes a resumed training run sample what the uninterrupted one did.
    Rows with fewer valid candidates than ``n_per_query`` are padded with -1.
    """

    def __init__(
        self,
        hard: HardNegatives,
        n_per_query: int,
        strategy: str = "curriculum",
        tau_start: float = 0.05,
        tau_end: float = 0.001,
        seed: int = 0,
    ):
        if not isinstance(hard, HardNegatives):
            raise ParameterError(f"hard: expected HardNegatives, got {type(hard).__name__}")
        if strategy not in STRATEGIES:
            raise ParameterError(f"strategy: expected one of {STRATEGIES}, got {strategy!r}")
        for name, v in (("tau_start", tau_start), ("tau_end", tau_end)):
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not (
                np.isfinite(v) and v > 0
            ):
                raise ParameterError(f"{name}: expected a number > 0, got {v!r}")
        self.hard = hard
        self.n_per_query = check_int("n_per_query", n_per_query, 1)
        self.strategy = strategy
        self.tau_start, self.tau_end = float(tau_start), float(tau_end)
        self.seed = check_int("seed", seed, 0)
        self._scores = hard.scores.astype(np.float64)

    def tau(self, progress: float) -> float:
        """tau' at ``progress`` in [0, 1] (clipped): ``tau_start + (tau_end - tau_start) * progress``
        for "curriculum", ``tau_start`` for "softmax", 0.0 (greedy) for "topk"."""
        if self.strategy == "topk":
            return 0.0
        if self.strategy == "softmax":
            return self.tau_start
        p = min(max(float(progress), 0.0), 1.0)
        return self.tau_start + (self.tau_end - self.tau_start) * p

    def probabilities(self, rows: np.ndarray, progress: float) -> np.ndarray:
        """The softmax(S_ij / tau) of each candidate of ``rows`` (0 for padding), for inspection."""
        rows = np.asarray(rows, dtype=np.int64)
        valid = self.hard.valid[rows]
        if self.strategy == "topk":
            p = np.zeros(valid.shape)
            p[:, : self.n_per_query] = valid[:, : self.n_per_query]
            return p / np.maximum(p.sum(axis=1, keepdims=True), 1)
        z = np.where(valid, self._scores[rows] / self.tau(progress), -np.inf)
        z = z - np.where(valid.any(axis=1, keepdims=True), z.max(axis=1, keepdims=True), 0.0)
        e = np.where(valid, np.exp(z), 0.0)
        return e / np.maximum(e.sum(axis=1, keepdims=True), 1e-300)

    def sample(self, rows: np.ndarray, progress: float, step: int = 0) -> np.ndarray:
        """Corpus indices of negatives for each query row: int64 ``[len(rows), n_per_query]``, -1 padding."""
        rows = np.asarray(rows, dtype=np.int64).ravel()
        if rows.size and (rows.min() < 0 or rows.max() >= len(self.hard)):
            raise ParameterError(f"rows: expected indices in [0, {len(self.hard)}), got {rows.min()}..{rows.max()}")
        idx = self.hard.indices[rows].astype(np.int64)
        valid = self.hard.valid[rows]
        n = self.n_per_query
        if self.strategy == "topk":
            order = np.broadcast_to(np.arange(idx.shape[1]), idx.shape)
        else:
            rng = np.random.default_rng([self.seed, check_int("step", step, 0)])
            keys = self._scores[rows] / self.tau(progress) + rng.gumbel(size=idx.shape)
            keys = np.where(valid, keys, -np.inf)
            order = np.argsort(-keys, axis=1, kind="stable")
        order = order[:, :n]
        out = np.where(np.take_along_axis(valid, order, axis=1), np.take_along_axis(idx, order, axis=1), -1)
        if out.shape[1] < n:
            out = np.concatenate([out, np.full((len(rows), n - out.shape[1]), -1, dtype=np.int64)], axis=1)
        return out

    def batch_negatives(self, rows: np.ndarray, progress: float, step: int = 0) -> np.ndarray:
        """The union of the batch's sampled negatives (CoRNStack's H_B), as unique corpus indices in
        first-sampled order, without padding and without the batch's own positives (a negative that
        is another query's gold code would be a second copy of that gold column)."""
        rows = np.asarray(rows, dtype=np.int64).ravel()
        flat = self.sample(rows, progress, step).ravel()
        flat = flat[(flat >= 0) & ~np.isin(flat, rows)]
        _, first = np.unique(flat, return_index=True)
        return flat[np.sort(first)]

    @property
    def key(self) -> str:
        """A stable hash of everything that changes what is sampled."""
        return cache_key(
            {
                "strategy": self.strategy, "n_per_query": self.n_per_query, "tau_start": self.tau_start,
                "tau_end": self.tau_end, "seed": self.seed, "hard": self.hard.fingerprint(),
            }
        )

    def trainer_hook(self, codes: Sequence[str]) -> NegativesHook:
        """The ``negatives=`` callable for :func:`workbench.training.train` (``codes``: the training
        pairs' codes, in the row order the negatives were mined on)."""
        return NegativesHook(self, codes)

    def __repr__(self) -> str:
        return (
            f"NegativeSampler(strategy={self.strategy!r}, n_per_query={self.n_per_query}, "
            f"tau_start={self.tau_start}, tau_end={self.tau_end}, seed={self.seed}, queries={len(self.hard)})"
        )


class NegativesHook:
    """``hook(rows, step, progress) -> list[str]``: the negative code texts of one training batch.

    ``rows`` are the batch's row numbers in the training pairs (which must be the pairs the hard
    negatives were mined on, in the same order); codes whose text equals one of the batch's gold
    codes are left out too. ``key`` (sampler settings + hard negatives + codes) goes into the
    trainer's resume key.
    """

    def __init__(self, sampler: NegativeSampler, codes: Sequence[str]):
        if len(codes) != len(sampler.hard):
            raise ParameterError(
                f"codes: {len(codes)} texts but the hard negatives were mined for {len(sampler.hard)} pairs"
            )
        self.sampler = sampler
        self.codes = np.asarray([str(x) for x in codes], dtype=object)
        self.key = cache_key({"sampler": sampler.key, "codes": texts_fingerprint(self.codes.tolist())})

    def __call__(self, rows: np.ndarray, step: int, progress: float) -> list[str]:
        rows = np.asarray(rows, dtype=np.int64)
        gold = set(self.codes[rows].tolist())
        return [t for t in self.codes[self.sampler.batch_negatives(rows, progress, step)].tolist() if t not in gold]

    def __repr__(self) -> str:
        return f"NegativesHook({self.sampler!r}, key={self.key!r})"


# ------------------------------------------------------------------------------ ablation (Table 5)
@dataclass
class AblationArm:
    """One row of the CoRNStack Table 5 analogue: the pairs to train on and the negatives hook."""

    name: str
    pairs: pd.DataFrame
    negatives: NegativesHook | None
    description: str


def marked_rows(ids: Sequence[str], false_negatives: pd.DataFrame | None) -> dict[int, set[int]]:
    """Marked false negatives (``query_pair_id``, ``code_pair_id``) as rows of ``ids``: {query row:
    {code rows}}; marks whose query or code is not among ``ids`` are left out."""
    if false_negatives is None or false_negatives.empty:
        return {}
    missing = [c for c in ("query_pair_id", "code_pair_id") if c not in false_negatives.columns]
    if missing:
        raise ParameterError(f"false_negatives: missing column(s) {missing}; load them with load_false_negatives")
    pos = {pid: i for i, pid in enumerate(ids)}
    out: dict[int, set[int]] = {}
    for q, c in zip(false_negatives["query_pair_id"].astype(str), false_negatives["code_pair_id"].astype(str)):
        if q in pos and c in pos:
            out.setdefault(pos[q], set()).add(pos[c])
    return out


ABLATION_ARMS = ("none", "filtering", "topk", "softmax", "curriculum")


def ablation_arms(
    df: pd.DataFrame,
    Q: np.ndarray,
    C: np.ndarray,
    *,
    k: int = 2,
    delta: float = 0.7,
    M: int = 32,
    gamma: float = 0.95,
    n_per_query: int = 4,
    depth: int | None = None,
    tau_start: float = 0.05,
    tau_end: float = 0.001,
    seed: int = 0,
    chunk_size: int = 8192,
    names: Sequence[str] | None = None,
    false_negatives: pd.DataFrame | None = None,
) -> list[AblationArm]:
    """The five arms of CoRNStack's Table 5 on ``df`` (with proxy embeddings ``Q``, ``C``), or those
    of them ``names`` lists (in the table's order; "none" is the baseline and always included).

    "none": all pairs, in-batch negatives only; "filtering": the consistency-filtered pairs;
    "topk" / "softmax" / "curriculum": filtered pairs plus ``n_per_query`` negatives per query,
    mined on the filtered pairs, selected by rank, sampled at tau_start, or sampled with the
    decaying tau' (``depth``: see :func:`mine_hard_negatives`). Train each with :func:`workbench.training.train` (``negatives=arm.negatives``)
    and evaluate as usual. ``false_negatives`` (``query_pair_id``, ``code_pair_id``: codes marked in the
    data-map explorer as correct answers to another pair's query) are never mined as negatives.
    """
    wanted = list(ABLATION_ARMS if names is None else names)
    unknown = [n for n in wanted if n not in ABLATION_ARMS]
    if unknown:
        raise ParameterError(f"ablation_arms: unknown arm(s) {unknown}; choose from {list(ABLATION_ARMS)}")
    filt = consistency_filter(Q, C, k=k, delta=delta, chunk_size=chunk_size)
    keep = filt["kept"].to_numpy()
    kept_df = df.reset_index(drop=True)[keep].reset_index(drop=True)
    hard = mine_hard_negatives(
        Q[keep], C[keep], M=M, gamma=gamma, chunk_size=chunk_size, codes=kept_df["code"].tolist(), depth=depth,
        marked=marked_rows(kept_df["id"].astype(str).tolist(), false_negatives),
    )
    arms = [
        AblationArm("none", df.reset_index(drop=True), None, "all pairs, in-batch negatives"),
        AblationArm("filtering", kept_df, None, f"consistency filtering (k={k}, delta={delta})"),
    ]
    for strategy, text in (
        ("topk", "+ top-k hard negatives"),
        ("softmax", f"+ softmax sampling (tau'={tau_start})"),
        ("curriculum", f"+ curriculum (tau' {tau_start} -> {tau_end})"),
    ):
        sampler = NegativeSampler(hard, n_per_query, strategy, tau_start, tau_end, seed)
        arms.append(AblationArm(strategy, kept_df, sampler.trainer_hook(kept_df["code"].tolist()), text))
    return [a for a in arms if a.name == "none" or a.name in wanted]
