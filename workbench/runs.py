"""Headless execution of the notebooks with papermill, and the run record each run leaves.

A run is ``papermill_runs/<timestamp>-<preset>/`` holding ``params.yaml``, ``status.json`` (per
notebook: status, seconds, peak resident memory in MiB (:mod:`workbench.peak_memory`), error),
``metrics.json`` (per notebook, written by the notebook itself through :func:`open_run`), ``params_read/<notebook>.json`` (the parameters each notebook read) and
the executed notebooks. A failed notebook keeps its executed copy
with the traceback, and :func:`run_notebooks` reports the failure so the CLI exits non-zero.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import config
from .errors import ParameterError, WorkbenchError
from .paths import notebooks_dir, runs_dir
from .peak_memory import PeakMemory
from .store import atomic_write_json, atomic_write_yaml, read_json

KERNEL_NAME = "workbench"


# --------------------------------------------------------------------------- inside a notebook
@dataclass
class Run:
    """What a notebook gets from :func:`open_run`: validated params and the run folder."""

    notebook: str
    params: config.Params
    dir: Path
    overrides: dict[str, Any] = field(default_factory=dict)

    def log_metrics(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """Merge ``metrics`` into ``metrics.json`` under this notebook's name (atomic)."""
        path = self.dir / "metrics.json"
        data = read_json(path) if path.exists() else {}
        data.setdefault(self.notebook, {}).update(json.loads(json.dumps(metrics, default=_jsonable)))
        atomic_write_json(path, data)
        return data[self.notebook]

    def path(self, *parts: str) -> Path:
        p = self.dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p


class ReadLog:
    """The parameters a notebook has read, kept in ``params_read/<notebook>.json`` of its run folder
    (rewritten atomically at each parameter read for the first time, so a failed run keeps it)."""

    def __init__(self, path: Path, notebook: str) -> None:
        self.path, self.notebook, self.names = path, notebook, set()

    def __call__(self, name: str) -> None:
        if name not in self.names:
            self.names.add(name)
            atomic_write_json(self.path, {"notebook": self.notebook, "reads": sorted(self.names)})


def _jsonable(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    return str(o)


def open_run(notebook: str, preset: str = "tour", overrides: dict[str, Any] | None = None, run_dir: str | None = None) -> Run:
    """Validate parameters, set threads and seeds, and return the run folder a notebook writes into.

    Under ``workbench run`` the runner passes ``run_dir``; opened by hand in JupyterLab it is
    ``papermill_runs/interactive-<preset>/`` so that later chapters find earlier artifacts.
    """
    params = config.resolve(preset, overrides)
    folder = Path(run_dir) if run_dir else runs_dir() / f"interactive-{preset}"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "params.yaml").exists():
        atomic_write_yaml(folder / "params.yaml", {"preset": preset, "overrides": overrides or {}, "params": params.to_dict()})
    config.record_reads(ReadLog(folder / "params_read" / f"{notebook}.json", notebook))
    from .runtime import seed_everything, set_threads

    set_threads(params.threads)
    seed_everything(params.seed)
    if preset in config.PRESET_NOTES:
        print(config.PRESET_NOTES[preset])
    return Run(notebook=notebook, params=params, dir=folder, overrides=dict(overrides or {}))


