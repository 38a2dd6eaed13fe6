"""CoRNStack curation: dual consistency filtering, hard-negative mining and a curriculum sampler.

Implements sections 2.2-2.3 of CoRNStack (Suresh et al. 2024, "CoRNStack: High-Quality
Contrastive Data for Better Code Ranking", ``shared/papers/004``; ``docs/methods.md`` section 4):

- **Proxy scores.** A proxy embedder N (any :class:`~workbench.models.BiEncoder`; mpnet by
  default in the notebooks, Jina-Code-v2 in the paper) embeds every text t_i and code c_j of the
  corpus; ``S = N(T) . N(C)^T`` (cosine, the rows are L2-normalised). :func:`embed_pairs`.
- **Dual consistency filtering (section 2.2).** Keep (t_i, c_i) iff

      rank_i <= k   AND   S_ii > delta,     rank_i = 1 + #{j : S_ij > S_ii}

  (k = 2, delta = 0.7 in the paper, tuned for Jina-Code-v2: :func:`calibrate_delta` re-tunes it
  for another proxy). :func:`consistency_filter`.
- **Hard negatives, offline stage (section 2.3).** The candidates of t_i are its top-scoring
  codes; a candidate with ``S_ij > gamma * S_ii`` (gamma = 0.95) is dropped as a likely false
  negative (the "TopK-PercPos" rule of Moreira et al. 2024), as are the own code and codes whose
  text equals the positive's. :func:`mine_hard_negatives` -> :class:`HardNegatives`.
- **Online stage (section 2.3).** Per query, sample negatives without replacement with
  ``P(c_j | t_i) = softmax_j(S_ij / tau')`` over its candidates, tau' decayed linearly from 0.05
  to 0.001 over training (a curriculum toward harder negatives); the loss is InfoNCE over the
  in-batch positives plus the sampled negatives (``info_nce(q, c, negatives=...)``, tau = 0.07
  in the paper). :class:`NegativeSampler`, wired into :func:`workbench.training.train` by
  ``negatives=sampler.trainer_hook(codes)``.

Scale. S is never materialised: :func:`topk_scores` runs an exact faiss ``IndexFlatIP`` search
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

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import ParameterError, WorkbenchError
from workbench.store import atomic_path, atomic_write_json, cache_key

__all__ = [
    "ABLATION_ARMS",
    "REASONS",
    "RESCORE_MARGIN",
    "STRATEGIES",
    "AblationArm",
    "HardNegatives",
    "NegativeSampler",
    "NegativesHook",
    "ablation_arms",
    "calibrate_delta",
    "consistency_filter",
    "embed_pairs",
    "kept_fraction_figure",
    "mine_hard_negatives",
    "removed_examples",
    "score_distribution_figure",
    "self_scores",
    "suggest_delta",
    "texts_fingerprint",
    "topk_scores",
]

RESCORE_MARGIN = 8
"""Extra candidates searched beyond what is needed, so the float64 re-scoring can fix float32 order."""
STRATEGIES = ("topk", "softmax", "curriculum")
EMBED_VERSION = 1


# ------------------------------------------------------------------------------ embeddings
def texts_fingerprint(*columns: Sequence[str]) -> str:
    """sha256 over the texts of one or more columns (length-prefixed, so no two inputs collide)."""
    h = hashlib.sha256()
    for col in columns:
        h.update(len(col).to_bytes(8, "little"))
        for t in col:
            b = str(t).encode("utf-8")
            h.update(len(b).to_bytes(8, "little"))
            h.update(b)
    return h.hexdigest()


def _weights_digest(encoder: Any) -> str:
    """blake2b of every parameter's bytes: a fine-tuned model saved at the same path gets a new key."""
    import torch

    h = hashlib.blake2b(digest_size=16)
    with torch.no_grad():
        for name, p in encoder.state_dict().items():
            h.update(name.encode())
            t = p.detach().to("cpu").contiguous()
            if t.dtype == torch.bfloat16:
                t = t.float()
            h.update(t.numpy().tobytes())
    return h.hexdigest()


