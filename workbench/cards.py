"""Dataset cards and the distribution gap between sets of code (pure functions: nothing cached).

- :func:`dataset_card` / :func:`cards_table` / :func:`source_table`: counts, query-word and
  code-token length quantiles, per-source (per-package) counts and five random examples per set;
  :func:`length_figure` draws the length distributions.
- :func:`distribution_gap`: a classifier two-sample test (Lopez-Paz & Oquab, "Revisiting
  classifier two-sample tests", ICLR 2017): a logistic regression tries to tell a set's code
  embeddings from the reference set's (balanced classes, 5-fold cross-validation). Accuracy 0.5
  means the two are indistinguishable to a linear probe, 1.0 that they are fully separable.
- :func:`gap_projection` / :func:`gap_figure`: a 2-D projection of code embeddings coloured by set,
  the figure Select then MixUp shows (t-SNE of each dataset's code) to picture the gap.

Lengths: query words = whitespace-separated words; code tokens = ``\\w+|[^\\w\\s]`` regex tokens,
comments included, as :func:`workbench.corpus.corpus_stats` counts them.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from .errors import ParameterError
from .projection import limit_threads as _threads
from .projection import project

__all__ = [
    "cards_table",
    "dataset_card",
    "distribution_gap",
    "gap_figure",
    "gap_projection",
    "length_figure",
    "source_table",
]

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
_QUANTILES = {"min": 0.0, "q10": 0.1, "q25": 0.25, "median": 0.5, "q75": 0.75, "q90": 0.9, "max": 1.0}
PROJECTION_METHODS = ("tsne", "umap", "mds", "pca")


def query_words(df: pd.DataFrame) -> pd.Series:
    return df["query"].str.split().str.len()


def code_tokens(df: pd.DataFrame) -> pd.Series:
    return df["code"].map(lambda c: len(_TOKEN_RE.findall(c)))


def _quantiles(s: pd.Series) -> dict[str, float]:
    if not len(s):
        return {k: float("nan") for k in ("mean", *_QUANTILES)}
    out = {"mean": round(float(s.mean()), 2)}
    out.update({k: float(s.quantile(q)) for k, q in _QUANTILES.items()})
    return out


def dataset_card(df: pd.DataFrame, name: str, seed: int = 0, n_examples: int = 5) -> dict[str, Any]:
    """A card for one set: ``name``, ``n_pairs``, ``n_files``, ``n_sources``, ``query_words`` and
    ``code_tokens`` (mean and quantiles min/q10/q25/median/q75/q90/max), ``pct_code_over_512_tokens``,
    ``per_source`` (pairs per source, largest first), ``versions`` (source -> version) and
    ``examples``: ``n_examples`` rows drawn at random (seeded) with id, source, path, func_name,
    query and code."""
    for col in ("id", "query", "code"):
        if col not in df.columns:
            raise ParameterError(f"dataset_card({name!r}): missing column {col!r}")
    qw, ct = query_words(df), code_tokens(df)
    per_source = df["source"].value_counts().to_dict() if "source" in df.columns else {}
    versions = (
        df.drop_duplicates("source").set_index("source")["version"].astype(str).to_dict()
        if {"source", "version"} <= set(df.columns) else {}
    )
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(df), size=min(n_examples, len(df)), replace=False)) if len(df) else []
    cols = [c for c in ("id", "source", "path", "func_name", "query", "code") if c in df.columns]
    files = df[["source", "path"]].drop_duplicates().shape[0] if {"source", "path"} <= set(df.columns) else None
    return {
        "name": name,
        "n_pairs": int(len(df)),
        "n_files": files,
        "n_sources": len(per_source),
        "query_words": _quantiles(qw),
        "code_tokens": _quantiles(ct),
        "pct_code_over_512_tokens": round(100.0 * float((ct > 512).mean()), 2) if len(df) else float("nan"),
        "per_source": {str(k): int(v) for k, v in per_source.items()},
        "versions": versions,
        "examples": df.iloc[list(pick)][cols].to_dict(orient="records"),
    }


def cards_table(sets: Mapping[str, pd.DataFrame], seed: int = 0) -> pd.DataFrame:
    """One row per set: pairs, files, sources, the largest source and its share (%), median and 90th
    percentile of query words and code tokens, and the share of code over 512 tokens (%)."""
    rows = []
    for name, df in sets.items():
        c = dataset_card(df, name, seed=seed, n_examples=0)
        top = max(c["per_source"].items(), key=lambda kv: kv[1], default=("", 0))
        rows.append({
            "set": name, "pairs": c["n_pairs"], "files": c["n_files"], "sources": c["n_sources"],
            "largest_source": top[0],
            "largest_source_pct": round(100.0 * top[1] / c["n_pairs"], 1) if c["n_pairs"] else float("nan"),
            "query_words_median": c["query_words"]["median"], "query_words_q90": c["query_words"]["q90"],
            "code_tokens_median": c["code_tokens"]["median"], "code_tokens_q90": c["code_tokens"]["q90"],
            "pct_code_over_512_tokens": c["pct_code_over_512_tokens"],
        })
    return pd.DataFrame(rows).set_index("set")


def source_table(sets: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per (set, source): version, pairs and share of the set (%), largest source first."""
    rows = []
    for name, df in sets.items():
        counts = df.groupby(["source", "version"]).size().sort_values(ascending=False)
        for (source, version), n in counts.items():
            rows.append({"set": name, "source": source, "version": version, "pairs": int(n),
                         "pct": round(100.0 * n / len(df), 1)})
    return pd.DataFrame(rows, columns=["set", "source", "version", "pairs", "pct"]).set_index(["set", "source"])


