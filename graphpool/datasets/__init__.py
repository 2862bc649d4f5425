"""Offline datasets bundled with graphpool."""
from .tu import BUNDLED_TU_DATASETS, check_tu_raw_files, default_root, load_tu_dataset

__all__ = ["load_tu_dataset", "check_tu_raw_files", "default_root", "BUNDLED_TU_DATASETS"]
