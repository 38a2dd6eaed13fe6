"""The data map figure: x = variability, y = confidence, one point per training pair.

As Figure 1 of Swayamdipta et al. 2020 ("Dataset Cartography") and Figure 3 of Select then
MixUp (papers/000): colour = correctness (fraction of checkpoints ranked first) or the category
from ``workbench.cartography.categorize``. WebGL (``go.Scattergl``) keeps 10^5 points interactive.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench.errors import ParameterError, WorkbenchError

__all__ = ["datamap_figure", "export_figure", "export_for_paper", "ExportError", "CATEGORY_COLORS"]

CATEGORY_COLORS = {"easy-to-learn": "#1f77b4", "ambiguous": "#2ca02c", "hard-to-learn": "#d62728"}
STATIC_FORMATS = ("png", "svg", "pdf", "jpeg", "jpg", "webp")


class ExportError(WorkbenchError, RuntimeError):
    """A figure could not be written in a requested format (e.g. no Chrome for kaleido)."""


def _short(x: object, n: int) -> str:
    s = " ".join(str(x).split())
    return s if len(s) <= n else s[: n - 1] + "\u2026"


def datamap_figure(
    map_df: pd.DataFrame,
    color: str = "correctness",
    hover: Sequence[str] = ("query", "code"),
    pairs: pd.DataFrame | None = None,
    sample: int | None = None,
    seed: int = 0,
    hover_chars: int = 80,
    title: str | None = "Data map",
    marker_size: int = 5,
) -> go.Figure:
    """A plotly figure of the data map (one ``go.Scattergl`` trace, or one per category).

    Args:
        map_df: from ``cartography.data_map`` (and ``categorize`` for ``color="category"``).
        color: "correctness" (continuous colour scale) or "category" (one trace per category).
        hover: extra columns shown on hover, cut to ``hover_chars`` characters (missing ones skipped).
        pairs: optional corpus frame (``id``, ``query``, ``code``...) joined on ``pair_id`` for hover text.
        sample: draw at most this many points (seeded), for very large maps.
    """
    for c in ("variability", "confidence"):
        if c not in map_df.columns:
            raise ParameterError(
                f"datamap_figure: map_df lacks column {c!r}; build it with cartography.data_map()"
            )
    if color not in ("correctness", "category"):
        raise ParameterError(f"datamap_figure: color must be 'correctness' or 'category', got {color!r}")
    if color not in map_df.columns:
        hint = (
            "call cartography.categorize() first"
            if color == "category"
            else "build it with cartography.data_map()"
        )
        raise ParameterError(f"datamap_figure: map_df has no {color!r} column; {hint}")
    df = map_df
    if pairs is not None and "pair_id" in df.columns and "id" in pairs.columns:
        extra = [c for c in hover if c in pairs.columns and c not in df.columns]
        if extra:
            df = df.merge(pairs[["id", *extra]].rename(columns={"id": "pair_id"}), on="pair_id", how="left")
    if sample is not None:
        if isinstance(sample, bool) or not isinstance(sample, int) or sample < 1:
            raise ParameterError(f"datamap_figure: sample must be a positive integer or None, got {sample!r}")
        if len(df) > sample:
            idx = np.sort(np.random.default_rng(seed).choice(len(df), size=sample, replace=False))
            df = df.iloc[idx]

    hover_cols = [c for c in ("pair_id", "correctness", "category", *hover) if c in df.columns]
    hover_cols = list(dict.fromkeys(hover_cols))

    def fmt(v: object) -> str:
        return f"{v:.2f}" if isinstance(v, (float, np.floating)) else _short(v, hover_chars)

    custom = (
        np.stack([df[c].map(fmt).to_numpy(dtype=object) for c in hover_cols], axis=1) if hover_cols else None
    )
    lines = [f"{c}: %{{customdata[{i}]}}" for i, c in enumerate(hover_cols)]
    template = "<br>".join(["variability: %{x:.3f}", "confidence: %{y:.3f}", *lines]) + "<extra></extra>"

    fig = go.Figure()
    if color == "correctness":
        fig.add_trace(
            go.Scattergl(
                x=df["variability"],
                y=df["confidence"],
                mode="markers",
                customdata=custom,
                hovertemplate=template,
                name="pairs",
                marker=dict(
                    size=marker_size,
                    color=df["correctness"],
                    colorscale="RdYlBu",
                    cmin=0,
                    cmax=1,
                    opacity=0.7,
                    colorbar=dict(title="correctness"),
                ),
            )
        )
    else:
        cats = df["category"].astype(str).to_numpy()
        for cat, col in CATEGORY_COLORS.items():
            m = cats == cat
            fig.add_trace(
                go.Scattergl(
                    x=df["variability"][m],
                    y=df["confidence"][m],
                    mode="markers",
                    name=f"{cat} ({int(m.sum())})",
                    customdata=None if custom is None else custom[m],
                    hovertemplate=template,
                    marker=dict(size=marker_size, color=col, opacity=0.7),
                )
            )
    fig.update_layout(
        title=title,
        xaxis_title="variability",
        yaxis_title="confidence",
        template="plotly_white",
        width=700,
        height=600,
        legend=dict(itemsizing="constant"),
    )
    fig.update_yaxes(range=[-0.02, 1.02])
    fig.update_xaxes(rangemode="tozero")
    return fig


def export_figure(
    fig: go.Figure,
    path_without_ext: str | os.PathLike,
    formats: Sequence[str] = ("png", "svg", "pdf"),
    scale: float = 2.0,
) -> list[Path]:
    """Write ``fig`` as ``<path>.<fmt>`` for each format; returns the paths written.

    Static formats go through kaleido (one call for all of them), which needs a Chrome / Chromium
    binary (Debian's ``chromium`` works; ``make venv`` installs it as root); without one this raises
    :class:`ExportError` and writes nothing, naming the fix. ``"html"`` (plotly.js
    embedded, works offline) and ``"json"`` need nothing extra.
    """
    base = Path(path_without_ext)
    fmts = [f.lower().lstrip(".") for f in formats]
    unknown = [f for f in fmts if f not in (*STATIC_FORMATS, "html", "json")]
    if unknown:
        raise ParameterError(
            f"export_figure: unknown format(s) {unknown}; use {(*STATIC_FORMATS, 'html', 'json')}"
        )
    base.parent.mkdir(parents=True, exist_ok=True)
    outs = {f: base.with_name(f"{base.name}.{f}") for f in fmts}
    tmps = {f: out.with_name(f".{out.name}.tmp") for f, out in outs.items()}
    static = list(dict.fromkeys(f for f in fmts if f in STATIC_FORMATS))
    try:
        if static:  # one kaleido call: one browser start for all formats, written first, so a
            # missing Chrome leaves nothing behind
            try:
                import plotly.io as pio

                pio.write_images(
                    fig=[fig] * len(static),
                    file=[tmps[f] for f in static],
                    format=["jpeg" if f == "jpg" else f for f in static],
                    scale=scale,
                )
                empty = [f for f in static if not tmps[f].exists() or tmps[f].stat().st_size == 0]
                if empty:
                    raise RuntimeError(f"kaleido wrote no {empty} image")
            except Exception as e:  # kaleido raises plain RuntimeError / ValueError variants
                raise ExportError(
                    f"cannot write {static} for {base}: static export needs kaleido with a Chrome/Chromium "
                    f"browser, which is not usable here ({type(e).__name__}: {' '.join(str(e).split())[:300]}). "
                    "Fixes: install Chromium (`make venv` does as root, or `apt-get install chromium`; "
                    "`plotly_get_chrome` with internet), or export with formats=('html',)."
                ) from e
        for f in fmts:
            if f == "html":
                fig.write_html(tmps[f], include_plotlyjs=True, full_html=True)
            elif f == "json":
                tmps[f].write_text(fig.to_json(), encoding="utf-8")
        for f in dict.fromkeys(fmts):
            os.replace(tmps[f], outs[f])
    finally:
        for t in tmps.values():
            t.unlink(missing_ok=True)
    return [outs[f] for f in dict.fromkeys(fmts)]


def export_for_paper(
    fig: go.Figure, path_without_ext: str | os.PathLike, formats: Sequence[str] = ("png", "svg", "pdf", "html")
) -> list[Path]:
    """``export_figure`` for notebooks: when the static formats cannot be written (no Chromium), say
    why on stderr and still write the formats that need no browser (html, json), so a headless run
    keeps going. Returns the paths written."""
    try:
        return export_figure(fig, path_without_ext, formats)
    except ExportError as e:
        import sys

        print(f"warning: {e}", file=sys.stderr)
        rest = [f for f in formats if f.lower().lstrip(".") in ("html", "json")]
        return export_figure(fig, path_without_ext, rest) if rest else []
