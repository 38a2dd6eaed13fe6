"""The explorer's linked views (issue 24): the crossfilter state, the map over time, and the explorer
driven from code as a notebook cell drives it: filters, search, selection from any view, the bar
chart, the table, the inspector with the real MiniLM, and exports."""

from __future__ import annotations

import copy
import types

import numpy as np
import pandas as pd
import pytest
from stdlib_pairs import mine_stdlib_pairs

from workbench.cartography import CATEGORIES, data_map, map_over_time
from workbench.errors import ParameterError
from workbench.viz import DataMapExplorer, load_subset
from workbench.viz.crossfilter import CrossFilter

FILES = ("textwrap.py", "shlex.py", "fnmatch.py", "glob.py", "heapq.py", "calendar.py", "posixpath.py",
         "genericpath.py", "base64.py", "tokenize.py", "inspect.py", "pathlib.py", "difflib.py", "argparse.py")
N = 160


@pytest.fixture(scope="module")
def pairs() -> pd.DataFrame:
    return mine_stdlib_pairs(FILES, N).assign(language="python", source="stdlib", split="train")


@pytest.fixture(scope="module")
def dynamics(pairs) -> pd.DataFrame:
    """Four checkpoints of made-up probabilities for real pairs: some pairs learnt late, some forgotten."""
    rng = np.random.default_rng(0)
    rows = []
    for i, pid in enumerate(pairs["id"]):
        start = rng.uniform(0, 0.6)
        for k in range(4):
            p = float(np.clip(start + (0.15 * k if i % 3 else -0.1 * k) + rng.normal(0, 0.05), 0, 1))
            rows.append({"pair_id": pid, "checkpoint": k, "p_gold": p, "rank": 1 if p > 0.5 else 2})
    return pd.DataFrame(rows)


@pytest.fixture
def explorer(pairs, dynamics, tmp_path) -> DataMapExplorer:
    m = data_map(dynamics)
    rng = np.random.default_rng(1)
    proj = pd.DataFrame({"pair_id": m["pair_id"], "x": rng.normal(size=len(m)), "y": rng.normal(size=len(m))})
    return DataMapExplorer(m, pairs, out_dir=tmp_path / "subsets", projection=proj, dynamics=dynamics)


# ----------------------------------------------------------------------------- crossfilter
def test_filters_narrow_the_view_and_brushes_select_within_it():
    t = pd.DataFrame({"pair_id": [f"p{i}" for i in range(10)], "lang": list("aabbbccccc"),
                      "n": np.arange(10, dtype=float), "query": [f"sort list {i}" if i % 2 else f"open file {i}" for i in range(10)],
                      "code": ["def f(): pass"] * 10})
    cf = CrossFilter(t)
    assert cf.view_mask.all() and not cf.selected_mask.any() and cf.highlight_mask.all()
    assert cf.filter_values("lang", ["b", "c"]) == 8
    assert cf.filter_range("n", low=3) == 7
    assert cf.search("SORT") == 4 and cf.rows(cf.view_mask)["pair_id"].tolist() == ["p3", "p5", "p7", "p9"]
    assert cf.search(r"sort list [57]", regex=True) == 2
    with pytest.raises(ParameterError, match="not a regular expression"):
        cf.search("(", regex=True)
    cf.search(None)
    # two views' brushes: the selection is their intersection, within the view
    assert cf.brush("map", ["p1", "p4", "p5", "p6"]) == 3  # p1 is filtered out (lang a)
    assert cf.brush("bar", lambda d: d["lang"] == "b") == 1
    assert cf.rows(cf.selected_mask)["pair_id"].tolist() == ["p4"]
    # a view shows the others' brushes, not its own
    assert cf.rows(cf.selected_except("map"))["pair_id"].tolist() == ["p3", "p4"]
    counts = cf.value_counts("lang").set_index("lang")
    assert counts.loc["b"].tolist() == [2, 1] and counts.loc["c"].tolist() == [5, 0]
    hist = cf.histogram("n", bins=5)
    assert hist["in view"].tolist() == [0, 1, 2, 2, 2] and hist["selected"].tolist() == [0, 0, 1, 0, 0]
    cf.clear_filter()
    assert cf.rows(cf.selected_mask)["pair_id"].tolist() == ["p4"]
    assert "2 in view" not in cf.describe() and "brushes: map (4), bar (3)" in cf.describe()
    with pytest.raises(ParameterError, match=r"unknown pair_id\(s\) \['nope'\]"):
        cf.brush("map", ["nope"])
    with pytest.raises(ParameterError, match="one value per point"):
        cf.brush("map", np.ones(3, dtype=bool))
    with pytest.raises(ParameterError, match="no column 'colour'"):
        cf.filter_values("colour", ["x"])
    with pytest.raises(ParameterError, match="not numeric"):
        cf.filter_range("lang", 0, 1)


