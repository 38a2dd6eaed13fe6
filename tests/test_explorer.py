"""The interactive data map: selection panel, threshold sliders, subset export, headless fallback."""

from __future__ import annotations

import html
import types
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from plotly.callbacks import Points
from stdlib_pairs import mine_stdlib_pairs

from workbench.cartography import CATEGORIES, categorize, category_counts, select
from workbench.errors import InputFormatError, ParameterError
from workbench.viz import CATEGORY_COLORS, DataMapExplorer, load_subset
from workbench.viz.explorer_views import decode_colours

STDLIB_FILES = (
    "textwrap.py",
    "shlex.py",
    "fnmatch.py",
    "glob.py",
    "heapq.py",
    "calendar.py",
    "posixpath.py",
    "genericpath.py",
    "base64.py",
    "tokenize.py",
    "inspect.py",
    "pathlib.py",
    "difflib.py",
    "configparser.py",
    "argparse.py",
    "ftplib.py",
)
N = 300


@pytest.fixture(scope="module")
def pairs() -> pd.DataFrame:
    """Real (query, code) pairs from the standard library, as the corpus frame carries them."""
    df = mine_stdlib_pairs(STDLIB_FILES, N)
    return df.assign(language="python", source="stdlib", split="train")


@pytest.fixture(scope="module")
def map_df(pairs) -> pd.DataFrame:
    """A data map over those pairs, in another order than the corpus (as data_map sorts by pair_id)."""
    rng = np.random.default_rng(0)
    ids = pairs["id"].sample(frac=1.0, random_state=1).to_numpy()
    conf = rng.beta(2, 2, N)
    return pd.DataFrame(
        {
            "pair_id": ids,
            "confidence": conf,
            "variability": rng.uniform(0, 0.45, N),
            "correctness": np.clip(conf + rng.normal(0, 0.1, N), 0, 1),
            "forgetfulness": rng.integers(0, 3, N),
            "n_checkpoints": 4,
        }
    )


@pytest.fixture
def explorer(map_df, pairs, tmp_path) -> DataMapExplorer:
    return DataMapExplorer(map_df, pairs, out_dir=tmp_path / "subsets")


def test_selection_fills_the_panel_with_queries_and_highlighted_code(explorer, map_df, pairs):
    fig = explorer.figure
    assert isinstance(fig, go.FigureWidget) and isinstance(fig.data[0], go.Scattergl)
    assert len(fig.data[0].x) == N and list(fig.data[0].x) == map_df["variability"].tolist()
    hover = fig.data[0].customdata[0]
    assert hover[0] == map_df["pair_id"][0] and len(hover[2]) <= 80  # pair_id, query, first 80 chars of code

    explorer.on_selection(fig.data[0], Points(point_inds=[42, 5, 17]), None)  # the plotly callback contract
    sel = explorer.selected
    assert sel["id"].tolist() == map_df["pair_id"].iloc[[5, 17, 42]].tolist()
    by_id = pairs.set_index("id")
    assert sel["query"].tolist() == by_id.loc[sel["id"], "query"].tolist()
    assert sel["code"].tolist() == by_id.loc[sel["id"], "code"].tolist()
    panel = explorer.controls["panel"].value
    assert "3 pairs selected" in panel
    for q in sel["query"]:
        assert html.escape(q) in panel
    assert '<span style="color: #' in panel  # pygments, inline styles (renders without a stylesheet)
    assert panel.count("border-left:4px") == 3 and f"{sel['confidence'][0]:.3f}" in panel

    # any object with .point_inds works, and a big selection is capped with its count shown
    explorer.on_selection(None, types.SimpleNamespace(point_inds=list(range(120))), None)
    panel = explorer.controls["panel"].value
    assert "120 pairs selected" in panel and "showing the first 50" in panel
    assert panel.count("border-left:4px") == 50

    # what the browser sends: a plotly_selected message on the widget, dispatched by plotly
    fig._js2py_pointsCallback = {
        "event_type": "plotly_selected",
        "points": {"xs": [0.1, 0.2], "ys": [0.5, 0.6], "point_indexes": [7, 3], "trace_indexes": [0, 0]},
        "selector": {"type": "box", "selector_state": {"xrange": [0, 1], "yrange": [0, 1]}},
    }
    assert explorer.selected_indices.tolist() == [3, 7]
    explorer.on_deselect(fig.data[0], Points())
    assert len(explorer.selected) == 0 and "Select points" in explorer.controls["panel"].value
    # a selection made in code shows in the figure as well
    explorer.select_points([9, 4])
    assert (
        list(fig.data[0].selectedpoints) == [4, 9] and "2 pairs selected" in explorer.controls["panel"].value
    )
    explorer.clear_selection()
    assert fig.data[0].selectedpoints is None


