"""Sweeps and reports: real papermill runs of small notebooks in a real kernel, killed and resumed.

The notebooks here are tiny (a parameters cell, ``open_run`` and a few lines) so a sweep of several
runs takes seconds; everything else is the real machinery: ``workbench sweep`` in a subprocess,
the project's Jupyter kernel, the registry on disk, SIGKILL and SIGINT, ``workbench report``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml
from faults import fault

from workbench.errors import ParameterError
from workbench.report import report_tables, to_latex, write_report
from workbench.sweep import expand, load_sweep, read_registry, registry_frame

# The chapter logs a two-row table whose MRR values are known functions of lr and seed, so the
# report's mean and std can be checked by hand. lr = 0.9 fails (a failing run); a file named
# "slow-<seed>" in the sweep folder makes that seed's run sleep (so it can be killed mid-run).
CHAPTER = """
import time
from pathlib import Path
from workbench.runs import open_run
run = open_run("00_tiny", preset, overrides, run_dir)
P = run.params
if P.lr > 0.5:
    raise ValueError(f"lr {P.lr} is too large for this chapter")
flag = run.dir.parent / f"slow-{P.seed}"
if flag.exists():
    flag.unlink()
    print("sleeping", flush=True)
    time.sleep(60)
rows = [{"model": "base", "id_test": 50.0 + P.seed, "ood_a": 40.0 + P.seed, "ood_b": 30.0},
        {"model": "better", "id_test": 60.0 + P.seed, "ood_a": 44.0 + 2 * P.seed, "ood_b": 32.0}]
run.log_metrics({"table": rows, "headline": {"better OOD": (44.0 + 2 * P.seed + 32.0) / 2}})
"""


def _project(tmp_path: Path, grid: dict | None = None, seeds=(1, 2, 3)) -> Path:
    nbdir = tmp_path / "nb"
    nbdir.mkdir(exist_ok=True)
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('preset = "smoke"\noverrides = {}\nrun_dir = None')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(CHAPTER)]
    nb.metadata["kernelspec"] = {"name": "workbench", "display_name": "Python (workbench)", "language": "python"}
    nbformat.write(nb, nbdir / "00_tiny.ipynb")
    spec = {
        "name": "tiny", "notebooks": ["00"], "preset": "smoke", "notebook_dir": "nb",
        "base": {"epochs": 1}, "grid": grid or {}, "seeds": list(seeds),
        "tables": [{"name": "tiny_table", "notebook": "00_tiny", "rows": "table", "index": "model",
                    "ood": ["ood_a", "ood_b"], "title": "Tiny: MRR (%)"}],
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _sweep(args, runs: Path, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "WORKBENCH_RUNS": str(runs), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "workbench", "sweep", "--quiet", *args], capture_output=True, text=True,
                          env=env, timeout=600, **kw)


def test_expand_and_validation(tmp_path):
    spec = load_sweep(_project(tmp_path, grid={"lr": [0.1, 0.2], "batch_size": [8]}, seeds=[1, 2]))
    runs = expand(spec)
    assert [r.id for r in runs] == ["lr=0.1-batch_size=8-seed1", "lr=0.1-batch_size=8-seed2",
                                    "lr=0.2-batch_size=8-seed1", "lr=0.2-batch_size=8-seed2"]
    assert runs[3].overrides == {"epochs": 1, "lr": 0.2, "batch_size": 8, "seed": 2}

    def bad(text: str, match: str) -> None:
        p = tmp_path / "bad.yaml"
        p.write_text(text)
        with pytest.raises(ParameterError, match=match) as e:
            load_sweep(p)
        assert str(p) in str(e.value)

    bad("notebooks: [00]\nnotebook_dir: nb\nepochs: 2\n", r"unknown key\(s\) \['epochs'\]")
    bad("notebooks: [00]\nnotebook_dir: nb\ngrid: {epochz: [1]}\n", "unknown parameter 'epochz'.*Allowed parameters")
    bad("notebooks: [00]\nnotebook_dir: nb\ngrid: {lr: [fast]}\n", "parameter 'lr' must be of type float")
    bad("notebooks: [00]\nnotebook_dir: nb\nbase: {seed: 3}\n", "swept by the field 'seeds'")
    bad("notebooks: [99]\nnotebook_dir: nb\n", "no notebook '99'")
    bad("notebooks: [00]\nnotebook_dir: nb\nseeds: []\n", "field 'seeds'")
    bad("notebooks: [00\n", "not valid YAML")


def test_bad_sweep_file_fails_before_any_run(tmp_path):
    path = _project(tmp_path, grid={"lr": [0.1, "x"]})
    proc = _sweep([str(path)], tmp_path / "runs")
    assert proc.returncode == 2 and "parameter 'lr' must be of type float" in proc.stderr
    assert not (tmp_path / "runs" / "tiny").exists()


@pytest.mark.slow
def test_failed_runs_are_kept_and_retried_finished_ones_skipped(tmp_path):
    path, runs = _project(tmp_path, grid={"lr": [0.1, 0.9]}, seeds=[1]), tmp_path / "runs"
    proc = _sweep([str(path)], runs)
    assert proc.returncode == 1, proc.stderr[-2000:]
    folder = runs / "tiny"
    reg = read_registry(folder)["runs"]
    assert reg["lr=0.1-seed1"]["status"] == "ok" and reg["lr=0.9-seed1"]["status"] == "failed"
    assert "lr 0.9 is too large" in reg["lr=0.9-seed1"]["error"]
    # the failing run keeps its executed notebook with the traceback, and the sweep went on
    assert "ValueError" in (folder / "lr=0.9-seed1" / "00_tiny.ipynb").read_text()
    assert "run 2/2 lr=0.9-seed1: FAILED" in proc.stdout
    env = reg["lr=0.1-seed1"]["environment"]
    assert len(env["git_commit"] or "") in (0, 40) and env["packages"]["papermill"] and env["python"]
    frame = registry_frame(folder)
    assert list(frame["run"]) == ["lr=0.1-seed1", "lr=0.9-seed1"]
    assert frame.loc[0, "metric: 00_tiny: better OOD"] == (44 + 2 + 32) / 2 and frame.loc[0, "param: lr"] == 0.1
    # again: the finished run is skipped, the failed one retried
    proc = _sweep([str(path)], runs)
    reg = read_registry(folder)["runs"]
    assert reg["lr=0.1-seed1"]["attempts"] == 1 and reg["lr=0.9-seed1"]["attempts"] == 2
    assert "1 finished, 1 to run" in proc.stdout


def _processes_in(run_dir: Path) -> list[str]:
    """Command lines of live processes that name ``run_dir`` (the run's ``workbench run``)."""
    found = []
    for p in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(run_dir) in cmd:
            found.append(cmd)
    return found


def _wait_for(path: Path, text: str, timeout: float = 180) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.5)
    raise AssertionError(f"{text!r} never appeared in {path}")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT", "SIGTERM"])
