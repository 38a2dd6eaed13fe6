"""An interactive data map for JupyterLab: look at pairs, move the category thresholds, export subsets.

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
  subset parquet (``load_subset`` reads it back; the training notebook consumes it).

Every interaction is a public method (``select_points``, ``on_selection``, ``on_layout_selections``,
``set_thresholds``, ``set_color``, ``export``), so the logic runs, and is tested, without a browser. Under
``WORKBENCH_HEADLESS=1`` (set by ``workbench run``) ``show()`` gives the static
``datamap_figure`` instead of widgets, which papermill can store.

Why one module of this size: it is one widget; its state, its callbacks and the figure they update
change together.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench import cartography, paths
from workbench.errors import InputFormatError, ParameterError
from workbench.progress import headless
from workbench.store import atomic_write_parquet
from workbench.viz.code import highlight_code
from workbench.viz.datamap import CATEGORY_COLORS, _short, datamap_figure

__all__ = ["DataMapExplorer", "load_subset", "subsets_dir", "SUBSET_COLUMNS", "EXPORT_CHOICES"]

SUBSET_COLUMNS = ("id", "query", "code")  # what a training subset must hold
# what ``export`` can write besides the selection (Select then MixUp keeps ambiguous + hard-to-learn)
AMBIGUOUS_HARD = "ambiguous+hard-to-learn"
EXPORT_CHOICES = ("selection", *cartography.CATEGORIES, AMBIGUOUS_HARD)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
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


def subsets_dir() -> Path:
    """Where exported training subsets go by default: ``<data dir>/subsets`` (``WORKBENCH_DATA`` moves it)."""
    return paths.data_dir() / "subsets"


def _subset_file(name: str, directory: Path) -> Path:
    stem = name[: -len(".parquet")] if isinstance(name, str) and name.endswith(".parquet") else name
    if not isinstance(stem, str) or not _NAME.fullmatch(stem):
        raise ParameterError(
            f"export: name must be letters, digits, '.', '_' or '-' (no folders), e.g. 'ambiguous-hard'; got {name!r}"
        )
    return directory / f"{stem}.parquet"


def load_subset(path_or_name: str | os.PathLike, directory: str | os.PathLike | None = None) -> pd.DataFrame:
    """Read a training subset written by ``DataMapExplorer.export``.

    ``path_or_name`` is a parquet path, or a bare name looked up in ``directory`` (default
    ``subsets_dir()``), with or without ``.parquet``. The frame holds at least ``id``, ``query`` and
    ``code``; ``.attrs["workbench_subset"]`` says what was exported, under which thresholds.
    A file that is not parquet, lacks a column, has no rows, an empty or non-string id / query /
    code, or a repeated id raises :class:`InputFormatError` naming the file, the row and the field.
    """
    p = Path(path_or_name)
    base = Path(directory) if directory is not None else subsets_dir()
    tried = [p] if p.suffix == ".parquet" else [p, p.with_name(p.name + ".parquet")]
    if len(p.parts) == 1 and not p.is_absolute():
        tried += [base / t.name for t in tried]
    found = next((t for t in tried if t.is_file()), None)
    if found is None:
        have = sorted(f.stem for f in base.glob("*.parquet")) if base.is_dir() else []
        raise InputFormatError(
            tried[-1],
            f"no such training subset (looked for {[str(t) for t in dict.fromkeys(tried)]}); "
            f"subsets in {base}: {have or 'none'}. Write one with DataMapExplorer.export(name)",
        )
    try:
        df = pd.read_parquet(found)
    except Exception as e:  # pyarrow raises several types for a file that is not parquet
        raise InputFormatError(found, f"not a readable parquet file ({type(e).__name__}: {e})") from e
    missing = [c for c in SUBSET_COLUMNS if c not in df.columns]
    if missing:
        raise InputFormatError(
            found,
            f"missing column(s) {missing}; a training subset needs {list(SUBSET_COLUMNS)}, "
            f"this file has {list(df.columns)}",
            field=missing[0],
        )
    if df.empty:
        raise InputFormatError(found, "no rows: the subset is empty")
    for i, row in enumerate(zip(df["id"], df["query"], df["code"])):
        for col, value in zip(SUBSET_COLUMNS, row):
            ok = isinstance(value, str) or (col == "id" and isinstance(value, (int, np.integer)))
            if not ok or not str(value).strip():
                what = "an empty" if ok else "a missing" if value is None or value != value else "a non-string"
                raise InputFormatError(
                    found, f"row {i} (0-based) has {what} {col} ({value!r:.40}); "
                    "every row needs an id and a non-empty query and code", field=col
                )
    dup = df["id"][df["id"].duplicated()]
    if len(dup):
        raise InputFormatError(
            found, f"id {dup.iloc[0]!r} is on rows {df.index[df['id'] == dup.iloc[0]].tolist()}; ids must be unique",
            field="id",
        )
    return df


class DataMapExplorer:
    """Interactive data map over ``map_df`` (``cartography.data_map``) and its ``pairs`` (id, query, code).

    Args:
        map_df: one row per pair: ``pair_id``, ``confidence``, ``variability``, ``correctness``.
        pairs: the corpus frame the dynamics came from; every ``pair_id`` must be one of its ``id``.
        out_dir: where ``export`` writes (default ``subsets_dir()``).
        easy_q, hard_q, ambiguous_q: the quantile rule of ``cartography.categorize`` to start from
            (default: the rule in ``map_df.attrs`` if it was categorised with quantiles, else 0.5,
            ``easy_q``, 2/3).
        color: "correctness" or "category".
        max_listed: how many selected pairs the panel shows (the count is always shown).
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
        unknown = ~map_df["pair_id"].isin(pairs["id"])
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
        self._pairs = pairs[pair_cols].set_index("id").loc[self._map["pair_id"]].reset_index()
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
        self._recategorize(easy_q=easy, hard_q=hard, ambiguous_q=amb)
        if color not in ("correctness", "category"):
            raise ParameterError(f"DataMapExplorer: color must be 'correctness' or 'category', got {color!r}")
        self._color = color
        self._sel = np.empty(0, dtype=np.int64)
        self._w: dict[str, Any] | None = None  # the widgets, built on first use
        self._syncing = False

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
        return self._sel.copy()

    @property
    def selected(self) -> pd.DataFrame:
        """The selected pairs (plot order): pair columns, then confidence, variability, correctness, category."""
        return self._rows(self._sel)

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
        r = cat.attrs["category_rule"]
        self._thresholds = {k: float(r[k]) for k in ("easy_q", "hard_q", "ambiguous_q")}

    def select_points(self, indices: Iterable[int]) -> pd.DataFrame:
        """Select points by their index in the plot (= row of ``data``); returns ``selected``.

        The figure shows the selection too (the other points fade), as after a box / lasso.
        """
        return self._select(indices, show_in_figure=True)

    def _select(self, indices: Iterable[int], show_in_figure: bool) -> pd.DataFrame:
        idx = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices)
        if idx.size and (idx.dtype.kind not in "iu"):
            raise ParameterError(f"select_points: indices must be integers, got dtype {idx.dtype}")
        idx = np.unique(idx.astype(np.int64))
        if idx.size and (idx[0] < 0 or idx[-1] >= len(self)):
            bad = int(idx[0] if idx[0] < 0 else idx[-1])
            raise ParameterError(f"select_points: index {bad} out of range for {len(self)} points")
        self._sel = idx
        if show_in_figure and self._w is not None:
            self._w["figure"].data[0].selectedpoints = idx.tolist() if idx.size else None
        self._refresh_panel()
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
        self.select_points([])

    def on_selection(self, trace: Any, points: Any, selector: Any = None) -> None:
        """The plotly selection callback (``trace.on_selection``): ``points.point_inds`` are plot indices."""
        self._select(points.point_inds, show_in_figure=False)  # plotly already marks them

    def on_deselect(self, trace: Any, points: Any) -> None:
        """The plotly deselect callback (double click): empties the selection."""
        self._select([], show_in_figure=False)

    def on_layout_selections(self, selections: Iterable[Any]) -> None:
        """Select the points inside plotly selection shapes (``layout.selections``: box or lasso).

        The browser reports a box / lasso twice: a ``plotly_selected`` points event
        (``on_selection``) and a relayout carrying the drawn shapes. Each travels on one widget
        trait, and ipywidgets merges the messages that queue while the kernel is busy (the last
        value of a trait wins), so a hover / unhover right after the mouse is released can
        overwrite the points event: in JupyterLab the points highlight and the panel stays empty.
        The shapes come in the same merged message, so the selection is recomputed from them too.
        """
        idx = self._points_in(selections or ())
        if idx is not None and not np.array_equal(idx, self._sel):
            self._select(idx, show_in_figure=False)

    def _on_relayout_msg(self, change: dict[str, Any]) -> None:
        data = (change.get("new") or {}).get("relayout_data") or {}
        if "selections" in data:  # plotly.py does not update fig.layout.selections from the browser
            self.on_layout_selections(data["selections"])

    def _points_in(self, selections: Iterable[Any]) -> np.ndarray | None:
        """Plot indices inside the union of plotly selection shapes (``rect`` or lasso ``path``, data
        coordinates); None when a shape cannot be read (then the points event decides)."""
        x = self._map["variability"].to_numpy(dtype=float)
        y = self._map["confidence"].to_numpy(dtype=float)
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
        return np.flatnonzero(inside)

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
        self._refresh_figure(colors_only=True)
        self._sync_sliders()
        self._refresh_counts()
        self._refresh_panel()
        return self.counts

    def set_color(self, color: str) -> None:
        """Colour the points by "correctness" (continuous) or "category"."""
        if color not in ("correctness", "category"):
            raise ParameterError(f"set_color: color must be 'correctness' or 'category', got {color!r}")
        self._color = color
        self._refresh_figure(colors_only=False)
        if self._w is not None and self._w["color"].value != color:
            self._syncing = True
            try:
                self._w["color"].value = color
            finally:
                self._syncing = False

    def export(self, name: str, what: str = "selection", *, overwrite: bool = False) -> Path:
        """Write a training subset ``<out_dir>/<name>.parquet``; returns its path.

        ``what``: "selection", a category, or "ambiguous+hard-to-learn" (what Select then MixUp
        keeps). Columns: the pair columns plus confidence, variability, correctness, category; the
        thresholds go in ``.attrs["workbench_subset"]``. Written atomically; an existing file is
        only replaced with ``overwrite=True``.
        """
        what = AMBIGUOUS_HARD if what == "ambiguous+hard" else what
        if what not in EXPORT_CHOICES:
            raise ParameterError(f"export: what must be one of {list(EXPORT_CHOICES)}, got {what!r}")
        path = _subset_file(name, self.out_dir)
        if what == "selection":
            idx = self._sel
            if idx.size == 0:
                raise ParameterError(
                    "export: nothing is selected; select points (box / lasso) or export a category"
                )
        else:
            cats = ["ambiguous", "hard-to-learn"] if what == AMBIGUOUS_HARD else [what]
            idx = np.flatnonzero(np.isin(self._category.astype(str), cats))
            if idx.size == 0:
                raise ParameterError(
                    f"export: no pair is {what!r} under the current thresholds {self.thresholds}"
                )
        if path.exists() and not overwrite:
            raise ParameterError(f"export: {path} exists; choose another name or pass overwrite=True")
        df = self._rows(idx)
        df.attrs["workbench_subset"] = {
            "what": what,
            "n": int(len(df)),
            "of": int(len(self)),
            "rule": "quantile",
            **self.thresholds,
            "counts": {k: int(v) for k, v in self.counts.items()},
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        atomic_write_parquet(path, df)
        self.last_export = path
        return path

    # ----------------------------------------------------------------- rendering

    def panel_html(self) -> str:
        """The selection panel: count, then query, scores and highlighted code of the first ``max_listed``."""
        n = len(self._sel)
        if n == 0:
            return "<div><i>Select points with the box or lasso tool to list their pairs here.</i></div>"
        shown = self._sel[: self.max_listed]
        head = f"<b>{n} pair{'s' if n != 1 else ''} selected</b>"
        if n > len(shown):
            head += f" (showing the first {len(shown)})"
        counts = pd.Series(self._category[self._sel]).value_counts()
        head += " &middot; " + ", ".join(f"{c}: {int(counts.get(c, 0))}" for c in cartography.CATEGORIES)
        items = [self._pair_html(int(i)) for i in shown]
        return (
            '<div style="max-height:640px;overflow-y:auto;font-family:sans-serif;font-size:13px">'
            f"<div style='margin:4px 0 8px 0'>{head}</div>{''.join(items)}</div>"
        )

    def _pair_html(self, i: int) -> str:
        row = self._pairs.iloc[i]
        lang = str(row["language"]) if "language" in self._pairs.columns else "python"
        body = highlight_code(str(row["code"]), lang, self.code_lines)
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

    def _marker_colors(self) -> dict[str, Any]:
        if self._color == "category":
            return dict(
                color=[CATEGORY_COLORS[c] for c in self._category],
                showscale=False,
                colorscale=None,
                cmin=None,
                cmax=None,
            )
        return dict(
            color=self._map["correctness"].to_numpy(dtype=float),
            colorscale="RdYlBu",
            cmin=0,
            cmax=1,
            showscale=True,
            colorbar=dict(title="correctness"),
        )

    def _hover(self) -> tuple[np.ndarray, str]:
        def short(s: pd.Series) -> np.ndarray:
            return s.map(lambda v: html.escape(_short(v, self.hover_chars))).to_numpy(dtype=object)

        custom = np.stack(
            [
                self._map["pair_id"].astype(str).to_numpy(dtype=object),
                short(self._pairs["query"]),
                short(self._pairs["code"]),
                self._map["correctness"].map(lambda v: f"{v:.2f}").to_numpy(dtype=object),
            ],
            axis=1,
        )
        template = (
            "variability: %{x:.3f}<br>confidence: %{y:.3f}<br>correctness: %{customdata[3]}<br>"
            "category: %{text}<br>pair_id: %{customdata[0]}<br>query: %{customdata[1]}<br>"
            "code: %{customdata[2]}<extra></extra>"
        )
        return custom, template

    def _legend_names(self) -> list[str]:
        return [f"{c} ({int(v)})" for c, v in self.counts.items()]

    def _build_figure(self) -> go.FigureWidget:
        custom, template = self._hover()
        fig = go.FigureWidget()
        fig.add_trace(
            go.Scattergl(
                x=self._map["variability"].to_numpy(dtype=float),
                y=self._map["confidence"].to_numpy(dtype=float),
                mode="markers",
                name="pairs",
                showlegend=False,
                customdata=custom,
                text=self._category.astype(str),
                hovertemplate=template,
                marker=dict(size=self.marker_size, opacity=0.7, **self._marker_colors()),
                unselected=dict(marker=dict(opacity=0.15)),
            )
        )
        # legend-only traces naming the category colours (hidden when colouring by correctness)
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
            title=self.title,
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
        fig.data[0].on_selection(self.on_selection)
        fig.data[0].on_deselect(self.on_deselect)
        # relayouts from the browser carry the box / lasso shapes: see on_layout_selections
        fig.observe(self._on_relayout_msg, names="_js2py_relayout")
        return fig

    def _refresh_figure(self, colors_only: bool) -> None:
        if self._w is None:
            return
        fig = self._w["figure"]
        with fig.batch_update():
            tr = fig.data[0]
            if self._color == "category" or not colors_only:
                tr.marker.update(self._marker_colors())
            tr.text = self._category.astype(str)
            for t, name in zip(fig.data[1:], self._legend_names()):
                t.name = name
                t.visible = self._color == "category"

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

    def _on_export_click(self, _button: Any = None) -> None:
        w = self._w
        assert w is not None
        try:
            path = self.export(w["name"].value.strip(), w["what"].value, overwrite=w["overwrite"].value)
        except ParameterError as e:
            w["status"].value = f'<span style="color:#d62728">{html.escape(str(e))}</span>'
        else:
            import pyarrow.parquet as pq

            n = pq.read_metadata(path).num_rows
            w["status"].value = (
                f"wrote {n} pairs to <code>{html.escape(str(path))}</code> "
                f"(<code>load_subset({html.escape(repr(str(path)))})</code>)"
            )

    @property
    def figure(self) -> go.FigureWidget:
        """The ``go.FigureWidget`` (built on first use)."""
        if self._w is None:
            self._w = self._build_widgets()
        return self._w["figure"]

    @property
    def controls(self) -> dict[str, Any]:
        """The widgets by name (figure, color, ambiguous_q, easy_q, hard_q, counts, panel, what, name,
        overwrite, button, status, box), built on first use."""
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
        w["figure"] = self._build_figure()
        w["color"] = W.ToggleButtons(
            options=["correctness", "category"], value=self._color, description="colour"
        )
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
        w["counts"] = W.HTML(self.counts_html())
        w["panel"] = W.HTML(self.panel_html())
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
        sliders = W.VBox([w["ambiguous_q"], w["easy_q"], w["hard_q"]])
        # stacked: side by side, the two 300 px fields overflow the column beside the figure
        export = W.VBox([w["what"], w["name"], W.HBox([w["button"], w["overwrite"]]), w["status"]])
        w["box"] = W.VBox(
            [
                w["color"],
                w["counts"],
                W.HBox(
                    [w["figure"], W.VBox([sliders, help_, export], layout=W.Layout(padding="40px 0 0 10px"))]
                ),
                w["panel"],
            ]
        )
        return w

    def static_figure(self) -> go.Figure:
        """The plain ``datamap_figure`` of the current state (what headless runs show)."""
        return datamap_figure(self.data, color=self._color, hover=("query", "code"), title=self.title)

    def show(self) -> Any:
        """The widget in JupyterLab; the static figure when ``WORKBENCH_HEADLESS=1`` (papermill runs)."""
        return self.static_figure() if headless() else self.widget

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.show())

    def __repr__(self) -> str:
        c = ", ".join(f"{k}={int(v)}" for k, v in self.counts.items())
        return f"DataMapExplorer({len(self)} pairs: {c}; {len(self._sel)} selected; out_dir={str(self.out_dir)!r})"
