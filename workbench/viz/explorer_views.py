"""The pieces the data-map explorer's linked views are drawn from: pure functions from the crossfilter's
summaries (``viz.crossfilter``) to plotly figures and HTML, so each view is built and tested without a
widget, and the static copies headless runs keep are the same drawings.

- :func:`bar_figure`: a column's values (or a numeric column's bins), points in view in grey and the
  selected ones in colour on top: clicking a bar selects its points;
- :func:`colour_values`: the marker colours for "colour by any column" (a continuous scale for
  numbers, a palette for the ten most frequent values of anything else, grey for the rest);
- :func:`table_html`: the selected pairs as a table (id, query, region, scores);
- :func:`pair_html`, :func:`retrieved_html`, :func:`dynamics_figure`: the inspector of one pair: its
  text, provenance and scores, what the model retrieves for its query (the gold marked, false
  negatives flagged), and its probability of the gold at each checkpoint.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench.viz.code import highlight_code
from workbench.viz.datamap import CATEGORY_COLORS

__all__ = ["PALETTE", "bar_figure", "colour_values", "discrete_scale", "decode_colours", "hover_snippets", "table_html", "pair_html", "retrieved_html", "dynamics_figure"]

# plotly's qualitative "D3" palette: ten colours that stay apart on a white background
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
OTHER = "#c7c7c7"
_MAP_SCORES = ("confidence", "variability", "correctness")


def bar_figure(summary: pd.DataFrame, column: str, numeric: bool, title: str | None = None) -> go.Figure:
    """A bar chart of ``summary`` (``CrossFilter.value_counts`` or ``CrossFilter.histogram``): the
    points in view (grey) with the selected ones over them (blue), one bar per value or bin."""
    if numeric:
        x = [f"{lo:.3g} to {hi:.3g}" for lo, hi in zip(summary["left"], summary["right"])]
    else:
        x = summary[column].astype(str).tolist()
    fig = go.Figure()
    # the grey bar takes hover and clicks for both (the blue one skips them): one click, one event
    fig.add_trace(go.Bar(x=x, y=summary["in view"].tolist(), name="in view", marker_color="#d0d0d0",
                         customdata=summary["selected"].tolist(),
                         hovertemplate="%{x}: %{y} in view, %{customdata} selected<extra></extra>"))
    fig.add_trace(go.Bar(x=x, y=summary["selected"].tolist(), name="selected", marker_color="#1f77b4",
                         hoverinfo="skip"))
    fig.update_layout(barmode="overlay", template="plotly_white", height=300, width=520,
                      margin=dict(l=40, r=10, t=40, b=80), title=title or column,
                      legend=dict(orientation="h", y=1.12, x=1.0, xanchor="right"), clickmode="event")
    fig.update_xaxes(type="category", tickangle=-35)
    return fig


def hover_snippets(texts: pd.Series, n: int) -> np.ndarray:
    """Each text with its whitespace runs collapsed, cut to ``n`` characters (an ellipsis marks a cut)
    and HTML-escaped, for a hover label: the first ``4 n + 16`` characters are read, in Arrow's compute
    kernels, so 250,000 codes take a fraction of a second (the per-string Python loop took seconds)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pa.array(texts.astype(str).to_numpy(dtype=object) if texts.dtype == object else texts, type=pa.string())
    s = pc.utf8_slice_codeunits(arr, 0, 4 * n + 16)
    s = pc.utf8_trim_whitespace(pc.replace_substring_regex(s, r"\s+", " "))
    long = pc.greater(pc.utf8_length(s), n)
    s = pc.if_else(long, pc.binary_join_element_wise(pc.utf8_slice_codeunits(s, 0, n - 1), "\u2026", ""), s)
    for a, b in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("'", "&#x27;")):
        s = pc.replace_substring(s, a, b)
    return np.asarray(s.to_pylist(), dtype=object)


def discrete_scale(colours: Sequence[str]) -> list[list[Any]]:
    """A stepped plotly colorscale: code i (with ``cmin=-0.5``, ``cmax=len(colours)-0.5``) gets colours[i]."""
    k = len(colours)
    return [[pos, c] for i, c in enumerate(colours) for pos in (i / k, (i + 1) / k)]


def decode_colours(codes: Sequence[float], colorscale: Sequence[Sequence[Any]]) -> list[str]:
    """The CSS colour of each point of a :func:`discrete_scale` marker (what the browser paints)."""
    colours = [c for _, c in colorscale][::2]
    return [colours[int(round(v))] for v in codes]


