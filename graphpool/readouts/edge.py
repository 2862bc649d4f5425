r"""A structure-aware readout: the energy of node features across the edges of each graph.

Node readouts (sum, mean, max, min, any moment) see the *multiset* of node features and
nothing else: a stripe image and a checkerboard with the same colour histogram read out
the same. Reading out over *edges* sees how features change between neighbours. Here a
readout over edges is the node readout's kernel with edges as rows: each edge becomes
the row :math:`(x_u - x_v)^{\odot 2}` and :func:`~graphpool.segment_reduce` reduces the
rows of every (graph, edge type) set.

This is not a :class:`~graphpool.Readout` (a PyG ``Aggregation``): an aggregation sees
rows and their grouping, while this readout also needs ``edge_index``. Its signature is
``(x, edge_index, batch, edge_type=...)``.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor, nn

from ..errors import GraphpoolError, describe
from ..kernels import resolve_reduction, segment_reduce
from ..segments import Kind, Segments
from ..resolve import as_segments

__all__ = ["edge_energy_readout", "EdgeEnergyReadout"]


def _is_integer(t: Tensor) -> bool:
    """An integer (not bool, float or complex) tensor: ids must be counted, not tested."""
    return not (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool)


def _is_proxy(value: object) -> bool:
    return isinstance(value, torch.fx.Proxy)


def _check_edges(where: str, x: Tensor, edge_index: Any, edge_type: Any,
                 num_edge_types: Optional[int], validate: bool) -> int:
    if _is_proxy(x) or _is_proxy(edge_index):
        raise GraphpoolError(where, "x", "a tensor", describe(x), "torch.fx.symbolic_trace "
                             "cannot look inside the index checks: use torch.export.export "
                             "or torch.compile, or a Tracer that treats EdgeEnergyReadout as "
                             "a leaf module")
    if not isinstance(x, Tensor) or x.dim() < 2:
        raise GraphpoolError(where, "x", "a tensor [*, N, F] (nodes on dim -2, features last)",
                             describe(x), "add a feature axis with x.unsqueeze(-1)")
    if x.dtype == torch.bool or x.is_complex():
        # bool has no subtraction; for complex, (x_u - x_v)**2 is not an energy |x_u - x_v|**2
        raise GraphpoolError(where, "x", "a real (floating point or integer) tensor",
                             describe(x), "convert it, e.g. x.float(); for complex features "
                             "pass torch.view_as_real(x).flatten(-2)")
    if (not isinstance(edge_index, Tensor) or edge_index.dim() != 2
            or edge_index.size(0) != 2 or not _is_integer(edge_index)):
        raise GraphpoolError(where, "edge_index", "an integer tensor of shape [2, E]",
                             describe(edge_index), "pass PyG's data.edge_index (a torch.long "
                             "tensor of node ids; a bool mask is not a list of ids)")
    if edge_index.device != x.device:
        raise GraphpoolError(where, "edge_index", f"a tensor on {x.device} (the device of x)",
                             describe(edge_index), f"move it with edge_index.to('{x.device}')")
    num_nodes = x.size(-2)
    if validate and edge_index.numel() and (int(edge_index.min()) < 0
                                            or int(edge_index.max()) >= num_nodes):
        raise GraphpoolError(where, "edge_index", f"node ids in [0, {num_nodes})",
                             f"ids in [{int(edge_index.min())}, {int(edge_index.max())}]",
                             "edge_index must refer to rows of x")
    if edge_type is None:
        if num_edge_types not in (None, 1):
            raise GraphpoolError(where, "edge_type", f"a [E] tensor with {num_edge_types} "
                                 "types", "None", "pass edge_type or leave num_edge_types out")
        return 1
    if num_edge_types is None or isinstance(num_edge_types, bool) or not isinstance(
            num_edge_types, int) or num_edge_types < 1:
        raise GraphpoolError(where, "num_edge_types", "an int >= 1 when edge_type is given",
                             repr(num_edge_types),
                             "pass the number of edge types; it fixes the output width")
    if (not isinstance(edge_type, Tensor) or not _is_integer(edge_type)
            or tuple(edge_type.shape) != (edge_index.size(1),)):
        raise GraphpoolError(where, "edge_type", f"an integer tensor of shape "
                             f"[{edge_index.size(1)}] (one type per edge)", describe(edge_type),
                             "pass one type id per column of edge_index")
    if edge_type.device != x.device:
        raise GraphpoolError(where, "edge_type", f"a tensor on {x.device} (the device of x)",
                             describe(edge_type), f"move it with edge_type.to('{x.device}')")
    if validate and edge_type.numel() and (int(edge_type.min()) < 0
                                           or int(edge_type.max()) >= num_edge_types):
        raise GraphpoolError(where, "edge_type", f"type ids in [0, {num_edge_types})",
                             f"ids in [{int(edge_type.min())}, {int(edge_type.max())}]",
                             "raise num_edge_types or remap the type ids")
    return num_edge_types


def edge_energy_readout(x: Tensor, edge_index: Tensor, batch: Any = None, *,
                        edge_type: Optional[Tensor] = None,
                        num_edge_types: Optional[int] = None, reduce: str = "sum",
                        num_graphs: Optional[int] = None, validate: bool = True,
                        _where: str = "edge_energy_readout") -> Tensor:
    r"""Reduce the squared feature differences across the edges of each graph.

    For graph :math:`b` with edges :math:`\mathcal{E}_b` and edge types
    :math:`\tau(u, v) \in \{0, \dots, T-1\}`:

    .. math::
        y_{b,t} = \bigoplus_{(u, v) \in \mathcal{E}_b,\ \tau(u, v) = t} (x_u - x_v)^{\odot 2},
        \qquad y_b = [\,y_{b,0} \,\|\, y_{b,1} \,\|\, \cdots \,\|\, y_{b,T-1}\,]

    feature by feature, where :math:`\bigoplus` is ``reduce``. With ``reduce="sum"``
    this is the graph's Dirichlet energy, per feature and per edge type (e.g. the
    horizontal and vertical gradient energy of an image grid). An undirected edge that
    PyG stores in both directions counts twice. Graphs (or types) without edges read 0.

    Args:
        x: ``[*, N, F]`` node features.
        edge_index: ``[2, E]`` source and target rows of ``x``; both ends of an edge
            must lie in the same graph.
        batch: grouping of the nodes into graphs: ``None`` (one graph), a ``[N]``
            batch vector, a :class:`~graphpool.Segments` or a PyG ``Batch``.
        edge_type: optional ``[E]`` type of every edge, in ``[0, num_edge_types)``.
        num_edge_types: ``T``, required with ``edge_type``; the output has ``T * F``
            features.
        reduce: ``"sum"``, ``"mean"``, ``"max"`` or ``"min"`` over each graph's edges.
        num_graphs: number of graphs ``B`` (trailing graphs may be empty).
        validate: check index values (one host sync).

    Floating point features keep their dtype; integer features are reduced in
    ``torch.long`` (narrower integers would wrap around). Bool and complex features are
    refused.

    Returns:
        ``[*, B, T * F]``, type-major: features ``t*F : (t+1)*F`` are type ``t``.

    Example:
        >>> import torch
        >>> x = torch.tensor([[0.], [1.], [1.]])          # a path 0 - 1 - 2
        >>> edge_index = torch.tensor([[0, 1], [1, 2]])   # one direction per edge
        >>> edge_energy_readout(x, edge_index).tolist()
        [[1.0]]
        >>> edge_energy_readout(x, edge_index, edge_type=torch.tensor([0, 1]),
        ...                     num_edge_types=2).tolist()
        [[1.0, 0.0]]
    """
    types = _check_edges(_where, x, edge_index, edge_type, num_edge_types, validate)
    resolve_reduction(reduce, _where)
    seg = as_segments(x, batch, num_segments=num_graphs, validate=validate, where=_where)
    if seg.kind == Kind.MASK:
        raise GraphpoolError(_where, "batch", "a grouping of the rows of x (index, ptr or "
                             "PyG Batch)", "a padded mask grouping",
                             "pass the PyG batch vector; edge_index refers to unpadded rows")
    if x.size(-2) != seg.num_nodes:
        raise GraphpoolError(_where, "x", f"{seg.num_nodes} rows on dim -2, one per entry of "
                             "the grouping", describe(x), "pass the batch vector of x")
    src, dst = edge_index.long()
    graph = seg.index.index_select(0, src)
    if validate and src.numel() and not bool((graph == seg.index.index_select(0, dst)).all()):
        raise GraphpoolError(_where, "edge_index", "edges inside one graph",
                             "an edge between two graphs",
                             "build edge_index and batch from the same PyG Batch")
    group = graph if edge_type is None else graph * types + edge_type.long()
    edge_sets = Segments.from_index(group, seg.num_segments * types, validate=validate)
    if not x.is_floating_point() and x.dtype != torch.long:
        x = x.long()  # int8/uint8/int32 differences and squares would wrap around
    energy = (x.index_select(-2, src) - x.index_select(-2, dst)).square()
    out = segment_reduce(energy, edge_sets, reduce, _where=_where)
    return out.unflatten(-2, (seg.num_segments, types)).flatten(-2)


class EdgeEnergyReadout(nn.Module):
    r"""Module form of :func:`edge_energy_readout`:

    .. math::
        y_{b,t} = \bigoplus_{(u, v) \in \mathcal{E}_b,\ \tau(u, v) = t} (x_u - x_v)^{\odot 2}

    Args:
        reduce: ``"sum"`` (Dirichlet energy), ``"mean"``, ``"max"`` or ``"min"``.
        num_edge_types: ``T`` when the forward call passes ``edge_type``; ``None`` for
            untyped edges. The output has ``T * F`` features.
        validate: check index values on every call (one host sync).

    Example:
        >>> import torch
        >>> from torch_geometric.data import Batch, Data
        >>> path = Data(x=torch.tensor([[0.], [2.]]), edge_index=torch.tensor([[0], [1]]))
        >>> batch = Batch.from_data_list([path, path])
        >>> EdgeEnergyReadout()(batch.x, batch.edge_index, batch).tolist()
        [[4.0], [4.0]]
        >>> EdgeEnergyReadout("mean", num_edge_types=2)
        EdgeEnergyReadout(reduce='mean', num_edge_types=2)
    """

    def __init__(self, reduce: str = "sum", num_edge_types: Optional[int] = None, *,
                 validate: bool = True) -> None:
        super().__init__()
        self.reduce = resolve_reduction(reduce, type(self).__name__).name
        if num_edge_types is not None and (isinstance(num_edge_types, bool) or not isinstance(
                num_edge_types, int) or num_edge_types < 1):
            raise GraphpoolError(type(self).__name__, "num_edge_types", "None or an int >= 1",
                                 repr(num_edge_types), "pass the number of edge types")
        self.num_edge_types = num_edge_types
        self.validate = validate

    def forward(self, x: Tensor, edge_index: Tensor, batch: Any = None,
                edge_type: Optional[Tensor] = None,
                num_graphs: Optional[int] = None) -> Tensor:
        """Read out ``x`` over ``edge_index``; see :func:`edge_energy_readout`."""
        return edge_energy_readout(x, edge_index, batch, edge_type=edge_type,
                                   num_edge_types=self.num_edge_types, reduce=self.reduce,
                                   num_graphs=num_graphs, validate=self.validate,
                                   _where=type(self).__name__)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(reduce={self.reduce!r}, "
                f"num_edge_types={self.num_edge_types})")
