"""Dataset cartography (confidence, variability, correctness, forgetfulness), categories and the data-map figure."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from workbench.cartography import CATEGORIES, categorize, category_counts, data_map
from workbench.errors import ParameterError
from workbench.viz import ExportError, datamap_figure, export_figure


def hand_table() -> pd.DataFrame:
    rows = [
        # pair a: p = .2 .8 .4 .6, ranks 2 1 3 1 (one correct -> incorrect transition)
        ("a", 2, 0.4, 3),
        ("a", 0, 0.2, 2),
        ("a", 3, 0.6, 1),
        ("a", 1, 0.8, 1),
        # pair b: always right
        ("b", 0, 0.9, 1),
        ("b", 1, 0.9, 1),
        ("b", 2, 0.9, 1),
        ("b", 3, 0.9, 1),
        # pair c: two checkpoints, right then wrong
        ("c", 1, 0.3, 2),
        ("c", 0, 0.1, 1),
    ]
    df = pd.DataFrame(rows, columns=["pair_id", "checkpoint", "p_gold", "rank"])
    df["correct"] = df["rank"] == 1
    df["mode"] = "in_batch"
    df["loss"] = -np.log(df["p_gold"])
    return df


def test_data_map_matches_hand_computation():
    m = data_map(hand_table()).set_index("pair_id")
    assert list(m.index) == ["a", "b", "c"]
    assert m.loc["a", "confidence"] == pytest.approx(0.5)
    assert m.loc["a", "variability"] == pytest.approx(math.sqrt((0.09 + 0.09 + 0.01 + 0.01) / 4))  # ddof=0
    assert m.loc["a", "correctness"] == pytest.approx(0.5)
    assert m.loc["a", "forgetfulness"] == 1 and m.loc["a", "n_checkpoints"] == 4
    assert m.loc["b", "confidence"] == pytest.approx(0.9) and m.loc["b", "variability"] == pytest.approx(0.0)
    assert m.loc["b", "correctness"] == 1.0 and m.loc["b", "forgetfulness"] == 0
    assert m.loc["c", "confidence"] == pytest.approx(0.2) and m.loc["c", "variability"] == pytest.approx(0.1)
    assert (
        m.loc["c", "correctness"] == 0.5
        and m.loc["c", "forgetfulness"] == 1
        and m.loc["c", "n_checkpoints"] == 2
    )


def test_data_map_refuses_ambiguous_input():
    t = hand_table()
    with pytest.raises(ParameterError, match="two rows"):
        data_map(pd.concat([t, t.iloc[:1]]))
    mixed = pd.concat([t, t.assign(mode="fixed_pool")])
    with pytest.raises(ParameterError, match="mode"):
        data_map(mixed)
    assert len(data_map(mixed, mode="fixed_pool")) == 3
    with pytest.raises(ParameterError, match="p_gold"):
        data_map(t.drop(columns="p_gold"))


def known_map() -> pd.DataFrame:
    # variability 0.01..0.09: the top third (0.07, 0.08, 0.09) is ambiguous;
    # of the other six, confidence above their median (0.5) is easy, at or below it hard
    return pd.DataFrame(
        {
            "pair_id": list("abcdefghi"),
            "variability": [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09],
            "confidence": [0.9, 0.1, 0.8, 0.2, 0.7, 0.3, 0.5, 0.5, 0.5],
            "correctness": [1.0, 0.0, 1.0, 0.25, 0.75, 0.25, 0.5, 0.5, 0.5],
        }
    )


def test_categorize_default_rule_counts():
    out = categorize(known_map())
    cat = dict(zip(out["pair_id"], out["category"].astype(str)))
    assert [cat[k] for k in "ghi"] == ["ambiguous"] * 3
    assert [cat[k] for k in "ace"] == ["easy-to-learn"] * 3
    assert [cat[k] for k in "bdf"] == ["hard-to-learn"] * 3
    counts = category_counts(out)
    assert list(counts.index) == list(CATEGORIES) and counts.tolist() == [3, 3, 3]
    assert out.attrs["category_counts"] == {"easy-to-learn": 3, "ambiguous": 3, "hard-to-learn": 3}

    # a band between hard_q and easy_q counts as ambiguous (the middle of the map)
    wide = categorize(known_map(), easy_q=0.75, hard_q=0.25)
    assert category_counts(wide).tolist() == [2, 5, 2]
    with pytest.raises(ParameterError):
        categorize(known_map(), easy_q=0.2, hard_q=0.8)
    with pytest.raises(ParameterError):
        categorize(known_map(), rule="kmeans")


def test_figure_has_one_point_per_pair():
    m = known_map()
    pairs = pd.DataFrame(
        {"id": m["pair_id"], "query": [f"query {i}" for i in range(9)], "code": ["def f(): pass"] * 9}
    )
    fig = datamap_figure(m, pairs=pairs)
    assert isinstance(fig, go.Figure) and len(fig.data) == 1
    assert isinstance(fig.data[0], go.Scattergl) and len(fig.data[0].x) == 9
    assert list(fig.data[0].x) == list(m["variability"]) and list(fig.data[0].y) == list(m["confidence"])
    assert "query 0" in fig.data[0].customdata[0].tolist()

    by_cat = datamap_figure(categorize(m), color="category")
    assert sum(len(t.x) for t in by_cat.data) == 9 and len(by_cat.data) == 3
    assert len(datamap_figure(m, sample=4).data[0].x) == 4
    with pytest.raises(ParameterError, match="categorize"):
        datamap_figure(m, color="category")


def test_export_html_always_and_static_or_clear_error(tmp_path):
    fig = datamap_figure(known_map())
    (html,) = export_figure(fig, tmp_path / "map", formats=("html",))
    assert html.name == "map.html" and html.stat().st_size > 1000
    try:
        written = export_figure(fig, tmp_path / "map", formats=("png", "svg"))
    except ExportError as e:  # no Chrome for kaleido on this machine
        assert "Chrom" in str(e) and "html" in str(e)
        assert not (tmp_path / "map.png").exists()
    else:
        assert [p.suffix for p in written] == [".png", ".svg"] and all(p.stat().st_size > 0 for p in written)
