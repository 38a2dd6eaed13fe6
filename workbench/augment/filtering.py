"""The ChatDANCE filter (Wang et al., ``shared/papers/002``, section III-B, Eq. 4; ``docs/methods.md``
section 2): a cross-encoder (``workbench.models.cross_encoder``) trained on the original pairs keeps
an augmented code when ``score(q, c_aug) >= theta_c = 0.75`` and an augmented query when
``score(q_aug, c) >= theta_q = 0.95``. This module holds the thresholds and the checks of the filter:
:func:`validate_cosqa` on the 604 human-labelled CoSQA dev pairs, :func:`validate_pairs` on held-out
mined pairs with hard or random negatives, both reported by :func:`binary_metrics`, and the score
figure.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import InputFormatError, ParameterError, WorkbenchError
from workbench.models.cross_encoder import (
    CrossEncoderFilter,
    check_positive_int,
    mine_negatives,
    pair_examples,
)
from workbench.pairs import check_pairs

__all__ = [
    "THETA_CODE",
    "THETA_QUERY",
    "binary_metrics",
    "load_cosqa_labelled",
    "pairwise_accuracy",
    "score_figure",
    "strip_docstring",
    "threshold_table",
    "validate_cosqa",
    "validate_pairs",
]

THETA_CODE = 0.75
"""ChatDANCE's threshold for augmented code: keep (q, c_aug) when its score >= 0.75."""
THETA_QUERY = 0.95
"""ChatDANCE's threshold for augmented queries: keep (q_aug, c) when its score >= 0.95."""
DEFAULT_THRESHOLDS = (0.5, THETA_CODE, THETA_QUERY)
def _check_thresholds(thresholds: Sequence[float]) -> list[float]:
    try:
        ts = [float(t) for t in thresholds]
    except (TypeError, ValueError):
        raise ParameterError(f"thresholds: expected numbers in [0, 1], got {thresholds!r}") from None
    bad = [t for t in ts if not 0.0 <= t <= 1.0]
    if bad or not ts:
        raise ParameterError(f"thresholds: expected one or more numbers in [0, 1], got {thresholds!r}")
    return ts


# ------------------------------------------------------------------------------ metrics
def binary_metrics(scores: Sequence[float], labels: Sequence[int], thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> dict[str, Any]:
    """ROC-AUC and, per threshold t (predict "match" when ``score >= t``, as ChatDANCE keeps a pair),
    accuracy, precision, recall and the kept fraction.

    Returns ``{"n", "positives", "roc_auc", "mean_score_pos", "mean_score_neg", "thresholds": [{"threshold",
    "accuracy", "precision", "recall", "kept_fraction", "kept"}, ...]}``; a value that is undefined
    (AUC with one class only, precision when nothing is kept, recall with no positives) is None.
    """
    from sklearn.metrics import roc_auc_score

    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if len(s) != len(y):
        raise ParameterError(f"binary_metrics: {len(s)} scores but {len(y)} labels")
    if len(s) == 0:
        raise ParameterError("binary_metrics: no scores")
    if not np.isfinite(s).all():
        raise ParameterError("binary_metrics: scores contain NaN or infinite values")
    if not np.isin(y, (0, 1)).all():
        raise ParameterError(f"binary_metrics: labels must be 0 or 1, got {sorted(set(y.tolist()) - {0, 1})[:5]}")
    y = y.astype(bool)
    ts = _check_thresholds(thresholds)
    pos = int(y.sum())
    rows = []
    for t in ts:
        pred = s >= t
        tp = int((pred & y).sum())
        kept = int(pred.sum())
        rows.append(
            {
                "threshold": t,
                "accuracy": float((pred == y).mean()),
                "precision": tp / kept if kept else None,
                "recall": tp / pos if pos else None,
                "kept_fraction": kept / len(s),
                "kept": kept,
            }
        )
    return {
        "n": len(s),
        "positives": pos,
        "roc_auc": float(roc_auc_score(y, s)) if 0 < pos < len(s) else None,
        "mean_score_pos": float(s[y].mean()) if pos else None,
        "mean_score_neg": float(s[~y].mean()) if pos < len(s) else None,
        "thresholds": rows,
    }


def pairwise_accuracy(gold_scores: Sequence[float], negative_scores: Sequence[float]) -> float:
    """The fraction of (gold, negative) comparisons the gold wins (ties count half)."""
    g = np.asarray(gold_scores, dtype=np.float64).ravel()
    n = np.asarray(negative_scores, dtype=np.float64).ravel()
    if len(g) != len(n) or len(g) == 0:
        raise ParameterError(f"pairwise_accuracy: expected two equal, non-empty lists, got {len(g)} and {len(n)}")
    return float(((g > n) + 0.5 * (g == n)).mean())


def threshold_table(metrics: dict[str, Any]) -> pd.DataFrame:
    """The per-threshold rows of a :func:`binary_metrics` result as a DataFrame (with ``roc_auc`` repeated)."""
    df = pd.DataFrame(metrics["thresholds"])
    df.insert(0, "roc_auc", metrics["roc_auc"])
    return df


# ------------------------------------------------------------------------------ CoSQA
def strip_docstring(code: str) -> str:
    """``code`` without the docstring of its function (as the mined corpus stores code); unparsable
    code, or code that is not a single function, is returned unchanged."""
    from workbench.corpus.mining import function_code

    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return code
    if len(tree.body) != 1 or not isinstance(tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef)):
        return code
    out = function_code(code.split("\n"), tree.body[0])
    return out if out.strip() else code