# ----------------------------------------------------------------------------- map over time
def test_the_map_over_time_ends_at_the_data_map_and_each_step_is_the_map_so_far(dynamics):
    tl = map_over_time(dynamics)
    assert tl.checkpoints.tolist() == [0, 1, 2, 3]
    for t in range(4):
        want = data_map(dynamics[dynamics["checkpoint"] <= t])
        got = tl.at(t)
        assert got["pair_id"].tolist() == want["pair_id"].tolist()
        np.testing.assert_allclose(got["confidence"], want["confidence"], atol=1e-12)
        np.testing.assert_allclose(got["variability"], want["variability"], atol=1e-6)
        np.testing.assert_allclose(got["correctness"], want["correctness"], atol=1e-12)
    # a pair first recorded at checkpoint 2 has no position before it
    late = dynamics[~((dynamics["pair_id"] == dynamics["pair_id"].iloc[0]) & (dynamics["checkpoint"] < 2))]
    tl2 = map_over_time(late)
    j = list(tl2.pair_ids).index(dynamics["pair_id"].iloc[0])
    assert np.isnan(tl2.confidence[1, j]) and np.isfinite(tl2.confidence[2, j])
    with pytest.raises(ParameterError, match="two rows for checkpoint"):
        map_over_time(pd.concat([dynamics, dynamics.iloc[:1]]))
    with pytest.raises(ParameterError, match="out of range"):
        tl.at(4)


# ----------------------------------------------------------------------------- the explorer, linked
def test_a_lasso_in_one_view_highlights_the_same_pairs_in_every_view(explorer):
    fig, proj, bar = explorer.figure, explorer.controls["projection"], explorer.controls["bar"]
    t = explorer.crossfilter.table
    # a box on the projection
    explorer.on_selection(proj.data[0], types.SimpleNamespace(point_inds=[5, 1, 9, 30]), None)
    assert explorer.selected_indices.tolist() == [1, 5, 9, 30]
    assert list(fig.data[0].selectedpoints) == [1, 5, 9, 30]  # the map dims the others
    cats = t["category"].iloc[[1, 5, 9, 30]].value_counts()
    shown = dict(zip(bar.data[1].x, bar.data[1].y))
    assert all(shown[c] == n for c, n in cats.items()) and sum(bar.data[0].y) == len(explorer)
    assert "<b>4</b> selected" in explorer.controls["summary"].value and "projection (4)" in explorer.controls["summary"].value
    # the table lists them; choosing rows there is a brush too, and inspects the first
    table = explorer.controls["table"]
    assert [v for _, v in table.options] == t["pair_id"].iloc[[1, 5, 9, 30]].tolist()
    table.value = (t["pair_id"].iloc[9], t["pair_id"].iloc[1])
    assert explorer.selected_indices.tolist() == [1, 9]
    assert len(table.options) == 4  # the table is not narrowed by its own rows
    assert t["query"].iloc[9].split()[0] in explorer.controls["inspect_pair"].value
    # a lasso on the map intersects with the projection's and the table's brushes
    explorer.on_selection(fig.data[0], types.SimpleNamespace(point_inds=[9, 10, 11]), None)
    assert explorer.selected_indices.tolist() == [9]
    assert list(proj.data[0].selectedpoints) == [9]
    explorer.clear_selection()
    assert fig.data[0].selectedpoints is None and proj.data[0].selectedpoints is None


