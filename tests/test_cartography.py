"""Dataset cartography (confidence, variability, correctness, forgetfulness), categories and the data-map figure."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from workbench.cartography import (
    CATEGORIES,
    categorize,
    category_counts,
    compare_modes,
    data_map,
    rule_counts,
    select,
    subset_pairs,
)
from workbench.errors import ParameterError
from workbench.viz import ExportError, datamap_figure, export_figure
from workbench.viz.datamap import export_for_paper


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


def test_threshold_rule_uses_absolute_cuts():
    # known_map: variability 0.01..0.09, confidence .9 .1 .8 .2 .7 .3 .5 .5 .5
    out = categorize(known_map(), rule="threshold")  # conf_hi .75, conf_lo .25, var_hi .2
    cat = dict(zip(out["pair_id"], out["category"].astype(str)))
    assert [cat[k] for k in "ac"] == ["easy-to-learn"] * 2 and [cat[k] for k in "bd"] == ["hard-to-learn"] * 2
    assert [cat[k] for k in "efghi"] == ["ambiguous"] * 5  # the middle band: no variability above 0.2
    assert out.attrs["category_rule"] == {
        "rule": "threshold",
        "conf_hi": 0.75,
        "conf_lo": 0.25,
        "var_hi": 0.2,
    }
    # the cuts are inclusive: e (0.7) is easy at conf_hi=0.7, f (0.3) hard at conf_lo=0.3
    assert category_counts(categorize(known_map(), rule="threshold", conf_hi=0.7, conf_lo=0.3)).tolist() == [
        3,
        3,
        3,
    ]
    # variability strictly above var_hi is ambiguous whatever the confidence: e (0.05) and f (0.06)
    tight = categorize(known_map(), rule="threshold", conf_hi=0.7, conf_lo=0.3, var_hi=0.045)
    assert category_counts(tight).tolist() == [2, 5, 2]
    assert category_counts(categorize(known_map(), rule="threshold", var_hi=0.05)).tolist() == [2, 5, 2]

    with pytest.raises(ParameterError, match=r"\['easy_q'\] do not apply to rule='threshold'"):
        categorize(known_map(), rule="threshold", easy_q=0.5)
    with pytest.raises(ParameterError, match=r"\['conf_hi'\] do not apply to rule='quantile'"):
        categorize(known_map(), conf_hi=0.5)
    with pytest.raises(ParameterError, match="conf_lo .* must be < conf_hi"):
        categorize(known_map(), rule="threshold", conf_hi=0.4, conf_lo=0.4)
    with pytest.raises(ParameterError, match=r"var_hi must be a number in \[0, 0.5\]"):
        categorize(known_map(), rule="threshold", var_hi=0.7)
    with pytest.raises(ParameterError, match="rule must be one of"):
        categorize(known_map(), rule="kmeans")


def test_rule_counts_one_row_per_setting():
    table = rule_counts(
        known_map(),
        {
            "median split": {},
            "wide middle": {"easy_q": 0.75, "hard_q": 0.25},
            "absolute": {"rule": "threshold"},
            "absolute, wider": {"rule": "threshold", "conf_hi": 0.7, "conf_lo": 0.3},
        },
    )
    assert list(table.columns) == list(CATEGORIES) and table.index.name == "rule"
    assert list(table.index) == ["median split", "wide middle", "absolute", "absolute, wider"]
    assert table.to_numpy().tolist() == [[3, 3, 3], [2, 5, 2], [2, 5, 2], [3, 3, 3]]
    assert (table.sum(axis=1) == 9).all()
    with pytest.raises(ParameterError, match=r"rule 'typo' has unknown parameter\(s\) \['easyq'\]"):
        rule_counts(known_map(), {"ok": {}, "typo": {"easyq": 0.5}})
    with pytest.raises(ParameterError, match="rule 'bad': categorize: hard_q"):
        rule_counts(known_map(), {"bad": {"easy_q": 0.2, "hard_q": 0.8}})
    with pytest.raises(ParameterError, match="rules is empty"):
        rule_counts(known_map(), {})


def two_mode_maps() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two categorised maps over pairs p1..p5 (+ one pair only in each), values chosen for hand computation."""
    e, a, h = CATEGORIES
    in_batch = pd.DataFrame(
        {
            "pair_id": ["p1", "p2", "p3", "p4", "p5", "only_in_batch"],
            "confidence": [0.1, 0.2, 0.3, 0.4, 0.5, 0.9],
            "variability": [0.05, 0.10, 0.15, 0.20, 0.25, 0.3],
            "category": pd.Categorical([e, e, a, h, h, a], categories=list(CATEGORIES)),
        }
    )
    fixed_pool = pd.DataFrame(
        {
            "pair_id": ["only_in_pool", "p5", "p4", "p3", "p2", "p1"],  # order must not matter
            "confidence": [0.6, 0.4, 0.3, 0.5, 0.1, 0.2],
            "variability": [0.01, 0.05, 0.10, 0.15, 0.20, 0.25],
            "category": pd.Categorical([h, e, h, a, a, e], categories=list(CATEGORIES)),
        }
    )
    return in_batch, fixed_pool


