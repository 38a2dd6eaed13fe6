"""How many threads one job may use: ``$WORKBENCH_MAX_THREADS``, a cap on every thread count the
workbench sets (torch's intra-op threads, llama.cpp's, BLAS / OpenMP while projecting).

Two jobs that each take every core of a small machine run slower together than one after the other:
threads that spin between operations lose their core and stall (docs/performance.md). A machine that
runs several jobs at once (a sweep split across processes, the test suite's two pytest-xdist workers)
sets the cap to its cores divided by the number of jobs; a run's own ``threads`` parameter still
applies below the cap. Unset, nothing is capped.
"""

from __future__ import annotations

import os

from .errors import ParameterError

__all__ = ["MAX_THREADS_ENV", "max_threads", "thread_cap"]

MAX_THREADS_ENV = "WORKBENCH_MAX_THREADS"


def max_threads() -> int | None:
    """The cap from ``$WORKBENCH_MAX_THREADS`` (None when unset or empty)."""
    raw = os.environ.get(MAX_THREADS_ENV, "").strip()
    if not raw:
        return None
    try:
        cap = int(raw)
    except ValueError:
        cap = 0
    if cap < 1:
        raise ParameterError(f"${MAX_THREADS_ENV}: expected a positive integer, got {raw!r}")
    return cap


def thread_cap(n: int | None) -> int | None:
    """``n`` lowered to the cap; ``None`` (the library's default) becomes the cap when one is set."""
    cap = max_threads()
    if cap is None:
        return n
    return cap if n is None else min(int(n), cap)
