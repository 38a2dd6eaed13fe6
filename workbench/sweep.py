"""Parameter sweeps: a grid over notebooks x parameters x seeds, run with papermill, with a run registry.

A sweep file (YAML) names the notebooks, the preset, overrides shared by every run (``base``), a
``grid`` of parameter values and the ``seeds``; every combination is one run, executed by
``workbench run`` (:func:`workbench.runs.run_notebooks`) in a child process into
``papermill_runs/<sweep>/<run>/``. ``tables`` says which
paper-style tables ``workbench report`` builds from the runs (see :mod:`workbench.report`)::

    name: select-mixup-cpu
    notebooks: [03, 04]
    preset: cpu
    base: {select_seeds: 1, eval_seed: 42}
    grid: {mixup_alpha: [0.2, 0.4]}
    seeds: [42, 43, 44]
    tables:
      - {name: select_then_mixup, notebook: 04_training, rows: table_mean, index: model, baseline: all}

The registry ``registry.json`` in the sweep folder holds, per run: its parameters, status
(``pending``, ``running``, ``ok``, ``failed``, ``interrupted``), attempts, duration, each
notebook's status, headline metrics, the git commit and the package versions. It is rewritten
atomically at every change, so a Ctrl-C or a kill leaves it readable; a run that was ``running``
in a process that is gone reads as ``interrupted``. Re-running a sweep skips finished runs and
runs the others again (a run folder resumes per model, so finished models are reused). A failing
run keeps its executed notebook with the traceback, and the sweep goes on with the next run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from . import config
from .errors import ParameterError, WorkbenchError
from .paths import project_root, runs_dir
from .runs import headlines, select_notebooks
from .store import atomic_write_json, atomic_write_yaml, read_json

__all__ = [
    "SweepSpec", "TableSpec", "SweepRun", "load_sweep", "expand", "run_sweep", "read_registry", "registry_frame",
    "sweep_dir", "environment",
]

REGISTRY = "registry.json"
FINISHED = "ok"
PACKAGES = ("workbench", "torch", "transformers", "sentence-transformers", "numpy", "pandas", "faiss-cpu", "papermill", "plotly")
_KEYS = {"name", "description", "notebooks", "preset", "base", "grid", "seeds", "tables", "notebook_dir"}


@dataclass(frozen=True)
class TableSpec:
    """A paper-style table of the report: rows logged by ``notebook`` under ``rows`` in metrics.json.

    ``index`` is the column naming a row (the model); numeric columns are averaged over seeds.
    ``baseline`` names the row the query-level paired tests compare against; ``ood`` lists the
    out-of-distribution columns (default: every numeric column except ``id_test`` and ``OOD avg``).
    """

    name: str
    notebook: str
    rows: str
    index: str = "model"
    baseline: str | None = None
    models: str | None = None  # the models/ subfolder holding each row's per-query evaluations
    ood: tuple[str, ...] | None = None
    title: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TableSpec:
        """From a sweep file or a registry (``ood`` given as a list)."""
        return cls(**{**data, "ood": tuple(data["ood"]) if data.get("ood") else None})


@dataclass(frozen=True)
class SweepRun:
    """One point of the grid: its id (the run folder's name) and the overrides it runs with."""

    id: str
    seed: int
    grid: dict[str, Any]
    overrides: dict[str, Any]


@dataclass(frozen=True)
class SweepSpec:
    name: str
    notebooks: list[str]
    preset: str
    base: dict[str, Any]
    grid: dict[str, list[Any]]
    seeds: list[int]
    tables: list[TableSpec] = field(default_factory=list)
    description: str = ""
    notebook_dir: Path | None = None
    path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "description": self.description, "notebooks": self.notebooks, "preset": self.preset,
            "base": self.base, "grid": self.grid, "seeds": self.seeds,
            "tables": [{k: v for k, v in t.__dict__.items() if v is not None} for t in self.tables],
            "notebook_dir": str(self.notebook_dir) if self.notebook_dir else None,
        }


def _fail(path: Path, message: str) -> None:
    raise ParameterError(f"{path}: {message}")


