"""Train/valid/test/OOD splits without leakage (``shared/docs/offline.md``).

Files, not functions, are assigned to a split, by a stable hash of ``(source, path)``, so functions
of one file never straddle train and test (CodeSearchNet split by repository). Queries repeat
("Get metadata routing of this object." x27), so every evaluation split keeps one function per
normalised query and drops the queries seen in train. Out-of-distribution sources get
``split="ood"`` with the same two rules against the in-distribution train.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ParameterError
from .dedup import code_key
from .mining import normalize_query

SPLITS = ("train", "valid", "test", "ood")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """Validate ``(train, valid, test)`` fractions: three non-negative numbers summing to 1."""
    fr = tuple(float(f) for f in fractions)
    if len(fr) != 3 or any(f < 0 for f in fr) or abs(sum(fr) - 1.0) > 1e-6:
        raise ParameterError(f"fractions: expected three non-negative numbers summing to 1, got {fractions!r}")
    return fr  # type: ignore[return-value]


def stable_unit(*parts: object) -> float:
    """A number in [0, 1) from a sha256 of the parts: the same everywhere, every run."""
    h = hashlib.sha256("|".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") / 2.0**64


def split_for_path(
    source: str, path: str, fractions: Sequence[float] = DEFAULT_FRACTIONS, seed: int = 0
) -> str:
    """``"train"``, ``"valid"`` or ``"test"`` for a file, from the hash of ``(seed, source, path)``."""
    tr, va, _ = check_fractions(fractions)
    u = stable_unit(seed, source, path)
    return "train" if u < tr else "valid" if u < tr + va else "test"


def assign_splits(df: pd.DataFrame, fractions: Sequence[float] = DEFAULT_FRACTIONS, seed: int = 0) -> pd.Series:
    """The split of every row of ``df`` (columns ``source``, ``path``), hashed once per file."""
    files = df[["source", "path"]].drop_duplicates()
    lookup = {
        (s, p): split_for_path(s, p, fractions, seed) for s, p in zip(files["source"], files["path"])
    }
    return pd.Series([lookup[(s, p)] for s, p in zip(df["source"], df["path"])], index=df.index, dtype=object)


def one_per_query(df: pd.DataFrame, exclude: set[str] | frozenset[str] = frozenset()) -> tuple[pd.DataFrame, dict]:
    """Drop rows whose normalised query is in ``exclude``, then keep one row per normalised query
    (the smallest ``id``, so the choice does not depend on row order). Returns the kept rows in
    their original order and the counts removed."""
    norm = df["query"].map(normalize_query)
    seen = norm.isin(exclude)
    rest = df[~seen].assign(_norm=norm[~seen])
    first = rest.sort_values("id", kind="stable").drop_duplicates("_norm", keep="first").index
    kept = rest.loc[rest.index.isin(first)].drop(columns="_norm")
    return kept, {"query_seen_in_train": int(seen.sum()), "repeated_query": int(len(rest) - len(kept))}


def split_corpus(
    in_dist: pd.DataFrame, ood: pd.DataFrame | None = None, fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Assign train/valid/test to ``in_dist`` by file hash, ``ood`` to every row of ``ood``, and apply
    the query rules to valid, test and ood. Returns the rows (a ``split`` column set) and a report."""
    fractions = check_fractions(fractions)
    in_dist = in_dist.assign(split=assign_splits(in_dist, fractions, seed))
    train = in_dist[in_dist["split"] == "train"]
    train_queries = set(train["query"].map(normalize_query))
    parts = [train]
    report: dict[str, Any] = {"assigned": in_dist["split"].value_counts().to_dict()}
    for name in ("valid", "test"):
        kept, counts = one_per_query(in_dist[in_dist["split"] == name], train_queries)
        parts.append(kept)
        report[name] = counts
    if ood is not None and len(ood):
        kept, counts = one_per_query(ood.assign(split="ood"), train_queries)
        parts.append(kept)
        report["ood"] = counts
    out = pd.concat(parts, ignore_index=True)
    return out, report


def cap_split(df: pd.DataFrame, max_rows: int | None, seed: int = 0) -> pd.DataFrame:
    """At most ``max_rows`` rows, a deterministic sample by hash of ``(seed, id)``, original order kept."""
    if max_rows is None or len(df) <= max_rows:
        return df
    rank = np.argsort(np.array([stable_unit(seed, "cap", i) for i in df["id"]]), kind="stable")
    return df.iloc[np.sort(rank[:max_rows])]


def leakage_report(df: pd.DataFrame, code_keys: Sequence[str] | None = None) -> dict[str, Any]:
    """Query overlap between train and each evaluation split, repeated queries inside evaluation
    splits, and exact code duplicates (same token sequence) across splits. All zero after a build.

    ``code_keys`` (one :func:`~workbench.corpus.dedup.code_key` per row) saves re-tokenising.
    """
    norm = df["query"].map(normalize_query)
    split = df["split"]
    train_q = set(norm[split == "train"])
    out: dict[str, Any] = {}
    for name in ("valid", "test", "ood"):
        q = norm[split == name]
        out[f"train_{name}_query_overlap"] = len(set(q) & train_q)
        out[f"{name}_repeated_queries"] = int(len(q) - q.nunique())
    keys = pd.Series(list(code_keys) if code_keys is not None else [code_key(c) for c in df["code"]], index=df.index)
    per_key = pd.DataFrame({"key": keys, "split": split}).drop_duplicates().groupby("key")["split"].nunique()
    out["cross_split_code_duplicates"] = int((per_key > 1).sum())
    out["clean"] = all(v == 0 for v in out.values())
    return out