def test_sliders_recategorize_like_cartography(explorer, map_df, pairs):
    # starts from the quantile rule a categorised map carries, else from the defaults
    rule = {"easy_q": 0.7, "hard_q": 0.3, "ambiguous_q": 0.5}
    assert DataMapExplorer(categorize(map_df, **rule), pairs).thresholds == rule
    assert DataMapExplorer(categorize(map_df, **rule), pairs, easy_q=0.4).thresholds == {
        "easy_q": 0.4,
        "hard_q": 0.4,
        "ambiguous_q": 0.5,
    }
    assert DataMapExplorer(categorize(map_df, rule="threshold"), pairs).thresholds == explorer.thresholds
    assert explorer.thresholds == {"easy_q": 0.5, "hard_q": 0.5, "ambiguous_q": pytest.approx(2 / 3)}
    expected = categorize(map_df)  # the default quantile rule
    assert explorer.counts.tolist() == category_counts(expected).tolist()
    assert explorer.data["category"].astype(str).tolist() == expected["category"].astype(str).tolist()

    explorer.set_color("category")
    fig = explorer.figure
    trace, uid, n_traces = fig.data[0], fig.data[0].uid, len(fig.data)
    counts = explorer.set_thresholds(ambiguous_q=0.5, easy_q=0.7, hard_q=0.3)
    want = categorize(map_df, ambiguous_q=0.5, easy_q=0.7, hard_q=0.3)
    assert counts.tolist() == category_counts(want).tolist() and counts.sum() == N
    cats = want["category"].astype(str).tolist()
    assert explorer.data["category"].astype(str).tolist() == cats
    # recoloured in place: same trace, one colour per point
    assert len(fig.data) == n_traces and fig.data[0] is trace and trace.uid == uid
    # one number per point and a stepped colour scale: the colour painted is the region's
    assert decode_colours(trace.marker.color, trace.marker.colorscale) == [CATEGORY_COLORS[c] for c in cats]
    assert explorer.point_colours() == [CATEGORY_COLORS[c] for c in cats]
    # each hover names the pair's region under the new thresholds
    assert trace.hovertemplate.startswith("region: %{text}") and list(trace.text) == cats
    assert [t.name for t in fig.data[1:]] == [f"{c} ({n})" for c, n in zip(CATEGORIES, counts)]
    label = explorer.controls["counts"].value
    assert all(f"{c}: <b>{n}</b>" in label for c, n in zip(CATEGORIES, counts))

    # the slider widgets drive the same logic; hard_q follows easy_q down so hard_q <= easy_q holds
    c = explorer.controls
    assert (c["ambiguous_q"].value, c["easy_q"].value, c["hard_q"].value) == (0.5, 0.7, 0.3)
    c["easy_q"].value = 0.2
    assert explorer.thresholds == {"easy_q": 0.2, "hard_q": 0.2, "ambiguous_q": 0.5}
    assert c["hard_q"].value == 0.2
    assert (
        explorer.counts.tolist() == category_counts(categorize(map_df, easy_q=0.2, ambiguous_q=0.5)).tolist()
    )
    c["hard_q"].value = 0.6  # above easy_q: easy_q moves up with it
    assert explorer.thresholds == {"easy_q": 0.6, "hard_q": 0.6, "ambiguous_q": 0.5}
    c["ambiguous_q"].value = 0.9
    want = categorize(map_df, easy_q=0.6, ambiguous_q=0.9)
    assert explorer.counts.tolist() == category_counts(want).tolist()
    assert decode_colours(trace.marker.color, trace.marker.colorscale) == [
        CATEGORY_COLORS[c] for c in want["category"].astype(str)
    ]
    assert list(trace.text) == want["category"].astype(str).tolist()  # the slider renames the hovers too

    # back to correctness: a continuous scale over the same trace
    c["color"].value = "correctness"
    assert explorer.color == "correctness" and fig.data[0] is trace
    assert list(trace.marker.color) == pytest.approx(map_df["correctness"].tolist())
    assert trace.marker.showscale is True and not any(t.visible for t in fig.data[1:])

    with pytest.raises(ParameterError, match="easy_q must be a number in"):
        explorer.set_thresholds(easy_q=1.5)
    with pytest.raises(ParameterError, match="hard_q .* must be <= easy_q"):
        explorer.set_thresholds(hard_q=0.8)
    assert explorer.thresholds == {"easy_q": 0.6, "hard_q": 0.6, "ambiguous_q": 0.9}  # unchanged


