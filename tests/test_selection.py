"""The Select then MixUp subsets and variants, against hand computations (the tables: test_compare.py)."""

from __future__ import annotations

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