def test_killed_sweep_leaves_a_consistent_registry_and_resumes(tmp_path, how):
    path, runs = _project(tmp_path, seeds=[1, 2, 3]), tmp_path / "runs"
    folder = runs / "tiny"
    folder.mkdir(parents=True)
    (folder / "slow-2").touch()  # the second run sleeps: kill the sweep then
    log = tmp_path / "sweep.log"
    env = {**os.environ, "WORKBENCH_RUNS": str(runs), "HF_HUB_OFFLINE": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "workbench", "sweep", str(path)], stdout=out,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            _wait_for(log, "sleeping")
            os.killpg(proc.pid, getattr(signal, how))  # the sweep's group; each run is a group of its own
            rc = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    with fault("kills", f"{how} during a sweep: registry consistent, resume runs only the unfinished") as f:
        assert rc == (-signal.SIGKILL if how == "SIGKILL" else 130), log.read_text()[-2000:]
        # the run the sweep was executing went with it (it dies with its parent): nothing left writing there
        deadline = time.time() + 30
        while _processes_in(folder / "seed2") and time.time() < deadline:
            time.sleep(0.5)
        assert not _processes_in(folder / "seed2")
        reg = read_registry(folder)["runs"]  # readable, and says what happened
        assert reg["seed1"]["status"] == "ok"
        assert reg["seed2"]["status"] == "interrupted" and reg["seed2"]["attempts"] == 1
        assert reg["seed3"]["status"] == "pending"
        if how != "SIGKILL":  # Ctrl-C or a polite kill: the sweep itself wrote it, and said how to resume
            assert "interrupted during seed2" in log.read_text()
        # resume: seed1 is not run again, seed2 and seed3 run
        proc = _sweep([str(path)], runs)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert "3 runs, 1 finished, 2 to run" in proc.stdout
        reg = read_registry(folder)["runs"]
        assert [reg[r]["attempts"] for r in ("seed1", "seed2", "seed3")] == [1, 2, 1]
        assert all(r["status"] == "ok" for r in reg.values())
        assert not (folder / ".sweep.lock").exists()
        f.keep(1)  # seed1, finished before the kill, was not run again
        f.saw(next(line for line in proc.stdout.splitlines() if "to run" in line))


