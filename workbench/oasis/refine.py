"""Label refinement (OASIS, ``shared/papers/001`` section 3.3; ``docs/methods.md`` section 3, step 3).

An annotator's cosine under-rates a repository negative that in fact answers the query too (an
overload, a wrapper, a near copy). OASIS finds such candidates two ways and asks an LLM:

- **threshold**: a negative whose annotator similarity is above its positive's, or above s*, the
  crossing point of a two-component Gaussian mixture fitted to all similarity scores
  (:func:`gmm_crossing`; s* = 0.4 in the paper);
- **AST**: the tree edit distance between the negative's and the gold code's ASTs divided by the sum
  of their node counts is below 0.25 (:func:`normalized_tree_edit_distance`, APTED by Pawlik &
  Augsten via the ``apted`` package; node labels are AST node types, so renamed identifiers cost
  nothing). Trees above ``max_nodes`` are skipped and counted, and ``|n1 - n2| / (n1 + n2)``, a
  lower bound of the distance, prunes pairs that cannot pass without computing it.

The LLM judge (:func:`judge_requests` / :func:`parse_judgement`) gets a binary choice: does this code
answer the query? A confirmed negative's label becomes ``sim * (1 + delta_s)`` (delta_s = 0.1), capped
below the positive's 1.0 (:func:`apply_refinement`).
"""

from __future__ import annotations

import ast
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import ParameterError
from workbench.llm.backends import Message, Sampling

__all__ = [
    "AST_THRESHOLD",
    "DELTA_S",
    "GaussianMixtureFit",
    "JUDGE_SAMPLING",
    "apply_refinement",
    "ast_candidates",
    "ast_size",
    "gmm_crossing",
    "gmm_figure",
    "judge_requests",
    "normalized_tree_edit_distance",
    "parse_judgement",
    "threshold_candidates",
]

AST_THRESHOLD = 0.25
DELTA_S = 0.1
MAX_NODES = 250
"""AST size cap: APTED is cubic in the worst case; 250 nodes is a function of roughly 30 lines."""
JUDGE_SAMPLING = Sampling(temperature=0.0, top_p=1.0, max_tokens=4, seed=0)