def test_the_table_sorts_the_whole_selection_by_any_column(explorer):
    t = explorer.crossfilter.table
    table, c = explorer.controls["table"], explorer.controls
    explorer.max_listed = 5  # (a fresh explorer per test)
    assert t["code_lines"].tolist() == (t["code"].str.count("\n") + 1).tolist()  # counted in Arrow's buffer
    from workbench.viz.explorer import _line_counts

    odd = pd.Series(["", "a", "a\n", "\n\nb", "ünï\ncode"] * 3)
    want = (odd.str.count("\n") + 1).tolist()
    assert _line_counts(odd).tolist() == want == _line_counts(odd.astype(object)).tolist()
    assert _line_counts(odd.astype("string").iloc[5:]).tolist() == want[5:]
    hard = explorer.filter("category", ["hard-to-learn"])
    assert hard > 5
    # the least confident hard pairs: sorted over every pair in view, then the first five listed
    rows = explorer.sort_table("confidence")
    want = t[t["category"] == "hard-to-learn"].sort_values("confidence", kind="stable")["pair_id"].head(5).tolist()
    assert rows["pair_id"].tolist() == want and [v for _, v in table.options] == want
    assert all(f"confidence {t.set_index('pair_id').loc[p, 'confidence']:.3f}" in label for label, p in table.options)
    assert (c["sort_by"].value, c["sort_desc"].value) == ("confidence", False)
    # the widgets drive the same call: the longest code first
    c["sort_by"].value = "code_lines"
    c["sort_desc"].value = True
    assert explorer.table_sort == ("code_lines", True)
    lines = t.set_index("pair_id").loc[[v for _, v in table.options], "code_lines"].tolist()
    assert lines == sorted(lines, reverse=True) and lines[0] == t.loc[t["category"] == "hard-to-learn", "code_lines"].max()
    # regions sort in their own order; back to the map's order
    explorer.clear_filters()
    cats = explorer.sort_table("category")["category"].astype(str)
    assert cats.iloc[0] == next(k for k in CATEGORIES if (t["category"] == k).any())
    assert explorer.sort_table(None)["pair_id"].tolist() == t["pair_id"].head(5).tolist() and c["sort_by"].value == ""
    with pytest.raises(ParameterError, match="sort_table: by must be None or a column"):
        explorer.sort_table("nope")


def test_filters_search_and_bars_drive_every_view(explorer):
    t = explorer.crossfilter.table
    bar = explorer.controls["bar"]
    n_easy = int((t["category"] == "easy-to-learn").sum())
    # clicking a bar selects its pairs; clicking it again removes the bar's brush
    i = list(bar.data[0].x).index("easy-to-learn")
    explorer.click_bar(i)
    assert len(explorer.selection) == n_easy and set(explorer.selection["category"]) == {"easy-to-learn"}
    explorer.click_bar(i)
    assert len(explorer.selection) == 0
    # a numeric column in bins
    explorer.set_bar_column("code_lines")
    assert explorer.bar_summary()["in view"].sum() == len(explorer)
    explorer.click_bar(0)
    lo, hi = explorer.bar_summary()[["left", "right"]].iloc[0]
    assert len(explorer.selection) and (explorer.selection["code"].str.count("\n") + 1).between(lo, hi).all()
    explorer.clear_selection()
    # a substring search narrows every view; a filter on a column too
    n = explorer.search("return")
    has = t["query"].str.contains("return", case=False) | t["code"].str.contains("return", case=False)
    assert n == int(has.sum()) == len(explorer.view) and 0 < n < len(explorer)
    assert explorer.view["query"].str.cat(explorer.view["code"]).str.lower().str.contains("return").all()
    explorer.filter("category", ["hard-to-learn"])
    assert set(explorer.view["category"]) <= {"hard-to-learn"}
    summary = explorer.bar_summary("category").set_index("category")["in view"]
    assert summary.get("easy-to-learn", 0) == 0
    assert explorer.controls["figure"].data[0].selectedpoints is not None  # the rest is dimmed
    explorer.filter("confidence", low=0.5)
    assert (explorer.view["confidence"] >= 0.5).all()
    explorer.clear_filters()
    assert len(explorer.view) == len(explorer)
    # a predicate and a list of ids from code
    sel = explorer.select(lambda d: d["code_lines"] > 20)
    assert (sel["code"].str.count("\n") + 1 > 20).all() and len(sel) == int((t["code_lines"] > 20).sum())
    assert explorer.select(t["pair_id"].iloc[:3].tolist())["id"].tolist() == t["pair_id"].iloc[:3].tolist()
    with pytest.raises(ParameterError, match="unknown pair_id"):
        explorer.select(["nope"])
    # colour by any column
    explorer.set_color("module")
    assert len(set(explorer.figure.data[0].marker.color)) > 1
    with pytest.raises(ParameterError, match="color must be"):
        explorer.set_color("nope")