@pytest.mark.slow
def test_report_of_a_sweep(tmp_path):
    path, runs = _project(tmp_path, seeds=[1, 2, 3]), tmp_path / "runs"
    assert _sweep([str(path)], runs).returncode == 0
    folder = runs / "tiny"
    t = report_tables(folder)["tiny_table"]
    mean, std = t["mean"], t["std"]
    # by hand: better's id_test is 61, 62, 63 -> mean 62, std 1; its OOD average per seed is
    # (44 + 2s + 32) / 2 = 39, 40, 41 -> mean 40, std 1; base's is (40 + s + 30) / 2 -> std 0.5
    assert mean.loc["better", "id_test"] == pytest.approx(62.0) and std.loc["better", "id_test"] == pytest.approx(1.0)
    assert mean.loc["better", "OOD avg"] == pytest.approx(40.0) and std.loc["better", "OOD avg"] == pytest.approx(1.0)
    assert mean.loc["base", "OOD avg"] == pytest.approx(36.0) and std.loc["base", "OOD avg"] == pytest.approx(0.5)
    assert list(mean["seeds"]) == [3, 3]
    assert t["formatted"].loc["better", "OOD avg"] == "40.00 ± 1.00"
    written = {p.name for p in write_report(folder)}
    for name in ("runs.csv", "runs.md", "tiny_table.csv", "tiny_table.md", "tiny_table.tex", "report.md",
                 "tiny_table_ood.html"):
        assert name in written
    out = folder / "report"
    csv = pd.read_csv(out / "tiny_table.csv", header=[0, 1], index_col=0)
    assert csv.loc["better", ("mean", "OOD avg")] == pytest.approx(40.0)
    assert "40.00 $\\pm$ 1.00" in (out / "tiny_table.tex").read_text()
    assert "| better" in (out / "tiny_table.md").read_text()
    if "tiny_table_ood.png" in written:  # needs a Chromium (make chromium)
        assert (out / "tiny_table_ood.png").read_bytes()[:4] == b"\x89PNG"
        assert (out / "tiny_table_ood.pdf").read_bytes()[:4] == b"%PDF"
    # the command line writes the same
    env = {**os.environ, "WORKBENCH_RUNS": str(runs)}
    proc = subprocess.run([sys.executable, "-m", "workbench", "report", "tiny", "--out", str(tmp_path / "r2")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "r2" / "tiny_table.md").read_text() == (out / "tiny_table.md").read_text()
    # and 07_report, executed for the sweep, shows the same table
    proc = subprocess.run([sys.executable, "-m", "workbench", "report", str(folder), "--notebook"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    executed = nbformat.read(out / "07_report.ipynb", as_version=4)
    shown = json.dumps([c.get("outputs", []) for c in executed.cells])
    assert "40.00 ± 1.00" in shown.encode().decode("unicode_escape") or "40.00 \\u00b1 1.00" in shown
    assert "3 finished run(s) of 3" in shown


def test_report_paired_tables_carry_the_minimum_detectable_effect(tmp_path):
    """The report's paired tables (CSV, Markdown, LaTeX, report.md) show ``mde`` next to the interval."""
    from workbench.compare import format_seed_table, paired_vs_baseline
    from workbench.store import atomic_write_text
    from workbench.sweep import TableSpec

    def table(rr):
        return pd.DataFrame({"qid": [f"q{i}" for i in range(len(rr))], "rr": rr})

    run = tmp_path / "run"
    run.mkdir()
    atomic_write_text(run / "metrics.json", "{}")
    # diffs (percent) [0, 50, 0, 0]: sd 25, SE 12.5, MDE 2.801585 * 12.5 = 35.02 on "a" and the OOD average
    per_query = {"all": {"a": [table([1.0, 0.5, 0.5, 1.0])]}, "mix": {"a": [table([1.0, 1.0, 0.5, 1.0])]}}
    tests = paired_vs_baseline(per_query, "all", ood_tasks=["a"], n_boot=200)
    mean = pd.DataFrame({"seeds": [1, 1], "a": [75.0, 87.5], "OOD avg": [75.0, 87.5]}, index=pd.Index(["all", "mix"], name="model"))
    std = pd.DataFrame({"a": [np.nan, np.nan], "OOD avg": [np.nan, np.nan]}, index=mean.index)
    spec = TableSpec("t", "04_training", "table_mean", baseline="all", title="T")
    tables = {"t": {"spec": spec, "mean": mean, "std": std, "formatted": format_seed_table(mean, std), "tests": tests}}
    written = {p.name for p in write_report(run, tmp_path / "out", figures=("html",), tables=tables)}
    assert {"t_paired.csv", "t_paired.md", "t_paired.tex", "report.md"} <= written
    out = tmp_path / "out"
    csv = pd.read_csv(out / "t_paired.csv").set_index("task")
    assert list(csv.columns) == ["variant", "delta", "ci_low", "ci_high", "mde", "p_value", "queries"]
    assert csv.loc["a", "mde"] == pytest.approx(35.02) and csv.loc["OOD avg", "mde"] == pytest.approx(35.02)
    md = (out / "t_paired.md").read_text()
    header = md.splitlines()[0]
    assert "|   mde |" in header and header.index("ci_high") < header.index("mde") < header.index("p_value")
    assert "35.02" in md
    assert "mde" in (out / "t_paired.tex").read_text() and "35.02" in (out / "t_paired.tex").read_text()
    assert "minimum detectable effect" in (out / "report.md").read_text()


def test_latex_escapes_what_latex_needs():
    tex = to_latex(pd.DataFrame({"id_test": ["1.00 ± 0.20"]}, index=pd.Index(["a+b 50%"], name="model")), "MRR (%)", "t_1")
    assert r"\caption{MRR (\%)}" in tex and r"a+b 50\% & 1.00 $\pm$ 0.20" in tex and r"id\_test" in tex
    assert r"\label{tab:t_1}" in tex


def test_registry_reads_a_dead_running_run_as_interrupted(tmp_path):
    from workbench.store import atomic_write_json

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    atomic_write_json(tmp_path / "registry.json", {"runs": {"a": {"status": "running", "pid": dead.pid},
                                                             "b": {"status": "running", "pid": os.getpid()}}})
    runs = read_registry(tmp_path)["runs"]
    assert runs["a"]["status"] == "interrupted" and runs["b"]["status"] == "running"
    assert json.loads((tmp_path / "registry.json").read_text())["runs"]["a"]["status"] == "running"  # read only
    assert np.isnan(registry_frame(tmp_path)["seconds"].astype(float)).all()


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parent.parent / "sweeps").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_every_shipped_sweep_file_validates(path):
    """The example sweeps are valid: known keys and parameters, notebooks that exist, and a table
    whose chapter is one of the sweep's notebooks."""
    spec = load_sweep(path)
    runs = expand(spec)
    assert len(runs) == len(spec.seeds) >= 3 and len({r.id for r in runs}) == len(runs)
    assert spec.tables, f"{path.name} declares no table for workbench report"
    from workbench.runs import select_notebooks

    chapters = {p.stem for p in select_notebooks([str(nb) for nb in spec.notebooks])}
    for table in spec.tables:
        assert table.notebook in chapters, (table.notebook, chapters)


def test_a_run_reporting_on_itself_is_running_not_failed():
    from workbench.report import run_status

    ok = {"status": "ok", "seconds": 3.0}
    assert run_status({"00_quickstart": ok, "07_report": {"status": "running"}}) == "running"  # 07 on its own run
    assert run_status({"00_quickstart": ok, "01_data_curation": {"status": "pending"}}) == "running"
    assert run_status({"00_quickstart": ok, "01_data_curation": {"status": "failed"}, "07_report": {"status": "running"}}) == "failed"
    assert run_status({"00_quickstart": ok, "07_report": ok}) == "ok"