def set_colors(names: list[str]) -> dict[str, str]:
    palette = qualitative.D3 + qualitative.Set2
    return {n: palette[i % len(palette)] for i, n in enumerate(names)}


def length_figure(sets: Mapping[str, pd.DataFrame], kind: str = "box", max_code_tokens: int | None = 1024) -> go.Figure:
    """Query words (left) and code tokens (right) per set: box plots (``kind="box"``) or overlaid
    normalised histograms (``kind="histogram"``). Code lengths above ``max_code_tokens`` are
    clipped to it in the histogram so the long tail does not flatten the plot."""
    if kind not in ("box", "histogram"):
        raise ParameterError(f"length_figure: kind must be 'box' or 'histogram', got {kind!r}")
    colors = set_colors(list(sets))
    fig = make_subplots(rows=1, cols=2, subplot_titles=("query length (words)", "code length (tokens)"))
    for name, df in sets.items():
        qw, ct = query_words(df), code_tokens(df)
        for col, values in ((1, qw), (2, ct)):
            if kind == "box":
                trace: Any = go.Box(y=values, name=name, marker_color=colors[name], boxpoints=False,
                                    legendgroup=name, showlegend=col == 1)
            else:
                v = values.clip(upper=max_code_tokens) if col == 2 and max_code_tokens else values
                trace = go.Histogram(x=v, name=name, marker_color=colors[name], opacity=0.55,
                                     histnorm="probability density", legendgroup=name, showlegend=col == 1)
            fig.add_trace(trace, row=1, col=col)
    if kind == "box":
        fig.update_yaxes(type="log", row=1, col=2)
    else:
        fig.update_layout(barmode="overlay")
    fig.update_layout(title="Query and code lengths per set", template="plotly_white", height=420)
    return fig


# ---------------------------------------------------------------- the distribution gap


def _as_2d(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float32)
    if a.ndim != 2 or not len(a):
        raise ParameterError(f"embeddings of {name!r}: expected a non-empty 2-D array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ParameterError(f"embeddings of {name!r}: NaN or infinite values")
    return a


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])


def distribution_gap(
    embeddings_by_set: Mapping[str, np.ndarray],
    reference: str = "train",
    seed: int = 0,
    max_per_set: int = 2000,
    folds: int = 5,
    threads: int | None = None,
) -> pd.DataFrame:
    """Classifier two-sample test of every set against ``reference``.

    For each set: draw ``n = min(len(set), len(reference), max_per_set)`` rows of each (seeded),
    standardise, fit a logistic regression (scikit-learn, L2, C=1) in ``folds``-fold stratified
    cross-validation. Columns: ``set``, ``n_per_class``, ``accuracy`` (mean held-out accuracy),
    ``accuracy_std`` (across folds), ``p_value`` (one-sided binomial test of the pooled held-out
    predictions against chance, as in Lopez-Paz & Oquab 2017). 0.5 = indistinguishable.
    ``threads``: cap on BLAS / OpenMP threads while fitting (None = the library default).
    """
    from scipy.stats import binomtest
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if reference not in embeddings_by_set:
        raise ParameterError(f"distribution_gap: reference {reference!r} not in {list(embeddings_by_set)}")
    ref = _as_2d(embeddings_by_set[reference], reference)
    rows = []
    for name, emb in embeddings_by_set.items():
        if name == reference:
            continue
        x = _as_2d(emb, name)
        if x.shape[1] != ref.shape[1]:
            raise ParameterError(f"distribution_gap: {name!r} has dimension {x.shape[1]}, {reference!r} {ref.shape[1]}")
        n = min(len(x), len(ref), max_per_set)
        if n < 2 * folds:
            raise ParameterError(f"distribution_gap: {name!r} needs at least {2 * folds} rows per class, has {n}")
        rng = _rng(seed, name)
        a = ref[rng.choice(len(ref), n, replace=False)]
        b = x[rng.choice(len(x), n, replace=False)]
        data = np.concatenate([a, b])
        y = np.r_[np.zeros(n, int), np.ones(n, int)]
        accs, correct = [], 0
        with _threads(threads):
            for tr, te in StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(data, y):
                clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
                clf.fit(data[tr], y[tr])
                hit = clf.predict(data[te]) == y[te]
                accs.append(float(hit.mean()))
                correct += int(hit.sum())
        rows.append({
            "set": name, "n_per_class": n, "accuracy": round(float(np.mean(accs)), 4),
            "accuracy_std": round(float(np.std(accs)), 4),
            "p_value": float(binomtest(correct, 2 * n, 0.5, alternative="greater").pvalue),
        })
    return pd.DataFrame(rows, columns=["set", "n_per_class", "accuracy", "accuracy_std", "p_value"]).set_index("set")


