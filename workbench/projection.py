"""2-D projections of embeddings and the figures the papers draw with them.

- :func:`project`: UMAP (umap-learn, cosine), t-SNE (scikit-learn, after PCA to 50 dimensions),
  metric MDS on cosine distances (scikit-learn) or PCA; seeded and cached on disk.
- :func:`pairs_frame` / :func:`pairs_figure`: test queries and their code projected together, a
  line from each query to its code (ChatDANCE Fig. 7: short lines = good alignment).
- :func:`neighbourhood_frame` / :func:`neighbourhood_figure`: one query with its top-k candidates
  coloured by similarity, query and gold marked (OASIS Fig. 3, MDS, k = 50).
- :func:`side_by_side`: the same view for two models in one figure (shared axes style, one legend).

The distribution-gap clouds of every set use :func:`workbench.cards.gap_projection`, which projects
through :func:`project` too.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .errors import ParameterError
from .evaluation import rank_order
from .store import atomic_path, cache_key
from .threads import thread_cap

__all__ = [
    "METHODS",
    "limit_threads",
    "project",
    "pairs_frame",
    "pairs_figure",
    "neighbourhood_frame",
    "neighbourhood_figure",
    "side_by_side",
]

METHODS = ("umap", "tsne", "mds", "pca")


def limit_threads(n: int | None) -> contextlib.AbstractContextManager:
    """Limit BLAS / OpenMP threads (threadpoolctl) to ``n``; None leaves them alone. On a shared,
    loaded CPU, t-SNE with all threads spinning was 50x slower than with one. Capped by
    ``$WORKBENCH_MAX_THREADS``, which also applies when ``n`` is None."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ParameterError(f"threads: expected a positive int or None, got {n!r}")
    n = thread_cap(n)  # $WORKBENCH_MAX_THREADS
    if n is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n)


def _fit(data: np.ndarray, method: str, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(data)
    if method == "tsne":
        from sklearn.manifold import TSNE

        k = min(50, data.shape[1], len(data))
        reduced = PCA(n_components=k, random_state=seed).fit_transform(data) if k < data.shape[1] else data
        perplexity = float(min(30.0, max(2.0, (len(data) - 1) / 3)))
        return TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed).fit_transform(reduced)
    if method == "mds":
        from sklearn.manifold import MDS
        from sklearn.metrics.pairwise import cosine_distances

        dist = np.maximum(cosine_distances(data), 0.0)
        np.fill_diagonal(dist, 0.0)
        dist = (dist + dist.T) / 2
        return MDS(n_components=2, metric="precomputed", init="classical_mds", n_init=1, random_state=seed,
                   normalized_stress="auto").fit_transform(dist)
    import umap

    return umap.UMAP(n_components=2, metric="cosine", random_state=seed, n_jobs=1,  # seeded = single-threaded
                     n_neighbors=min(15, len(data) - 1)).fit_transform(data)


