"""Dense path: uniform groups and padded (masked) batches.

A uniform grouping of ``B`` sets of ``S`` rows is a ``[*, B, S, F]`` view of ``x``
(no copy); a padded batch already has that shape, and padding rows are replaced by
the reduction's identity before a plain torch reduction over the set axis.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..segments import Segments
from .reductions import _divide_by_count, _identity

_TORCH_REDUCE = {"sum": torch.sum, "max": torch.amax, "min": torch.amin}


def combine(x: Tensor, seg: Segments, how: str, acc_dtype: torch.dtype) -> Tensor:
    """``sum``, ``max``, ``min`` or (fused) ``mean`` of every set, over a ``[*, B, S, F]`` view."""
    identity = _identity("sum" if how == "mean" else how, x.dtype)
    keep = seg.kind == "uniform" and seg.num_segments == 1  # [*, S, F] is the one set
    if keep:
        view = x
    elif seg.kind == "uniform":
        view = x.unflatten(-2, (seg.num_segments, seg.size))
    else:
        view = torch.where(seg._m.unsqueeze(-1), x, x.new_full((), identity))
    if view.size(-2) == 0:
        shape = (*view.shape[:-2], 1) if keep else view.shape[:-2]
        return view.new_full((*shape, view.size(-1)), identity, dtype=acc_dtype)
    dtype = acc_dtype if acc_dtype != x.dtype else None
    if how == "mean":  # uniform sets: torch's own mean, the same kernel as x.mean(dims)
        if seg.kind == "uniform":
            return view.mean(-2, keepdim=keep, dtype=dtype)
        return _divide_by_count(view.sum(-2, dtype=dtype), seg._counts)
    if how == "sum":
        return view.sum(-2, keepdim=keep, dtype=dtype)
    return _TORCH_REDUCE[how](view, -2, keepdim=keep)


combine.fused = frozenset({"mean"})  # segment_reduce skips the finalize of these ops