def gap_projection(
    embeddings_by_set: Mapping[str, np.ndarray], method: str = "tsne", n_per_set: int = 500, seed: int = 0,
    threads: int | None = None, cache_dir: str | None = None,
) -> pd.DataFrame:
    """A 2-D projection of (at most ``n_per_set``, seeded) code embeddings of every set together:
    ``method`` "tsne" (scikit-learn, after PCA to 50 dimensions, as Select then MixUp's figure),
    "umap" (umap-learn, cosine), "mds" (cosine distances) or "pca" (:func:`workbench.projection.project`,
    cached under ``cache_dir`` when given). Returns columns ``x``, ``y``, ``set`` and ``index`` (the
    row of the point in its set's array, to join queries or code for hover text). ``threads``: cap
    on BLAS / OpenMP threads (t-SNE of 2,000 points took 16 s with one thread on 2 cores)."""
    if method not in PROJECTION_METHODS:
        raise ParameterError(f"gap_projection: method must be one of {PROJECTION_METHODS}, got {method!r}")
    parts, labels, index = [], [], []
    dim = None
    for name, emb in embeddings_by_set.items():
        x = _as_2d(emb, name)
        if dim is not None and x.shape[1] != dim:
            raise ParameterError(f"gap_projection: {name!r} has dimension {x.shape[1]}, others {dim}")
        dim = x.shape[1]
        rows = np.sort(_rng(seed, name).choice(len(x), min(n_per_set, len(x)), replace=False))
        parts.append(x[rows])
        labels += [name] * len(rows)
        index.append(rows)
    if not parts:
        raise ParameterError("gap_projection: no embeddings given")
    data = np.concatenate(parts)
    if len(data) < 3:
        raise ParameterError(f"gap_projection: needs at least 3 points, got {len(data)}")
    xy = project(data, method, seed, threads=threads, cache_dir=cache_dir)
    return pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "set": labels, "index": np.concatenate(index)})


def gap_figure(proj_df: pd.DataFrame, gap: pd.DataFrame | None = None, title: str | None = None) -> go.Figure:
    """The projection as a WebGL scatter, one colour per set. With ``gap`` (from
    :func:`distribution_gap`), each legend entry shows the set's two-sample test accuracy.
    A ``text`` column in ``proj_df`` (e.g. the query) becomes the hover text."""
    missing = [c for c in ("x", "y", "set") if c not in proj_df.columns]
    if missing:
        raise ParameterError(f"gap_figure: missing column(s) {missing}")
    names = list(dict.fromkeys(proj_df["set"]))
    colors = set_colors(names)
    fig = go.Figure()
    for name in names:
        part = proj_df[proj_df["set"] == name]
        label = name
        if gap is not None and name in gap.index:
            label = f"{name} (C2ST acc {gap.loc[name, 'accuracy']:.2f})"
        hover = part["text"].map(lambda t: str(t)[:120]) if "text" in part.columns else None
        fig.add_trace(go.Scattergl(
            x=part["x"], y=part["y"], mode="markers", name=label, text=hover,
            marker={"size": 4, "opacity": 0.6, "color": colors[name]},
            hovertemplate=(f"{name}<br>%{{text}}<extra></extra>" if hover is not None else f"{name}<extra></extra>"),
        ))
    fig.update_layout(
        title=title or "Code embeddings by set (2-D projection)", template="plotly_white", height=560,
        xaxis={"showticklabels": False, "title": ""}, yaxis={"showticklabels": False, "title": ""},
        legend={"itemsizing": "constant"},
    )
    return fig


def sample_sets(sets: Mapping[str, pd.DataFrame], n_per_set: int = 300, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Up to ``n_per_set`` random rows (seeded) of every set: the functions :func:`embed_samples`
    embeds, in the same order (so a projection's ``index`` finds a point's query and code)."""
    return {name: df.sample(n=min(n_per_set, len(df)), random_state=seed) if len(df) else df for name, df in sets.items()}


def embed_samples(
    encoder: Any, sets: Mapping[str, pd.DataFrame], n_per_set: int = 300, seed: int = 0, bf16: bool = False,
    batch_size: int = 64, show_progress: bool = True, cache_dir: str | None = None,
) -> dict[str, np.ndarray]:
    """Code embeddings of up to ``n_per_set`` random functions (seeded) of every set, for the
    distribution-gap test and its projection (cached under ``cache_dir`` when given)."""
    from .retrieval import embed_texts

    out = {}
    for name, sample in sample_sets(sets, n_per_set, seed).items():
        out[name] = embed_texts(encoder, sample["code"].tolist(), "code", cache_dir, batch_size=batch_size, bf16=bf16,
                                show_progress=show_progress)
    return out
