"""Reports: a sweep's runs aggregated into paper-style tables and figures.

For every table a sweep declares (:class:`workbench.sweep.TableSpec`), the rows each finished run
logged in its ``metrics.json`` are stacked, and per model (and grid point) the report gives the
mean and standard deviation over seeds of every test set's MRR and of the OOD average, as the
papers report them (Select then MixUp Table 2, CoRNStack Table 5). The query-level paired tests
against the table's baseline pool the seeds: each query's reciprocal rank is averaged over seeds
first (``compare.paired_vs_baseline``), which needs the runs to score the same queries (the
example sweeps fix ``eval_seed``).

Written, per table: ``<table>.csv`` (mean, std and seeds per cell, machine-readable),
``<table>.md`` and ``<table>.tex`` (``mean ± std``), ``<table>_paired.{csv,md,tex}`` (per variant and
test set: ``delta``, its interval, ``mde`` the minimum detectable effect at 80% power and alpha 0.05,
``p_value``, ``queries``) and the
figures ``<table>_ood.{png,svg,pdf,html}`` (OOD average with its std over seeds) and
``<table>_delta.*`` (paired differences with 95% intervals); plus ``runs.csv``/``runs.md`` (the
registry) and ``report.md`` that links everything. A plain run folder (no sweep) reports the tables
of the chapters it ran, as a sweep of one run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import WorkbenchError
from .store import atomic_write_text, read_json
from .sweep import REGISTRY, TableSpec, read_registry, registry_frame

__all__ = [
    "DEFAULT_TABLES", "RunInfo", "load_runs", "report_tables", "collect", "seed_summary",
    "per_query_tables", "paired_tests", "ood_figure", "to_latex", "to_markdown", "find_folder", "write_report",
    "report_notebook",
]

#: the tables of a plain run folder, by the chapter that logs them
DEFAULT_TABLES = (
    TableSpec("select_then_mixup", "04_training", "table_mean", baseline="all", models="select",
              title="Select then MixUp: MRR (%) per test set"),
    TableSpec("cornstack_ablation", "01_data_curation", "ablation", baseline="none", models="cornstack",
              title="CoRNStack ablation: MRR (%) per test set"),
    TableSpec("chatdance", "02_llm_augmentation", "table_mean", baseline="baseline", models="augment",
              title="ChatDANCE comparison: MRR (%) per test set"),
    TableSpec("oasis_ablation", "04_training", "oasis_table_mean", baseline="InfoNCE", models="oasis",
              title="OASIS ablation: MRR (%) per test set"),
)
NOT_TASKS = {"OOD avg", "seeds", "model", "seed", "run"}


@dataclass(frozen=True)
class RunInfo:
    id: str
    seed: int | None
    grid: dict[str, Any]
    dir: Path
    metrics: dict[str, Any]


def load_runs(folder: str | os.PathLike) -> tuple[list[RunInfo], list[TableSpec], pd.DataFrame]:
    """The finished runs of a sweep folder (or the one run of a run folder), the tables to build and
    the registry frame."""
    folder = Path(folder)
    if (folder / REGISTRY).exists():
        data = read_registry(folder)
        spec = data.get("spec") or {}
        tables = [TableSpec.from_dict(t) for t in spec.get("tables") or []]
        runs = []
        for rid, rec in data.get("runs", {}).items():
            mpath = folder / rec.get("dir", rid) / "metrics.json"
            if rec.get("status") == "ok" and mpath.exists():
                runs.append(RunInfo(rid, rec.get("seed"), dict(rec.get("grid") or {}), folder / rec.get("dir", rid), read_json(mpath)))
        return runs, tables or list(DEFAULT_TABLES), registry_frame(folder)
    if (folder / "metrics.json").exists():
        import yaml

        params = yaml.safe_load((folder / "params.yaml").read_text()) if (folder / "params.yaml").exists() else {}
        seed = (params.get("params") or {}).get("seed")
        status = read_json(folder / "status.json") if (folder / "status.json").exists() else {}
        frame = pd.DataFrame([{"run": folder.name, "status": run_status(status),
                               "seed": seed, "seconds": sum(s.get("seconds") or 0 for s in status.values())}])
        return [RunInfo(folder.name, seed, {}, folder, read_json(folder / "metrics.json"))], list(DEFAULT_TABLES), frame
    raise WorkbenchError(f"{folder}: neither a sweep folder ({REGISTRY}) nor a run folder (metrics.json)")


def run_status(status: dict[str, dict[str, Any]]) -> str:
    """One word for a run folder's ``status.json``: "failed" if a chapter failed, else "running" while a
    chapter is running or pending (07 reporting on its own run sees itself running), else "ok"."""
    states = {s.get("status") for s in status.values()}
    if "failed" in states:
        return "failed"
    return "running" if states & {"running", "pending"} else "ok"


def _grid_label(grid: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in grid.items())


def collect(runs: list[RunInfo], table: TableSpec) -> pd.DataFrame:
    """The rows every run logged for ``table``, stacked: one row per (run, model) with ``run``,
    ``seed``, ``grid`` (the grid point, '' without a grid) and the logged columns."""
    frames = []
    for r in runs:
        rows = (r.metrics.get(table.notebook) or {}).get(table.rows)
        if not rows:
            continue
        df = pd.DataFrame(rows)
        if table.index not in df:
            raise WorkbenchError(f"{r.dir / 'metrics.json'}: {table.notebook}.{table.rows} has no column {table.index!r}")
        frames.append(df.assign(run=r.id, seed=r.seed, grid=_grid_label(r.grid)))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _tasks(long: pd.DataFrame, table: TableSpec) -> tuple[list[str], list[str]]:
    tasks = [c for c in long.columns if c not in NOT_TASKS | {table.index, "grid"} and pd.api.types.is_numeric_dtype(long[c])]
    ood = [t for t in (table.ood or [t for t in tasks if t != "id_test"]) if t in tasks]
    return tasks, ood


def seed_summary(long: pd.DataFrame, table: TableSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean and std (ddof 1) over seeds per model and grid point of each test set and the OOD average
    (the mean over the OOD sets within a seed, then over seeds); ``seeds`` counts the runs."""
    from .compare import seed_table

    if long.empty:
        raise WorkbenchError(f"table {table.name!r}: no finished run logged {table.notebook}.{table.rows}")
    tasks, ood = _tasks(long, table)
    name = long[table.index].astype(str) + np.where(long["grid"] != "", " [" + long["grid"] + "]", "")
    summaries = long.assign(model=name, seed=long["run"]).melt(
        id_vars=["model", "seed"], value_vars=tasks, var_name="task", value_name="MRR")
    return seed_table(summaries, ood)