# --------------------------------------------------------------------------- the runner
def ensure_kernel() -> str:
    """Register this environment's Python as the Jupyter kernel ``workbench`` (inside sys.prefix)."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec_dir = Path(sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME
    spec_file = spec_dir / "kernel.json"
    if spec_file.exists():
        spec = json.loads(spec_file.read_text())
        if spec.get("argv", [None])[0] == sys.executable:
            return KERNEL_NAME
    subprocess.run(
        [sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", KERNEL_NAME, "--display-name", "Python (workbench)"],
        check=True,
        capture_output=True,
    )
    if KERNEL_NAME not in KernelSpecManager().find_kernel_specs():
        raise WorkbenchError(f"could not register the Jupyter kernel {KERNEL_NAME!r} in {sys.prefix}")
    return KERNEL_NAME


def list_notebooks(folder: str | os.PathLike | None = None) -> list[Path]:
    """The chapters in order: ``notebooks/NN_*.ipynb`` (or those of ``folder``)."""
    return sorted(p for p in Path(folder or notebooks_dir()).glob("[0-9][0-9]_*.ipynb"))


def select_notebooks(names: list[str] | None, folder: str | os.PathLike | None = None) -> list[Path]:
    available = list_notebooks(folder)
    if not names:
        return available
    chosen = []
    for name in names:
        hits = [p for p in available if p.stem == name or p.name == name or p.stem.startswith(name + "_") or p.stem[:2] == name]
        if not hits:
            raise ParameterError(f"no notebook {name!r}; available: {[p.stem for p in available]}")
        chosen.extend(h for h in hits if h not in chosen)
    return sorted(chosen)


@dataclass
class RunRecord:
    dir: Path
    status: dict[str, dict[str, Any]]
    metrics: dict[str, Any]

    @property
    def ok(self) -> bool:
        return all(s.get("status") == "ok" for s in self.status.values())


def new_run_dir(preset: str) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = runs_dir() / f"{stamp}-{preset}"
    n = 1
    while path.exists():
        n += 1
        path = runs_dir() / f"{stamp}-{preset}-{n}"
    path.mkdir(parents=True)
    return path


def run_notebooks(
    preset: str = "tour",
    notebooks: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    run_dir: str | os.PathLike | None = None,
    log_output: bool = True,
    notebook_dir: str | os.PathLike | None = None,
) -> RunRecord:
    """Execute the chosen notebooks in order into one run folder; stop at the first failure.

    ``notebook_dir`` reads the chapters from another folder than the project's ``notebooks/``.
    """
    params = config.resolve(preset, overrides)  # fail before any work starts
    # as JSON types (a list parameter given as a tuple is a list), the form params.yaml keeps them in
    overrides = json.loads(json.dumps(overrides or {}))
    paths = select_notebooks(notebooks, notebook_dir)
    if not paths:
        raise WorkbenchError(f"no notebooks found in {notebook_dir or notebooks_dir()}")
    import logging

    import papermill as pm

    if log_output:  # papermill streams the notebook's output through its logger
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        logging.getLogger("papermill").setLevel(logging.INFO)
    os.environ["WORKBENCH_HEADLESS"] = "1"  # inherited by the kernel: text progress bars
    kernel = ensure_kernel()
    folder = Path(run_dir) if run_dir else new_run_dir(preset)
    folder.mkdir(parents=True, exist_ok=True)
    status_path = folder / "status.json"
    # an existing run folder (resuming, or adding a chapter) keeps the records of its other notebooks
    status: dict[str, dict[str, Any]] = read_json(status_path) if status_path.exists() else {}
    earlier = yaml.safe_load((folder / "params.yaml").read_text()) if (folder / "params.yaml").exists() else None
    if earlier and (earlier.get("preset"), earlier.get("overrides") or {}) != (preset, overrides or {}):
        raise WorkbenchError(
            f"{folder} holds a run with preset {earlier.get('preset')!r} and overrides {earlier.get('overrides')}; "
            f"this one asks for {preset!r} and {overrides or {}}: use another --run-dir"
        )
    done = [n for n in (earlier or {}).get("notebooks", []) if n not in [p.stem for p in paths]]
    atomic_write_yaml(
        folder / "params.yaml",
        {"preset": preset, "overrides": overrides or {}, "notebooks": done + [p.stem for p in paths], "params": params.to_dict()},
    )
    for nb in paths:
        status[nb.stem] = {"status": "pending"}
    atomic_write_json(status_path, status)
    for nb in paths:
        out = folder / nb.name
        status[nb.stem] = {"status": "running", "started": dt.datetime.now().isoformat(timespec="seconds")}
        atomic_write_json(status_path, status)
        print(f"[workbench] running {nb.name} -> {out}", flush=True)
        t0 = time.time()
        peak = PeakMemory()
        try:
            with peak:  # the kernel's (and what it starts) peak resident memory, for status.json
                pm.execute_notebook(
                    str(nb),
                    str(out),
                    parameters={"preset": preset, "overrides": dict(overrides or {}), "run_dir": str(folder.resolve())},
                    kernel_name=kernel,
                    language="python",
                    cwd=str(nb.parent),
                    log_output=log_output,
                    progress_bar=False,
                    stdout_file=None,
                    stderr_file=None,
                )
            status[nb.stem].update(status="ok", seconds=round(time.time() - t0, 1), peak_rss_mib=peak.mib)
        except Exception as e:  # papermill keeps the executed copy with the traceback
            msg = str(e).strip().splitlines()
            status[nb.stem].update(status="failed", seconds=round(time.time() - t0, 1), peak_rss_mib=peak.mib, error=(msg[-1] if msg else repr(e))[:500])
            atomic_write_json(status_path, status)
            print(f"[workbench] FAILED {nb.name} after {time.time() - t0:.0f} s; executed copy with the traceback: {out}", flush=True)
            break
        atomic_write_json(status_path, status)
    for nb in paths:
        if status[nb.stem]["status"] == "pending":
            status[nb.stem]["status"] = "skipped"
    atomic_write_json(status_path, status)
    metrics = read_json(folder / "metrics.json") if (folder / "metrics.json").exists() else {}
    return RunRecord(dir=folder, status=status, metrics=metrics)


def headlines(metrics: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers every notebook logged, as ``{"<notebook>: <name>": value}``."""
    return {f"{nb}: {key}": value for nb, m in metrics.items() if isinstance(m, dict)
            for key, value in (m.get("headline") or {}).items()}


def summary_lines(record: RunRecord) -> list[str]:
    """A short human-readable results table of a run."""
    lines = [f"run: {record.dir}", f"{'notebook':<28}{'status':<9}{'seconds':>8}{'peak MiB':>10}"]
    for name, s in record.status.items():
        peak = s.get("peak_rss_mib")
        lines.append(f"{name:<28}{s.get('status', '?'):<9}{s.get('seconds', 0):>8}{'' if peak is None else round(peak):>10}")
    headline = headlines(record.metrics)
    if headline:
        lines.append("")
        width = max(len(k) for k in headline) + 2
        for key, value in headline.items():
            lines.append(f"{key:<{width}}{value}")
    from .compare import verdict_lines, verdicts

    table = verdict_lines(verdicts(record.metrics))
    if table:
        lines += ["", *table]
    return lines
