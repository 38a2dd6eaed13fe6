"""A real JupyterLab on 127.0.0.1 with a token, and a real headless Chromium, for the browser tests.

``find_chromium`` returns the system Chromium, installing Debian's ``chromium`` with apt-get when it
is missing and the tests run as root (as ``make chromium`` does); Playwright's own browser download
is never used.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

KERNEL = "workbench"
FIRST_RUN_S = 180  # the first kernel start and a notebook's first widget render
STEP_S = 30  # one interaction: browser -> kernel -> browser
APT = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]


def _which() -> str | None:
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


def find_chromium(install: bool = True) -> str | None:
    """The system Chromium; when missing, as root with apt-get, install Debian's package first."""
    path = _which()
    if path or not install or os.geteuid() != 0 or not shutil.which("apt-get"):
        return path
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("[browser tests] installing Debian chromium: " + " ".join(APT), file=sys.stderr)
    if subprocess.run(APT, env=env, capture_output=True, timeout=900).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=900)
        subprocess.run(APT, env=env, capture_output=True, timeout=900)
    return _which()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(root: Path, n: int = 40) -> str:
    lines = (root / ".jupyter-lab.log").read_text(errors="replace").splitlines()
    return "\n".join(line for line in lines if "Skipped non-installed server" not in line)[-n * 200 :]


@contextlib.contextmanager
def jupyterlab(root: Path) -> Iterator[dict]:
    """Start the venv's JupyterLab serving ``root`` on 127.0.0.1:<free port> with a random token;
    yields ``{"base", "token", "root"}``; stops the server afterwards."""
    venv_bin = Path(sys.executable).parent
    jupyter = venv_bin / "jupyter"
    specs = subprocess.run([str(jupyter), "kernelspec", "list", "--json"], capture_output=True, text=True, check=True).stdout
    if KERNEL not in json.loads(specs)["kernelspecs"]:
        pytest.fail(f"kernelspec {KERNEL!r} is not registered in the venv (make venv registers it)")
    # JupyterLab's own settings and workspaces stay in root; no "Jupyter news?" toast, no kernel chooser
    settings = root / ".lab-settings"
    note = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    note.parent.mkdir(parents=True, exist_ok=True)
    note.write_text(json.dumps({"fetchNews": "false"}))
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True, exist_ok=True)
    tracker.write_text(json.dumps({"autoStartDefaultKernel": True}))
    env = {k: v for k, v in os.environ.items() if k != "WORKBENCH_HEADLESS"}  # the interactive widgets
    env.update(JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(root / ".lab-workspaces"),
               PATH=f"{venv_bin}{os.pathsep}{env.get('PATH', '')}")
    port, token = _free_port(), secrets.token_hex(16)
    log = (root / ".jupyter-lab.log").open("w")
    proc = subprocess.Popen(
        [str(jupyter), "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--LabApp.extension_manager=readonly"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{tail(root)}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer /api/status within 60 s:\n{tail(root)}")
            time.sleep(0.25)
        # the token is required: without it the API refuses
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{base}/api/contents", timeout=5) as r:
                pytest.fail(f"jupyter lab answered /api/contents without the token ({r.status})")
        yield {"base": base, "token": token, "root": root}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


SOFTWARE_WEBGPU = ("--enable-unsafe-webgpu", "--enable-features=Vulkan", "--use-vulkan=swiftshader",
                   "--use-webgpu-adapter=swiftshader", "--use-angle=swiftshader")
"""Chromium flags that give a page a WebGPU adapter without a GPU (SwiftShader, in software)."""


@contextlib.contextmanager
def headless_chromium(executable: str, extra_args: Sequence[str] = ()) -> Iterator:
    """One headless Chromium (Playwright, sync API) launched from the system executable."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox", *extra_args])
        try:
            yield browser
        finally:
            browser.close()


def until(pg, selector: str, timeout_s: float = FIRST_RUN_S) -> None:
    """Wait for ``selector``, accepting any dialog that comes first (e.g. JupyterLab's kernel chooser)."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{selector!r} did not appear within {timeout_s:.0f} s")
        pg.wait_for_selector(f"{selector}, .jp-Dialog", timeout=left * 1000)
        dialog = pg.locator(".jp-Dialog")
        if dialog.count() == 0:
            return
        dialog.first.locator(".jp-mod-accept").click()  # keep JupyterLab's choice (the notebook's kernel)
        dialog.first.wait_for(state="detached")


def open_and_run_all(pg, url: str) -> None:
    """Open a notebook URL, wait for its kernel to be idle and run all cells from the Run menu."""
    pg.goto(url)
    pg.wait_for_selector(".jp-Notebook .jp-CodeCell .cm-content", timeout=FIRST_RUN_S * 1000)
    until(pg, ".jp-StatusBar-TextItem[title^='Change kernel']:has-text('| Idle')")
    pg.click("li.lm-MenuBar-item:has-text('Run')")
    pg.click(".lm-Menu-item:has-text('Run All Cells')")
