r"""Synthetic graph families whose answers are known from theory, built with networkx.

A :class:`Family` holds *pairs* of graphs (for exact distinguishability: do two inputs
read out differently?) and optionally a *task* (for learned accuracy: a balanced,
labelled sample). Every graph is a PyG ``Data`` with

* ``x``: one-hot node types (``[N, T]``; the pair or task names the types by letter),
* ``edge_index``: both directions of every undirected edge (PyG's convention),
* ``edge_type``: the direction of each edge, ``0`` along a grid row, ``1`` along a
  grid column; graphs that are not grids use ``0`` for every edge (one type).

What the families show, on multisets of node types :math:`X`:

.. math::
    \mathrm{sum}(X) = \sum_t n_t e_t \ \text{(counts)}, \qquad
    \mathrm{mean}(X) = \sum_t \tfrac{n_t}{|X|} e_t \ \text{(proportions)}, \qquad
    \mathrm{max}(X) = \max_{t:\, n_t > 0} e_t \ \text{(presence)}

for node encodings :math:`e_t` and :math:`n_t` nodes of type :math:`t`. The other readouts
of :data:`graphpool.READOUTS` fall into these classes or between them: logsumexp, prod,
vpa and DeepSets keep the counts; softmax, the power means, var, std, the median and the
attention readouts at most the proportions; count the size alone (one sentence per
readout in docs/expressiveness.md, "The columns").

The stripe and checkerboard grids are built here with :func:`networkx.grid_2d_graph`;
they could share a helper with :mod:`graphpool.grid` once that exists.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple, Union

import networkx as nx
import torch
from torch_geometric.data import Data
from torch_geometric.utils import from_networkx

from ..errors import GraphpoolError, describe

__all__ = ["Pair", "Task", "Family", "FAMILY_NAMES", "NUM_EDGE_TYPES", "to_pyg",
           "typed_graph", "grid_image", "resolve_families", "TASK_TYPES"]

#: Edge types of every family graph: 0 along a grid row (or any edge of a non-grid
#: graph), 1 along a grid column.
NUM_EDGE_TYPES = 2

#: The letters used by the task samplers (``c`` is the rare type of ``presence``).
TASK_TYPES = "abc"


@dataclass(frozen=True)
class Pair:
    """Two graphs to tell apart; ``rounds`` message-passing rounds run before the readout.

    Example:
        >>> pair = resolve_families(["gin"])[0].pairs[0]
        >>> pair.name, pair.left.num_nodes, pair.right.num_nodes
        ('{a,a} vs {a,a,a}', 2, 3)
    """

    name: str
    left: Data
    right: Data
    rounds: int = 0


@dataclass(frozen=True)
class Task:
    """A graph classification task: ``sample(n, seed)`` returns ``n`` labelled graphs
    (``data.y``), classes balanced (``n`` a multiple of ``num_classes``).

    ``draw(label, rng)`` builds one typed networkx graph of class ``label`` (see
    :func:`typed_graph`, :func:`grid_image`); ``types`` are the letters of the one-hot
    ``x``. Graph ``i`` has class ``i % num_classes``, so any prefix is nearly balanced.

    Example:
        >>> task = resolve_families(["count"])[0].task
        >>> [int(g.y) for g in task.sample(8, seed=0)]
        [0, 1, 2, 3, 0, 1, 2, 3]
    """

    name: str
    num_classes: int
    draw: Callable[[int, random.Random], nx.Graph]
    types: str = TASK_TYPES

    def sample(self, num_graphs: int, seed: int) -> List[Data]:
        """``num_graphs`` graphs, class ``i % num_classes`` for the ``i``-th, from ``seed``."""
        if num_graphs % self.num_classes:
            raise GraphpoolError(f"Task({self.name!r}).sample", "num_graphs",
                                 f"a multiple of {self.num_classes} (balanced classes)",
                                 num_graphs, f"round it to a multiple of {self.num_classes}")
        rng = random.Random(seed)
        graphs = []
        for i in range(num_graphs):
            label = i % self.num_classes
            data = to_pyg(self.draw(label, rng), self.types)
            data.y = torch.tensor([label])
            graphs.append(data)
        return graphs


@dataclass(frozen=True)
class Family:
    """A named group of :class:`Pair` s and an optional :class:`Task`.

    Example:
        >>> [f.name for f in resolve_families(None)] == list(FAMILY_NAMES)
        True
    """

    name: str
    pairs: Tuple[Pair, ...]
    task: Optional[Task] = None


# ---------------------------------------------------------------------- graphs
def typed_graph(types: str, edges: Union[str, nx.Graph] = "none") -> nx.Graph:
    r"""A networkx graph whose node ``i`` has type ``types[i]`` (one letter per node).

    ``edges`` is ``"none"`` (isolated nodes: a pure multiset), ``"cycle"`` (nodes in
    order around a cycle) or a networkx graph on nodes ``0..len(types)-1``.

    Example:
        >>> g = typed_graph("abab", "cycle")
        >>> g.number_of_edges(), [g.nodes[i]["type"] for i in g]
        (4, ['a', 'b', 'a', 'b'])
    """
    if isinstance(edges, nx.Graph):
        graph = nx.Graph(edges)
    elif edges == "none":
        graph = nx.empty_graph(len(types))
    elif edges == "cycle":
        graph = nx.cycle_graph(len(types))
    else:
        raise GraphpoolError("typed_graph", "edges", "'none', 'cycle' or a networkx graph",
                             describe(edges), "pick one of the listed forms")
    if sorted(graph.nodes) != list(range(len(types))):
        raise GraphpoolError("typed_graph", "edges", f"a graph on nodes 0..{len(types) - 1}",
                             f"nodes {sorted(graph.nodes)[:8]}", "give one type per node")
    for node, letter in enumerate(types):
        graph.nodes[node]["type"] = letter
    for u, v in graph.edges:
        graph.edges[u, v]["direction"] = 0
    return graph


def grid_image(pattern: str, height: int, width: int, colors: str = "ab") -> nx.Graph:
    r"""An ``height x width`` image as a 4-neighbour grid graph coloured by ``pattern``.

    Pixel :math:`(i, j)` gets ``colors[k]`` with :math:`k = j \bmod 2` for
    ``"vertical"`` stripes, :math:`i \bmod 2` for ``"horizontal"`` stripes and
    :math:`(i + j) \bmod 2` for ``"checkerboard"``. Edges along a row have
    ``direction`` 0, along a column 1. With even sides all three have the same colour
    histogram, so every node readout of one equals that of the others.

    Example:
        >>> g = grid_image("checkerboard", 2, 2)
        >>> [g.nodes[p]["type"] for p in sorted(g)]
        ['a', 'b', 'b', 'a']
    """
    parity = {"vertical": lambda i, j: j, "horizontal": lambda i, j: i,
              "checkerboard": lambda i, j: i + j}
    if pattern not in parity:
        raise GraphpoolError("grid_image", "pattern", f"one of {sorted(parity)}",
                             repr(pattern), "pick one of the listed patterns")
    graph = nx.grid_2d_graph(height, width)
    for i, j in graph.nodes:
        graph.nodes[i, j]["type"] = colors[parity[pattern](i, j) % 2]
    for u, v in graph.edges:
        graph.edges[u, v]["direction"] = int(u[0] != v[0])
    return graph


def to_pyg(graph: nx.Graph, types: str) -> Data:
    r"""Convert a typed networkx graph to PyG ``Data``: ``x`` is the one-hot of each node's
    ``type`` among the letters ``types``; ``edge_type`` is each edge's ``direction``.

    Example:
        >>> data = to_pyg(typed_graph("ab", "cycle"), "abc")
        >>> data.x.tolist(), data.edge_index.tolist(), data.edge_type.tolist()
        ([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [[0, 1], [1, 0]], [0, 0])
    """
    unknown = {graph.nodes[n]["type"] for n in graph} - set(types)
    if unknown:
        raise GraphpoolError("to_pyg", "types", f"every node type of the graph, "
                             f"{sorted(unknown)} included", repr(types),
                             "add the missing letters to types")
    data = from_networkx(graph)
    type_ids = torch.tensor([types.index(graph.nodes[n]["type"]) for n in graph])
    edge_type = getattr(data, "direction", None)
    if edge_type is None:
        edge_type = torch.zeros(data.edge_index.size(1), dtype=torch.long)
    return Data(x=torch.nn.functional.one_hot(type_ids, len(types)).float(),
                edge_index=data.edge_index, edge_type=edge_type,
                num_nodes=graph.number_of_nodes())


def _pair(name: str, left: nx.Graph, right: nx.Graph, types: str, rounds: int = 0) -> Pair:
    return Pair(name, to_pyg(left, types), to_pyg(right, types), rounds)


# ----------------------------------------------------------------------- tasks
def _shuffled_cycle(types: List[str], rng: random.Random) -> nx.Graph:
    rng.shuffle(types)
    return typed_graph("".join(types), "cycle")


def _count_graph(label: int, rng: random.Random) -> nx.Graph:
    # k = label + 2 nodes of each of a and b: the proportion of a is always 1/2, and
    # every node has degree 2 (k = 1 would give degree-1 nodes, a size cue).
    k = label + 2
    return _shuffled_cycle(["a"] * k + ["b"] * k, rng)


def _proportion_graph(label: int, rng: random.Random) -> nx.Graph:
    size = rng.randint(6, 40)
    major = max(size // 2 + 1, round(rng.uniform(0.6, 0.8) * size))
    first, second = ("a", "b") if label == 0 else ("b", "a")
    return _shuffled_cycle([first] * major + [second] * (size - major), rng)


def _presence_graph(label: int, rng: random.Random) -> nx.Graph:
    size = rng.randint(6, 40)
    num_a = rng.randint(1, size - 2)
    types = ["a"] * num_a + ["b"] * (size - num_a - 1) + ["c" if label else "b"]
    return _shuffled_cycle(types, rng)


def _stripes_or_checkerboard(label: int, rng: random.Random) -> nx.Graph:
    height, width = rng.choice((4, 6)), rng.choice((4, 6))
    colors = "".join(rng.sample(TASK_TYPES, 2))
    pattern = "checkerboard" if label else rng.choice(("vertical", "horizontal"))
    return grid_image(pattern, height, width, colors)


# -------------------------------------------------------------------- families
def _gin() -> Family:
    cases = [("aa", "aaa"), ("gr", "grr"), ("gr", "ggrr")]
    return Family("gin", tuple(
        _pair("{" + ",".join(p) + "} vs {" + ",".join(q) + "}", typed_graph(p),
              typed_graph(q), "agr") for p, q in cases))


def _count() -> Family:
    pair = _pair("cycle abab vs ababab", typed_graph("abab", "cycle"),
                 typed_graph("ababab", "cycle"), TASK_TYPES)
    return Family("count", (pair,), Task("count", 4, _count_graph))


def _proportion() -> Family:
    pair = _pair("cycle aab vs abb", typed_graph("aab", "cycle"), typed_graph("abb", "cycle"),
                 TASK_TYPES)
    return Family("proportion", (pair,), Task("proportion", 2, _proportion_graph))


def _presence() -> Family:
    pair = _pair("cycle aaaaaa vs aaaaac", typed_graph("aaaaaa", "cycle"),
                 typed_graph("aaaaac", "cycle"), TASK_TYPES)
    return Family("presence", (pair,), Task("presence", 2, _presence_graph))


def _copies() -> Family:
    house = typed_graph("aabbc", nx.house_graph())
    return Family("copies", (_pair("house G vs G+G", house, nx.disjoint_union(house, house),
                                   "abc"),))


def _wl() -> Family:
    two_triangles = nx.disjoint_union(nx.cycle_graph(3), nx.cycle_graph(3))
    return Family("wl", (
        _pair("two triangles vs hexagon (3 rounds)", typed_graph("a" * 6, two_triangles),
              typed_graph("a" * 6, "cycle"), "a", rounds=3),
        _pair("CSL(11,2) vs CSL(11,3) (3 rounds)",
              typed_graph("a" * 11, nx.circulant_graph(11, [1, 2])),
              typed_graph("a" * 11, nx.circulant_graph(11, [1, 3])), "a", rounds=3)))


def _grid() -> Family:
    stripes, board = grid_image("vertical", 4, 4), grid_image("checkerboard", 4, 4)
    return Family("grid", (
        _pair("4x4 stripes vs checkerboard", stripes, board, "ab"),
        _pair("4x4 vertical vs horizontal stripes", stripes, grid_image("horizontal", 4, 4),
              "ab"),
        _pair("4x4 stripes vs checkerboard (1 round)", stripes, board, "ab", rounds=1)),
        Task("stripes-vs-checkerboard", 2, _stripes_or_checkerboard))


_BUILDERS = {"gin": _gin, "count": _count, "proportion": _proportion,
             "presence": _presence, "copies": _copies, "wl": _wl, "grid": _grid}

#: Names of the built-in families, in the order of the matrix rows.
FAMILY_NAMES = tuple(_BUILDERS)


def resolve_families(families: Optional[Sequence[Union[str, Family]]] = None,
                     where: str = "resolve_families") -> List[Family]:
    """Families from names (or :class:`Family` instances, kept as they are); ``None``
    means all of :data:`FAMILY_NAMES`. Unknown names list the choices.

    Example:
        >>> [f.name for f in resolve_families(["wl", "gin"])]
        ['wl', 'gin']
        >>> resolve_families(["wheel"])
        Traceback (most recent call last):
        ...
        graphpool.errors.GraphpoolError: resolve_families: invalid 'families': expected \
names from 'gin', 'count', 'proportion', 'presence', 'copies', 'wl', 'grid', got 'wheel'. \
Fix: pick from the listed names.
    """
    if families is None:
        families = FAMILY_NAMES
    resolved = []
    for family in families:
        if isinstance(family, Family):
            resolved.append(family)
        elif isinstance(family, str) and family in _BUILDERS:
            resolved.append(_BUILDERS[family]())
        else:
            choices = ", ".join(repr(n) for n in FAMILY_NAMES)
            raise GraphpoolError(where, "families", f"names from {choices}",
                                 repr(family), "pick from the listed names")
    return resolved
