"""Cross-validated GIN experiments: folds, training, model selection, results.

Example:
    >>> from graphpool.apps.experiments import TrainConfig, config_grid
    >>> len(config_grid(hidden=(16, 32), batch_size=(32, 128), dropout=(0.0, 0.5)))
    8
"""
from .config import TrainConfig, config_grid
from .folds import holdout_split, stratified_folds
from .packing import GraphBatch, PackedGraphs
from .plots import plot_against_paper
from .protocols import PROTOCOLS, CVResult, cross_validate
from .results import PAPER_ACCURACY, ResultRow, format_table, read_json, write_csv, write_json
from .runner import run_experiments
from .training import Curves, train_gin

__all__ = ["TrainConfig", "config_grid", "stratified_folds", "holdout_split", "PackedGraphs",
           "GraphBatch", "train_gin", "Curves", "PROTOCOLS", "CVResult", "cross_validate",
           "run_experiments", "PAPER_ACCURACY", "ResultRow", "format_table", "write_csv",
           "write_json", "read_json", "plot_against_paper"]
