r"""Readouts as functions: ``readout(x, batch, reduce)`` and one function per op.

``batch`` may be ``None`` (all rows are one set), a PyG batch vector, a
:class:`~graphpool.Segments` or a PyG ``Batch``/``Data``; ``ptr`` may replace
``batch`` (or come with it: then both must describe the same grouping).
``num_graphs`` (alias ``size``, PyG's name) fixes the number of sets (trailing empty
sets allowed, no host sync). Nodes are on dim ``-2`` and features last; a 1-D ``x``
holds one value per node.

The per-op functions are drop-in replacements of PyG's ``global_add_pool``,
``global_mean_pool`` and ``global_max_pool``: ``sum_readout(x, batch, size)``. As there,
``x`` of 3 or more dims without any grouping (``batch``, ``ptr`` and the number of sets
all left out) returns ``[*, F]``, without the set axis.
"""
from __future__ import annotations

import functools
import struct
from numbers import Number
from typing import Any, Optional

from torch import Tensor

import torch

from .errors import GraphpoolError, describe
from .kernels import segment_reduce
from .kernels.reductions import REDUCTIONS
from .readouts import (DEFAULT_FILL_VALUE, MultiReadout, Readout, readout_key,
                       resolve_readout)
from .resolve import _check_nodes, _pick_count, _renamed, as_segments

__all__ = ["readout", "sum_readout", "mean_readout", "max_readout", "min_readout"]


def readout(x: Tensor, batch: Any = None, reduce: Any = "sum", *,
            num_graphs: Optional[int] = None, size: Optional[int] = None,
            ptr: Optional[Tensor] = None, fill_value: Number = DEFAULT_FILL_VALUE,
            validate: bool = True, **options: Any) -> Tensor:
    r"""Read out every set of rows of ``x`` with ``reduce``: a reduction of the table
    (``sum``/``add``, ``mean``, ``max``, ``min``, ``prod``, ``vpa``; see
    :func:`~graphpool.segment_reduce` for the math), a statistic readout (``var``, ``std``,
    ``logsumexp``, ``softmax``, ``powermean``, ``gem``, ``median``, ``quantile``,
    ``count``), timm's ``avgmax``/``catavgmax``, a list of them (concatenated), or a
    :class:`~graphpool.Readout` instance. Readouts with weights to learn (attention,
    Set2Set, ``learn=True``, ...) need their module, kept in the model; by name, ``gem``
    keeps its ``p`` fixed (``p=3`` unless given). A name with constant options builds its
    module once and reuses it. A Readout instance keeps its own arguments: an option or
    an explicit ``fill_value`` given with it must be what it holds (an error otherwise,
    never ignored).

    Args:
        x: ``[*, N, F]`` node features, or ``[N]`` (one value per node).
        batch: grouping of the rows (see module docs); ``None`` means one set.
        reduce: a readout name, a list of them, or a Readout.
        num_graphs: number of sets ``B``; inferred from ``batch`` when omitted.
        size: PyG's name for ``num_graphs`` (give one, or both equal).
        ptr: CSR pointer, instead of ``batch`` or describing the same grouping.
        fill_value: value of empty sets.
        validate: check index values (one host sync); see :class:`~graphpool.Segments`.
        options: arguments of the named readout, e.g. ``q=0.9`` for ``"quantile"``,
            ``t=0.1`` for ``"softmax"``, ``p=2`` for ``"powermean"``; one the readout does
            not take is an error that lists those it does.

    Returns:
        ``[*, B, F]`` (``[B]`` for a 1-D ``x``; ``[*, F]`` for ``x`` of 3+ dims
        without any grouping, as PyG's global pools return).

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
        >>> readout(torch.tensor([1., 2., 4.]), torch.tensor([0, 1, 1]), size=3).tolist()
        [1.0, 6.0, 0.0]
        >>> readout(x, torch.tensor([0, 0, 1]), ["mean", "std"]).tolist()
        [[2.0, 20.0, 1.0, 10.0], [5.0, 50.0, 0.0, 0.0]]
        >>> readout(x, None, "quantile", q=0.5).tolist()
        [[3.0, 30.0]]
    """
    module = None
    if not (readout_key(reduce) in REDUCTIONS and not options):
        if isinstance(reduce, Readout):  # built: what is passed along must be what it holds
            module = resolve_readout(reduce, where="readout", argument="reduce",
                                     fill_value=fill_value, **options)
        else:
            module = _named(reduce, fill_value, options)
        if not module.functional:
            raise GraphpoolError("readout", "reduce", "a readout without weights to learn "
                                 "(a learnable one needs its module)", repr(module),
                                 f"build the module once and call it: "
                                 f"{type(module).__name__}(...)(x, batch)")
    return _readout(x, batch, reduce, num_graphs, size, ptr, fill_value, validate, "readout",
                    module)


