"""The peak resident memory of the processes a job starts: what one chapter of a run needs.

``workbench run`` executes each notebook in a Jupyter kernel, a child process, which may start
others (an embedded llama.cpp server). :class:`PeakMemory` watches this process's descendants while
a block runs and reports the larger of two figures, in MiB:

- the highest high-water mark of any one of them (``VmHWM`` in ``/proc/<pid>/status``: the kernel's
  own peak, exact, whenever it was reached);
- the highest sum of their current resident memory over the samples (every ``interval`` seconds),
  for jobs whose memory is spread over several processes.

A process that ends between two samples (a kernel shuts down right after its last cell) is caught
by ``getrusage(RUSAGE_CHILDREN)``: once a child has ended and been waited for, its peak (and its own
children's) counts there. That figure is the largest over every child this process ever had, so it
is this block's only when it rose during the block.

Linux only (``/proc``); elsewhere the figure is ``None``. ``docs/performance.md`` ("Memory") lists
each chapter's figure on the tour and cpu presets, as ``status.json`` of a run records it.
"""

from __future__ import annotations

import os
import resource
import threading
from pathlib import Path

__all__ = ["PeakMemory", "descendants", "memory_kib"]

_PROC = Path("/proc")


def descendants(pid: int) -> list[int]:
    """The pids of every live descendant of ``pid`` (children, their children, ...), from ``/proc``."""
    children: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'
        ppid = int(stat[stat.rfind(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def memory_kib(pid: int) -> tuple[int, int] | None:
    """``(VmRSS, VmHWM)`` of ``pid`` in KiB, or None when it has exited (or is a zombie)."""
    try:
        text = (_PROC / str(pid) / "status").read_text()
    except OSError:
        return None
    fields = {}
    for line in text.splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            name, value = line.split(":", 1)
            fields[name] = int(value.split()[0])
    if len(fields) < 2:
        return None
    return fields["VmRSS"], fields["VmHWM"]


class PeakMemory:
    """``with PeakMemory() as peak: ...`` then ``peak.mib``: the peak resident memory (MiB) of the
    processes this one started while the block ran (see the module docstring), or None off Linux.
    ``root`` watches another process's descendants instead of this one's."""

    def __init__(self, interval: float = 0.5, root: int | None = None) -> None:
        self.interval = float(interval)
        self.root = os.getpid() if root is None else int(root)
        self.supported = (_PROC / "self" / "status").exists()
        self._hwm_kib = 0
        self._sum_kib = 0
        self._children_kib = 0
        self._before: set[int] = set()  # descendants already running at the start are not this job's
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        """Read every descendant's memory once (the thread calls this every ``interval`` seconds)."""
        total = 0
        for pid in descendants(self.root):
            if pid in self._before:
                continue
            mem = memory_kib(pid)
            if mem is None:
                continue
            total += mem[0]
            self._hwm_kib = max(self._hwm_kib, mem[1])
        self._sum_kib = max(self._sum_kib, total)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> PeakMemory:
        if self.supported:
            self._before = set(descendants(self.root))
            self._children_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
            self._thread = threading.Thread(target=self._loop, name="peak-memory", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.sample()
            if self.root == os.getpid():  # children that ended during the block (see the module docstring)
                ended = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
                if ended > self._children_kib:
                    self._hwm_kib = max(self._hwm_kib, ended)

    @property
    def mib(self) -> float | None:
        if not self.supported:
            return None
        return round(max(self._hwm_kib, self._sum_kib) / 1024, 1)