def test_export_round_trips_through_load_subset(explorer, map_df, tmp_path):
    explorer.select_points([10, 3, 250])
    path = explorer.export("my-pick")
    assert path == tmp_path / "subsets" / "my-pick.parquet"
    back = load_subset("my-pick", directory=tmp_path / "subsets")
    pd.testing.assert_frame_equal(back, explorer.selected, check_dtype=False)
    assert {
        "id",
        "query",
        "code",
        "language",
        "source",
        "split",
        "confidence",
        "variability",
        "category",
    } <= set(back.columns)
    meta = back.attrs["workbench_subset"]
    assert meta["what"] == "selection" and meta["n"] == 3 and meta["of"] == N and meta["easy_q"] == 0.5
    assert load_subset(path)["id"].tolist() == back["id"].tolist()

    explorer.set_thresholds(ambiguous_q=0.6, easy_q=0.55, hard_q=0.4)
    p = explorer.export("ah.parquet", what="ambiguous+hard")  # alias of ambiguous+hard-to-learn
    ah = load_subset(p)
    want = select(
        categorize(map_df, ambiguous_q=0.6, easy_q=0.55, hard_q=0.4), ("ambiguous", "hard-to-learn")
    )
    assert ah["id"].tolist() == want and set(ah["category"]) == {"ambiguous", "hard-to-learn"}
    easy = load_subset(explorer.export("easy", what="easy-to-learn"))
    assert len(easy) == explorer.counts["easy-to-learn"] and set(easy["category"]) == {"easy-to-learn"}

    with pytest.raises(ParameterError, match="exists; choose another name or pass overwrite=True"):
        explorer.export("my-pick")
    explorer.select_points([0])
    assert len(load_subset(explorer.export("my-pick", overwrite=True))) == 1
    with pytest.raises(ParameterError, match="name must be"):
        explorer.export("../escape")
    with pytest.raises(ParameterError, match="what must be one of"):
        explorer.export("x", what="hard")
    explorer.clear_selection()
    with pytest.raises(ParameterError, match="nothing is selected"):
        explorer.export("x")

    # the export box: a dropdown, a name, a button, a status line with the path or the error
    c = explorer.controls
    c["what"].value, c["name"].value = "hard-to-learn", "hard"
    c["button"].click()
    assert (
        "hard.parquet" in c["status"].value
        and f"wrote {explorer.counts['hard-to-learn']} pairs" in c["status"].value
    )
    c["button"].click()
    assert "exists" in c["status"].value


def test_load_subset_errors_name_the_file(tmp_path, monkeypatch):
    with pytest.raises(InputFormatError, match=r"nothing\.parquet.*no such training subset"):
        load_subset("nothing", directory=tmp_path)
    bad = tmp_path / "ids-only.parquet"
    pd.DataFrame({"id": ["a"], "code": ["x"]}).to_parquet(bad)
    with pytest.raises(
        InputFormatError, match=r"ids-only\.parquet: field 'query': missing column\(s\) \['query'\]"
    ):
        load_subset(bad)
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet")
    with pytest.raises(InputFormatError, match=r"junk\.parquet: not a readable parquet file"):
        load_subset(junk)


