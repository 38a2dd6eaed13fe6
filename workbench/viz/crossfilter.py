"""Linked selection over one table of points: filters narrow the view, brushes select within it.

The state behind the data-map explorer's linked views (map, projection, bar chart, table), kept
apart from any widget so it runs and is tested without a browser, and so that a notebook cell can
drive and read it. The model is the crossfilter one of Embedding Atlas or Spotlight:

- a *filter* (a column's values, a numeric range, a substring search) removes points from the view;
  the view is the points that pass every filter;
- a *brush* (a lasso on a scatter, a bar clicked, table rows, a semantic search, a predicate from
  code) selects points; each view owns one brush, the selection is the points of the view inside
  every brush, and a view with no brush leaves the selection to the others;
- points outside the selection stay on screen, dimmed (``highlight_mask``), so a selection is
  always seen against the whole map.

Every operation is a boolean mask over the table's rows, so 250,000 points cost a few
milliseconds per change (``benchmarks/explorer_scale.py`` measures it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import ParameterError

__all__ = ["CrossFilter", "as_mask"]


def as_mask(table: pd.DataFrame, what: Any, id_column: str, who: str = "select") -> np.ndarray:
    """A boolean row mask from what a user can name a set of points by: a boolean mask (array or
    Series, one value per row), a callable ``table -> mask`` (a predicate on the columns), or an
    iterable of ids (values of ``id_column``; unknown ids are an error naming them)."""
    n = len(table)
    if callable(what):
        what = what(table)
    if isinstance(what, pd.Series) and what.dtype == bool:
        if len(what) != n:
            raise ParameterError(f"{who}: a mask needs one value per point ({n}), got {len(what)}")
        return what.to_numpy(dtype=bool)
    if isinstance(what, np.ndarray) and what.dtype == bool:
        if what.shape != (n,):
            raise ParameterError(f"{who}: a mask needs one value per point ({n}), got shape {what.shape}")
        return what.copy()
    if isinstance(what, (str, bytes)) or not isinstance(what, Iterable):
        raise ParameterError(f"{who}: pass ids, a boolean mask or a predicate on the table; got {what!r}")
    ids = list(what)
    index = pd.Index(table[id_column])
    loc = index.get_indexer(ids)
    if (loc < 0).any():
        unknown = [i for i, j in zip(ids, loc) if j < 0][:5]
        raise ParameterError(f"{who}: unknown {id_column}(s) {unknown}")
    mask = np.zeros(n, dtype=bool)
    mask[loc] = True
    return mask


class CrossFilter:
    """Filters and brushes over ``table`` (one row per point; ``id_column`` names each point)."""

    def __init__(self, table: pd.DataFrame, id_column: str = "pair_id"):
        if id_column not in table.columns:
            raise ParameterError(f"CrossFilter: the table has no {id_column!r} column")
        self.table = table.reset_index(drop=True)
        self.id_column = id_column
        self._filters: dict[str, np.ndarray] = {}
        self._filter_specs: dict[str, str] = {}
        self._brushes: dict[str, np.ndarray] = {}
        self._codes: dict[str, tuple[np.ndarray, pd.Index]] = {}  # column -> (codes, values)
        self._lower: dict[str, pd.Series] = {}  # column -> lower-cased text, for search

    def set_column(self, column: str, values: Any) -> None:
        """Replace a column's values (e.g. the regions after new thresholds); its cached codes are dropped."""
        self.table[column] = values
        self._codes.pop(column, None)
        self._lower.pop(column, None)

    def codes(self, column: str) -> tuple[np.ndarray, pd.Index]:
        """``column`` as integer codes and their values (as text), computed once per column."""
        if column not in self._codes:
            codes, uniques = pd.factorize(self._column(column, "codes").astype(str), sort=True)
            self._codes[column] = (codes, pd.Index(uniques))
        return self._codes[column]

    def __len__(self) -> int:
        return len(self.table)

    # ------------------------------------------------------------- filters (narrow the view)
    def _column(self, column: str, who: str) -> pd.Series:
        if column not in self.table.columns:
            raise ParameterError(f"{who}: no column {column!r}; columns: {list(self.table.columns)}")
        return self.table[column]

    def filter_values(self, column: str, values: Iterable[Any] | None) -> int:
        """Keep the points whose ``column`` is one of ``values`` (None removes the filter); returns
        the points in view."""
        if values is None:
            return self.clear_filter(column)
        values = list(values)
        codes, uniques = self.codes(column)
        self._filters[column] = np.isin(codes, uniques.get_indexer([str(v) for v in values]))
        self._filter_specs[column] = f"{column} in {values}"
        return int(self.view_mask.sum())

    def filter_range(self, column: str, low: float | None = None, high: float | None = None) -> int:
        """Keep the points with ``low <= column <= high`` (either bound may be None); returns the points in view."""
        col = self._column(column, "filter_range")
        if not pd.api.types.is_numeric_dtype(col):
            raise ParameterError(f"filter_range: column {column!r} is not numeric ({col.dtype}); use filter_values")
        x = col.to_numpy(dtype=float)
        mask = np.isfinite(x)
        if low is not None:
            mask &= x >= float(low)
        if high is not None:
            mask &= x <= float(high)
        self._filters[column] = mask
        self._filter_specs[column] = f"{low if low is not None else '-inf'} <= {column} <= {high if high is not None else 'inf'}"
        return int(self.view_mask.sum())

    def search(self, text: str | None, columns: Sequence[str] = ("query", "code"), regex: bool = False,
               case: bool = False) -> int:
        """Keep the points where ``text`` occurs in any of ``columns`` (substring, or a regular
        expression with ``regex=True``); empty or None removes the search. Returns the points in view."""
        if not text:
            return self.clear_filter("search")
        if regex:
            try:
                re.compile(text)
            except re.error as e:
                raise ParameterError(f"search: {text!r} is not a regular expression: {e}") from None
        mask = np.zeros(len(self), dtype=bool)
        for c in columns:
            if not regex and not case:  # a plain substring: over lower-cased text kept once per column
                if c not in self._lower:
                    self._lower[c] = self._column(c, "search").astype(str).str.lower()
                mask |= self._lower[c].str.contains(text.lower(), regex=False).to_numpy(dtype=bool)
            else:
                col = self._column(c, "search").astype(str)
                mask |= col.str.contains(text, case=case, regex=regex).to_numpy(dtype=bool)
        self._filters["search"] = mask
        self._filter_specs["search"] = f"{'/' + text + '/' if regex else repr(text)} in {list(columns)}"
        return int(self.view_mask.sum())

    def set_filter(self, name: str, what: Any, describe: str | None = None) -> int:
        """A named filter from ids, a boolean mask or a predicate on the table (``as_mask``)."""
        self._filters[name] = as_mask(self.table, what, self.id_column, "set_filter")
        self._filter_specs[name] = describe or name
        return int(self.view_mask.sum())

    def clear_filter(self, name: str | None = None) -> int:
        """Remove one filter (by its column or name), or every filter with None; returns the points in view."""
        if name is None:
            self._filters.clear()
            self._filter_specs.clear()
        else:
            self._filters.pop(name, None)
            self._filter_specs.pop(name, None)
        return int(self.view_mask.sum())

    @property
    def filters(self) -> dict[str, str]:
        """The active filters, by name, described in words."""
        return dict(self._filter_specs)

    @property
    def view_mask(self) -> np.ndarray:
        """The points that pass every filter."""
        mask = np.ones(len(self), dtype=bool)
        for m in self._filters.values():
            mask &= m
        return mask

    # ------------------------------------------------------------- brushes (select within the view)
    def brush(self, view: str, what: Any) -> int:
        """Set ``view``'s brush (ids, mask or predicate; an empty selection is kept as a brush that
        selects nothing; None removes it); returns the points selected."""
        if what is None:
            self._brushes.pop(view, None)
        else:
            self._brushes[view] = as_mask(self.table, what, self.id_column, "select")
        return int(self.selected_mask.sum())

    def clear_brushes(self, view: str | None = None) -> None:
        if view is None:
            self._brushes.clear()
        else:
            self._brushes.pop(view, None)

    def brush_mask(self, view: str) -> np.ndarray | None:
        """The points ``view``'s brush holds on its own (None when the view has no brush)."""
        return self._brushes.get(view)

    @property
    def brushes(self) -> dict[str, int]:
        """The views that hold a brush, with the points each brush holds on its own."""
        return {k: int(v.sum()) for k, v in self._brushes.items()}

    @property
    def selected_mask(self) -> np.ndarray:
        """The points in view inside every brush; nothing when no view holds a brush."""
        if not self._brushes:
            return np.zeros(len(self), dtype=bool)
        mask = self.view_mask
        for m in self._brushes.values():
            mask &= m
        return mask

    def selected_except(self, view: str) -> np.ndarray:
        """The selection as ``view`` should show it: every other view's brush (a view's own brush
        does not filter the view it was drawn on); all of the view when no other view holds one."""
        mask = self.view_mask
        for k, m in self._brushes.items():
            if k != view:
                mask &= m
        return mask

    @property
    def highlight_mask(self) -> np.ndarray:
        """The points drawn at full strength: the selection, or the whole view when nothing is selected."""
        return self.selected_mask if self._brushes else self.view_mask

    def rows(self, mask: np.ndarray, columns: Sequence[str] | None = None) -> pd.DataFrame:
        out = self.table.loc[mask]
        return out if columns is None else out[list(columns)]

    # ------------------------------------------------------------- summaries for the linked charts
    def value_counts(self, column: str, top: int | None = 30) -> pd.DataFrame:
        """Per value of ``column``: points in the view and points selected (``highlight_mask``),
        most frequent in the view first (ties by value; selecting never reorders the bars), the rest
        folded into "(other)" beyond ``top``."""
        codes, uniques = self.codes(column)
        k = len(uniques)
        view = np.bincount(codes[self.view_mask], minlength=k)
        hi = np.bincount(codes[self.highlight_mask], minlength=k)
        out = pd.DataFrame({"in view": view, "selected": hi}, index=uniques).astype("int64")
        out = out[out["in view"] > 0]
        out = out.sort_values("in view", ascending=False, kind="stable")  # ties by value; a selection keeps the order
        if top is not None and len(out) > top:
            rest = out.iloc[top:].sum().rename("(other)")
            out = pd.concat([out.iloc[:top], rest.to_frame().T])
        out.index.name = column
        return out.reset_index()

    def histogram(self, column: str, bins: int = 30) -> pd.DataFrame:
        """``bins`` equal bins over the whole column's range: ``left``, ``right``, points in view, selected."""
        x = self._column(column, "histogram")
        if not pd.api.types.is_numeric_dtype(x):
            raise ParameterError(f"histogram: column {column!r} is not numeric; use value_counts")
        x = x.to_numpy(dtype=float)
        finite = np.isfinite(x)
        lo, hi = (float(x[finite].min()), float(x[finite].max())) if finite.any() else (0.0, 1.0)
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
        view, _ = np.histogram(x[self.view_mask & finite], edges)
        sel, _ = np.histogram(x[self.highlight_mask & finite], edges)
        return pd.DataFrame({"left": edges[:-1], "right": edges[1:], "in view": view, "selected": sel})

    def describe(self) -> str:
        """One line: points, in view, selected, the filters and brushes."""
        parts = [f"{len(self)} points", f"{int(self.view_mask.sum())} in view", f"{int(self.selected_mask.sum())} selected"]
        if self._filter_specs:
            parts.append("filters: " + "; ".join(self._filter_specs.values()))
        if self._brushes:
            parts.append("brushes: " + ", ".join(f"{k} ({v})" for k, v in self.brushes.items()))
        return " · ".join(parts)

