"""Retrieval primitives every method shares: exact top-k search in chunks, exact float64 re-scoring,
embeddings of pairs cached by the encoder's weights, and hard-negative mining.

- :func:`search`: exact inner-product top-k (faiss ``IndexFlatIP``) over chunks of queries, so memory
  is O(chunk * k + n * d) and the n x n matrix is never formed; rows sorted by decreasing score,
  equal scores by corpus row. Evaluation (``workbench.evaluation``), CoRNStack's filter
  (``workbench.curation``), the embeddings of analysis chapters and the cross-encoder's negatives
  all search with it.
- :func:`rescore` / :func:`self_scores`: ``q . c`` in float64 by one kernel (float32 products are
  exact in float64 and summed in a fixed order), so an exact duplicate ties its original exactly
  and a rank does not depend on faiss's float32 GEMM; :data:`RESCORE_MARGIN` extra candidates are
  searched so the re-scoring can fix float32 order.
- :func:`embed_texts` / :func:`embed_pairs`: embeddings of texts (of a pairs table), the one
  embedding cache of the workbench: keyed by the texts' fingerprint and the encoder's weights
  (:func:`encoder_key`), resumable in parts.
- :func:`mine_hard_negatives` -> :class:`HardNegatives`: the best-scoring other codes of each query,
  those above ``gamma`` times the query's own score dropped as likely unlabelled positives (the
  "TopK-PercPos" rule of Moreira et al. 2024, used by CoRNStack section 2.3 and by ChatDANCE's
  filter training).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import ParameterError, WorkbenchError
from workbench.store import atomic_path, cache_key

__all__ = [
    "RESCORE_MARGIN",
    "HardNegatives",
    "as_matrix",
    "embed_pairs",
    "embed_texts",
    "encoder_key",
    "mine_hard_negatives",
    "rescore",
    "search",
    "self_scores",
    "texts_fingerprint",
]

RESCORE_MARGIN = 8
"""Extra candidates searched beyond what is needed, so the float64 re-scoring can fix float32 order."""
EMBED_VERSION = 2


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


def encoder_key(encoder: Any, bf16: bool) -> dict[str, Any]:
    """What identifies an encoder's embeddings in a cache key: its base model (the tokenizer),
    pooling, normalisation, maximum lengths, precision and a digest of its weights (a model fine-tuned
    and saved at the same path gets a new key). Not its name: the same weights embed alike whatever
    they are called, so a model a chapter scored under its label and a later chapter loads from its
    folder share their embeddings."""
    return {
        "base_model": str(getattr(encoder, "base_model", "")),
        "pooling": getattr(encoder, "pooling", None),
        "normalize": getattr(encoder, "normalize", None),
        "max_query_len": getattr(encoder, "max_query_len", None),
        "max_code_len": getattr(encoder, "max_code_len", None),
        "weights": _weights_digest(encoder),
        # the precision it really computes in (runtime.effective_bf16); without a torch device, what was asked
        "bf16": bool(bf16) if getattr(encoder, "device", None) is None else _effective_bf16(encoder.device, bf16),
    }


def _effective_bf16(device: Any, bf16: bool) -> bool:
    from workbench.runtime import effective_bf16

    return effective_bf16(device, bf16)


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(arr), allow_pickle=False)


def embed_texts(
    encoder: Any,
    texts: Sequence[str],
    kind: str,
    cache_dir: str | os.PathLike | None = None,
    *,
    bf16: bool = False,
    batch_size: int = 64,
    show_progress: bool = True,
    part_size: int = 2048,
) -> np.ndarray:
    """``encoder.encode`` of ``texts`` as ``kind`` ("query" or "code"): float32 rows in ``texts`` order.

    With ``cache_dir`` the result is read from / written to ``cache_dir/<kind>-<key>.npy`` (atomic),
    the key holding :func:`encoder_key` and a fingerprint of the texts, so every chapter that embeds
    the same texts with the same weights reads them back. More than ``part_size`` texts are encoded
    in parts (longest first, so each part pads little), each part saved as it finishes and reused by
    a re-run after an interruption, then removed once the whole array is saved.
    """
    texts = [str(x) for x in texts]
    if not isinstance(part_size, int) or isinstance(part_size, bool) or part_size < 1:
        raise ParameterError(f"embed_texts: part_size must be a positive integer, got {part_size!r}")
    if cache_dir is None:
        return np.ascontiguousarray(encoder.encode(texts, kind=kind, batch_size=batch_size, bf16=bf16,
                                                   show_progress=show_progress), dtype=np.float32)
    key = cache_key({"version": EMBED_VERSION, "encoder": encoder_key(encoder, bf16), "kind": kind,
                     "texts": texts_fingerprint(texts), "n": len(texts)})
    path = Path(cache_dir) / f"{kind}-{key}.npy"
    if path.exists():
        arr = np.load(path, allow_pickle=False)
        if arr.shape[0] == len(texts):
            return arr
    if len(texts) <= part_size:
        arr = np.ascontiguousarray(encoder.encode(texts, kind=kind, batch_size=batch_size, bf16=bf16,
                                                  show_progress=show_progress), dtype=np.float32)
        _save_npy(path, arr)
        return arr
    parts = Path(cache_dir) / f"{kind}-{key}.parts"
    order = np.argsort(-encoder.token_lengths(texts, kind), kind="stable")
    arr: np.ndarray | None = None
    for n, s in enumerate(range(0, len(texts), part_size)):
        idx = order[s : s + part_size]
        part_path = parts / f"{part_size}-{n:05d}.npy"
        e = np.load(part_path, allow_pickle=False) if part_path.exists() else None
        if e is None or e.shape[0] != len(idx):
            e = encoder.encode([texts[i] for i in idx], kind=kind, batch_size=batch_size, bf16=bf16,
                               show_progress=show_progress)
            _save_npy(part_path, e)
        if arr is None:
            arr = np.zeros((len(texts), e.shape[1]), dtype=np.float32)
        arr[idx] = e
    assert arr is not None
    _save_npy(path, arr)
    for f in sorted(parts.glob("*.npy")):
        f.unlink(missing_ok=True)
    parts.rmdir()
    return arr


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
    """``(Q, C)``: :func:`embed_texts` of ``df["query"]`` (kind "query") and of ``df["code"]`` (kind
    "code"), in ``df`` row order, each cached and resumable as :func:`embed_texts` says."""
    missing = [c for c in ("query", "code") if c not in getattr(df, "columns", ())]
    if missing:
        raise ParameterError(f"embed_pairs: df lacks column(s) {missing}")
    kw = dict(bf16=bf16, batch_size=batch_size, show_progress=show_progress, part_size=part_size)
    return (embed_texts(encoder, df["query"].tolist(), "query", cache_dir, **kw),
            embed_texts(encoder, df["code"].tolist(), "code", cache_dir, **kw))


# ------------------------------------------------------------------------------ search
def as_matrix(x: Any, name: str) -> np.ndarray:
    a = np.ascontiguousarray(np.asarray(x), dtype=np.float32)
    if a.ndim != 2:
        raise ParameterError(f"{name}: expected a 2-D array (n, d), got shape {a.shape}")
    if a.size and not np.isfinite(a).all():
        raise ParameterError(f"{name}: contains NaN or infinite values")
    return a


def as_pairs(Q: Any, C: Any) -> tuple[np.ndarray, np.ndarray]:
    q, c = as_matrix(Q, "Q"), as_matrix(C, "C")
    if q.shape != c.shape:
        raise ParameterError(
            f"Q and C must be paired (row i of C is the code of query i): shapes {q.shape} and {c.shape}"
        )
    if q.shape[0] == 0:
        raise ParameterError("Q, C: no pairs")
    return q, c


def check_int(name: str, v: Any, minimum: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise ParameterError(f"{name}: expected an integer >= {minimum}, got {v!r}")
    return int(v)


def search(Q: Any, C: Any, k: int, chunk_size: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` inner products of every query against all codes: ``(scores, indices)``.

    faiss ``IndexFlatIP`` over ``C``, searched ``chunk_size`` queries at a time, so memory is
    O(chunk_size * k + n * d) and the n x n matrix is never formed. ``k' = min(k, len(C))``;
    rows are sorted by decreasing score, equal scores by corpus row (faiss leaves their order
    unspecified). Scores are float32 (faiss's GEMM), indices int64.
    """
    import faiss

    q, c = as_matrix(Q, "Q"), as_matrix(C, "C")
    if q.shape[1] != c.shape[1]:
        raise ParameterError(f"Q and C: dimensions differ ({q.shape[1]} vs {c.shape[1]})")
    if c.shape[0] == 0:
        raise ParameterError("C: empty corpus, nothing to search")
    k = min(check_int("k", k, 1), c.shape[0])
    chunk_size = check_int("chunk_size", chunk_size, 1)
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