def test_compare_modes_against_hand_computation():
    r = compare_modes(*two_mode_maps())
    assert r.n_pairs == 5 and r.n_only == {"in_batch": 1, "fixed_pool": 1}
    # confidence ranks 1 2 3 4 5 vs 2 1 5 3 4: sum d^2 = 1+1+4+1+1 = 8, rho = 1 - 6*8/(5*24) = 0.6
    assert r.spearman_confidence == pytest.approx(0.6)
    assert r.spearman_variability == pytest.approx(-1.0)  # variability ranks fully reversed
    # categories E E A H H vs E A A H E: 3 of 5 agree; chance p_e = (2*2 + 1*2 + 2*1)/25 = 0.32
    assert r.agreement == pytest.approx(0.6)
    assert r.kappa == pytest.approx((0.6 - 0.32) / (1 - 0.32))
    assert r.confusion.index.name == "in_batch" and r.confusion.columns.name == "fixed_pool"
    assert list(r.confusion.index) == list(CATEGORIES) and list(r.confusion.columns) == list(CATEGORIES)
    assert r.confusion.to_numpy().tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    assert set(r.joined["pair_id"]) == {"p1", "p2", "p3", "p4", "p5"}
    s = r.summary()
    assert (
        s.loc["Cohen's kappa", "value"] == pytest.approx(7 / 17) and s.loc["pairs in both maps", "value"] == 5
    )


def test_compare_modes_from_one_dynamics_table_with_both_modes():
    t = hand_table()
    pool = t.assign(mode="fixed_pool", p_gold=t["p_gold"] * 0.5)  # same order of pairs, halved
    both = pd.concat([t, pool[pool["pair_id"] != "c"]])  # pair c only recorded in_batch
    r = compare_modes(both)
    assert r.n_pairs == 2 and r.n_only == {"in_batch": 1, "fixed_pool": 0}
    j = r.joined.set_index("pair_id")
    assert j.loc["a", "confidence_in_batch"] == pytest.approx(0.5)
    assert j.loc["a", "confidence_fixed_pool"] == pytest.approx(0.25)
    assert j.loc["a", "variability_fixed_pool"] == pytest.approx(j.loc["a", "variability_in_batch"] / 2)
    assert r.spearman_confidence == pytest.approx(1.0)  # a < b in both
    # two dynamics tables give the same result as one table holding both modes
    r2 = compare_modes(t, pool[pool["pair_id"] != "c"].drop(columns="mode"))
    assert r2.n_pairs == 2 and r2.spearman_confidence == pytest.approx(1.0) and r2.agreement == r.agreement

    with pytest.raises(ParameterError, match=r"has mode\(s\) \['in_batch'\], not \['fixed_pool'\]"):
        compare_modes(t)
    other = pool.assign(pair_id=pool["pair_id"] + "-other")
    with pytest.raises(ParameterError, match="share no pair_id"):
        compare_modes(t, other)
    with pytest.raises(ParameterError, match="neither a data map"):
        compare_modes(t, pd.DataFrame({"pair_id": ["a"], "score": [1.0]}))


