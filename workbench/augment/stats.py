"""Statistics of augmented candidates (ChatDANCE's qualitative analysis, papers/002 Section V, and
the QRA / NatGen baselines): per technique, how many candidates were produced, passed validation
and were kept by the filter; how much they change length; how lexically diverse they are (1 - token
Jaccard with the original, distinct-2 over the rewrites of one original); and how close in meaning
they stay (cosine of bi-encoder embeddings with the original).

Inputs are the frames of :mod:`workbench.augment.chatdance` (any augmenter's candidates with the
columns ``id, aug_of, query, code, aug_kind, aug_op``), the log frame (``RewriteLog.to_frame()``)
and Algorithm 1's ``decisions``. All functions are pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..corpus.dedup import code_tokens
from ..errors import ParameterError

Encode = Callable[[list[str], str], np.ndarray]

#: which side of the pair a kind of augmentation rewrites
QUERY_KINDS = ("llm_query", "qra", "query")


def side(aug_kind: str) -> str:
    """``"query"`` for query augmentations (``llm_query``, ``qra``), else ``"code"``."""
    return "query" if str(aug_kind) in QUERY_KINDS or "query" in str(aug_kind) else "code"


def tokens(text: str, kind: str) -> list[str]:
    """Lowercase words (``\\w+``) of a query, or Python tokens of code (comments left out)."""
    if kind == "query":
        return re.findall(r"\w+", str(text).lower())
    return code_tokens(str(text))


def length(text: str, kind: str) -> int:
    """Words of a query (whitespace split, as the paper's L), tokens of code."""
    return len(str(text).split()) if kind == "query" else len(code_tokens(str(text)))


def line_count(code: str) -> int:
    """Non-blank lines."""
    return sum(1 for ln in str(code).splitlines() if ln.strip())


def jaccard(a: Sequence[str], b: Sequence[str]) -> float:
    """Jaccard similarity of two token sets (1.0 for two empty sets)."""
    sa, sb = set(a), set(b)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def lexical_diversity(original: str, rewrite: str, kind: str) -> float:
    """1 - token Jaccard between a rewrite and its original (0: same words, 1: no word shared)."""
    return 1.0 - jaccard(tokens(original, kind), tokens(rewrite, kind))


def distinct_n(texts: Sequence[str], kind: str, n: int = 2) -> float:
    """Distinct-n (Li et al. 2016): distinct token n-grams / all token n-grams over ``texts``
    (NaN when there is no n-gram)."""
    grams: list[tuple[str, ...]] = []
    for t in texts:
        toks = tokens(t, kind)
        grams.extend(tuple(toks[i : i + n]) for i in range(len(toks) - n + 1))
    return len(set(grams)) / len(grams) if grams else float("nan")


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (n, d) arrays."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ParameterError(f"cosine_rows: shapes differ {a.shape} vs {b.shape}")
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(na * nb, 1e-12)


def with_originals(candidates: pd.DataFrame, original: pd.DataFrame) -> pd.DataFrame:
    """The candidates with ``side`` (query | code), ``text`` (the rewritten side) and ``orig_text``
    (that side of the original pair)."""
    missing = [c for c in ("aug_of", "query", "code", "aug_kind", "aug_op") if c not in candidates.columns]
    if missing:
        raise ParameterError(f"candidates: missing column(s) {missing}; have {list(candidates.columns)}")
    by_id = original.set_index(original["id"].astype(str))
    orphans = sorted(set(candidates["aug_of"].astype(str)) - set(by_id.index))
    if orphans:
        raise ParameterError(f"candidates: aug_of {orphans[0]!r} is not an id of the original pairs")
    out = candidates.copy()
    out["side"] = [side(k) for k in out["aug_kind"]]
    out["text"] = [q if s == "query" else c for s, q, c in zip(out["side"], out["query"], out["code"])]
    out["orig_text"] = [str(by_id.at[str(a), s]) for a, s in zip(out["aug_of"], out["side"])]
    return out


def candidate_metrics(candidates: pd.DataFrame, original: pd.DataFrame,
                      encode: Encode | None = None) -> pd.DataFrame:
    """Per candidate: ``len_orig``, ``len_new`` and ``len_change`` (words for queries, tokens for
    code), ``lines_change`` (code), ``diversity`` (1 - token Jaccard) and, with ``encode``,
    ``similarity`` (cosine of ``encode(texts, side)`` of rewrite and original)."""
    f = with_originals(candidates, original)
    f["len_orig"] = [length(t, s) for t, s in zip(f["orig_text"], f["side"])]
    f["len_new"] = [length(t, s) for t, s in zip(f["text"], f["side"])]
    f["len_change"] = f["len_new"] - f["len_orig"]
    f["lines_change"] = [float(line_count(t) - line_count(o)) if s == "code" else np.nan
                         for t, o, s in zip(f["text"], f["orig_text"], f["side"])]
    f["diversity"] = [lexical_diversity(o, t, s) for o, t, s in zip(f["orig_text"], f["text"], f["side"])]
    f["similarity"] = np.nan
    if encode is not None and len(f):
        for s, idx in f.groupby("side").groups.items():
            sub = f.loc[idx]
            emb_new = encode(sub["text"].astype(str).tolist(), s)
            emb_old = encode(sub["orig_text"].astype(str).tolist(), s)
            f.loc[idx, "similarity"] = cosine_rows(emb_new, emb_old)
    return f


def technique_table(
    candidates: pd.DataFrame,
    original: pd.DataFrame,
    log: pd.DataFrame | None = None,
    decisions: pd.DataFrame | None = None,
    encode: Encode | None = None,
) -> pd.DataFrame:
    """One row per (aug_kind, aug_op): ``candidates`` (every extracted rewrite, from ``log``; without
    a log, the accepted ones), ``accepted`` (passed validation), ``acceptance`` (accepted /
    candidates), ``kept`` and ``keep_rate`` (kept by Algorithm 1's filter / accepted; with
    ``decisions``), the means of ``len_change``, ``len_ratio``, ``lines_change``, ``diversity``,
    ``similarity`` (with ``encode``) and ``distinct_2`` (mean over originals with >= 2 rewrites of
    the technique of distinct-2 among those rewrites)."""
    m = candidate_metrics(candidates, original, encode)
    m["len_ratio"] = m["len_new"] / m["len_orig"].clip(lower=1)
    keys = ["aug_kind", "aug_op"]
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    if log is not None and len(log):
        for key, g in log.groupby(keys, sort=True):
            rows[key] = {"candidates": len(g)}
    for key, g in m.groupby(keys, sort=True):
        r = rows.setdefault(key, {"candidates": len(g)})
        r["accepted"] = len(g)
        for col in ("len_change", "len_ratio", "lines_change", "diversity", "similarity"):
            r[col] = float(g[col].mean()) if g[col].notna().any() else np.nan
        d2 = [distinct_n(grp["text"].astype(str).tolist(), str(grp["side"].iloc[0]), 2)
              for _, grp in g.groupby("aug_of") if len(grp) >= 2]
        d2 = [v for v in d2 if not np.isnan(v)]
        r["distinct_2"] = float(np.mean(d2)) if d2 else np.nan
    if decisions is not None and len(decisions):
        for key, g in decisions.groupby(keys, sort=True):
            rows.setdefault(key, {"candidates": 0})["kept"] = int(g["kept"].sum())
    cols = ["candidates", "accepted", "acceptance", "kept", "keep_rate", "len_change", "len_ratio",
            "lines_change", "diversity", "distinct_2", "similarity"]
    out = pd.DataFrame([{"aug_kind": k[0], "aug_op": k[1], **v} for k, v in sorted(rows.items())])
    if out.empty:
        return pd.DataFrame(columns=[*keys, *cols])
    for c in cols:
        if c not in out.columns:
            out[c] = np.nan
    out["accepted"] = out["accepted"].fillna(0).astype(int)
    out["acceptance"] = out["accepted"] / out["candidates"].where(out["candidates"] > 0)
    if decisions is not None:
        out["kept"] = out["kept"].fillna(0).astype(int)
        out["keep_rate"] = out["kept"] / out["accepted"].where(out["accepted"] > 0)
    return out[[*keys, *cols]]


def examples(candidates: pd.DataFrame, original: pd.DataFrame, k: int = 3, seed: int = 0) -> pd.DataFrame:
    """Up to ``k`` examples per (aug_kind, aug_op), drawn with ``seed``: ``aug_kind, aug_op, aug_of,
    original`` (the rewritten side of the original pair) and ``rewrite``."""
    f = with_originals(candidates, original)
    parts = []
    for _, g in f.groupby(["aug_kind", "aug_op"], sort=True):
        parts.append(g.sample(n=min(k, len(g)), random_state=seed) if len(g) > k else g)
    if not parts:
        return pd.DataFrame(columns=["aug_kind", "aug_op", "aug_of", "original", "rewrite"])
    out = pd.concat(parts)
    return out.rename(columns={"orig_text": "original", "text": "rewrite"})[
        ["aug_kind", "aug_op", "aug_of", "original", "rewrite"]].reset_index(drop=True)
