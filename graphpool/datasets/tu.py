"""TU graph-classification datasets, loaded with PyG's real ``TUDataset`` from local files.

The raw files of MUTAG, PROTEINS, NCI1 and PTC_MR ship inside the package
(``graphpool/datasets/TUDataset``, provenance in its ``SOURCES.md``). PyG writes a
``processed/`` folder next to ``raw/``, so the bundled raw files are first copied to a
writable root (``$GRAPHPOOL_DATA/TUDataset`` or ``~/.cache/graphpool/TUDataset``) and
nothing is downloaded. Any other TU dataset goes through ``TUDataset``'s usual download.

Raw files are checked before PyG parses them: every per-node file must have one line per
line of ``<name>_graph_indicator.txt``, every per-edge file one line per line of
``<name>_A.txt`` and every per-graph file one line per graph, so that a truncated or
mixed-up copy fails with a :class:`~graphpool.GraphpoolError` naming the file.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Dict, Optional, Union

from ..errors import GraphpoolError

__all__ = ["load_tu_dataset", "check_tu_raw_files", "BUNDLED_TU_DATASETS", "BUNDLED_ROOT",
           "default_root"]

BUNDLED_ROOT = Path(__file__).parent / "TUDataset"
BUNDLED_TU_DATASETS = ("MUTAG", "PROTEINS", "NCI1", "PTC_MR")

# Which count each optional raw file must match, by file suffix.
_PER_NODE = ("node_labels", "node_attributes")
_PER_EDGE = ("edge_labels", "edge_attributes")
_PER_GRAPH = ("graph_labels", "graph_attributes")


def default_root() -> Path:
    """Writable root for TU datasets: ``$GRAPHPOOL_DATA/TUDataset`` or
    ``~/.cache/graphpool/TUDataset``.

    Example:
        >>> default_root().name
        'TUDataset'
    """
    base = os.environ.get("GRAPHPOOL_DATA") or Path.home() / ".cache" / "graphpool"
    return Path(base) / "TUDataset"


def _bundled_files(name: str) -> list:
    return sorted(f.name for f in (BUNDLED_ROOT / name / "raw").iterdir()
                  if f.name.startswith(f"{name}_"))


def _copy_bundled(name: str, raw: Path) -> None:
    """Copy the bundled raw files into ``raw`` (each file atomically: parallel runs are safe)."""
    raw.mkdir(parents=True, exist_ok=True)
    for file in (BUNDLED_ROOT / name / "raw").iterdir():
        partial = raw / f".{file.name}.{os.getpid()}.partial"
        shutil.copyfile(file, partial)
        os.replace(partial, raw / file.name)


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def _last_value(path: Path) -> str:
    with open(path, "rb") as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    return lines[-1].decode(errors="replace").strip() if lines else ""


def check_tu_raw_files(raw_dir: Union[str, Path], name: str) -> Dict[str, int]:
    r"""Check that the raw TU files of ``name`` in ``raw_dir`` agree in length.

    With :math:`n` lines in ``graph_indicator`` (nodes), :math:`m` lines in ``A`` (directed
    edges) and :math:`N` graphs (its last value), node files need :math:`n` lines, edge
    files :math:`m` and graph files :math:`N`.

    Returns:
        ``{"graphs": N, "nodes": n, "edges": m}``.

    Raises:
        GraphpoolError: a required file is missing or a file has the wrong number of lines.

    Example:
        >>> check_tu_raw_files(BUNDLED_ROOT / "MUTAG" / "raw", "MUTAG")
        {'graphs': 188, 'nodes': 3371, 'edges': 7442}
    """
    raw_dir = Path(raw_dir)
    where = f"load_tu_dataset({name!r})"
    missing = [f"{name}_{part}.txt" for part in ("A", "graph_indicator")
               if not (raw_dir / f"{name}_{part}.txt").is_file()]
    if missing:
        raise GraphpoolError(where, "raw files", f"{', '.join(missing)} in {raw_dir}",
                             "no such file", "put the dataset's raw TU files there")
    nodes = _count_lines(raw_dir / f"{name}_graph_indicator.txt")
    edges = _count_lines(raw_dir / f"{name}_A.txt")
    last = _last_value(raw_dir / f"{name}_graph_indicator.txt")
    if not last.isdigit():
        raise GraphpoolError(where, f"{name}_graph_indicator.txt",
                             "one positive graph id per line, ending with the number of graphs",
                             f"last line {last!r} in {raw_dir}",
                             "restore the file from the original dataset")
    graphs = int(last)
    expected = {**{s: ("node", nodes) for s in _PER_NODE},
                **{s: ("edge", edges) for s in _PER_EDGE},
                **{s: ("graph", graphs) for s in _PER_GRAPH}}
    for suffix, (unit, count) in expected.items():
        path = raw_dir / f"{name}_{suffix}.txt"
        if path.is_file() and (lines := _count_lines(path)) != count:
            raise GraphpoolError(
                where, path.name, f"{count} lines (one per {unit})", f"{lines} lines in {raw_dir}",
                "the raw files are truncated or from different versions: restore them "
                "(for a bundled dataset, delete that raw folder and load again)")
    return {"graphs": graphs, "nodes": nodes, "edges": edges}


def load_tu_dataset(name: str, root: Optional[Union[str, Path]] = None):
    """Load a TU dataset with :class:`torch_geometric.datasets.TUDataset`.

    A bundled dataset (:data:`BUNDLED_TU_DATASETS`) never downloads: when
    ``<root>/<name>/raw`` is absent or empty it is filled from the package. Any other
    name goes through ``TUDataset``'s normal path, downloading when the raw files are
    not already under ``root``. Raw files are checked with :func:`check_tu_raw_files`.

    Args:
        name: dataset name, case-sensitive (``"MUTAG"``, ``"PROTEINS"``, ``"NCI1"``,
            ``"PTC_MR"`` are bundled).
        root: where ``TUDataset`` keeps ``<name>/raw`` and ``<name>/processed``;
            defaults to :func:`default_root`.

    Raises:
        GraphpoolError: a bundled dataset's raw folder lacks some files, the raw files
            disagree in length, a name differs from a bundled one only by case, or a
            dataset that is not bundled could not be downloaded.

    Example:
        >>> import tempfile
        >>> ds = load_tu_dataset("MUTAG", root=tempfile.mkdtemp())
        >>> len(ds), ds.num_classes, ds.num_features
        (188, 2, 7)
    """
    from torch_geometric.datasets import TUDataset

    where = f"load_tu_dataset({name!r})"
    given = root
    root = Path(root) if root is not None else default_root()
    raw = root / name / "raw"
    bundled = ", ".join(BUNDLED_TU_DATASETS)
    if name in BUNDLED_TU_DATASETS:
        if not raw.is_dir() or not any(raw.iterdir()):
            try:
                _copy_bundled(name, raw)
            except OSError as err:
                argument = "GRAPHPOOL_DATA" if given is None and os.environ.get(
                    "GRAPHPOOL_DATA") else "root"
                raise GraphpoolError(where, argument, "a writable folder for the dataset "
                                     "files", f"{str(root)!r} ({err.strerror})",
                                     f"point {argument} at a folder you can write to") from None
        missing = [f for f in _bundled_files(name) if not (raw / f).is_file()]
        if missing:
            raise GraphpoolError(where, "root", f"the raw files {', '.join(missing)} in {raw}",
                                 "a raw folder without them",
                                 f"delete {raw} to restore the bundled copy, or add the files")
    elif name.upper() in BUNDLED_TU_DATASETS:
        raise GraphpoolError(where, "name", f"one of the bundled datasets {bundled} "
                             "(names are case-sensitive)", repr(name),
                             f"use {name.upper()!r}")
    elif not (raw / f"{name}_A.txt").is_file():
        try:
            return TUDataset(str(root), name)
        except OSError as err:
            raise GraphpoolError(where, "name", f"a bundled dataset ({bundled}) or one that "
                                 "can be downloaded", f"{name!r}, whose download failed: {err}",
                                 f"pick a bundled dataset, connect to the network, or put the "
                                 f"raw TU files in {raw}") from err
    check_tu_raw_files(raw, name)
    return TUDataset(str(root), name)
