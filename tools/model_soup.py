"""A uniform model soup of a recipe's seeds, then WiSE-FT: does averaging the fine-tunes' weights beat
zero-shot where each fine-tune alone does not (issue 20, section 1)?

For each named recipe (one saved model folder per seed), the soup ``models.interpolation.soup`` of its
seeds is one model; its WiSE-FT mixing coefficient is chosen on the validation sets only
(``validation.choose_wise_alpha``), then the soup and the soup + WiSE are scored on chapter 04's
comparison suite (in-distribution test, every OOD set, CoSQA dev over all 6,267 functions) beside
zero-shot and the seeds themselves (their reciprocal ranks averaged over seeds first). Every
difference is a query-level paired bootstrap with its minimum detectable effect.

    HF_HUB_OFFLINE=1 .venv/bin/python tools/model_soup.py --sweep papermill_runs/select_mixup-cpu-regions \\
        --subsets all,hard --out papermill_runs/model_soup/regions
    HF_HUB_OFFLINE=1 .venv/bin/python tools/model_soup.py --model base=DIR,DIR,DIR --out ...

Writes ``--out``/``soup.csv`` (MRR per model, mean over seeds), ``soup_vs_zero_shot.csv``,
``soup_vs_seeds.csv`` and ``wise_alpha.csv``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
from validate_models import model_dirs

from workbench import compare, config, experiment, validation
from workbench.models.interpolation import soup
from workbench.runtime import set_threads
from workbench.store import atomic_write_text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", type=Path, help="a sweep folder whose runs trained Select-then-MixUp subsets")
    ap.add_argument("--subsets", default="all,hard", help="the subsets of --sweep to average (comma-separated)")
    ap.add_argument("--model", action="append", default=[], help="NAME=DIR,DIR[,DIR...]: one model folder per seed")
    ap.add_argument("--preset", default="cpu", help="the preset whose suite, code lengths and validation sets score the models")
    ap.add_argument("--out", type=Path, default=Path("papermill_runs/model_soup"))
    args = ap.parse_args()

    params = config.resolve(args.preset, {"bf16_eval": True})
    set_threads(params.threads)
    recipes: dict[str, list[Path]] = {}
    if args.sweep:
        recipes.update(model_dirs(args.sweep, [s for s in args.subsets.split(",") if s]))
    for spec in args.model:
        name, _, dirs = spec.partition("=")
        recipes[name] = [Path(d) for d in dirs.split(",") if d]
    if not recipes:
        raise SystemExit("name the seeds' model folders: --sweep DIR --subsets ... or --model NAME=DIR,DIR,...")
    t0 = time.time()
    pairs, sets, tasks = experiment.comparison_suite(params)
    val = validation.validation_tasks(pairs, sets, params)
    every = {**tasks, **val}
    ood = [t for t in tasks if t != "id_test"]
    key = experiment._eval_key(every, params)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    per_query: dict[str, dict[str, list[pd.DataFrame]]] = {}
    summaries, alphas = [], []

    def add(label: str, summary: pd.DataFrame, pq: dict[str, pd.DataFrame], seed: int = 0) -> None:
        summaries.append(summary.assign(model=label, seed=seed))
        for task, table in pq.items():
            per_query.setdefault(label, {}).setdefault(task, []).append(table)

    zs, zpq = experiment.cached_evaluation(out / f"zero-shot/eval-{key}", lambda: experiment.fresh_encoder(params),
                                           every, params, "zero-shot")
    add("zero-shot", zs, zpq)
    for name, dirs in recipes.items():
        t1 = time.time()
        for i, d in enumerate(dirs):
            s, pq = experiment.cached_evaluation(out / name / f"seed-{i}" / f"eval-{key}",
                                                 lambda d=d: experiment.load_model(d, params), every, params,
                                                 f"{name} seed {i}", cache_dir=d.parent / "embeddings")
            add(name, s, pq, seed=i)
        soup_dir = out / name / "soup"
        if not (soup_dir / "model").exists():
            soup([experiment.load_model(d, params) for d in dirs]).save(soup_dir / "model")
        soup_model = experiment.load_model(soup_dir / "model", params)
        s, pq = experiment.cached_evaluation(soup_dir / f"eval-{key}", lambda m=soup_model: m, every, params,
                                             f"{name} soup", cache_dir=soup_dir / "embeddings")
        add(f"{name} soup", s, pq)
        alpha, table = validation.choose_wise_alpha(soup_model, params, val, soup_dir / "wise", known={0.0: zs, 1.0: s})
        alphas.append(table.assign(recipe=name, chosen=alpha))
        if alpha in (0.0, 1.0):
            ws, wpq = (zs, zpq) if alpha == 0.0 else (s, pq)
        else:
            ws, wpq = experiment.cached_evaluation(
                soup_dir / "wise" / f"chosen-{alpha:g}" / f"eval-{key}",
                lambda m=soup_model, a=alpha: experiment.apply_wise(m, params, a), every, params, f"{name} soup + WiSE")
        add(f"{name} soup + WiSE", ws, wpq)
        print(f"[soup] {name}: {len(dirs)} seeds, WiSE alpha {alpha:g} chosen on validation ({time.time() - t1:.0f} s)",
              flush=True)

    all_s = pd.concat(summaries, ignore_index=True)
    mean, _ = compare.seed_table(all_s, ood)
    reported = [c for c in mean.columns if c not in validation.VALIDATION_SETS]
    vmean = mean[[c for c in validation.VALIDATION_SETS if c in mean.columns]].mean(axis=1).rename("validation mean")
    table = pd.concat([mean[reported], vmean], axis=1).round(2)
    rq = {m: {t: v for t, v in d.items() if t not in validation.VALIDATION_SETS} for m, d in per_query.items()}
    vs_zero = compare.paired_vs_baseline(rq, "zero-shot", ood, n_boot=params.n_boot, seed=params.seed)
    vs_seeds = pd.concat([compare.paired_vs_baseline({k: rq[k] for k in (name, f"{name} soup", f"{name} soup + WiSE")},
                                                     name, ood, n_boot=params.n_boot, seed=params.seed)
                          for name in recipes], ignore_index=True)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 40)
    shown = ["id_test", "cosqa_dev", "stdlib_obf", "OOD avg"]
    print("\nMRR (%), seeds averaged; validation mean = the sets choices are made on\n", table.to_string(), flush=True)
    print("\npaired against zero-shot (MRR points, 95% CI, MDE)\n",
          compare.format_paired(vs_zero[vs_zero["task"].isin(shown)]).to_string(), flush=True)
    print("\nthe soup against its own seeds\n",
          compare.format_paired(vs_seeds[vs_seeds["task"].isin(shown)]).to_string(), flush=True)
    alpha_table = pd.concat(alphas, ignore_index=True)
    print("\nWiSE-FT alpha of each soup on the validation sets\n", alpha_table.round(2).to_string(index=False), flush=True)
    atomic_write_text(out / "soup.csv", table.to_csv())
    atomic_write_text(out / "soup_vs_zero_shot.csv", vs_zero.to_csv(index=False))
    atomic_write_text(out / "soup_vs_seeds.csv", vs_seeds.to_csv(index=False))
    atomic_write_text(out / "wise_alpha.csv", alpha_table.to_csv(index=False))
    print(f"[soup] done in {time.time() - t0:.0f} s; tables in {out}", flush=True)


if __name__ == "__main__":
    main()
