"""The Select then MixUp comparison: subsets, the seed table and the paired tests, against hand computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench import selection
from workbench.config import resolve
from workbench.errors import ParameterError


def _pairs_and_map():
    ids = [f"p{i}" for i in range(9)]
    pairs = pd.DataFrame(
        {"id": ids, "query": [f"q{i}" for i in range(9)], "code": [f"def f{i}(): pass" for i in range(9)]}
    )
    cats = ["easy-to-learn"] * 3 + ["ambiguous"] * 2 + ["hard-to-learn"] * 4
    dmap = pd.DataFrame({"pair_id": ids[::-1], "category": cats[::-1]})
    return pairs, dmap


def test_subsets_follow_the_categories_and_the_random_control_matches_in_size():
    pairs, dmap = _pairs_and_map()
    subsets = selection.training_subsets(pairs, dmap, seed=1)
    assert list(subsets) == list(selection.SUBSETS)
    assert subsets["easy"]["id"].tolist() == ["p0", "p1", "p2"]
    assert subsets["ambiguous"]["id"].tolist() == ["p3", "p4"]
    assert subsets["ambiguous+hard"]["id"].tolist() == [f"p{i}" for i in range(3, 9)]
    assert len(subsets["random"]) == 6 and set(subsets["random"]["id"]) <= set(pairs["id"])
    assert (
        subsets["random"]["id"].tolist()
        == selection.training_subsets(pairs, dmap, seed=1)["random"]["id"].tolist()
    )
    with pytest.raises(ParameterError, match="no category"):
        selection.training_subsets(pairs, dmap.iloc[1:], seed=1)
    picked = selection.training_subsets(pairs, dmap, seed=1, names=["random", "hard"])
    assert (
        list(picked) == ["random", "hard"] and picked["hard"]["id"].tolist() == subsets["hard"]["id"].tolist()
    )
    with pytest.raises(ParameterError, match="unknown subset"):
        selection.training_subsets(pairs, dmap, names=["all", "medium"])


def test_variants_set_seed_and_mixup():
    p = resolve("smoke", {"mixup_alpha": 0.2, "mixup_layer": 3})
    grid = selection.variants(["all", "ambiguous+hard"], [7, 8])
    assert [v.label for v in grid[:4]] == ["all", "all + MixUp", "ambiguous+hard", "ambiguous+hard + MixUp"]
    assert {v.seed for v in grid} == {7, 8} and len({v.slug for v in grid}) == 8
    assert grid[0].train_overrides(p) == {"seed": 7, "epochs": p.select_epochs, "dynamics_mode": "none"}
    assert grid[3].train_overrides(p)["mixup_alpha"] == 0.2 and grid[3].train_overrides(p)["mixup_layer"] == 3
    assert selection.Variant("all", True, 1).train_overrides(resolve("smoke"))["mixup_layer"] is None


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
    mean, std = selection.seed_table(pd.DataFrame(rows), ood_tasks=["web", "cosqa"])
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
    shown = selection.format_seed_table(mean, std)
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
    out = selection.paired_vs_baseline(per_query, "all", ood_tasks=["a", "b"], n_boot=4000, seed=0).set_index(
        "task"
    )
    assert out.loc["a", "delta"] == pytest.approx(12.5)  # (0 + 0.5 + 0 + 0) / 4 * 100
    assert out.loc["b", "delta"] == pytest.approx(20.0)  # (0.4 + 0) / 2 * 100
    assert out.loc["OOD avg", "delta"] == pytest.approx(16.25) and out.loc["OOD avg", "queries"] == 6
    assert out.loc["a", "ci_low"] >= 0 and out.loc["a", "ci_high"] <= 50
    with pytest.raises(ParameterError, match="baseline"):
        selection.paired_vs_baseline(per_query, "none", ood_tasks=["a"])


def test_delta_figure_orders_variants_and_colours_by_interval():
    tests = pd.DataFrame(
        [
            {"variant": "a", "task": "OOD avg", "delta": 1.0, "ci_low": 0.2, "ci_high": 1.8},
            {"variant": "b", "task": "OOD avg", "delta": -0.5, "ci_low": -1.0, "ci_high": 0.1},
            {"variant": "c", "task": "OOD avg", "delta": -2.0, "ci_low": -2.5, "ci_high": -1.5},
            {"variant": "a", "task": "web", "delta": 9.0, "ci_low": 8.0, "ci_high": 10.0},
        ]
    )
    bar = selection.delta_figure(tests).data[0]
    assert list(bar.y) == ["c", "b", "a"] and list(bar.x) == [-2.0, -0.5, 1.0]
    assert list(bar.marker.color) == ["#d62728", "#7f7f7f", "#2ca02c"]
    assert list(bar.error_x.array) == pytest.approx([0.5, 0.6, 0.8])
    with pytest.raises(ParameterError, match="no rows"):
        selection.delta_figure(tests, "cosqa")
