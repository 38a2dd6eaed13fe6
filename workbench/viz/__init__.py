"""Plotly figures (data maps), their export, and the interactive data-map explorer."""

from .datamap import CATEGORY_COLORS, ExportError, datamap_figure, export_figure
from .explorer import DataMapExplorer, load_false_negatives, load_subset, subsets_dir

__all__ = [
    "datamap_figure",
    "export_figure",
    "ExportError",
    "CATEGORY_COLORS",
    "DataMapExplorer",
    "load_subset",
    "load_false_negatives",
    "subsets_dir",
]
