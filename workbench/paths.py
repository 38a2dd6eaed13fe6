"""Where things live: the project root, the generated ``data/`` folder, the runs folder, shared data.

Every location can be moved with an environment variable, so tests and users can point the
workbench elsewhere without editing code.
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The folder holding ``pyproject.toml`` and ``notebooks/`` (``WORKBENCH_HOME`` overrides)."""
    env = os.environ.get("WORKBENCH_HOME")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").exists():
        return here
    cwd = Path.cwd().resolve()
    for p in (cwd, *cwd.parents):
        if (p / "pyproject.toml").exists() and (p / "workbench").is_dir():
            return p
    return cwd


def data_dir() -> Path:
    """Generated caches and corpora (``WORKBENCH_DATA`` overrides; default ``<root>/data``)."""
    p = Path(os.environ.get("WORKBENCH_DATA", project_root() / "data"))
    p.mkdir(parents=True, exist_ok=True)
    return p


def user_path(text: str | os.PathLike) -> Path:
    """A path a user wrote in a parameter (a corpus file, a test set): absolute as given; a relative one
    is looked up in the current folder, the project's root and the data folder (notebooks run with
    ``notebooks/`` as their folder, so ``data/my.jsonl`` typed at the root must still be found), the
    first that exists; when none does, the one under the project's root (for the error message)."""
    p = Path(text).expanduser()
    if p.is_absolute():
        return p
    for base in (Path.cwd(), project_root(), data_dir()):
        if (base / p).exists():
            return (base / p).resolve()
    return project_root() / p


def runs_dir() -> Path:
    """Executed notebooks and run records (``WORKBENCH_RUNS`` overrides; default ``<root>/papermill_runs``)."""
    p = Path(os.environ.get("WORKBENCH_RUNS", project_root() / "papermill_runs"))
    p.mkdir(parents=True, exist_ok=True)
    return p


def notebooks_dir() -> Path:
    return project_root() / "notebooks"


def shared_dir() -> Path:
    """The read-only shared material beside the checkout (``WORKBENCH_SHARED`` overrides)."""
    return Path(os.environ.get("WORKBENCH_SHARED", project_root().parent / "shared"))


def cosqa_dir() -> Path:
    """The CoSQA benchmark files (``WORKBENCH_COSQA`` overrides; default ``../shared/data/cosqa``)."""
    return Path(os.environ.get("WORKBENCH_COSQA", shared_dir() / "data" / "cosqa"))