def colour_values(values: pd.Series, column: str) -> dict[str, Any]:
    """Marker settings colouring points by ``values``: numbers on a continuous scale, regions in their
    data-map colours, anything else by its ten most frequent values (the rest grey). Colours travel as
    one number per point and a stepped colorscale (:func:`discrete_scale`), never as 100,000 strings,
    which plotly would validate one by one. Returns plotly ``marker`` keys and ``legend`` ({value: colour})."""
    if column != "category" and pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        x = values.to_numpy(dtype=np.float32)
        finite = x[np.isfinite(x)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        scale = "RdYlBu" if column == "correctness" else "Viridis"
        return dict(color=x, colorscale=scale, cmin=lo, cmax=hi if hi > lo else lo + 1, showscale=True,
                    colorbar=dict(title=column), legend={})
    s = values.astype(str)
    if column == "category":
        legend = dict(CATEGORY_COLORS)
    else:
        legend = {v: PALETTE[i] for i, v in enumerate(s.value_counts().index[: len(PALETTE)])}
    keys, colours = list(legend), [*legend.values(), OTHER]
    codes = pd.Index(keys).get_indexer(s).astype(np.float32)  # float32: a binary buffer to the browser
    codes[codes < 0] = len(keys)
    return dict(color=codes, colorscale=discrete_scale(colours), cmin=-0.5, cmax=len(colours) - 0.5,
                showscale=False, legend=legend)


def table_html(rows: pd.DataFrame, columns: Sequence[str], total: int, max_rows: int, chars: int = 90) -> str:
    """The first ``max_rows`` of ``rows`` as an HTML table (``total``: how many there are in all)."""
    if total == 0:
        return "<div style='color:#777'><i>No pair selected: lasso or box on a scatter, click a bar, search, or "\
               "call explorer.select(...).</i></div>"
    shown = rows.head(max_rows)
    head = "".join(f"<th style='text-align:left;padding:2px 6px'>{html.escape(c)}</th>" for c in columns)
    body = []
    for _, r in shown.iterrows():
        cells = []
        for c in columns:
            v = r[c]
            text = f"{v:.3f}" if isinstance(v, (float, np.floating)) else str(v)
            if len(text) > chars:
                text = text[: chars - 1] + "…"
            cells.append(f"<td style='padding:2px 6px;vertical-align:top'>{html.escape(text)}</td>")
        body.append(f"<tr class='wb-row' data-pair='{html.escape(str(r['pair_id']))}'>{''.join(cells)}</tr>")
    note = f"{total} selected" + (f", showing the first {len(shown)}" if total > len(shown) else "")
    return (f"<div style='font-family:sans-serif;font-size:12px'><div style='margin:2px 0 4px 0'><b>{note}</b></div>"
            f"<div style='max-height:320px;overflow:auto'><table class='wb-table' style='border-collapse:collapse'>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div></div>")


def pair_html(row: Mapping[str, Any], code_lines: int = 40, provenance: Sequence[str] = ()) -> str:
    """One pair in full: its query, region and scores, provenance columns, and highlighted code."""
    lang = str(row.get("language") or "python")
    cat = str(row.get("category", ""))
    col = CATEGORY_COLORS.get(cat, "#777")
    scores = " &middot; ".join(f"{k} {float(row[k]):.3f}" for k in _MAP_SCORES if k in row)
    prov = " &middot; ".join(f"{html.escape(k)}: <code>{html.escape(str(row[k]))}</code>" for k in provenance
                             if k in row and str(row[k]) not in ("", "nan", "None"))
    return (
        f'<div style="border-left:4px solid {col};padding:4px 8px;font-family:sans-serif;font-size:13px">'
        f"<div><b>{html.escape(str(row['query']))}</b></div>"
        f'<div style="color:#555">{html.escape(str(row["pair_id"]))} &middot; <span style="color:{col}">{cat}</span>'
        f" &middot; {scores}</div>"
        + (f'<div style="color:#555">{prov}</div>' if prov else "")
        + f'<div style="overflow-x:auto">{highlight_code(str(row["code"]), lang, code_lines)}</div></div>'
    )


def retrieved_html(query: str, hits: pd.DataFrame, gold: str, marked: set[str], code_chars: int = 160) -> str:
    """What the model retrieves for ``query``: ``hits`` (pair_id, score, code, in rank order) with the
    gold in green and the codes marked as false negatives flagged."""
    items = []
    for rank, r in enumerate(hits.itertuples(index=False), start=1):
        pid = str(r.pair_id)
        tag = " <b style='color:#2ca02c'>gold</b>" if pid == gold else ""
        if pid in marked:
            tag += " <b style='color:#d62728'>false negative</b>"
        code = html.escape(" ".join(str(r.code).split())[:code_chars])
        items.append(f"<li value='{rank}'><code>{html.escape(pid)}</code> {float(r.score):.3f}{tag}<br>"
                     f"<span style='color:#555;font-family:monospace'>{code}</span></li>")
    return (f"<div style='font-family:sans-serif;font-size:12px'><div>top {len(hits)} for "
            f"<i>{html.escape(query)}</i></div><ol>{''.join(items)}</ol></div>")


def dynamics_figure(checkpoints: Sequence[int], p_gold: Sequence[float], pair_id: str) -> go.Figure:
    """One pair's probability of its gold code at each checkpoint (its row of the dynamics)."""
    fig = go.Figure(go.Scatter(x=list(checkpoints), y=list(p_gold), mode="lines+markers", name=pair_id))
    fig.update_layout(template="plotly_white", height=220, width=420, margin=dict(l=40, r=10, t=30, b=40),
                      title=f"p(gold) over checkpoints: {pair_id}", xaxis_title="checkpoint", yaxis_title="p(gold)")
    fig.update_yaxes(range=[-0.02, 1.02])
    return fig


def png_rgba(img: np.ndarray) -> bytes:
    """An (h, w, 4) uint8 image as PNG bytes (zlib; no imaging library needed)."""
    import struct
    import zlib

    h, w, _ = img.shape
    raw = np.concatenate([np.zeros((h, 1), np.uint8), img.reshape(h, w * 4)], axis=1).tobytes()

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    head = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IDAT", zlib.compress(raw, 3)) + chunk(b"IEND", b"")


def point_rgb(marker: Mapping[str, Any]) -> np.ndarray:
    """(n, 3) uint8 colours of a marker from :func:`colour_values` (a stepped or a named continuous scale)."""
    import plotly.colors as pc

    values = np.asarray(marker["color"], dtype=float)
    scale = marker["colorscale"]
    if isinstance(scale, list):  # discrete: one colour per code
        lut = np.array([pc.hex_to_rgb(c) for c in [c for _, c in scale][::2]], dtype=np.uint8)
        return lut[np.clip(np.nan_to_num(values).round().astype(int), 0, len(lut) - 1)]
    lo, hi = float(marker["cmin"]), float(marker["cmax"])
    steps = pc.sample_colorscale(pc.get_colorscale(scale), list(np.linspace(0, 1, 64)))
    lut = np.array([pc.unlabel_rgb(c) if c.startswith("rgb") else pc.hex_to_rgb(c) for c in steps], dtype=np.uint8)
    t = np.clip((np.nan_to_num(values, nan=lo) - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    return lut[(t * 63).round().astype(int)]


def raster_image(x: np.ndarray, y: np.ndarray, rgb: np.ndarray, strong: np.ndarray, xr: tuple[float, float],
                 yr: tuple[float, float], size: tuple[int, int] = (760, 600), dot: int = 2) -> dict[str, Any]:
    """Every point drawn into one transparent PNG (``layout.images`` entry over ``xr`` x ``yr`` in data
    coordinates): the points of ``strong`` in full colour over the others, faded; what the map shows
    of the points it does not draw as markers (datashader's idea, in numpy)."""
    import base64

    w, h = size
    img = np.zeros((h, w, 4), dtype=np.uint8)
    ok = np.isfinite(x) & np.isfinite(y)
    px = np.clip(((x - xr[0]) / (xr[1] - xr[0]) * (w - dot)).round(), 0, w - dot).astype(np.int64)
    py = np.clip(((yr[1] - y) / (yr[1] - yr[0]) * (h - dot)).round(), 0, h - dot).astype(np.int64)
    for layer, alpha in ((ok & ~strong, 45), (ok & strong, 210)):
        i = np.flatnonzero(layer)
        colour = np.concatenate([rgb[i], np.full((len(i), 1), alpha, np.uint8)], axis=1)
        for dy in range(dot):
            for dx in range(dot):
                img[py[i] + dy, px[i] + dx] = colour
    src = "data:image/png;base64," + base64.b64encode(png_rgba(img)).decode()
    return dict(source=src, xref="x", yref="y", x=xr[0], y=yr[1], sizex=xr[1] - xr[0], sizey=yr[1] - yr[0],
                sizing="stretch", layer="below", opacity=1.0)
