"""Training subsets: the parquet file chapter 03's data-map explorer exports and chapters 01 and 04 read.

A subset holds at least the pair columns ``id``, ``query`` and ``code`` (the explorer adds the
data-map columns: confidence, variability, correctness, category) and says in its metadata
(``.attrs["workbench_subset"]``) what was exported, under which thresholds and filters, and which
retrieved codes were marked as false negatives of its queries (Select then MixUp's selection,
methods.md section 1; the marks feed CoRNStack's hard-negative mining in 01, section 4). The format
lives here, below the explorer that writes it and the chapters that read it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import paths
from .errors import InputFormatError, ParameterError
from .store import atomic_write_parquet

__all__ = ["SUBSET_COLUMNS", "load_false_negatives", "load_subset", "subset_file", "subsets_dir", "write_subset"]

SUBSET_COLUMNS = ("id", "query", "code")  # what a training subset must hold
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def subsets_dir() -> Path:
    """Where exported training subsets go by default: ``<data dir>/subsets`` (``WORKBENCH_DATA`` moves it)."""
    return paths.data_dir() / "subsets"


def subset_file(name: str, directory: Path) -> Path:
    """``<directory>/<name>.parquet`` for a bare name (letters, digits, ``.``, ``_``, ``-``; no folders)."""
    stem = name[: -len(".parquet")] if isinstance(name, str) and name.endswith(".parquet") else name
    if not isinstance(stem, str) or not _NAME.fullmatch(stem):
        raise ParameterError(
            f"export: name must be letters, digits, '.', '_' or '-' (no folders), e.g. 'ambiguous-hard'; got {name!r}"
        )
    return directory / f"{stem}.parquet"


def write_subset(path: str | os.PathLike, df: pd.DataFrame, meta: Mapping[str, Any]) -> Path:
    """Write ``df`` (at least :data:`SUBSET_COLUMNS`) as a training subset at ``path``, atomically, with
    ``meta`` plus its size and creation time in ``.attrs["workbench_subset"]``."""
    missing = [c for c in SUBSET_COLUMNS if c not in df.columns]
    if missing:
        raise ParameterError(f"write_subset: missing column(s) {missing}; a training subset needs {list(SUBSET_COLUMNS)}")
    df = df.copy()
    df.attrs["workbench_subset"] = {**meta, "n": int(len(df)),
                                    "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    return atomic_write_parquet(path, df)


def load_subset(path_or_name: str | os.PathLike, directory: str | os.PathLike | None = None) -> pd.DataFrame:
    """Read a training subset written by ``DataMapExplorer.export``.

    ``path_or_name`` is a parquet path, or a bare name looked up in ``directory`` (default
    ``subsets_dir()``), with or without ``.parquet``. The frame holds at least ``id``, ``query`` and
    ``code``; ``.attrs["workbench_subset"]`` says what was exported, under which thresholds.
    A file that is not parquet, lacks a column, has no rows, an empty or non-string id / query /
    code, or a repeated id raises :class:`InputFormatError` naming the file, the row and the field.
    """
    p = Path(path_or_name)
    base = Path(directory) if directory is not None else subsets_dir()
    tried = [p] if p.suffix == ".parquet" else [p, p.with_name(p.name + ".parquet")]
    if len(p.parts) == 1 and not p.is_absolute():
        tried += [base / t.name for t in tried]
    found = next((t for t in tried if t.is_file()), None)
    if found is None:
        have = sorted(f.stem for f in base.glob("*.parquet")) if base.is_dir() else []
        raise InputFormatError(
            tried[-1],
            f"no such training subset (looked for {[str(t) for t in dict.fromkeys(tried)]}); "
            f"subsets in {base}: {have or 'none'}. Write one with DataMapExplorer.export(name)",
        )
    try:
        df = pd.read_parquet(found)
    except Exception as e:  # pyarrow raises several types for a file that is not parquet
        raise InputFormatError(found, f"not a readable parquet file ({type(e).__name__}: {e})") from e
    missing = [c for c in SUBSET_COLUMNS if c not in df.columns]
    if missing:
        raise InputFormatError(
            found,
            f"missing column(s) {missing}; a training subset needs {list(SUBSET_COLUMNS)}, "
            f"this file has {list(df.columns)}",
            field=missing[0],
        )
    if df.empty:
        raise InputFormatError(found, "no rows: the subset is empty")
    for i, row in enumerate(zip(df["id"], df["query"], df["code"])):
        for col, value in zip(SUBSET_COLUMNS, row):
            ok = isinstance(value, str) or (col == "id" and isinstance(value, (int, np.integer)))
            if not ok or not str(value).strip():
                what = "an empty" if ok else "a missing" if value is None or value != value else "a non-string"
                raise InputFormatError(
                    found, f"row {i} (0-based) has {what} {col} ({value!r:.40}); "
                    "every row needs an id and a non-empty query and code", field=col
                )
    dup = df["id"][df["id"].duplicated()]
    if len(dup):
        raise InputFormatError(
            found, f"id {dup.iloc[0]!r} is on rows {df.index[df['id'] == dup.iloc[0]].tolist()}; ids must be unique",
            field="id",
        )
    return df


def load_false_negatives(subsets: str | os.PathLike | Iterable[str | os.PathLike],
                         directory: str | os.PathLike | None = None) -> pd.DataFrame:
    """The false negatives marked in the explorer and saved with exported subsets (names or paths, as
    :func:`load_subset` takes them): ``query_pair_id``, ``code_pair_id``, one row per mark, each once.
    Chapter 01's hard-negative mining leaves them out (``false_negative_subsets``)."""
    names = [subsets] if isinstance(subsets, (str, os.PathLike)) else list(subsets)
    rows: list[tuple[str, str]] = []
    for name in names:
        df = load_subset(name, directory)
        marks = (df.attrs.get("workbench_subset") or {}).get("false_negatives") or []
        for i, m in enumerate(marks):
            if not isinstance(m, (list, tuple)) or len(m) != 2:
                raise InputFormatError(name, f"false_negatives[{i}] is {m!r}; expected [query_pair_id, code_pair_id]",
                                       field="false_negatives")
            rows.append((str(m[0]), str(m[1])))
    return pd.DataFrame(list(dict.fromkeys(rows)), columns=["query_pair_id", "code_pair_id"])
