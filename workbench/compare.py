"""The comparison protocol every method's table uses: models (variants) trained with several seeds
and scored query by query on the same test sets, compared to a baseline.

- ``seed_table`` / ``format_seed_table``: per-set MRR and the OOD average, mean +/- std over seeds
  (the shape of Table 2 of Select then MixUp, Table 5 of CoRNStack and of OASIS, Tables VI-VII of
  ChatDANCE).
- ``paired_vs_baseline`` / ``format_paired``: a per-query paired bootstrap of each variant against
  the baseline, per set and for the OOD average (queries resampled within each set, the per-set
  means averaged, as the OOD average itself is), each difference with its minimum detectable effect
  (``mde``: the smallest true difference the comparison detects with 80% power at alpha 0.05;
  ``evaluation.minimum_detectable_effect``).
- ``delta_figure``: the differences with their intervals, the paper-style summary.
- ``verdicts`` / ``verdict_lines``: every paired comparison a run's chapters logged, each with
  whether its interval excludes zero (the table ``workbench run`` ends with).

Below every method (Select then MixUp, ChatDANCE, OASIS, CoRNStack, the baseline levers) and above
``evaluation``, which scores one model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .errors import ParameterError
from .evaluation import bootstrap_interval, minimum_detectable_effect, minimum_detectable_effect_of_average

__all__ = ["seed_table", "format_seed_table", "paired_vs_baseline", "format_paired", "MDE_COLUMN", "delta_figure",
           "LOGGED_TESTS", "verdicts", "verdict_lines"]

#: the column name of the minimum detectable effect in formatted (display) tables
MDE_COLUMN = "MDE (80%)"


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


#: the paired tests the chapters log in ``metrics.json``: (notebook, key) -> (comparison, its baseline)
LOGGED_TESTS: dict[tuple[str, str], tuple[str, str]] = {
    ("00_quickstart", "paired_tests"): ("quickstart", "zero-shot"),
    ("01_data_curation", "ablation_paired_tests"): ("CoRNStack ablation", "none"),
    ("02_llm_augmentation", "paired_tests"): ("ChatDANCE", "baseline"),
    ("04_training", "paired_tests"): ("Select then MixUp", "all"),
    ("04_training", "oasis_paired_tests"): ("OASIS ablation", "InfoNCE"),
}


def verdicts(metrics: dict[str, Any], tasks: Sequence[str] = ("OOD avg", "id_test")) -> pd.DataFrame:
    """Every paired comparison a run logged (``metrics.json``, :data:`LOGGED_TESTS`) on ``tasks``: one
    row per comparison and task with ``delta``, its interval, ``mde`` and ``verdict``: "better" or
    "worse" when the 95% interval excludes zero, else "no difference detected"."""
    rows = []
    for (notebook, key), (comparison, baseline) in LOGGED_TESTS.items():
        for r in (metrics.get(notebook) or {}).get(key) or []:
            if r.get("task") not in tasks:
                continue
            lo, hi = float(r["ci_low"]), float(r["ci_high"])
            verdict = "better" if lo > 0 else "worse" if hi < 0 else "no difference detected"
            rows.append({"comparison": comparison, "variant": f"{r['variant']} vs {baseline}", "task": r["task"],
                         "delta": r["delta"], "ci_low": lo, "ci_high": hi, "mde": r.get("mde", float("nan")),
                         "queries": r.get("queries"), "verdict": verdict})
    out = pd.DataFrame(rows, columns=["comparison", "variant", "task", "delta", "ci_low", "ci_high", "mde", "queries",
                                      "verdict"])
    order = {t: i for i, t in enumerate(tasks)}
    return out.sort_values(["task"], key=lambda c: c.map(order), kind="stable").reset_index(drop=True)


def verdict_lines(table: pd.DataFrame) -> list[str]:
    """:func:`verdicts` as aligned text lines for a terminal (nothing when there is no comparison)."""
    if table.empty:
        return []
    head = ("comparison", "variant", "set", "delta [95% CI]", "MDE", "verdict")
    body = [(r.comparison, r.variant, r.task, f"{r.delta:+.2f} [{r.ci_low:+.2f}, {r.ci_high:+.2f}]",
             f"{r.mde:.2f}", r.verdict) for r in table.itertuples()]
    widths = [max(len(str(x[i])) for x in (head, *body)) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return ["Paired over queries (MRR points, 95% bootstrap interval over queries; MDE: the smallest difference",
            "detected with 80% power). 'better' / 'worse': the interval excludes zero. With one seed per variant",
            "the interval leaves out training noise: the seed parameters (select_seeds, ...) add it.",
            *(fmt.format(*row).rstrip() for row in (head, *body))]
