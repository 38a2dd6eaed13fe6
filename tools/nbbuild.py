"""Tiny helper to write a notebook from (kind, source) cells: outputs empty, first code cell tagged.

The ``parameters`` cell ends with the parameters the chapter reads, by section, from
``workbench.config.CHAPTER_READS`` (the same listing as ``workbench params NN``).

With ``NOTEBOOK_OUT_DIR`` set, the notebook is written into that folder under its own name instead
(how ``tests/test_notebooks_generated.py`` checks that the committed notebooks are what the
scripts write)."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import nbformat


def reads_comment(chapter: str) -> str:
    """Comment lines listing what ``chapter`` reads, by section ('' for a chapter that reads none)."""
    from workbench.config import CHAPTER_READS, chapter_parameters

    if chapter not in CHAPTER_READS:
        return ""
    number = chapter.split("_", 1)[0]
    lines = [f"# This chapter reads these parameters (set any in `overrides`; their values: `workbench params {number}`):"]
    for section, names in chapter_parameters(chapter).items():
        lines += textwrap.wrap(f"{section}: {', '.join(names)}", 100, initial_indent="#   ", subsequent_indent="#       ")
    return "\n".join(lines)


def build(path: str, cells: list[tuple[str, str]]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "workbench", "display_name": "Python (workbench)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, src in cells:
        src = src.strip("\n")
        if kind == "params" and (listing := reads_comment(Path(path).stem)):
            src += "\n" + listing
        if kind == "md":
            nb.cells.append(nbformat.v4.new_markdown_cell(src))
        else:
            cell = nbformat.v4.new_code_cell(src)
            if kind == "params":
                cell.metadata["tags"] = ["parameters"]
            nb.cells.append(cell)
    for i, c in enumerate(nb.cells):
        c["id"] = f"cell-{i:02d}"
    nbformat.validate(nb)
    if os.environ.get("NOTEBOOK_OUT_DIR"):
        path = str(Path(os.environ["NOTEBOOK_OUT_DIR"]) / Path(path).name)
    nbformat.write(nb, path)
    print(f"wrote {path}", file=sys.stderr)
