"""Writes notebooks/03_data_maps.ipynb (run: python tools/make_03_data_maps.py)."""

from pathlib import Path

from nbbuild import build

build(str(Path(__file__).resolve().parent.parent / "notebooks" / "03_data_maps.ipynb"), [
("md", """
# 03 · Data maps: which pairs does the model find easy, ambiguous or hard?

Steps 1 to 3 of **Select then MixUp** (methods.md section 1), after *Dataset Cartography*
(Swayamdipta et al. 2020): fine-tune the pre-trained bi-encoder on all training pairs while
recording, for every (query, code) pair and at several checkpoints, the probability the model gives
its gold code. Per pair:

- **confidence** = mean of those probabilities, **variability** = their standard deviation;
- **correctness** = fraction of checkpoints where the gold code ranks first;
- **forgetfulness** = how often a pair goes from ranked first to not (Toneva et al. 2019).

The probabilities are recorded two ways in the *same* run: `in_batch` reads them off the InfoNCE
logits of the training step (free, but the candidates are the batch's 31 other codes and dropout is
on); `fixed_pool` scores every pair against one fixed pool of training codes in eval mode (costs an
encoding pass per checkpoint; `datamap_pool="file_neighbours"` adds every other function of the pairs'
files to that pool: hard negatives that flag mislabelled pairs better, docs/outcomes.md). Section 4 says what the cheap mode costs in fidelity; section 6
checks the instrument itself: does low confidence find pairs we corrupted on purpose?
"""),
("params", """
preset = "tour"     # tour (about 15 min for every chapter) | smoke | cpu | gpu | paper
overrides = {}      # e.g. {"datamap_pairs": 4000, "datamap_epochs": 4, "ambiguous_q": 0.75}
run_dir = None
"""),
("code", """
import plotly.express as px
from IPython.display import display

from workbench import cartography, datamap_validity, experiment, runs, selection
from workbench.corpus import build_corpus
from workbench.subsets import load_subset
from workbench.viz.datamap import datamap_figure, export_for_paper
from workbench.viz.explorer import DataMapExplorer

run = runs.open_run("03_data_maps", preset, overrides, run_dir)
P = run.params
rule = dict(easy_q=P.easy_q, hard_q=P.hard_q, ambiguous_q=P.ambiguous_q)
print("run folder:", run.dir)
"""),
("md", """
## 1. Train on all pairs and record the dynamics in both modes
"""),
("code", """
pairs = build_corpus(P.corpus)
sample, result = selection.datamap_training(pairs, P, run.path("models", "datamap"))
print(f"{len(sample)} pairs, {P.datamap_epochs} epochs, {result.steps} steps in {result.seconds:.0f} s; "
      f"{len(result.dynamics)} dynamics rows ({result.dynamics['mode'].value_counts().to_dict()})")
px.line(result.history, x="step", y="loss", title="training loss (InfoNCE)")
"""),
("md", """
## 2. The data map

x = variability, y = confidence, colour = correctness (Figure 1 of Dataset Cartography, Figure 3 of
Select then MixUp). The figures are written to the run folder as PNG, SVG, PDF and HTML.
"""),
("code", """
maps = {mode: cartography.categorize(cartography.data_map(result.dynamics, mode=mode), **rule)
        for mode in ("in_batch", "fixed_pool")}
dmap = maps[P.datamap_mode]
print(f"data map from the {P.datamap_mode} dynamics:", cartography.category_counts(dmap).to_dict())
dmap.describe().loc[["mean", "std", "min", "50%", "max"]].round(3)
"""),
("code", """
fig = datamap_figure(dmap, color="correctness", pairs=sample, title=f"Data map ({P.datamap_mode}), colour = correctness")
fig_cat = datamap_figure(dmap, color="category", pairs=sample, title=f"Data map ({P.datamap_mode}), regions")
written = export_for_paper(fig, run.path("figures", "datamap_correctness"), ("png", "svg", "pdf", "html"))
written += export_for_paper(fig_cat, run.path("figures", "datamap_categories"), ("png", "svg", "pdf", "html"))
print("written:", ", ".join(p.name for p in written))
fig.show()
fig_cat.show()
"""),
("md", """
## 3. The regions, and how much the rule matters

The default rule is by quantiles (`cartography.categorize`): *ambiguous* = the top third by
variability; of the rest, *easy-to-learn* above the median confidence, *hard-to-learn* at or below.
The thresholds are parameters (`easy_q`, `hard_q`, `ambiguous_q`), and an absolute-threshold rule
exists too. Each row below is one rule setting applied to the same map:
"""),
("code", """
cartography.rule_counts(dmap, {
    "quantile (this run)": rule,
    "quantile, wider middle": {"easy_q": 0.75, "hard_q": 0.25, "ambiguous_q": P.ambiguous_q},
    "quantile, top quarter ambiguous": {**rule, "ambiguous_q": 0.75},
    "absolute thresholds": {"rule": "threshold"},
})
"""),
("md", """
A few pairs of each region (the hard ones are often noisy docstrings, or functions whose docstring
describes a different level of abstraction than the code):
"""),
("code", """
for cat in cartography.CATEGORIES:
    rows = cartography.subset_pairs(sample, dmap, [cat]).sample(n=min(3, int((dmap["category"] == cat).sum())), random_state=P.seed)
    print(f"--- {cat}")
    display(rows[["query", "confidence", "variability", "correctness"]].assign(code=rows["code"].str.slice(0, 120)))
"""),
("md", """
## 4. In-batch or fixed pool: what does the cheap mode cost?

Same pairs, same run: rank correlation of confidence and variability between the two modes, and how
often they put a pair in the same region (with Cohen's kappa, and the confusion table: rows
in_batch, columns fixed_pool).
"""),
("code", """
modes = cartography.compare_modes(maps["in_batch"], maps["fixed_pool"])
display(modes.summary())
modes.confusion
"""),
("code", """
px.scatter(modes.joined, x="confidence_in_batch", y="confidence_fixed_pool", opacity=0.4,
           title="confidence per pair: in-batch vs fixed-pool dynamics", width=600, height=500)
"""),
("md", """
## 5. The explorer

Linked views of the same pairs: the data map, a projection of their code embeddings under the
data-map model (UMAP; `explorer_projection`), a bar chart of any column and a table. A box or lasso
on either scatter, a bar clicked or rows chosen in the table select the same pairs everywhere (the
others stay, dimmed). Search by substring or by meaning (the text encoded by the data-map model),
filter any column, colour by any column; the checkpoint slider (or play) moves each pair to its
confidence and variability so far, so one sees pairs being learnt and forgotten. A row of the table
opens the inspector: the pair, its curve over checkpoints, and what the model retrieves for its
query, where a retrieved code can be marked as a false negative. Move the sliders to change the
region thresholds; export the selection, the filtered view or a region as a training subset that
`04_training` can train on (`subset_file=`). From code: `explorer.select(...)`, `explorer.filter(...)`,
`explorer.search(...)`, `explorer.selection`. Run headlessly (papermill), it shows the static map.
"""),
("code", """
explorer = DataMapExplorer(dmap, sample, out_dir=run.path("subsets"), **rule, color="category",
                           dynamics=result.dynamics, dynamics_mode=P.datamap_mode,
                           encoder=experiment.load_model(result.model_dir, P), projection=P.explorer_projection)
explorer
"""),
("code", """
subset_path = explorer.export("ambiguous_hard", what="ambiguous+hard", overwrite=True)
print("exported", subset_path, f"({len(load_subset(subset_path))} pairs)")
"""),
("md", """
## 6. Is the map trustworthy? Corrupted pairs

Dataset Cartography checks its own map (Swayamdipta et al. 2020, section 5): give a known share of
the training examples a wrong label, record the dynamics again, and see whether low confidence
finds them. Here `validity_fraction` of the data-map run's pairs get a wrong code and the data-map
run is trained again on them (same pairs, epochs and recording; `workbench.datamap_validity`):

- *random swaps*: the query with the code of another, random training pair;
- *near misses*: the query with another function of the same file, else of the same package, else
  a random one (`donor_file` / `donor_package` / `donor_random` count where the codes came from).

Per kind and dynamics mode: the **ROC-AUC** of "low confidence flags a corrupted pair" (1: every
corrupted pair below every clean one; 0.5: chance), the **precision at the corruption rate** (of the
least confident pairs, as many as were corrupted, the share that are), the median confidence of
the corrupted and the clean pairs, and the **saturation**: the share of all pairs above confidence
0.9 (a saturated map has little room left to tell easy from ambiguous pairs).
"""),
("code", """
validity_dir = run.path("validity")  # outside models/: 05 and 06 analyse the chapters' models, not these
validity_kinds = list(P.validity_kinds)
validity_modes = list(P.validity_modes)
validity = None
if P.datamap_validity:
    validity = datamap_validity.validity_check(pairs, P, validity_dir, kinds=validity_kinds,
                                               fraction=P.validity_fraction, modes=validity_modes)
    display(validity.round(3))
else:
    print("skipped: datamap_validity=False")
"""),
("md", """
Where the corrupted pairs land: the data map of each corrupted run (corrupted pairs marked), the
confidence of corrupted and clean pairs, and the regions of that map with the share of corrupted
pairs in each (Dataset Cartography finds its mislabelled examples among the hard-to-learn ones).
"""),
("code", """
vmode = P.datamap_mode if P.datamap_mode in validity_modes else validity_modes[0]
validity_profiles = {}
for kind in (validity_kinds if validity is not None else []):
    vrun = datamap_validity.saved_run(pairs, P, validity_dir, kind, P.validity_fraction)
    vmap = cartography.categorize(vrun.data_map(vmode), **rule)
    fig_v = datamap_validity.corruption_figure(
        vmap, vrun.corrupted, vrun.pairs, title=f"Data map with {P.validity_fraction:.0%} {kind.replace('_', ' ')}s ({vmode})")
    export_for_paper(fig_v, run.path("figures", f"validity_{kind}"), ("png", "html"))
    fig_v.show()
    px.histogram(datamap_validity.marked_map(vmap, vrun.corrupted), x="confidence", color="corruption", nbins=40,
                 barmode="overlay", histnorm="probability", opacity=0.6, width=700, height=350,
                 title=f"confidence of clean and corrupted pairs ({kind}, {vmode})").show()
    validity_profiles[kind] = datamap_validity.region_profile(vmap, vrun.pairs, vrun.corrupted)
    display(validity_profiles[kind].round(3))
"""),
("md", """
And this chapter's own map (no corruption): how saturated it is, and what sets its regions apart
(confidence and variability ranges, query and code length in characters).
"""),
("code", """
saturation = {mode: datamap_validity.saturation(m) for mode, m in maps.items()}
print("share of pairs with confidence > 0.9:", {mode: round(v, 3) for mode, v in saturation.items()})
region_profile = datamap_validity.region_profile(dmap, sample)
region_profile.round(3)
"""),
("code", """
run.log_metrics({
    "datamap_pairs": len(sample),
    "datamap_train_seconds": round(result.seconds, 1),
    "category_counts": {mode: cartography.category_counts(m).to_dict() for mode, m in maps.items()},
    "mode_comparison": {
        "spearman_confidence": modes.spearman_confidence, "spearman_variability": modes.spearman_variability,
        "agreement": modes.agreement, "kappa": modes.kappa, "pairs": modes.n_pairs,
    },
    "saturation": saturation,
    "region_profile": region_profile.reset_index().to_dict(orient="records"),
    "validity": None if validity is None else validity.to_dict(orient="records"),
    "headline": {
        "data map: ambiguous + hard pairs": int(dmap["category"].isin(["ambiguous", "hard-to-learn"]).sum()),
        "in_batch vs fixed_pool: Spearman confidence": round(modes.spearman_confidence, 3),
        "in_batch vs fixed_pool: category agreement": round(modes.agreement, 3),
        f"data map: share with confidence > 0.9 ({P.datamap_mode})": round(saturation[P.datamap_mode], 3),
        **({} if validity is None else {
            f"low confidence flags corrupted pairs ({r['kind']}), ROC-AUC ({r['mode']})": round(r["auc"], 3)
            for r in validity.to_dict(orient="records") if r["mode"] == vmode}),
    },
})
print("metrics written to", run.dir / "metrics.json")
"""),
])
