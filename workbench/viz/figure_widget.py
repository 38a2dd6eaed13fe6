"""plotly's ``FigureWidget`` with one plotly.js per page instead of one per widget.

plotly 7's ``FigureWidget`` is an anywidget whose front end (``widgetbundle.js``, plotly.js with its
widget code, 5 MB) travels in every widget's ``_esm`` and is evaluated anew for each: anywidget imports
each widget's module from its own blob URL. In headless Chromium that costs 1-2 s per widget, so the
data-map explorer's map, bar chart and projection spent 4-5 s of its first render evaluating plotly.js
three times (docs/performance.md). :class:`FigureWidget` wraps the bundle, as a string, in a module that
imports it once per page (a promise kept on ``globalThis`` under a key holding the bundle's digest, so
another plotly version gets its own) and re-exports it; every workbench widget after the first then
renders in a fraction of that. The bundle still travels with each widget (the kernel cannot know what
a page has already loaded), as a string the browser only has to read, not run.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path

import plotly
import plotly.graph_objects as go

__all__ = ["FigureWidget", "shared_module"]


@cache
def shared_module() -> str:
    """The ES module every :class:`FigureWidget` sends: plotly's widget bundle imported once per page."""
    source = (Path(plotly.__file__).parent / "package_data" / "widgetbundle.js").read_text(encoding="utf-8")
    key = "__workbench_plotly_widget_" + hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]
    return (
        f"const KEY = {json.dumps(key)};\n"
        f"globalThis[KEY] ??= import(URL.createObjectURL(new Blob([{json.dumps(source)}], {{type: 'text/javascript'}})));\n"
        "const bundle = await globalThis[KEY];\n"
        "export const FigureModel = bundle.FigureModel;\n"
        "export const FigureView = bundle.FigureView;\n"
        "export default bundle.default;\n"
    )


class FigureWidget(go.FigureWidget):
    """``go.FigureWidget`` (the same figure, events and Python API) whose plotly.js is loaded once per page."""

    _esm = shared_module()