def test_select_and_subset_pairs_join_categories_back():
    m = categorize(known_map())  # easy a c e, hard b d f, ambiguous g h i
    assert select(m, "hard-to-learn") == ["b", "d", "f"]
    assert select(m) == [
        "b",
        "d",
        "f",
        "g",
        "h",
        "i",
    ]  # default: ambiguous + hard-to-learn (Select then MixUp)
    assert select(m, ["easy-to-learn"]) == ["a", "c", "e"]
    pairs = pd.DataFrame(
        {
            "id": list("hgfedcba"),
            "query": [f"q-{c}" for c in "hgfedcba"],
            "code": "def f(): pass",
            "split": "train",
        }
    )  # pair i is missing from pairs
    sub = subset_pairs(pairs, m, ["ambiguous", "hard-to-learn"])
    assert sub["id"].tolist() == ["h", "g", "f", "d", "b"]  # pairs order
    assert sub.attrs["n_unmatched"] == 1
    assert {"query", "code", "split", "confidence", "variability", "category"} <= set(sub.columns)
    row = sub.set_index("id").loc["g"]
    assert (
        row["query"] == "q-g" and row["category"] == "ambiguous" and row["variability"] == pytest.approx(0.07)
    )
    with pytest.raises(ParameterError, match=r"unknown category \['hard'\]; choose from"):
        select(m, "hard")
    with pytest.raises(ParameterError, match="categorize"):
        select(known_map(), "ambiguous")
    with pytest.raises(ParameterError, match="no 'id' column"):
        subset_pairs(pairs.rename(columns={"id": "pair"}), m, "ambiguous")


def _chromium() -> str | None:
    try:
        from choreographer.browsers.chromium import Chromium

        found = Chromium.find_browser(skip_local=False)
    except Exception:
        found = None
    return (
        found or shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    )


def test_export_html_and_static_formats(tmp_path):
    fig = datamap_figure(categorize(known_map()), color="category")
    (html,) = export_figure(fig, tmp_path / "map", formats=("html",))
    assert html.name == "map.html" and html.stat().st_size > 1000
    if _chromium() is None:
        pytest.skip(
            "no chromium/chrome binary found: kaleido cannot write PNG/SVG/PDF (make venv installs it as root)"
        )
    written = export_figure(fig, tmp_path / "map", formats=("png", "svg", "pdf"))
    assert [p.name for p in written] == ["map.png", "map.svg", "map.pdf"]
    png, svg, pdf = (p.read_bytes() for p in written)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    assert svg.lstrip().startswith(b"<svg") and b"variability" in svg
    assert pdf.startswith(b"%PDF") and pdf.rstrip().endswith(b"%%EOF")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "map.html",
        "map.pdf",
        "map.png",
        "map.svg",
    ]  # no temp files


def test_export_without_a_browser_is_a_clear_error_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chromium"))  # kaleido's browser override
    with pytest.raises(ExportError, match="Chrom") as e:
        export_figure(datamap_figure(known_map()), tmp_path / "map", formats=("html", "png", "svg"))
    assert "formats=('html',)" in str(e.value)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ParameterError, match="unknown format"):
        export_figure(datamap_figure(known_map()), tmp_path / "map", formats=("gif",))
    # what notebooks call: the browser-free formats are still written, the reason goes to stderr
    written = export_for_paper(datamap_figure(known_map()), tmp_path / "nb", ("png", "svg", "html"))
    assert [p.name for p in written] == ["nb.html"] and sorted(p.name for p in tmp_path.iterdir()) == ["nb.html"]
