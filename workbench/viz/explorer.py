"""An interactive data map for JupyterLab: linked views of the pairs, search and filters, training
over time, one pair inspected, the category thresholds, subset export.

Dataset cartography (Swayamdipta et al. 2020) is read by looking at the pairs in each region of
the map; step 3 of Select then MixUp (papers/000) then trains on a region. ``DataMapExplorer``
joins a data map (``cartography.data_map``) with its pairs and shows:

- the map (``go.FigureWidget``, one ``go.Scattergl`` trace, variability x confidence), coloured
  by correctness or by category; box / lasso selection lists the selected pairs below it, with
  their query and syntax-highlighted code;
- three sliders for the quantile rule of ``cartography.categorize`` (``ambiguous_q``, ``easy_q``,
  ``hard_q``): moving one re-categorises and recolours the points in place (no trace is rebuilt,
  so 20k+ points stay responsive);
- an export box writing the selection, a category, or ambiguous + hard-to-learn as a training
  subset parquet (the format and ``load_subset`` live in :mod:`workbench.subsets`; the training notebook consumes it).

Linked views (issue 24): the map, an embedding projection (``projection=``, or computed from the
code embeddings with ``project()``), a bar chart of any column (a numeric one in bins) and a table,
over one ``viz.crossfilter.CrossFilter``: a lasso on either scatter, a bar clicked, table rows chosen
or ``explorer.select(...)`` from code select the same pairs in every view, and unselected points
stay on screen, dimmed. Filters (``filter``, ``search``, ``semantic_search``) narrow every view.
``set_checkpoint`` moves each point to its confidence and variability after that checkpoint
(``cartography.map_over_time``); ``inspect`` shows one pair with its dynamics curve and what the
model retrieves for its query, where a code can be marked as a false negative (saved with exported
subsets). The drawing of each view is in ``viz.explorer_views``.

Every interaction is a public method (``select``, ``select_points``, ``filter``, ``search``,
``on_selection``, ``on_layout_selections``, ``set_thresholds``, ``set_color``, ``set_checkpoint``,
``inspect``, ``export``), so the logic runs, and is tested, without a browser. Under
``WORKBENCH_HEADLESS=1`` (set by ``workbench run``) ``show()`` gives the static
``datamap_figure`` instead of widgets, which papermill can store.

Why one module of this size: it is one widget; its state, its callbacks and the figure they update
change together.
"""

from __future__ import annotations

import contextlib
import html
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench import cartography
from workbench.errors import ParameterError
from workbench.progress import headless
from workbench.store import atomic_write_parquet
from workbench.subsets import (
    SUBSET_COLUMNS,
    load_false_negatives,
    load_subset,
    subset_file,
    subsets_dir,
    write_subset,
)
from workbench.viz import explorer_views as views
from workbench.viz.code import highlight_code
from workbench.viz.crossfilter import CrossFilter, as_mask
from workbench.viz.datamap import CATEGORY_COLORS, _short, datamap_figure
from workbench.viz.figure_widget import FigureWidget

__all__ = ["DataMapExplorer", "load_subset", "load_false_negatives", "subsets_dir", "SUBSET_COLUMNS", "EXPORT_CHOICES"]

# what ``export`` can write besides the selection (Select then MixUp keeps ambiguous + hard-to-learn)
AMBIGUOUS_HARD = "ambiguous+hard-to-learn"
EXPORT_CHOICES = ("selection", "view", *cartography.CATEGORIES, AMBIGUOUS_HARD)


def _cell(v: Any) -> str:
    """A table value as a row shows it: floats to three decimals."""
    return f"{v:.3f}" if isinstance(v, float | np.floating) else str(v)


