"""Native torch paths: CSR for sorted groupings, scatter for unsorted ones.

* CSR: :func:`torch.segment_reduce` over ``ptr`` — deterministic, no atomics.
  Floating point only; integer inputs take the scatter path.
* scatter: ``index_add`` for sums, ``scatter_reduce(..., include_self=False)`` for
  max/min, into an output that starts at the reduction's identity.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..segments import Segments
from .reductions import _identity


def csr(x: Tensor, seg: Segments, how: str, acc_dtype: torch.dtype) -> Tensor:
    offsets = seg._checked_ptr().expand(*x.shape[:-2], seg.num_segments + 1)
    return torch.segment_reduce(x.to(acc_dtype), how, offsets=offsets, axis=x.dim() - 2,
                                unsafe=True)


def scatter(x: Tensor, seg: Segments, how: str, acc_dtype: torch.dtype) -> Tensor:
    shape = (*x.shape[:-2], seg.num_segments, x.size(-1))
    if how == "sum":
        return x.new_zeros(shape, dtype=acc_dtype).index_add(-2, seg._index, x.to(acc_dtype))
    index = seg._index.view(-1, 1).expand(x.shape)
    out = x.new_full(shape, _identity(how, x.dtype))
    return out.scatter_reduce(-2, index, x, "amax" if how == "max" else "amin",
                              include_self=False)
