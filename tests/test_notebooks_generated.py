"""The committed notebooks are exactly what ``tools/make_*.py`` write: a change made in a notebook
by hand (or a script edited without regenerating its notebook) fails here, naming the notebook."""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted((ROOT / "tools").glob("make_*.py"))


def test_every_notebook_has_its_script():
    notebooks = {p.stem for p in (ROOT / "notebooks").glob("*.ipynb")}
    scripted = {p.stem.removeprefix("make_") for p in SCRIPTS}
    assert notebooks == scripted, f"notebooks without a script: {notebooks - scripted}; scripts without a notebook: {scripted - notebooks}"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_notebook_equals_what_its_script_writes(script, tmp_path):
    env = {**os.environ, "NOTEBOOK_OUT_DIR": str(tmp_path)}
    subprocess.run([sys.executable, str(script)], check=True, env=env, cwd=tmp_path, capture_output=True, timeout=120)
    name = script.stem.removeprefix("make_") + ".ipynb"
    written, committed = (tmp_path / name).read_text(), (ROOT / "notebooks" / name).read_text()
    if written != committed:
        diff = "".join(list(difflib.unified_diff(committed.splitlines(True), written.splitlines(True),
                                                 f"notebooks/{name}", f"written by tools/{script.name}"))[:40])
        pytest.fail(f"notebooks/{name} differs from what tools/{script.name} writes "
                    f"(run: python tools/{script.name}):\n{diff}")
