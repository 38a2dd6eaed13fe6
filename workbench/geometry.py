"""Alignment and uniformity of a model's representations (Wang & Isola 2020), as ChatDANCE's
analysis uses them (methods.md section 2; papers/002, equation 8 and Fig. 6).

- ``l_align = E_(x,y)~pairs ||f(x) - f(y)||_2^alpha`` over paired (query, code) embeddings
  (alpha = 2): lower means a query sits closer to its code.
- ``l_uniform = log E_(x,y)~data exp(-t ||f(x) - f(y)||_2^2)`` over pairs of distinct embeddings
  drawn from all of them, queries and code together (t = 2): lower means the embeddings spread
  more evenly over the sphere. Computed exactly over every distinct pair (log-sum-exp in float64)
  of at most ``max_points`` embeddings.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .errors import ParameterError

__all__ = ["alignment", "uniformity", "alignment_uniformity", "au_table", "au_figure", "correlation_with"]


def _matrix(x: object, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or len(a) == 0:
        raise ParameterError(f"{what}: expected a non-empty 2-D array of embeddings, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ParameterError(f"{what}: embeddings hold NaN or infinite values")
    return a


def alignment(x: np.ndarray, y: np.ndarray, alpha: float = 2.0) -> float:
    """``mean_i ||x_i - y_i||_2 ** alpha`` over paired rows of ``x`` and ``y`` (Wang & Isola, eq. 2)."""
    x, y = _matrix(x, "alignment x"), _matrix(y, "alignment y")
    if x.shape != y.shape:
        raise ParameterError(f"alignment: paired embeddings must have the same shape, got {x.shape} and {y.shape}")
    if alpha <= 0:
        raise ParameterError(f"alignment: alpha must be > 0, got {alpha}")
    return float((np.linalg.norm(x - y, axis=1) ** alpha).mean())


def uniformity(x: np.ndarray, t: float = 2.0, max_points: int | None = 4000, seed: int = 0) -> float:
    """``log mean_{i<j} exp(-t ||x_i - x_j||_2^2)`` over every distinct pair of rows (eq. 3), on a
    seeded sample of ``max_points`` rows when there are more."""
    x = _matrix(x, "uniformity")
    if t <= 0:
        raise ParameterError(f"uniformity: t must be > 0, got {t}")
    if len(x) < 2:
        raise ParameterError("uniformity: needs at least 2 embeddings")
    if max_points is not None and len(x) > max_points:
        x = x[np.sort(np.random.default_rng(seed).choice(len(x), max_points, replace=False))]
    sq = (x * x).sum(axis=1)
    iu = np.triu_indices(len(x), k=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0)[iu]
    z = -t * d2
    m = z.max()
    return float(m + np.log(np.exp(z - m).mean()))


def alignment_uniformity(
    queries: np.ndarray, codes: np.ndarray, alpha: float = 2.0, t: float = 2.0, max_points: int | None = 4000,
    seed: int = 0,
) -> dict[str, float]:
    """l_align over the pairs (row i of ``queries`` with row i of ``codes``), l_uniform over all of
    their embeddings together, and each side's own uniformity."""
    q, c = _matrix(queries, "queries"), _matrix(codes, "codes")
    return {
        "align": alignment(q, c, alpha),
        "uniform": uniformity(np.concatenate([q, c]), t, max_points, seed),
        "uniform_query": uniformity(q, t, max_points, seed),
        "uniform_code": uniformity(c, t, max_points, seed),
        "pairs": len(q),
    }


def au_table(pairs_by_model: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]], **kw) -> pd.DataFrame:
    """``{model: {task: (query_emb, gold_code_emb)}}`` -> one row per (model, task) with
    ``align``, ``uniform``, ``uniform_query``, ``uniform_code`` and ``pairs``; plus one row per model
    with ``task = "mean"`` (the unweighted mean over its tasks)."""
    rows = []
    for model, per_task in pairs_by_model.items():
        own = []
        for task, (q, c) in per_task.items():
            r = {"model": model, "task": task, **alignment_uniformity(q, c, **kw)}
            own.append(r)
        rows += own
        if own:
            m = pd.DataFrame(own)[["align", "uniform", "uniform_query", "uniform_code"]].mean()
            rows.append({"model": model, "task": "mean", **m.to_dict(), "pairs": int(sum(r["pairs"] for r in own))})
    return pd.DataFrame(rows, columns=["model", "task", "align", "uniform", "uniform_query", "uniform_code", "pairs"])


def au_figure(table: pd.DataFrame, task: str = "mean", highlight: tuple[str, ...] = (), title: str | None = None,
              color: Mapping[str, str] | None = None) -> go.Figure:
    """ChatDANCE Fig. 6: l_uniform (x) against l_align (y), one point per model, for ``task`` (a
    test set or "mean"). Lower left is better on both. ``highlight`` models get a larger marker."""
    part = table[table["task"] == task]
    if part.empty:
        raise ParameterError(f"au_figure: no rows for task {task!r}; tasks: {sorted(set(table['task']))}")
    fig = go.Figure()
    for _, r in part.iterrows():
        big = r["model"] in highlight
        fig.add_trace(go.Scatter(
            x=[r["uniform"]], y=[r["align"]], mode="markers+text", name=str(r["model"]),
            text=[str(r["model"])], textposition="top center", textfont={"size": 10},
            marker={"size": 14 if big else 9, "line": {"width": 1.5 if big else 0, "color": "black"},
                    **({"color": color[r["model"]]} if color and r["model"] in color else {})},
            hovertemplate=(f"{r['model']}<br>l_uniform %{{x:.3f}}<br>l_align %{{y:.3f}}"
                           f"<br>{int(r['pairs'])} pairs<extra></extra>"),
        ))
    fig.update_layout(
        title=title or f"Alignment vs uniformity ({task}; lower is better on both)", template="plotly_white",
        xaxis_title="l_uniform (t = 2)", yaxis_title="l_align (alpha = 2)", showlegend=False, height=520,
    )
    return fig


def correlation_with(table: pd.DataFrame, score: Mapping[str, float] | pd.Series, task: str = "mean") -> pd.DataFrame:
    """Spearman rank correlation, across models, between each loss of ``table`` (rows of ``task``)
    and ``score`` (model -> e.g. OOD-average MRR; models without a score are left out)."""
    from scipy.stats import spearmanr

    score = pd.Series(score, dtype=float).dropna()
    part = table[(table["task"] == task) & table["model"].isin(score.index)]
    rows = []
    for loss in ("align", "uniform", "uniform_query", "uniform_code"):
        n = len(part)
        x, y = part[loss].to_numpy(), score.loc[part["model"]].to_numpy()
        defined = n >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0  # a constant column has no rank correlation
        rho, p = spearmanr(x, y) if defined else (float("nan"), float("nan"))
        rows.append({"loss": loss, "spearman": round(float(rho), 3), "p_value": round(float(p), 4), "models": n})
    return pd.DataFrame(rows).set_index("loss")