def test_the_explorers_plotly_widgets_load_plotly_js_once_per_page(explorer):
    """Every plotly widget of the explorer sends the module that imports plotly's bundle once per page
    (``viz.figure_widget``; the browser test checks the page holds one copy)."""
    import json as _json

    from workbench.viz.figure_widget import FigureWidget, shared_module

    explorer.widget  # noqa: B018 - builds the widgets
    figures = [w for w in explorer.controls.values() if isinstance(w, go.FigureWidget)]
    assert len(figures) >= 2 and all(isinstance(f, FigureWidget) and f._esm == shared_module() for f in figures)
    module = shared_module()
    assert "globalThis[KEY] ??= import(" in module and module.rstrip().endswith("export default bundle.default;")
    import plotly

    bundle = (Path(plotly.__file__).parent / "package_data" / "widgetbundle.js").read_text(encoding="utf-8")
    assert _json.dumps(bundle) in module  # the bundle itself, unchanged, as one string


def test_a_subset_written_without_the_explorer_reads_back(tmp_path):
    """``workbench.subsets`` is the format on its own: any pair table can be a training subset."""
    from workbench.errors import ParameterError
    from workbench.subsets import write_subset

    rows = pd.DataFrame({"id": ["a", "b"], "query": ["sum a list", "open a file"], "code": ["sum(x)", "open(p)"]})
    path = write_subset(tmp_path / "mine.parquet", rows, {"what": "hand-picked", "false_negatives": [["a", "b"]]})
    back = load_subset("mine", directory=tmp_path)
    pd.testing.assert_frame_equal(back, rows)
    meta = back.attrs["workbench_subset"]
    assert meta["what"] == "hand-picked" and meta["n"] == 2 and meta["created"] and path == tmp_path / "mine.parquet"
    with pytest.raises(ParameterError, match=r"missing column\(s\) \['code'\]"):
        write_subset(tmp_path / "bad.parquet", rows.drop(columns="code"), {})
    assert not (tmp_path / "bad.parquet").exists() and rows.attrs == {}


def test_default_directory_follows_workbench_data(map_df, pairs, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path))
    ex = DataMapExplorer(map_df, pairs)
    assert ex.out_dir == tmp_path / "subsets"
    ex.select_pairs(map_df["pair_id"][:4])
    ex.export("first-four")
    assert load_subset("first-four")["id"].tolist() == map_df["pair_id"][:4].tolist()


