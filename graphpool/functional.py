r"""Readouts as functions: ``readout(x, batch, reduce)`` and one function per op.

``batch`` may be ``None`` (all rows are one set), a PyG batch vector, a
:class:`~graphpool.Segments` or a PyG ``Batch``/``Data``; ``ptr`` may replace
``batch``. ``num_graphs`` fixes the number of sets (trailing empty sets allowed,
no host sync). Nodes are on dim ``-2`` and features last.
"""
from __future__ import annotations

from numbers import Number
from typing import Any, Optional

from torch import Tensor

from .kernels import segment_reduce
from .resolve import as_segments

__all__ = ["readout", "sum_readout", "mean_readout", "max_readout", "min_readout"]


def readout(x: Tensor, batch: Any = None, reduce: str = "sum", *,
            num_graphs: Optional[int] = None, ptr: Optional[Tensor] = None,
            fill_value: Number = 0.0, validate: bool = True) -> Tensor:
    r"""Read out every set of rows of ``x`` with ``reduce`` (``sum``/``add``, ``mean``,
    ``max``, ``min``); see :func:`~graphpool.segment_reduce` for the math.

    Args:
        x: ``[*, N, F]`` node features.
        batch: grouping of the rows (see module docs); ``None`` means one set.
        reduce: name of the reduction.
        num_graphs: number of sets ``B``; inferred from ``batch`` when omitted.
        ptr: CSR pointer, instead of ``batch``.
        fill_value: value of empty sets.
        validate: check index values (one host sync); see :class:`~graphpool.Segments`.

    Returns:
        ``[*, B, F]``.

    Example:
        >>> import torch
        >>> from graphpool import readout
        >>> x = torch.tensor([[1., 10.], [3., 30.], [5., 50.]])
        >>> readout(x, torch.tensor([0, 0, 1]), "mean")
        tensor([[ 2., 20.],
                [ 5., 50.]])
        >>> readout(x, ptr=torch.tensor([0, 1, 3]), reduce="max")
        tensor([[ 1., 10.],
                [ 5., 50.]])
    """
    seg = as_segments(x, batch, ptr=ptr, num_segments=num_graphs, validate=validate,
                      where="readout")
    return segment_reduce(x, seg, reduce, fill_value=fill_value, _where="readout")


def sum_readout(x: Tensor, batch: Any = None, *, num_graphs: Optional[int] = None,
                ptr: Optional[Tensor] = None, fill_value: Number = 0.0,
                validate: bool = True) -> Tensor:
    r""":math:`\sum_{v \in \mathcal{V}_b} x_v` for every set :math:`b` (PyG's ``global_add_pool``).

    Example:
        >>> import torch
        >>> sum_readout(torch.ones(3, 2), torch.tensor([0, 1, 1])).tolist()
        [[1.0, 1.0], [2.0, 2.0]]
    """
    return readout(x, batch, "sum", num_graphs=num_graphs, ptr=ptr, fill_value=fill_value,
                   validate=validate)


def mean_readout(x: Tensor, batch: Any = None, *, num_graphs: Optional[int] = None,
                 ptr: Optional[Tensor] = None, fill_value: Number = 0.0,
                 validate: bool = True) -> Tensor:
    r""":math:`\frac{1}{|\mathcal{V}_b|}\sum_{v \in \mathcal{V}_b} x_v` (``global_mean_pool``).

    Example:
        >>> import torch
        >>> mean_readout(torch.tensor([[1.], [2.], [6.]]), torch.tensor([0, 1, 1])).tolist()
        [[1.0], [4.0]]
    """
    return readout(x, batch, "mean", num_graphs=num_graphs, ptr=ptr, fill_value=fill_value,
                   validate=validate)


def max_readout(x: Tensor, batch: Any = None, *, num_graphs: Optional[int] = None,
                ptr: Optional[Tensor] = None, fill_value: Number = 0.0,
                validate: bool = True) -> Tensor:
    r""":math:`\max_{v \in \mathcal{V}_b} x_v` per feature (``global_max_pool``); ties share
    the gradient evenly.

    Example:
        >>> import torch
        >>> max_readout(torch.tensor([[1.], [2.], [6.]]), torch.tensor([0, 1, 1])).tolist()
        [[1.0], [6.0]]
    """
    return readout(x, batch, "max", num_graphs=num_graphs, ptr=ptr, fill_value=fill_value,
                   validate=validate)


def min_readout(x: Tensor, batch: Any = None, *, num_graphs: Optional[int] = None,
                ptr: Optional[Tensor] = None, fill_value: Number = 0.0,
                validate: bool = True) -> Tensor:
    r""":math:`\min_{v \in \mathcal{V}_b} x_v` per feature; ties share the gradient evenly.

    Example:
        >>> import torch
        >>> min_readout(torch.tensor([[1.], [2.], [6.]]), torch.tensor([0, 1, 1])).tolist()
        [[1.0], [2.0]]
    """
    return readout(x, batch, "min", num_graphs=num_graphs, ptr=ptr, fill_value=fill_value,
                   validate=validate)
