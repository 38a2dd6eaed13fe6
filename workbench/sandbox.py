"""Run untrusted Python source (LLM rewrites, NatGen transforms, mined code) in a separate, limited process.

Generated or transformed code is data: the workbench never imports or executes it in its own process.
:func:`run_in_sandbox` writes the source and the call expressions to a fresh temporary folder and
starts ``sys.executable -s -P -B`` there (the isolation of ``-I``, except ``-E``: the environment is
replaced by a minimal one of ours, so ``PYTHONHASHSEED=0`` can make set / dict-of-str reprs
reproducible between two runs). The child:

- runs in a new session (its own process group), working directory ``<tmp>/work`` (also ``HOME`` and
  ``TMPDIR``), stdin closed, stdout / stderr to files whose tails are returned;
- sets resource limits on itself before the source runs: ``RLIMIT_AS`` (``memory_mb``),
  ``RLIMIT_CPU`` (the whole batch's time budget, then SIGXCPU / SIGKILL), ``RLIMIT_NOFILE`` (64), ``RLIMIT_FSIZE`` (16 MiB per
  file), ``RLIMIT_CORE`` (0), and ``RLIMIT_NPROC`` (0: no fork, but Linux does not enforce it for root);
- installs a ``sys.addaudithook`` hook before the source runs that refuses process creation
  (``os.system``, ``subprocess.Popen``, ``os.exec*``, ``os.fork``, ``os.posix_spawn``, ...), sockets
  (``socket.connect`` / ``bind`` / ``sendto`` / ``getaddrinfo`` ...), ``ctypes``, and opening a file for
  writing or changing the file system (``os.remove`` / ``rename`` / ``mkdir`` / ``chmod`` ...) outside
  its working directory (reading is allowed);
- runs the source, then evaluates each call expression in the source's namespace, each under its own
  wall-clock timer (``timeout`` seconds, ``ITIMER_REAL``); a result line per step is written as soon as
  it is known, so a later crash keeps the earlier results.

The parent waits ``timeout`` per step plus a start-up allowance, then kills the whole process group
(SIGKILL) and reaps the child; it also kills the group after a normal exit, so nothing the code left
running in the group survives.

Limits, stated plainly: this is isolation against accidents (infinite loops, huge allocations,
stray files, prints, ``sys.exit``), not a security boundary. Without root and Linux namespaces
(``unshare``, seccomp) the network cannot be cut off: the audit hook blocks the socket calls of pure
Python code, but a C extension or ``ctypes`` loaded before the hook, or code that escapes the hook,
can still reach the network, read any file the user can read and write outside the folder (through C
code, which the audit hook does not see). Do not run code from an untrusted source on a machine with
secrets; run it in a container without a network.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ParameterError

STATUSES = ("ok", "error", "timeout", "killed")
TAIL_CHARS = 2000
REPR_CHARS = 4000
MESSAGE_CHARS = 1000
STARTUP_ALLOWANCE_S = 10.0
"""Seconds allowed on top of the per-step timeouts for the interpreter to start and write results
(the machine may be loaded)."""
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_OPEN_FILES = 64

_RUNNER = r"""
import json, resource, signal, sys, time
payload_path, result_path, step_timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
for name, value in json.loads(sys.argv[4]).items():
    try:
        resource.setrlimit(getattr(resource, name), tuple(value))
    except (ValueError, OSError):  # RLIMIT_NPROC below the current count on some kernels
        if name != "RLIMIT_NPROC":
            raise
with open(payload_path, encoding="utf-8") as fh:
    programs = json.load(fh)
out = open(result_path, "w", encoding="utf-8")
REPR_CHARS, MESSAGE_CHARS = @REPR_CHARS@, @MESSAGE_CHARS@
BLOCKED = ("os.system", "os.exec", "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.startfile",
           "subprocess.Popen", "pty.spawn", "socket.connect", "socket.bind", "socket.sendto",
           "socket.sendmsg",
           "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr", "ctypes.", "os.kill",
           "signal.pthread_kill")


import os
WORK = os.path.realpath(os.getcwd())
ALLOWED = (WORK, os.devnull)
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
# events that change the file system: (event, positions of the paths among its arguments)
CHANGES = {"os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.rename": (0, 1), "os.symlink": (1,),
           "os.link": (1,), "os.chmod": (0,), "os.chown": (0,), "os.truncate": (0,), "os.utime": (0,),
           "os.mkfifo": (0,), "os.mknod": (0,), "os.setxattr": (0,), "os.removexattr": (0,),
           "os.chflags": (0,), "os.lchflags": (0,), "shutil.rmtree": (0,)}