def project(
    x: np.ndarray, method: str = "umap", seed: int = 0, *, threads: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> np.ndarray:
    """``(n, 2)`` coordinates of the rows of ``x`` by ``method`` (one of :data:`METHODS`), seeded.
    With ``cache_dir``, a projection of the same rows, method and seed is read back from disk."""
    if method not in METHODS:
        raise ParameterError(f"projection method must be one of {METHODS}, got {method!r}")
    data = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if data.ndim != 2 or len(data) < 3:
        raise ParameterError(f"project: needs a 2-D array of at least 3 rows, got shape {data.shape}")
    if not np.isfinite(data).all():
        raise ParameterError("project: embeddings hold NaN or infinite values")
    path = None
    if cache_dir is not None:
        key = cache_key({"x": hashlib.sha256(data.tobytes()).hexdigest(), "shape": data.shape, "m": method, "s": seed})
        path = Path(cache_dir) / f"proj-{method}-{key}.npy"
        if path.exists():
            return np.load(path)
    with limit_threads(threads):
        xy = np.asarray(_fit(data, method, seed), dtype=np.float64)
    if path is not None:
        with atomic_path(path, suffix=".npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, xy)
    return xy


def _short(text: object, n: int = 160) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= n else s[: n - 1] + "…"


def pairs_frame(
    query_emb: np.ndarray, code_emb: np.ndarray, queries: Sequence[str], codes: Sequence[str],
    method: str = "tsne", seed: int = 0, **kw,
) -> pd.DataFrame:
    """Queries and their paired code projected together: columns ``pair, kind (query|code), x, y,
    text, distance`` (the pair's Euclidean distance in the embedding space)."""
    q, c = np.asarray(query_emb), np.asarray(code_emb)
    if q.shape != c.shape or len(queries) != len(q) or len(codes) != len(c):
        raise ParameterError(f"pairs_frame: {len(q)} queries / {len(c)} codes / {len(queries)} query texts / "
                             f"{len(codes)} code texts must all match")
    xy = project(np.concatenate([q, c]), method, seed, **kw)
    n = len(q)
    dist = np.linalg.norm(q - c, axis=1)
    return pd.DataFrame({
        "pair": np.r_[np.arange(n), np.arange(n)], "kind": ["query"] * n + ["code"] * n,
        "x": xy[:, 0], "y": xy[:, 1], "text": [_short(t) for t in [*queries, *codes]], "distance": np.r_[dist, dist],
    })


def pairs_figure(df: pd.DataFrame, title: str | None = None) -> go.Figure:
    """ChatDANCE Fig. 7: a line from every query to its code, then the queries and the code."""
    q = df[df["kind"] == "query"].sort_values("pair")
    c = df[df["kind"] == "code"].sort_values("pair")
    xs = np.column_stack([q["x"].to_numpy(), c["x"].to_numpy(), np.full(len(q), np.nan)]).ravel()
    ys = np.column_stack([q["y"].to_numpy(), c["y"].to_numpy(), np.full(len(q), np.nan)]).ravel()
    fig = go.Figure()
    fig.add_trace(go.Scattergl(x=xs, y=ys, mode="lines", name="query–code pair",
                               line={"color": "rgba(44,160,44,0.45)", "width": 1}, hoverinfo="skip"))
    for part, name, color, symbol in ((q, "query", "#1f77b4", "circle"), (c, "code", "#d62728", "diamond")):
        fig.add_trace(go.Scattergl(
            x=part["x"], y=part["y"], mode="markers", name=name, text=part["text"], customdata=part["distance"],
            marker={"size": 5, "color": color, "symbol": symbol, "opacity": 0.8},
            hovertemplate=f"{name}: %{{text}}<br>pair distance %{{customdata:.3f}}<extra></extra>",
        ))
    mean = float(q["distance"].mean()) if len(q) else float("nan")
    fig.update_layout(
        title=title or f"{len(q)} test pairs (mean pair distance {mean:.3f})", template="plotly_white", height=560,
        xaxis={"showticklabels": False, "title": ""}, yaxis={"showticklabels": False, "title": ""},
        legend={"itemsizing": "constant"},
    )
    return fig


def neighbourhood_frame(
    query_emb: np.ndarray, corpus_emb: np.ndarray, corpus_texts: Sequence[str], gold_row: int, query_text: str,
    k: int = 50, method: str = "mds", seed: int = 0, **kw,
) -> pd.DataFrame:
    """One query and its top-``k`` candidates (plus the gold code when it is not among them),
    projected together: columns ``role (query|gold|candidate), rank, similarity, x, y, text``."""
    qv = np.asarray(query_emb, dtype=np.float32).reshape(-1)
    c = np.asarray(corpus_emb, dtype=np.float32)
    if not 0 <= gold_row < len(c):
        raise ParameterError(f"neighbourhood_frame: gold_row {gold_row} is outside the pool of {len(c)}")
    sims = c @ qv
    order = rank_order(sims)
    rank_of = np.empty(len(c), dtype=np.int64)
    rank_of[order] = np.arange(1, len(c) + 1)
    rows = list(order[: min(k, len(c))])
    if gold_row not in rows:
        rows.append(int(gold_row))
    rows_a = np.asarray(rows)
    xy = project(np.vstack([qv[None, :], c[rows_a]]), method, seed, **kw)
    roles = ["query"] + ["gold" if r == gold_row else "candidate" for r in rows_a]
    return pd.DataFrame({
        "role": roles, "rank": [0, *rank_of[rows_a].tolist()], "similarity": [1.0, *sims[rows_a].tolist()],
        "x": xy[:, 0], "y": xy[:, 1], "text": [_short(query_text), *[_short(corpus_texts[r]) for r in rows_a]],
    })


def neighbourhood_figure(df: pd.DataFrame, title: str | None = None, cmin: float | None = None,
                         cmax: float | None = None) -> go.Figure:
    """OASIS Fig. 3: candidates coloured by similarity to the query (darker = more similar); the
    query (star) and its gold code (square) have black edges."""
    cand = df[df["role"] != "query"]
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=cand["x"], y=cand["y"], mode="markers", name="candidates", text=cand["text"],
        customdata=np.column_stack([cand["rank"], cand["similarity"]]),
        marker={"size": np.where(cand["role"] == "gold", 14, 9), "color": cand["similarity"], "colorscale": "Blues",
                "cmin": cmin if cmin is not None else float(cand["similarity"].min()),
                "cmax": cmax if cmax is not None else float(cand["similarity"].max()),
                "symbol": np.where(cand["role"] == "gold", "square", "circle"),
                "line": {"width": np.where(cand["role"] == "gold", 2, 0), "color": "black"},
                "colorbar": {"title": "cosine"}},
        hovertemplate="rank %{customdata[0]} · cosine %{customdata[1]:.3f}<br>%{text}<extra></extra>",
    ))
    q = df[df["role"] == "query"]
    fig.add_trace(go.Scatter(x=q["x"], y=q["y"], mode="markers", name="query", text=q["text"],
                             marker={"size": 16, "symbol": "star", "color": "gold", "line": {"width": 2, "color": "black"}},
                             hovertemplate="query: %{text}<extra></extra>"))
    gold = df[df["role"] == "gold"]
    rank = int(gold["rank"].iloc[0]) if len(gold) else None
    fig.update_layout(
        title=title or f"query and its top {len(cand) - (1 if rank and rank > len(cand) - 1 else 0)} candidates "
                       f"(gold rank {rank})",
        template="plotly_white", height=520, showlegend=False,
        xaxis={"showticklabels": False, "title": ""}, yaxis={"showticklabels": False, "title": ""},
    )
    return fig


def side_by_side(figures: Mapping[str, go.Figure], title: str | None = None, height: int = 560) -> go.Figure:
    """Put figures (title -> figure) next to each other in one figure, for two models' views of the
    same data; legend entries are shown once, colour bars of the later panels are dropped."""
    fig = make_subplots(rows=1, cols=len(figures), subplot_titles=list(figures), horizontal_spacing=0.04)
    seen: set[str] = set()
    for col, sub in enumerate(figures.values(), start=1):
        for tr in sub.data:
            tr = go.Figure(tr).data[0]  # a copy
            if tr.name in seen:
                tr.showlegend = False
            seen.add(tr.name)
            if col > 1 and getattr(tr, "marker", None) is not None and getattr(tr.marker, "colorbar", None) is not None:
                tr.marker.showscale = False
            fig.add_trace(tr, row=1, col=col)
        fig.update_xaxes(showticklabels=False, row=1, col=col)
        fig.update_yaxes(showticklabels=False, row=1, col=col)
    showlegend = any(getattr(f.layout, "showlegend", None) is not False for f in figures.values())
    fig.update_layout(title=title, template="plotly_white", height=height, showlegend=showlegend,
                      legend={"itemsizing": "constant"})
    return fig
