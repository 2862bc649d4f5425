r"""Turn the user's grouping arguments (index, ptr, Segments, PyG Batch) into one
:class:`~graphpool.Segments`; a ``batch`` or ``ptr`` tensor goes through the cache
(:mod:`graphpool.segments_cache`).

This is the public boundary of the readouts: an error raised below it (by
``Segments.from_index`` about ``num_segments``, say) is raised again here naming the
function or class the user called and the argument the user passed (``num_graphs``,
``dim_size``, ``size``, ``batch``, ``index``, ``ptr``).
"""
from __future__ import annotations

import re
from typing import Any, Dict, Optional, Tuple

import torch
from torch import Tensor

from .errors import GraphpoolError, describe, refuse_fx
from .segments import (UNPROBED_SETS, Kind, Segments, _is_pyg_data, check_count,
                       check_nodes_tensor, probe_output)
from .segments_cache import CACHE

__all__ = ["as_segments"]


def _plain(t: Any) -> Any:
    """A tensor subclass as the plain tensor holding its values. PyG's ``Index`` and
    ``EdgeIndex`` (what message passing over an ``EdgeIndex`` hands an aggregation) wrap
    their data: their own ``data_ptr()`` is 0, so kernels must get ``as_tensor()``."""
    if type(t) is Tensor or not isinstance(t, Tensor):
        return t
    as_tensor = getattr(t, "as_tensor", None)
    if callable(as_tensor):
        plain = as_tensor()
        if type(plain) is Tensor:
            return plain
    return t


