"""Progress bars: widget-capable bars interactively, text bars when headless (papermill logs)."""

from __future__ import annotations

import io

from tqdm.std import tqdm as text_tqdm

from workbench.progress import tqdm


def test_interactive_bar_counts(monkeypatch):
    monkeypatch.delenv("WORKBENCH_HEADLESS", raising=False)
    out = io.StringIO()
    assert sum(tqdm(range(5), file=out)) == 10


def test_headless_bar_is_plain_text(monkeypatch):
    monkeypatch.setenv("WORKBENCH_HEADLESS", "1")
    out = io.StringIO()
    bar = tqdm(range(3), file=out, desc="encode")
    assert type(bar) is text_tqdm
    list(bar)
    text = out.getvalue()
    assert "encode" in text and "3/3" in text and "#" in text
