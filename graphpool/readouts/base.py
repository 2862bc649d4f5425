r"""The base class of every graphpool readout module."""
from __future__ import annotations

import math
from numbers import Number
from typing import Any, ClassVar, Optional, Tuple

import torch
from torch import Tensor
from torch_geometric.nn.aggr import Aggregation

from ..errors import GraphpoolError, describe
from ..kernels import segment_reduce
from ..segments import Kind, Segments
from ..resolve import _check_nodes, _pick_count, as_segments

__all__ = ["Readout", "check_parameters"]


class Readout(Aggregation):
    r"""Base class: a readout is a PyG :class:`~torch_geometric.nn.aggr.Aggregation`.

    It therefore works both as global pooling, ``readout(x, batch)``, and as the
    neighbourhood aggregation of a message-passing layer, ``GINConv(mlp, aggr=MaxReadout())``.
    ``__call__`` resolves the grouping once (index, ``ptr``, :class:`~graphpool.Segments`
    or a PyG ``Batch``) and calls :meth:`forward` with a :class:`~graphpool.Segments`;
    subclasses only implement :meth:`forward`. The basic readouts set :attr:`reduce`
    and share :func:`~graphpool.segment_reduce` with the functions.

    The call takes what PyG's aggregations take:

    * ``index`` and ``ptr`` together (message passing over an ``EdgeIndex`` sorted by
      destination passes both): the ptr is used; with ``validate`` the index is checked
      against it (one ``O(N)`` comparison) and a mismatch is an error.
    * ``dim``: the node axis. Dims before it are leading batch dims, dims after it are
      features (``GATConv`` aggregates ``[E, heads, C]`` on ``dim=0``); the output has the
      shape of ``x`` with the node axis resized to the number of sets. A 1-D ``x`` holds
      one value per node (as in PyG's ``global_*_pool``), with ``dim`` -2, -1 or 0.
    * ``dim_size`` (PyG's name) or ``num_graphs``: the number of sets. Without an index
      or ptr all rows form set 0 and the other sets are empty, as in PyG.

    Args:
        fill_value: value of empty sets.
        validate: check index values on every call (one host sync); pass ``False``
            in hot loops over trusted input.
    """

    reduce: ClassVar[Optional[str]] = None
    #: ``forward(x, segments, passes=...)`` takes a :class:`~graphpool.composite.Passes`
    #: to share reductions with other readouts of the same input.
    shares_passes: ClassVar[bool] = False
    #: usable by name in :func:`~graphpool.readout` (no weights that need training)
    functional: ClassVar[bool] = True
    #: ``forward(x, segments, trail=...)`` restores several trailing feature dims ``trail``
    #: itself (``x`` arrives as ``[*, N, prod(trail)]``), instead of :meth:`restore_features`
    #: on its result: a readout that combines results along the last feature axis.
    restores_features: ClassVar[bool] = False

    def __init__(self, *, fill_value: Number = 0.0, validate: bool = True) -> None:
        super().__init__()
        self.fill_value = fill_value
        self.validate = validate

    def __call__(self, x: Tensor, index: Any = None, ptr: Optional[Tensor] = None,
                 dim_size: Optional[int] = None, dim: int = -2,
                 max_num_elements: Optional[int] = None, *,
                 num_graphs: Optional[int] = None) -> Tensor:
        """Read out ``x``. ``index`` may be a batch vector, a Segments or a PyG Batch;
        ``dim_size`` (PyG's name) and ``num_graphs`` both give the number of sets;
        ``max_num_elements`` is accepted for PyG compatibility and unused."""
        where = type(self).__name__
        if not isinstance(x, Tensor):
            raise GraphpoolError(where, "x", "a torch.Tensor [*, N, F]", describe(x),
                                 "pass node features as a tensor")
        count_name, count = _pick_count(where, dim_size=dim_size, num_graphs=num_graphs)
        node_axis = _node_axis(where, x, dim)
        lead, trail = x.shape[:node_axis], x.shape[node_axis + 1:]
        flat = x if len(trail) == 1 else x.reshape(*lead, x.size(node_axis), math.prod(trail))
        seg = as_segments(flat, index, ptr=ptr, num_segments=count, validate=self.validate,
                          where=where, _batch="index", _count=count_name or "dim_size")
        if seg.kind == Kind.MASK and node_axis != x.dim() - 2:
            raise GraphpoolError(where, "dim", "-2 for a mask grouping (x is [*, B, Nmax, F])",
                                 dim, "leave dim at its default for padded batches")
        _check_nodes(where, x, node_axis, seg, None if dim in (-2, x.dim() - 2) else dim,
                     "index")
        if len(trail) > 1 and self.restores_features:
            return torch.nn.Module.__call__(self, flat, seg, trail=tuple(trail))
        out = torch.nn.Module.__call__(self, flat, seg)
        if len(trail) != 1 and isinstance(out, Tensor):
            out = self.restore_features(out, tuple(trail))
        return out

    def restore_features(self, out: Tensor, trail: Tuple[int, ...]) -> Tensor:
        """``out`` (``[*, B, W]``, read out over ``x``'s trailing dims ``trail`` flattened)
        with ``trail`` restored: the width kept gives ``[*, B, *trail]``; ``k`` results per
        set (``W = k * prod(trail)``, concatenated) sit side by side on the last axis,
        ``[*, B, *trail[:-1], k * trail[-1]]``, as PyG's ``MultiAggregation`` concatenates
        them. Any other width is left as it is."""
        size = math.prod(trail)
        try:  # (a zero-width feature dim: the width the readout gives one feature)
            k = out.size(-1) // size if size else self.out_features(1)
        except GraphpoolError:  # a width it cannot tell without its layers' sizes
            return out
        if out.size(-1) != k * size or not trail:
            return out.reshape(*out.shape[:-1], *trail) if out.size(-1) == 1 == k else out
        lead = out.shape[:-1]
        if k == 1:
            return out.reshape(*lead, *trail)
        blocks = out.reshape(*lead, k, *trail).movedim(len(lead), -2)
        return blocks.reshape(*lead, *trail[:-1], k * trail[-1])

    def forward(self, x: Tensor, segments: Segments) -> Tensor:
        return segment_reduce(x, segments, self.reduce, fill_value=self.fill_value,
                              _where=type(self).__name__)

    def out_features(self, in_features: int) -> int:
        """The output width for ``in_features`` input features (so the next layer can size
        itself): ``in_features`` for readouts that keep the width."""
        return in_features

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def check_parameters(module: torch.nn.Module, x: Tensor) -> None:
    """``x`` of the dtype and device of ``module``'s parameters (if it has any; under
    ``torch.autocast`` also float32 and autocast's type, which it casts for the layers),
    else a GraphpoolError naming ``x``, instead of torch's error from inside a layer."""
    weight = next(module.parameters(), None)
    if weight is None:
        return
    kind = x.device.type
    cast = torch.is_autocast_enabled(kind) and {x.dtype, weight.dtype} <= {
        torch.float32, torch.get_autocast_dtype(kind)}
    if x.device != weight.device or x.dtype != weight.dtype and not cast:
        where = type(module).__name__
        raise GraphpoolError(where, "x", f"a {weight.dtype} tensor on {weight.device} (the "
                             f"parameters' dtype and device)", describe(x),
                             "move the module with module.to(x.dtype) / module.to(x.device)"
                             ", or convert x")


def _node_axis(where: str, x: Tensor, dim: Any) -> int:
    """The node axis of ``x`` (non-negative) for PyG's ``dim``; a 1-D ``x`` has its nodes
    on its only axis whatever the default ``dim=-2`` says (like PyG's global pools)."""
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise GraphpoolError(where, "dim", "an int (the node axis of x)", describe(dim),
                             "pass dim=-2 for [*, N, F] or the index of the node axis")
    if x.dim() == 0:
        raise GraphpoolError(where, "x", "at least 1 dim (nodes, then features)", describe(x),
                             "pass one row per node, e.g. x.view(1, -1)")
    if x.dim() == 1 and dim in (-2, -1, 0):
        return 0
    if not -x.dim() <= dim < x.dim():
        raise GraphpoolError(where, "dim", f"an axis of x in [{-x.dim()}, {x.dim() - 1}] "
                             f"(the node axis; default -2)", f"{dim} for {describe(x)}",
                             "pass the axis of x that holds the nodes, e.g. dim=-2 for "
                             "[*, N, F]")
    return dim % x.dim()
