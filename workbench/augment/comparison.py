"""The retraining comparison of the augmentation chapter: ChatDANCE Tables VI and VII on our data.

Every variant trains the same pre-trained bi-encoder (InfoNCE, as in 04) on the original training
pairs D plus one kind of augmented pairs, and is scored on the in-distribution test and every OOD
set of the comparison suite (``workbench.experiment.comparison_tasks``):

=============  ==========================================================================
baseline       D alone
qra            D + QRA queries (random delete / copy / swap of query words)
natgen         D + NatGen-style semantics-preserving code transforms
llm_query      D + LLM query rewrites kept by the cross-encoder (score >= theta_q)
llm_code       D + LLM code rewrites kept by the cross-encoder (score >= theta_c)
llm_both       ChatDANCE: Algorithm 1 over both kinds of kept rewrites
llm_nofilter   Algorithm 1 without the filter (every rewrite that passed validation)
=============  ==========================================================================

Training and evaluation are cached per variant and seed under ``models/augment/<slug>/`` of the
run folder (``experiment.train_and_evaluate``), so an interrupted notebook resumes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import Params
from ..errors import ParameterError

#: variant name -> the label of tables and figures
LABELS: dict[str, str] = {
    "baseline": "baseline",
    "qra": "QRA",
    "natgen": "NatGen",
    "llm_query": "LLM query",
    "llm_code": "LLM code",
    "llm_both": "ChatDANCE (LLM both)",
    "llm_nofilter": "LLM both, no filter",
}


@dataclass(frozen=True)
class AugVariant:
    """One trained model of the comparison: a training set and a seed."""

    name: str
    seed: int

    @property
    def label(self) -> str:
        return LABELS.get(self.name, self.name)

    @property
    def slug(self) -> str:
        return f"{self.name}-seed{self.seed}"


def parse_variants(spec: Any) -> list[str]:
    """The comma-separated ``aug_variants`` parameter, checked against :data:`LABELS`."""
    from ..experiment import parse_variant_names

    return parse_variant_names(spec, LABELS, "aug_variants")


def grid(names: Sequence[str], seeds: Sequence[int]) -> list[AugVariant]:
    """Every variant x seed, grouped by seed (a partly finished run has whole seeds)."""
    return [AugVariant(n, int(s)) for s in seeds for n in names]


def with_augmented(original: pd.DataFrame, extra: pd.DataFrame) -> pd.DataFrame:
    """D plus augmented rows (``id``, ``query``, ``code`` kept; ids must not collide)."""
    cols = ["id", "query", "code"]
    missing = [c for c in cols if c not in extra.columns]
    if missing:
        raise ParameterError(f"augmented pairs: missing column(s) {missing}; have {list(extra.columns)}")
    out = pd.concat([original[cols], extra[cols]], ignore_index=True)
    dup = out["id"][out["id"].duplicated()]
    if len(dup):
        raise ParameterError(f"augmented pairs: id {dup.iloc[0]!r} repeats an id of D or of another augmented row")
    return out


def train_variants(
    sets: dict[str, pd.DataFrame],
    variants: Sequence[AugVariant],
    tasks: dict[str, Any],
    params: Params,
    out_root: str | Path,
) -> tuple[pd.DataFrame, dict[str, dict[str, list[pd.DataFrame]]]]:
    """Train and score every variant (cached per slug under ``out_root``).

    Returns the summaries (one row per model and task, with ``seed``) and the per-query tables as
    ``per_query[label][task] = [one table per seed]``, the shapes ``compare.seed_table`` and
    ``compare.paired_vs_baseline`` take.
    """
    from ..experiment import train_grid

    missing = sorted({v.name for v in variants} - set(sets))
    if missing:
        raise ParameterError(f"train_variants: no training set for variant(s) {missing}; have {sorted(sets)}")
    overrides = {"epochs": params.aug_epochs, "dynamics_mode": "none"}
    return train_grid([(v.label, v.seed, sets[v.name], Path(out_root) / v.slug, None, overrides) for v in variants],
                      tasks, params)
