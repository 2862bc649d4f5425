r"""The base class of every graphpool readout module."""
from __future__ import annotations

from numbers import Number
from typing import Any, ClassVar, Optional

import torch
from torch import Tensor
from torch_geometric.nn.aggr import Aggregation

from ..errors import GraphpoolError
from ..kernels import segment_reduce
from ..segments import Segments
from ..resolve import as_segments

__all__ = ["Readout"]


class Readout(Aggregation):
    r"""Base class: a readout is a PyG :class:`~torch_geometric.nn.aggr.Aggregation`.

    It therefore works both as global pooling, ``readout(x, batch)``, and as the
    neighbourhood aggregation of a message-passing layer, ``GINConv(mlp, aggr=MaxReadout())``.
    ``__call__`` resolves the grouping once (index, ``ptr``, :class:`~graphpool.Segments`
    or a PyG ``Batch``) and calls :meth:`forward` with a :class:`~graphpool.Segments`;
    subclasses only implement :meth:`forward`. The basic readouts set :attr:`reduce`
    and share :func:`~graphpool.segment_reduce` with the functions.

    Args:
        fill_value: value of empty sets.
        validate: check index values on every call (one host sync); pass ``False``
            in hot loops over trusted input.
    """

    reduce: ClassVar[Optional[str]] = None

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
        if isinstance(x, Tensor) and dim not in (-2, x.dim() - 2):
            raise GraphpoolError(where, "dim", "-2 (nodes on dim -2, features last)", dim,
                                 "move the node axis to dim -2, e.g. x.movedim(dim, -2)")
        if dim_size is not None and num_graphs is not None and dim_size != num_graphs:
            raise GraphpoolError(where, "num_graphs", f"the same as dim_size={dim_size}",
                                 num_graphs, "pass only one of them")
        seg = as_segments(x, index, ptr=ptr, num_segments=num_graphs if dim_size is None
                          else dim_size, validate=self.validate, where=where)
        return torch.nn.Module.__call__(self, x, seg)

    def forward(self, x: Tensor, segments: Segments) -> Tensor:
        return segment_reduce(x, segments, self.reduce, fill_value=self.fill_value,
                              _where=type(self).__name__)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