_MAP_NEEDS = ("pair_id", "confidence", "variability", "correctness")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _in_polygon(x: np.ndarray, y: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Even-odd rule: which points (x, y) lie inside the polygon with vertices (px, py)."""
    inside = np.zeros(len(x), dtype=bool)
    j = len(px) - 1
    for i in range(len(px)):
        crosses = (py[i] > y) != (py[j] > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = px[i] + (px[j] - px[i]) * (y - py[i]) / (py[j] - py[i])
        inside ^= crosses & (x < x_at)
        j = i
    return inside


def _same_points(a: Any, b: np.ndarray | None) -> bool:
    """Whether a trace's ``selectedpoints`` already are ``b`` (no restyle, no redraw, then)."""
    if a is None or b is None:
        return a is None and b is None
    return np.array_equal(np.asarray(a), b)


def _arrow_strings(texts: pd.Series, large: bool = False) -> Any:
    """``texts`` as one Arrow string array (object columns through ``str``; ``large``: 64-bit offsets)."""
    import pyarrow as pa

    values = texts.astype(str).to_numpy(dtype=object) if texts.dtype == object else texts
    arr = pa.array(values, type=pa.large_string() if large else pa.string())
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _word_counts(texts: pd.Series) -> np.ndarray:
    """Whitespace-separated words per text, in Arrow's compute kernels (100,000 texts in milliseconds)."""
    import pyarrow.compute as pc

    trimmed = pc.utf8_trim_whitespace(_arrow_strings(texts))
    n = pc.list_value_length(pc.utf8_split_whitespace(trimmed)).to_numpy(zero_copy_only=False).astype("int64")
    return np.where(pc.equal(trimmed, "").to_numpy(zero_copy_only=False), 0, n)


def _line_counts(texts: pd.Series) -> np.ndarray:
    """Lines per text (newlines + 1): the newlines of all texts found at once in Arrow's buffer and
    counted per text from its offsets (100,000 codes: 0.2 s; ``Series.str.count`` took 0.9 s)."""
    arr = _arrow_strings(texts, large=True)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    buf = arr.buffers()[2]
    newlines = np.flatnonzero(np.frombuffer(buf, dtype=np.uint8) == 10) if buf is not None else np.zeros(0, np.int64)
    at = np.searchsorted(newlines, offsets)
    return (at[1:] - at[:-1]).astype("int64") + 1


class DataMapExplorer:
    """Interactive data map over ``map_df`` (``cartography.data_map``) and its ``pairs`` (id, query, code).

    Args:
        map_df: one row per pair: ``pair_id``, ``confidence``, ``variability``, ``correctness``.
        pairs: the corpus frame the dynamics came from; every ``pair_id`` must be one of its ``id``.
        out_dir: where ``export`` writes (default ``subsets_dir()``).
        easy_q, hard_q, ambiguous_q: the quantile rule of ``cartography.categorize`` to start from
            (default: the rule in ``map_df.attrs`` if it was categorised with quantiles, else 0.5,
            ``easy_q``, 2/3).
        color: the column the points are coloured by ("correctness", "category", or any column of
            the map or the pairs: numbers on a scale, other values by their ten most frequent).
        max_listed: how many selected pairs the panel and the table show (the count is always shown).
        projection: ``pair_id``, ``x``, ``y`` for every map pair (e.g. ``projection.project`` of the
            code embeddings): the second scatter, linked to the map; or a method of
            ``projection.METHODS`` ("umap", "pca", ...) to project the code embeddings when the
            widget is first shown (a headless run never computes it); ``project()`` does it now.
        embeddings: ``(pair_ids, matrix)``, the pairs' code embeddings under the run's model (rows
            L2-normalised or not): semantic search, retrieval in the inspector and ``project()``.
            Without them, ``encoder`` encodes the codes on first use.
        encoder: the run's model (a ``BiEncoder``): encodes a semantic search's text, and the codes
            when ``embeddings`` is not given.
        dynamics, dynamics_mode: the training-dynamics table the map came from: the slider over
            checkpoints (``set_checkpoint``) and each pair's curve in the inspector.
        bar_column: the column the bar chart starts on.
        top_k: how many retrieved codes the inspector lists.
        max_points: above this many pairs each scatter draws every point into an image (numpy, a few
            tens of milliseconds per change) and a seeded random ``max_points`` of them as markers, for
            hover and lasso; a box or lasso still selects every pair inside it. Redrawing 100,000 WebGL
            markers costs the browser about a second per change; the image keeps 250,000 fluid.
    """

    def __init__(
        self,
        map_df: pd.DataFrame,
        pairs: pd.DataFrame,
        *,
        out_dir: str | os.PathLike | None = None,
        easy_q: float | None = None,
        hard_q: float | None = None,
        ambiguous_q: float | None = None,
        color: str = "correctness",
        max_listed: int = 50,
        hover_chars: int = 80,
        code_lines: int = 40,
        marker_size: int = 4,
        title: str = "Data map",
        projection: pd.DataFrame | None = None,
        embeddings: tuple[Any, np.ndarray] | None = None,
        encoder: Any = None,
        dynamics: pd.DataFrame | None = None,
        dynamics_mode: str | None = None,
        bar_column: str = "category",
        top_k: int = 10,
        max_points: int = 10_000,
    ):
        if not isinstance(map_df, pd.DataFrame) or not isinstance(pairs, pd.DataFrame):
            raise ParameterError("DataMapExplorer: map_df and pairs must be pandas DataFrames")
        missing = [c for c in _MAP_NEEDS if c not in map_df.columns]
        if missing:
            raise ParameterError(
                f"DataMapExplorer: map_df lacks column(s) {missing}; build it with cartography.data_map()"
            )
        missing = [c for c in SUBSET_COLUMNS if c not in pairs.columns]
        if missing:
            raise ParameterError(
                f"DataMapExplorer: pairs lacks column(s) {missing}; pass the corpus frame (id, query, code, ...)"
            )
        if len(map_df) == 0:
            raise ParameterError("DataMapExplorer: map_df is empty (no training dynamics recorded?)")
        dup = map_df["pair_id"][map_df["pair_id"].duplicated()]
        if len(dup):
            raise ParameterError(
                f"DataMapExplorer: map_df lists pair {dup.iloc[0]!r} twice; build one map per mode"
            )
        dup = pairs["id"][pairs["id"].duplicated()]
        if len(dup):
            raise ParameterError(f"DataMapExplorer: pairs has id {dup.iloc[0]!r} twice")
        # each map pair's row in pairs (-1: absent); an index lookup, ten times faster than Series.isin
        # on 100,000 Arrow strings (2.1 s), and reused below to put the pairs in the map's order
        where = pd.Index(pairs["id"]).get_indexer(map_df["pair_id"])
        unknown = pd.Series(where < 0, index=map_df.index)
        if unknown.any():
            ex = map_df["pair_id"][unknown].head(3).tolist()
            raise ParameterError(
                f"DataMapExplorer: {int(unknown.sum())} of {len(map_df)} map pairs are not in pairs "
                f"(e.g. {ex}); pass the corpus the training dynamics were recorded on"
            )
        if isinstance(max_listed, bool) or not isinstance(max_listed, int) or max_listed < 1:
            raise ParameterError(
                f"DataMapExplorer: max_listed must be a positive integer, got {max_listed!r}"
            )
        for c in ("confidence", "variability", "correctness"):
            if not np.isfinite(map_df[c].to_numpy(dtype=float)).all():
                raise ParameterError(f"DataMapExplorer: map_df column {c!r} has NaN or infinite values")

        map_cols = [c for c in map_df.columns if c != "category"]
        self._map = map_df[map_cols].reset_index(drop=True)
        derived = {*self._map.columns, *cartography.MAP_COLUMNS, "category"}
        pair_cols = [c for c in pairs.columns if c == "id" or c not in derived]
        self._pairs = pairs[pair_cols].iloc[where].reset_index(drop=True)
        self._pair_columns = list(self._pairs.columns)
        self.out_dir = Path(out_dir) if out_dir is not None else subsets_dir()
        self.max_listed = max_listed
        self.hover_chars = hover_chars
        self.code_lines = code_lines
        self.marker_size = marker_size
        self.title = title
        self.last_export: Path | None = None

        rule = map_df.attrs.get("category_rule") or {}
        start = rule if rule.get("rule") == "quantile" else {}
        easy = (
            easy_q
            if easy_q is not None
            else start.get("easy_q", cartography.RULE_DEFAULTS["quantile"]["easy_q"])
        )
        if hard_q is not None:
            hard = hard_q
        else:  # as in categorize, hard_q follows an explicit easy_q
            hard = easy if easy_q is not None else start.get("hard_q", easy)
        amb = (
            ambiguous_q
            if ambiguous_q is not None
            else start.get("ambiguous_q", cartography.RULE_DEFAULTS["quantile"]["ambiguous_q"])
        )
        self._cv = self._map[["confidence", "variability"]]
        self._thresholds: dict[str, float] = {}
        self._category = np.empty(0, dtype=object)
        self._cf = CrossFilter(self._table(), "pair_id")
        self._colour_cache: dict[str, dict[str, Any]] = {}
        self._code_html: dict[int, str] = {}  # highlighted code per point, as the panel lists them
        self._recategorize(easy_q=easy, hard_q=hard, ambiguous_q=amb)
        if color not in self._cf.table.columns:
            raise ParameterError(
                f"DataMapExplorer: color must be 'correctness', 'category' or another column of the map or "
                f"the pairs ({list(self._cf.table.columns)}), got {color!r}"
            )
        self._color = color
        self._xy = (self._map["variability"].to_numpy(dtype=float), self._map["confidence"].to_numpy(dtype=float))
        self._checkpoint: int | None = None  # None: the final map
        self._timeline, self._tl_pos = self._align_timeline(dynamics, dynamics_mode)
        self._emb = self._align_embeddings(embeddings) if embeddings is not None else None
        self.encoder = encoder
        self._projection_method: str | None = None
        if isinstance(projection, str):
            from workbench.projection import METHODS

            if projection not in METHODS:
                raise ParameterError(f"DataMapExplorer: projection must be a frame or one of {METHODS}, got {projection!r}")
            if encoder is None and embeddings is None:
                raise ParameterError(f"DataMapExplorer: projection={projection!r} needs encoder= or embeddings=")
            self._projection_method = projection  # computed when the widgets are built (never headless)
        elif projection is not None:
            self._set_projection(projection)
        if bar_column not in self._cf.table.columns:
            raise ParameterError(f"DataMapExplorer: bar_column {bar_column!r} is not a column; have {list(self._cf.table.columns)}")
        self.bar_column = bar_column
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ParameterError(f"DataMapExplorer: top_k must be a positive integer, got {top_k!r}")
        self.top_k = top_k
        if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 1:
            raise ParameterError(f"DataMapExplorer: max_points must be a positive integer, got {max_points!r}")
        self.max_points = max_points
        self._shown: np.ndarray | None = None  # the pairs drawn as markers when not all of them are
        if len(self) > max_points:
            self._shown = np.sort(np.random.default_rng(0).choice(len(self), max_points, replace=False))
        self._inspected: str | None = None
        self._hits: pd.DataFrame | None = None
        self._marks: dict[tuple[str, str], None] = {}  # (query's pair, retrieved code's pair): false negative
        self._w: dict[str, Any] | None = None  # the widgets, built on first use
        self._syncing = False
        self._sort: tuple[str | None, bool] = (None, False)  # the table's order: (column or None, descending)

    def _table(self) -> pd.DataFrame:
        """The crossfilter's table: map columns, category, pair columns and two lengths, in plot order."""
        extra = self._pairs[[c for c in self._pair_columns if c != "id"]].reset_index(drop=True)
        table = pd.concat([self._map.assign(category=""), extra], axis=1)  # no copy of the text columns
        table["query_words"] = _word_counts(self._pairs["query"])
        table["code_lines"] = _line_counts(self._pairs["code"])
        return table

    def _positions(self, frame: pd.DataFrame, what: str) -> np.ndarray:
        """Rows of ``frame`` (by ``pair_id``) in plot order; every map pair must be there."""
        if "pair_id" not in frame.columns:
            raise ParameterError(f"DataMapExplorer: {what} needs a 'pair_id' column; has {list(frame.columns)}")
        pos = pd.Index(frame["pair_id"]).get_indexer(self._map["pair_id"])
        if (pos < 0).any():
            miss = self._map["pair_id"][pos < 0]
            raise ParameterError(
                f"DataMapExplorer: {what} lacks {len(miss)} of the map's {len(self)} pairs (e.g. {miss.head(3).tolist()})"
            )
        return pos

    def _align_timeline(self, dynamics: pd.DataFrame | None, mode: str | None):
        if dynamics is None:
            return None, None
        tl = cartography.map_over_time(dynamics, mode)
        pos = self._positions(pd.DataFrame({"pair_id": tl.pair_ids}), "dynamics")
        return tl, pos

    def _set_projection(self, projection: pd.DataFrame) -> None:
        missing = [c for c in ("pair_id", "x", "y") if c not in projection.columns]
        if missing:
            raise ParameterError(f"DataMapExplorer: projection lacks column(s) {missing}; it needs pair_id, x, y")
        pos = self._positions(projection, "projection")
        for c in ("x", "y"):
            v = projection[c].to_numpy(dtype=float)[pos]
            if not np.isfinite(v).all():
                raise ParameterError(f"DataMapExplorer: projection column {c!r} has NaN or infinite values")
            self._cf.table[c] = v

    def _align_embeddings(self, embeddings: tuple[Any, np.ndarray]) -> np.ndarray:
        try:
            ids, matrix = embeddings
        except (TypeError, ValueError):
            raise ParameterError("DataMapExplorer: embeddings must be (pair_ids, matrix)") from None
        matrix = np.asarray(matrix, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != len(ids):
            raise ParameterError(
                f"DataMapExplorer: embeddings need one row per pair id: {len(ids)} ids, matrix of shape {matrix.shape}"
            )
        emb = matrix[self._positions(pd.DataFrame({"pair_id": list(ids)}), "embeddings")]
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        return emb / np.where(norms > 0, norms, 1.0)

    # ----------------------------------------------------------------- state (pure Python)

    def __len__(self) -> int:
        return len(self._map)

    @property
    def data(self) -> pd.DataFrame:
        """All points in plot order: the map columns, ``category``, and the pair columns."""
        out = self._map.copy()
        out["category"] = pd.Categorical(self._category, categories=list(cartography.CATEGORIES))
        extra = [c for c in self._pair_columns if c != "id"]
        return pd.concat([out, self._pairs[extra]], axis=1)

    @property
    def thresholds(self) -> dict[str, float]:
        """The current quantile rule: ``easy_q``, ``hard_q``, ``ambiguous_q``."""
        return dict(self._thresholds)

    @property
    def counts(self) -> pd.Series:
        """Pairs per category under the current thresholds (``CATEGORIES`` order)."""
        s = pd.Series(self._category).value_counts()
        return s.reindex(list(cartography.CATEGORIES), fill_value=0).astype("int64").rename("pairs")

    @property
    def selected_indices(self) -> np.ndarray:
        """Plot indices of the selected pairs: in view and inside every view's brush."""
        return np.flatnonzero(self._cf.selected_mask)

    @property
    def selected(self) -> pd.DataFrame:
        """The selected pairs (plot order): pair columns, then confidence, variability, correctness, category."""
        return self._rows(self.selected_indices)

    @property
    def selection(self) -> pd.DataFrame:
        """The selected pairs as a DataFrame (the same as ``selected``): what a notebook cell reads."""
        return self.selected

    @property
    def view(self) -> pd.DataFrame:
        """The pairs that pass every filter (all of them when no filter is set)."""
        return self._rows(np.flatnonzero(self._cf.view_mask))

    @property
    def crossfilter(self) -> CrossFilter:
        """The linked-selection state every view reads (filters, brushes, counts per column)."""
        return self._cf

    @property
    def color(self) -> str:
        return self._color

    def _rows(self, idx: np.ndarray) -> pd.DataFrame:
        out = self._pairs.iloc[idx].reset_index(drop=True)
        for c in ("confidence", "variability", "correctness"):
            out[c] = self._map[c].to_numpy()[idx]
        out["category"] = self._category[idx].astype(str)
        return out

    def _recategorize(self, **q: float) -> None:
        cat = cartography.categorize(self._cv, rule="quantile", **q)  # validates, names the bad value
        self._category = cat["category"].astype(str).to_numpy(dtype=object)
        self._cf.set_column("category", self._category)
        r = cat.attrs["category_rule"]
        self._thresholds = {k: float(r[k]) for k in ("easy_q", "hard_q", "ambiguous_q")}

    # ----------------------------------------------------------------- selecting (brushes)

    def select(self, what: Any) -> pd.DataFrame:
        """Select pairs from code: a list of ``pair_id``, a boolean mask over ``crossfilter.table``, or a
        predicate on it (``lambda t: t["code_lines"] > 30``). Replaces every view's brush, shows in
        every view; returns ``selection``."""
        mask = as_mask(self._cf.table, what, "pair_id", "select")
        return self._brush("select", np.flatnonzero(mask))

    def select_points(self, indices: Iterable[int]) -> pd.DataFrame:
        """Select points by their index in the plot (= row of ``data``); returns ``selected``.

        Every view shows the selection (the other points fade), as after a box / lasso.
        """
        return self._brush("select", self._check_indices(indices))

    def _check_indices(self, indices: Iterable[int]) -> np.ndarray:
        idx = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices)
        if idx.size and (idx.dtype.kind not in "iu"):
            raise ParameterError(f"select_points: indices must be integers, got dtype {idx.dtype}")
        idx = np.unique(idx.astype(np.int64))
        if idx.size and (idx[0] < 0 or idx[-1] >= len(self)):
            bad = int(idx[0] if idx[0] < 0 else idx[-1])
            raise ParameterError(f"select_points: index {bad} out of range for {len(self)} points")
        return idx

    def _brush(self, view: str, idx: np.ndarray) -> pd.DataFrame:
        """Set ``view``'s brush to the points ``idx`` (empty: remove it). A selection from code
        (``"select"``) replaces every brush; a gesture in a view replaces the one from code."""
        if view == "select":
            self._cf.clear_brushes()
        else:
            self._cf.clear_brushes("select")
        if len(idx):
            mask = np.zeros(len(self), dtype=bool)
            mask[idx] = True
            self._cf.brush(view, mask)
        else:
            self._cf.brush(view, None)
        self._refresh_selection(origin=view)
        return self.selected

    def select_pairs(self, pair_ids: Iterable[str]) -> pd.DataFrame:
        """Select points by ``pair_id``; unknown ids are an error."""
        pos = pd.Index(self._map["pair_id"])
        ids = list(pair_ids)
        loc = pos.get_indexer(ids)
        if (loc < 0).any():
            raise ParameterError(
                f"select_pairs: unknown pair_id(s) {[i for i, j in zip(ids, loc) if j < 0][:5]}"
            )
        return self.select_points(loc)

    def clear_selection(self) -> None:
        """Remove every brush (filters stay)."""
        self._cf.clear_brushes()
        self._refresh_selection(origin=None)

    def _view_of(self, trace: Any) -> str:
        w = self._w
        if w is not None and "projection" in w and trace is not None and trace is w["projection"].data[0]:
            return "projection"
        return "map"

    def on_selection(self, trace: Any, points: Any, selector: Any = None) -> None:
        """The plotly selection callback (``trace.on_selection``) of either scatter: ``points.point_inds``
        are plot indices."""
        view = self._view_of(trace)
        if self._shown is None:
            self._brush(view, self._check_indices(points.point_inds))
            return
        idx = self._from_selector(selector, view) if selector is not None else None
        if idx is None:  # no shape: the markers picked, as pairs
            picked = np.asarray(points.point_inds, dtype=np.int64)
            if picked.size and (picked.min() < 0 or picked.max() >= len(self._shown)):
                raise ParameterError(f"on_selection: marker index out of range for {len(self._shown)} markers")
            idx = self._shown[picked]
        self._brush(view, idx)

    def on_deselect(self, trace: Any, points: Any) -> None:
        """The plotly deselect callback (double click): removes that scatter's brush."""
        self._brush(self._view_of(trace), np.empty(0, dtype=np.int64))

    def on_layout_selections(self, selections: Iterable[Any], view: str = "map") -> None:
        """Select the points inside plotly selection shapes (``layout.selections``: box or lasso).

        The browser reports a box / lasso twice: a ``plotly_selected`` points event
        (``on_selection``) and a relayout carrying the drawn shapes. Each travels on one widget
        trait, and ipywidgets merges the messages that queue while the kernel is busy (the last
        value of a trait wins), so a hover / unhover right after the mouse is released can
        overwrite the points event: in JupyterLab the points highlight and the panel stays empty.
        The shapes come in the same merged message, so the selection is recomputed from them too.
        """
        idx = self._points_in(selections or (), view)
        if idx is None:
            return
        current = self._cf.brush_mask(view)
        have = np.flatnonzero(current) if current is not None else np.empty(0, dtype=np.int64)
        if not np.array_equal(idx, have):
            self._brush(view, idx)

    def _on_relayout_msg(self, change: dict[str, Any], view: str = "map") -> None:
        data = (change.get("new") or {}).get("relayout_data") or {}
        if "selections" in data:  # plotly.py does not update fig.layout.selections from the browser
            self.on_layout_selections(data["selections"], view)

    def _points_in(self, selections: Iterable[Any], view: str = "map") -> np.ndarray | None:
        """Plot indices inside the union of plotly selection shapes (``rect`` or lasso ``path``, data
        coordinates of ``view``'s scatter); None when a shape cannot be read (then the points event decides)."""
        if view == "projection":
            x, y = (self._cf.table[c].to_numpy(dtype=float) for c in ("x", "y"))
        else:
            x, y = self._xy
        inside = np.zeros(len(x), dtype=bool)
        for sel in selections:
            get = sel.get if isinstance(sel, dict) else lambda k, _s=sel: getattr(_s, k, None)
            if (get("xref") or "x") != "x" or (get("yref") or "y") != "y":
                return None
            kind = get("type") or ("path" if get("path") else "rect")
            if kind == "rect":
                try:
                    x0, x1, y0, y1 = (float(get(k)) for k in ("x0", "x1", "y0", "y1"))
                except (TypeError, ValueError):
                    return None
                inside |= (x >= min(x0, x1)) & (x <= max(x0, x1)) & (y >= min(y0, y1)) & (y <= max(y0, y1))
            elif kind == "path":
                nums = [float(v) for v in _NUMBER.findall(str(get("path") or ""))]
                if len(nums) < 6 or len(nums) % 2:
                    return None
                inside |= _in_polygon(x, y, np.asarray(nums[0::2]), np.asarray(nums[1::2]))
            else:
                return None
        return np.flatnonzero(inside & np.isfinite(x) & np.isfinite(y))

    # ----------------------------------------------------------------- filters and search

    def filter(self, column: str, values: Iterable[Any] | None = None, low: float | None = None,
               high: float | None = None) -> int:
        """Keep the pairs whose ``column`` is one of ``values``, or within ``low``..``high`` for a number;
        with neither, remove the column's filter. Every view follows; returns the pairs in view."""
        if values is None and low is None and high is None:
            n = self._cf.clear_filter(column)
        elif values is not None:
            n = self._cf.filter_values(column, [values] if isinstance(values, str) else values)
        else:
            n = self._cf.filter_range(column, low, high)
        self._refresh_selection(origin=None)
        return n

    def search(self, text: str | None, columns: Iterable[str] = ("query", "code"), regex: bool = False) -> int:
        """Keep the pairs whose query or code contains ``text`` (case-insensitive; a regular expression
        with ``regex=True``); empty removes the search. Returns the pairs in view."""
        n = self._cf.search(text, tuple(columns), regex=regex)
        self._refresh_selection(origin=None)
        return n

    def clear_filters(self) -> None:
        """Remove every filter and the search (brushes stay)."""
        self._cf.clear_filter()
        self._refresh_selection(origin=None)

    def code_embeddings(self) -> np.ndarray:
        """The pairs' code embeddings (plot order, L2-normalised): the ones given, else the encoder's, once."""
        if self._emb is None:
            if self.encoder is None:
                raise ParameterError(
                    "DataMapExplorer: semantic search and retrieval need the run's model: pass encoder= "
                    "(and embeddings=(pair_ids, matrix) to skip encoding the codes)"
                )
            emb = np.asarray(self.encoder.encode(self._pairs["code"].astype(str).tolist(), "code"), dtype=np.float32)
            norms = np.linalg.norm(emb, axis=1, keepdims=True)
            self._emb = emb / np.where(norms > 0, norms, 1.0)
        return self._emb

    def _nearest(self, text: str | None, k: int, code_row: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` codes nearest to ``text`` encoded as a query (or, without a model, to the code of
        ``code_row``), best first: ``retrieval.search``, the exact search every chapter uses."""
        from workbench.retrieval import search

        if self.encoder is None and code_row is None:
            raise ParameterError("DataMapExplorer: a text search by meaning needs encoder= (the run's model)")
        emb = self.code_embeddings()
        if self.encoder is None:
            q = emb[code_row]  # without a model, the pair's own code stands in for its query
        else:
            q = np.asarray(self.encoder.encode([text], "query", show_progress=False), dtype=np.float32)[0]
        scores, top = search((q / (np.linalg.norm(q) or 1.0))[None, :], emb, k)
        return top[0], scores[0]

    def semantic_search(self, text: str, k: int = 50) -> pd.DataFrame:
        """Select the ``k`` pairs whose code the run's model finds nearest to ``text`` (encoded as a
        query, cosine); returns them, nearest first, with their ``score``."""
        if not isinstance(text, str) or not text.strip():
            raise ParameterError("semantic_search: give a non-empty text")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ParameterError(f"semantic_search: k must be a positive integer, got {k!r}")
        top, scores = self._nearest(text, k)
        self._brush("select", np.sort(top))
        out = self._rows(top)
        out.insert(0, "score", scores.astype(float))
        return out

    # ----------------------------------------------------------------- training over time

    @property
    def checkpoints(self) -> list[int]:
        """The checkpoints of the dynamics given to the explorer (empty without ``dynamics``)."""
        return [] if self._timeline is None else [int(c) for c in self._timeline.checkpoints]

    def set_checkpoint(self, t: int | None) -> pd.DataFrame:
        """Move every point to its confidence and variability over the checkpoints up to index ``t``
        (``checkpoints[t]``; None or the last index: the final map). Regions, filters and brushes
        stay those of the final map, so one sees where today's regions were earlier in training.
        Returns the positions (pair_id, confidence, variability, correctness at t)."""
        if self._timeline is None:
            raise ParameterError("set_checkpoint: the explorer has no training dynamics; pass dynamics=")
        last = len(self._timeline.checkpoints) - 1
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not -last - 1 <= t <= last):
            raise ParameterError(f"set_checkpoint: t must be an index in 0..{last} or None, got {t!r}")
        tt = last if t is None else int(t) % (last + 1)
        pos = self._tl_pos
        conf, var = self._timeline.confidence[tt][pos], self._timeline.variability[tt][pos]
        self._checkpoint = None if tt == last else tt
        if tt == last:
            self._xy = (self._map["variability"].to_numpy(dtype=float), self._map["confidence"].to_numpy(dtype=float))
        else:
            self._xy = (var, conf)
        if self._w is not None:
            fig = self._w["figure"]
            with fig.batch_update():
                fig.data[0].x, fig.data[0].y = self._sub(self._xy[0]), self._sub(self._xy[1])
                self._draw_all(fig, "map")
                fig.layout.title.text = self._map_title()
            if "checkpoint" in self._w and self._w["checkpoint"].value != tt:
                self._syncing = True
                try:
                    self._w["checkpoint"].value = tt
                finally:
                    self._syncing = False
        return pd.DataFrame({"pair_id": self._map["pair_id"], "confidence": conf, "variability": var,
                             "correctness": self._timeline.correctness[tt][pos]})

    def _map_title(self) -> str:
        if self._checkpoint is None or self._timeline is None:
            return self.title
        n = len(self._timeline.checkpoints)
        return f"{self.title}: after checkpoint {self._checkpoint + 1} of {n}"

    # ----------------------------------------------------------------- many points: markers for a sample, an image of all

    def _sub(self, a: np.ndarray) -> np.ndarray:
        """The rows of ``a`` drawn as markers (all of them unless there are more than ``max_points``)."""
        return a if self._shown is None else a[self._shown]

    def _view_xy(self, view: str) -> tuple[np.ndarray, np.ndarray]:
        if view == "projection":
            return tuple(self._cf.table[c].to_numpy(dtype=float) for c in ("x", "y"))  # type: ignore[return-value]
        return self._xy

    def _ranges(self, view: str) -> tuple[tuple[float, float], tuple[float, float]]:
        x, y = self._view_xy(view)
        fx, fy = x[np.isfinite(x)], y[np.isfinite(y)]
        if view == "map":
            hi = float(fx.max()) if fx.size else 0.5
            return (0.0, max(hi * 1.04, 1e-3)), (-0.02, 1.02)
        (x0, x1), (y0, y1) = (float(fx.min()), float(fx.max())), (float(fy.min()), float(fy.max()))
        px, py = 0.04 * (x1 - x0 or 1.0), 0.04 * (y1 - y0 or 1.0)
        return (x0 - px, x1 + px), (y0 - py, y1 + py)

    def _image(self, view: str) -> dict[str, Any]:
        x, y = self._view_xy(view)
        active = bool(self._cf.brushes) or bool(self._cf.filters)
        strong = self._cf.highlight_mask if active else np.ones(len(self), dtype=bool)
        xr, yr = self._ranges(view)
        size = (760, 600) if view == "map" else (520, 460)
        return views.raster_image(x, y, views.point_rgb(self._colouring()), strong, xr, yr, size=size)

    def _draw_all(self, fig: go.FigureWidget, view: str) -> None:
        """With a sample of markers: every point's image behind them, and fixed axes spanning all points."""
        if self._shown is None:
            return
        xr, yr = self._ranges(view)
        fig.layout.images = [self._image(view)]
        fig.layout.xaxis.range = list(xr)
        fig.layout.yaxis.range = list(yr)

    def _from_selector(self, selector: Any, view: str) -> np.ndarray | None:
        """The pairs inside a plotly box / lasso selector (all pairs, not only the markers)."""
        kind = getattr(selector, "type", None)
        if kind == "box" and getattr(selector, "xrange", None) is not None:
            (x0, x1), (y0, y1) = selector.xrange, selector.yrange
            return self._points_in([{"type": "rect", "x0": x0, "x1": x1, "y0": y0, "y1": y1}], view)
        if kind == "lasso" and getattr(selector, "xs", None) is not None:
            path = "M" + "L".join(f"{a},{b}" for a, b in zip(selector.xs, selector.ys)) + "Z"
            return self._points_in([{"type": "path", "path": path}], view)
        return None

    # ----------------------------------------------------------------- one pair

    def inspect(self, pair_id: str) -> pd.DataFrame:
        """Show one pair in the inspector: text, provenance, scores, its curve over checkpoints, and
        the ``top_k`` codes of the map the model retrieves for its query (gold and marked false
        negatives flagged). Returns those retrieved codes (empty without a model)."""
        loc = pd.Index(self._map["pair_id"]).get_indexer([pair_id])[0]
        if loc < 0:
            raise ParameterError(f"inspect: unknown pair_id {pair_id!r}")
        self._inspected = str(pair_id)
        hits = pd.DataFrame(columns=["pair_id", "score", "code"])
        if self.encoder is not None or self._emb is not None:
            top, scores = self._nearest(str(self._pairs["query"].iloc[loc]), self.top_k, code_row=loc)
            hits = pd.DataFrame({"pair_id": self._map["pair_id"].to_numpy()[top], "score": scores,
                                 "code": self._pairs["code"].to_numpy()[top]})
        self._hits = hits
        self._refresh_inspector()
        return hits

    def mark_false_negative(self, code_pair_id: str, query_pair_id: str | None = None, flag: bool = True) -> pd.DataFrame:
        """Mark (or with ``flag=False`` unmark) the code of ``code_pair_id`` as a correct answer to the
        query of ``query_pair_id`` (default: the inspected pair): a false negative of that query, which
        export saves with the subset. Returns ``false_negatives``."""
        q = query_pair_id if query_pair_id is not None else self._inspected
        if q is None:
            raise ParameterError("mark_false_negative: inspect a pair first, or pass query_pair_id")
        ids = set(self._map["pair_id"])
        for what, v in (("query_pair_id", q), ("code_pair_id", code_pair_id)):
            if v not in ids:
                raise ParameterError(f"mark_false_negative: unknown {what} {v!r}")
        if code_pair_id == q:
            raise ParameterError("mark_false_negative: a pair's own code is its gold, not a false negative")
        if flag:
            self._marks[(str(q), str(code_pair_id))] = None
        else:
            self._marks.pop((str(q), str(code_pair_id)), None)
        self._refresh_inspector()
        return self.false_negatives

    @property
    def false_negatives(self) -> pd.DataFrame:
        """The marked false negatives: ``query_pair_id``, ``code_pair_id`` and their query and code."""
        rows = list(self._marks)
        pos = pd.Index(self._map["pair_id"])
        qi = pos.get_indexer([q for q, _ in rows])
        ci = pos.get_indexer([c for _, c in rows])
        return pd.DataFrame({"query_pair_id": [q for q, _ in rows], "code_pair_id": [c for _, c in rows],
                             "query": self._pairs["query"].to_numpy()[qi] if rows else [],
                             "code": self._pairs["code"].to_numpy()[ci] if rows else []})

    # ----------------------------------------------------------------- the bar chart

    def bar_summary(self, column: str | None = None, bins: int = 30) -> pd.DataFrame:
        """What the bar chart shows for ``column`` (default ``bar_column``): per value (or bin of a number)
        the pairs in view and the pairs selected."""
        column = column or self.bar_column
        if self._is_numeric(column):
            return self._cf.histogram(column, bins)
        if column == "category":  # the regions in their own order, empty ones included
            out = self._cf.value_counts(column, top=None).set_index("category")
            return out.reindex(list(cartography.CATEGORIES), fill_value=0).reset_index()
        return self._cf.value_counts(column)

    def _is_numeric(self, column: str) -> bool:
        col = self._cf.table[column] if column in self._cf.table.columns else None
        if col is None:
            raise ParameterError(f"no column {column!r}; columns: {list(self._cf.table.columns)}")
        return column != "category" and pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)

    def set_bar_column(self, column: str) -> None:
        """Show ``column`` in the bar chart (its brush is removed)."""
        self._is_numeric(column)  # validates
        self.bar_column = column
        self._cf.brush("bar", None)
        self._refresh_selection(origin=None)
        if self._w is not None and self._w["bar_column"].value != column:
            self._syncing = True
            try:
                self._w["bar_column"].value = column
            finally:
                self._syncing = False

    def click_bar(self, index: int, bins: int = 30) -> pd.DataFrame:
        """Select the pairs of the ``index``-th bar (clicking it again removes the bar's brush);
        returns ``selection``."""
        summary = self.bar_summary(bins=bins)
        if not 0 <= index < len(summary):
            raise ParameterError(f"click_bar: bar {index} out of range for {len(summary)} bars")
        col = self._cf.table[self.bar_column]
        if self._is_numeric(self.bar_column):
            lo, hi = float(summary["left"].iloc[index]), float(summary["right"].iloc[index])
            x = col.to_numpy(dtype=float)
            last = index == len(summary) - 1
            mask = (x >= lo) & ((x <= hi) if last else (x < hi))
        else:
            value = str(summary[self.bar_column].iloc[index])
            shown = set(summary[self.bar_column].astype(str))
            s = col.astype(str)
            mask = (~s.isin(shown - {"(other)"})).to_numpy() if value == "(other)" else (s == value).to_numpy()
        current = self._cf.brush_mask("bar")
        if current is not None and np.array_equal(current, mask):
            return self._brush("bar", np.empty(0, dtype=np.int64))
        return self._brush("bar", np.flatnonzero(mask))

    # ----------------------------------------------------------------- the table

    TABLE_COLUMNS = ("pair_id", "query", "category", "confidence", "variability")

    def table_rows(self) -> pd.DataFrame:
        """The pairs the table lists: the selection as the other views make it (the table's own
        rows chosen do not narrow it), in the order ``sort_table`` set, first ``max_listed``."""
        rows = self._cf.table.loc[self._cf.selected_except("table")]
        by, descending = self._sort
        if by is not None:
            key = None
            if by == "category":  # the regions in their own order, not alphabetical
                rank = {c: i for i, c in enumerate(cartography.CATEGORIES)}
                key = lambda s: s.astype(str).map(rank)  # noqa: E731
            rows = rows.sort_values(by, ascending=not descending, kind="stable", na_position="last", key=key)
        return rows.head(self.max_listed)

    @property
    def table_sort(self) -> tuple[str | None, bool]:
        """The table's order: (column, descending); (None, False) is the map's order."""
        return self._sort

    def sort_table(self, by: str | None, descending: bool = False) -> pd.DataFrame:
        """Order the table by a column of ``crossfilter.table`` (None: the map's order). The whole
        selection is sorted before the first ``max_listed`` are listed, so "the least confident pairs of
        this region" is a selection and one call. Returns ``table_rows()``."""
        if by is not None and by not in self._cf.table.columns:
            raise ParameterError(
                f"sort_table: by must be None or a column of the table ({list(self._cf.table.columns)}), got {by!r}"
            )
        self._sort = (by, bool(descending))
        if self._w is not None:
            self._syncing = True
            try:
                self._w["sort_by"].value = by or ""
                self._w["sort_desc"].value = bool(descending)
            finally:
                self._syncing = False
        self._refresh_table()
        return self.table_rows()

    def choose_rows(self, pair_ids: Iterable[str]) -> pd.DataFrame:
        """Choose rows of the table (a brush of their own: every view shows them); the first is inspected."""
        ids = list(pair_ids)
        mask = as_mask(self._cf.table, ids, "pair_id", "choose_rows")
        out = self._brush("table", np.flatnonzero(mask))
        if ids:
            self.inspect(ids[0])
        return out

    def set_thresholds(
        self, easy_q: float | None = None, hard_q: float | None = None, ambiguous_q: float | None = None
    ) -> pd.Series:
        """Re-categorise with new quantiles (unset ones keep their value); recolours in place; returns ``counts``."""
        q = self.thresholds
        q.update(
            {
                k: v
                for k, v in (("easy_q", easy_q), ("hard_q", hard_q), ("ambiguous_q", ambiguous_q))
                if v is not None
            }
        )
        self._recategorize(**q)
        with self._batched():
            if self._w is not None:  # the hovers name the new regions
                for name in ("figure", "projection"):
                    if name in self._w:
                        self._w[name].data[0].text = self._region_text()
            self._refresh_figure(colors_only=True)
            self._refresh_selection(origin=None)
        self._sync_sliders()
        self._refresh_counts()
        return self.counts

    def set_color(self, color: str) -> None:
        """Colour the points by a column: "correctness" (continuous), "category", or any other column
        of the map or the pairs (numbers on a scale, other values by their ten most frequent)."""
        if color not in self._cf.table.columns:
            raise ParameterError(
                f"set_color: color must be 'correctness', 'category' or another column "
                f"({list(self._cf.table.columns)}), got {color!r}"
            )
        self._color = color
        self._refresh_figure(colors_only=False)
        if self._w is not None and self._w["color"].value != color:
            self._syncing = True
            try:
                self._w["color"].value = color
            finally:
                self._syncing = False

    def export(self, name: str, what: str = "selection", *, overwrite: bool = False, view: bool = False) -> Path:
        """Write a training subset ``<out_dir>/<name>.parquet``; returns its path.

        ``what``: "selection", "view" (the pairs that pass the filters), a category, or
        "ambiguous+hard-to-learn" (what Select then MixUp keeps); a category keeps to the filtered
        view. Columns: the pair columns plus confidence, variability, correctness, category; the
        thresholds, the filters and the marked false negatives of the subset's queries go in
        ``.attrs["workbench_subset"]``. Written atomically; an existing file is only replaced with
        ``overwrite=True``. ``export_table`` writes CSV or parquet of any of these for other tools.
        """
        idx = self._export_indices(what)
        path = subset_file(name, self.out_dir)
        if path.exists() and not overwrite:
            raise ParameterError(f"export: {path} exists; choose another name or pass overwrite=True")
        df = self._rows(idx)
        ids = set(df["id"].astype(str))
        marks = [[q, c] for q, c in self._marks if q in ids]
        self.last_export = write_subset(path, df, {
            "what": AMBIGUOUS_HARD if what == "ambiguous+hard" else what,
            "of": int(len(self)),
            "rule": "quantile",
            **self.thresholds,
            "counts": {k: int(v) for k, v in self.counts.items()},
            "filters": self._cf.filters,
            "false_negatives": marks,
        })
        return self.last_export

    def _export_indices(self, what: str) -> np.ndarray:
        what = AMBIGUOUS_HARD if what == "ambiguous+hard" else what
        if what not in EXPORT_CHOICES:
            raise ParameterError(f"export: what must be one of {list(EXPORT_CHOICES)}, got {what!r}")
        if what == "selection":
            idx = self.selected_indices
            if idx.size == 0:
                raise ParameterError(
                    "export: nothing is selected; select points (box / lasso, a bar, a search) or export a category"
                )
            return idx
        if what == "view":
            return np.flatnonzero(self._cf.view_mask)
        cats = ["ambiguous", "hard-to-learn"] if what == AMBIGUOUS_HARD else [what]
        idx = np.flatnonzero(np.isin(self._category.astype(str), cats) & self._cf.view_mask)
        if idx.size == 0:
            raise ParameterError(f"export: no pair is {what!r} under the current thresholds {self.thresholds}")
        return idx

    def export_table(self, path: str | os.PathLike, what: str = "selection") -> Path:
        """The selection, the filtered view or a category as a ``.csv`` or ``.parquet`` file (any
        folder), for tools outside the workbench; written atomically."""
        from workbench.store import atomic_write_text

        p = Path(path)
        df = self._rows(self._export_indices(what))
        if p.suffix == ".csv":
            atomic_write_text(p, df.to_csv(index=False))
        elif p.suffix == ".parquet":
            atomic_write_parquet(p, df)
        else:
            raise ParameterError(f"export_table: {p} must end in .csv or .parquet")
        return p

    # ----------------------------------------------------------------- rendering

    def panel_html(self) -> str:
        """The selection panel: count, then query, scores and highlighted code of the first ``max_listed``."""
        sel = self.selected_indices
        n = len(sel)
        if n == 0:
            return "<div><i>Select points with the box or lasso tool to list their pairs here.</i></div>"
        shown = sel[: self.max_listed]
        head = f"<b>{n} pair{'s' if n != 1 else ''} selected</b>"
        if n > len(shown):
            head += f" (showing the first {len(shown)})"
        counts = pd.Series(self._category[sel]).value_counts()
        head += " &middot; " + ", ".join(f"{c}: {int(counts.get(c, 0))}" for c in cartography.CATEGORIES)
        items = [self._pair_html(int(i)) for i in shown]
        return (
            '<div style="max-height:640px;overflow-y:auto;font-family:sans-serif;font-size:13px">'
            f"<div style='margin:4px 0 8px 0'>{head}</div>{''.join(items)}</div>"
        )

    def _pair_html(self, i: int) -> str:
        row = self._pairs.iloc[i]
        lang = str(row["language"]) if "language" in self._pairs.columns else "python"
        body = self._code_html.get(i)
        if body is None:
            body = self._code_html[i] = highlight_code(str(row["code"]), lang, self.code_lines)
        cat = str(self._category[i])
        col = CATEGORY_COLORS.get(cat, "#777")
        m = self._map.iloc[i]
        return (
            f'<div style="border-left:4px solid {col};padding:4px 8px;margin:0 0 10px 0">'
            f"<div><b>{html.escape(str(row['query']))}</b></div>"
            f'<div style="color:#555">{html.escape(str(m["pair_id"]))} &middot; '
            f'<span style="color:{col}">{cat}</span> &middot; confidence {m["confidence"]:.3f} &middot; '
            f"variability {m['variability']:.3f} &middot; correctness {m['correctness']:.2f}</div>"
            f'<div style="overflow-x:auto">{body}</div></div>'
        )

    def counts_html(self) -> str:
        q = self.thresholds
        parts = [
            f'<span style="color:{CATEGORY_COLORS[c]}">&#9632;</span> {c}: <b>{int(v)}</b>'
            for c, v in self.counts.items()
        ]
        return (
            f"{len(self)} pairs &middot; "
            + " &nbsp; ".join(parts)
            + f" &nbsp; <span style='color:#777'>(ambiguous_q "
            f"{q['ambiguous_q']:.2f}, easy_q {q['easy_q']:.2f}, hard_q {q['hard_q']:.2f})</span>"
        )

    def status_html(self) -> str:
        """One line: pairs in view, selected, the filters and the brushes of each view."""
        cf = self._cf
        line = f"<b>{int(cf.view_mask.sum())}</b> in view &middot; <b>{int(cf.selected_mask.sum())}</b> selected"
        if cf.filters:
            line += " &middot; filters: " + html.escape("; ".join(cf.filters.values()))
        if cf.brushes:
            line += " &middot; brushes: " + html.escape(", ".join(f"{k} ({v})" for k, v in cf.brushes.items()))
        legend = self._colouring().get("legend") or {}
        if legend and self._color != "category":
            line += "<br>" + " ".join(f'<span style="color:{c}">&#9632;</span> {html.escape(str(v))}'
                                      for v, c in legend.items())
        return f"<div class='wb-status' style='font-family:sans-serif;font-size:12px'>{line}</div>"

    def _colouring(self) -> dict[str, Any]:
        """``views.colour_values`` of the colour column, cached (the table changes only in ``category``)."""
        if self._color == "category":
            return views.colour_values(pd.Series(self._category), "category")
        if self._color not in self._colour_cache:
            self._colour_cache[self._color] = views.colour_values(self._cf.table[self._color], self._color)
        return self._colour_cache[self._color]

    def _marker_colors(self) -> dict[str, Any]:
        out = {k: v for k, v in self._colouring().items() if k != "legend"}
        out["color"] = self._sub(np.asarray(out["color"]))
        return out

    def point_colours(self) -> list[str] | None:
        """The colour each point is painted with (CSS), when colouring by a category-like column; None
        for a continuous scale."""
        m = self._colouring()
        if not isinstance(m["colorscale"], list):
            return None
        return views.decode_colours(m["color"], m["colorscale"])

    def _hover(self) -> tuple[np.ndarray, str]:
        rows = slice(None) if self._shown is None else self._shown
        custom = np.stack(
            [
                self._map["pair_id"].astype(str).to_numpy(dtype=object)[rows],
                views.hover_snippets(self._pairs["query"].iloc[rows], self.hover_chars),
                views.hover_snippets(self._pairs["code"].iloc[rows], self.hover_chars),
                np.char.mod("%.2f", self._map["correctness"].to_numpy(dtype=float)[rows]).astype(object),
            ],
            axis=1,
        )
        template = (
            "region: %{text}<br>variability: %{x:.3f}<br>confidence: %{y:.3f}<br>correctness: %{customdata[3]}<br>"
            "pair_id: %{customdata[0]}<br>query: %{customdata[1]}<br>"
            "code: %{customdata[2]}<extra></extra>"
        )
        return custom, template

    def _region_text(self) -> np.ndarray:
        """Each drawn marker's region under the current thresholds (its hover's first line): only the
        drawn sample travels, so a threshold change sends at most ``max_points`` short strings."""
        return self._sub(self._category)

    def _legend_names(self) -> list[str]:
        return [f"{c} ({int(v)})" for c, v in self.counts.items()]

    def _build_figure(self) -> go.FigureWidget:
        custom, template = self._hover()
        fig = FigureWidget()
        fig.add_trace(
            go.Scattergl(
                x=self._sub(self._xy[0]),
                y=self._sub(self._xy[1]),
                mode="markers",
                name="pairs" if self._shown is None else f"{len(self._shown)} of {len(self)} pairs",
                showlegend=False,
                customdata=custom,
                text=self._region_text(),
                hovertemplate=template,
                marker=dict(size=self.marker_size, opacity=0.7 if self._shown is None else 0.35,
                            **self._marker_colors()),
                unselected=dict(marker=dict(opacity=0.12)),
            )
        )
        # legend-only traces naming the category colours (hidden unless colouring by category)
        for name, c in zip(self._legend_names(), cartography.CATEGORIES):
            fig.add_trace(
                go.Scattergl(
                    x=[None],
                    y=[None],
                    mode="markers",
                    name=name,
                    marker=dict(size=9, color=CATEGORY_COLORS[c]),
                    hoverinfo="skip",
                    visible=self._color == "category",
                )
            )
        fig.update_layout(
            title=self._map_title(),
            xaxis_title="variability",
            yaxis_title="confidence",
            template="plotly_white",
            width=760,
            height=600,
            dragmode="lasso",
            legend=dict(itemsizing="constant", x=1.0, y=1.0, xanchor="right"),
        )
        fig.update_yaxes(range=[-0.02, 1.02])
        fig.update_xaxes(rangemode="tozero")
        self._draw_all(fig, "map")
        fig.data[0].on_selection(self.on_selection)
        fig.data[0].on_deselect(self.on_deselect)
        # relayouts from the browser carry the box / lasso shapes: see on_layout_selections
        fig.observe(self._on_relayout_msg, names="_js2py_relayout")
        return fig

    def _build_projection(self) -> go.FigureWidget:
        custom, _ = self._hover()
        t = self._cf.table
        fig = FigureWidget()
        fig.add_trace(
            go.Scattergl(
                x=self._sub(t["x"].to_numpy(dtype=float)), y=self._sub(t["y"].to_numpy(dtype=float)), mode="markers",
                name="pairs", showlegend=False, customdata=custom, text=self._region_text(),
                hovertemplate="region: %{text}<br>pair_id: %{customdata[0]}<br>query: %{customdata[1]}<br>"
                              "code: %{customdata[2]}<extra></extra>",
                marker=dict(size=self.marker_size, opacity=0.7, **self._marker_colors()),
                unselected=dict(marker=dict(opacity=0.12)),
            )
        )
        fig.update_layout(title="Embedding projection (code)", template="plotly_white", width=520, height=460,
                          dragmode="lasso", margin=dict(l=30, r=10, t=40, b=30))
        fig.update_xaxes(showticklabels=False)
        fig.update_yaxes(showticklabels=False)
        self._draw_all(fig, "projection")
        fig.data[0].on_selection(self.on_selection)
        fig.data[0].on_deselect(self.on_deselect)
        fig.observe(lambda ch: self._on_relayout_msg(ch, "projection"), names="_js2py_relayout")
        return fig

    def project(self, method: str = "umap", seed: int = 0) -> pd.DataFrame:
        """A 2-D projection of the code embeddings (``projection.project``, cached on disk) as the
        second linked scatter; returns it (pair_id, x, y)."""
        from workbench.projection import project

        xy = project(self.code_embeddings(), method=method, seed=seed)
        frame = pd.DataFrame({"pair_id": self._map["pair_id"], "x": xy[:, 0], "y": xy[:, 1]})
        self._set_projection(frame)
        return frame

    def _build_bar(self) -> go.FigureWidget:
        fig = FigureWidget(views.bar_figure(self.bar_summary(), self.bar_column, self._is_numeric(self.bar_column)))
        fig.data[0].on_click(self._on_bar_click)
        return fig

    def _on_bar_click(self, trace: Any, points: Any, state: Any = None) -> None:
        if points.point_inds:
            self.click_bar(int(points.point_inds[0]))

    def _batched(self) -> contextlib.AbstractContextManager:
        """One browser update per scatter for everything changed inside: each ``Plotly.restyle`` redraws
        every point (0.7 s for 100,000 in headless Chromium), so a threshold change must be one, not three."""
        stack = contextlib.ExitStack()
        if self._w is not None:
            for name in ("figure", "projection"):
                fig = self._w.get(name)
                if fig is not None and not fig._in_batch_mode:
                    stack.enter_context(fig.batch_update())
        return stack

    def _refresh_figure(self, colors_only: bool) -> None:
        if self._w is None:
            return
        figs = [self._w["figure"]] + ([self._w["projection"]] if "projection" in self._w else [])
        with self._batched():
            for fig in figs:
                tr = fig.data[0]
                if self._color == "category" or not colors_only:
                    tr.marker.update(self._marker_colors())
                    self._draw_all(fig, "map" if fig is self._w["figure"] else "projection")
            fig = self._w["figure"]
            for t, name in zip(fig.data[1:], self._legend_names()):
                t.name = name
                t.visible = self._color == "category"
        self._w["summary"].value = self.status_html()

    def _refresh_selection(self, origin: str | None) -> None:
        """Every view after a brush or a filter changed: dimmed points, bar heights, table, panel."""
        if self._w is None:
            return
        w = self._w
        cf = self._cf
        active = bool(cf.brushes) or bool(cf.filters)
        # int32: plotly's widget sends it as a binary buffer (a list of 100,000 ints is JSON)
        shown = np.flatnonzero(self._sub(cf.highlight_mask)).astype(np.int32) if active else None
        with self._batched():
            for name in ("figure", "projection"):
                if name in w:
                    tr = w[name].data[0]
                    view = "map" if name == "figure" else "projection"
                    if self._shown is not None:  # the image of all points dims the unselected ones
                        w[name].layout.images = [self._image(view)]
                    # the browser already shows the points a gesture selected in its own view
                    if view == origin and not (set(cf.brushes) - {view}) and not cf.filters:
                        continue
                    if not _same_points(tr.selectedpoints, shown):
                        tr.selectedpoints = shown
        summary = self.bar_summary()
        with w["bar"].batch_update():
            w["bar"].data[0].y = summary["in view"].tolist()
            w["bar"].data[0].customdata = summary["selected"].tolist()
            w["bar"].data[1].y = summary["selected"].tolist()
        self._refresh_table()
        w["summary"].value = self.status_html()
        self._refresh_panel()

    def _refresh_table(self) -> None:
        if self._w is None:
            return
        rows = self.table_rows()
        by = self._sort[0]
        if by in (None, "pair_id", "category", "query"):
            opts = [(f"{r.pair_id} · {r.category} · {_short(r.query, 70)}", r.pair_id) for r in rows.itertuples()]
        else:  # the sorted column's value beside each row
            opts = [(f"{pid} · {cat} · {by} {_cell(v)} · {_short(q, 60)}", pid)
                    for pid, cat, v, q in zip(rows["pair_id"], rows["category"], rows[by], rows["query"])]
        w = self._w["table"]
        chosen = [v for v in w.value if v in {o[1] for o in opts}]
        self._syncing = True
        try:
            w.options = opts
            w.value = tuple(chosen)
        finally:
            self._syncing = False
        total = int(self._cf.selected_except("table").sum())
        self._w["table_head"].value = (f"<b>table</b>: {total} pair{'s' if total != 1 else ''}"
                                       + (f", the first {len(rows)} listed" if total > len(rows) else "")
                                       + "; choose rows to select them everywhere and inspect the first")

    def _refresh_inspector(self) -> None:
        if self._w is None or self._inspected is None:
            return
        w = self._w
        loc = int(pd.Index(self._map["pair_id"]).get_indexer([self._inspected])[0])
        row = self._cf.table.iloc[loc].to_dict()
        prov = [c for c in ("source", "package", "path", "file", "language", "split", "repo", "url") if c in row]
        w["inspect_pair"].value = views.pair_html(row, self.code_lines, prov)
        marked = {c for q, c in self._marks if q == self._inspected}
        if self._hits is not None and len(self._hits):
            w["inspect_hits"].value = views.retrieved_html(str(row["query"]), self._hits, self._inspected, marked)
            self._syncing = True
            try:
                w["fn_choices"].options = [p for p in self._hits["pair_id"] if p != self._inspected]
                w["fn_choices"].value = tuple(p for p in w["fn_choices"].options if p in marked)
            finally:
                self._syncing = False
        else:
            w["inspect_hits"].value = "<i style='color:#777'>retrieval needs encoder= (the run's model)</i>"
        if self._timeline is not None:
            p = self._timeline.p_gold[:, self._tl_pos[loc]]
            if "inspect_curve" not in w:  # drawn on the first inspection, not with the explorer
                w["inspect_curve"] = FigureWidget(views.dynamics_figure([], [], ""))
                w["inspect_curve_box"].children = (w["inspect_curve"],)
            fig = w["inspect_curve"]
            with fig.batch_update():
                fig.data[0].x = list(range(1, len(p) + 1))
                fig.data[0].y = [None if not np.isfinite(v) else float(v) for v in p]
                fig.layout.title.text = f"p(gold) over checkpoints: {self._inspected}"

    def _refresh_counts(self) -> None:
        if self._w is not None:
            self._w["counts"].value = self.counts_html()

    def _refresh_panel(self) -> None:
        if self._w is not None:
            self._w["panel"].value = self.panel_html()

    def _sync_sliders(self) -> None:
        if self._w is None:
            return
        self._syncing = True
        try:
            for k, v in self._thresholds.items():
                if self._w[k].value != v:
                    self._w[k].value = v
        finally:
            self._syncing = False

    def _on_slider(self, change: dict[str, Any]) -> None:
        if self._syncing or self._w is None:
            return
        w = self._w
        amb, easy, hard = w["ambiguous_q"].value, w["easy_q"].value, w["hard_q"].value
        if hard > easy:  # keep hard_q <= easy_q: move the other slider along
            if change.get("owner") is w["hard_q"]:
                easy = hard
            else:
                hard = easy
        self.set_thresholds(easy_q=easy, hard_q=hard, ambiguous_q=amb)

    def _say(self, key: str, error: Exception) -> None:
        assert self._w is not None
        self._w[key].value = f'<span style="color:#d62728">{html.escape(str(error))}</span>'

    def _on_export_click(self, _button: Any = None) -> None:
        w = self._w
        assert w is not None
        try:
            path = self.export(w["name"].value.strip(), w["what"].value, overwrite=w["overwrite"].value)
        except ParameterError as e:
            self._say("status", e)
        else:
            import pyarrow.parquet as pq

            n = pq.read_metadata(path).num_rows
            w["status"].value = (
                f"wrote {n} pairs to <code>{html.escape(str(path))}</code> "
                f"(<code>load_subset({html.escape(repr(str(path)))})</code>)"
            )

    def _on_filter(self, _button: Any = None) -> None:
        w = self._w
        assert w is not None
        column, text = w["filter_column"].value, w["filter_value"].value.strip()
        try:
            if not text:
                self.filter(column)
            elif self._is_numeric(column) and ".." in text:
                lo, _, hi = text.partition("..")
                self.filter(column, low=float(lo) if lo.strip() else None, high=float(hi) if hi.strip() else None)
            else:
                self.filter(column, [v.strip() for v in text.split(",") if v.strip()])
        except (ParameterError, ValueError) as e:
            self._say("filter_status", e)
        else:
            w["filter_status"].value = ""

    def _on_search(self, _change: Any = None) -> None:
        w = self._w
        assert w is not None
        try:
            self.search(w["search"].value.strip(), regex=w["regex"].value)
        except ParameterError as e:
            self._say("filter_status", e)
        else:
            w["filter_status"].value = ""

    def _on_semantic(self, _button: Any = None) -> None:
        w = self._w
        assert w is not None
        try:
            self.semantic_search(w["semantic"].value.strip(), k=int(w["semantic_k"].value))
        except ParameterError as e:
            self._say("filter_status", e)
        else:
            w["filter_status"].value = ""

    def _on_table(self, change: dict[str, Any]) -> None:
        if not self._syncing:
            self.choose_rows(list(change["new"]))

    def _on_mark(self, _button: Any = None) -> None:
        w = self._w
        assert w is not None and self._inspected is not None
        chosen = set(w["fn_choices"].value)
        for p in w["fn_choices"].options:
            self.mark_false_negative(p, flag=p in chosen)

    @property
    def figure(self) -> go.FigureWidget:
        """The ``go.FigureWidget`` (built on first use)."""
        if self._w is None:
            self._w = self._build_widgets()
        return self._w["figure"]

    @property
    def controls(self) -> dict[str, Any]:
        """The widgets by name (figure, projection, bar, bar_column, table, color, search, regex,
        semantic, filter_column, filter_value, checkpoint, ambiguous_q, easy_q, hard_q, counts, summary,
        panel, inspect_*, fn_choices, what, name, overwrite, button, status (the export's), box), built on first use."""
        if self._w is None:
            self._w = self._build_widgets()
        return dict(self._w)

    @property
    def widget(self) -> Any:
        """The whole explorer as an ipywidgets ``VBox`` (built on first use)."""
        if self._w is None:
            self._w = self._build_widgets()
        return self._w["box"]

    def _build_widgets(self) -> dict[str, Any]:
        import ipywidgets as W

        w: dict[str, Any] = {}
        self._w = w  # the refresh helpers see the widgets as they are made
        if self._projection_method is not None and "x" not in self._cf.table.columns:
            self.project(self._projection_method)
        columns = list(self._cf.table.columns)
        choosable = [c for c in columns if c not in ("pair_id", "query", "code")]
        w["figure"] = self._build_figure()
        if "x" in self._cf.table.columns:
            w["projection"] = self._build_projection()
        w["bar"] = self._build_bar()
        w["bar_column"] = W.Dropdown(options=choosable, value=self.bar_column, description="bar chart")
        w["bar_column"].observe(lambda ch: None if self._syncing else self._rebuild_bar(ch["new"]), names="value")
        w["color"] = W.Dropdown(options=list(dict.fromkeys(["correctness", "category", *choosable])),
                                value=self._color, description="colour")
        w["color"].observe(lambda ch: None if self._syncing else self.set_color(ch["new"]), names="value")
        style = {"description_width": "90px"}
        layout = W.Layout(width="340px")
        for k, label in (("ambiguous_q", "ambiguous_q"), ("easy_q", "easy_q"), ("hard_q", "hard_q")):
            w[k] = W.FloatSlider(
                value=self._thresholds[k],
                min=0.0,
                max=1.0,
                step=0.01,
                description=label,
                readout_format=".2f",
                continuous_update=False,
                style=style,
                layout=layout,
            )
            w[k].observe(self._on_slider, names="value")
        timeline = []
        if self._timeline is not None:
            last = len(self._timeline.checkpoints) - 1
            w["checkpoint"] = W.IntSlider(value=last, min=0, max=last, description="checkpoint",
                                          continuous_update=False, style=style, layout=layout)
            w["checkpoint"].observe(lambda ch: None if self._syncing else self.set_checkpoint(ch["new"]), names="value")
            w["play"] = W.Play(value=last, min=0, max=last, interval=700, description="play")
            W.jslink((w["play"], "value"), (w["checkpoint"], "value"))
            timeline = [W.HBox([w["play"], w["checkpoint"]])]
        w["counts"] = W.HTML(self.counts_html())
        w["summary"] = W.HTML(self.status_html())
        w["panel"] = W.HTML(self.panel_html())
        # search and filters
        w["search"] = W.Text(value="", placeholder="substring of query or code", description="search",
                             continuous_update=False)
        w["search"].observe(self._on_search, names="value")
        w["regex"] = W.Checkbox(value=False, description="regex", indent=False, layout=W.Layout(width="70px"))
        w["regex"].observe(self._on_search, names="value")
        w["semantic"] = W.Text(value="", placeholder="describe code in words", description="by meaning")
        w["semantic_k"] = W.BoundedIntText(value=50, min=1, max=max(1, len(self)), description="k",
                                           layout=W.Layout(width="140px"))
        w["semantic_go"] = W.Button(description="Find", icon="search")
        w["semantic_go"].on_click(self._on_semantic)
        w["filter_column"] = W.Dropdown(options=choosable, value=choosable[0], description="filter",
                                        layout=W.Layout(width="200px"))
        w["filter_value"] = W.Text(value="", placeholder="a, b, ... or low..high", description="values",
                                   layout=W.Layout(width="230px"))
        w["filter_go"] = W.Button(description="Apply filter", icon="filter")
        w["filter_go"].on_click(self._on_filter)
        w["filter_clear"] = W.Button(description="Clear filters")
        w["filter_clear"].on_click(lambda _b: self.clear_filters())
        w["filter_status"] = W.HTML("")
        # the table and the inspector
        w["table_head"] = W.HTML("")
        w["table"] = W.SelectMultiple(options=[], rows=10, layout=W.Layout(width="760px"))
        w["sort_by"] = W.Dropdown(options=[("map order", ""), *[(c, c) for c in columns if c != "code"]],
                                  value=self._sort[0] or "", description="sort by", layout=W.Layout(width="260px"))
        w["sort_desc"] = W.Checkbox(value=self._sort[1], description="descending", indent=False)
        for k in ("sort_by", "sort_desc"):
            w[k].observe(lambda _ch: None if self._syncing else
                         self.sort_table(w["sort_by"].value or None, w["sort_desc"].value), names="value")
        w["table"].observe(self._on_table, names="value")
        w["inspect_pair"] = W.HTML("<i style='color:#777'>choose a row of the table to inspect its pair</i>")
        w["inspect_hits"] = W.HTML("")
        w["inspect_curve_box"] = W.VBox([])  # the pair's curve over checkpoints: see _refresh_inspector
        w["fn_choices"] = W.SelectMultiple(options=[], rows=6, description="false neg.")
        w["fn_mark"] = W.Button(description="Mark false negatives", icon="flag", layout=W.Layout(width="200px"))
        w["fn_mark"].on_click(self._on_mark)
        # export
        w["what"] = W.Dropdown(options=list(EXPORT_CHOICES), value="selection", description="export")
        w["name"] = W.Text(value="", placeholder="subset name, e.g. ambiguous-hard", description="name")
        w["overwrite"] = W.Checkbox(value=False, description="overwrite", indent=False)
        w["button"] = W.Button(description="Export subset", icon="save", button_style="primary")
        w["button"].on_click(self._on_export_click)
        w["status"] = W.HTML(f"<span style='color:#777'>writes to {html.escape(str(self.out_dir))}</span>")
        help_ = W.HTML(
            "<span style='color:#777'>ambiguous: variability above its ambiguous_q quantile; of the rest, "
            "easy: confidence above its easy_q quantile, hard: at or below hard_q</span>"
        )
        sliders = W.VBox([w["ambiguous_q"], w["easy_q"], w["hard_q"], *timeline])
        # stacked: side by side, the two 300 px fields overflow the column beside the figure
        export = W.VBox([w["what"], w["name"], W.HBox([w["button"], w["overwrite"]]), w["status"]])
        find = W.VBox([
            W.HBox([w["search"], w["regex"]]),
            W.HBox([w["semantic"], w["semantic_k"], w["semantic_go"]]),
            W.HBox([w["filter_column"], w["filter_value"]]),
            W.HBox([w["filter_go"], w["filter_clear"]]),
            w["filter_status"],
        ])
        linked = [W.VBox([w["bar_column"], w["bar"]])]
        if "projection" in w:
            linked.insert(0, w["projection"])
        inspector = W.HBox([W.VBox([w["inspect_pair"], w["inspect_curve_box"]], layout=W.Layout(width="50%")),
                            W.VBox([w["inspect_hits"], w["fn_choices"], w["fn_mark"]], layout=W.Layout(width="50%"))])
        w["box"] = W.VBox(
            [
                W.HBox([w["color"]]),
                w["counts"],
                w["summary"],
                W.HBox(
                    [w["figure"], W.VBox([sliders, help_, find, export], layout=W.Layout(padding="40px 0 0 10px"))]
                ),
                W.HBox(linked),
                W.HBox([w["table_head"], w["sort_by"], w["sort_desc"]]),
                w["table"],
                inspector,
                w["panel"],
            ]
        )
        self._refresh_selection(origin=None)
        return w

    def _rebuild_bar(self, column: str) -> None:
        self.set_bar_column(column)
        if self._w is not None:
            fresh = views.bar_figure(self.bar_summary(), column, self._is_numeric(column))
            fig = self._w["bar"]
            with fig.batch_update():
                for tr, new in zip(fig.data, fresh.data):
                    tr.x, tr.y, tr.customdata = new.x, new.y, new.customdata
                fig.layout.title.text = column

    def static_figure(self) -> go.Figure:
        """The plain ``datamap_figure`` of the current state (what headless runs show)."""
        color = self._color if self._color in ("correctness", "category") else "correctness"
        return datamap_figure(self.data, color=color, hover=("query", "code"), title=self.title)

    def show(self) -> Any:
        """The widget in JupyterLab; the static figure when ``WORKBENCH_HEADLESS=1`` (papermill runs)."""
        return self.static_figure() if headless() else self.widget

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.show())

    def __repr__(self) -> str:
        c = ", ".join(f"{k}={int(v)}" for k, v in self.counts.items())
        return (f"DataMapExplorer({len(self)} pairs: {c}; {len(self.selected_indices)} selected; "
                f"out_dir={str(self.out_dir)!r})")
