"""The pause points kill tests stop a child at (workbench.faultpoints): inert unless named."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from workbench.faultpoints import PAUSE_AT, PAUSE_READY, pause_point

CHILD = """
import sys
from workbench.faultpoints import pause_point
for i in range(5):
    print(i, flush=True)
    pause_point("train.checkpoint")
print("done", flush=True)
"""


def test_a_point_is_inert_unless_named(monkeypatch):
    monkeypatch.delenv(PAUSE_AT, raising=False)
    pause_point("train.checkpoint")  # returns at once
    monkeypatch.setenv(PAUSE_AT, "corpus.source")
    pause_point("train.checkpoint")  # another point: returns at once


def test_the_child_waits_at_the_nth_time_and_says_so(tmp_path: Path):
    ready = tmp_path / "ready"
    env = {PAUSE_AT: "train.checkpoint#3", PAUSE_READY: str(ready), "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True,
                            env={**env, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        assert int(ready.read_text()) == proc.pid
        time.sleep(0.3)
        assert proc.poll() is None  # still waiting at the point
    finally:
        proc.kill()
        out, _ = proc.communicate(timeout=30)
    assert out.split() == ["0", "1", "2"]  # paused after the third time, never went on
