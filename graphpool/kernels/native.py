"""Native torch paths: CSR for sorted groupings, scatter for unsorted ones.

* CSR: :func:`torch.segment_reduce` over ``ptr`` — deterministic, no atomics.
  Floating point only; integer inputs take the scatter path.
* scatter: ``index_add`` for sums, ``scatter_reduce(..., include_self=False)`` for the
  other primitives, into an output that starts at the primitive's identity.

Both run any :class:`~graphpool.kernels.reductions.Primitive` that has the torch form
they need, and refuse the rest.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..errors import GraphpoolError
from ..segments import Segments
from .reductions import SUM, Primitive


def _refuse(path: str, op: object) -> None:
    raise GraphpoolError("segment_reduce", "reduce", f"a primitive the {path} path "
                         "implements", repr(op), "register the primitive with its torch form "
                         "(see graphpool.kernels.reductions)")


def csr(x: Tensor, seg: Segments, op: Primitive, acc_dtype: torch.dtype) -> Tensor:
    if not csr.accepts(op):
        _refuse("native CSR", op)
    offsets = seg._checked_ptr().expand(*x.shape[:-2], seg.num_segments + 1)
    return torch.segment_reduce(x.to(acc_dtype), op.segment, offsets=offsets, axis=x.dim() - 2,
                                unsafe=True)


csr.accepts = lambda op: isinstance(op, Primitive) and op.segment is not None
csr.fused = frozenset()


def scatter(x: Tensor, seg: Segments, op: Primitive, acc_dtype: torch.dtype) -> Tensor:
    if not scatter.accepts(op):
        _refuse("native scatter", op)
    shape = (*x.shape[:-2], seg.num_segments, x.size(-1))
    if op is SUM and torch.compiler.is_compiling():  # what PyG's aggregation compiles to:
        index = seg._index.view(-1, 1).expand(x.shape)  # inductor treats both models alike
        return x.new_zeros(shape, dtype=acc_dtype).scatter_add(-2, index, x.to(acc_dtype))
    if op is SUM:
        return x.new_zeros(shape, dtype=acc_dtype).index_add(-2, seg._index, x.to(acc_dtype))
    index = seg._index.view(-1, 1).expand(x.shape)
    out = x.new_full(shape, op.identity(x.dtype), dtype=acc_dtype)
    return out.scatter_reduce(-2, index, x.to(acc_dtype), op.scatter, include_self=False)


scatter.accepts = lambda op: isinstance(op, Primitive) and op.scatter is not None
scatter.fused = frozenset()
