"""The chapters themselves in a real JupyterLab, driven by a real headless Chromium (Playwright).

The smoke chain (03 -> 07 on the smoke preset, shared with ``test_runs``) leaves a run folder with a
data map and trained models. Its files are hard-linked into the lab's folder (every artifact is
replaced atomically, never edited in place, so the shared folder is never changed), and papermill
injects that folder as ``run_dir`` into copies of ``03_data_maps`` and
``05_representation_analysis`` without executing them. The browser opens each notebook, runs all
cells from the Run menu (training and embeddings resume from the run folder), and checks what a
person sees: the data-map widget with one point per mapped pair, a box selection whose pairs the
selection panel lists, and the alignment/uniformity figure of 05 with one point per model. The
screenshots are kept under ``papermill_runs/browser/``.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from labtools import FIRST_RUN_S, STEP_S, find_chromium, headless_chromium, jupyterlab, open_and_run_all

from workbench.paths import notebooks_dir, runs_dir

CHROMIUM = find_chromium()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: /usr/bin/chromium or `chromium` on PATH (make chromium)"),
]


def _link_tree(src: Path, dst: Path) -> None:
    """A copy of ``src`` whose files are hard links (the same disk blocks, no copying)."""
    shutil.copytree(src, dst, copy_function=os.link)


@pytest.fixture(scope="module")
def lab(smoke_chain, tmp_path_factory):
    import papermill as pm

    root = tmp_path_factory.mktemp("lab-chapters")
    run = root / "run"
    _link_tree(smoke_chain["run"], run)
    for name in ("03_data_maps", "05_representation_analysis"):
        pm.execute_notebook(str(notebooks_dir() / f"{name}.ipynb"), str(root / f"{name}.ipynb"),
                            parameters={"preset": "smoke", "overrides": {}, "run_dir": str(run)}, prepare_only=True,
                            kernel_name="workbench")
    shots = runs_dir() / "browser"
    shots.mkdir(parents=True, exist_ok=True)
    with jupyterlab(root) as server:
        yield {**server, "run": run, "shots": shots,
               "metrics": json.loads((smoke_chain["run"] / "metrics.json").read_text())}


@pytest.fixture(scope="module")
def chromium():
    with headless_chromium(CHROMIUM) as browser:
        yield browser


def _page(chromium, lab, notebook: str):
    pg = chromium.new_page(viewport={"width": 1600, "height": 1400})
    pg.set_default_timeout(STEP_S * 1000)
    pg.errors = []  # type: ignore[attr-defined]
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    # each notebook in its own workspace, so the other one is not restored beside it
    open_and_run_all(pg, f"{lab['base']}/lab/workspaces/{notebook[:2]}/tree/{notebook}.ipynb?token={lab['token']}")
    return pg


def _plot_box(pg, gd: str) -> tuple[float, float, float, float]:
    return tuple(pg.evaluate(
        f"""() => {{ const gd = {gd}, fl = gd._fullLayout, r = gd.getBoundingClientRect();
                   return [r.left + fl.xaxis._offset, r.top + fl.yaxis._offset, fl.xaxis._length, fl.yaxis._length]; }}"""
    ))


def _pixels(pg, gd: str) -> np.ndarray:
    """Page coordinates of every point of every trace of the plot ``gd`` (a JS expression)."""
    return np.asarray(pg.evaluate(
        f"""() => {{ const gd = {gd}, fl = gd._fullLayout, xa = fl.xaxis, ya = fl.yaxis, r = gd.getBoundingClientRect();
                   return gd._fullData.flatMap(t => Array.from(t.x, (x, i) =>
                       [r.left + xa._offset + xa.d2p(x), r.top + ya._offset + ya.d2p(t.y[i])])); }}"""
    ), dtype=float)


def _text(locator) -> str:
    """The element's text with whitespace collapsed, read from the DOM (``textContent``).

    Not ``inner_text()``: JupyterLab 4 skips rendering cells outside the viewport
    (``content-visibility``), and the browser's ``innerText`` of a skipped element is empty,
    which failed CI once on a slower machine while the text was there.
    """
    return " ".join((locator.text_content() or "").split())


def _box_select(pg, gd_selector: str, x0: float, y0: float, x1: float, y1: float) -> None:
    """Pick "Box Select" in the plot's mode bar and drag a rectangle, as a person does."""
    plot = pg.locator(gd_selector).first
    plot.hover()  # the mode bar shows on hover (the plot is already in view: the corners were read there)
    plot.locator(".modebar-btn[data-val='select']").click()
    pg.mouse.move(x0, y0)
    pg.mouse.down()
    pg.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=5)
    pg.mouse.move(x1, y1, steps=10)
    pg.mouse.up()


