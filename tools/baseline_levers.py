"""The lever table of issue 20, section 1: which training recipe beats the pre-trained model out of
distribution. Every lever is one fine-tune from the pre-trained model (``experiment.train_and_evaluate``,
cached and resumable under --out), scored on the comparison suite of chapter 04 (in-distribution test,
every OOD set, CoSQA dev) and on the validation sets (``workbench.validation``); its WiSE-FT mixing
coefficient is chosen on the validation sets only, then that one model is scored on the suite.
Differences to zero-shot and to the first lever are query-level paired bootstraps with the minimum
detectable effect.

    .venv/bin/python tools/baseline_levers.py --out papermill_runs/levers \
        --levers base,lr1e-5,mask,all_pairs --seeds 42
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from workbench import compare, experiment, validation
from workbench.config import parse_assignment, resolve
from workbench.corpus.mining import with_docstring
from workbench.runtime import set_threads

# web-style queries the embedded Qwen wrote for the same 2,000 sampled pairs (tools/web_queries.py)
WEB_QUERIES = "data/web_queries/cpu-{n}-seed{seed}.parquet"

# name -> (Params overrides, TrainConfig overrides, training pairs: None = params.train_pairs, 0 = all)
# a name containing "web" adds the LLM's web-style queries of the sampled pairs (WEB_QUERIES) to them
LEVERS: dict[str, tuple[dict, dict, int | None]] = {
    "base": ({}, {}, None),
    "lr1e-5": ({"lr": 1e-5}, {}, None),
    "lr5e-5": ({"lr": 5e-5}, {}, None),
    "epochs1": ({"epochs": 1}, {}, None),
    "mask": ({"mask_duplicates": True}, {}, None),
    "all_pairs": ({"epochs": 1}, {}, 0),
    "all_pairs_mask": ({"epochs": 1, "mask_duplicates": True}, {}, 0),
    "all_pairs_lr1e-5": ({"epochs": 1, "lr": 1e-5}, {}, 0),
    "web": ({}, {}, None),
    "web_mask": ({"mask_duplicates": True}, {}, None),
    "web_lr1e-5": ({"lr": 1e-5}, {}, None),
    "all_pairs_web": ({"epochs": 1}, {}, 0),
    "web_doc": ({}, {}, None),
}
# a name ending in "_doc" pairs each web-style query with its function's code *with* the docstring put
# back (``corpus.mining.with_docstring``): the format of CoSQA's code, which keeps docstrings



def web_pairs(sample: pd.DataFrame, path: Path, docstring_code: bool = False) -> pd.DataFrame:
    """The sample plus the LLM's accepted web-style queries of its pairs (same code, new query; with
    ``docstring_code`` the code carries its docstring, the sample's query, as its first statement)."""
    if not path.exists():
        raise SystemExit(f"{path} is missing: run tools/web_queries.py for this sample first")
    web = pd.read_parquet(path)
    web = web[web["code"].isin(set(sample["code"]))]
    if docstring_code:
        doc = dict(zip(sample["code"], sample["query"], strict=True))
        codes, kept = [], 0
        for code in web["code"]:
            try:
                codes.append(with_docstring(code, doc[code]))
            except ValueError:
                codes.append(code)
                kept += 1
        web = web.assign(code=codes)
        print(f"[levers] {len(web) - kept} web-query pairs carry their docstring, {kept} kept as mined "
              "(body on the def line, or code that does not parse)", flush=True)
    cols = [c for c in sample.columns if c in web.columns]
    return pd.concat([sample, web[cols]], ignore_index=True)


