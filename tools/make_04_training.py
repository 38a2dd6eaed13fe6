"""Writes notebooks/04_training.ipynb (run: python tools/make_04_training.py)."""

from pathlib import Path

from nbbuild import build

build(str(Path(__file__).resolve().parent.parent / "notebooks" / "04_training.ipynb"), [
("md", """
# 04 · Select then MixUp: does training on ambiguous and hard pairs, with MixUp, generalise better?

Step 4 of **Select then MixUp** (methods.md section 1). From the data map of `03_data_maps` we train
the same pre-trained bi-encoder on different subsets of the same training pairs:

| subset | what it is |
| --- | --- |
| all | every pair of the data-map run (the baseline) |
| easy / ambiguous / hard | one region of the data map each |
| ambiguous+hard | what the paper selects |
| random | as many pairs as ambiguous+hard, drawn at random: the control the paper lacks |

each **with and without MixUp at the representation level**: lambda ~ Beta(alpha, alpha), the pooled
representations of two random pairs are mixed on both sides with the same lambda, and the mixed
query is trained against both codes with soft targets (lambda, 1 - lambda) in the InfoNCE softmax
(`workbench.training.mixup`; `mixup_layer=k` mixes token states at transformer block k instead).
Every model is scored on the in-distribution test and every OOD set; with several seeds the table
shows mean ± std, and each variant is compared with the all-data baseline query by query.

Section 7 trains the **OASIS** ablation (order labels and the CoSENT objective, papers/001) on the
same test suite. `select_subsets=""` skips Select then MixUp and `oasis_variants=""` skips OASIS, so
a sweep can run either alone.
"""),
("params", """
preset = "tour"     # tour (about 15 min for every chapter) | smoke | cpu | gpu | paper
overrides = {}      # e.g. {"select_seeds": 3, "mixup_alpha": 0.2, "mixup_layer": 3, "subset_file": "ambiguous-hard"}
run_dir = None
"""),
("code", """

import pandas as pd
from IPython.display import display

from workbench import cartography, compare, embeddings, experiment, runs, selection
from workbench.corpus import build_corpus
from workbench.subsets import load_subset
from workbench.viz.datamap import export_for_paper

run = runs.open_run("04_training", preset, overrides, run_dir)
P = run.params
PE = experiment.comparison_params(P)  # bf16_eval = select_bf16_eval: the precision every compared model is scored in
print("run folder:", run.dir)
"""),
("md", """
## 1. The data map and the training subsets

The data-map run of `03_data_maps` is reused when this notebook runs in the same run folder
(`workbench run` runs them together); otherwise it is trained here.
"""),
("code", """
pairs = build_corpus(P.corpus)
select_names = list(P.select_subsets)
if select_names:
    sample, datamap_run = selection.datamap_training(pairs, P, run.path("models", "datamap"))
    dmap = cartography.categorize(cartography.data_map(datamap_run.dynamics, mode=P.datamap_mode),
                                  easy_q=P.easy_q, hard_q=P.hard_q, ambiguous_q=P.ambiguous_q)
    subsets = selection.training_subsets(sample, dmap, seed=P.seed, names=select_names)
    if P.subset_file:  # exported from the 03 explorer
        subsets["custom"] = load_subset(P.subset_file)
    display(pd.DataFrame({"pairs": {name: len(df) for name, df in subsets.items()}}))
else:
    print("select_subsets is empty: Select then MixUp (sections 1 and 3-6) is skipped")
"""),
("md", """
## 2. The test sets

The same suite as `01_data_curation`: the in-distribution test, the domain-shift sets, the
obfuscated sets, the other languages (each a pool of equal size) and CoSQA dev.
"""),
("code", """
_, sets, tasks = experiment.comparison_suite(P)
ood_tasks = [t for t in tasks if t != "id_test"]
pd.DataFrame({"queries": {t: len(task.queries) for t, task in tasks.items()},
              "pool": {t: len(task.corpus) for t, task in tasks.items()}})
"""),
("md", """
## 3. Train every variant

Each model starts from the same pre-trained weights. Training and evaluation are cached per variant
in the run folder, so an interrupted run resumes where it stopped.
"""),
("code", """
seeds = [P.seed + i for i in range(P.select_seeds)]
if select_names:
    grid = selection.variants(list(subsets), seeds)
    zero_shot, _ = experiment.evaluate_suite(experiment.fresh_encoder(P), tasks, PE, label="zero-shot",
                                             cache_dir=embeddings.model_cache_dir(P.model, "zero-shot", run.path("analysis", "embeddings")))
    summaries, per_query = selection.train_variants(grid, subsets, tasks, PE, run.path("models", "select"))
    print(f"{len(grid)} models; training time {summaries.drop_duplicates(['model', 'seed'])['train_seconds'].sum() / 60:.1f} min")
"""),
("md", """
## 4. The table of the paper

MRR (%) per test set and the average over the OOD sets; mean ± std over seeds.
"""),
("code", """
if select_names:
    mean, std = compare.seed_table(pd.concat([summaries, zero_shot.assign(seed=P.seed)]), ood_tasks)
    display(compare.format_seed_table(mean, std))
    display(mean[["id_test", "OOD avg"]].sort_values("OOD avg", ascending=False).round(2))
"""),
("md", """
## 5. Query-level paired tests against the all-data baseline

For each variant and test set: the MRR difference to `all` (percent points), its 95% bootstrap
interval and p-value (queries resampled, each query's reciprocal rank averaged over seeds). The
OOD-average row resamples each OOD set's queries independently. `mde` / "MDE (80%)" is the
minimum detectable effect: the smallest true difference this comparison detects with 80% power
at alpha 0.05, from the spread of the per-query differences and the number of queries (seeds
averaged); a difference smaller than it says little either way.
"""),
("code", """
if select_names:
    tests = compare.paired_vs_baseline(per_query, baseline="all", ood_tasks=ood_tasks, n_boot=P.n_boot, seed=P.seed)
    ood_rows = tests[tests["task"] == "OOD avg"].set_index("variant")
    display(ood_rows)
    display(compare.format_paired(tests))
"""),
("code", """
if select_names:
    fig = compare.delta_figure(tests, "OOD avg")
    written = export_for_paper(fig, run.path("figures", "select_then_mixup_ood_delta"))
    print("written:", ", ".join(p.name for p in written))
    fig.show()
"""),
("md", """
## 6. The verdict on our data
"""),
("code", """
target = "ambiguous+hard + MixUp"
if select_names and target in ood_rows.index:
    r = ood_rows.loc[target]
    verdict = "beats" if r["ci_low"] > 0 else ("loses to" if r["ci_high"] < 0 else "is not distinguishable from")
    print(f"{target} {verdict} the all-data baseline on the OOD average: {r['delta']:+.2f} MRR points, "
          f"95% CI [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}], p = {r['p_value']:.3f}, MDE (80%) {r['mde']:.2f} "
          f"({P.select_seeds} seed(s), {int(r['queries'])} OOD queries)")
    print(f"with these queries and seeds a true difference below {r['mde']:.2f} MRR points would be missed "
          f"more than 20% of the time (80% power, alpha 0.05)")
    if "random + MixUp" in ood_rows.index:
        rr = ood_rows.loc["random + MixUp"]
        print(f"random + MixUp (same size, no selection): {rr['delta']:+.2f} [{rr['ci_low']:+.2f}, {rr['ci_high']:+.2f}], "
              f"MDE (80%) {rr['mde']:.2f}")
"""),
("md", """
## 7. OASIS: order labels and the CoSENT objective (papers/001)

The same pre-trained model trained on `oasis_pairs` pairs with their repository negatives and
graded labels (built, refined and cached by `02_llm_augmentation` section 8; built here when
missing). The loss is `w1 * InfoNCE + w2 * CoSENT` (0.98 / 0.02, tau 0.05): the negatives join
InfoNCE as extra columns and CoSENT ranks the cosines of every labelled pair of a batch by label.
The ablation of the paper's Table 5: full, without refinement, only the order objective, only the
contrastive one, AST candidates only, threshold candidates only; next to plain in-batch InfoNCE
on the same pairs. `oasis_variants=""` skips this section.
"""),
("code", """
from workbench.llm import llm_from_params
from workbench.oasis import pipeline as oasis_pipeline
from workbench.oasis import variants as oasis_variants

oasis_names = oasis_variants.parse_variants(P.oasis_variants) if P.oasis_variants else []
if oasis_names:
    order = oasis_pipeline.order_labels(pairs, P, llm_from_params(P))
    display(order.refined_fractions())
    oasis_seeds = [P.seed + i for i in range(P.oasis_seeds)]
    oasis_summaries, oasis_per_query = oasis_variants.train_variants(
        order, oasis_names, oasis_seeds, tasks, PE, run.path("models", "oasis"))
    oasis_mean, oasis_std = compare.seed_table(oasis_summaries, ood_tasks)
    display(compare.format_seed_table(oasis_mean, oasis_std))
    oasis_base = oasis_variants.VARIANTS[oasis_names[0]].label
    oasis_tests = compare.paired_vs_baseline(oasis_per_query, baseline=oasis_base, ood_tasks=ood_tasks,
                                               n_boot=P.n_boot, seed=P.seed)
    display(compare.format_paired(oasis_tests, ["id_test", "OOD avg"]))
    print(f"training time {oasis_summaries.drop_duplicates(['model', 'seed'])['train_seconds'].sum() / 60:.1f} min")
"""),
("code", """
run.log_metrics({
    **({"oasis_table_mean": oasis_mean.reset_index().to_dict(orient="records"),
        "oasis_table_std": oasis_std.reset_index().to_dict(orient="records"),
        "oasis_paired_tests": oasis_tests.to_dict(orient="records"),
        "oasis_refined": order.refined_fractions().to_dict(orient="records"),
        "oasis_labels": {k: v for k, v in order.summary.items() if k != "from_cache"}} if oasis_names else {}),
    **({"table_mean": mean.reset_index().to_dict(orient="records"),
        "table_std": std.reset_index().to_dict(orient="records"),
        "paired_tests": tests.to_dict(orient="records"),
        "subset_sizes": {name: len(df) for name, df in subsets.items()},
        "seeds": seeds,
        "datamap_reused": datamap_run.resumed_from_step == datamap_run.steps} if select_names else {}),
    "headline": {
        **({f"{name}: OOD avg MRR": round(float(row["OOD avg"]), 2) for name, row in mean.iterrows()} if select_names else {}),
        **({f"OASIS {name}: OOD avg MRR": round(float(row["OOD avg"]), 2) for name, row in oasis_mean.iterrows()}
           if oasis_names else {}),
    },
})
print("metrics written to", run.dir / "metrics.json")
"""),
])