def test_the_checkpoint_slider_moves_each_point_to_its_map_so_far(explorer, dynamics):
    fig = explorer.figure
    assert explorer.checkpoints == [0, 1, 2, 3]
    first = explorer.set_checkpoint(0)
    want = map_over_time(dynamics).at(0).set_index("pair_id").loc[explorer.data["pair_id"]]
    np.testing.assert_allclose(fig.data[0].y, want["confidence"].to_numpy())
    np.testing.assert_allclose(first["confidence"], want["confidence"].to_numpy())
    assert "after checkpoint 1 of 4" in fig.layout.title.text
    explorer.controls["checkpoint"].value = 3  # the widget: back to the final map
    np.testing.assert_allclose(fig.data[0].y, explorer.data["confidence"].to_numpy())
    assert fig.layout.title.text == "Data map"
    # a lasso at checkpoint 1 reads the positions shown then
    explorer.set_checkpoint(1)
    box = {"type": "rect", "x0": -1, "x1": 1, "y0": 0.0, "y1": 0.3}
    explorer.on_layout_selections([box])
    y1 = map_over_time(dynamics).at(1).set_index("pair_id").loc[explorer.data["pair_id"], "confidence"].to_numpy()
    assert explorer.selected_indices.tolist() == np.flatnonzero(y1 <= 0.3).tolist()
    with pytest.raises(ParameterError, match="index in 0..3"):
        explorer.set_checkpoint(7)


def test_inspect_retrieve_mark_false_negatives_and_export(pairs, dynamics, minilm, tmp_path):
    m = data_map(dynamics)
    ex = DataMapExplorer(m, pairs, out_dir=tmp_path, encoder=copy.deepcopy(minilm), dynamics=dynamics, top_k=5)
    assert ex.widget is not None  # the widgets exist: the inspector draws into them
    pid = ex.data["pair_id"].iloc[0]
    hits = ex.inspect(pid)
    assert len(hits) == 5 and hits["score"].is_monotonic_decreasing
    assert pid in hits["pair_id"].tolist()  # MiniLM finds the gold of a stdlib docstring among 160
    assert "gold" in ex.controls["inspect_hits"].value
    other = next(h for h in hits["pair_id"] if h != pid)
    ex.mark_false_negative(other)
    assert ex.false_negatives[["query_pair_id", "code_pair_id"]].values.tolist() == [[pid, other]]
    assert "false negative" in ex.controls["inspect_hits"].value
    with pytest.raises(ParameterError, match="its gold"):
        ex.mark_false_negative(pid)
    # the inspector's curve is the pair's row of the dynamics
    curve = ex.controls["inspect_curve"].data[0]
    want = dynamics[dynamics["pair_id"] == pid].sort_values("checkpoint")["p_gold"].tolist()
    assert list(curve.y) == pytest.approx(want)
    # semantic search: the text encoded as a query, the nearest codes selected
    found = ex.semantic_search("split a string into shell-like tokens", k=5)
    assert len(found) == 5 and len(ex.selection) == 5 and found["score"].is_monotonic_decreasing
    assert found["code"].str.contains("shlex|split|token", case=False).any()
    # the marks travel with the subset that holds their query
    ex.select([pid, other])
    back = load_subset(ex.export("with-marks"))
    assert back.attrs["workbench_subset"]["false_negatives"] == [[pid, other]]
    # the filtered view as CSV and parquet for other tools
    ex.search("return")
    csv = pd.read_csv(ex.export_table(tmp_path / "view.csv", what="view"))
    assert len(csv) == len(ex.view) and set(csv["id"]) == set(ex.view["id"])
    assert len(pd.read_parquet(ex.export_table(tmp_path / "sel.parquet"))) == 2
    with pytest.raises(ParameterError, match=r"\.csv or \.parquet"):
        ex.export_table(tmp_path / "x.txt")


