"""The Select then MixUp experiment (methods.md section 1; papers/000), steps 1 to 4 end to end.

1. ``datamap_training``: fine-tune on all (sampled) training pairs while recording the dynamics in
   both modes (``in_batch`` and ``fixed_pool``, one run), so the data maps of the two can be compared.
2. ``training_subsets``: the selections the paper compares (all, easy, ambiguous, hard,
   ambiguous + hard) plus the control it lacks: a random subset of the same size as
   ambiguous + hard.
3. ``variants``: every subset with and without representation-level MixUp, for several seeds.
4. ``seed_table`` / ``paired_vs_baseline``: the paper's table (per-set MRR and the OOD average)
   as mean +/- std over seeds, and a per-query paired bootstrap of each variant against the
   all-data baseline, per set and for the OOD average (queries resampled within each set, the
   per-set means averaged, as the OOD average itself is), each difference with its minimum
   detectable effect (``mde``: the smallest true difference the comparison detects with 80% power
   at alpha 0.05; ``evaluation.minimum_detectable_effect``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import Params
from .errors import ParameterError
from .evaluation import bootstrap_interval, minimum_detectable_effect, minimum_detectable_effect_of_average

__all__ = [
    "SUBSETS",
    "Variant",
    "datamap_training",
    "saved_datamap",
    "training_subsets",
    "variants",
    "seed_table",
    "format_seed_table",
    "paired_vs_baseline",
    "format_paired",
    "MDE_COLUMN",
    "delta_figure",
]

#: the column name of the minimum detectable effect in formatted (display) tables
MDE_COLUMN = "MDE (80%)"
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


def seed_table(
    summaries: pd.DataFrame, ood_tasks: Sequence[str], metric: str = "MRR"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean and std over seeds of ``metric`` per variant (rows, in first-seen order) and task (columns),
    plus ``OOD avg`` (the mean over ``ood_tasks`` within each seed, then over seeds).

    ``summaries`` has columns ``model`` (the variant label), ``seed``, ``task`` and ``metric``.
    Returns ``(mean, std)``; std is NaN with one seed (ddof=1)."""
    need = {"model", "seed", "task", metric}
    if not need <= set(summaries.columns):
        raise ParameterError(
            f"seed_table: summaries need columns {sorted(need)}, have {list(summaries.columns)}"
        )
    wide = summaries.pivot_table(index=["model", "seed"], columns="task", values=metric, sort=False)
    present = [t for t in ood_tasks if t in wide.columns]
    if present:
        wide["OOD avg"] = wide[present].mean(axis=1)
    order = list(dict.fromkeys(summaries["model"]))
    cols = [c for c in dict.fromkeys(summaries["task"]) if c in wide.columns] + (
        ["OOD avg"] if present else []
    )
    g = wide.groupby(level="model", sort=False)
    mean = g.mean().loc[order, cols]
    std = g.std(ddof=1).loc[order, cols]
    mean.insert(0, "seeds", g.size().loc[order])
    return mean, std