# ------------------------------------------------------------------------------ GMM crossing
@dataclass(frozen=True)
class GaussianMixtureFit:
    """A two-component 1-D Gaussian mixture (components ordered by mean) and its crossing point."""

    weights: tuple[float, float]
    means: tuple[float, float]
    stds: tuple[float, float]
    crossing: float | None  # s*: where w1 N(x; m1, s1) = w2 N(x; m2, s2) between the means, None if nowhere

    def density(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each weighted component's density at ``x`` (for the plot of the fit)."""
        x = np.asarray(x, dtype=float)
        return tuple(w * np.exp(-0.5 * ((x - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))
                     for w, m, s in zip(self.weights, self.means, self.stds))  # type: ignore[return-value]


def crossing_point(weights: Sequence[float], means: Sequence[float], stds: Sequence[float]) -> float | None:
    """Where ``w1 N(x; m1, s1) = w2 N(x; m2, s2)`` (``m1 < m2``): the root of the quadratic in ``x``
    between the means; with no root there, the real root nearest the midpoint; None when the weighted
    densities never cross."""
    (w1, w2), (m1, m2), (s1, s2) = weights, means, stds
    a = 1 / (2 * s2**2) - 1 / (2 * s1**2)
    b = m1 / s1**2 - m2 / s2**2
    c = m2**2 / (2 * s2**2) - m1**2 / (2 * s1**2) + math.log((w1 * s2) / (w2 * s1))
    if abs(a) < 1e-12:
        roots = [] if abs(b) < 1e-15 else [-c / b]
    else:
        disc = b * b - 4 * a * c
        if disc < 0:
            return None
        r = math.sqrt(disc)
        roots = [(-b - r) / (2 * a), (-b + r) / (2 * a)]
    if not roots:
        return None
    inside = [x for x in roots if min(m1, m2) <= x <= max(m1, m2)]
    mid = (m1 + m2) / 2
    return float(min(inside or roots, key=lambda x: abs(x - mid)))


def gmm_crossing(scores: Sequence[float], seed: int = 0) -> GaussianMixtureFit:
    """Fit ``sklearn.mixture.GaussianMixture(2)`` to ``scores`` and return the fit with its crossing point s*."""
    from sklearn.mixture import GaussianMixture

    x = np.asarray(scores, dtype=float).reshape(-1, 1)
    if x.shape[0] < 4 or not np.isfinite(x).all():
        raise ParameterError(f"gmm_crossing: need at least 4 finite scores, got {x.shape[0]}")
    if np.ptp(x) == 0:
        raise ParameterError("gmm_crossing: all scores are equal; a two-component mixture is undefined")
    gm = GaussianMixture(n_components=2, random_state=seed, n_init=3).fit(x)
    order = np.argsort(gm.means_.ravel())
    w = gm.weights_[order]
    m = gm.means_.ravel()[order]
    s = np.sqrt(gm.covariances_.reshape(-1)[order])
    return GaussianMixtureFit(tuple(map(float, w)), tuple(map(float, m)), tuple(map(float, s)),
                              crossing_point(w, m, s))


def threshold_candidates(labels: pd.DataFrame, s_star: float | None) -> pd.Series:
    """Boolean mask over ``labels`` (:func:`similarity_labels`' frame): negatives whose ``sim_raw`` is
    above their positive's ``sim_raw`` or above ``s_star``."""
    pos = labels[labels["kind"] == "positive"].set_index("query_id")["sim_raw"]
    neg = labels["kind"] == "negative"
    above_pos = labels["sim_raw"] > labels["query_id"].map(pos)
    above_star = labels["sim_raw"] > s_star if s_star is not None else False
    return neg & (above_pos | above_star)


# ------------------------------------------------------------------------------ tree edit distance
def _ast_tree(code: str) -> tuple[Any, int]:
    """The AST of ``code`` as an apted tree of node-type labels (expression contexts dropped) and its size."""
    from apted.helpers import Tree

    tree = ast.parse(code)

    def convert(node: ast.AST) -> Tree:
        kids = [convert(ch) for ch in ast.iter_child_nodes(node) if not isinstance(ch, ast.expr_context)]
        return Tree(type(node).__name__, *kids)

    size = sum(1 for n in ast.walk(tree) if not isinstance(n, ast.expr_context))
    return convert(tree), size


def ast_size(code: str) -> int | None:
    """Node count of ``code``'s AST (expression contexts not counted); None if it does not parse."""
    try:
        return sum(1 for n in ast.walk(ast.parse(code)) if not isinstance(n, ast.expr_context))
    except (SyntaxError, ValueError, RecursionError):
        return None


def normalized_tree_edit_distance(code_a: str, code_b: str, max_nodes: int | None = MAX_NODES) -> float | None:
    """``TED(AST_a, AST_b) / (|AST_a| + |AST_b|)`` in [0, 1] (unit costs for insert, delete and
    relabel; labels are node types). None when either side does not parse or exceeds ``max_nodes``."""
    from apted import APTED

    try:
        ta, na = _ast_tree(code_a)
        tb, nb = _ast_tree(code_b)
    except (SyntaxError, ValueError, RecursionError):
        return None
    if max_nodes is not None and max(na, nb) > max_nodes:
        return None
    return APTED(ta, tb).compute_edit_distance() / (na + nb)


def ast_candidates(labels: pd.DataFrame, codes: dict[str, str], threshold: float = AST_THRESHOLD,
                   max_nodes: int | None = MAX_NODES, show_progress: bool = True) -> tuple[pd.Series, dict[str, Any]]:
    """Negatives whose normalised tree edit distance to their query's gold code is below ``threshold``.

    ``codes`` maps pair id to code. Returns the distances (NaN where not computed) aligned with
    ``labels`` and counts: ``computed``, ``pruned`` (the size lower bound already reaches the
    threshold), ``too_large``, ``unparsable``, ``seconds``, ``seconds_per_computed_pair``.
    """
    from workbench.progress import tqdm

    sizes: dict[str, int | None] = {}

    def size(i: str) -> int | None:
        if i not in sizes:
            sizes[i] = ast_size(codes[i])
        return sizes[i]

    dist = pd.Series(np.nan, index=labels.index, dtype=float)
    counts = {"computed": 0, "pruned": 0, "too_large": 0, "unparsable": 0}
    t0 = time.perf_counter()
    negs = labels[labels["kind"] == "negative"]
    for idx, q, c in tqdm(list(zip(negs.index, negs["query_id"], negs["code_id"])), desc="AST distances",
                          unit="pair", disable=not show_progress, mininterval=5):
        na, nb = size(q), size(c)
        if na is None or nb is None:
            counts["unparsable"] += 1
        elif max_nodes is not None and max(na, nb) > max_nodes:
            counts["too_large"] += 1
        elif abs(na - nb) / (na + nb) >= threshold:
            counts["pruned"] += 1
        else:
            dist[idx] = normalized_tree_edit_distance(codes[q], codes[c], max_nodes)
            counts["computed"] += 1
    seconds = time.perf_counter() - t0
    counts_out: dict[str, Any] = {**counts, "seconds": round(seconds, 3),
                                  "seconds_per_computed_pair": seconds / counts["computed"] if counts["computed"] else None}
    return dist, counts_out


# ------------------------------------------------------------------------------ LLM judge
JUDGE_SYSTEM = ("You check code search results. Given a search query and a Python function, answer 'yes' if "
                "the function does what the query asks, otherwise 'no'. Answer with one word.")


JUDGE_MAX_CODE_CHARS = 1600
"""Longer functions are cut (with a marker line) so a request fits a small local model's context."""


def _clip(code: str, limit: int) -> str:
    if len(code) <= limit:
        return code
    return code[:limit].rsplit("\n", 1)[0] + "\n    # ... (truncated)"


def judge_requests(queries: Sequence[str], codes: Sequence[str],
                   max_code_chars: int = JUDGE_MAX_CODE_CHARS) -> list[tuple[list[Message], Sampling]]:
    """One binary-choice chat request per (query, code) candidate (greedy decoding, 4 tokens); code
    longer than ``max_code_chars`` is cut at a line end with a ``# ... (truncated)`` marker."""
    if len(queries) != len(codes):
        raise ParameterError(f"judge_requests: {len(queries)} queries but {len(codes)} codes")
    return [([{"role": "system", "content": JUDGE_SYSTEM},
              {"role": "user", "content": f"Query: {q}\n\nFunction:\n```python\n{_clip(c, max_code_chars)}\n```\n\n"
                                          "Does the function do what the query asks? Answer yes or no."}],
             JUDGE_SAMPLING) for q, c in zip(queries, codes)]


_ANSWER = re.compile(r"[a-z]+")


def parse_judgement(reply: str) -> bool | None:
    """True for an answer starting with "yes", False for "no", None for anything else."""
    m = _ANSWER.search(reply.lower())
    if m is None:
        return None
    return {"yes": True, "no": False}.get(m.group(0))


def apply_refinement(labels: pd.DataFrame, confirmed: pd.Series, delta_s: float = DELTA_S) -> pd.DataFrame:
    """``label * (1 + delta_s)`` for the confirmed negatives (a boolean mask aligned with ``labels``),
    capped just below 1.0 so a refined negative never ties its positive; adds a ``refined`` column."""
    if not 0 <= float(delta_s) <= 1:
        raise ParameterError(f"delta_s: expected a number in [0, 1], got {delta_s!r}")
    mask = confirmed.reindex(labels.index, fill_value=False).astype(bool) & (labels["kind"] == "negative")
    out = labels.copy()
    below_one = float(np.nextafter(np.float32(1.0), np.float32(0.0)))
    out.loc[mask, "label"] = np.minimum(out.loc[mask, "label"] * (1 + float(delta_s)), below_one)
    out["refined"] = mask
    return out


def gmm_figure(labels: pd.DataFrame, fit: GaussianMixtureFit, nbins: int = 50, title: str | None = None):
    """Plotly density histogram of all annotator similarities (the scores the mixture is fitted to),
    the two weighted Gaussian components, their sum, and the crossing point s* as a vertical line."""
    import plotly.graph_objects as go

    s = labels["sim_raw"].to_numpy(dtype=float)
    lo, hi = float(min(s.min(), 0.0)), float(max(s.max(), 1.0))
    fig = go.Figure()
    fig.add_trace(go.Histogram(x=s, name=f"all scores ({len(s)})", histnorm="probability density", opacity=0.45,
                               marker_color="#7f7f7f", xbins={"start": lo, "end": hi, "size": (hi - lo) / nbins}))
    x = np.linspace(lo, hi, 400)
    parts = fit.density(x)
    for i, (dens, color) in enumerate(zip(parts, ("#d62728", "#1f77b4"))):
        fig.add_trace(go.Scatter(x=x, y=dens, mode="lines", line={"color": color},
                                 name=f"component {i + 1}: w={fit.weights[i]:.2f}, mean={fit.means[i]:.2f}, sd={fit.stds[i]:.2f}"))
    fig.add_trace(go.Scatter(x=x, y=parts[0] + parts[1], mode="lines", line={"color": "black", "dash": "dot"},
                             name="mixture"))
    if fit.crossing is not None:
        fig.add_vline(x=fit.crossing, line_color="green", annotation_text=f"s* = {fit.crossing:.3f}",
                      annotation_position="top right")
    fig.update_layout(title=title or f"Annotator similarities and the two-component GMM (n = {len(s)})",
                      xaxis_title="annotator cosine (query, code)", yaxis_title="density",
                      legend={"orientation": "h", "y": -0.25})
    return fig