def test_headless_shows_a_static_figure(explorer, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HEADLESS", "1")
    explorer.set_color("category")
    fig = explorer.show()
    assert type(fig) is go.Figure and sum(len(t.x) for t in fig.data) == N
    assert explorer._w is None  # no widget was built
    monkeypatch.setenv("WORKBENCH_HEADLESS", "0")
    import ipywidgets

    assert isinstance(explorer.show(), ipywidgets.VBox)


def test_bad_inputs_are_clear_errors(map_df, pairs):
    with pytest.raises(ParameterError, match=r"map_df lacks column\(s\) \['correctness'\]"):
        DataMapExplorer(map_df.drop(columns="correctness"), pairs)
    with pytest.raises(ParameterError, match=r"pairs lacks column\(s\) \['code'\]"):
        DataMapExplorer(map_df, pairs.drop(columns="code"))
    with pytest.raises(ParameterError, match="1 of 301 map pairs are not in pairs"):
        extra = pd.DataFrame(
            {"pair_id": ["feedface"], "confidence": [0.5], "variability": [0.1], "correctness": [1.0]}
        )
        DataMapExplorer(pd.concat([map_df, extra]), pairs)
    with pytest.raises(ParameterError, match="twice"):
        DataMapExplorer(pd.concat([map_df, map_df.iloc[:1]]), pairs)
    with pytest.raises(ParameterError, match="empty"):
        DataMapExplorer(map_df.iloc[:0], pairs)
    with pytest.raises(ParameterError, match="color must be"):
        DataMapExplorer(map_df, pairs, color="loss")
    with pytest.raises(ParameterError, match="NaN"):
        DataMapExplorer(map_df.assign(confidence=np.nan), pairs)
    ex = DataMapExplorer(map_df, pairs)
    with pytest.raises(ParameterError, match="index 300 out of range for 300 points"):
        ex.select_points([0, 300])
    with pytest.raises(ParameterError, match="integers"):
        ex.select_points([0.5])
    with pytest.raises(ParameterError, match="unknown pair_id"):
        ex.select_pairs(["nope"])


def test_twenty_thousand_points_update_in_place():
    rng = np.random.default_rng(3)
    n = 20_000
    ids = [f"{i:016x}" for i in range(n)]
    m = pd.DataFrame(
        {
            "pair_id": ids,
            "confidence": rng.uniform(size=n),
            "variability": rng.uniform(0, 0.5, n),
            "correctness": rng.uniform(size=n),
        }
    )
    p = pd.DataFrame(
        {"id": ids[::-1], "query": "return the sum of x", "code": "def f(x):\n    return sum(x)\n"}
    )
    ex = DataMapExplorer(m, p, color="category", max_points=n)  # every point a marker (beyond: test_linked_views)
    fig = ex.figure
    uid = fig.data[0].uid
    ex.set_thresholds(ambiguous_q=0.5)
    ex.on_selection(fig.data[0], Points(point_inds=list(range(0, n, 3))), None)
    assert len(fig.data) == 4 and fig.data[0].uid == uid and len(fig.data[0].marker.color) == n
    assert ex.counts.tolist() == category_counts(categorize(m, ambiguous_q=0.5)).tolist()
    assert "6667 pairs selected" in ex.panel_html()


def test_selection_shapes_select_when_the_points_event_is_lost(explorer, map_df):
    # ipywidgets merges queued messages, so the browser can deliver an unhover in place of the
    # plotly_selected event; the relayout with the lasso / box shapes still arrives (test_browser)
    fig = explorer.figure
    v, c = map_df["variability"].to_numpy(), map_df["confidence"].to_numpy()
    lasso = "M0.05,0.2L0.3,0.2L0.3,0.7L0.05,0.7Z"  # a rectangle drawn with the lasso
    fig._js2py_pointsCallback = {
        "event_type": "plotly_unhover",
        "points": {"xs": [0.1], "ys": [0.5], "point_indexes": [7], "trace_indexes": [0]},
    }
    fig._js2py_relayout = {
        "relayout_data": {"selections": [{"xref": "x", "yref": "y", "type": "path", "path": lasso}]},
        "source_view_id": "view",
    }
    want = np.flatnonzero((v > 0.05) & (v < 0.3) & (c > 0.2) & (c < 0.7))
    assert len(want) > 10 and explorer.selected_indices.tolist() == want.tolist()
    assert f"{len(want)} pairs selected" in explorer.controls["panel"].value
    # a box added with shift: the union; other relayouts leave the selection alone
    box = {"type": "rect", "x0": 0.4, "x1": 0.35, "y0": 0.9, "y1": 0.1}
    fig._js2py_relayout = {
        "relayout_data": {"selections": [{"type": "path", "path": lasso}, box]},
        "source_view_id": "view",
    }
    want2 = np.union1d(want, np.flatnonzero((v >= 0.35) & (v <= 0.4) & (c >= 0.1) & (c <= 0.9)))
    assert explorer.selected_indices.tolist() == want2.tolist()
    fig._js2py_relayout = {"relayout_data": {"xaxis.range[0]": 0.1}, "source_view_id": "view"}
    assert explorer.selected_indices.tolist() == want2.tolist()
    fig._js2py_relayout = {"relayout_data": {"selections": []}, "source_view_id": "view"}  # double click
    assert len(explorer.selected) == 0
