r"""All graphs of a dataset in flat tensors, so that a minibatch is a few tensor gathers.

PyG's ``Batch.from_data_list`` builds a batch graph by graph in Python, which costs about
as much as a small GIN's training step. :class:`PackedGraphs` collates the dataset once;
a minibatch of graphs :math:`g_1, \dots, g_B` then takes their node rows and edge columns
and shifts each graph's node ids from its offset in the dataset to its offset in the batch:

.. math::
    e \mapsto e - \mathrm{ptr}^{\mathrm{data}}_{g} + \mathrm{ptr}^{\mathrm{batch}}_{g} .
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import Tensor

from ...errors import GraphpoolError, describe
from ...segments import Segments

__all__ = ["PackedGraphs", "GraphBatch"]


class GraphBatch(NamedTuple):
    """A minibatch: node features, edges, labels and the node grouping (a CSR
    :class:`~graphpool.Segments`, ready for any readout)."""

    x: Tensor
    edge_index: Tensor
    y: Tensor
    segments: Segments


def _concat_ranges(starts: Tensor, counts: Tensor) -> Tensor:
    """``cat([arange(s, s + c) for s, c in zip(starts, counts)])`` without a Python loop."""
    offsets = torch.cumsum(counts, 0) - counts
    total = int(counts.sum())
    return torch.repeat_interleave(starts - offsets, counts, output_size=total) + \
        torch.arange(total)


class PackedGraphs:
    r"""A graph-classification dataset packed into flat tensors (math in the module docs).

    Args:
        dataset: a sequence of PyG ``Data`` with ``x``, ``edge_index`` and a graph label ``y``
            (for example a :class:`~torch_geometric.datasets.TUDataset`).

    Example:
        >>> import torch
        >>> from torch_geometric.data import Data
        >>> graphs = [Data(x=torch.ones(2, 1), edge_index=torch.tensor([[0, 1], [1, 0]]),
        ...                y=torch.tensor([0])),
        ...           Data(x=torch.zeros(1, 1), edge_index=torch.zeros(2, 0, dtype=torch.long),
        ...                y=torch.tensor([1])),
        ...           Data(x=torch.full((3, 1), 2.), edge_index=torch.tensor([[0, 2], [2, 1]]),
        ...                y=torch.tensor([1]))]
        >>> packed = PackedGraphs(graphs)
        >>> len(packed), packed.labels.tolist()
        (3, [0, 1, 1])
        >>> batch = packed.batch(torch.tensor([2, 0]))
        >>> batch.edge_index.tolist(), batch.y.tolist(), batch.segments.ptr.tolist()
        ([[0, 2, 3, 4], [2, 1, 4, 3]], [1, 0], [0, 3, 5])
    """

    def __init__(self, dataset: Sequence) -> None:
        from torch_geometric.data import Batch

        whole = Batch.from_data_list(list(dataset))
        if whole.x is None or whole.y is None:
            raise GraphpoolError("PackedGraphs", "dataset", "graphs with node features x and a "
                                 "graph label y", f"x={describe(whole.x)}, y={describe(whole.y)}",
                                 "add node features, e.g. one-hot degrees with PyG's "
                                 "OneHotDegree transform")
        self.x = whole.x
        self.edge_index = whole.edge_index
        self.labels = whole.y.view(-1)
        self.node_ptr = whole.ptr
        edge_graph = whole.batch[whole.edge_index[0]]
        edge_counts = torch.bincount(edge_graph, minlength=whole.num_graphs)
        self.edge_ptr = torch.cat([edge_counts.new_zeros(1), torch.cumsum(edge_counts, 0)])

    def __len__(self) -> int:
        return self.labels.numel()

    def batch(self, graph_ids: Tensor) -> GraphBatch:
        """The graphs ``graph_ids`` (in that order) as one batch graph."""
        graph_ids = torch.as_tensor(graph_ids, dtype=torch.long)
        node_counts = self.node_ptr[graph_ids + 1] - self.node_ptr[graph_ids]
        edge_counts = self.edge_ptr[graph_ids + 1] - self.edge_ptr[graph_ids]
        nodes = _concat_ranges(self.node_ptr[graph_ids], node_counts)
        edges = _concat_ranges(self.edge_ptr[graph_ids], edge_counts)
        ptr = torch.cat([node_counts.new_zeros(1), torch.cumsum(node_counts, 0)])
        shift = torch.repeat_interleave(ptr[:-1] - self.node_ptr[graph_ids], edge_counts,
                                        output_size=edges.numel())
        segments = Segments.from_ptr(ptr, nodes.numel(), validate=False)
        return GraphBatch(self.x[nodes], self.edge_index[:, edges] + shift,
                          self.labels[graph_ids], segments)