def per_query_tables(runs: list[RunInfo], table: TableSpec, names: list[str]) -> dict[str, dict[str, dict[str, list[pd.DataFrame]]]]:
    """Per grid point, per model row, per test set: the per-query tables of every seed, read from the
    evaluations each run cached beside its models (``models/<table.models>/...``)."""
    from .run_models import trained_models

    out: dict[str, dict[str, dict[str, list[pd.DataFrame]]]] = {}
    if not table.models:
        return out
    for r in runs:
        models = trained_models(r.dir, base_model=None)
        models = models[models["name"].str.startswith(table.models + "/")]
        point = out.setdefault(_grid_label(r.grid), {})
        for _, m in models.iterrows():
            label = str(m["label"]).split(" (seed ")[0]
            row = next((n for n in names if n == label or label.endswith(": " + n) or m["name"].endswith("/" + n)), None)
            if row is None or not m["eval_dir"]:
                continue
            for f in sorted(Path(m["eval_dir"]).glob("*.parquet")):
                if f.stem != "summary":
                    point.setdefault(row, {}).setdefault(f.stem, []).append(pd.read_parquet(f, columns=["qid", "rr"]))
    return out


def paired_tests(runs: list[RunInfo], table: TableSpec, long: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Query-level paired bootstrap of every model against ``table.baseline`` per grid point, each
    query's reciprocal rank averaged over seeds first (``compare.paired_vs_baseline``), each
    difference with its minimum detectable effect (``mde``, MRR points, 80% power, alpha 0.05)."""
    from .compare import paired_vs_baseline

    if not table.baseline or long.empty:
        return pd.DataFrame()
    _, ood = _tasks(long, table)
    frames = []
    names = list(dict.fromkeys(long[table.index].astype(str)))
    for point, per_query in per_query_tables(runs, table, names).items():
        if table.baseline not in per_query:
            continue
        try:
            tests = paired_vs_baseline(per_query, table.baseline, ood, n_boot=n_boot, seed=seed)
        except WorkbenchError as e:
            raise WorkbenchError(
                f"table {table.name!r}: {e} (the runs must score the same queries: fix eval_seed in the sweep's base)"
            ) from e
        frames.append(tests.assign(grid=point) if point else tests)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def ood_figure(mean: pd.DataFrame, std: pd.DataFrame, column: str = "OOD avg", title: str | None = None):
    """A dot plot of ``column`` per model with the std over seeds as error bars (dots, not bars: the
    axis does not start at 0)."""
    import plotly.graph_objects as go

    order = mean[column].sort_values().index
    err = std.loc[order, column].fillna(0).to_numpy()
    fig = go.Figure(go.Scatter(
        x=mean.loc[order, column], y=[str(i) for i in order], mode="markers",
        error_x=dict(type="data", array=err, thickness=1.5), marker=dict(color="#1f77b4", size=10),
        customdata=np.stack([err, mean.loc[order, "seeds"].to_numpy()], axis=1),
        hovertemplate="%{y}: %{x:.2f} ± %{customdata[0]:.2f} (%{customdata[1]} seeds)<extra></extra>",
    ))
    lo = float((mean[column] - std[column].fillna(0)).min())
    fig.update_layout(title=title or f"{column} MRR (%), mean ± std over seeds", xaxis_title="MRR (%)",
                      template="plotly_white", width=760, height=160 + 30 * len(order), margin=dict(l=200))
    fig.update_xaxes(range=[max(0.0, lo - 3), float((mean[column] + std[column].fillna(0)).max()) + 1])
    return fig


def to_markdown(df: pd.DataFrame) -> str:
    return df.to_markdown() + "\n"


def to_latex(df: pd.DataFrame, caption: str, label: str) -> str:
    """A booktabs table (``\\usepackage{booktabs}``); ± becomes ``$\\pm$``."""
    def tex(text: str) -> str:
        for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"), ("±", r"$\pm$")):
            text = text.replace(a, b)
        return text

    body = df.copy()
    body.index = [tex(str(i)) for i in body.index]
    body.index.name = tex(str(df.index.name)) if df.index.name else None
    body.columns = [tex(str(c)) for c in body.columns]
    body = body.astype(str).map(tex)
    return body.to_latex(caption=tex(caption), label=f"tab:{label}", escape=False, column_format="l" + "r" * len(df.columns))


def _write(path: Path, text: str, written: list[Path]) -> None:
    atomic_write_text(path, text)
    written.append(path)


def report_tables(folder: str | os.PathLike, n_boot: int = 2000, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Every table of a sweep or run folder: ``{name: {spec, long, mean, std, formatted, tests}}``
    (tables no finished run logged are left out)."""
    from .compare import format_seed_table

    runs, tables, _ = load_runs(folder)
    out = {}
    for t in tables:
        long = collect(runs, t)
        if long.empty:
            continue
        mean, std = seed_summary(long, t)
        out[t.name] = {"spec": t, "long": long, "mean": mean, "std": std, "formatted": format_seed_table(mean, std),
                       "tests": paired_tests(runs, t, long, n_boot=n_boot, seed=seed)}
    return out


def find_folder(name: str | os.PathLike) -> Path:
    """A sweep or run folder from a path, a sweep file (``.yaml``) or a name under ``papermill_runs/``."""
    from .paths import runs_dir
    from .sweep import load_sweep, sweep_dir

    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return sweep_dir(load_sweep(path))
    for candidate in (path, runs_dir() / path):
        if candidate.is_dir():
            return candidate
    raise WorkbenchError(f"no sweep or run folder {str(name)!r} (looked in . and {runs_dir()})")


def report_notebook(folder: str | os.PathLike, log_output: bool = False) -> Path:
    """Execute ``07_report`` for ``folder`` with papermill (the project's kernel) into
    ``<folder>/report/07_report.ipynb``, which also writes every file of :func:`write_report` there."""
    import papermill as pm

    from .paths import notebooks_dir
    from .runs import ensure_kernel

    folder = Path(folder).resolve()
    out = folder / "report"
    out.mkdir(parents=True, exist_ok=True)
    spec = read_registry(folder).get("spec", {}) if (folder / REGISTRY).exists() else {}
    os.environ["WORKBENCH_HEADLESS"] = "1"
    pm.execute_notebook(str(notebooks_dir() / "07_report.ipynb"), str(out / "07_report.ipynb"),
                        parameters={"preset": spec.get("preset", "cpu"), "overrides": {}, "run_dir": str(out),
                                    "sweep": str(folder)},
                        kernel_name=ensure_kernel(), cwd=str(notebooks_dir()), log_output=log_output, progress_bar=False)
    return out / "07_report.ipynb"


def write_report(folder: str | os.PathLike, out_dir: str | os.PathLike | None = None, n_boot: int = 2000,
                 figures: tuple[str, ...] = ("png", "svg", "pdf", "html"),
                 tables: dict[str, dict[str, Any]] | None = None) -> list[Path]:
    """Write every table (CSV, Markdown, LaTeX), its paired tests and figures, the run registry and an
    index ``report.md`` into ``out_dir`` (default ``<folder>/report``); returns the paths written.
    ``tables`` reuses what :func:`report_tables` returned."""
    from .compare import delta_figure
    from .viz.datamap import export_for_paper

    folder = Path(folder)
    out = Path(out_dir) if out_dir else folder / "report"
    out.mkdir(parents=True, exist_ok=True)
    runs, _, frame = load_runs(folder)
    tables = report_tables(folder, n_boot=n_boot) if tables is None else tables
    written: list[Path] = []
    frame.to_csv(out / "runs.csv", index=False)
    written.append(out / "runs.csv")
    _write(out / "runs.md", to_markdown(frame.set_index("run")), written)
    index = [f"# Report: {folder.name}", "",
             f"{len(runs)} finished run(s) of {len(frame)}; registry: `{folder / REGISTRY}`" if (folder / REGISTRY).exists()
             else f"one run folder: `{folder}`", "", "Runs: [runs.md](runs.md), [runs.csv](runs.csv)", ""]
    if not tables:
        index.append("No finished run logged a table yet.")
    for name, t in tables.items():
        spec: TableSpec = t["spec"]
        caption = spec.title or name
        wide = pd.concat({"mean": t["mean"], "std": t["std"]}, axis=1)
        wide.to_csv(out / f"{name}.csv")
        written.append(out / f"{name}.csv")
        _write(out / f"{name}.md", f"**{caption}**\n\n" + to_markdown(t["formatted"]), written)
        _write(out / f"{name}.tex", to_latex(t["formatted"], caption, name), written)
        index += [f"## {caption}", "", to_markdown(t["formatted"]),
                  f"Files: `{name}.csv`, `{name}.md`, `{name}.tex`.", ""]
        figs = {f"{name}_ood": ood_figure(t["mean"], t["std"], title=f"{name}: OOD average MRR (%), mean ± std over seeds")}
        tests = t["tests"]
        if not tests.empty:
            shown = tests.round(4)
            tests.to_csv(out / f"{name}_paired.csv", index=False)
            written.append(out / f"{name}_paired.csv")
            _write(out / f"{name}_paired.md", to_markdown(shown.set_index("variant")), written)
            _write(out / f"{name}_paired.tex", to_latex(shown.set_index("variant"), f"{caption}: paired tests against {spec.baseline}", f"{name}_paired"), written)
            ood_rows = tests[tests["task"] == "OOD avg"]
            index += [f"Query-level paired bootstrap against `{spec.baseline}` (seeds pooled), OOD average; "
                      "`mde`: the minimum detectable effect (MRR points, 80% power, alpha 0.05):", "",
                      to_markdown(ood_rows.set_index("variant").drop(columns="task")),
                      f"All sets: `{name}_paired.csv` / `.md` / `.tex`.", ""]
            if not ood_rows.empty and "grid" not in tests:
                figs[f"{name}_delta"] = delta_figure(
                    tests, "OOD avg", title=f"{name}: MRR difference to {spec.baseline}, OOD average (95% paired bootstrap)")
        for fname, fig in figs.items():
            paths = export_for_paper(fig, out / fname, figures)
            written.extend(paths)
            index.append(f"![{fname}]({fname}.png)" if any(p.suffix == ".png" for p in paths) else f"[{fname}]({fname}.html)")
        index.append("")
    _write(out / "report.md", "\n".join(index) + "\n", written)
    return written