def rescore(q: np.ndarray, c: np.ndarray, rows: np.ndarray, cand: np.ndarray) -> np.ndarray:
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
    q, c = as_pairs(Q, C)
    rows = np.arange(q.shape[0])
    return rescore(q, c, rows, rows[:, None])[:, 0]


def candidates(
    q: np.ndarray, c: np.ndarray, depth: int, chunk_size: int, precomputed: tuple[np.ndarray, np.ndarray] | None
) -> np.ndarray:
    """Candidate code rows per query, searched ``RESCORE_MARGIN`` deeper than ``depth``."""
    want = min(depth + RESCORE_MARGIN, c.shape[0])
    if precomputed is None:
        return search(q, c, want, chunk_size)[1]
    idx = np.asarray(precomputed[1])
    if idx.ndim != 2 or idx.shape[0] != q.shape[0]:
        raise ParameterError(f"precomputed: expected (scores, indices) with {q.shape[0]} rows, got {idx.shape}")
    if idx.shape[1] < min(depth, c.shape[0]):
        raise ParameterError(
            f"precomputed: {idx.shape[1]} candidates per query, need at least {min(depth, c.shape[0])} "
            f"(best {want}); search deeper with search"
        )
    if (idx < 0).any():
        raise ParameterError("precomputed: indices contain -1 (fewer codes than k?)")
    return idx.astype(np.int64, copy=False)