def _inside(path, dir_fd=None):  # path: str, bytes or path-like, relative to dir_fd if given
    if isinstance(path, int):  # an open descriptor: its file was checked when it was opened
        return True
    path = os.fsdecode(path)
    if dir_fd is not None and not os.path.isabs(path):
        path = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), path)
    real = os.path.realpath(path)
    return real in ALLOWED or real.startswith(WORK + os.sep)


def _hook(event, args):
    if event.startswith(BLOCKED):
        raise PermissionError(f"blocked in the workbench sandbox: {event}")
    where = None
    if event == "open" and len(args) >= 3:
        mode, flags = args[1], args[2]
        writes = (isinstance(flags, int) and flags & WRITE_FLAGS) or (
            isinstance(mode, str) and any(c in mode for c in "wax+"))
        if writes and not _inside(args[0]):
            where = args[0]
    elif event in CHANGES:
        fd_last = event in ("os.remove", "os.rmdir", "os.mkdir")
        dir_fd = args[-1] if fd_last and isinstance(args[-1], int) and args[-1] >= 0 else None
        for i in CHANGES[event]:
            if i < len(args) and args[i] is not None and not _inside(args[i], dir_fd):
                where = args[i]
                break
    if where is not None:
        raise PermissionError(f"blocked in the workbench sandbox: {event} outside its folder ({where!r})")


class _Timeout(BaseException):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def emit(rec):
    out.write(json.dumps(rec) + "\n")
    out.flush()


def step(fn, where):
    t0 = time.perf_counter()
    rec = {"where": where}
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, step_timeout)
            rec["value_repr"] = repr(fn())[:REPR_CHARS]
            rec["status"] = "ok"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _Timeout:
        rec["status"] = "timeout"
        rec["exc_type"] = "TimeoutError"
        rec["exc_message"] = f"exceeded {step_timeout:g} s"
    except BaseException as exc:
        rec["status"] = "error"
        rec["exc_type"] = type(exc).__qualname__
        try:
            rec["exc_message"] = str(exc)[:MESSAGE_CHARS]
        except BaseException:
            rec["exc_message"] = "<str() failed>"
    rec["seconds"] = time.perf_counter() - t0
    emit(rec)
    return rec["status"]


signal.signal(signal.SIGALRM, _alarm)
sys.addaudithook(_hook)
for p, prog in enumerate(programs):
    ns = {"__name__": "__sandbox__", "__builtins__": __builtins__}
    code_ok = step(lambda: exec(compile(prog["source"], "<sandbox>", "exec"), ns), [p, -1]) == "ok"
    for c, call in enumerate(prog["calls"]):
        if code_ok:
            step(lambda: eval(compile(call, "<call>", "eval"), ns), [p, c])