def _encoder_key(encoder: Any, bf16: bool) -> dict[str, Any]:
    return {
        "name": str(getattr(encoder, "name", "")),
        "base_model": str(getattr(encoder, "base_model", "")),
        "pooling": getattr(encoder, "pooling", None),
        "normalize": getattr(encoder, "normalize", None),
        "max_query_len": getattr(encoder, "max_query_len", None),
        "max_code_len": getattr(encoder, "max_code_len", None),
        "weights": _weights_digest(encoder),
        "bf16": bool(bf16),
    }


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(arr), allow_pickle=False)


def embed_pairs(
    encoder: Any,
    df: pd.DataFrame,
    batch_size: int = 64,
    bf16: bool = False,
    cache_dir: str | os.PathLike | None = None,
    *,
    show_progress: bool = True,
    part_size: int = 2048,
) -> tuple[np.ndarray, np.ndarray]:
    """Proxy embeddings ``(Q, C)`` of ``df["query"]`` (kind "query") and ``df["code"]`` (kind "code").

    float32, L2-normalised rows (when the encoder normalises), in ``df`` row order. With
    ``cache_dir`` the result is cached under ``cache_dir/<key>/{queries,codes}.npy`` (atomic
    writes, ``meta.json`` last), the key holding the model (name, base model, pooling, max lengths
    and a digest of its weights), ``bf16`` and a fingerprint of the texts. Long jobs are resumable:
    texts are encoded in parts of ``part_size`` (longest first, so each part pads little), each
    part saved as it finishes and reused by a re-run after an interruption.
    """
    missing = [c for c in ("query", "code") if c not in getattr(df, "columns", ())]
    if missing:
        raise ParameterError(f"embed_pairs: df lacks column(s) {missing}")
    queries = [str(x) for x in df["query"].tolist()]
    codes = [str(x) for x in df["code"].tolist()]
    if not isinstance(part_size, int) or part_size < 1:
        raise ParameterError(f"embed_pairs: part_size must be a positive integer, got {part_size!r}")
    key_parts = {
        "version": EMBED_VERSION,
        "encoder": _encoder_key(encoder, bf16),
        "texts": texts_fingerprint(queries, codes),
        "n": len(queries),
    }
    key = cache_key(key_parts)
    folder = Path(cache_dir) / key if cache_dir is not None else None
    if folder is not None and (folder / "meta.json").exists():
        Q = np.load(folder / "queries.npy", allow_pickle=False)
        C = np.load(folder / "codes.npy", allow_pickle=False)
        if Q.shape[0] == len(queries) and C.shape[0] == len(codes):
            return Q, C

    t0 = time.perf_counter()
    out = []
    for kind, texts in (("query", queries), ("code", codes)):
        order = np.argsort(-encoder.token_lengths(texts, kind), kind="stable")
        emb: np.ndarray | None = None
        for p, s in enumerate(range(0, len(texts), part_size)):
            idx = order[s : s + part_size]
            part_path = folder / "parts" / f"{kind}-{part_size}-{p:05d}.npy" if folder is not None else None
            e = None
            if part_path is not None and part_path.exists():
                e = np.load(part_path, allow_pickle=False)
                if e.shape[0] != len(idx):
                    e = None
            if e is None:
                e = encoder.encode(
                    [texts[i] for i in idx], kind=kind, batch_size=batch_size, bf16=bf16,
                    show_progress=show_progress,
                )
                if part_path is not None:
                    _save_npy(part_path, e)
            if emb is None:
                emb = np.zeros((len(texts), e.shape[1]), dtype=np.float32)
            emb[idx] = e
        out.append(emb if emb is not None else np.zeros((0, getattr(encoder, "dim", 0)), np.float32))
    Q, C = (np.ascontiguousarray(x, dtype=np.float32) for x in out)
    if folder is not None:
        _save_npy(folder / "queries.npy", Q)
        _save_npy(folder / "codes.npy", C)
        atomic_write_json(folder / "meta.json", {**key_parts, "key": key, "seconds": time.perf_counter() - t0})
        for p in sorted((folder / "parts").glob("*.npy")):
            p.unlink(missing_ok=True)
    return Q, C