def load_sweep(path: str | os.PathLike) -> SweepSpec:
    """Read and validate a sweep file: every run's parameters are checked before anything runs."""
    path = Path(path)
    if not path.exists():
        raise ParameterError(f"{path}: no such sweep file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ParameterError(f"{path}: not valid YAML ({e})") from e
    if not isinstance(raw, dict):
        _fail(path, "a sweep file is a mapping with keys " + ", ".join(sorted(_KEYS)))
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        _fail(path, f"unknown key(s) {unknown}; allowed: {sorted(_KEYS)}")
    name = str(raw.get("name") or path.stem)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        _fail(path, f"field 'name': {name!r} must be a folder name (letters, digits, . _ -)")
    notebooks = [str(n).zfill(2) if isinstance(n, int) else str(n) for n in raw.get("notebooks") or []]
    if not notebooks:
        _fail(path, "field 'notebooks': list the notebooks each run executes, e.g. [03, 04]")
    preset = str(raw.get("preset", "cpu"))
    base = raw.get("base") or {}
    grid = raw.get("grid") or {}
    seeds = raw.get("seeds", [42])
    if not isinstance(base, dict):
        _fail(path, "field 'base': a mapping of parameter: value")
    if not isinstance(grid, dict) or any(not isinstance(v, list) or not v for v in grid.values()):
        _fail(path, "field 'grid': a mapping of parameter: [value, ...] (non-empty lists)")
    if "seed" in grid or "seed" in base:
        _fail(path, "the seed is swept by the field 'seeds', not in 'base' or 'grid'")
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        _fail(path, f"field 'seeds': a non-empty list of integers, got {seeds!r}")
    nb_dir = raw.get("notebook_dir")
    nb_dir = (path.parent / nb_dir).resolve() if nb_dir else None
    tables = []
    for i, t in enumerate(raw.get("tables") or []):
        if not isinstance(t, dict):
            _fail(path, f"field 'tables[{i}]': a mapping")
        known = set(TableSpec.__dataclass_fields__)
        if bad := sorted(set(t) - known):
            _fail(path, f"field 'tables[{i}]': unknown key(s) {bad}; allowed: {sorted(known)}")
        if missing := sorted({"name", "notebook", "rows"} - set(t)):
            _fail(path, f"field 'tables[{i}]': missing {missing}")
        tables.append(TableSpec.from_dict(t))
    spec = SweepSpec(name, notebooks, preset, dict(base), {k: list(v) for k, v in grid.items()}, list(seeds),
                     tables, str(raw.get("description") or ""), nb_dir, path.resolve())
    try:
        select_notebooks(notebooks, nb_dir)
        for run in expand(spec):
            config.resolve(preset, run.overrides)
    except ParameterError as e:
        raise ParameterError(f"{path}: {e}") from e
    return spec


def _slug(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", str(value)).strip("_") or "none"


def expand(spec: SweepSpec) -> list[SweepRun]:
    """Every combination of the grid with every seed, in file order (seeds innermost)."""
    names = list(spec.grid)
    runs = []
    for combo in itertools.product(*(spec.grid[n] for n in names)):
        point = dict(zip(names, combo))
        for seed in spec.seeds:
            rid = "-".join([*(f"{n}={_slug(v)}" for n, v in point.items()), f"seed{seed}"])
            runs.append(SweepRun(rid, seed, point, {**spec.base, **point, "seed": seed}))
    return runs


def sweep_dir(spec: SweepSpec, root: str | os.PathLike | None = None) -> Path:
    return Path(root) if root else runs_dir() / spec.name


# --------------------------------------------------------------------------- provenance
def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=project_root(), capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def environment() -> dict[str, Any]:
    """The git commit (and whether the tree had changes), Python and the package versions of a run."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
        "python": sys.version.split()[0],
        "host": socket.gethostname(),
        "packages": versions,
    }


# --------------------------------------------------------------------------- the registry
def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_registry(folder: str | os.PathLike) -> dict[str, Any]:
    """The registry of a sweep folder; runs left ``running`` by a process that is gone read ``interrupted``."""
    path = Path(folder) / REGISTRY
    if not path.exists():
        raise WorkbenchError(f"{path}: no sweep registry here (run `workbench sweep FILE.yaml` first)")
    data = read_json(path)
    for rec in data.get("runs", {}).values():
        if rec.get("status") == "running" and not _alive(rec.get("pid")):
            rec["status"] = "interrupted"
    return data


def registry_frame(folder: str | os.PathLike) -> pd.DataFrame:
    """The registry as a DataFrame: one row per run with its status, duration, grid values, commit and
    headline metrics (``metric: ...`` columns)."""
    data = read_registry(folder)
    rows = []
    for rid, rec in data.get("runs", {}).items():
        row = {"run": rid, "status": rec.get("status"), "seed": rec.get("seed"), "attempts": rec.get("attempts", 0),
               "seconds": rec.get("seconds"), "started": rec.get("started"), "finished": rec.get("finished"),
               "git_commit": (rec.get("environment") or {}).get("git_commit"), "error": rec.get("error")}
        row.update({f"param: {k}": v for k, v in (rec.get("grid") or {}).items()})
        row.update({f"metric: {k}": v for k, v in (rec.get("headline") or {}).items()})
        rows.append(row)
    return pd.DataFrame(rows)


class _Registry:
    def __init__(self, folder: Path, spec: SweepSpec):
        self.path = folder / REGISTRY
        self.data = read_registry(folder) if self.path.exists() else {"sweep": spec.name, "runs": {}}
        self.data["spec"] = spec.to_dict()

    def save(self) -> None:
        atomic_write_json(self.path, self.data)

    def run(self, rid: str) -> dict[str, Any]:
        return self.data["runs"][rid]


@contextlib.contextmanager
def _lock(folder: Path) -> Iterator[None]:
    """One sweep process per folder: a lock file holding the owner's pid (a stale one is taken over)."""
    lock = folder / ".sweep.lock"
    if lock.exists():
        try:
            pid = int(lock.read_text().strip() or 0)
        except ValueError:
            pid = 0
        if pid != os.getpid() and _alive(pid):
            raise WorkbenchError(f"{folder}: another sweep (pid {pid}) is running in this folder")
    lock.write_text(str(os.getpid()))
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()


@contextlib.contextmanager
def _signals_as_interrupt() -> Iterator[None]:
    """Ctrl-C (SIGINT) and a polite kill (SIGTERM) stop the sweep: the current run is marked interrupted.

    Runs execute in child processes with their own process groups, so a terminal's Ctrl-C reaches
    the sweep alone, which stops the child (:func:`_run_child`); papermill's own signal handling
    (nbclient shuts the kernel down and the cell may run on) never sees it."""
    def handler(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _finished(rec: dict[str, Any], folder: Path, notebooks: list[str]) -> bool:
    if rec.get("status") != FINISHED or not (folder / "status.json").exists():
        return False
    status = read_json(folder / "status.json")
    return all(any(k == n or k.startswith(n + "_") for k in status) for n in notebooks) and all(
        s.get("status") == "ok" for s in status.values()
    )


def _die_with_parent() -> None:
    """In the child (Linux): SIGKILL when the sweep process dies, so a killed sweep leaves no run behind."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _run_child(spec: SweepSpec, r: SweepRun, run_dir: Path, log_output: bool) -> int:
    """Execute one run as ``workbench run`` in a child process; return its exit code.

    The child is its own process group, so the sweep alone decides what Ctrl-C means: on
    SIGINT/SIGTERM the child gets SIGTERM (its kernel is shut down), then SIGKILL after 20 s, and
    KeyboardInterrupt reaches the caller. A child also dies with the sweep (PR_SET_PDEATHSIG)."""
    cmd = [sys.executable, "-m", "workbench", "run", "--preset", spec.preset, "--run-dir", str(run_dir),
           "--overrides-json", json.dumps(r.overrides), "--notebooks", *spec.notebooks]
    if spec.notebook_dir:
        cmd += ["--notebook-dir", str(spec.notebook_dir)]
    if not log_output:
        cmd.append("--quiet")
    proc = subprocess.Popen(cmd, start_new_session=True, preexec_fn=_die_with_parent if sys.platform == "linux" else None)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        raise


def run_sweep(
    spec: SweepSpec,
    root: str | os.PathLike | None = None,
    only: list[str] | None = None,
    log_output: bool = False,
    echo=print,
) -> pd.DataFrame:
    """Run every unfinished run of ``spec`` (or the runs named in ``only``); return the registry frame.

    Finished runs are skipped; failed and interrupted ones run again in their own folder, which
    resumes per model. A failing run is recorded with its error and the sweep goes on; Ctrl-C or
    SIGTERM marks the current run ``interrupted`` and stops.
    """
    folder = sweep_dir(spec, root)
    folder.mkdir(parents=True, exist_ok=True)
    runs = expand(spec)
    if only:
        unknown = sorted(set(only) - {r.id for r in runs})
        if unknown:
            raise ParameterError(f"no run(s) {unknown} in sweep {spec.name!r}; runs: {[r.id for r in runs]}")
        runs = [r for r in runs if r.id in only]
    with _lock(folder), _signals_as_interrupt():
        reg = _Registry(folder, spec)
        env = environment()
        atomic_write_yaml(folder / "sweep.yaml", spec.to_dict())
        for r in runs:
            rec = reg.data["runs"].setdefault(r.id, {"status": "pending", "attempts": 0})
            rec.update(seed=r.seed, grid=r.grid, overrides=r.overrides, dir=r.id)
        reg.save()
        todo = [r for r in runs if not _finished(reg.run(r.id), folder / r.id, spec.notebooks)]
        done = len(runs) - len(todo)
        echo(f"[sweep] {spec.name}: {len(runs)} runs, {done} finished, {len(todo)} to run -> {folder}")
        durations: list[float] = []
        for i, r in enumerate(todo, 1):
            rec = reg.run(r.id)
            rec.update(status="running", pid=os.getpid(), attempts=rec.get("attempts", 0) + 1, error=None,
                       started=dt.datetime.now().isoformat(timespec="seconds"), finished=None, environment=env)
            reg.save()
            eta = f", about {sum(durations) / len(durations) * (len(todo) - i + 1) / 60:.0f} min left" if durations else ""
            echo(f"[sweep] run {done + i}/{len(runs)} {r.id} (attempt {rec['attempts']}){eta}")
            t0 = time.time()
            try:
                rc = _run_child(spec, r, folder / r.id, log_output)
            except KeyboardInterrupt:
                rec.update(status="interrupted", seconds=round(time.time() - t0, 1), pid=None,
                           finished=dt.datetime.now().isoformat(timespec="seconds"), error="interrupted (Ctrl-C or SIGTERM)")
                reg.save()
                echo(f"[sweep] interrupted during {r.id}; the registry is saved: run the sweep again to resume")
                raise
            status = read_json(folder / r.id / "status.json") if (folder / r.id / "status.json").exists() else {}
            failed = {n: s for n, s in status.items() if s.get("status") != "ok"}
            error = "; ".join(f"{n}: {s.get('status')} {s.get('error') or ''}".strip() for n, s in failed.items()) or None
            if rc != 0 and not error:
                error = f"workbench run exited with {rc} before running a notebook"
            seconds = round(time.time() - t0, 1)
            durations.append(seconds)
            rec.update(status="failed" if error else FINISHED, seconds=seconds, pid=None, error=error,
                       finished=dt.datetime.now().isoformat(timespec="seconds"))
            rec["notebooks"] = {n: {k: s.get(k) for k in ("status", "seconds", "error")} for n, s in status.items()}
            metrics_path = folder / r.id / "metrics.json"
            rec["headline"] = headlines(read_json(metrics_path)) if metrics_path.exists() else {}
            reg.save()
            state = f"FAILED ({error[:200]}); the executed notebooks are in {folder / r.id}" if error else "ok"
            echo(f"[sweep] run {done + i}/{len(runs)} {r.id}: {state} in {seconds / 60:.1f} min")
    frame = registry_frame(folder)
    n_ok = int((frame["status"] == FINISHED).sum()) if len(frame) else 0
    echo(f"[sweep] {spec.name}: {n_ok}/{len(frame)} runs finished; registry {folder / REGISTRY}")
    return frame