def format_seed_table(mean: pd.DataFrame, std: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """``mean +/- std`` strings (just the mean when there is one seed)."""
    out = pd.DataFrame(index=mean.index)
    out["seeds"] = mean["seeds"]
    for c in std.columns:
        out[c] = [
            f"{m:.{digits}f}" if not np.isfinite(s) else f"{m:.{digits}f} ± {s:.{digits}f}"
            for m, s in zip(mean[c], std[c])
        ]
    return out


def _seed_mean_rr(tables: list[pd.DataFrame]) -> pd.Series:
    """Per-query reciprocal rank averaged over seeds (all seeds must cover the same queries)."""
    series = [t.set_index("qid")["rr"].astype(float) for t in tables]
    idx = series[0].index
    for s in series[1:]:
        if set(s.index) != set(idx):
            raise ParameterError("paired_vs_baseline: seeds of a variant were evaluated on different queries")
    return pd.concat([s.loc[idx] for s in series], axis=1).mean(axis=1)


def paired_vs_baseline(
    per_query: dict[str, dict[str, list[pd.DataFrame]]],
    baseline: str,
    ood_tasks: Sequence[str],
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
    power: float = 0.8,
) -> pd.DataFrame:
    """Paired bootstrap of every variant against ``baseline`` on MRR (percent points).

    ``per_query[variant][task]`` is the list (one per seed) of per-query tables (``qid``, ``rr``).
    A query's reciprocal rank is first averaged over seeds. Per task: ``delta`` = MRR(variant) -
    MRR(baseline), a percentile interval (``ci_low``, ``ci_high``), ``mde`` (the minimum detectable
    effect at ``alpha`` and ``power`` from the per-query differences of the seed-averaged reciprocal
    ranks, so it reflects queries and seeds together; :func:`workbench.evaluation.minimum_detectable_effect`)
    and a two-sided bootstrap p-value. ``OOD avg`` resamples the queries of each OOD task
    independently and averages the per-task deltas; its ``mde`` combines the per-task spreads
    (:func:`workbench.evaluation.minimum_detectable_effect_of_average`).
    """
    if baseline not in per_query:
        raise ParameterError(f"paired_vs_baseline: baseline {baseline!r} not among {list(per_query)}")
    rng = np.random.default_rng(seed)
    base = {t: _seed_mean_rr(v) for t, v in per_query[baseline].items()}
    rows = []
    for name, tasks in per_query.items():
        if name == baseline:
            continue
        boots, deltas, diffs = {}, {}, {}
        for task, tables in tasks.items():
            if task not in base:
                continue
            b = base[task]
            v = _seed_mean_rr(tables)
            if set(v.index) != set(b.index):
                raise ParameterError(
                    f"paired_vs_baseline: {name!r} and {baseline!r} cover different {task} queries"
                )
            d = (v.loc[b.index] - b).to_numpy() * 100.0
            idx = rng.integers(0, len(d), size=(n_boot, len(d)))
            boots[task], deltas[task], diffs[task] = d[idx].mean(axis=1), float(d.mean()), d
            mde = minimum_detectable_effect(d, alpha, power)
            rows.append(_row(name, task, deltas[task], boots[task], alpha, mde, len(d)))
        ood = [t for t in ood_tasks if t in boots]
        if ood:
            avg = np.mean([boots[t] for t in ood], axis=0)
            delta = float(np.mean([deltas[t] for t in ood]))
            mde = minimum_detectable_effect_of_average([diffs[t] for t in ood], alpha, power)
            rows.append(
                _row(name, "OOD avg", delta, avg, alpha, mde, sum(len(per_query[name][t][0]) for t in ood))
            )
    return pd.DataFrame(rows)


def _row(
    name: str, task: str, delta: float, boots: np.ndarray, alpha: float, mde: float, n: int
) -> dict[str, Any]:
    lo, hi, p = bootstrap_interval(boots, alpha)
    return {
        "variant": name,
        "task": task,
        "delta": round(delta, 2),
        "ci_low": round(float(lo), 2),
        "ci_high": round(float(hi), 2),
        "mde": round(float(mde), 2),
        "p_value": round(p, 4),
        "queries": n,
    }


def format_paired(tests: pd.DataFrame, tasks: Sequence[str] | None = None, digits: int = 2) -> pd.DataFrame:
    """The paired tests (from :func:`paired_vs_baseline`) for display: one row per variant, per task
    two columns, ``delta [95% CI]`` ("+1.23 [-0.40, +2.86]") and :data:`MDE_COLUMN` (the minimum
    detectable effect at 80% power, MRR points), so a difference is read next to what the
    comparison could detect. ``tasks`` picks and orders the tasks (default: all, in order)."""
    if tests.empty:
        return pd.DataFrame()
    tasks = list(dict.fromkeys(tests["task"])) if tasks is None else [t for t in tasks if t in set(tests["task"])]
    variants = list(dict.fromkeys(tests["variant"]))
    rows = tests.set_index(["variant", "task"])
    f = f"{{:+.{digits}f}}"
    cols = {}
    for task in tasks:
        cells, mdes = {}, {}
        for v in variants:
            if (v, task) not in rows.index:
                continue
            r = rows.loc[(v, task)]
            cells[v] = f"{f.format(r['delta'])} [{f.format(r['ci_low'])}, {f.format(r['ci_high'])}]"
            mdes[v] = f"{r['mde']:.{digits}f}" if "mde" in r and np.isfinite(r["mde"]) else "n/a"
        cols[(task, "delta [95% CI]")] = pd.Series(cells, dtype=object)
        cols[(task, MDE_COLUMN)] = pd.Series(mdes, dtype=object)
    out = pd.DataFrame(cols).reindex(variants).fillna("")
    out.columns = pd.MultiIndex.from_tuples(out.columns, names=["task", ""])
    out.index.name = "variant"
    return out


def delta_figure(tests: pd.DataFrame, task: str = "OOD avg", title: str | None = None):
    """Bar chart of each variant's MRR difference to the baseline on ``task`` with its 95% interval
    (from ``paired_vs_baseline``), sorted; the paper-style summary of the comparison."""
    import plotly.graph_objects as go

    rows = tests[tests["task"] == task].sort_values("delta")
    if rows.empty:
        raise ParameterError(
            f"delta_figure: no rows for task {task!r}; have {sorted(tests['task'].unique())}"
        )
    colors = [
        "#2ca02c" if lo > 0 else "#d62728" if hi < 0 else "#7f7f7f"
        for lo, hi in zip(rows["ci_low"], rows["ci_high"])
    ]
    fig = go.Figure(
        go.Bar(
            x=rows["delta"],
            y=rows["variant"],
            orientation="h",
            marker_color=colors,
            error_x=dict(
                type="data",
                symmetric=False,
                array=(rows["ci_high"] - rows["delta"]).to_numpy(),
                arrayminus=(rows["delta"] - rows["ci_low"]).to_numpy(),
            ),
            customdata=rows["mde"].to_numpy() if "mde" in rows else None,
            hovertemplate="%{y}: %{x:+.2f} MRR points"
            + (", MDE (80%) %{customdata:.2f}" if "mde" in rows else "")
            + "<extra></extra>",
        )
    )
    fig.add_vline(x=0, line_color="black", line_width=1)
    fig.update_layout(
        title=title or f"MRR difference to the all-data baseline, {task} (95% paired bootstrap)",
        xaxis_title="MRR points",
        template="plotly_white",
        width=760,
        height=120 + 32 * len(rows),
        margin=dict(l=180),
    )
    return fig
