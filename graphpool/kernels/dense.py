"""Dense path: uniform groups and padded (masked) batches.

A uniform grouping of ``B`` sets of ``S`` rows is a ``[*, B, S, F]`` view of ``x``
(no copy); a padded batch already has that shape, and padding rows are replaced by
the primitive's identity before its dense torch reduction over the set axis. The mean
of uniform sets is fused: torch's own mean, the same kernel as ``x.mean(dims)``.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..errors import GraphpoolError
from ..segments import Kind, Segments
from .reductions import SUM, Primitive, Reduction, divide_by_count


def combine(x: Tensor, seg: Segments, op, acc_dtype: torch.dtype) -> Tensor:
    """``op`` (a primitive, or the fused mean) of every set, over a ``[*, B, S, F]`` view."""
    if not (combine.accepts(op) or isinstance(op, Reduction) and op.name in combine.fused):
        raise GraphpoolError("segment_reduce", "reduce", "a primitive with a dense form",
                             repr(op), "register the primitive with dense=...")
    prim = op.primitive if isinstance(op, Reduction) else op
    identity = prim.identity(x.dtype)
    # [*, S, F] is the one set (a symbolic count under torch.export: the general view)
    keep = seg.kind == Kind.UNIFORM and type(seg.num_segments) is int and seg.num_segments == 1
    if keep:
        view = x
    elif seg.kind == Kind.UNIFORM:
        view = x.unflatten(-2, (seg.num_segments, seg.size))
    else:
        view = torch.where(seg._m.unsqueeze(-1), x, x.new_full((), identity))
    if torch.compiler.is_exporting():  # S is a size the program reads when run, maybe 0:
        if prim is not SUM and may_be_empty(view.size(-2)):  # no branch on it; one
            view = torch.cat([view, view.new_full(  # row of the identity (a reduction of an
                (*view.shape[:-2], 1, view.size(-1)), identity)], -2)  # empty axis fails)
    elif view.size(-2) == 0:
        shape = (*view.shape[:-2], 1) if keep else view.shape[:-2]
        return view.new_full((*shape, view.size(-1)), identity, dtype=acc_dtype)
    dtype = acc_dtype if acc_dtype != x.dtype else None
    if isinstance(op, Reduction):  # the fused mean
        if seg.kind == Kind.UNIFORM and not torch.compiler.is_exporting():  # (S may be 0:
            return view.mean(-2, keepdim=keep, dtype=dtype)                 # nan there)
        return divide_by_count(view.sum(-2, keepdim=keep, dtype=dtype), seg._counts)
    if op is SUM:
        return view.sum(-2, keepdim=keep, dtype=dtype)
    return prim.dense(view if dtype is None else view.to(dtype), -2, keep)


def may_be_empty(size: Any) -> bool:
    """Whether a size may be 0 when an exported program runs: a dynamic (symbolic) one may
    (while tracing, torch.export reasons as if every dynamic size were at least 2, whatever
    ``Dim`` declares, yet the program takes 0), so no reduction over its axis may assume a
    row; a static size is what it is."""
    return type(size) is not int or size == 0


combine.accepts = lambda op: isinstance(op, Primitive) and op.dense is not None
combine.fused = frozenset({"mean"})  # segment_reduce skips the finalize of these ops
