"""Run the cross-validation for every dataset and readout and collect the result rows."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Union

from ...datasets import load_tu_dataset
from ...readouts import Readout
from .config import TrainConfig
from .packing import PackedGraphs
from .protocols import cross_validate
from .results import ResultRow

__all__ = ["run_experiments"]


def _name(readout: Union[str, Readout]) -> str:
    return readout if isinstance(readout, str) else repr(readout)


def run_experiments(datasets: Sequence[str], readouts: Sequence[Union[str, Readout]],
                    configs: Sequence[TrainConfig], *, protocol: str = "paper", folds: int = 10,
                    max_folds: Optional[int] = None, seed: int = 0, val_fraction: float = 0.1,
                    data_root: Optional[Union[str, Path]] = None,
                    progress: bool = True) -> List[ResultRow]:
    """One :class:`~graphpool.apps.experiments.results.ResultRow` per dataset and readout, in that
    order; arguments as in :func:`~graphpool.apps.experiments.protocols.cross_validate`, and
    ``data_root`` as in :func:`~graphpool.datasets.load_tu_dataset`.

    Example:
        >>> import tempfile
        >>> rows = run_experiments(["MUTAG"], ["sum", "max"], [TrainConfig(epochs=1)],
        ...                        max_folds=1, data_root=tempfile.mkdtemp(), progress=False)
        >>> [(r.dataset, r.readout, r.folds_run) for r in rows]
        [('MUTAG', 'sum', 1), ('MUTAG', 'max', 1)]
    """
    rows = []
    for dataset in datasets:
        graphs = PackedGraphs(load_tu_dataset(dataset, data_root))
        for readout in readouts:
            name = _name(readout)
            result = cross_validate(graphs, readout, configs, protocol=protocol, folds=folds,
                                    max_folds=max_folds, seed=seed, val_fraction=val_fraction,
                                    progress=progress, desc=f"{dataset} {name} {protocol}")
            rows.append(ResultRow.from_result(dataset, name, result, folds))
    return rows
