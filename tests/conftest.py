"""Shared fixtures. Tests never touch the hub, and write generated files into temporary folders."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two workers on a 2-core machine: one thread each (torch, llama.cpp, BLAS, numba,
    # and the notebook runs they start), so neither worker's threads spin waiting for a taken core
    for var in ("WORKBENCH_MAX_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, "1")


@pytest.fixture(scope="session")
def minilm():
    """The real all-MiniLM-L6-v2 from its pip package, loaded once per session."""
    from workbench.models import BiEncoder
    from workbench.runtime import set_threads

    set_threads(2)
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


# `make test` runs on two pytest-xdist workers (`-n 2`). Tests go to a worker a module at a time (its
# module-scoped fixtures built once), except the long ones below, each sent on its own and first, so the
# two workers finish together; the tests sharing `smoke_chain` stay together and build it once. (xdist's
# own `--dist loadgroup` does not group under pytest 9.2, whose node ids it can no longer rewrite:
# pytest-dev/pytest-xdist#1386, open.)
_FIRST = ("smoke_chain", "tests/test_runs.py::test_smoke_run_of_the_llm_augmentation_chapter",
          "tests/test_runs.py::test_smoke_run_of_the_curation_chapter", "tests/test_cli.py::test_cosqa_dev_reference_number",
          "tests/test_runs.py::test_smoke_run_of_the_quickstart")
# then the modules that take longest (a long one last would leave the other worker idle)
_LONG_MODULES = ("tests/test_own_data.py", "tests/test_sweep.py", "tests/test_oasis.py", "tests/test_distributed.py", "tests/test_cross_encoder.py",
                 "tests/test_faults_runtime.py", "tests/test_datamap_validity.py", "tests/test_browser.py")
_CHAIN = ("tests/test_notebooks_in_browser.py::", "tests/test_runs.py::test_smoke_run_of_data_maps_and_select_then_mixup")


def work_unit(nodeid: str) -> str:
    """The unit of tests one worker runs together: ``smoke_chain``, a long test alone, or a module."""
    if nodeid.startswith(_CHAIN):
        return "smoke_chain"
    return nodeid if nodeid in _FIRST else nodeid.split("::", 1)[0]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class ByWorkUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False  # keep our order (xdist would sort the units by test count)
    return ByWorkUnit(config, log)


def pytest_collection_modifyitems(config, items):
    """The long units first, the rest in collection order (the order alone changes nothing without xdist)."""
    rank = {u: i for i, u in enumerate(_FIRST + _LONG_MODULES)}
    items.sort(key=lambda item: rank.get(work_unit(item.nodeid), len(rank)))  # stable


def pytest_sessionfinish(session):
    """On an xdist worker: hand the worker's fault ledger to the controller, which prints the totals."""
    from dataclasses import asdict

    from faults import LEDGER

    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["faults"] = [asdict(f) for f in LEDGER]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """On the controller: add a finished worker's fault ledger to this process's."""
    from faults import LEDGER, Fault

    LEDGER.extend(Fault(**entry) for entry in getattr(node, "workeroutput", {}).get("faults", []))


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
