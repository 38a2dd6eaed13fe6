"""Writes notebooks/00_quickstart.ipynb (run: python tools/make_00_quickstart.py)."""

from pathlib import Path

from nbbuild import build

build(str(Path(__file__).resolve().parent.parent / "notebooks" / "00_quickstart.ipynb"), [
("md", """
# 00 · Quickstart: mine code, search it, fine-tune, and draw a first data map

This chapter walks the whole loop once, small enough for a 2-core laptop:

1. **mine** (query, code) pairs from real Python packages with `ast`, CodeSearchNet-style;
2. **evaluate** a pre-trained bi-encoder zero-shot on the in-distribution test split, an
   out-of-distribution set (the standard library) and CoSQA's real web queries;
3. **fine-tune** it with InfoNCE while recording *training dynamics* (the probability the model
   gives each pair's gold code, at several checkpoints);
4. **evaluate** again, and draw the first **data map** (dataset cartography, used by
   *Select then MixUp*): x = variability, y = confidence of each training pair.

Run it top to bottom in JupyterLab, or headlessly: `workbench run --preset smoke --notebooks 00`.
"""),
("params", """
preset = "tour"     # tour (about 15 min for every chapter) | smoke | cpu | gpu | paper
overrides = {}      # e.g. {"train_pairs": 500, "epochs": 1}; unknown names are refused
run_dir = None      # set by `workbench run`; by hand: papermill_runs/interactive-<preset>/
"""),
("code", """
import plotly.express as px
from IPython.display import display

from workbench import cartography, compare, corpus, experiment, runs, viz
from workbench.models import BiEncoder
from workbench.runtime import pick_device
from workbench.training import train

run = runs.open_run("00_quickstart", preset, overrides, run_dir)
P = run.params
print("run folder:", run.dir)
P
"""),
("md", """
## 1. A corpus of real code

Sources are pinned package versions (read from their wheels, never imported or executed) and the
running Python's standard library. Files are split into train / valid / test by a hash of their
path; the standard library is kept apart as an out-of-distribution set, with every query seen in
training removed from it. The build is cached under `data/corpus/`: a second run loads it in seconds.
"""),
("code", """
pairs = corpus.build_corpus(P.corpus)
corpus.corpus_stats(pairs)
"""),
("code", """
pairs.sample(3, random_state=0)[["query", "func_name", "source", "path", "split"]]
"""),
("md", """
## 2. Zero-shot retrieval

Each test set is a `RetrievalTask` (queries, a pool of code, relevance judgements). Scores are
cosine similarities; MRR is computed over the whole pool and counts 0 beyond rank 1000, as
CodeXGLUE does, in percent, with a bootstrap 95% interval over queries.
"""),
("code", """
tasks = experiment.standard_tasks(pairs, P)
device = pick_device(P.device)
encoder = BiEncoder.load(P.model, max_query_len=P.max_query_len, max_code_len=P.max_code_len, device=device)
zero_shot, zero_shot_queries = experiment.evaluate_suite(encoder, tasks, P, label=f"{P.model} zero-shot")
zero_shot
"""),
("md", """
## 3. Fine-tune with InfoNCE and record training dynamics

Every other pair in a batch is a negative (in-batch negatives). In `in_batch` mode the dynamics
come for free from the logits of each step; `fixed_pool` scores every pair against a fixed pool of
codes at several checkpoints per epoch (comparable across checkpoints, costs extra passes).
"""),
("code", """
train_pairs = experiment.training_sample(pairs, P.train_pairs, P.seed)
result = train(encoder, train_pairs, experiment.train_config(P), out_dir=run.path("models", "quickstart"))
# the recipe's last step: WiSE-FT with the pre-trained weights at wise_alpha (1.0 = the fine-tune itself)
encoder = experiment.finish_recipe(encoder, P, run.path("models", "quickstart"))
print(f"trained on {len(train_pairs)} pairs in {result.seconds:.0f} s -> {result.model_dir} (WiSE-FT alpha {P.wise_alpha:g})")
px.line(result.history, x="step", y="loss", title="training loss (InfoNCE)")
"""),
("code", """
fine_tuned, fine_tuned_queries = experiment.evaluate_suite(encoder, tasks, P, label=f"{P.model} fine-tuned")
display(experiment.compare(zero_shot, fine_tuned))
# paired over the same queries: is the change more than the queries' noise? (MDE: what this size can detect)
tests = compare.paired_vs_baseline({"zero-shot": {t: [r.per_query] for t, r in zero_shot_queries.items()},
                                    "fine-tuned": {t: [r.per_query] for t, r in fine_tuned_queries.items()}},
                                   "zero-shot", [t for t in tasks if t != "id_test"], n_boot=P.n_boot, seed=P.seed)
compare.format_paired(tests)
"""),
("md", """
## 4. A first data map

Per training pair: **confidence** = mean probability of the gold code over checkpoints,
**variability** = its standard deviation, **correctness** = fraction of checkpoints at which the
gold code ranked first (Swayamdipta et al., 2020). *Select then MixUp* trains on the ambiguous
(high variability) and hard-to-learn (low confidence) regions. With a short run the map is coarse;
chapter 03 explores it interactively.
"""),
("code", """
dmap = cartography.categorize(cartography.data_map(result.dynamics, mode="in_batch" if P.dynamics_mode == "both" else None))
dmap = dmap.merge(train_pairs[["id", "query", "code"]], left_on="pair_id", right_on="id", how="left")
fig = viz.datamap_figure(dmap, color="correctness")
fig.show()
dmap["category"].value_counts()
"""),
("code", """
before = zero_shot.set_index("task")["MRR"]
after = fine_tuned.set_index("task")["MRR"]
run.log_metrics({
    "corpus": corpus.corpus_stats(pairs).reset_index().to_dict(orient="records"),
    "zero_shot": zero_shot.to_dict(orient="records"),
    "paired_tests": tests.to_dict(orient="records"),
    "fine_tuned": fine_tuned.to_dict(orient="records"),
    "train_seconds": round(result.seconds, 1),
    "train_pairs": len(train_pairs),
    "categories": dmap["category"].value_counts().to_dict(),
    "headline": {f"{task} MRR (zero-shot -> fine-tuned)": f"{before[task]:.2f} -> {after[task]:.2f}" for task in before.index},
})
print("metrics written to", run.dir / "metrics.json")
"""),
])
