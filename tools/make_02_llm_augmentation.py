"""Writes notebooks/02_llm_augmentation.ipynb (run: python tools/make_02_llm_augmentation.py)."""

from pathlib import Path

from nbbuild import build

build(str(Path(__file__).resolve().parent.parent / "notebooks" / "02_llm_augmentation.ipynb"), [
("md", """
# 02 · LLM augmentation: ChatDANCE rewriting, cross-encoder filtering, and rule-based baselines

**ChatDANCE** (methods.md section 2, papers/002) asks an LLM to rewrite the queries and the code of
the training pairs without changing their meaning, keeps only the rewrites a cross-encoder trained
on the original pairs still scores as matching (the paper: theta_q = 0.95 for queries, theta_c =
0.75 for code; the `cpu` preset's smaller filter uses theta_q = 0.8, see section 4), builds the
augmented training set with its Algorithm 1, and retrains the bi-encoder.

This chapter does all of it with a real LLM that runs offline (Qwen2.5-Coder-0.5B-Instruct in
llama.cpp by default; any OpenAI-compatible server with `llm_backend="openai"`), and puts it side
by side with the two rule-based baselines of the paper on the same data:

| variant | training set |
| --- | --- |
| baseline | D, the original training pairs |
| QRA | D + queries with words randomly deleted / copied / swapped |
| NatGen | D + code rewritten by semantics-preserving AST transforms |
| LLM query / LLM code | D + the LLM's query (code) rewrites the filter keeps |
| ChatDANCE (LLM both) | Algorithm 1 over both |
| LLM both, no filter | Algorithm 1 keeping every valid rewrite |

Every LLM request is cached on disk (`data/llm-cache/`), so a re-run costs nothing and gives
identical data. Generated code is data: it is parsed, never executed (NatGen's transforms are
checked for equal behaviour in a sandboxed subprocess by the tests).
"""),
("params", """
preset = "tour"     # tour (about 15 min for every chapter) | smoke | cpu | gpu | paper
overrides = {}      # e.g. {"llm_backend": "openai", "llm_model": "gpt-4o-mini", "llm_mode": "batched", "aug_query_pairs": None}
run_dir = None
"""),
("code", """
import time

import pandas as pd
from IPython.display import display

from workbench import compare, embeddings, experiment, geometry, runs
from workbench.augment import comparison, filtering, pipeline, prompts, rewrites, stats
from workbench.corpus import build_corpus
from workbench.llm import llm_from_params
from workbench.viz.datamap import export_for_paper

run = runs.open_run("02_llm_augmentation", preset, overrides, run_dir)
P = run.params
print("run folder:", run.dir)
"""),
("md", """
## 1. The training pairs and the parts we augment

D is `aug_train_pairs` training pairs of the mined corpus. The LLM and QRA rewrite the queries of
the first `aug_query_pairs` of them; the LLM and NatGen rewrite the code of the first
`aug_code_pairs` (code rewrites are the slow part on a CPU; point `llm_backend` at a faster server
and set both to `None` to augment all of D).
"""),
("code", """
pairs = build_corpus(P.corpus)
data = pipeline.augmentation_data(pairs, P)
pd.DataFrame({"pairs": {"D": len(data.train), "queries rewritten": len(data.query_pairs),
                        "code rewritten": len(data.code_pairs)}})
"""),
("md", """
## 2. The LLM

`llm_backend="local"` runs the model in this process (llama.cpp); `"server"` starts llama.cpp's
OpenAI-compatible server on 127.0.0.1; `"openai"` talks to any such server (`llm_base_url` or
`OPENAI_BASE_URL`, the key from `OPENAI_API_KEY`). The embedded model files are checked against
their pinned sha256 before use.
"""),
("code", """
llm = llm_from_params(P)
print(llm)
prompts.QUERY_PROMPT
"""),
("md", """
The prompts are data (`prompts.PromptSchema`: instruction, emphasis and caution, prior
knowledge, task input, output context). Change one part with `dataclasses.replace` and pass the
schema on, e.g. `pipeline.llm_candidates(llm, data, P, query_schema=my_schema)`. With a small local
model (`llm_mode="single"`) each call asks for one rewrite after a few example turns, with a
different sampling seed per call; `"batched"` sends the paper's N-at-once prompts.
"""),
("code", """
example = data.query_pairs.iloc[0]
for message in prompts.build_query_requests(data.query_pairs.head(1), 1, P.llm_mode, prompts.QUERY_PROMPT,
                                              None, P.seed)[0].messages[-2:]:
    print(f"--- {message['role']}\\n{message['content']}")
"""),
("md", """
## 3. Rewriting queries and code

Each output is extracted by regex and validated: queries between L and 1.6 L words (with a small
tolerance), different from the original and from each other; code must parse, contain one
function, differ from the original beyond formatting, and not be a duplicate. Rejections are
counted by reason.
"""),
("code", """
before = llm.stats()
cands = pipeline.llm_candidates(llm, data, P)
after = llm.stats()
print(f"queries: {len(cands['queries'])} accepted in {cands['query_seconds']:.0f} s; "
      f"code: {len(cands['code'])} accepted in {cands['code_seconds']:.0f} s")
pd.DataFrame({"before": before, "after": after})
"""),
("code", """
rejections = pd.concat([rewrites.rejection_counts(cands["query_log"].to_frame()),
                        rewrites.rejection_counts(cands["code_log"].to_frame())])
rejections
"""),
("md", """
## 4. The cross-encoder filter

Trained from the MiniLM checkpoint on `filter_pairs` original training pairs, each with
`filter_negatives` mined hard negatives and one random one, with class-balanced binary
cross-entropy (AdamW, weight decay 0.01 as in the paper; lr 2e-5, because the paper's 8e-5 on a
`[CLS]` classifier collapses at this scale, see `workbench.models.cross_encoder.train_cross_encoder`). The score is
`sigmoid(scale * cos(query tokens, code tokens) + bias)` over the jointly encoded pair, in [0, 1].

The table gives, per threshold, the fraction of pairs kept and the precision and recall of "kept"
against the labels. A threshold is only as meaningful as the filter's calibration: the paper's
theta_q = 0.95 assumes a filter confident enough to score matching pairs that high. The `cpu`
preset's filter (1,000 pairs, 128 tokens, one epoch) does not, so the preset keeps the paper's
theta_c = 0.75 for code and takes theta_q = 0.8, the threshold where its precision on held-out
mined pairs passes 0.9; the `gpu` and `paper` presets use the paper's values. We check it on data it never saw: CoSQA dev's 604 human-labelled (query, code)
pairs, and held-out mined test pairs against hard negatives.
"""),
("code", """
ce = pipeline.filter_model(pairs, P)
thresholds = sorted({0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, P.theta_c, P.theta_q})
cosqa_check = filtering.validate_cosqa(ce, thresholds=thresholds)
heldout = pairs[pairs["split"] == "test"].sample(n=min(300, int((pairs["split"] == "test").sum())), random_state=P.seed)
mined_check = filtering.validate_pairs(ce, heldout, thresholds=thresholds, seed=P.seed)
print(f"CoSQA dev (human labels): ROC-AUC {cosqa_check['roc_auc']:.3f}; "
      f"held-out mined pairs: ROC-AUC {mined_check['roc_auc']:.3f}, "
      f"gold above its hard negative {mined_check['pair_accuracy']:.1%}")
pd.concat({"CoSQA dev": filtering.threshold_table(cosqa_check),
           "held-out mined": filtering.threshold_table(mined_check)})
"""),
("code", """
fig = filtering.score_figure(cosqa_check["scores"], cosqa_check["labels"], (P.theta_c, P.theta_q),
                                 title="Cross-encoder scores on CoSQA dev (human labels)")
written = export_for_paper(fig, run.path("figures", "chatdance_filter_cosqa"))
fig.show()
"""),
("md", """
## 5. Algorithm 1 and the baselines

D_aug starts as D. For each pair (q, c): every code rewrite c' with score(q, c') >= theta_c adds
(q, c') and joins the pair's code list; every query rewrite q' with score(q', c) >= theta_q adds
(q', a random code of that list). QRA rewrites the same queries, NatGen the same code, as many per
pair as the LLM was asked for.
"""),
("code", """
baselines = pipeline.baseline_candidates(data, P)
sets, decisions = pipeline.training_sets(data, baselines, cands, ce.score, P)
pd.DataFrame({"pairs": {name: len(df) for name, df in sets.items()},
              "added to D": {name: len(df) - len(data.train) for name, df in sets.items()}})
"""),
("md", """
### Augmentation statistics per technique

`acceptance` = valid / generated, `keep_rate` = kept by the filter / valid; length change in
words (queries) or code tokens; `diversity` = 1 - token Jaccard with the original; `distinct_2`
among the rewrites of one original; `similarity` = cosine of the pre-trained bi-encoder's
embeddings of rewrite and original.
"""),
("code", """
encoder = experiment.fresh_encoder(P)

def encode(texts, side):
    return encoder.encode(texts, kind=side, show_progress=False)

originals = data.train
llm_all = pd.concat([cands["queries"], cands["code"]], ignore_index=True)
llm_log = pd.concat([cands["query_log"].to_frame(), cands["code_log"].to_frame()], ignore_index=True)
technique_stats = pd.concat([
    stats.technique_table(llm_all, originals, log=llm_log, decisions=decisions, encode=encode),
    stats.technique_table(pd.concat([baselines["qra"], baselines["natgen"]], ignore_index=True), originals,
                          encode=encode),
], ignore_index=True)
technique_stats.round(3)
"""),
("code", """
with pd.option_context("display.max_colwidth", 200):
    display(stats.examples(pd.concat([llm_all, baselines["qra"], baselines["natgen"]], ignore_index=True),
                           originals, k=2, seed=P.seed))
"""),
("md", """
## 6. Retraining: does augmentation help, in and out of distribution?

Every variant trains the same pre-trained bi-encoder with InfoNCE for `aug_epochs` epochs and is
scored on the in-distribution test and every OOD set of the comparison suite (as in 01 and 04).
Training and evaluation are cached per variant and seed in the run folder.
"""),
("code", """
PE = experiment.comparison_params(P)  # bf16_eval = select_bf16_eval: the precision every compared model is scored in
_, suite_sets, tasks = experiment.comparison_suite(P)
ood_tasks = [t for t in tasks if t != "id_test"]
seeds = [P.seed + i for i in range(P.aug_seeds)]
grid = comparison.grid(comparison.parse_variants(P.aug_variants), seeds)
summaries, per_query = comparison.train_variants(sets, grid, tasks, PE, run.path("models", "augment"))
mean, std = compare.seed_table(summaries, ood_tasks)
display(compare.format_seed_table(mean, std))
"""),
("md", """
### Query-level paired tests against the baseline

MRR difference to the baseline (percent points) with its 95% bootstrap interval, each query's
reciprocal rank averaged over seeds, and the minimum detectable effect "MDE (80%)": the smallest
true difference these queries and seeds detect with 80% power at alpha 0.05.
"""),
("code", """
tests = compare.paired_vs_baseline(per_query, baseline="baseline", ood_tasks=ood_tasks, n_boot=P.n_boot, seed=P.seed)
fig = compare.delta_figure(tests, "OOD avg", title="Augmentation vs baseline: OOD-average MRR difference")
export_for_paper(fig, run.path("figures", "chatdance_ood_delta"))
fig.show()
compare.format_paired(tests)
"""),
("md", """
### Alignment and uniformity of each model (Wang & Isola; ChatDANCE section V)

Lower is better for both: l_align is the mean squared distance of a query to its code, l_uniform
the log mean Gaussian potential of all embeddings.
"""),
("code", """
from workbench import run_models

models = run_models.trained_models(run.dir, base_model=P.model)
models = models[models["chapter"].isin(["pre-trained", "02_llm_augmentation"])]
analysis_tasks = {t: tasks[t] for t in P.analysis_sets if t in tasks}
pair_emb = embeddings.pair_embeddings(dict(zip(models["label"], models["path"])), analysis_tasks, PE,
                                      run.path("analysis", "embeddings"), n=P.analysis_pairs)
au = geometry.au_table(pair_emb, seed=P.seed)
fig = geometry.au_figure(au, "mean", title="Alignment vs uniformity (mean over the analysis sets)")
export_for_paper(fig, run.path("figures", "chatdance_align_uniform"))
fig.show()
au[au["task"] == "mean"].set_index("model")[["align", "uniform"]].round(3)
"""),
("md", """
## 7. Throughput

Rewrites per second of the LLM as it generated them in this run (cache misses only), and the same
requests again from the warm cache.
"""),
("code", """
t0 = time.perf_counter()
again = pipeline.llm_candidates(llm, data, P, show_progress=False)
warm_seconds = time.perf_counter() - t0
assert again["queries"]["id"].tolist() == cands["queries"]["id"].tolist(), "the cache must give identical data"
gen = after["misses"] - before["misses"]
throughput = {
    "requests": after["requests"] - before["requests"],
    "generated (cache misses)": gen,
    "generation seconds": round(after["seconds_generating"] - before["seconds_generating"], 1),
    "rewrites / s (generating)": round(gen / max(after["seconds_generating"] - before["seconds_generating"], 1e-9), 3) if gen else None,
    "warm-cache seconds (all requests)": round(warm_seconds, 2),
    "rewrites / s (warm cache)": round((after["requests"] - before["requests"]) / max(warm_seconds, 1e-9), 1),
}
llm_stats = llm.stats()  # the ChatDANCE requests (section 8 asks the LLM more)
pd.Series(throughput)
"""),
("md", """
## 8. Order labels for OASIS

OASIS (methods.md section 3, papers/001) trains on graded labels instead of 0/1: for each query, K
other functions of the **same package** (same file first) are negatives, labelled with the cosine
of an annotator embedder (`oasis_annotator`, mpnet: not the model being trained); the gold pair is
1.0. Refinement then looks for negatives that may answer the query too: those above their
positive or above s*, where the two Gaussians of a mixture fitted to all scores cross
(threshold), and those whose AST is within a normalised tree edit distance of 0.25 of the gold's
(AST). The LLM judges each candidate with a yes/no question, and a confirmed one gets
`label * (1 + delta_s)`. The labels are cached under `data/oasis/`; `04_training` trains the
ablation on them.
"""),
("code", """
from workbench.oasis import pipeline as oasis_pipeline
from workbench.oasis import refine

order = oasis_pipeline.order_labels(pairs, P, llm)
print(f"{order.summary['pairs']} queries, {order.summary['negatives']} repository negatives "
      f"({order.summary['shortfall']} missing where a package is small); timings (s): {order.summary['timings']}")
fig = refine.gmm_figure(order.labels["none"], order.fit)
export_for_paper(fig, run.path("figures", "oasis_gmm"))
fig.show()
"""),
("md", """
With `oasis_llm_queries > 0` the first pairs get OASIS's own queries (step 1 of the paper): the LLM
writes a one-sentence docstring from the code plus a few of its callers and callees, found by
static analysis of the whole package (`workbench.oasis.docstrings`: every file parsed with `ast`,
nothing imported or run). The cpu preset keeps the mined docstrings (0); smoke writes 4, gpu 2,000.
"""),
("code", """
if "llm_queries" in order.summary:
    print("LLM docstrings:", order.summary["llm_queries"])
    written = order.train[order.train["query_by"] == "llm"]
    with pd.option_context("display.max_colwidth", 100):
        display(written[["query_mined", "query"]].rename(columns={"query": "query (LLM)"}).head(8))
"""),
("code", """
ast_stats = order.summary["ast"]
print(f"AST distances: {ast_stats['computed']} computed, {ast_stats['pruned']} pruned by size, "
      f"{ast_stats['too_large']} over {P.oasis_max_nodes} nodes; "
      f"{(ast_stats['seconds_per_computed_pair'] or 0) * 1000:.1f} ms per computed pair")
print("judge:", order.summary["judge"])
refined = order.refined_fractions()
display(refined)
# the judge's yes rate on gold pairs and on random functions of other packages: how much a "yes" means
controls = oasis_pipeline.judge_controls(order, pairs, llm, P.oasis_judge_controls, seed=P.seed)
print("judge controls:", controls)
"""),
("code", """
confirmed = order.candidates[order.candidates["judge"].fillna(False).astype(bool)]
query_of = dict(zip(order.train["id"], order.train["query"]))
with pd.option_context("display.max_colwidth", 120):
    display(pd.DataFrame({
        "query": confirmed["query_id"].map(query_of),
        "negative (start)": confirmed["code_id"].map(lambda i: order.codes[i][:120]),
        "sim": confirmed["sim_raw"].round(3), "ted": confirmed["ted"].round(3),
        "threshold": confirmed["threshold_candidate"], "ast": confirmed["ast_candidate"],
    }).head(8))
"""),
("code", """
run.log_metrics({
    "oasis_labels": {k: v for k, v in order.summary.items() if k != "from_cache"},
    "oasis_refined": refined.to_dict(orient="records"),
    "oasis_judge_controls": controls,
    "sizes": {name: len(df) for name, df in sets.items()},
    "filter_cosqa": {k: v for k, v in cosqa_check.items() if k not in ("scores", "labels")},
    "filter_heldout": {k: v for k, v in mined_check.items() if k not in ("scores", "labels", "kinds")},
    "technique_stats": technique_stats.to_dict(orient="records"),
    "rejections": rejections.reset_index().to_dict(orient="records"),
    "table_mean": mean.reset_index().to_dict(orient="records"),
    "table_std": std.reset_index().to_dict(orient="records"),
    "paired_tests": tests.to_dict(orient="records"),
    "alignment_uniformity": au.to_dict(orient="records"),
    "throughput": throughput,
    "llm": llm_stats,
    "llm_with_oasis": llm.stats(),
    "headline": {"filter CoSQA ROC-AUC": round(cosqa_check["roc_auc"], 3),
                 **{f"{name}: OOD avg MRR": round(float(row["OOD avg"]), 2) for name, row in mean.iterrows()}},
})
print("metrics written to", run.dir / "metrics.json")
"""),
])
