"""Score trained models on CoSQA's validation queries (``cosqa_valid``), paired against a baseline.

A result seen on a reported test set (e.g. "training on the hard region gains on CoSQA dev") is a
lead until it holds on data nobody chose anything on: ``validation.cosqa_validation`` holds the 299
label-1 queries of ``cosqa-dev.json`` that are not among CoSQA dev's 500 reported queries. Each model
name takes one folder per seed; a query's reciprocal rank is averaged over the seeds first, then
every model is compared with the baseline by ``compare.paired_vs_baseline`` (interval and minimum
detectable effect). ``zero-shot`` names the pre-trained model.

    HF_HUB_OFFLINE=1 .venv/bin/python tools/validate_models.py --sweep papermill_runs/select_mixup-cpu-regions \\
        --subsets all,hard [--pool 2000] [--model NAME=DIR,DIR,DIR ...]

``--sweep DIR --subsets all,hard`` takes ``DIR/seed*/models/select/<subset>-seed*/model`` for each
subset; ``--model`` adds any saved model folders (one per seed). Models are scored as
``experiment.evaluate_suite`` scores every chapter's models (the preset's code lengths; bf16 as 04).
Writes ``--out``/``cosqa_valid.csv`` (MRR per model and seed) and ``cosqa_valid_paired.csv``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from workbench import compare, config, experiment, validation
from workbench.store import atomic_write_text


def model_dirs(sweep: Path, subsets: list[str]) -> dict[str, list[Path]]:
    """``{subset: [model folder per seed]}`` of a Select-then-MixUp sweep's run folders."""
    out = {}
    for subset in subsets:
        dirs = sorted(sweep.glob(f"seed*/models/select/{subset.replace('+', '_')}-seed*/model"))
        if not dirs:
            sys.exit(f"{sweep}: no model folder seed*/models/select/{subset}-seed*/model")
        out[subset] = dirs
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", type=Path, help="a sweep folder whose runs trained Select-then-MixUp subsets")
    ap.add_argument("--subsets", default="all,hard", help="the subsets of --sweep to score (comma-separated)")
    ap.add_argument("--model", action="append", default=[], help="NAME=DIR[,DIR...]: one model folder per seed")
    ap.add_argument("--baseline", default="all")
    ap.add_argument("--pool", type=int, default=None, help="cosqa_valid's pool size (default: all 6,267 functions)")
    ap.add_argument("--preset", default="cpu", help="the preset whose code lengths and precision score the models")
    ap.add_argument("--out", type=Path, default=Path("papermill_runs/validate_models"))
    args = ap.parse_args()

    params = config.resolve(args.preset, {"bf16_eval": config.resolve(args.preset).select_bf16_eval})
    models: dict[str, list[Path | str]] = {"zero-shot": [params.model]}
    if args.sweep:
        models.update(model_dirs(args.sweep, [s for s in args.subsets.split(",") if s]))
    for spec in args.model:
        name, _, dirs = spec.partition("=")
        models[name] = [Path(d) for d in dirs.split(",")]
    task = validation.cosqa_validation(pool_size=args.pool)
    print(f"cosqa_valid: {len(task.queries)} queries, {len(task.corpus)} functions")
    per_query: dict[str, dict[str, list[pd.DataFrame]]] = {}
    rows = []
    for name, dirs in models.items():
        for d in dirs:
            _, results = experiment.evaluate_suite(experiment.load_model(d, params), {"cosqa_valid": task}, params, name)
            res = results["cosqa_valid"]
            per_query.setdefault(name, {}).setdefault("cosqa_valid", []).append(res.per_query)
            rows.append({"model": name, "folder": str(d), "MRR": round(res.metrics["mrr"], 2)})
            print(f"{name:<12} {d}: MRR {res.metrics['mrr']:.2f}")
    args.out.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    atomic_write_text(args.out / "cosqa_valid.csv", table.to_csv(index=False))
    tests = compare.paired_vs_baseline(per_query, args.baseline, [], n_boot=2000, seed=0)
    atomic_write_text(args.out / "cosqa_valid_paired.csv", tests.to_csv(index=False))
    print(table.groupby("model", sort=False)["MRR"].agg(["mean", "std", "count"]).round(2).to_string())
    print(f"paired against {args.baseline} (seed-averaged reciprocal ranks):")
    print(compare.format_paired(tests).to_string())


if __name__ == "__main__":
    main()
