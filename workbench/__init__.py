"""Notebook-first research workbench for natural-language code search.

The library does the work; the notebooks in ``notebooks/`` tell the story. See README.md.
"""

__version__ = "0.1.0"