# ------------------------------------------------------------------------------ search
def _as_matrix(x: Any, name: str) -> np.ndarray:
    a = np.ascontiguousarray(np.asarray(x), dtype=np.float32)
    if a.ndim != 2:
        raise ParameterError(f"{name}: expected a 2-D array (n, d), got shape {a.shape}")
    if a.size and not np.isfinite(a).all():
        raise ParameterError(f"{name}: contains NaN or infinite values")
    return a


def _as_pairs(Q: Any, C: Any) -> tuple[np.ndarray, np.ndarray]:
    q, c = _as_matrix(Q, "Q"), _as_matrix(C, "C")
    if q.shape != c.shape:
        raise ParameterError(
            f"Q and C must be paired (row i of C is the code of query i): shapes {q.shape} and {c.shape}"
        )
    if q.shape[0] == 0:
        raise ParameterError("Q, C: no pairs")
    return q, c


def _check_int(name: str, v: Any, minimum: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise ParameterError(f"{name}: expected an integer >= {minimum}, got {v!r}")
    return int(v)


def topk_scores(Q: Any, C: Any, k: int, chunk_size: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` inner products of every query against all codes: ``(scores, indices)``.

    faiss ``IndexFlatIP`` over ``C``, searched ``chunk_size`` queries at a time, so memory is
    O(chunk_size * k + n * d) and the n x n matrix is never formed. ``k' = min(k, len(C))``;
    rows are sorted by decreasing score, equal scores by corpus row (faiss leaves their order
    unspecified). Scores are float32 (faiss's GEMM), indices int64.
    """
    import faiss

    q, c = _as_matrix(Q, "Q"), _as_matrix(C, "C")
    if q.shape[1] != c.shape[1]:
        raise ParameterError(f"Q and C: dimensions differ ({q.shape[1]} vs {c.shape[1]})")
    if c.shape[0] == 0:
        raise ParameterError("C: empty corpus, nothing to search")
    k = min(_check_int("k", k, 1), c.shape[0])
    chunk_size = _check_int("chunk_size", chunk_size, 1)
    index = faiss.IndexFlatIP(c.shape[1])
    index.add(c)
    scores = np.empty((q.shape[0], k), dtype=np.float32)
    indices = np.empty((q.shape[0], k), dtype=np.int64)
    for s in range(0, q.shape[0], chunk_size):
        sc, ix = index.search(q[s : s + chunk_size], k)
        order = np.lexsort((ix, -sc), axis=-1)
        scores[s : s + chunk_size] = np.take_along_axis(sc, order, axis=1)
        indices[s : s + chunk_size] = np.take_along_axis(ix, order, axis=1)
    return scores, indices


def _rescore(q: np.ndarray, c: np.ndarray, rows: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """``q[rows[b]] . c[cand[b, j]]`` in float64 for every (b, j), by one fixed kernel.

    float32 x float32 products are exact in float64 and each dot product is summed along d in the
    same order, so equal vectors give bit-equal scores (a duplicate code ties its original exactly).
    Blocks of rows keep the temporary at about 32 MB.
    """
    out = np.empty(cand.shape, dtype=np.float64)
    width = max(1, cand.shape[1] * q.shape[1])
    block = max(1, (1 << 22) // width)
    for s in range(0, len(rows), block):
        g = c[cand[s : s + block]].astype(np.float64)
        g *= q[rows[s : s + block]].astype(np.float64)[:, None, :]
        out[s : s + block] = g.sum(axis=-1)
    return out


def self_scores(Q: Any, C: Any) -> np.ndarray:
    """``S_ii = Q[i] . C[i]`` (row-wise dot), float64, by the same kernel the filter uses."""
    q, c = _as_pairs(Q, C)
    rows = np.arange(q.shape[0])
    return _rescore(q, c, rows, rows[:, None])[:, 0]


def _candidates(
    q: np.ndarray, c: np.ndarray, depth: int, chunk_size: int, precomputed: tuple[np.ndarray, np.ndarray] | None
) -> np.ndarray:
    """Candidate code rows per query, searched ``RESCORE_MARGIN`` deeper than ``depth``."""
    want = min(depth + RESCORE_MARGIN, c.shape[0])
    if precomputed is None:
        return topk_scores(q, c, want, chunk_size)[1]
    idx = np.asarray(precomputed[1])
    if idx.ndim != 2 or idx.shape[0] != q.shape[0]:
        raise ParameterError(f"precomputed: expected (scores, indices) with {q.shape[0]} rows, got {idx.shape}")
    if idx.shape[1] < min(depth, c.shape[0]):
        raise ParameterError(
            f"precomputed: {idx.shape[1]} candidates per query, need at least {min(depth, c.shape[0])} "
            f"(best {want}); search deeper with topk_scores"
        )
    if (idx < 0).any():
        raise ParameterError("precomputed: indices contain -1 (fewer codes than k?)")
    return idx.astype(np.int64, copy=False)


def _ordered_candidates(
    q: np.ndarray, c: np.ndarray, cand: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Re-scored candidates of ``rows``, sorted by (score desc, corpus row asc), and S_ii."""
    s = _rescore(q, c, rows, np.concatenate([cand, rows[:, None]], axis=1))
    sii, sc = s[:, -1], s[:, :-1]
    order = np.lexsort((cand, -sc), axis=-1)
    return np.take_along_axis(cand, order, axis=1), np.take_along_axis(sc, order, axis=1), sii


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
    count against it). The search is chunked (:func:`topk_scores`), never n x n; the candidates and
    S_ii are re-scored in float64 so the result equals a brute-force computation. ``precomputed``:
    a ``topk_scores(Q, C, depth)`` result to reuse (e.g. shared with :func:`mine_hard_negatives`),
    ideally ``depth >= k + RESCORE_MARGIN``.

    Returns one row per pair, in input order: ``row``, ``id`` (when ``ids`` is given),
    ``self_score`` (S_ii, float64), ``self_rank`` (exact when <= k; ``k + 1`` means "outside the
    top k"), ``in_top_k``, ``above_delta``, ``kept``, ``reason`` ("kept", else "not_top_k" when
    the rank fails, checked first, else "below_delta"), ``top_index`` / ``top_score`` (the
    best-scoring code of the row, possibly the own one) and ``best_other_index`` /
    ``best_other_score`` (the best code that is not the own one). ``df.attrs`` holds k and delta.
    """
    q, c = _as_pairs(Q, C)
    n = q.shape[0]
    k = _check_int("k", k, 1)
    if isinstance(delta, bool) or not isinstance(delta, (int, float, np.integer, np.floating)) or not np.isfinite(delta):
        raise ParameterError(f"delta: expected a finite number, got {delta!r}")
    chunk_size = _check_int("chunk_size", chunk_size, 1)
    if ids is not None and len(ids) != n:
        raise ParameterError(f"ids: {len(ids)} ids for {n} pairs")
    cand_all = _candidates(q, c, k, chunk_size, precomputed)

    sii = np.empty(n, dtype=np.float64)
    rank = np.empty(n, dtype=np.int64)
    top_i = np.empty(n, dtype=np.int64)
    top_s = np.empty(n, dtype=np.float64)
    oth_i = np.full(n, -1, dtype=np.int64)
    oth_s = np.full(n, -np.inf, dtype=np.float64)
    for s in range(0, n, chunk_size):
        rows = np.arange(s, min(s + chunk_size, n))
        cand, sc, si = _ordered_candidates(q, c, cand_all[rows], rows)
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


# ------------------------------------------------------------------------------ hard negatives
@dataclass
class HardNegatives:
    """Mined candidates per query (CoRNStack section 2.3, offline stage).

    ``indices`` (int32, [n, M]): corpus rows of the candidates, best first, -1 in padding;
    ``scores`` (float32, [n, M]): their S_ij, -inf in padding; ``valid`` (bool, [n, M]);
    ``self_scores`` (float32, [n]): S_ii; ``params``: how they were mined plus drop counts.
    Valid entries come first in each row.
    """

    indices: np.ndarray
    scores: np.ndarray
    valid: np.ndarray
    self_scores: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shape = np.shape(self.indices)
        if len(shape) != 2 or np.shape(self.scores) != shape or np.shape(self.valid) != shape:
            raise ParameterError(
                f"HardNegatives: indices, scores and valid must share one 2-D shape, got "
                f"{np.shape(self.indices)}, {np.shape(self.scores)}, {np.shape(self.valid)}"
            )
        if np.shape(self.self_scores) != (shape[0],):
            raise ParameterError(f"HardNegatives: self_scores must have shape ({shape[0]},)")

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    @property
    def n_valid(self) -> np.ndarray:
        """Valid candidates per query."""
        return self.valid.sum(axis=1)

    def fingerprint(self) -> str:
        """sha256 of the arrays and params (part of a training run's resume key)."""
        h = hashlib.sha256()
        for a in (self.indices, self.scores, self.valid, self.self_scores):
            a = np.ascontiguousarray(a)
            h.update(str((a.dtype.str, a.shape)).encode())
            h.update(a.tobytes())
        h.update(json.dumps(self.params, sort_keys=True, default=str).encode())
        return h.hexdigest()

    def save(self, path: str | os.PathLike) -> Path:
        """Write one ``.npz`` atomically (no pickled objects: params are stored as a JSON string)."""
        path = Path(path)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(
                fh,
                indices=self.indices.astype(np.int32),
                scores=self.scores.astype(np.float32),
                valid=self.valid.astype(bool),
                self_scores=self.self_scores.astype(np.float32),
                params=np.array(json.dumps(self.params, sort_keys=True, default=str)),
            )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> HardNegatives:
        """Read a file written by :meth:`save` (``np.load(allow_pickle=False)``)."""
        try:
            with np.load(Path(path), allow_pickle=False) as z:
                return cls(
                    indices=z["indices"].astype(np.int32),
                    scores=z["scores"].astype(np.float32),
                    valid=z["valid"].astype(bool),
                    self_scores=z["self_scores"].astype(np.float32),
                    params=json.loads(str(z["params"])),
                )
        except (OSError, KeyError, ValueError) as e:
            raise WorkbenchError(f"{path}: not a hard-negatives file written by HardNegatives.save ({e})") from e


def _text_hashes(texts: Sequence[str]) -> np.ndarray:
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(str(t).encode("utf-8"), digest_size=8).digest(), "little") for t in texts),
        dtype=np.uint64,
        count=len(texts),
    )


def mine_hard_negatives(
    Q: Any,
    C: Any,
    M: int = 32,
    gamma: float = 0.95,
    exclude_self: bool = True,
    chunk_size: int = 8192,
    *,
    codes: Sequence[str] | None = None,
    depth: int | None = None,
    precomputed: tuple[np.ndarray, np.ndarray] | None = None,
) -> HardNegatives:
    """Hard-negative candidates per query with the false-negative guard (CoRNStack section 2.3).

    For query i: take its ``depth`` (default ``M + 1``) best-scoring codes (exact chunked search,
    re-scored in float64, ties by corpus row), drop the own code (``exclude_self``), codes whose
    text equals c_i's (``codes`` given: exact duplicates of the positive) and every candidate with
    ``S_ij > gamma * S_ii`` (likely false negatives, Moreira et al. 2024); keep the first ``M``
    left, best first, and pad the row (-1 / -inf, ``valid`` False) when fewer remain. With the
    default depth the guard shrinks rows whose top codes score near S_ii (on the unfiltered smoke
    corpus with MiniLM, M = 32: 55% of rows short, 8% empty, mean 27.3 valid); a larger ``depth``
    refills them from further down the ranking (``depth = 2 * M``: 8% short, mean 29.8). Assumes
    ``S_ii > 0`` (for S_ii <= 0 the guard ``gamma * S_ii`` lies above S_ii). Ties at the cut-off
    of the faiss search are faiss's choice (``RESCORE_MARGIN`` extra candidates make this matter
    only for clusters of exactly equal scores, e.g. many zero scores of a bag-of-words proxy).
    """
    q, c = _as_pairs(Q, C)
    n = q.shape[0]
    M = _check_int("M", M, 1)
    depth = M + 1 if depth is None else _check_int("depth", depth, 1)
    chunk_size = _check_int("chunk_size", chunk_size, 1)
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float, np.integer, np.floating)) or not np.isfinite(gamma):
        raise ParameterError(f"gamma: expected a finite number, got {gamma!r}")
    gamma = float(gamma)
    hashes = None
    if codes is not None:
        if len(codes) != n:
            raise ParameterError(f"codes: {len(codes)} texts for {n} pairs")
        hashes = _text_hashes(codes)
    cand_all = _candidates(q, c, depth, chunk_size, precomputed)

    out_i = np.full((n, M), -1, dtype=np.int32)
    out_s = np.full((n, M), -np.inf, dtype=np.float32)
    out_v = np.zeros((n, M), dtype=bool)
    sii_all = np.empty(n, dtype=np.float32)
    dropped = {"self": 0, "duplicate_code": 0, "false_negative": 0}
    for s in range(0, n, chunk_size):
        rows = np.arange(s, min(s + chunk_size, n))
        cand, sc, sii = _ordered_candidates(q, c, cand_all[rows], rows)
        cand, sc = cand[:, :depth], sc[:, :depth]
        sii_all[rows] = sii
        keep = np.ones(cand.shape, dtype=bool)
        if exclude_self:
            own = cand == rows[:, None]
            dropped["self"] += int(own.sum())
            keep &= ~own
        if hashes is not None:
            dup = keep & (hashes[cand] == hashes[rows][:, None])
            if dup.any():  # confirm on the texts (a 64-bit hash collision must not drop a negative)
                for r, j in zip(*np.nonzero(dup)):
                    if str(codes[cand[r, j]]) != str(codes[rows[r]]):
                        dup[r, j] = False
            dropped["duplicate_code"] += int(dup.sum())
            keep &= ~dup
        fn = keep & (sc > gamma * sii[:, None])
        dropped["false_negative"] += int(fn.sum())
        keep &= ~fn
        pos = np.cumsum(keep, axis=1) - 1
        sel = keep & (pos < M)
        r_ix, c_ix = np.nonzero(sel)
        out_i[rows[r_ix], pos[sel]] = cand[sel]
        out_s[rows[r_ix], pos[sel]] = sc[sel]
        out_v[rows[r_ix], pos[sel]] = True
    params = {
        "M": M, "gamma": gamma, "depth": depth, "exclude_self": bool(exclude_self),
        "dedup_codes": codes is not None, "n": n, "dropped": dropped,
        "rows_short": int((out_v.sum(axis=1) < M).sum()), "rows_empty": int((~out_v.any(axis=1)).sum()),
    }
    return HardNegatives(out_i, out_s, out_v, sii_all, params)


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
        self.n_per_query = _check_int("n_per_query", n_per_query, 1)
        self.strategy = strategy
        self.tau_start, self.tau_end = float(tau_start), float(tau_end)
        self.seed = _check_int("seed", seed, 0)
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
            rng = np.random.default_rng([self.seed, _check_int("step", step, 0)])
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
) -> list[AblationArm]:
    """The five arms of CoRNStack's Table 5 on ``df`` (with proxy embeddings ``Q``, ``C``).

    "none": all pairs, in-batch negatives only; "filtering": the consistency-filtered pairs;
    "topk" / "softmax" / "curriculum": filtered pairs plus ``n_per_query`` negatives per query,
    mined on the filtered pairs, selected by rank, sampled at tau_start, or sampled with the
    decaying tau' (``depth``: see :func:`mine_hard_negatives`). Train each with :func:`workbench.training.train` (``negatives=arm.negatives``)
    and evaluate as usual.
    """
    filt = consistency_filter(Q, C, k=k, delta=delta, chunk_size=chunk_size)
    keep = filt["kept"].to_numpy()
    kept_df = df.reset_index(drop=True)[keep].reset_index(drop=True)
    hard = mine_hard_negatives(
        Q[keep], C[keep], M=M, gamma=gamma, chunk_size=chunk_size, codes=kept_df["code"].tolist(), depth=depth
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
    return arms