emit({"done": True})
""".replace("@REPR_CHARS@", str(REPR_CHARS)).replace("@MESSAGE_CHARS@", str(MESSAGE_CHARS))

_BASE_ENV = {
    "PATH": "/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONHASHSEED": "0",
    "PYTHONIOENCODING": "utf-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


@dataclass(frozen=True)
class SandboxResult:
    """The outcome of one call expression.

    ``status``: ``"ok"`` (``value_repr`` holds ``repr`` of the value), ``"error"`` (the source or the
    call raised: ``exc_type`` / ``exc_message``; a failing source makes every call of its program an
    error whose message starts with ``"source: "``), ``"timeout"`` (the call ran past ``timeout``, or
    the process ran past the batch deadline and was killed), ``"killed"`` (the process died before
    reporting this call: a signal such as SIGXCPU / SIGKILL / SIGSEGV, ``os._exit``, ...).
    ``stdout_tail`` / ``stderr_tail`` are the last characters of the whole process's output.
    """

    call: str
    status: str
    value_repr: str | None = None
    exc_type: str | None = None
    exc_message: str | None = None
    seconds: float = 0.0
    stdout_tail: str = ""
    stderr_tail: str = ""
    returncode: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _limits(memory_mb: int, cpu_seconds: int) -> dict[str, tuple[int, int]]:
    """The resource limits the runner sets on itself before anything of the payload runs (set there
    rather than in a ``preexec_fn``, which is unsafe when the parent has threads, as a Jupyter kernel
    does)."""
    return {
        "RLIMIT_AS": (memory_mb * 1024 * 1024,) * 2,
        "RLIMIT_CPU": (cpu_seconds, cpu_seconds + 1),
        "RLIMIT_NOFILE": (MAX_OPEN_FILES, MAX_OPEN_FILES),
        "RLIMIT_FSIZE": (MAX_FILE_BYTES, MAX_FILE_BYTES),
        "RLIMIT_CORE": (0, 0),
        "RLIMIT_NPROC": (0, 0),
    }


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 4 * TAIL_CHARS))
            return fh.read().decode("utf-8", "replace")[-TAIL_CHARS:]
    except OSError:
        return ""


def _wait(proc: subprocess.Popen, deadline: float) -> bool:
    """Wait for the child to exit without reaping it (so its pid and process group stay reserved);
    False when the deadline passed first."""
    pause = 0.001
    while True:
        if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.02)


def _check(timeout: float, memory_mb: int) -> None:
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        raise ParameterError(f"timeout: expected a positive number of seconds, got {timeout!r}")
    if not (isinstance(memory_mb, int) and memory_mb >= 64):
        raise ParameterError(
            f"memory_mb: expected an int >= 64 (the interpreter needs it), got {memory_mb!r}"
        )


def run_programs_in_sandbox(
    programs: Sequence[tuple[str, Sequence[str]]],
    timeout: float = 5.0,
    memory_mb: int = 512,
    *,
    grace_s: float = STARTUP_ALLOWANCE_S,
) -> list[list[SandboxResult]]:
    """Run several ``(source, calls)`` programs in ONE sandboxed process (see the module docstring),
    each source in a fresh namespace; returns one list of results per program, one per call.

    ``timeout`` limits each step (a source or a call); the whole process group is killed after
    ``timeout * steps + grace_s`` seconds (code that disables the per-step timer, e.g. by replacing the
    SIGALRM handler, runs until then).
    """
    _check(timeout, memory_mb)
    if not (isinstance(grace_s, (int, float)) and math.isfinite(grace_s) and grace_s > 0):
        raise ParameterError(f"grace_s: expected a positive number of seconds, got {grace_s!r}")
    progs = [{"source": str(src), "calls": [str(c) for c in calls]} for src, calls in programs]
    steps = sum(1 + len(p["calls"]) for p in progs)
    budget = timeout * steps + grace_s
    with tempfile.TemporaryDirectory(prefix="wb-sandbox-") as tmp:
        root = Path(tmp)
        work = root / "work"
        work.mkdir()
        payload, result = root / "payload.json", root / "result.jsonl"
        payload.write_text(json.dumps(progs), encoding="utf-8")
        env = {**_BASE_ENV, "HOME": str(work), "TMPDIR": str(work)}
        cpu = int(math.ceil(budget)) + 1
        cmd = [
            sys.executable,
            "-s",
            "-P",
            "-B",
            "-c",
            _RUNNER,
            str(payload),
            str(result),
            repr(float(timeout)),
            json.dumps(_limits(memory_mb, cpu)),
        ]
        t0 = time.monotonic()
        with open(root / "stdout.txt", "wb") as out, open(root / "stderr.txt", "wb") as err:
            proc = subprocess.Popen(
                cmd,
                cwd=work,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                close_fds=True,
                start_new_session=True,
            )
            try:
                finished = _wait(proc, t0 + budget)
            finally:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # the leader is unreaped: the group id is still ours
                except (ProcessLookupError, PermissionError):
                    pass
                proc.wait()
        elapsed = time.monotonic() - t0
        records: dict[tuple[int, int], dict] = {}
        try:
            lines = result.read_text(encoding="utf-8").splitlines()
        except OSError:
            lines = []
        for line in lines:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by the kill
                continue
            if "where" in rec:
                records[tuple(rec["where"])] = rec
        stdout_tail, stderr_tail = _tail(root / "stdout.txt"), _tail(root / "stderr.txt")
    rc = proc.returncode
    lost_status = "timeout" if not finished else "killed"
    if not finished:
        lost_msg = f"the process ran past the {budget:.1f} s deadline and was killed"
    elif rc is not None and rc < 0:
        try:
            lost_msg = f"the process died from signal {signal.Signals(-rc).name}"
        except ValueError:
            lost_msg = f"the process died from signal {-rc}"
    else:
        lost_msg = f"the process exited with code {rc} before reporting"
    out_lists: list[list[SandboxResult]] = []
    for p, prog in enumerate(progs):
        src = records.get((p, -1))
        results: list[SandboxResult] = []
        for c, call in enumerate(prog["calls"]):
            common = {"call": call, "stdout_tail": stdout_tail, "stderr_tail": stderr_tail, "returncode": rc}
            rec = records.get((p, c))
            if rec is not None:
                results.append(
                    SandboxResult(
                        status=rec["status"],
                        value_repr=rec.get("value_repr"),
                        exc_type=rec.get("exc_type"),
                        exc_message=rec.get("exc_message"),
                        seconds=float(rec["seconds"]),
                        **common,
                    )
                )
            elif src is not None and src["status"] != "ok":
                results.append(
                    SandboxResult(
                        status="error" if src["status"] == "error" else src["status"],
                        exc_type=src.get("exc_type"),
                        exc_message=f"source: {src.get('exc_message')}",
                        **common,
                    )
                )
            else:
                results.append(
                    SandboxResult(status=lost_status, exc_message=lost_msg, seconds=elapsed, **common)
                )
        out_lists.append(results)
    return out_lists


def run_calls_in_sandbox(
    source: str,
    calls: Sequence[str],
    timeout: float = 5.0,
    memory_mb: int = 512,
    *,
    grace_s: float = STARTUP_ALLOWANCE_S,
) -> list[SandboxResult]:
    """Run ``source`` then evaluate each expression of ``calls`` in its namespace, in one process."""
    return run_programs_in_sandbox([(source, calls)], timeout=timeout, memory_mb=memory_mb, grace_s=grace_s)[
        0
    ]


def run_in_sandbox(source: str, call: str, timeout: float = 5.0, memory_mb: int = 512) -> SandboxResult:
    """Run ``source`` then evaluate the expression ``call`` in a sandboxed subprocess (module docstring)."""
    return run_calls_in_sandbox(source, [call], timeout=timeout, memory_mb=memory_mb)[0]


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def normalized_repr(text: str | None) -> str | None:
    """``repr`` text with object addresses (``<... at 0x7f...>``) blanked: they differ between processes."""
    return None if text is None else _ADDRESS.sub(" at 0x?", text)


@dataclass(frozen=True)
class BehaviourComparison:
    """Original vs transformed on the same calls. ``same`` is True only when every call finished
    (``ok`` or ``error``) in both and gave equal value reprs (addresses blanked) or the same exception
    type (messages may name renamed variables, so they are not compared). A call that timed out or was
    killed in either counts as a mismatch: equivalence is not shown. Truthy when ``same``."""

    same: bool
    mismatches: list[tuple[str, SandboxResult, SandboxResult]] = field(default_factory=list)
    original: list[SandboxResult] = field(default_factory=list)
    transformed: list[SandboxResult] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.same


def _same_result(a: SandboxResult, b: SandboxResult) -> bool:
    if a.status != b.status or a.status not in ("ok", "error"):
        return False
    if a.status == "ok":
        return normalized_repr(a.value_repr) == normalized_repr(b.value_repr)
    return a.exc_type == b.exc_type


def _compare(orig: list[SandboxResult], other: list[SandboxResult]) -> BehaviourComparison:
    bad = [(a.call, a, b) for a, b in zip(orig, other) if not _same_result(a, b)]
    return BehaviourComparison(same=not bad, mismatches=bad, original=orig, transformed=other)


def compare_behaviour(
    original: str, variants: Sequence[str], calls: Sequence[str], timeout: float = 5.0, memory_mb: int = 512
) -> list[BehaviourComparison]:
    """Run ``original`` and every variant on the same ``calls`` (one sandboxed process for all) and
    compare each variant with the original (see :class:`BehaviourComparison`)."""
    if not calls:
        raise ParameterError("calls: expected at least one call expression, got none")
    runs = run_programs_in_sandbox(
        [(original, calls), *[(v, calls) for v in variants]], timeout=timeout, memory_mb=memory_mb
    )
    return [_compare(runs[0], r) for r in runs[1:]]


def same_behaviour(
    original: str, transformed: str, calls: Sequence[str], timeout: float = 5.0, memory_mb: int = 512
) -> BehaviourComparison:
    """Whether ``transformed`` behaves like ``original`` on ``calls``, run in the sandbox (truthy when
    it does; the details list the calls that differ)."""
    return compare_behaviour(original, [transformed], calls, timeout=timeout, memory_mb=memory_mb)[0]
