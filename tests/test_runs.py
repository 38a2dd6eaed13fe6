"""Headless notebook runs with papermill: the smoke run of the quickstart, and failures kept."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import papermill
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _workbench(args, env_extra, timeout=1500):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **env_extra}
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True, env=env, timeout=timeout)


def test_committed_notebooks_are_clean_and_parameterised():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{path.name} has outputs"
        first_code = next(c for c in nb.cells if c.cell_type == "code")
        assert "parameters" in first_code.metadata.get("tags", []), f"{path.name}: first code cell must be tagged"
        # `papermill --help-notebook` lists every parameter (a line it cannot parse is silently dropped)
        assigned = [t.id for node in ast.parse(first_code.source).body if isinstance(node, ast.Assign) for t in node.targets]
        listed = [p["name"] for p in papermill.inspect_notebook(str(path)).values()]
        assert listed == assigned, f"{path.name}: papermill sees {listed}, the cell assigns {assigned}"


def test_bad_parameter_fails_before_any_work(tmp_path):
    proc = _workbench(["run", "--preset", "smoke", "--set", "epochz=1"], {"WORKBENCH_RUNS": str(tmp_path)})
    assert proc.returncode == 2 and "unknown parameter 'epochz'" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def _tiny_project(tmp_path, names: tuple[str, ...], *cells: str):
    """A project folder whose notebooks are a parameters cell plus ``cells``; returns its path."""
    home = tmp_path / "project"
    (home / "notebooks").mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('preset = "smoke"\noverrides = {}\nrun_dir = None')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, *(nbformat.v4.new_code_cell(c) for c in cells)]
    for name in names:
        nbformat.write(nb, home / "notebooks" / f"{name}.ipynb")
    return home


def test_failed_notebook_keeps_its_executed_copy(tmp_path):
    home = _tiny_project(tmp_path, ("00_boom", "01_never"), "print('before the failure')", "1 / 0")
    runs = tmp_path / "runs"
    proc = _workbench(["run", "--preset", "smoke", "--quiet"], {"WORKBENCH_HOME": str(home), "WORKBENCH_RUNS": str(runs)}, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    (run,) = list(runs.iterdir())
    status = json.loads((run / "status.json").read_text())
    assert status["00_boom"]["status"] == "failed" and "ZeroDivisionError" in status["00_boom"]["error"]
    assert status["01_never"]["status"] == "skipped"
    executed = (run / "00_boom.ipynb").read_text()
    assert "ZeroDivisionError" in executed and "before the failure" in executed
    assert "FAILED 00_boom" in proc.stdout


def test_each_chapter_records_its_peak_memory(tmp_path):
    """status.json holds each notebook's peak resident memory (its kernel's), and the closing table
    shows it: a chapter that holds 400 MiB reads at least that, one that holds nothing far less."""
    home = tmp_path / "project"
    (home / "notebooks").mkdir(parents=True)
    for name, body in (("00_big", "import numpy as np\nheld = np.ones(400 * 2**20 // 8)"), ("01_small", "x = 1")):
        nb = nbformat.v4.new_notebook()
        params = nbformat.v4.new_code_cell('preset = "smoke"\noverrides = {}\nrun_dir = None')
        params.metadata["tags"] = ["parameters"]
        nb.cells = [params, nbformat.v4.new_code_cell(body)]
        nbformat.write(nb, home / "notebooks" / f"{name}.ipynb")
    runs = tmp_path / "runs"
    proc = _workbench(["run", "--preset", "smoke"], {"WORKBENCH_HOME": str(home), "WORKBENCH_RUNS": str(runs)}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run,) = list(runs.iterdir())
    status = json.loads((run / "status.json").read_text())
    big, small = status["00_big"]["peak_rss_mib"], status["01_small"]["peak_rss_mib"]
    assert big >= 400 and small < big - 300, status
    row = next(line for line in proc.stdout.splitlines() if line.startswith("00_big"))
    assert row.split()[-1] == str(round(big)), row


def _smoke_run(tmp_path, *notebooks: str):
    """Run chapters on the smoke preset into a fresh runs folder; return (process, run folder)."""
    runs = tmp_path / "runs"
    proc = _workbench(["run", "--preset", "smoke", "--notebooks", *notebooks, "--quiet"], {"WORKBENCH_RUNS": str(runs)})
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    (run,) = list(runs.iterdir())
    return proc, run


@pytest.mark.slow
def test_smoke_run_of_the_quickstart(tmp_path):
    proc, run = _smoke_run(tmp_path, "00")
    assert json.loads((run / "status.json").read_text())["00_quickstart"]["status"] == "ok"
    params = yaml.safe_load((run / "params.yaml").read_text())
    assert params["preset"] == "smoke" and params["params"]["corpus"] == "smoke"
    metrics = json.loads((run / "metrics.json").read_text())["00_quickstart"]
    tasks = {row["task"] for row in metrics["fine_tuned"]}
    assert {"id_test", "stdlib", "cosqa"} <= tasks
    for row in metrics["zero_shot"] + metrics["fine_tuned"]:
        assert 0 < row["MRR"] <= 100
    assert (run / "models" / "quickstart" / "model" / "model.safetensors").exists()
    assert (run / "models" / "quickstart" / "dynamics.parquet").exists()
    executed = nbformat.read(run / "00_quickstart.ipynb", as_version=4)
    assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code")
    assert "cosqa MRR (zero-shot -> fine-tuned)" in proc.stdout
    # the fine-tune against zero-shot, paired over the same queries, in metrics and in the run's closing table
    ood = [t for t in metrics["paired_tests"] if t["task"] == "OOD avg"]
    assert [t["variant"] for t in ood] == ["fine-tuned"] and ood[0]["ci_low"] <= ood[0]["delta"] <= ood[0]["ci_high"]
    assert ood[0]["mde"] > 0 and ood[0]["queries"] == sum(r["queries"] for r in metrics["fine_tuned"] if r["task"] != "id_test")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("quickstart") and "OOD avg" in x)
    assert "fine-tuned vs zero-shot" in line and f"{ood[0]['delta']:+.2f}" in line
    _assert_reads_are_listed(run, "00_quickstart")


@pytest.mark.slow
def test_smoke_run_of_the_curation_chapter(tmp_path):
    _, run = _smoke_run(tmp_path, "01")
    metrics = json.loads((run / "metrics.json").read_text())["01_data_curation"]
    assert metrics["leakage_total"] == 0
    names = {row["set"] for row in metrics["sets"]} if "set" in metrics["sets"][0] else {row["index"] for row in metrics["sets"]}
    assert {"train", "stdlib", "web", "id_test_obf", "stdlib_obf", "xl_javascript"} <= names
    arms = [row["model"] for row in metrics["ablation"]]
    assert arms == ["zero-shot", "none", "filtering", "topk", "softmax", "curriculum"]
    for row in metrics["ablation"]:
        assert 0 < row["OOD avg"] <= 100
    assert 0 < metrics["consistency"]["kept"] <= metrics["consistency"]["in_top_k"] <= 1
    ood_rows = [r for r in metrics["ablation_paired_tests"] if r["task"] == "OOD avg"]
    assert [r["variant"] for r in ood_rows] == ["filtering", "topk", "softmax", "curriculum"]
    _assert_reads_are_listed(run, "01_data_curation")


@pytest.mark.slow
def test_smoke_run_of_the_llm_augmentation_chapter(tmp_path):
    """02 end to end with the embedded SmolLM2 in-process and a fresh LLM cache: rewrites, the
    cross-encoder checked on CoSQA's labels, Algorithm 1, the baselines, retraining, and the same
    data again from the warm cache."""
    runs = tmp_path / "runs"
    proc = _workbench(["run", "--preset", "smoke", "--notebooks", "02", "--quiet"],
                      {"WORKBENCH_RUNS": str(runs), "WORKBENCH_LLM_CACHE": str(tmp_path / "llm-cache")})
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    (run,) = list(runs.iterdir())
    m = json.loads((run / "metrics.json").read_text())["02_llm_augmentation"]
    assert 0.0 <= m["filter_cosqa"]["roc_auc"] <= 1.0 and m["filter_cosqa"]["n"] == 604
    sizes = m["sizes"]
    assert sizes["baseline"] == 96 and sizes["qra"] > 96 and sizes["natgen"] > 96
    assert sizes["llm_nofilter"] >= sizes["llm_both"] >= 96  # the filter only removes
    models = [row["model"] for row in m["table_mean"]]
    assert models == ["baseline", "QRA", "NatGen", "ChatDANCE (LLM both)"]
    for row in m["table_mean"]:
        assert 0 < row["OOD avg"] <= 100
    kinds = {(r["aug_kind"], r["aug_op"]) for r in m["technique_stats"]}
    assert ("llm_query", "paraphrase") in kinds and any(k == "natgen" for k, _ in kinds)
    for r in m["technique_stats"]:
        assert r["accepted"] <= r["candidates"]
    # every request was generated once, then answered again from the cache (identical data)
    llm = m["llm"]
    assert llm["misses"] > 0 and llm["hits"] >= llm["misses"]
    assert m["throughput"]["generated (cache misses)"] == llm["misses"]
    for variant in ("baseline", "qra", "natgen", "llm_both"):
        assert (run / "models" / "augment" / f"{variant}-seed42" / "model" / "model.safetensors").exists()
    for ext in ("png", "svg", "pdf"):
        assert (run / "figures" / f"chatdance_filter_cosqa.{ext}").exists()
        assert (run / "figures" / f"oasis_gmm.{ext}").exists()  # section 8: the OASIS order labels
    labels = m["oasis_labels"]
    assert labels["pairs"] == 48 and labels["negatives"] > 0
    assert labels["gmm"]["crossing"] is None or 0 < labels["gmm"]["crossing"] < 1
    assert {r["strategy"] for r in m["oasis_refined"]} == {"threshold", "ast", "both"}
    assert m["oasis_judge_controls"]["n"] == 4 and 0 <= m["oasis_judge_controls"]["random_yes_rate"] <= 1
    assert all(r["confirmed"] <= r["judged"] <= r["candidates"] <= r["negatives"] for r in m["oasis_refined"])
    _assert_reads_are_listed(run, "02_llm_augmentation")


def _assert_reads_are_listed(run: Path, *chapters: str) -> None:
    """Every parameter a chapter read in this run (``params_read/``, recorded as it reads them) is one
    its parameters cell lists (``config.CHAPTER_READS``): the listing a user trusts stays complete."""
    from workbench.config import chapter_parameters

    for chapter in chapters:
        reads = set(json.loads((run / "params_read" / f"{chapter}.json").read_text())["reads"])
        listed = {n for names in chapter_parameters(chapter).values() for n in names}
        assert {"seed", "threads"} <= reads and not reads - listed, (
            f"{chapter} read {sorted(reads - listed)}, not listed in CHAPTER_READS[{chapter!r}] (workbench/config.py)")


@pytest.mark.slow
def test_smoke_run_of_data_maps_and_select_then_mixup(smoke_chain):
    """03 trains the data-map run (both dynamics modes) and 04 reuses it from the same run folder;
    05 and 06 analyse its models, 07 reports its table."""
    proc, run = smoke_chain["first"], smoke_chain["run"]
    status = json.loads((run / "status.json").read_text())
    assert status["03_data_maps"]["status"] == status["04_training"]["status"] == "ok"
    metrics = json.loads((run / "metrics.json").read_text())
    maps = metrics["03_data_maps"]
    assert sum(maps["category_counts"]["in_batch"].values()) == maps["datamap_pairs"] == 96
    assert -1 <= maps["mode_comparison"]["spearman_confidence"] <= 1 and maps["mode_comparison"]["pairs"] == 96
    for fmt in ("png", "svg", "pdf", "html"):
        assert (run / "figures" / f"datamap_correctness.{fmt}").stat().st_size > 1000
    assert (run / "subsets" / "ambiguous_hard.parquet").exists()
    # 03 section 6: random swaps of 15% of the pairs (smoke), flagged by low confidence; kept out of models/
    validity = maps["validity"]
    assert [(r["kind"], r["mode"], r["n_corrupted"]) for r in validity] == [("random_swap", "in_batch", 14)]
    assert validity[0]["auc"] > 0.8 and 0 <= maps["saturation"]["in_batch"] <= 1
    assert [r["region"] for r in maps["region_profile"]] == ["easy-to-learn", "ambiguous", "hard-to-learn", "all"]
    assert (run / "validity" / "random_swap" / "corruption.parquet").exists()
    assert (run / "figures" / "validity_random_swap.html").stat().st_size > 1000
    sel = metrics["04_training"]
    models = [row["model"] for row in sel["table_mean"]]
    assert models == ["all", "all + MixUp", "ambiguous+hard", "ambiguous+hard + MixUp", "zero-shot"]
    assert sel["subset_sizes"]["ambiguous+hard"] == sum(
        maps["category_counts"]["in_batch"][c] for c in ("ambiguous", "hard-to-learn")
    )
    for row in sel["table_mean"]:
        assert 0 < row["OOD avg"] <= 100
    ood = [t for t in sel["paired_tests"] if t["task"] == "OOD avg"]
    assert {t["variant"] for t in ood} == {"all + MixUp", "ambiguous+hard", "ambiguous+hard + MixUp"}
    assert all(t["ci_low"] <= t["delta"] <= t["ci_high"] for t in ood)
    # the run ends with every comparison and its verdict
    line = next(x for x in proc.stdout.splitlines() if x.startswith("Select then MixUp") and "ambiguous+hard vs all" in x
                and "OOD avg" in x)
    (row,) = [t for t in ood if t["variant"] == "ambiguous+hard"]
    assert line.split()[-1] == ("better" if row["ci_low"] > 0 else "worse" if row["ci_high"] < 0 else "detected")
    # 04 reused the data-map run of 03 instead of training it again
    assert sel["datamap_reused"] is True and "04_training" in proc.stdout
    # 04 section 7: the OASIS labels (repository negatives, mpnet, SmolLM2 as the judge) and the ablation
    labels = sel["oasis_labels"]
    assert labels["pairs"] == 48 and labels["negatives"] + labels["shortfall"] == 48 * 2
    assert labels["judge"]["sent"] <= 16 and sum(labels["judge"][k] for k in ("yes", "no", "unparsable")) == labels["judge"]["sent"]
    assert [r["strategy"] for r in sel["oasis_refined"]] == ["threshold", "ast", "both"]
    assert [row["model"] for row in sel["oasis_table_mean"]] == ["InfoNCE", "OASIS (full)"]
    assert all(0 < row["OOD avg"] <= 100 for row in sel["oasis_table_mean"])
    oasis_ood = [t for t in sel["oasis_paired_tests"] if t["task"] == "OOD avg"]
    assert [t["variant"] for t in oasis_ood] == ["OASIS (full)"] and oasis_ood[0]["ci_low"] <= oasis_ood[0]["delta"]

    # 05 and 06 analysed the models 03 and 04 left in the same run folder
    metrics = json.loads((run / "metrics.json").read_text())
    rep, cases = metrics["05_representation_analysis"], metrics["06_case_studies"]
    assert rep["models"] == 8  # zero-shot, the data-map run, 04's four Select-then-MixUp variants and two OASIS ones
    assert rep["compared"] == cases["compared"] == ["all", "ambiguous+hard + MixUp"]
    au = {(r["model"], r["task"]): r for r in rep["align_uniform"]}
    assert {t for _, t in au} == {"id_test", "stdlib", "cosqa_dev", "mean"}
    assert all(0 <= r["align"] <= 4 and r["uniform"] < 0 for r in au.values())  # unit vectors: ||x - y||^2 <= 4
    layers = [r for r in rep["layerwise"] if r["model"] == "all" and r["task"] == "id_test"]
    assert [r["layer"] for r in layers] == list(range(7))
    # the last layer is the model's own score, as 04 measured it
    mrr_04 = next(r["id_test"] for r in sel["table_mean"] if r["model"] == "all")
    assert layers[-1]["MRR"] == pytest.approx(mrr_04, abs=0.01)
    for name in ("align_uniform", "pairs_projection", "neighbourhood", "code_clouds", "layerwise"):
        assert (run / "figures" / f"{name}.png").stat().st_size > 1000, name
    mrr_06 = {r["model"]: r for r in cases["mrr"]}
    assert mrr_06["all"]["id_test"] == pytest.approx(mrr_04, abs=0.01)
    wtl = {r["task"]: r for r in cases["win_tie_lose"]}
    assert "datamap_train" in wtl and wtl["all"]["total"] == sum(r["total"] for t, r in wtl.items() if t != "all")
    assert all(r["win"] + r["tie"] + r["lose"] == r["total"] for r in wtl.values())
    for r in cases["hard_subset"]:
        assert 0 <= r["hard"] <= r["queries"] and all(r[m] < 50 for m in ("all", "ambiguous+hard + MixUp", "zero-shot") if r["hard"])
    assert sorted(r["region"] for r in cases["region_profile"]) == ["ambiguous", "easy-to-learn", "hard-to-learn"]
    executed = nbformat.read(run / "06_case_studies.ipynb", as_version=4)
    shown = "".join(o.get("data", {}).get("text/html", "") for c in executed.cells for o in c.get("outputs", []))
    assert "&#10003; gold" in shown and "outcome for all: <b>" in shown  # the static case viewer
    assert "variability" in shown and "hard-to-learn" in shown  # the region examples

    # 07 reported the run's own Select-then-MixUp table: the same numbers and paired tests as 04
    rep = metrics["07_report"]["report"]
    assert rep["tables"] == ["select_then_mixup", "oasis_ablation"] and rep["finished"] == 1
    table = pd.read_csv(run / "report" / "select_then_mixup.csv", header=[0, 1], index_col=0)
    for row in sel["table_mean"]:
        assert table.loc[row["model"], ("mean", "OOD avg")] == pytest.approx(row["OOD avg"], abs=1e-6)
        assert table.loc[row["model"], ("mean", "id_test")] == pytest.approx(row["id_test"], abs=1e-6)
    paired = pd.read_csv(run / "report" / "select_then_mixup_paired.csv")
    mine = paired[paired["task"] == "OOD avg"].set_index("variant")["delta"]
    assert {t["variant"]: t["delta"] for t in ood} == pytest.approx(mine.to_dict(), abs=0.011)
    for name in ("select_then_mixup.md", "select_then_mixup.tex", "report.md", "select_then_mixup_ood.png",
                 "select_then_mixup_delta.pdf"):
        assert (run / "report" / name).stat().st_size > 200, name
    _assert_reads_are_listed(run, "03_data_maps", "04_training", "05_representation_analysis", "06_case_studies",
                             "07_report")


def test_analysis_chapters_say_what_to_run_first(tmp_path):
    """05 in a run folder without trained models fails at once, naming the chapter to run."""
    runs = tmp_path / "runs"
    proc = _workbench(["run", "--preset", "smoke", "--notebooks", "05", "--run-dir", str(runs / "empty"), "--quiet"],
                      {"WORKBENCH_RUNS": str(runs)}, timeout=300)
    assert proc.returncode != 0
    executed = (runs / "empty" / "05_representation_analysis.ipynb").read_text()
    assert "NoTrainedModelsError" in executed and "--notebooks 04 --run-dir" in executed


def test_adding_a_chapter_to_a_run_folder_keeps_the_others(tmp_path):
    home = _tiny_project(tmp_path, ("00_first", "01_second"), "print('hello')")
    run, env = tmp_path / "run", {"WORKBENCH_HOME": str(home)}
    for chapter in ("00", "01"):
        proc = _workbench(["run", "--preset", "smoke", "--notebooks", chapter, "--run-dir", str(run), "--quiet"], env, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
    status = json.loads((run / "status.json").read_text())
    assert status["00_first"]["status"] == status["01_second"]["status"] == "ok"
    assert yaml.safe_load((run / "params.yaml").read_text())["notebooks"] == ["00_first", "01_second"]
    # another preset in the same folder would mix two runs: refused before anything runs
    proc = _workbench(["run", "--preset", "cpu", "--notebooks", "01", "--run-dir", str(run), "--quiet"], env, timeout=300)
    assert proc.returncode != 0 and "preset 'smoke'" in (proc.stdout + proc.stderr)
    assert json.loads((run / "status.json").read_text()) == status