def load_cosqa_labelled(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The human-labelled CoSQA pairs (``cosqa-dev.json``: a list of ``{idx, doc, code, label}``) as a
    DataFrame ``idx, query, code, label``. Default: ``paths.cosqa_dir() / "cosqa-dev.json"``.

    A malformed record raises :class:`InputFormatError` naming the file, the record's index in the
    list (and its line) and the field.
    """
    from workbench import paths
    from workbench.tasks import read_json_records

    path = Path(path) if path is not None else paths.cosqa_dir() / "cosqa-dev.json"
    if not path.is_file():
        raise WorkbenchError(f"CoSQA labelled pairs not found: {path} does not exist (set WORKBENCH_COSQA)")
    records = read_json_records(path)
    if not records:
        raise InputFormatError(path, "no records: the list is empty")
    rows = []
    for i, (line, rec) in enumerate(records):
        where = f"record {i}" + (f" (idx {rec['idx']!r})" if "idx" in rec else "")
        for name in ("doc", "code"):
            v = rec.get(name)
            if not isinstance(v, str) or not v.strip():
                what = "missing" if name not in rec else f"expected non-empty text, got {v!r:.40}"
                raise InputFormatError(path, f"{where}: {what}", line=line, field=name)
        label = rec.get("label", None)
        if isinstance(label, bool) or label not in (0, 1, "0", "1"):
            what = "missing" if "label" not in rec else f"expected 0 or 1, got {label!r:.40}"
            raise InputFormatError(path, f"{where}: {what}", line=line, field="label")
        rows.append({"idx": str(rec.get("idx", i)), "query": rec["doc"], "code": rec["code"], "label": int(label)})
    df = pd.DataFrame(rows, columns=["idx", "query", "code", "label"])
    df.attrs["path"] = str(path)
    return df


def validate_cosqa(
    filter: CrossEncoderFilter,
    path: str | os.PathLike | None = None,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    *,
    strip_docstrings: bool = False,
    batch_size: int = 64,
    show_progress: bool = False,
) -> dict[str, Any]:
    """:func:`binary_metrics` of the filter on the human-labelled CoSQA dev pairs (604, label 1 = the
    code answers the query). CoSQA's code keeps its docstring while the mined corpus's does not;
    ``strip_docstrings`` removes it first. The result also holds ``scores`` and ``labels`` (lists)."""
    df = load_cosqa_labelled(path)
    codes = [strip_docstring(c) for c in df["code"]] if strip_docstrings else df["code"].tolist()
    s = filter.score(df["query"].tolist(), codes, batch_size=batch_size, show_progress=show_progress)
    out = binary_metrics(s, df["label"].to_numpy(), thresholds)
    out.update(
        {"path": df.attrs["path"], "strip_docstrings": bool(strip_docstrings),
         "scores": s.astype(float).tolist(), "labels": df["label"].astype(int).tolist()}
    )
    return out


def validate_pairs(
    filter: CrossEncoderFilter,
    heldout: pd.DataFrame,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    *,
    negatives: str = "hard",
    n_negatives: int = 1,
    miner: str | os.PathLike | Any = "minilm",
    seed: int = 0,
    batch_size: int = 64,
    show_progress: bool = False,
) -> dict[str, Any]:
    """:func:`binary_metrics` on held-out pairs: each gold pair (label 1) and ``n_negatives`` negatives
    (label 0) per query from the held-out pool, mined by the bi-encoder ``miner`` ("hard", a registry
    name, folder or loaded :class:`~workbench.models.BiEncoder`) or drawn at random ("random").

    Adds ``pair_accuracy`` (how often a gold pair outscores a negative of its own query), ``negatives``,
    ``queries``, and ``scores`` / ``labels`` / ``kinds`` (lists, in example order).
    """
    if negatives not in ("hard", "random"):
        raise ParameterError(f"negatives: expected 'hard' or 'random', got {negatives!r}")
    heldout = check_pairs(heldout, "heldout", ("query", "code"), blank_text=False, unique_ids=False)
    n_negatives = check_positive_int("n_negatives", n_negatives)
    if len(heldout) < 2:
        raise ParameterError(f"heldout: need at least 2 pairs to draw negatives from, got {len(heldout)}")
    encoder = None
    if negatives == "hard":
        from workbench.models import BiEncoder

        encoder = miner if isinstance(miner, BiEncoder) else BiEncoder.load(miner)
    negs = mine_negatives(
        heldout, encoder, hard=n_negatives if negatives == "hard" else 0,
        random=n_negatives if negatives == "random" else 0, seed=seed, show_progress=show_progress,
    )
    ex = pair_examples(heldout, negs)
    s = filter.score(ex["query"].tolist(), ex["code"].tolist(), batch_size=batch_size, show_progress=show_progress)
    out = binary_metrics(s, ex["label"].to_numpy(), thresholds)
    gold = pd.Series(s[ex["label"].to_numpy() == 1], index=ex.loc[ex["label"] == 1, "row"].to_numpy())
    neg_mask = ex["label"].to_numpy() == 0
    neg_rows = ex.loc[neg_mask, "row"].to_numpy()
    out.update(
        {
            "pair_accuracy": pairwise_accuracy(gold.loc[neg_rows].to_numpy(), s[neg_mask]) if neg_mask.any() else None,
            "negatives": negatives,
            "queries": len(heldout),
            "scores": s.astype(float).tolist(),
            "labels": ex["label"].astype(int).tolist(),
            "kinds": ex["kind"].tolist(),
        }
    )
    return out


# ------------------------------------------------------------------------------ figure
def score_figure(
    scores: Sequence[float], labels: Sequence[int], thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    nbins: int = 40, title: str | None = None,
):
    """Plotly histograms of the filter's scores for positives and negatives, thresholds as vertical lines
    (each annotated with the share of positives and negatives it keeps)."""
    import plotly.graph_objects as go

    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    if len(s) != len(y) or len(s) == 0:
        raise ParameterError(f"score_figure: expected equal, non-empty scores and labels, got {len(s)} and {len(y)}")
    fig = go.Figure()
    for flag, name, color in ((True, "positives", "#1f77b4"), (False, "negatives", "#d62728")):
        part = s[y == flag]
        fig.add_trace(go.Histogram(
            x=part, name=f"{name} ({len(part)})", opacity=0.6, marker_color=color,
            xbins={"start": 0.0, "end": 1.0, "size": 1.0 / nbins},
        ))
    for t in _check_thresholds(thresholds):
        kp = float((s[y] >= t).mean()) if y.any() else float("nan")
        kn = float((s[~y] >= t).mean()) if (~y).any() else float("nan")
        fig.add_vline(
            x=t, line_dash="dash", line_color="black",
            annotation_text=f"{t:g}: keeps {kp:.0%} pos / {kn:.0%} neg", annotation_position="top left",
        )
    fig.update_layout(
        barmode="overlay", title=title or f"Cross-encoder filter scores (n = {len(s)})",
        xaxis_title="score = sigmoid(logit)", yaxis_title="pairs", xaxis_range=[0, 1],
        legend={"orientation": "h", "y": -0.2},
    )
    return fig