def _named(reduce: Any, fill_value: Any, options: dict) -> Readout:
    """The readout module that ``readout(x, batch, reduce, **options)`` calls: built once
    per name and constant arguments and then reused (building one costs more than a small
    readout); built afresh for other arguments (a tensor could change in place after the
    module copied it). ``torch.compile`` looks the module up outside its trace (one graph
    break; a module built in a trace breaks it more often): a compiled model calls the
    module, which compiles whole. A module with parameters is refused: its weights could
    never be trained from here."""
    key = _constant((fill_value, tuple(sorted(options.items()))))
    if isinstance(reduce, str) and key is not None:
        return _untraced(reduce, key) if torch.compiler.is_compiling() else _cached(reduce, key)
    return _build(reduce, fill_value, options)


def _build(reduce: Any, fill_value: Any, options: dict) -> Readout:
    module = resolve_readout(reduce, where="readout", argument="reduce",
                             fill_value=fill_value, **options)
    if _learned(module) and hasattr(module, "learn") and "learn" not in options:
        # learnable by default (gem): by name its value stays fixed, as timm's function's
        module = resolve_readout(reduce, where="readout", argument="reduce",
                                 fill_value=fill_value, learn=False, **options)
    learned = _learned(module)
    if learned:
        raise GraphpoolError("readout", "reduce", "a readout without weights to learn",
                             f"{module!r}, which learns {', '.join(learned)}",
                             ("pass learn=False for fixed values, or " if hasattr(module, "learn")
                              else "") + f"build the module once, keep it in your model and "
                             f"call it: {type(module).__name__}(...)(x, batch)"
                             + ("; fixed values in a list: MultiReadout([...], readouts_kwargs="
                                "[{}, {'learn': False}])" if isinstance(module, MultiReadout)
                                else ""))
    return module


def _learned(module: Readout) -> list:
    return [name for name, p in module.named_parameters() if p.requires_grad]


@functools.lru_cache(maxsize=64)
def _cached(reduce: str, key: tuple) -> Readout:
    fill_value, options = _value(key)
    return _build(reduce, fill_value, dict(options))


_untraced = torch.compiler.disable(_cached)


def _constant(value: Any) -> Optional[tuple]:
    """``value`` (numbers, strings, None and tuples or lists of them, e.g. quantiles) as a
    cache key that equals another only for the same types and bits: 1, 1.0 and True
    differ, so do 0.0 and -0.0, and a nan finds itself. ``None`` for anything else. A
    list's key holds its values, so the module is built from a copy the caller cannot
    change."""
    if type(value) is float:
        return (float, struct.pack("<d", value))
    if type(value) in (tuple, list):
        parts = tuple(map(_constant, value))
        return None if None in parts else (type(value), parts)
    if type(value) in (int, str, bool, type(None)):
        return (type(value), value)
    return None


def _value(key: tuple) -> Any:
    """The value that :func:`_constant` made ``key`` from."""
    kind, data = key
    if kind is float:
        return struct.unpack("<d", data)[0]
    if kind in (tuple, list):
        return kind(map(_value, data))
    return data