def test_linked_inputs_that_do_not_fit_are_clear_errors(pairs, dynamics):
    m = data_map(dynamics)
    with pytest.raises(ParameterError, match="projection lacks column"):
        DataMapExplorer(m, pairs, projection=pd.DataFrame({"pair_id": m["pair_id"], "x": 0.0}))
    with pytest.raises(ParameterError, match="projection lacks 1 of the map's"):
        DataMapExplorer(m, pairs, projection=pd.DataFrame({"pair_id": m["pair_id"][1:], "x": 0.0, "y": 0.0}))
    with pytest.raises(ParameterError, match="one row per pair id"):
        DataMapExplorer(m, pairs, embeddings=(m["pair_id"].tolist(), np.zeros((3, 4))))
    with pytest.raises(ParameterError, match="dynamics lacks"):
        DataMapExplorer(m, pairs, dynamics=dynamics[dynamics["pair_id"] != m["pair_id"].iloc[0]])
    ex = DataMapExplorer(m, pairs)
    with pytest.raises(ParameterError, match="needs encoder="):
        ex.semantic_search("sort a list")
    with pytest.raises(ParameterError, match="no training dynamics"):
        ex.set_checkpoint(0)


def test_beyond_max_points_a_sample_is_drawn_and_every_pair_selected(pairs, dynamics, tmp_path):
    from plotly.callbacks import BoxSelector

    m = data_map(dynamics)
    rng = np.random.default_rng(2)
    proj = pd.DataFrame({"pair_id": m["pair_id"], "x": rng.normal(size=len(m)), "y": rng.normal(size=len(m))})
    ex = DataMapExplorer(m, pairs, out_dir=tmp_path, projection=proj, max_points=50, color="category")
    fig, pj = ex.figure, ex.controls["projection"]
    assert len(fig.data[0].x) == 50 and len(pj.data[0].x) == 50 and "50 of 160 pairs" == fig.data[0].name
    image = fig.layout.images[0]
    assert image.source.startswith("data:image/png;base64,") and image.layer == "below"
    # a box on the sampled map selects every pair inside it, markers or not
    v, c = ex.data["variability"].to_numpy(), ex.data["confidence"].to_numpy()
    sel = BoxSelector(xrange=[0.0, float(np.median(v))], yrange=[0.0, 0.6])
    ex.on_selection(fig.data[0], types.SimpleNamespace(point_inds=[0, 1]), sel)
    want = np.flatnonzero((v >= 0) & (v <= np.median(v)) & (c >= 0) & (c <= 0.6))
    assert ex.selected_indices.tolist() == want.tolist() and len(want) > 2
    # the markers show the selection in the sample's own numbering; the image dims the others
    assert list(pj.data[0].selectedpoints) == np.flatnonzero(np.isin(ex._shown, want)).tolist()
    assert fig.layout.images[0].source != image.source
    before = fig.layout.images[0].source
    ex.set_thresholds(ambiguous_q=0.4)  # new colours: a new image
    assert fig.layout.images[0].source != before
    # the drawn markers' hovers name their regions under the new thresholds, in both views
    regions = ex.data["category"].astype(str).to_numpy()[ex._shown].tolist()
    assert list(fig.data[0].text) == regions and list(pj.data[0].text) == regions
    with pytest.raises(ParameterError, match="max_points must be a positive integer"):
        DataMapExplorer(m, pairs, max_points=0)
