"""The Select then MixUp experiment (methods.md section 1; papers/000), steps 1 to 4 end to end.

1. ``datamap_training``: fine-tune on all (sampled) training pairs while recording the dynamics in
   both modes (``in_batch`` and ``fixed_pool``, one run), so the data maps of the two can be compared.
2. ``training_subsets``: the selections the paper compares (all, easy, ambiguous, hard,
   ambiguous + hard) plus the control it lacks: a random subset of the same size as
   ambiguous + hard.
3. ``variants``: every subset with and without representation-level MixUp, for several seeds;
   ``train_variants`` trains and scores them.
4. The paper's table and the paired tests against the all-data baseline come from the shared
   comparison protocol, ``workbench.compare`` (``seed_table``, ``paired_vs_baseline``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .config import Params
from .errors import ParameterError

__all__ = [
    "SUBSETS",
    "Variant",
    "datamap_training",
    "saved_datamap",
    "training_subsets",
    "variants",
    "train_variants",
]

SUBSETS = ("all", "easy", "ambiguous", "hard", "ambiguous+hard", "random")
_MEMBERS = {
    "easy": ("easy-to-learn",),
    "ambiguous": ("ambiguous",),
    "hard": ("hard-to-learn",),
    "ambiguous+hard": ("ambiguous", "hard-to-learn"),
}


def datamap_training(pairs: pd.DataFrame, params: Params, out_dir: str | Path, show_progress: bool = True):
    """Step 1-2: train the pre-trained model on ``params.datamap_pairs`` sampled training pairs for
    ``params.datamap_epochs`` epochs, recording both dynamics modes (``fixed_pool`` scored
    ``params.checkpoints_per_epoch`` times per epoch, against ``params.datamap_pool``'s candidates:
    ``experiment.pool_codes``). Resumes / reuses a finished run in ``out_dir``.
    Returns ``(sample, TrainResult)``."""
    from .experiment import fresh_encoder, pool_codes, train_config, training_sample
    from .training import train

    sample = training_sample(pairs, params.datamap_pairs, params.seed)
    cfg = train_config(params, epochs=params.datamap_epochs, dynamics_mode="both")
    result = train(fresh_encoder(params), sample, cfg, out_dir=out_dir, show_progress=show_progress,
                   pool_codes=pool_codes(pairs, sample, params))
    return sample, result


def saved_datamap(pairs: pd.DataFrame, params: Params, out_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The data-map run a run folder already holds (``out_dir`` = its ``models/datamap``), without
    training: ``(sample, categorised map)`` as 03 / 04 see it, or None when it is not finished."""
    from . import cartography
    from .experiment import training_sample

    out_dir = Path(out_dir)
    if not (out_dir / "dynamics.parquet").exists() or not (out_dir / "model" / "workbench_encoder.json").exists():
        return None
    sample = training_sample(pairs, params.datamap_pairs, params.seed)
    dmap = cartography.data_map(pd.read_parquet(out_dir / "dynamics.parquet"), mode=params.datamap_mode)
    dmap = cartography.categorize(dmap, easy_q=params.easy_q, hard_q=params.hard_q, ambiguous_q=params.ambiguous_q)
    return sample, dmap


def training_subsets(
    pairs: pd.DataFrame, categorized: pd.DataFrame, seed: int = 42, names: Sequence[str] | None = None
) -> dict[str, pd.DataFrame]:
    """The training subsets of the comparison, in ``SUBSETS`` order, as rows of ``pairs``.

    ``categorized`` is a data map with a ``category`` column (``cartography.categorize``) keyed by
    ``pair_id`` = ``pairs["id"]``. ``random`` draws, with ``seed``, as many pairs as
    ambiguous + hard from all of them (easy ones included): the control that tells selection apart
    from simply training on less data. ``names`` picks and orders the subsets (default ``SUBSETS``).
    """
    names = list(SUBSETS if names is None else names)
    unknown = [n for n in names if n not in SUBSETS]
    if unknown:
        raise ParameterError(f"unknown subset(s) {unknown}; choose from {SUBSETS}")
    if "category" not in categorized.columns or "pair_id" not in categorized.columns:
        raise ParameterError(
            "training_subsets: the data map needs pair_id and category columns (cartography.categorize)"
        )
    cat = categorized.set_index("pair_id")["category"].astype(str)
    missing = sorted(set(pairs["id"]) - set(cat.index))
    if missing:
        raise ParameterError(f"training_subsets: {len(missing)} pairs have no category, e.g. {missing[:3]}")
    labels = pairs["id"].map(cat)
    out = {"all": pairs.reset_index(drop=True)}
    for name, members in _MEMBERS.items():
        out[name] = pairs[labels.isin(members).to_numpy()].reset_index(drop=True)
    n = len(out["ambiguous+hard"])
    out["random"] = pairs.sample(n=n, random_state=seed).reset_index(drop=True)
    return {name: out[name] for name in names}


@dataclass(frozen=True)
class Variant:
    """One trained model of the comparison: a subset, with or without MixUp, one seed."""

    subset: str
    mixup: bool
    seed: int

    @property
    def label(self) -> str:
        return f"{self.subset} + MixUp" if self.mixup else self.subset

    @property
    def slug(self) -> str:
        return f"{self.subset.replace('+', '_')}{'-mixup' if self.mixup else ''}-seed{self.seed}"

    def train_overrides(self, params: Params) -> dict[str, Any]:
        """The ``TrainConfig`` fields this variant sets (seed, MixUp)."""
        out: dict[str, Any] = {"seed": self.seed, "epochs": params.select_epochs, "dynamics_mode": "none"}
        if self.mixup:
            out.update(
                mixup_alpha=params.mixup_alpha,
                mixup_fraction=params.mixup_fraction,
                mixup_layer=params.mixup_layer if params.mixup_layer > 0 else None,
            )
        return out


def variants(
    subsets: Sequence[str], seeds: Sequence[int], mixup: Sequence[bool] = (False, True)
) -> list[Variant]:
    """Every subset x MixUp setting x seed, grouped by seed (a partly finished sweep has whole seeds).
    Any subset name works (e.g. "custom" for a subset exported from the explorer)."""
    return [Variant(s, m, int(seed)) for seed in seeds for s in subsets for m in mixup]


def train_variants(
    grid: Sequence[Variant], subsets: dict[str, pd.DataFrame], tasks: dict[str, Any], params: Params,
    models_dir: str | Path,
) -> tuple[pd.DataFrame, dict[str, dict[str, list[pd.DataFrame]]]]:
    """Step 4: train every variant of ``grid`` on its subset from the pre-trained weights and score it on
    ``tasks`` (the shared recipe, ``experiment.train_grid``; each model cached in
    ``models_dir/<variant slug>``, so an interrupted run resumes per model). Returns the summaries and
    the per-query tables, the shapes ``compare.seed_table`` and ``compare.paired_vs_baseline`` take."""
    from .experiment import train_grid

    jobs = []
    for v in grid:
        overrides = v.train_overrides(params)
        seed = overrides.pop("seed")
        jobs.append((v.label, seed, subsets[v.subset], Path(models_dir) / v.slug, None, overrides))
    return train_grid(jobs, tasks, params)
