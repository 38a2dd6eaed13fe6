"""The fault ledger of the reliability tests (issue 10): every fault tried is one entry.

A test wraps each fault it tries in ``with fault(area, name) as f:`` and inside it calls
``f.saw(message)`` with what the user sees (the error text, or the skip count the report shows),
``f.keep(n)`` with how many finished pieces it checked were kept, and sets ``f.lost = n`` to how
many were lost (the test also asserts that this is 0). An exception inside the block records the fault
as not survived and propagates. ``conftest.pytest_terminal_summary`` prints the totals at the end of
the run (inputs tried, faults survived, results lost), and writes every entry as JSON to
``$WORKBENCH_FAULT_REPORT`` when that is set.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Fault:
    area: str
    name: str
    survived: bool = False
    seen: str = ""
    kept: int = 0
    lost: int = 0
    test: str = field(default_factory=lambda: os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0])

    def saw(self, message: object) -> str:
        """What the user sees (kept to its first 300 characters); returns the full text."""
        text = str(message)
        self.seen = text[:300]
        return text

    def keep(self, n: int = 1) -> None:
        self.kept += n


LEDGER: list[Fault] = []


@contextmanager
def fault(area: str, name: str) -> Iterator[Fault]:
    """Record one fault tried: survived when the block ends without an exception."""
    entry = Fault(area, name)
    LEDGER.append(entry)
    yield entry
    entry.survived = True


def summary_lines() -> list[str]:
    if not LEDGER:
        return []
    areas: dict[str, list[Fault]] = {}
    for f in LEDGER:
        areas.setdefault(f.area, []).append(f)
    survived = sum(f.survived for f in LEDGER)
    lines = [
        f"fault tests: {len(LEDGER)} inputs and faults tried, {survived} survived, "
        f"{sum(f.kept for f in LEDGER)} finished results checked kept, {sum(f.lost for f in LEDGER)} results lost"
    ]
    for area, rows in areas.items():
        lines.append(
            f"  {area}: {len(rows)} tried, {sum(r.survived for r in rows)} survived, {sum(r.lost for r in rows)} lost"
        )
    return lines


def write_report(path: str | os.PathLike) -> None:
    Path(path).write_text(json.dumps([asdict(f) for f in LEDGER], indent=1))