def _renamed(err: GraphpoolError, where: str, names: Dict[str, str]) -> GraphpoolError:
    """``err`` as the public call ``where`` reports it: lower-layer argument names
    (``num_segments``, ``index``) become the names the user passed, in the argument field
    and in the text (``num_segments >= 2`` -> ``num_graphs >= 2``, ``index.long()`` ->
    ``batch.long()``)."""
    def text(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        for low, high in names.items():
            if low == high:
                continue
            pattern = rf"\b{low}\b(?=\.)" if low in ("index", "ptr") else rf"\b{low}\b"
            value = re.sub(pattern, high, value)
        return value
    return GraphpoolError(where, names.get(err.argument, err.argument), text(err.expected),
                          text(err.got), text(err.fix))


def _pick_count(where: str, **given: Any) -> Tuple[Optional[str], Any]:
    """The one number of sets among aliases (``num_graphs=``/``size=``/``dim_size=``):
    ``(name the user used, value)``; two different values are an error."""
    named = [(name, value) for name, value in given.items() if value is not None]
    if not named:
        return None, None
    first, value = named[0]
    for name, other in named[1:]:
        if other is not value and other != value:
            raise GraphpoolError(where, name, f"the same number of sets as {first}={value!r} "
                                 f"({name} and {first} are aliases)", repr(other),
                                 f"pass only one of {first} and {name}")
    return first, value


def _check_nodes(where: str, x: Tensor, node_axis: int, seg: Segments, dim: Any,
                 batch_name: str) -> None:
    """The node axis of the user's ``x`` has one entry per row of the grouping."""
    if seg.kind == Kind.MASK or x.size(node_axis) == seg.num_nodes:
        return
    if dim is None:  # the node axis is the default one
        axis = "dim -2" if x.dim() >= 2 else "its only dim"
        raise GraphpoolError(where, "x", f"{seg.num_nodes} rows on {axis}, one per entry of "
                             "the grouping", describe(x),
                             f"the {batch_name} vector needs one entry per node (row) of x")
    raise GraphpoolError(where, "dim", f"the node axis of x: one with {seg.num_nodes} "
                         "entries, one per entry of the grouping (default -2)",
                         f"dim={dim}, an axis of size {x.size(node_axis)} of {describe(x)}",
                         "pass the axis of x that holds the nodes as dim, e.g. dim=-2 for "
                         "[*, N, F] or dim=0 for [N, *]")


def as_segments(x: Tensor, batch: Any = None, *, ptr: Optional[Tensor] = None,
                num_segments: Optional[int] = None, validate: bool = True,
                where: str = "as_segments", _batch: str = "batch",
                _count: Optional[str] = None) -> Segments:
    r"""Resolve the many ways of saying how rows are grouped into one :class:`Segments`.

    A ``batch`` or ``ptr`` tensor is resolved once and reused while it is alive and
    unmodified (see :mod:`graphpool.segments_cache`).

    Args:
        x: node tensor ``[*, N, F]``; only its node count and device are read.
        batch: ``None`` (all rows form one set), a ``[N]`` index tensor, a
            :class:`Segments`, or a PyG ``Batch``/``Data``.
        ptr: a CSR pointer. With an index tensor too (PyG's message passing passes both
            for an ``EdgeIndex`` sorted by destination) it must describe the same sorted
            grouping; the ptr is used, and with ``validate`` the index is checked against
            it (one ``O(N)`` comparison).
        num_segments: number of sets; must agree with ``batch`` or ``ptr`` when they fix
            it. Without either, all rows form set 0 and the other sets are empty (PyG's
            aggregation with ``dim_size`` and no index).
        validate: check index values (see :class:`Segments`).

    Example:
        >>> import torch
        >>> as_segments(torch.zeros(3, 2), torch.tensor([0, 0, 1]), num_segments=4)
        Segments(kind='csr', num_segments=4, num_nodes=3)
        >>> as_segments(torch.zeros(3, 2), torch.tensor([0, 0, 1]),
        ...             ptr=torch.tensor([0, 2, 3])).counts.tolist()
        [2, 1]
    """
    count = _count or ("num_segments" if where == "as_segments" else "num_graphs")
    # the common call (plain x and batch tensors, a small or no count) needs only these of
    # the checks below: no Proxy, no count to convert, no output big enough to probe
    fast = (type(batch) is Tensor and ptr is None and type(x) is Tensor
            and (num_segments is None or type(num_segments) is int
                 and 0 <= num_segments <= UNPROBED_SETS))
    if fast:
        check_nodes_tensor(where, x)
    else:
        batch, ptr = _plain(batch), _plain(ptr)
        refuse_fx(where, x, batch, ptr)
        if num_segments is not None:
            num_segments = check_count(where, count, num_segments)
        if isinstance(x, Tensor):
            check_nodes_tensor(where, x)
            if num_segments is not None:  # fail before any O(B) bookkeeping is allocated
                probe_output(where, count, x, num_segments)
        if ptr is not None and not isinstance(ptr, Tensor):
            raise GraphpoolError(where, "ptr", "a 1-D integer torch.Tensor [B + 1]",
                                 describe(ptr), "pass torch.as_tensor(ptr)")
    try:
        seg = (_resolve_index(x, batch, num_segments, validate, where, _batch) if fast else
               _resolve(x, batch, ptr, num_segments, validate, where, _batch, count))
    except GraphpoolError as err:
        if err.where == where:
            raise
        if _is_pyg_data(batch):
            names = {"index": _batch, "ptr": _batch, "num_segments": _batch, "data": _batch}
        else:
            names = {"index": _batch, "num_segments": count, "num_nodes": "x"}
        raise _renamed(err, where, names) from None
    if num_segments is not None and num_segments != seg.num_segments:
        hint = (f"leave {count} out: the grouping already fixes it"
                if not isinstance(batch, Tensor) or ptr is not None else f"pass a larger {count}")
        raise GraphpoolError(where, count, f"{seg.num_segments} (the grouping's number "
                             "of sets)", num_segments, hint)
    return seg


def _check_device(where: str, name: str, t: Tensor, x: Any) -> None:
    if isinstance(x, Tensor) and t.device != x.device:
        raise GraphpoolError(where, name, f"a tensor on {x.device} (the device of x)",
                             f"one on {t.device}", f"move it with .to({str(x.device)!r})")


def _resolve(x: Any, batch: Any, ptr: Optional[Tensor], num_segments: Optional[int],
             validate: bool, where: str, batch_name: str, count: str) -> Segments:
    if isinstance(x, Tensor):
        nodes = x.size(-2) if x.dim() >= 2 else 0
    if ptr is not None:
        if not isinstance(x, Tensor):
            raise GraphpoolError(where, "x", "a torch.Tensor [*, N, F]", describe(x),
                                 "pass node features as a tensor")
        if batch is not None and not isinstance(batch, Tensor):
            raise GraphpoolError(where, "ptr", f"None when {batch_name} is a "
                                 f"{type(batch).__name__} (it fixes the grouping)",
                                 describe(ptr), f"pass either {batch_name} or ptr")
        if isinstance(ptr, Tensor):
            _check_device(where, "ptr", ptr, x)
        seg = CACHE.resolve(ptr, ("ptr", nodes, validate),
                            lambda: Segments.from_ptr(ptr, num_nodes=nodes, validate=validate),
                            validate)
        if isinstance(batch, Tensor):
            _check_index_matches_ptr(where, batch, ptr, seg, x, validate, batch_name)
        return seg
    if isinstance(batch, Segments):
        if isinstance(x, Tensor) and batch.device != x.device:
            raise GraphpoolError(where, batch_name, f"a Segments on {x.device} (the device "
                                 "of x)", f"one on {batch.device}",
                                 f"move it with .to({str(x.device)!r})")
        return batch
    if isinstance(batch, Tensor):
        return _resolve_index(x, batch, num_segments, validate, where, batch_name)
    if batch is None:
        if not isinstance(x, Tensor):
            raise GraphpoolError(where, "x", "a torch.Tensor [*, N, F]", describe(x),
                                 "pass node features as a tensor")
        # all rows in set 0; further sets (num_segments > 1) are empty, as in PyG
        sets = 1 if num_segments is None or not isinstance(num_segments, int) \
            or num_segments < 1 else num_segments
        ptr = torch.full((sets + 1,), nodes, dtype=torch.long, device=x.device)
        ptr[0] = 0
        return Segments.from_ptr(ptr, num_nodes=nodes, validate=False)
    if _is_pyg_data(batch):
        return Segments.from_pyg(batch, validate=validate)
    raise GraphpoolError(where, batch_name, "None, an index tensor, a Segments or a PyG "
                         "Batch/Data", describe(batch),
                         "pass the batch vector of your PyG batch, or a Segments")


def _resolve_index(x: Any, batch: Tensor, num_segments: Optional[int], validate: bool,
                   where: str, batch_name: str) -> Segments:
    _check_device(where, batch_name, batch, x)
    return CACHE.resolve(batch, ("index", num_segments, validate),
                         lambda: Segments.from_index(batch, num_segments, validate=validate),
                         validate)


def _check_index_matches_ptr(where: str, index: Tensor, ptr: Tensor, seg: Segments, x: Tensor,
                             validate: bool, batch_name: str) -> None:
    """PyG passes ``index`` and ``ptr`` of one sorted grouping; the ptr is used, and the
    index must agree with it (checked in one O(N) pass while validating)."""
    _check_device(where, batch_name, index, x)
    if index.dim() != 1 or index.dtype.is_floating_point or index.dtype.is_complex \
            or index.dtype == torch.bool:
        raise GraphpoolError(where, batch_name, "a 1-D integer tensor (the index ptr "
                             "compresses)", describe(index),
                             f"pass a 1-D long {batch_name}, or only ptr")
    if index.numel() != seg.num_nodes:
        raise GraphpoolError(where, batch_name, f"{seg.num_nodes} entries (ptr[-1], the "
                             "rows of x)", describe(index),
                             f"pass the {batch_name} of the same grouping as ptr, or only ptr")
    if not validate or torch.compiler.is_compiling():
        return
    expected = torch.repeat_interleave(torch.arange(seg.num_segments, device=index.device),
                                       seg.counts, output_size=seg.num_nodes)
    differs = (index.long() != expected).nonzero()
    if differs.numel():
        row = int(differs[0, 0])
        raise GraphpoolError(where, "ptr", f"the same grouping as {batch_name} (PyG passes "
                             f"both for sorted input)",
                             f"ptr putting row {row} in set {int(expected[row])}, "
                             f"{batch_name} putting it in set {int(index[row])}",
                             f"pass {batch_name} and ptr of the same grouping, or only one "
                             "of them, not both")
