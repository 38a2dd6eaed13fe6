"""Writes notebooks/07_report.ipynb (run: python tools/make_07_report.py)."""

from pathlib import Path

from nbbuild import build

build(str(Path(__file__).resolve().parent.parent / "notebooks" / "07_report.ipynb"), [
("md", """
# 07 · Report: the paper-style tables and figures of a sweep

A sweep (`workbench sweep sweeps/<file>.yaml`) runs chapters over a grid of parameters and seeds
and keeps a registry of its runs. This chapter aggregates it, as `workbench report` does:

1. the **run registry**: parameters, status, duration, git commit of every run;
2. each **paper-style table**: MRR per test set and the OOD average, mean ± std over seeds;
3. the **query-level paired tests** against the table's baseline, seeds pooled, each difference
   with its minimum detectable effect (`mde`: 80% power, alpha 0.05, MRR points);
4. the figures, and every file written (CSV, Markdown, LaTeX, PNG/SVG/PDF/HTML).

`sweep` names a sweep folder (`select_mixup-cpu`, a path, or the sweep's YAML file). Left empty, the
chapter reports on this run folder itself: the tables of the chapters run before it (04's Select
then MixUp table, 01's CoRNStack ablation), as a sweep of one run.
"""),
("params", """
preset = "tour"     # tour (about 15 min for every chapter) | smoke | cpu | gpu | paper
overrides = {}
run_dir = None
sweep = None        # a sweep: its name (select_mixup-cpu) or YAML file; None: this run folder itself
"""),
("code", """
from IPython.display import Markdown, display

from workbench import report, runs

run = runs.open_run("07_report", preset, overrides, run_dir)
folder = report.find_folder(sweep) if sweep else run.dir
finished, table_specs, registry = report.load_runs(folder)
print(f"reporting on {folder}: {len(finished)} finished run(s) of {len(registry)}")
"""),
("md", """
## 1. The run registry
"""),
("code", """
registry
"""),
("md", """
## 2. The tables, mean ± std over seeds, and the paired tests
"""),
("code", """
tables = report.report_tables(folder, n_boot=run.params.n_boot, seed=run.params.seed)
if not tables:
    print("no finished run has logged a table yet: run a training chapter (01 or 04) or a sweep first")
for name, t in tables.items():
    display(Markdown(f"### {t['spec'].title or name}"))
    display(t["formatted"])
    if not t["tests"].empty:
        display(Markdown(f"Paired bootstrap against `{t['spec'].baseline}` (each query's reciprocal rank averaged over seeds), "
                         "OOD average; `mde` is the minimum detectable effect (80% power, alpha 0.05):"))
        display(t["tests"][t["tests"]["task"] == "OOD avg"].set_index("variant"))
"""),
("md", """
## 3. Figures
"""),
("code", """
for name, t in tables.items():
    report.ood_figure(t["mean"], t["std"], title=f"{name}: OOD average MRR (%), mean ± std over seeds").show()
"""),
("md", """
## 4. The files for the paper
"""),
("code", """
written = report.write_report(folder, n_boot=run.params.n_boot, tables=tables)  # into <folder>/report/
for path in written:
    print(path)
run.log_metrics({"report": {"folder": str(folder), "runs": len(registry), "finished": len(finished),
                            "tables": list(tables), "files": [p.name for p in written]}})
"""),
])
