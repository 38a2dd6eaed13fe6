"""Named points where a fault test stops a process deterministically.

A kill test must kill its victim at a known moment: after the first checkpoint, after two mined
sources, after five cached LLM answers. Waiting for a file and then killing races the victim, which
may already be further on (the test then fails with "the kill came too late") or not yet there. Instead
the code under test calls :func:`pause_point` at those moments; when the environment names the point
(``WORKBENCH_PAUSE_AT=<point>`` or ``<point>#<n>`` for its n-th time), the process writes its pid to
``WORKBENCH_PAUSE_READY`` (a file path) and waits there, as does every thread that reaches any point
after it, until it is killed. Without the variable a point costs one dictionary lookup.

Points: ``train.checkpoint`` (a checkpoint committed), ``corpus.source`` (one source's mined pairs and
marker written), ``llm.cached`` (one answer written to the LLM cache).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter

PAUSE_AT = "WORKBENCH_PAUSE_AT"
PAUSE_READY = "WORKBENCH_PAUSE_READY"
POINTS = ("train.checkpoint", "corpus.source", "llm.cached")

_lock = threading.Lock()
_seen: Counter = Counter()
_paused = threading.Event()


def pause_point(name: str) -> None:
    """Wait here for good when ``$WORKBENCH_PAUSE_AT`` names this point (and its count), or when the
    process already paused at one; return at once otherwise."""
    spec = os.environ.get(PAUSE_AT)
    if not spec:
        return
    if not _paused.is_set():
        point, _, nth = spec.partition("#")
        if point != name:
            return
        with _lock:
            _seen[name] += 1
            if _seen[name] != int(nth or 1):
                return
            _paused.set()
        ready = os.environ.get(PAUSE_READY)
        if ready:
            tmp = f"{ready}.{os.getpid()}.tmp"
            with open(tmp, "w") as fh:
                fh.write(str(os.getpid()))
            os.replace(tmp, ready)
    while True:  # until the test kills the process
        time.sleep(3600)