def _readout(x: Any, batch: Any, reduce: str, num_graphs: Any, size: Any,
             ptr: Optional[Tensor], fill_value: Number, validate: bool, where: str,
             module: Optional[Readout] = None) -> Tensor:
    if not isinstance(x, Tensor):
        raise GraphpoolError(where, "x", "a torch.Tensor [*, N, F]", describe(x),
                             "pass node features as a tensor")
    if x.dim() == 0:
        raise GraphpoolError(where, "x", "at least 1 dim: [N] or [*, N, F]", describe(x),
                             "pass one value or row per node")
    count_name, count = _pick_count(where, num_graphs=num_graphs, size=size)
    flat = x.unsqueeze(-1) if x.dim() == 1 else x  # [N]: nodes on dim -1, as in PyG
    seg = as_segments(flat, batch, ptr=ptr, num_segments=count, validate=validate,
                      where=where, _batch="batch", _count=count_name or "num_graphs")
    _check_nodes(where, x, -1 if x.dim() == 1 else -2, seg, None, "batch")
    if module is None:
        out = segment_reduce(flat, seg, reduce, fill_value=fill_value, _where=where)
    else:
        try:
            out = torch.nn.Module.__call__(module, flat, seg)
        except GraphpoolError as err:  # reported as the call the user made
            if err.where != type(module).__name__:
                raise
            raise _renamed(err, where, {"segments": "batch"}) from None
    if x.dim() == 1:
        return out.squeeze(-1)
    if x.dim() >= 3 and batch is None and ptr is None and count is None:
        return out.squeeze(-2)  # PyG's global pools: [*, N, F] without a batch -> [*, F]
    return out


def sum_readout(x: Tensor, batch: Any = None, size: Optional[int] = None, *,
                num_graphs: Optional[int] = None, ptr: Optional[Tensor] = None,
                fill_value: Number = 0.0, validate: bool = True) -> Tensor:
    r""":math:`\sum_{v \in \mathcal{V}_b} x_v` for every set :math:`b`; a drop-in
    ``global_add_pool(x, batch, size)``. Arguments as in :func:`readout`.

    Example:
        >>> import torch
        >>> sum_readout(torch.ones(3, 2), torch.tensor([0, 1, 1])).tolist()
        [[1.0, 1.0], [2.0, 2.0]]
    """
    return _readout(x, batch, "sum", num_graphs, size, ptr, fill_value, validate,
                    "sum_readout")


def mean_readout(x: Tensor, batch: Any = None, size: Optional[int] = None, *,
                 num_graphs: Optional[int] = None, ptr: Optional[Tensor] = None,
                 fill_value: Number = 0.0, validate: bool = True) -> Tensor:
    r""":math:`\frac{1}{|\mathcal{V}_b|}\sum_{v \in \mathcal{V}_b} x_v`; a drop-in
    ``global_mean_pool(x, batch, size)``. Arguments as in :func:`readout`.

    Example:
        >>> import torch
        >>> mean_readout(torch.tensor([[1.], [2.], [6.]]), torch.tensor([0, 1, 1])).tolist()
        [[1.0], [4.0]]
    """
    return _readout(x, batch, "mean", num_graphs, size, ptr, fill_value, validate,
                    "mean_readout")


def max_readout(x: Tensor, batch: Any = None, size: Optional[int] = None, *,
                num_graphs: Optional[int] = None, ptr: Optional[Tensor] = None,
                fill_value: Number = 0.0, validate: bool = True) -> Tensor:
    r""":math:`\max_{v \in \mathcal{V}_b} x_v` per feature; a drop-in
    ``global_max_pool(x, batch, size)``. Ties share the gradient evenly. Arguments as in
    :func:`readout`.

    Example:
        >>> import torch
        >>> max_readout(torch.tensor([[1.], [2.], [6.]]), torch.tensor([0, 1, 1])).tolist()
        [[1.0], [6.0]]
    """
    return _readout(x, batch, "max", num_graphs, size, ptr, fill_value, validate,
                    "max_readout")


def min_readout(x: Tensor, batch: Any = None, size: Optional[int] = None, *,
                num_graphs: Optional[int] = None, ptr: Optional[Tensor] = None,
                fill_value: Number = 0.0, validate: bool = True) -> Tensor:
    r""":math:`\min_{v \in \mathcal{V}_b} x_v` per feature; ties share the gradient
    evenly. Arguments as in :func:`readout`.

    Example:
        >>> import torch
        >>> min_readout(torch.tensor([[1.], [2.], [6.]]), torch.tensor([0, 1, 1])).tolist()
        [[1.0], [2.0]]
    """
    return _readout(x, batch, "min", num_graphs, size, ptr, fill_value, validate,
                    "min_readout")
