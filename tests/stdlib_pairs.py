"""Real (query, code) pairs for tests: functions of the running Python's standard library, mined by
the workbench's own CodeSearchNet-style miner."""

from __future__ import annotations

import sysconfig
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from workbench.corpus import mine_source, pair_id


def mine_stdlib_pairs(files: Sequence[str], n: int) -> pd.DataFrame:
    """The first ``n`` kept functions of ``files`` (paths inside the stdlib), in file order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    rows: list[dict[str, str]] = []
    for name in files:
        path = root / name
        if not path.exists():
            continue
        kept, _ = mine_source(path.read_bytes(), name)
        for f in kept:
            rows.append({"id": pair_id("stdlib", name, f.func_name, f.lineno), "query": f.query, "code": f.code,
                         "func_name": f.func_name, "module": name[:-3]})
            if len(rows) == n:
                return pd.DataFrame(rows)
    raise AssertionError(f"only {len(rows)} stdlib pairs mined from {list(files)}, wanted {n}")
