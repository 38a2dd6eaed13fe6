"""Writes notebooks/05_representation_analysis.ipynb (run: python tools/make_05_representation_analysis.py)."""

from pathlib import Path

from nbbuild import build

build(str(Path(__file__).resolve().parent.parent / "notebooks" / "05_representation_analysis.ipynb"), [
("md", """
# 05 · Representation analysis: why does a model generalise?

Every model the earlier chapters trained into this run folder (`00` quickstart, `01` CoRNStack arms,
`03` data-map run, `04` Select-then-MixUp variants), looked at from the inside:

1. **Alignment and uniformity** (Wang & Isola 2020; ChatDANCE Fig. 6): how close each query sits to
   its code (`l_align`, lower is better) and how evenly all embeddings spread over the sphere
   (`l_uniform`, lower is better), per model and per test set.
2. **Projections** of two chosen models side by side: test pairs with a line from each query to its
   code (ChatDANCE Fig. 7), one query with its top-50 candidates (OASIS Fig. 3), and the code of every
   dataset (the distribution gap of Select then MixUp).
3. **Layer-wise retrieval** (the multi-exit idea, papers/003): MRR from every layer of the encoder.

Run a training chapter into the same run folder first (`workbench run --notebooks 04 --run-dir DIR`,
or `workbench run` for all); this notebook stops with that instruction when it finds no trained model.
Embeddings and projections are cached under `analysis/` in the run folder, so a re-run is fast.
"""),
("params", """
preset = "tour"     # tour (about 15 min for every chapter) | smoke | cpu | gpu | paper
overrides = {}      # e.g. {"compare_models": "zero-shot,select/all-seed42", "pairs_projection": "umap"}
run_dir = None
"""),
("code", """

import pandas as pd
from IPython.display import display

from workbench import (
    cards,
    case_studies,
    embeddings,
    experiment,
    geometry,
    layerwise,
    projection,
    run_models,
    runs,
)
from workbench.evaluation import ranking_table
from workbench.viz.datamap import export_for_paper

run = runs.open_run("05_representation_analysis", preset, overrides, run_dir)
P = run.params
PE = experiment.comparison_params(P)  # bf16_eval = select_bf16_eval: the precision every compared model is scored in
cache = run.path("analysis", "embeddings")
models = run_models.require_trained(run_models.trained_models(run.dir, P.model), run.dir, "05_representation_analysis")
print("run folder:", run.dir)
models[["name", "label", "chapter", "train_pairs", "OOD avg", "id_test"]]
"""),
("md", """
## 1. The test sets

The same suite as `04_training` (the in-distribution test, the domain-shift sets, the obfuscated
sets, the other languages and CoSQA dev); the analysis uses the sets named by `analysis_sets`.
"""),
("code", """
pairs, sets, tasks = experiment.comparison_suite(P)
analysis_tasks = {t: tasks[t] for t in P.analysis_sets if t in tasks}
pd.DataFrame({"queries": {t: len(x.queries) for t, x in analysis_tasks.items()},
              "pool": {t: len(x.corpus) for t, x in analysis_tasks.items()}})
"""),
("md", """
## 2. Alignment and uniformity of every model

`l_align` = mean squared distance between a query's and its code's embedding (alpha = 2), over
`analysis_pairs` test pairs per set; `l_uniform` = log of the mean Gaussian potential
exp(-2 ||x - y||^2) over every pair of distinct embeddings (queries and code together). The same
pairs for every model. In the scatter the lower left is better on both; the two models compared
below are drawn larger.
"""),
("code", """
chosen = models if P.analysis_models is None else models[models["name"].isin(P.analysis_models)]
pair_emb = embeddings.pair_embeddings(dict(zip(chosen["label"], chosen["path"])), analysis_tasks, PE, cache,
                                      n=P.analysis_pairs)
au = geometry.au_table(pair_emb, seed=P.seed)
au.pivot_table(index="model", columns="task", values=["align", "uniform"], sort=False).round(3)
"""),
("code", """
A, B = P.compare_models if P.compare_models else run_models.default_pair(models, P.seed)
row_a, row_b = run_models.pick(models, A), run_models.pick(models, B)
label_a, label_b = row_a["label"], row_b["label"]
fig = geometry.au_figure(au, "mean", highlight=(label_a, label_b),
                         title=f"Alignment vs uniformity, mean over {len(analysis_tasks)} test sets (lower is better)")
written = export_for_paper(fig, run.path("figures", "align_uniform"))
fig.show()
"""),
("md", """
Does a better geometry go with better out-of-distribution retrieval? The rank correlation across the
models that `04` evaluated (OOD average MRR against each loss; a negative value means lower loss,
higher MRR):
"""),
("code", """
geo_vs_mrr = geometry.correlation_with(au, models.set_index("label")["OOD avg"])
geo_vs_mrr
"""),
("md", """
## 3. Two models side by side

`compare_models` chooses them (default: the all-data baseline against *Select then MixUp*'s
ambiguous+hard + MixUp when `04` trained both). The projections use `projection_set`.

**(a) Test pairs**: each query (blue) joined to its code (red) by a green line; short lines mean
good alignment.
"""),
("code", """
compared = {label_a: row_a["path"], label_b: row_b["path"]}
ptask = tasks[P.projection_set]
qids, q_text, c_text = embeddings.task_pairs(ptask, P.analysis_pairs, P.seed)
proj_cache = run.path("analysis", "projections")
task_emb = embeddings.by_model(compared, lambda enc, c: embeddings.embed_task(
    enc, ptask, c, bf16=PE.bf16_eval, batch_size=P.eval_batch_size, show_progress=False), PE, cache)
pair_views = {}
for label, e in task_emb.items():
    rows = [e.qids.index(q) for q in qids]
    frame = projection.pairs_frame(e.queries[rows], e.corpus[e.gold_rows()[rows]], q_text, c_text,
                                   method=P.pairs_projection, seed=P.seed, threads=1, cache_dir=proj_cache)
    pair_views[f"{label}<br>mean pair distance {frame['distance'].mean():.3f}"] = projection.pairs_figure(frame)
fig = projection.side_by_side(pair_views, title=f"{len(qids)} {P.projection_set} pairs ({P.pairs_projection})")
export_for_paper(fig, run.path("figures", "pairs_projection"))
fig.show()
"""),
("md", """
**(b) One query and its top candidates** (MDS on cosine distances by default). The query is the one
on which the two models disagree most while both keep its gold code within the top
`neighbours_k`; darker candidates are more similar to the query, the gold code is the square.
"""),
("code", """
ranks = {label: ranking_table(ptask, e.queries, e.corpus, e.qids, e.cids, k=P.k) for label, e in task_emb.items()}
qid = case_studies.most_different_query(ranks[label_a], ranks[label_b], max_rank=P.neighbours_k)
views = {}
for label, e in task_emb.items():
    qi = e.qids.index(qid)
    frame = projection.neighbourhood_frame(e.queries[qi], e.corpus, [ptask.corpus[c] for c in e.cids], int(e.gold_rows()[qi]),
                                           ptask.queries[qid], k=P.neighbours_k, method=P.neighbours_projection, seed=P.seed,
                                           cache_dir=proj_cache)
    gold_rank = int(frame.loc[frame["role"] == "gold", "rank"].iloc[0])
    views[f"{label}: gold at rank {gold_rank}"] = projection.neighbourhood_figure(frame, cmin=0.0, cmax=1.0)
print("query:", ptask.queries[qid])
fig = projection.side_by_side(views, title=f"top {P.neighbours_k} candidates of one {P.projection_set} query "
                              f"({P.neighbours_projection})")
export_for_paper(fig, run.path("figures", "neighbourhood"))
fig.show()
"""),
("md", """
**(c) The datasets' code clouds** (`gap_samples` functions per set; UMAP by default): how each model
separates the training code from every out-of-distribution set. Hover shows the query.
"""),
("code", """
def clouds(enc, c):
    return cards.embed_samples(enc, sets, P.gap_samples, P.seed, bf16=PE.bf16_eval, show_progress=False, cache_dir=c)

cloud_emb = embeddings.by_model(compared, clouds, PE, cache)
samples = cards.sample_sets(sets, P.gap_samples, P.seed)  # the functions embed_samples embedded
views = {}
for label, emb in cloud_emb.items():
    frame = cards.gap_projection(emb, method=P.clouds_projection, n_per_set=P.gap_samples, seed=P.seed, threads=1,
                                 cache_dir=proj_cache)
    frame["text"] = [samples[s]["query"].iloc[i] for s, i in zip(frame["set"], frame["index"])]
    views[label] = cards.gap_figure(frame)
fig = projection.side_by_side(views, title=f"code of every set ({P.clouds_projection})", height=600)
export_for_paper(fig, run.path("figures", "code_clouds"))
fig.show()
"""),
("md", """
## 4. Layer-wise retrieval

MRR from the pooled output of every layer (0 = token embeddings) of the pre-trained model and the
two compared models, on `layerwise_sets`. The last layer is each model's ordinary score.
"""),
("code", """
lw_models = {"zero-shot": P.model, **compared}
lw_tasks = {t: tasks[t] for t in P.layerwise_sets if t in tasks}
lw = embeddings.by_model(lw_models, lambda enc, c: layerwise.layerwise_retrieval(
    enc, lw_tasks, k=P.k, batch_size=P.eval_batch_size, bf16=PE.bf16_eval, cache_dir=c, show_progress=False), PE, cache)
layers = pd.concat([t.assign(model=m) for m, t in lw.items()], ignore_index=True)
display(layers.pivot_table(index=["model", "layer"], columns="task", values="MRR", sort=False))
fig = layerwise.layerwise_figure(layers)
export_for_paper(fig, run.path("figures", "layerwise"))
fig.show()
"""),
("code", """
first_usable = layerwise.first_layer_reaching(layers, fraction=0.9)
first_usable
"""),
("code", """
run.log_metrics({
    "models": len(chosen),
    "compared": [label_a, label_b],
    "align_uniform": au.to_dict(orient="records"),
    "geometry_vs_ood_mrr": geo_vs_mrr.reset_index().to_dict(orient="records"),
    "neighbourhood_query": ptask.queries[qid],
    "layerwise": layers.to_dict(orient="records"),
    "headline": {
        f"{label_a}: l_align / l_uniform (mean)": [round(float(x), 3) for x in au[(au.model == label_a) & (au.task == "mean")][["align", "uniform"]].iloc[0]],
        f"{label_b}: l_align / l_uniform (mean)": [round(float(x), 3) for x in au[(au.model == label_b) & (au.task == "mean")][["align", "uniform"]].iloc[0]],
    },
})
print("metrics written to", run.dir / "metrics.json")
"""),
])