def ordered_candidates(
    q: np.ndarray, c: np.ndarray, cand: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Re-scored candidates of ``rows``, sorted by (score desc, corpus row asc), and S_ii."""
    s = rescore(q, c, rows, np.concatenate([cand, rows[:, None]], axis=1))
    sii, sc = s[:, -1], s[:, :-1]
    order = np.lexsort((cand, -sc), axis=-1)
    return np.take_along_axis(cand, order, axis=1), np.take_along_axis(sc, order, axis=1), sii


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
    marked: Mapping[int, Iterable[int]] | None = None,
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
    ``marked``: row -> code rows a person marked as correct answers to that row's query (the data-map
    explorer's false negatives, ``workbench.subsets.load_false_negatives``); they are never its negatives.
    """
    q, c = as_pairs(Q, C)
    n = q.shape[0]
    M = check_int("M", M, 1)
    depth = M + 1 if depth is None else check_int("depth", depth, 1)
    chunk_size = check_int("chunk_size", chunk_size, 1)
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float, np.integer, np.floating)) or not np.isfinite(gamma):
        raise ParameterError(f"gamma: expected a finite number, got {gamma!r}")
    gamma = float(gamma)
    hashes = None
    if codes is not None:
        if len(codes) != n:
            raise ParameterError(f"codes: {len(codes)} texts for {n} pairs")
        hashes = _text_hashes(codes)
    cand_all = candidates(q, c, depth, chunk_size, precomputed)

    out_i = np.full((n, M), -1, dtype=np.int32)
    out_s = np.full((n, M), -np.inf, dtype=np.float32)
    out_v = np.zeros((n, M), dtype=bool)
    sii_all = np.empty(n, dtype=np.float32)
    dropped = {"self": 0, "duplicate_code": 0, "false_negative": 0, "marked": 0}
    marks = {int(r): np.fromiter((int(j) for j in js), dtype=np.int64) for r, js in (marked or {}).items()}
    for s in range(0, n, chunk_size):
        rows = np.arange(s, min(s + chunk_size, n))
        cand, sc, sii = ordered_candidates(q, c, cand_all[rows], rows)
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
        for local in (np.flatnonzero(np.isin(rows, list(marks))) if marks else ()):
            hit = keep[local] & np.isin(cand[local], marks[int(rows[local])])
            dropped["marked"] += int(hit.sum())
            keep[local] &= ~hit
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


