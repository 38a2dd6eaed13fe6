"""The OASIS ablation on our data (``shared/papers/001``, Table 5; ``docs/methods.md`` section 3):
the same labelled pairs trained with and without refinement, with each objective alone, and with each
refinement strategy alone, next to plain in-batch InfoNCE.

=================  ====================================================================
infonce            InfoNCE with in-batch negatives only (no repository negatives, no labels)
full               0.98 InfoNCE + 0.02 CoSENT, labels refined by both strategies
no_refinement      the same objective on the annotator's labels as they are
only_order         CoSENT alone (w1 = 0, w2 = 1), refined labels
only_contrastive   InfoNCE alone with the repository negatives as extra columns (w2 = 0)
ast_only           the full objective, only AST candidates refined
threshold_only     the full objective, only threshold candidates refined
=================  ====================================================================

Training and evaluation are cached per variant and seed (``experiment.train_and_evaluate``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import Params
from .objective import OrderLabelHook
from .pipeline import OrderLabels

__all__ = ["VARIANTS", "parse_variants", "train_variants"]


@dataclass(frozen=True)
class VariantSpec:
    label: str
    labels: str | None  # which refinement's labels (None: no repository negatives at all)
    weights: str  # "full" (w1, w2 from the parameters) | "order" (0, 1) | "contrastive" (1, 0)


VARIANTS: dict[str, VariantSpec] = {
    "infonce": VariantSpec("InfoNCE", None, "contrastive"),
    "full": VariantSpec("OASIS (full)", "both", "full"),
    "no_refinement": VariantSpec("w/o refinement", "none", "full"),
    "only_order": VariantSpec("only order objective", "both", "order"),
    "only_contrastive": VariantSpec("only contrastive", "both", "contrastive"),
    "ast_only": VariantSpec("AST candidates only", "ast", "full"),
    "threshold_only": VariantSpec("threshold candidates only", "threshold", "full"),
}


def parse_variants(spec: Any) -> list[str]:
    """The comma-separated ``oasis_variants`` parameter, checked against :data:`VARIANTS`."""
    from ..experiment import parse_variant_names

    return parse_variant_names(spec, VARIANTS, "oasis_variants")


def _weights(kind: str, params: Params) -> dict[str, float]:
    if kind == "full":
        return {"contrastive_weight": params.oasis_contrastive_weight, "order_weight": params.oasis_order_weight}
    if kind == "order":
        return {"contrastive_weight": 0.0, "order_weight": 1.0}
    return {"contrastive_weight": 1.0, "order_weight": 0.0}


def train_variants(built: OrderLabels, names: Sequence[str], seeds: Sequence[int], tasks: dict[str, Any],
                   params: Params, out_root: str | Path) -> tuple[pd.DataFrame, dict[str, dict[str, list[pd.DataFrame]]]]:
    """Train and score every variant x seed on ``built.train`` (the labelled pairs).

    Returns the summaries (one row per model and task, with ``seed``) and ``per_query[label][task]``
    (one table per seed), the shapes ``compare.seed_table`` and ``compare.paired_vs_baseline`` take.
    """
    from ..experiment import train_grid

    pairs = built.train[["id", "query", "code"]].reset_index(drop=True)
    hooks = {s: OrderLabelHook(pairs["id"], built.labels[s], built.codes) for s in {VARIANTS[n].labels for n in names} if s}
    jobs = []
    for seed in seeds:
        for name in names:
            spec = VARIANTS[name]
            kwargs = {"negatives": hooks[spec.labels]} if spec.labels else None
            overrides = {"epochs": params.oasis_epochs, "dynamics_mode": "none", **_weights(spec.weights, params)}
            jobs.append((spec.label, int(seed), pairs, Path(out_root) / f"{name}-seed{seed}", kwargs, overrides))
    return train_grid(jobs, tasks, params)