def test_03_data_map_renders_and_box_selection_fills_the_panel(chromium, lab):
    pg = _page(chromium, lab, "03_data_maps")
    try:
        nb = pg.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
        nb.locator(".widget-slider .noUi-handle").first.wait_for(timeout=FIRST_RUN_S * 1000 * 2)
        gd = "document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .widget-box .js-plotly-plot')"
        pg.wait_for_function(f"() => {{ const gd = {gd}; return gd && gd._fullData && gd._fullData.length > 0; }}",
                             timeout=FIRST_RUN_S * 1000)
        maps = lab["metrics"]["03_data_maps"]
        n = maps["datamap_pairs"]
        assert pg.evaluate(f"() => {gd}._fullData[0].x.length") == n == sum(maps["category_counts"]["in_batch"].values())
        assert pg.evaluate(f"() => {gd}._fullData[0].type") == "scattergl"
        counts = _text(nb.locator(".widget-html", has_text=re.compile(r"\d+ pairs · ")))
        assert counts.startswith(f"{n} pairs")

        # the explorer's first plot is the map (the projection and the bar chart follow it)
        pg.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .widget-box .js-plotly-plot").first.scroll_into_view_if_needed()
        px = _pixels(pg, gd)
        queries = pg.evaluate(f"() => Array.from({gd}._fullData[0].customdata, c => c[1])")
        left, top, width, height = _plot_box(pg, gd)
        x0, x1 = left + 0.02 * width, left + 0.6 * width
        y0, y1 = top + 0.02 * height, top + 0.98 * height

        def inside(m: float) -> np.ndarray:
            return (px[:, 0] > x0 - m) & (px[:, 0] < x1 + m) & (px[:, 1] > y0 - m) & (px[:, 1] < y1 + m)

        inner, outer = inside(-1.5), inside(1.5)
        assert inner.sum() >= 3, "the rectangle should cover some points"
        _box_select(pg, ".jp-NotebookPanel:not(.lm-mod-hidden) .widget-box .js-plotly-plot", x0, y0, x1, y1)
        panel = nb.locator(".widget-html", has_text=re.compile(r"\d+ pairs? selected"))
        panel.wait_for()
        k = int(re.search(r"(\d+) pairs? selected", _text(panel)).group(1))
        assert inner.sum() <= k <= outer.sum(), (k, inner.sum(), outer.sum())
        assert panel.locator("pre").count() == min(k, 50)  # one highlighted code block per listed pair
        shown = _text(panel)
        listed = [q for q, i in zip(queries, inner) if i][:50] if k <= 50 else []
        for q in listed:  # the panel lists the selected pairs
            assert " ".join(html.unescape(str(q)).split())[:25] in shown
        pg.screenshot(path=str(lab["shots"] / "03_data_maps.png"), full_page=False)
        assert (lab["shots"] / "03_data_maps.png").stat().st_size > 10_000
        assert not pg.errors, pg.errors
    finally:
        pg.screenshot(path=str(lab["root"] / "03-last.png"))
        pg.close()


def test_05_alignment_uniformity_figure_renders_one_point_per_model(chromium, lab):
    pg = _page(chromium, lab, "05_representation_analysis")
    try:
        # the first figure of 05: l_uniform against l_align, one trace (one point) per model
        gd = ("Array.from(document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .js-plotly-plot'))"
              ".find(g => g._fullLayout && g._fullLayout.xaxis && /uniform/i.test(g._fullLayout.xaxis.title.text || ''))")
        pg.wait_for_function(f"() => !!({gd})", timeout=FIRST_RUN_S * 1000 * 2)
        models = lab["metrics"]["05_representation_analysis"]["models"]
        pg.evaluate(f"() => {gd}.setAttribute('data-under-test', '1')")
        pg.locator("[data-under-test='1']").scroll_into_view_if_needed()  # pixel positions are read in view
        px = _pixels(pg, gd)
        assert len(px) == models and np.isfinite(px).all()
        names = pg.evaluate(f"() => {gd}._fullData.map(t => t.name)")
        assert "zero-shot" in names and len(set(names)) == models
        # a box around every point selects all of them
        left, top, width, height = _plot_box(pg, gd)
        x0, y0 = left + 2, top + 2
        x1, y1 = left + width - 2, top + height - 2
        assert ((px[:, 0] > x0) & (px[:, 0] < x1) & (px[:, 1] > y0) & (px[:, 1] < y1)).all()
        _box_select(pg, "[data-under-test='1']", x0, y0, x1, y1)
        pg.wait_for_function(f"() => {gd}.data.every(t => (t.selectedpoints || []).length === 1)")
        pg.locator("[data-under-test='1']").screenshot(path=str(lab["shots"] / "05_align_uniform.png"))
        pg.screenshot(path=str(lab["shots"] / "05_representation_analysis.png"))
        assert (lab["shots"] / "05_align_uniform.png").stat().st_size > 5_000
        assert not pg.errors, pg.errors
    finally:
        pg.close()
