"""The shared comparison protocol (``workbench.compare``): seed tables, paired tests with their
minimum detectable effects, the formatted tables and the delta figure, each against a hand computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench import compare
from workbench.errors import ParameterError


def test_seed_table_by_hand():
    rows = []
    for model, seed, a, b, c in [
        ("all", 1, 50, 40, 30),
        ("all", 2, 52, 44, 34),
        ("mix", 1, 49, 46, 40),
        ("mix", 2, 51, 46, 42),
    ]:
        rows += [
            {"model": model, "seed": seed, "task": "id_test", "MRR": a},
            {"model": model, "seed": seed, "task": "web", "MRR": b},
            {"model": model, "seed": seed, "task": "cosqa", "MRR": c},
        ]
    mean, std = compare.seed_table(pd.DataFrame(rows), ood_tasks=["web", "cosqa"])
    assert list(mean.index) == ["all", "mix"] and list(mean.columns) == [
        "seeds",
        "id_test",
        "web",
        "cosqa",
        "OOD avg",
    ]
    assert mean.loc["all", "OOD avg"] == pytest.approx((35 + 39) / 2)
    assert std.loc["all", "OOD avg"] == pytest.approx(np.std([35, 39], ddof=1))
    assert std.loc["mix", "web"] == 0 and mean.loc["mix", "seeds"] == 2
    shown = compare.format_seed_table(mean, std)
    assert shown.loc["all", "web"] == "42.00 ± 2.83"


def test_paired_tests_by_hand():
    def table(rr):
        return pd.DataFrame({"qid": [f"q{i}" for i in range(len(rr))], "rr": rr})

    per_query = {
        "all": {"a": [table([1.0, 0.5, 0.5, 1.0])], "b": [table([0.2, 0.2])]},
        # two seeds: averaged per query first -> a = [1, 1, 0.5, 1], b = [0.6, 0.2]
        "mix": {
            "a": [table([1.0, 1.0, 0.5, 1.0]), table([1.0, 1.0, 0.5, 1.0])],
            "b": [table([0.5, 0.2]), table([0.7, 0.2])],
        },
    }
    out = compare.paired_vs_baseline(per_query, "all", ood_tasks=["a", "b"], n_boot=4000, seed=0).set_index(
        "task"
    )
    assert out.loc["a", "delta"] == pytest.approx(12.5)  # (0 + 0.5 + 0 + 0) / 4 * 100
    assert out.loc["b", "delta"] == pytest.approx(20.0)  # (0.4 + 0) / 2 * 100
    assert out.loc["OOD avg", "delta"] == pytest.approx(16.25) and out.loc["OOD avg", "queries"] == 6
    assert out.loc["a", "ci_low"] >= 0 and out.loc["a", "ci_high"] <= 50
    # minimum detectable effect, (z_0.975 + z_0.8) = 2.801585 times the SE of the mean difference:
    # a: diffs [0, 50, 0, 0] -> sd (ddof 1) 25, SE 12.5 -> 35.02; b: [40, 0] -> sd 28.284, SE 20 -> 56.03;
    # OOD avg: SE = sqrt(25**2 / 4 + 28.284**2 / 2) / 2 = sqrt(156.25 + 400) / 2 = 11.7925 -> 33.04
    assert out.loc["a", "mde"] == pytest.approx(35.02)
    assert out.loc["b", "mde"] == pytest.approx(56.03)
    assert out.loc["OOD avg", "mde"] == pytest.approx(33.04)
    assert list(out.reset_index().columns) == [
        "task", "variant", "delta", "ci_low", "ci_high", "mde", "p_value", "queries"]
    with pytest.raises(ParameterError, match="baseline"):
        compare.paired_vs_baseline(per_query, "none", ood_tasks=["a"])


def test_minimum_detectable_effect_shrinks_with_more_queries():
    def table(rr):
        return pd.DataFrame({"qid": [f"q{i}" for i in range(len(rr))], "rr": rr})

    def mde(k):  # the same four differences [0, 50, 0, 0] repeated k times: same spread, 4k queries
        per_query = {"all": {"a": [table([1.0, 0.5, 0.5, 1.0] * k)]}, "v": {"a": [table([1.0, 1.0, 0.5, 1.0] * k)]}}
        row = compare.paired_vs_baseline(per_query, "all", ood_tasks=["a"], n_boot=200).set_index("task")
        assert row.loc["a", "delta"] == pytest.approx(12.5) and row.loc["a", "queries"] == 4 * k
        return row.loc["a", "mde"]

    # 4k values, k of them 50 and the rest 0, mean 12.5: squared deviations k * 37.5**2 + 3k * 12.5**2
    # = 1875 k, var (ddof 1) 1875 k / (4k - 1); MDE = 2.801585 * sd / sqrt(4k):
    # k = 1: sd 25, SE 12.5 -> 35.02; k = 4: var 7500 / 15 = 500, sd 22.361, SE 5.590 -> 15.66;
    # k = 25: var 46875 / 99 = 473.485, sd 21.760, SE 2.176 -> 6.10
    assert mde(1) == pytest.approx(35.02)
    assert mde(4) == pytest.approx(15.66)
    assert mde(25) == pytest.approx(6.10)
    assert mde(1) > mde(4) > mde(25)


def test_more_seeds_that_agree_shrink_the_minimum_detectable_effect():
    """Seed noise: differences of seed-averaged reciprocal ranks, so two seeds whose noise cancels
    leave a smaller spread than one seed."""
    def table(rr):
        return pd.DataFrame({"qid": [f"q{i}" for i in range(len(rr))], "rr": rr})

    base = {"a": [table([0.5] * 6)]}
    one = {"a": [table([0.9, 0.1, 0.9, 0.1, 0.6, 0.6])]}
    two = {"a": [table([0.9, 0.1, 0.9, 0.1, 0.6, 0.6]), table([0.1, 0.9, 0.1, 0.9, 0.6, 0.6])]}
    m1 = compare.paired_vs_baseline({"all": base, "v": one}, "all", ["a"], n_boot=100).loc[0, "mde"]
    m2 = compare.paired_vs_baseline({"all": base, "v": two}, "all", ["a"], n_boot=100).loc[0, "mde"]
    # one seed: diffs [40, -40, 40, -40, 10, 10] (mean 3.333): squared deviations 2 * 36.667**2
    # + 2 * 43.333**2 + 2 * 6.667**2 = 6533.33, var 1306.67, SE sqrt(1306.67 / 6) = 14.757 -> 41.34;
    # two seeds: diffs [0, 0, 0, 0, 10, 10] (mean 3.333): 4 * 11.111 + 2 * 44.444 = 133.33, var 26.667,
    # SE 2.108 -> 5.91
    assert m1 == pytest.approx(41.34) and m2 == pytest.approx(5.91)


def test_format_paired_puts_the_mde_next_to_the_interval():
    tests = pd.DataFrame([
        {"variant": "a", "task": "x", "delta": 1.0, "ci_low": -0.5, "ci_high": 2.25, "mde": 1.9, "p_value": 0.2, "queries": 9},
        {"variant": "a", "task": "OOD avg", "delta": -1.5, "ci_low": -3.0, "ci_high": -0.1, "mde": 1.4, "p_value": 0.04,
         "queries": 9},
        {"variant": "b", "task": "x", "delta": 0.0, "ci_low": -1.0, "ci_high": 1.0, "mde": float("nan"), "p_value": 1.0,
         "queries": 1},
    ])
    shown = compare.format_paired(tests)
    assert list(shown.columns) == [("x", "delta [95% CI]"), ("x", "MDE (80%)"),
                                   ("OOD avg", "delta [95% CI]"), ("OOD avg", "MDE (80%)")]
    assert shown.loc["a", ("x", "delta [95% CI]")] == "+1.00 [-0.50, +2.25]"
    assert shown.loc["a", ("x", "MDE (80%)")] == "1.90"
    assert shown.loc["a", ("OOD avg", "MDE (80%)")] == "1.40"
    assert shown.loc["b", ("x", "MDE (80%)")] == "n/a" and shown.loc["b", ("OOD avg", "MDE (80%)")] == ""
    assert list(compare.format_paired(tests, ["OOD avg", "missing"]).columns.get_level_values(0)) == ["OOD avg"] * 2


def test_delta_figure_orders_variants_and_colours_by_interval():
    tests = pd.DataFrame(
        [
            {"variant": "a", "task": "OOD avg", "delta": 1.0, "ci_low": 0.2, "ci_high": 1.8},
            {"variant": "b", "task": "OOD avg", "delta": -0.5, "ci_low": -1.0, "ci_high": 0.1},
            {"variant": "c", "task": "OOD avg", "delta": -2.0, "ci_low": -2.5, "ci_high": -1.5},
            {"variant": "a", "task": "web", "delta": 9.0, "ci_low": 8.0, "ci_high": 10.0},
        ]
    )
    bar = compare.delta_figure(tests).data[0]
    assert list(bar.y) == ["c", "b", "a"] and list(bar.x) == [-2.0, -0.5, 1.0]
    assert list(bar.marker.color) == ["#d62728", "#7f7f7f", "#2ca02c"]
    assert list(bar.error_x.array) == pytest.approx([0.5, 0.6, 0.8])
    with pytest.raises(ParameterError, match="no rows"):
        compare.delta_figure(tests, "cosqa")


def test_verdicts_read_every_logged_comparison_and_say_whether_its_interval_excludes_zero():
    def row(variant, task, lo, hi):
        return {"variant": variant, "task": task, "delta": (lo + hi) / 2, "ci_low": lo, "ci_high": hi, "mde": 0.8,
                "p_value": 0.01, "queries": 300}

    metrics = {
        "00_quickstart": {"paired_tests": [row("fine-tuned", "id_test", 1.0, 5.0), row("fine-tuned", "OOD avg", -0.4, 0.6)]},
        "04_training": {"paired_tests": [row("ambiguous+hard", "OOD avg", -2.0, -0.1), row("random", "stdlib", 1, 2)],
                        "table_mean": [{"model": "all"}]},
        "03_data_maps": {"paired_tests": [row("ignored", "OOD avg", 1, 2)]},  # not a logged comparison
    }
    table = compare.verdicts(metrics)
    assert list(zip(table["comparison"], table["variant"], table["task"], table["verdict"])) == [
        ("quickstart", "fine-tuned vs zero-shot", "OOD avg", "no difference detected"),
        ("Select then MixUp", "ambiguous+hard vs all", "OOD avg", "worse"),
        ("quickstart", "fine-tuned vs zero-shot", "id_test", "better"),
    ]
    lines = compare.verdict_lines(table)
    assert lines[-3].split()[-1] == "detected" and lines[-2].endswith("worse") and lines[-1].endswith("better")
    assert "-1.05 [-2.00, -0.10]" in lines[-2] and "0.80" in lines[-2]
    assert compare.verdict_lines(compare.verdicts({})) == []


def test_the_closing_verdicts_name_the_same_baselines_as_the_report_tables():
    """``compare.LOGGED_TESTS`` and ``report.DEFAULT_TABLES`` both say each chapter's baseline: kept equal."""
    from workbench.report import DEFAULT_TABLES

    logged = {(nb, baseline) for (nb, _), (_, baseline) in compare.LOGGED_TESTS.items()}
    assert {(t.notebook, t.baseline) for t in DEFAULT_TABLES} <= logged
