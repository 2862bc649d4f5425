"""TU graph-classification datasets, loaded with PyG's real ``TUDataset`` from local files.

The raw files of MUTAG, PROTEINS, NCI1 and PTC_MR ship inside the package
(``graphpool/datasets/TUDataset``, provenance in its ``SOURCES.md``). PyG writes a
``processed/`` folder next to ``raw/``, so the bundled raw files are first copied to a
writable root (``$GRAPHPOOL_DATA/TUDataset`` or ``~/.cache/graphpool/TUDataset``) and
nothing is downloaded. Any other TU dataset goes through ``TUDataset``'s usual download.

Raw files are checked before PyG parses them: every value parses, graph ids start at 1
and never decrease, edge ids name existing nodes, every per-node file has one line per
line of ``<name>_graph_indicator.txt``, every per-edge file one line per line of
``<name>_A.txt`` and every per-graph file one line per graph, so that a truncated,
corrupt or mixed-up copy fails with a :class:`~graphpool.GraphpoolError` naming the file.
"""
from __future__ import annotations

import io
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


_INTEGER = ("A", "graph_indicator", "node_labels", "edge_labels", "graph_labels")
_FIX = ("the raw files are truncated, corrupt or from different versions: restore them "
        "(for a bundled dataset, delete that raw folder and load again)")


def _table(where: str, path: Path, integer: bool):
    """The values of a raw file, ``[lines, fields]`` (integers, or floats for attributes),
    as PyG reads them (every line, split at commas; the text after the last newline is
    dropped), or a GraphpoolError naming the file and its first line that PyG could not
    read (or would drop)."""
    import re

    import numpy as np

    text = path.read_bytes().decode(errors="replace")
    kind = "integers" if integer else "numbers"

    def bad_line(number: int, line: str, expected: str) -> GraphpoolError:
        return GraphpoolError(where, path.name, expected, f"line {number}: {line[:60]!r} in "
                              f"{path.parent}", _FIX)

    if text and not text.endswith("\n"):
        last = text.count("\n") + 1
        raise bad_line(last, text.rsplit("\n", 1)[-1], "a newline after the last line "
                       "(PyG drops a last line without one)")
    blank = re.search(r"^[ \t\r]*$", text[:-1], re.MULTILINE) if text else None
    if blank:
        raise bad_line(text.count("\n", 0, blank.start()) + 1, "", f"comma-separated {kind} "
                       "on every line")
    try:
        return np.loadtxt(io.StringIO(text), delimiter=",", comments=None, ndmin=2,
                          dtype=np.int64 if integer else np.float64)
    except ValueError:  # find the line, and say it in graphpool's words
        lines = text.split("\n")[:-1]
        parse = int if integer else float
        width = len(lines[0].split(","))
        for number, line in enumerate(lines, 1):
            fields = line.split(",")
            try:
                [parse(f) for f in fields]
            except ValueError:
                raise bad_line(number, line, f"comma-separated {kind}") from None
            if len(fields) != width:
                raise bad_line(number, line, f"{width} values per line, as on line 1"
                               ) from None
        raise bad_line(1, lines[0], f"comma-separated {kind}") from None


def check_tu_raw_files(raw_dir: Union[str, Path], name: str) -> Dict[str, int]:
    r"""Check the raw TU files of ``name`` in ``raw_dir`` before PyG parses them.

    ``graph_indicator`` holds one graph id per node, from 1, non-decreasing (PyG groups
    the nodes of a graph by their order); :math:`n` lines (nodes), :math:`N` graphs (its
    largest id). ``A`` holds one edge ``i, j`` per line, :math:`m` lines, node ids in
    :math:`[1, n]`. Node files need :math:`n` lines, edge files :math:`m` and graph
    files :math:`N`; every value must parse (integers, numbers for attributes).

    Returns:
        ``{"graphs": N, "nodes": n, "edges": m}``.

    Raises:
        GraphpoolError: a required file is missing, or a file has the wrong number of
            lines or a value that does not parse or is out of range (it names the file).

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

    def bad(file: str, expected: str, got: str) -> GraphpoolError:
        return GraphpoolError(where, f"{name}_{file}.txt", expected, f"{got} in {raw_dir}",
                              _FIX)

    graph = _table(where, raw_dir / f"{name}_graph_indicator.txt", True)
    if graph.shape[1] != 1 or len(graph) == 0:
        raise bad("graph_indicator", "one graph id per line", f"{graph.shape[1]} per line"
                  if len(graph) else "no lines")
    graph = graph[:, 0]
    first = int((graph < 1).argmax()) if (graph < 1).any() else None
    if first is not None:
        raise bad("graph_indicator", "graph ids from 1", f"{graph[first]} on line {first + 1}")
    drops = graph[1:] < graph[:-1]
    if drops.any():
        line = int(drops.argmax()) + 2
        raise bad("graph_indicator", "non-decreasing graph ids (the nodes of a graph "
                  "together)", f"{graph[line - 1]} after {graph[line - 2]} on line {line}")
    nodes, graphs = len(graph), int(graph[-1])
    edge = _table(where, raw_dir / f"{name}_A.txt", True)
    if len(edge) and edge.shape[1] != 2:
        raise bad("A", "two node ids 'i, j' per line", f"{edge.shape[1]} values per line")
    outside = (edge < 1) | (edge > nodes)
    if outside.any():
        line = int(outside.any(1).argmax()) + 1
        raise bad("A", f"node ids in [1, {nodes}] (the lines of graph_indicator)",
                  f"{edge[line - 1].tolist()} on line {line}")
    edges = len(edge)
    expected = {**{s: ("node", nodes) for s in _PER_NODE},
                **{s: ("edge", edges) for s in _PER_EDGE},
                **{s: ("graph", graphs) for s in _PER_GRAPH}}
    for suffix, (unit, count) in expected.items():
        path = raw_dir / f"{name}_{suffix}.txt"
        if path.is_file() and (lines := len(_table(where, path, suffix in _INTEGER))) != count:
            raise bad(suffix, f"{count} lines (one per {unit})", f"{lines} lines")
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
