"""The check every method runs on the (query, code) pairs it is given, in one place: a DataFrame, the
columns it needs, rows, text where text is expected, unique ids. Each error names what was passed
(``what``), the column and the rows, so a bad table is refused before any work starts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from .errors import ParameterError

__all__ = ["PAIR_FIELDS", "check_pairs"]

#: the columns a table of training pairs has at least
PAIR_FIELDS = ("id", "query", "code")


def check_pairs(
    pairs: Any,
    what: str = "pairs",
    columns: Sequence[str] = PAIR_FIELDS,
    *,
    min_rows: int = 1,
    text: Sequence[str] = ("query", "code"),
    blank_text: bool = True,
    unique_ids: bool = True,
) -> pd.DataFrame:
    """``pairs`` with a fresh 0..n-1 index, after checking that it is a DataFrame with ``columns``, at
    least ``min_rows`` rows, strings in the ``text`` columns it has (blank ones refused unless
    ``blank_text``) and, with ``unique_ids``, no ``id`` twice (compared as strings)."""
    if not isinstance(pairs, pd.DataFrame):
        raise ParameterError(f"{what}: expected a pandas DataFrame with columns {list(columns)}, got {type(pairs).__name__}")
    missing = [c for c in columns if c not in pairs.columns]
    if missing:
        raise ParameterError(f"{what}: missing column(s) {missing}; present: {list(pairs.columns)}")
    if len(pairs) < min_rows:
        raise ParameterError(f"{what}: no pairs (empty DataFrame)" if len(pairs) == 0
                             else f"{what}: {len(pairs)} pairs, need at least {min_rows}")
    for c in text:
        if c in columns:
            bad = [i for i, t in enumerate(pairs[c].tolist()) if not isinstance(t, str) or (not blank_text and not t.strip())]
            if bad:
                kind = "non-text" if blank_text else "empty or non-text"
                raise ParameterError(f"{what}: column '{c}' has {kind} values at rows {bad[:5]}")
    if unique_ids and "id" in pairs.columns:
        ids = pairs["id"].astype(str)
        dup = ids[ids.duplicated()]
        if len(dup):
            raise ParameterError(f"{what}: id {dup.iloc[0]!r} appears more than once")
    return pairs.reset_index(drop=True)
