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
encoding pass per checkpoint). Section 4 says what the cheap mode costs in fidelity.
"""),
("params", """
preset = "cpu"      # smoke | cpu | gpu | paper
overrides = {}      # e.g. {"datamap_pairs": 4000, "datamap_epochs": 4, "ambiguous_q": 0.75}
run_dir = None
"""),
("code", """
import plotly.express as px
from IPython.display import display

from workbench import cartography, runs, selection
from workbench.corpus import build_corpus
from workbench.viz.datamap import datamap_figure, export_for_paper
from workbench.viz.explorer import DataMapExplorer, load_subset

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

Hover a point for its query and code; box- or lasso-select points to list them with highlighted
code; move the sliders to change the region thresholds (the counts update); export the selection,
or a whole region, as a training subset that `04_training` can train on (`subset_file=`). Run
headlessly (papermill), it shows the static figure instead.
"""),
("code", """
explorer = DataMapExplorer(dmap, sample, out_dir=run.path("subsets"), **rule, color="category")
explorer
"""),
("code", """
subset_path = explorer.export("ambiguous_hard", what="ambiguous+hard", overwrite=True)
print("exported", subset_path, f"({len(load_subset(subset_path))} pairs)")
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
    "headline": {
        "data map: ambiguous + hard pairs": int(dmap["category"].isin(["ambiguous", "hard-to-learn"]).sum()),
        "in_batch vs fixed_pool: Spearman confidence": round(modes.spearman_confidence, 3),
        "in_batch vs fixed_pool: category agreement": round(modes.agreement, 3),
    },
})
print("metrics written to", run.dir / "metrics.json")
"""),
])
