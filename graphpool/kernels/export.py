r"""The path of :func:`~graphpool.segment_reduce` while :func:`torch.export.export` (and so
``torch.onnx.export(..., dynamo=True)``) traces: standard ATen operators only.

The compiled CPU kernels are the opaque operators ``graphpool::csr_*`` and
``graphpool::scatter_*`` under a tracer;
an exported program holding them runs only where graphpool is imported, and ONNX has no
translation for them. While exporting, index and ptr groupings are therefore reduced
with scatters whose ONNX translation (``ScatterElements``) is exact:

* the set of every row of a sorted grouping comes from its ``ptr`` by a scatter of the
  set ends and a cumulative sum, :math:`b(v) = |\{c \ge 1 : \mathrm{ptr}_c \le v\}|`
  (``O(N + B)``, empty sets included; ONNX has no ``repeat_interleave`` with a given
  output size);
* a sum is ``scatter_add`` into zeros; max, min and prod scatter into an output that
  starts at the primitive's identity (``-inf`` for max, ``+inf`` for min, 1 for prod)
  with ``include_self=True``. The identity changes nothing, so the result equals
  ``include_self=False`` exactly: all-negative sets keep their maximum, sets of ``-inf``
  stay ``-inf``, and empty sets get ``fill_value`` from the counts afterwards. A set
  with a ``nan`` gives ``nan`` (counted by one more scatter: onnxruntime's max and min
  scatters keep a later number instead).

Uniform and mask groupings keep the dense path (torch reductions over a padded view),
which exports as it is, with the same count of ``nan`` for max and min. Eager code and
:func:`torch.compile` never come here.

Example:
    >>> import torch
    >>> from graphpool import Segments
    >>> seg = Segments.from_ptr(torch.tensor([0, 2, 2, 3]))
    >>> scatter(torch.tensor([[1.], [-4.], [-2.]]), seg, MAX, torch.float32).flatten().tolist()
    [1.0, -inf, -2.0]
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..segments import Kind, Segments
from . import dense, native
from .reductions import MAX, MIN, PROD, SUM, Primitive

__all__ = ["exporting", "pick_path", "scatter", "dense_with_nans", "largest_set",
           "stable_argsort"]


def exporting() -> bool:
    """Whether :func:`torch.export.export` is tracing (the dynamo ONNX exporter runs it)."""
    return torch.compiler.is_exporting()


def largest_set(counts: Tensor) -> int:
    """The size of the largest set, at least 1, as a symbolic size of the exported
    program: what :func:`~graphpool.composite.to_dense` pads to. (At least one row, so
    that no shape test depends on the data: a batch of only empty sets pads one row.)"""
    size = torch.cat([counts, counts.new_ones(1)]).max().item()
    torch._check(size >= 1)
    return size


def stable_argsort(key: Tensor, descending: bool = False) -> Tensor:
    """``torch.sort(key, dim=-1, descending=..., stable=True).indices``; in an ONNX export,
    ``torch.topk`` over the whole axis, whose ONNX ``TopK`` orders equal values by their
    index (the ONNX specification), i.e. stably: ONNX has no stable sort."""
    if torch.onnx.is_in_onnx_export():
        key = key if key.is_floating_point() or key.dtype == torch.int64 else key.long()
        return torch.topk(key, key.size(-1), dim=-1, largest=descending, sorted=True).indices
    return torch.sort(key, dim=-1, descending=descending, stable=True).indices


_SCATTER = {MAX: "amax", MIN: "amin", PROD: "prod"}


def scatter(x: Tensor, seg: Segments, op: Primitive, acc_dtype: torch.dtype) -> Tensor:
    """``op`` of every set of an index or ptr grouping, by scatters that export to ONNX."""
    shape = (*x.shape[:-2], seg.num_segments, x.size(-1))
    index = seg._index.view(-1, 1).expand(x.shape)
    x = x.to(acc_dtype)
    if op is SUM:
        return x.new_zeros(shape).scatter_add(-2, index, x)
    start = x.new_full(shape, op.identity(acc_dtype))
    out = start.scatter_reduce(-2, index, x, _SCATTER[op], include_self=True)
    if op is PROD or not x.is_floating_point():
        return out
    # onnxruntime's ScatterElements max/min drop a nan that a later row follows; torch
    # (and a per-set loop) give nan: count the nans of every set (a sum) and put them back
    nans = x.new_zeros(shape).scatter_add(-2, index, x.isnan().to(x.dtype))
    return torch.where(nans > 0, math.nan, out)


scatter.accepts = lambda op: op is SUM or op in _SCATTER
scatter.fused = frozenset()


def dense_with_nans(x: Tensor, seg: Segments, op, acc_dtype: torch.dtype) -> Tensor:
    """The dense path; max and min of a set with a ``nan`` are ``nan`` (onnxruntime's
    ``ReduceMax`` and ``ReduceMin`` keep a number that follows it)."""
    out = dense.combine(x, seg, op, acc_dtype)
    if not (op is MAX or op is MIN) or not x.is_floating_point():
        return out
    nans = dense.combine(x.isnan().to(acc_dtype), seg, SUM, acc_dtype)
    return torch.where(nans > 0, math.nan, out)


dense_with_nans.accepts = dense.combine.accepts
dense_with_nans.fused = dense.combine.fused


def pick_path(seg: Segments, x: Tensor, op: Primitive):
    """The export path for ``op``: dense for uniform and mask groupings, else
    :func:`scatter`, or the native scatter (``include_self=False``) for primitives
    registered later. A path refuses a primitive it does not implement."""
    if seg.kind in (Kind.UNIFORM, Kind.MASK):
        return dense_with_nans
    return scatter if scatter.accepts(op) else native.scatter
