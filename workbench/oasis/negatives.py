"""Repository-level negatives (OASIS, ``shared/papers/001`` section 3.2; ``docs/methods.md`` section 3).

For each query OASIS pairs K = 5 other functions of the **same repository** with it: they share the
vocabulary, the helpers and the style of the gold function, so they are hard, and their similarity to
the query is graded rather than 0 (:mod:`workbench.oasis.labels`). The mined corpus records the package
(``source``) and the file (``path``) of every pair; functions of the same file are taken first (the
paper's "same module"), then the rest of the package. A candidate whose code text equals the gold's,
or whose query equals this query, is never a negative (the same function mined twice, or an overload
with the same docstring). Within each tier the candidates are ordered by a stable hash of ``(seed,
query id, candidate id)``: the choice does not depend on the order of the rows, and adding functions
to a package changes a pair's negatives only where a new function hashes lower.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import ParameterError

__all__ = ["NEGATIVE_COLUMNS", "repository_negatives"]

NEGATIVE_COLUMNS = ["query_id", "code_id", "rank", "same_module"]
REQUIRED = ("id", "query", "code", "source", "path")


_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def _id_hash(ids: np.ndarray, seed: int) -> np.ndarray:
    return np.array([int.from_bytes(hashlib.sha256(f"{seed}:{i}".encode()).digest()[:8], "little") for i in ids],
                    dtype=np.uint64)


def _mix(a: np.uint64, b: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser of ``a * 3 + b``: a well-spread 64-bit key per (query, candidate)."""
    with np.errstate(over="ignore"):
        z = (a * np.uint64(3) + b) & _MASK
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK
        return z ^ (z >> np.uint64(31))


def _check(pairs: Any, k: Any) -> pd.DataFrame:
    if not isinstance(pairs, pd.DataFrame):
        raise ParameterError(f"pairs: expected a pandas DataFrame, got {type(pairs).__name__}")
    missing = [c for c in REQUIRED if c not in pairs.columns]
    if missing:
        raise ParameterError(f"pairs: missing column(s) {missing} (the mined corpus has them); present: {list(pairs.columns)}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ParameterError(f"k: expected an integer >= 1, got {k!r}")
    dup = pairs["id"][pairs["id"].duplicated()].tolist()
    if dup:
        raise ParameterError(f"pairs: duplicate id(s) {dup[:5]}")
    return pairs.reset_index(drop=True)


def repository_negatives(pairs: pd.DataFrame, k: int = 5, seed: int = 0, prefer_same_module: bool = True,
                         query_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Up to ``k`` negatives per pair from the same package (``source``), same file (``path``) first.

    ``pairs`` is the pool negatives come from; ``query_ids`` (default: every pair) the pairs that get
    negatives.

    Returns one row per (query, negative): ``query_id``, ``code_id`` (ids of ``pairs``), ``rank``
    (0..k-1, the order of choice) and ``same_module``. A pair whose package has fewer than ``k``
    usable functions gets fewer rows (``shortfall`` in ``DataFrame.attrs`` counts the missing ones;
    ``attrs["pairs_without_negatives"]`` the pairs left with none).
    """
    df = _check(pairs, k)
    wanted = None if query_ids is None else {str(i) for i in query_ids}
    if wanted is not None and not wanted <= set(df["id"].astype(str)):
        raise ParameterError(f"query_ids: not in pairs: {sorted(wanted - set(df['id'].astype(str)))[:5]}")
    rows: list[tuple[str, str, int, bool]] = []
    shortfall = 0
    alone = 0
    for _, group in df.groupby("source", sort=False):
        ids = group["id"].to_numpy()
        codes = group["code"].to_numpy()
        queries = group["query"].to_numpy()
        paths = group["path"].to_numpy()
        hashes = _id_hash(ids, seed)
        for i in range(len(group)):
            if wanted is not None and str(ids[i]) not in wanted:
                continue
            usable = np.flatnonzero((codes != codes[i]) & (queries != queries[i]))
            keys = _mix(hashes[i], hashes[usable])
            if prefer_same_module:
                order = usable[np.lexsort((keys, paths[usable] != paths[i]))]
            else:
                order = usable[np.argsort(keys, kind="stable")]
            chosen = order[:k]
            shortfall += k - len(chosen)
            alone += len(chosen) == 0
            for r, j in enumerate(chosen):
                rows.append((str(ids[i]), str(ids[j]), r, bool(paths[j] == paths[i])))
    out = pd.DataFrame(rows, columns=NEGATIVE_COLUMNS)
    out.attrs["shortfall"] = int(shortfall)
    out.attrs["pairs_without_negatives"] = int(alone)
    return out
