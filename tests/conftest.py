"""Shared fixtures. Tests never touch the hub, and write generated files into temporary folders."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def minilm():
    """The real all-MiniLM-L6-v2 from its pip package, loaded once per session."""
    import torch

    from workbench.models import BiEncoder

    torch.set_num_threads(2)
    return BiEncoder.load("minilm", max_query_len=32, max_code_len=64)


def workbench_cli(args, env_extra=None, timeout=1500):
    """Run ``python -m workbench ARGS`` (offline) and return the completed process."""
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture(scope="session")
def smoke_chain(tmp_path_factory):
    """Chapters 03 and 04, then 05, 06 and 07, on the smoke preset in one run folder (papermill, the
    project's kernel), shared by the run tests and the browser tests. Returns the run folder and the
    two processes."""
    runs = tmp_path_factory.mktemp("smoke-chain")
    first = workbench_cli(["run", "--preset", "smoke", "--notebooks", "03", "04", "--quiet"], {"WORKBENCH_RUNS": str(runs)})
    assert first.returncode == 0, (first.stdout[-3000:], first.stderr[-3000:])
    (run,) = list(runs.iterdir())
    second = workbench_cli(["run", "--preset", "smoke", "--notebooks", "05", "06", "07", "--run-dir", str(run), "--quiet"],
                           {"WORKBENCH_RUNS": str(runs)})
    assert second.returncode == 0, (second.stdout[-3000:], second.stderr[-3000:])
    return {"run": run, "first": first, "second": second}


@pytest.fixture(scope="session")
def llm_server():
    """A real ``llama_cpp.server`` with SmolLM2-135M-Instruct on 127.0.0.1, started once per session and
    stopped at its end (``.base_url`` is ``http://127.0.0.1:PORT/v1``, ``.model`` the served id,
    ``.model_path`` the sha256-checked GGUF)."""
    from workbench.llm import LlamaServer, local_model_path

    with LlamaServer(local_model_path("smollm2-135m"), n_ctx=1024, n_threads=2) as server:
        yield server


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The reliability tests' ledger (tests/faults.py): inputs tried, faults survived, results lost."""
    from faults import LEDGER, summary_lines, write_report

    lines = summary_lines()
    if lines:
        terminalreporter.section("faults")
        for line in lines:
            terminalreporter.write_line(line)
    if LEDGER and os.environ.get("WORKBENCH_FAULT_REPORT"):
        write_report(os.environ["WORKBENCH_FAULT_REPORT"])
