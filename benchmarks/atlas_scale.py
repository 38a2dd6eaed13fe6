"""Embedding Atlas (Apple's embedding-atlas widget) on the explorer's data, in the same JupyterLab and
headless Chromium as ``explorer_scale.py``: does it serve the data-map explorer's scale better?

Issue 24 asks to measure a maintained widget library before keeping plotly. Embedding Atlas is on
PyPI but pulls in litellm, accelerate and sentence-transformers, so it is not a dependency of the
workbench: install the widget and the few packages its module imports beside the venv, without
touching it, and point this script at them::

    .venv/bin/pip install --target .bench-atlas --no-deps embedding-atlas==0.26.0 duckdb anywidget \
        inquirer blessed readchar editor runs xmod jinxed
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/atlas_scale.py --overlay .bench-atlas [--sizes 20000,100000]

The points are the explorer benchmark's (``explorer_scale.inputs``: real training pairs repeated,
map positions jittered), given to ``EmbeddingAtlasWidget(view, x="variability", y="confidence",
text="query")``. Chromium runs with SwiftShader's WebGPU adapter (``labtools.SOFTWARE_WEBGPU``), the
only WebGPU a machine without a GPU has. Per size, on the page's clock:

- ``ui_s``: from running the widget's cell to its point count ("/ N points") on screen, with its
  histograms and table;
- ``map_drawn``: whether the embedding view drew the points, or says "WebGPU is unavailable" (and
  the console's reason);
- ``brush_s``: a brush over a third of the first histogram: from the last mouse move to the last
  change of the selected-points count (median of 3; cross-filtered by DuckDB in the kernel).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from common import ROOT, write_result

sys.path.insert(0, str(ROOT / "tests"))
from explorer_scale import inputs, new_page, notebook, open_and_load, session  # noqa: E402
from labtools import SOFTWARE_WEBGPU  # noqa: E402

PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
# leaves of the widget's (shadow) DOM: texts and the histograms' bars
DEEP = """() => { const texts = [], bars = []; const out = document.querySelectorAll('PANEL .jp-OutputArea-output')[1];
  if (!out) return null;
  const walk = (root) => { for (const el of root.querySelectorAll('*')) {
    if (el.tagName === 'rect') { const r = el.getBoundingClientRect(); if (r.width > 3 && r.height > 3) bars.push([r.left + r.width / 2, r.bottom - 2]); }
    if (el.children.length === 0 && el.textContent) texts.push(el.textContent.trim());
    if (el.shadowRoot) walk(el.shadowRoot); } };
  walk(out); return {texts: texts.filter(t => t.length < 200), bars}; }""".replace("PANEL", PANEL)
# the selected-points count, recorded on every animation frame with the page's clock
WATCH = """() => { window.__counts = []; const read = () => { const d = (DEEP)(); if (d) {
    const c = d.texts.find(t => /^[\\d,]+ points$/.test(t)); const last = window.__counts[window.__counts.length - 1];
    if (c && (!last || last[1] !== c)) window.__counts.push([performance.now(), c]); }
  window.__watch = requestAnimationFrame(read); }; read(); }""".replace("(DEEP)", f"({DEEP})")


def measure(pg, lab: dict, n: int, console: list[str]) -> dict:
    name = notebook(lab["root"], f"atlas-{n}.ipynb", [
        "import pandas as pd\nfrom embedding_atlas.widget import EmbeddingAtlasWidget\n"
        f"pairs = pd.read_parquet('pairs-{n}.parquet')\ndmap = pd.read_parquet('map-{n}.parquet')\n"
        "view = dmap.merge(pairs[['id', 'query', 'code', 'source']], left_on='pair_id', right_on='id')\n'loaded'",
        "w = EmbeddingAtlasWidget(view, x='variability', y='confidence', text='query')\nw",
    ])
    open_and_load(pg, lab, name, f"a{n}")
    adapter = pg.evaluate("async () => { const a = navigator.gpu && await navigator.gpu.requestAdapter();"
                          " return a ? [a.info.vendor, a.info.architecture].join('/') : null; }")
    pg.evaluate("() => { window.__t0 = performance.now(); }")
    pg.keyboard.press("Shift+Enter")
    total = f"/ {n:,} points"
    pg.wait_for_function(f"() => {{ const d = ({DEEP})(); return d && d.texts.includes({total!r}); }}",
                         timeout=600_000, polling="raf")
    ui_s = pg.evaluate("() => (performance.now() - window.__t0) / 1000")
    pg.wait_for_timeout(5_000)  # time for the embedding view to draw, or to give up
    texts = pg.evaluate(DEEP)["texts"]
    unavailable = next((t for t in texts if "WebGPU is unavailable" in t), None)
    reasons = sorted({m for m in console if "WebGPU" in m or "shader-f16" in m})
    brush_s, counts, tries = [], [], 0
    everything = f"{n:,} points"
    while len(brush_s) < 3 and tries < 8:
        tries += 1
        bars = sorted({(round(x), round(y)) for x, y in pg.evaluate(DEEP)["bars"]})  # one rect per bar
        bars = [b for b in bars if b[1] == bars[0][1]]  # the first histogram's
        lo, hi = bars[len(bars) // 6 + len(brush_s)], bars[len(bars) // 2 + len(brush_s)]
        pg.evaluate(WATCH)
        pg.mouse.move(lo[0], lo[1])
        pg.mouse.down()
        pg.mouse.move(hi[0], hi[1], steps=8)
        t_move = pg.evaluate("() => performance.now()")
        pg.mouse.up()
        pg.wait_for_timeout(4_000)
        seen = pg.evaluate("() => { cancelAnimationFrame(window.__watch); return window.__counts; }")
        after = [(t, c) for t, c in seen if t >= t_move]
        if seen and seen[-1][1] != everything:  # a brush that selected (a drag that only cleared one is tried again)
            brush_s.append(round((after[-1][0] - t_move) / 1000, 3) if after else 0.0)
            counts.append(seen[-1][1])
        for _ in range(3):  # a click beside the brush clears it
            if everything in pg.evaluate(DEEP)["texts"]:
                break
            pg.mouse.click(lo[0], lo[1] - 40)
            pg.wait_for_timeout(1_500)
    shots = ROOT / "papermill_runs" / "browser"
    shots.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(shots / f"atlas_scale_{n}.png"))
    out = {"n": n, "ui_s": round(ui_s, 3), "map_drawn": unavailable is None, "map_message": unavailable,
           "webgpu_console": reasons, "brush_s": statistics.median(brush_s) if brush_s else None, "brush_all_s": brush_s,
           "brush_counts": counts, "webgpu_adapter": adapter}
    print(f"[atlas] {n:>7} points: UI and counts {ui_s:.2f} s; map drawn: {out['map_drawn']}"
          f" ({unavailable or 'drawn'}; {'; '.join(reasons) or 'no WebGPU message'}); brush {out['brush_s']} s"
          f" {brush_s} -> {counts}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="20000,100000,250000")
    ap.add_argument("--overlay", required=True, help="the folder embedding-atlas was installed into (pip --target)")
    args = ap.parse_args()
    overlay = Path(args.overlay).resolve()
    if not (overlay / "embedding_atlas").is_dir():
        sys.exit(f"no embedding_atlas under {overlay}: see this script's docstring for the pip command")
    # the kernel imports the widget from the overlay; JupyterLab finds anywidget's front end there
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(overlay), os.environ.get("PYTHONPATH")]))
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(overlay / "share" / "jupyter"),
                                                               os.environ.get("JUPYTER_PATH")]))
    rows = []
    t0 = time.time()
    with session("atlas-scale-", SOFTWARE_WEBGPU) as (tmp, lab, browser, base, corpus):
        for n in [int(s) for s in args.sizes.split(",")]:
            inputs(base, n, tmp)
            pg = new_page(browser)
            console: list[str] = []
            pg.on("console", lambda m, console=console: console.append(m.text))
            try:
                rows.append(measure(pg, lab, n, console))
            finally:
                pg.close()
    version = next(overlay.glob("embedding_atlas-*.dist-info")).name.split("-")[1].removesuffix(".dist")
    print(f"\nEmbedding Atlas {version} in JupyterLab + headless Chromium (SwiftShader WebGPU); {corpus} corpus's "
          f"{len(base)} train pairs repeated with jitter")
    for r in rows:
        print(f"  {r['n']:>7,}: UI {r['ui_s']:.2f} s, map drawn {r['map_drawn']}, brush {r['brush_s']} s")
    write_result("atlas_scale", {"embedding_atlas": version, "corpus": corpus, "base_pairs": len(base), "rows": rows,
                                 "chromium_args": list(SOFTWARE_WEBGPU), "seconds": round(time.time() - t0),
                                 "data": "real pairs repeated, ids unique, map positions jittered N(0, 0.02)"})


if __name__ == "__main__":
    main()
