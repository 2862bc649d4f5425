"""Offline datasets bundled with graphpool."""
from .tu import BUNDLED_TU_DATASETS, load_tu_dataset

__all__ = ["load_tu_dataset", "BUNDLED_TU_DATASETS"]
