"""Writes notebooks/06_case_studies.ipynb (run: python tools/make_06_case_studies.py)."""

from pathlib import Path

from nbbuild import build

build(str(Path(__file__).resolve().parent.parent / "notebooks" / "06_case_studies.ipynb"), [
("md", """
# 06 · Case studies: where one model wins and the other loses

Two models trained earlier in this run folder, compared query by query (OASIS section 5 and
appendix G):

1. both models' gold ranks on every test set, and the **win / tie / lose** counts (OASIS Table 11);
2. the **hard subset**: queries whose gold code neither model, nor the pre-trained one, ranks first,
   and each model's MRR on it (OASIS Table 5);
3. a **case viewer**: one query, both models' top candidates side by side, code highlighted, the
   gold marked, with the pair's data-map region when it is a training pair;
4. examples of each **data-map region** (easy / ambiguous / hard-to-learn), with notes to teach from.

`compare_models` chooses the two models (default: the all-data baseline of `04` against *Select
then MixUp*'s ambiguous+hard + MixUp). Run a training chapter into the same run folder first.
"""),
("params", """
preset = "tour"     # tour (about 15 min for every chapter) | smoke | cpu | gpu | paper
overrides = {}      # e.g. {"compare_models": "zero-shot,select/ambiguous_hard-mixup-seed42", "case_k": 10}
run_dir = None
"""),
("code", """

from IPython.display import HTML, display

from workbench import case_studies, embeddings, experiment, run_models, runs, selection
from workbench.tasks import task_from_pairs

run = runs.open_run("06_case_studies", preset, overrides, run_dir)
P = run.params
PE = experiment.comparison_params(P)  # bf16_eval = select_bf16_eval: the precision every compared model is scored in
models = run_models.require_trained(run_models.trained_models(run.dir, P.model), run.dir, "06_case_studies")
A, B = P.compare_models if P.compare_models else run_models.default_pair(models, P.seed)
row_a, row_b = run_models.pick(models, A), run_models.pick(models, B)
label_a, label_b = row_a["label"], row_b["label"]
print(f"run folder: {run.dir}\\nA = {label_a} ({row_a['path']})\\nB = {label_b} ({row_b['path']})")
"""),
("md", """
## 1. Both models on every test set

The suite of `04_training`, plus `datamap_train` when the run holds the data map of `03`: the
data-map run's training pairs, each query searching all their code, so every case there has a
data-map region. The pre-trained model is ranked too, for the hard subset. The MRR here equals
what `04` reported for the same models (same sets, same precision).
"""),
("code", """
pairs, sets, tasks = experiment.comparison_suite(P)
saved = selection.saved_datamap(pairs, P, run.dir / "models" / "datamap")
categories = {}
if saved is not None:
    sample, dmap = saved
    tasks["datamap_train"] = task_from_pairs(sample, "datamap_train")
    categories = dict(zip(dmap["pair_id"].astype(str), dmap["category"].astype(str)))
compared = {label_a: row_a["path"], label_b: row_b["path"]}
ranked = {**compared, "zero-shot": P.model}
task_emb = embeddings.by_model(ranked, lambda enc, c: {t: embeddings.embed_task(
    enc, task, c, bf16=PE.bf16_eval, batch_size=P.eval_batch_size, show_progress=False) for t, task in tasks.items()},
    PE, run.path("analysis", "embeddings"))
per_query = case_studies.rankings(task_emb, k=P.k)
case_studies.mrr_table(per_query)
"""),
("md", """
## 2. Win / tie / lose (OASIS Table 11)

For each query, A **wins** when it ranks the gold code higher than B, **ties** when both give it the
same rank, **loses** otherwise (a gold beyond rank `k` counts as worse than any rank).
"""),
("code", """
wtl = case_studies.win_tie_lose_table(per_query, label_a, label_b)
wtl.assign(**{"win - lose": wtl["win"] - wtl["lose"]})
"""),
("md", """
## 3. The hard subset (OASIS Table 5)

Queries whose gold code none of the compared models (A, B and the pre-trained model) ranks first,
and the MRR of each model on them. On this subset MRR is below 50 by construction.
"""),
("code", """
hard_models = list(dict.fromkeys([label_a, label_b, "zero-shot"]))
hard = case_studies.hard_subset_table(per_query, hard_models)
hard
"""),
("md", """
## 4. The case viewer

Pick a test set and a query, or a random win / tie / loss of A. Each column is one model's top
`case_k` candidates; the gold code has a green frame (appended with its rank when it is not in the
top). Run headlessly, the notebook shows one random loss and one random win of A.
"""),
("code", """
cases = case_studies.case_table(per_query, label_a, label_b)
viewer = case_studies.CaseViewer({m: task_emb[m] for m in compared}, cases, [label_a, label_b], k=P.case_k,
                                 categories=categories, seed=P.seed)
viewer
"""),
("code", """
display(viewer.show(outcome="win"))
"""),
("md", """
## 5. The data-map regions, by example

A few typical pairs of each region of the data map (closest to the region's median confidence and
variability), then a profile of each region: its size, how long its queries and code are, each
model's MRR when the region's queries search all the data-map pairs' code, and A's wins and
losses against B there.
"""),
("code", """
if saved is None:
    print("this run folder has no data map: run 03_data_maps into it to see the regions")
else:
    examples = case_studies.region_examples(dmap, sample, n=3)
    display(HTML(case_studies.examples_html(examples)))
"""),
("md", """
**Reading the examples.** *Easy-to-learn* pairs are those the model ranked right from the first
checkpoint with little doubt (high confidence, low variability): typically the docstring repeats
words of the function name or body, so lexical overlap alone finds the code. *Ambiguous* pairs swing
between right and wrong across checkpoints (high variability): their query is often generic
("Return the result", "Helper for ...") or shared by sibling functions, so several codes fit it.
*Hard-to-learn* pairs stay wrong (low confidence): the docstring describes intent in words the code
does not use, or is a one-line summary of a long function, and some are simply mislabelled. *Select
then MixUp* trains on the last two because they carry the information the easy pairs lack; a
teacher can ask students to sort new pairs into the three regions by hand before showing the map.
"""),
("code", """
profile = None
if saved is not None:
    profile = case_studies.region_profile(dmap, sample, {m: per_query[m]["datamap_train"] for m in ranked}, label_a, label_b)
profile
"""),
("md", """
**Reading the profile.** If A and B differ mainly on the ambiguous and hard regions, the difference
comes from the pairs a data map singles out; if the easy region also moves, it is a global change
of the representation (compare the alignment / uniformity of `05`).
"""),
("code", """
run.log_metrics({
    "compared": [label_a, label_b],
    "mrr": case_studies.mrr_table(per_query).reset_index(names="model").to_dict(orient="records"),
    "win_tie_lose": wtl.reset_index().to_dict(orient="records"),
    "hard_subset": hard.reset_index().to_dict(orient="records"),
    "region_profile": None if profile is None else profile.reset_index().to_dict(orient="records"),
    "headline": {f"{label_a} vs {label_b}: win/tie/lose (all sets)": [int(wtl.loc["all", k]) for k in ("win", "tie", "lose")]},
})
print("metrics written to", run.dir / "metrics.json")
"""),
])
