"""Plotly figures (data maps) and their export."""

from .datamap import CATEGORY_COLORS, ExportError, datamap_figure, export_figure

__all__ = ["datamap_figure", "export_figure", "ExportError", "CATEGORY_COLORS"]
