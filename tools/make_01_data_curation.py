"""Writes notebooks/01_data_curation.ipynb (run: python tools/make_01_data_curation.py)."""

from pathlib import Path

from nbbuild import build

build(str(Path(__file__).resolve().parent.parent / "notebooks" / "01_data_curation.ipynb"), [
("md", """
# 01 · Data curation: an honest out-of-distribution suite, and CoRNStack's filtering and hard negatives

The point of this workbench is **out-of-distribution (OOD) generalisation**, so we first build test
sets that differ from the training data in *source*, *style* and *language*, check that none of
them leaks into training, and measure how far each one is from the training data. Then we apply
the curation of **CoRNStack** (Suresh et al. 2024): dual consistency filtering of noisy pairs,
hard negatives mined from the corpus with a false-negative guard, and a softmax sampler whose
temperature follows a curriculum, and reproduce the shape of its Table 5 on our data.
"""),
("params", """
preset = "tour"     # tour (about 15 min for every chapter) | smoke | cpu | gpu | paper
overrides = {}      # e.g. {"consistency_delta": 0.6, "curation_pairs": 4000}
run_dir = None
"""),
("code", """
import pandas as pd
from IPython.display import display

from workbench import cards, compare, curation, experiment, ood, retrieval, runs
from workbench.corpus import build_corpus, crosslang
from workbench.models import BiEncoder
from workbench.paths import data_dir
from workbench.subsets import load_false_negatives

run = runs.open_run("01_data_curation", preset, overrides, run_dir)
P = run.params
print("run folder:", run.dir)
"""),
("md", """
## 1. The in-distribution data

Train / valid / test from pinned scientific and math packages, split by a hash of the file path,
with a per-package cap so no single package dominates.
"""),
("code", """
pairs = build_corpus(P.corpus)
in_dist = {split: pairs[pairs["split"] == split] for split in ("train", "valid", "test")}
cards.source_table(in_dist)
"""),
("md", """
## 2. The out-of-distribution suite

- **domain shift**: the standard library, web frameworks, developer tooling;
- **obfuscated identifiers** (AdvTest-style): function name -> `func`, parameters and locals ->
  `arg_i` (with `ast` + `symtable`; globals, builtins, imports, attributes and keywords stay; every
  result compiles and renames back to the original tree);
- **web queries**: CoSQA dev (real search-engine queries);
- **other languages**: Go, Java, Ruby, PHP, JavaScript, TypeScript, mined with tree-sitter from
  Debian source packages and npm tarballs (doc comment above the function as the query).

Every set keeps one function per query and drops queries seen in training.
"""),
("code", """
suite = ood.build_ood_suite(P.corpus, groups={g: ood.OOD_GROUPS[g] for g in ["stdlib", *P.ood_groups]})
xl = crosslang.build_crosslang(languages=list(P.crosslang_languages), per_language_cap=P.crosslang_cap)
sets = ood.all_sets(pairs, suite, xl, seed=P.seed)
cards.cards_table(sets, seed=P.seed)
"""),
("code", """
cards.length_figure(sets).show()
cards.source_table({name: sets[name] for name in P.ood_groups if name in sets})
"""),
("md", """
Five random examples of a few sets (the dataset cards hold them for every set):
"""),
("code", """
for name in [n for n in ("stdlib", "web", "stdlib_obf", "xl_go", "xl_javascript") if n in sets]:
    examples = pd.DataFrame(cards.dataset_card(sets[name], name, seed=P.seed)["examples"])
    print(name)
    display(examples[[c for c in ("query", "func_name", "source", "path") if c in examples.columns]])
"""),
("md", """
## 3. Leakage

Each count below must be zero: test queries that are also training queries, repeated queries
within a set, and test functions that are exact or near (token 3-gram Jaccard >= 0.8, MinHash)
duplicates of training functions.
"""),
("code", """
leakage = ood.leakage_report(sets["train"], {name: df for name, df in sets.items() if name != "train"})
leakage_total = int(leakage.drop(columns=["n_pairs"]).select_dtypes("number").to_numpy().sum())
print("leakage total:", leakage_total)
leakage
"""),
("md", """
## 4. How far is each set from the training data?

A classifier two-sample test (Lopez-Paz & Oquab 2017) on code embeddings: 0.5 means the set is
indistinguishable from the training code, 1.0 means perfectly separable. The projection is the
*Select then MixUp* paper's picture of the distribution gap. (Obfuscated sets are trivially
separable by their `arg_i` tokens: their gap is real but says little about domain.)
"""),
("code", """
encoder = experiment.fresh_encoder(P)
emb = cards.embed_samples(encoder, sets, P.gap_samples, P.seed, bf16=P.bf16_eval)
gap = cards.distribution_gap(emb, reference="train", seed=P.seed, threads=P.threads)
gap
"""),
("code", """
projection = cards.gap_projection(emb, method="tsne", n_per_set=P.gap_samples, seed=P.seed, threads=1)
cards.gap_figure(projection, gap).show()
"""),
("md", """
## 5. Dual consistency filtering (CoRNStack section 2.2)

A proxy embedder scores every docstring against every function of the pool (chunked exact faiss
search; the n x n matrix is never built). A pair is kept if its own function is in the top k of its
row **and** its score exceeds delta. CoRNStack's delta = 0.7 was tuned for another embedder, so we
look at the score distribution and the kept fraction per delta before choosing.
"""),
("code", """
pool = experiment.training_sample(pairs, P.curation_pairs or len(in_dist["train"]), P.seed)
proxy = BiEncoder.load(P.proxy_model, max_query_len=P.max_query_len, max_code_len=P.max_code_len)
Q, C = retrieval.embed_pairs(proxy, pool, bf16=P.proxy_bf16, cache_dir=data_dir() / "curation" / "embeddings")
filt = curation.consistency_filter(Q, C, k=P.consistency_k, delta=P.consistency_delta, ids=pool["id"].tolist())
print(f"{len(pool)} pairs; own code in the top {P.consistency_k}: {filt['in_top_k'].mean():.1%}; "
      f"kept at delta={P.consistency_delta}: {filt['kept'].mean():.1%}")
filt["reason"].value_counts()
"""),
("code", """
calibration = curation.calibrate_delta(filt)
curation.kept_fraction_figure(calibration).show()
curation.score_distribution_figure(filt, delta=P.consistency_delta).show()
print({rule: curation.suggest_delta(filt, rule)["delta"] for rule in ("youden", "knee")})
calibration
"""),
("code", """
curation.removed_examples(pool, filt, n=8)
"""),
("md", """
## 6. Hard negatives and the ablation (the analogue of CoRNStack's Table 5)

Candidates are each query's top-scoring functions, minus its own, minus any scoring above
gamma x its positive's score (likely false negatives). During training, negatives are drawn with
probability softmax(S_ij / tau'); the curriculum decays tau' linearly from 0.05 to 0.001, from
diverse to hardest. Every arm starts from the same pre-trained model and is scored on the
in-distribution test and every OOD set (equal-size pools for the mined sets).
"""),
("code", """
arms = curation.ablation_arms(
    pool, Q, C, k=P.consistency_k, delta=P.consistency_delta, M=P.hard_negatives, gamma=P.gamma,
    n_per_query=P.negatives_per_query, depth=P.negatives_depth, tau_start=P.tau_start, tau_end=P.tau_end, seed=P.seed,
    names=P.ablation_arms,
    false_negatives=load_false_negatives(P.false_negative_subsets) if P.false_negative_subsets else None,
)
tasks = experiment.comparison_tasks(sets, P)
ood_tasks = [t for t in tasks if t != "id_test"]
pd.DataFrame([{"arm": a.name, "pairs": len(a.pairs), "what": a.description} for a in arms])
"""),
("code", """
zero_shot, _ = experiment.evaluate_suite(encoder, tasks, P, label="zero-shot")
summaries, per_query = [zero_shot], {}
for arm in arms:
    summary, pq = experiment.train_and_evaluate(
        arm.name, arm.pairs, tasks, P, run.path("models", "cornstack", arm.name),
        train_kwargs={"negatives": arm.negatives} if arm.negatives else None, epochs=P.ablation_epochs,
    )
    summaries.append(summary)
    per_query[arm.name] = {task: [table] for task, table in pq.items()}
ablation = experiment.results_table(summaries, ood_tasks=ood_tasks)
ablation
"""),
("md", """
Each arm against "none", query by query (paired bootstrap; the OOD average resamples each OOD
set's queries independently): the difference in MRR points with its 95% interval, and the minimum
detectable effect "MDE (80%)": the smallest true difference this many queries detect with 80%
power at alpha 0.05.
"""),
("code", """
arm_tests = compare.paired_vs_baseline(per_query, baseline="none", ood_tasks=ood_tasks, n_boot=P.n_boot, seed=P.seed)
compare.format_paired(arm_tests, ["id_test", "cosqa_dev", "OOD avg"])
"""),
("code", """
run.log_metrics({
    "sets": cards.cards_table(sets, seed=P.seed).reset_index().to_dict(orient="records"),
    "leakage_total": leakage_total,
    "gap": gap.reset_index().to_dict(orient="records"),
    "consistency": {"pairs": len(pool), "k": P.consistency_k, "delta": P.consistency_delta,
                    "in_top_k": float(filt["in_top_k"].mean()), "kept": float(filt["kept"].mean())},
    "ablation": ablation.reset_index().to_dict(orient="records"),
    "ablation_paired_tests": arm_tests.to_dict(orient="records"),
    "headline": {f"CoRNStack arm {model}: OOD avg MRR": row["OOD avg"] for model, row in ablation.iterrows()},
})
print("metrics written to", run.dir / "metrics.json")
"""),
])