def lever_vs_base(rq: dict, ood: list[str], params, versus: str = "base") -> pd.DataFrame:
    """Every lever against ``versus`` and its WiSE-FT model against ``versus + WiSE``, query-level paired."""
    rows = []
    for arm in ("", " + WiSE"):
        ref = f"{versus}{arm}"
        if ref not in rq:
            continue
        others = {m: d for m, d in rq.items() if m != ref and m != "zero-shot" and m.endswith(" + WiSE") == bool(arm)}
        if others:
            table = compare.paired_vs_baseline({ref: rq[ref], **others}, ref, ood, n_boot=params.n_boot, seed=params.seed)
            rows.append(table.assign(versus=ref))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="parameter overrides for every lever")
    ap.add_argument("--levers", default="base,lr1e-5,mask,all_pairs")
    ap.add_argument("--seeds", default="42")
    ap.add_argument("--out", default="papermill_runs/levers")
    ap.add_argument("--micro-batch", type=int, default=8, help="length-sorted forward passes (speed only)")
    ap.add_argument("--versus", default="base", help="the lever every other lever is compared with")
    ap.add_argument("--web-queries", default=None, help="parquet of web-style query pairs; {seed} is replaced by each seed "
                    "(e.g. data/web_queries/cpu-600-seed{seed}.parquet; default: WEB_QUERIES)")
    args = ap.parse_args()

    base_over = dict(parse_assignment(a) for a in args.set)
    base_over.setdefault("bf16_train", True)
    base_over.setdefault("bf16_eval", True)
    params = resolve(args.preset, base_over)
    set_threads(params.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    pairs, sets, tasks = experiment.comparison_suite(params)
    val = validation.validation_tasks(pairs, sets, params)
    every = {**tasks, **val}
    print(f"[levers] {len(tasks)} reported sets, validation sets {[f'{k} ({len(t.queries)} q)' for k, t in val.items()]}"
          f" ({time.time() - t0:.0f} s)", flush=True)
    ood = [t for t in tasks if t != "id_test"]

    summaries, per_query, alphas = [], {}, []
    zs, zpq = experiment.cached_evaluation(out / f"zero-shot/eval-{experiment._eval_key(every, params)}",
                                           lambda: experiment.fresh_encoder(params), every, params, "zero-shot")
    summaries.append(zs.assign(seed=params.seed))
    for task, table in zpq.items():
        per_query.setdefault("zero-shot", {})[task] = [table]
    train = pairs[pairs["split"] == "train"]
    for name in [n.strip() for n in args.levers.split(",") if n.strip()]:
        p_over, t_over, n_pairs = LEVERS[name]
        for seed in [int(s) for s in args.seeds.split(",")]:
            p = resolve(args.preset, {**base_over, **p_over, "seed": seed, "eval_seed": params.test_seed})
            sample = train.reset_index(drop=True) if n_pairs == 0 else experiment.training_sample(pairs, p.train_pairs, seed)
            if "web" in name:
                web_path = (args.web_queries or WEB_QUERIES).format(n=p.train_pairs, seed=seed)
                sample = web_pairs(sample, Path(web_path),
                                   docstring_code=name.endswith("_doc"))
            folder = out / f"{name}-seed{seed}"
            t1 = time.time()
            summary, pq = experiment.train_and_evaluate(name, sample, every, p, folder,
                                                        micro_batch=args.micro_batch, **t_over)
            summaries.append(summary.assign(seed=seed))
            for task, table in pq.items():
                per_query.setdefault(name, {}).setdefault(task, []).append(table)
            encoder = experiment.load_model(folder / "model", p)
            alpha, table = validation.choose_wise_alpha(encoder, p, val, folder / "wise", known={0.0: zs, 1.0: summary})
            alphas.append(table.assign(lever=name, seed=seed, chosen=alpha))
            label = f"{name} + WiSE"
            if alpha in (0.0, 1.0):  # the pre-trained model or the fine-tune itself: already scored
                ws, wpq = (zs, zpq) if alpha == 0.0 else (summary, pq)
                ws = ws.assign(model=label)
            else:
                ws, wpq = experiment.cached_evaluation(
                    folder / "wise" / f"chosen-{alpha:g}" / f"eval-{experiment._eval_key(every, p)}",
                    lambda e=encoder, p=p, a=alpha: experiment.apply_wise(e, p, a), every, p, label)
            summaries.append(ws.assign(seed=seed))
            for task, table in wpq.items():
                per_query.setdefault(label, {}).setdefault(task, []).append(table)
            print(f"[levers] {name} seed {seed}: alpha {alpha:g} chosen on validation "
                  f"({time.time() - t1:.0f} s)", flush=True)

    all_s = pd.concat(summaries, ignore_index=True)
    mean, std = compare.seed_table(all_s, ood)
    reported = [c for c in mean.columns if c not in validation.VALIDATION_SETS]
    vmean = mean[[c for c in validation.VALIDATION_SETS if c in mean.columns]].mean(axis=1).rename("validation mean")
    table = pd.concat([mean[reported], vmean], axis=1).round(2)
    rq = {m: {t: v for t, v in d.items() if t not in validation.VALIDATION_SETS} for m, d in per_query.items()}
    vs_zero = compare.paired_vs_baseline(rq, "zero-shot", ood, n_boot=params.n_boot, seed=params.seed)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 40)
    print("\nMRR (%), mean over seeds; validation mean = the sets choices are made on\n", table.to_string(), flush=True)
    shown = ["id_test", "cosqa_dev", "stdlib_obf", "OOD avg"]
    key = vs_zero[vs_zero["task"].isin(shown)]
    print("\npaired against zero-shot (MRR points, 95% CI)\n", key.to_string(index=False), flush=True)
    vs_base = lever_vs_base(rq, ood, params, args.versus)
    if not vs_base.empty:
        print(f"\neach lever against {args.versus}, and its WiSE model against {args.versus} + WiSE (MRR points, 95% CI)\n",
              vs_base[vs_base["task"].isin(shown)].to_string(index=False), flush=True)
        vs_base.to_csv(out / "levers_vs_base.csv", index=False)
    alpha_table = pd.concat(alphas, ignore_index=True) if alphas else pd.DataFrame()
    print("\nWiSE-FT alpha on the validation sets\n", alpha_table.round(2).to_string(index=False), flush=True)
    table.to_csv(out / "levers.csv")
    vs_zero.to_csv(out / "levers_vs_zero_shot.csv", index=False)
    alpha_table.to_csv(out / "wise_alpha.csv", index=False)
    (out / "levers.json").write_text(json.dumps({"params": base_over, "levers": args.levers, "seeds": args.seeds,
                                                 "seconds": round(time.time() - t0)}, indent=1))
    print(f"[levers] done in {time.time() - t0:.0f} s; tables in {out}", flush=True)


if __name__ == "__main__":
    main()
