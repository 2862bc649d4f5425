"""TU graph-classification datasets, loaded with PyG's real ``TUDataset`` from local files.

The raw files of MUTAG, PROTEINS, NCI1 and PTC_MR ship inside the package
(``graphpool/datasets/TUDataset``, provenance in its ``SOURCES.md``). PyG writes a
``processed/`` folder next to ``raw/``, so the bundled raw files are first copied to a
writable root (``$GRAPHPOOL_DATA`` or ``~/.cache/graphpool``); nothing is downloaded.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional, Union

from ..errors import GraphpoolError

__all__ = ["load_tu_dataset", "BUNDLED_TU_DATASETS", "BUNDLED_ROOT", "default_root"]

BUNDLED_ROOT = Path(__file__).parent / "TUDataset"
BUNDLED_TU_DATASETS = ("MUTAG", "PROTEINS", "NCI1", "PTC_MR")


def default_root() -> Path:
    """Writable root for processed datasets: ``$GRAPHPOOL_DATA`` or ``~/.cache/graphpool``."""
    base = os.environ.get("GRAPHPOOL_DATA") or Path.home() / ".cache" / "graphpool"
    return Path(base) / "TUDataset"


def load_tu_dataset(name: str, root: Optional[Union[str, Path]] = None):
    """Load a TU dataset with :class:`torch_geometric.datasets.TUDataset`.

    Args:
        name: ``"MUTAG"``, ``"PROTEINS"``, ``"NCI1"`` or ``"PTC_MR"`` (bundled).
        root: where ``TUDataset`` keeps ``<name>/raw`` and ``<name>/processed``;
            defaults to :func:`default_root`, filled from the bundled raw files.

    Example:
        >>> ds = load_tu_dataset("MUTAG")
        >>> len(ds), ds.num_classes
        (188, 2)
    """
    from torch_geometric.datasets import TUDataset

    if name not in BUNDLED_TU_DATASETS:
        raise GraphpoolError("load_tu_dataset", "name",
                             f"one of the bundled datasets {BUNDLED_TU_DATASETS}", repr(name),
                             "pick one of the listed names (they are case-sensitive)")
    root = Path(root) if root is not None else default_root()
    raw = root / name / "raw"
    if not raw.is_dir() or not any(raw.iterdir()):
        raw.mkdir(parents=True, exist_ok=True)
        for file in (BUNDLED_ROOT / name / "raw").iterdir():
            shutil.copy2(file, raw / file.name)
    return TUDataset(str(root), name)
