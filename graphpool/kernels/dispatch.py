r"""``segment_reduce``: the single dispatch point of every readout.

Path choice (decided from the :class:`~graphpool.Segments` metadata alone, never by
reading tensor values):

=============================  ====================================================
grouping                       path (first that applies)
=============================  ====================================================
uniform, mask                  :mod:`.dense`: a ``[*, B, S, F]`` view, torch reductions
sorted index / ptr (``csr``)    :mod:`.compiled` C++ kernels (CPU, floating point);
                               torch_scatter ``segment_csr`` for sums if installed;
                               native :func:`torch.segment_reduce` (floats) or scatter
unsorted index (``scatter``)    :mod:`.compiled` kernels (CPU, floats, eager: each set's
                               rows gathered by the index's sorted order, built once per
                               grouping; narrow rows or few sets: one streaming pass over
                               ``x``, threads split the features); torch_scatter
                               ``scatter`` for sums if installed; native ``index_add`` /
                               ``scatter_reduce``
=============================  ====================================================

The backend (:func:`set_backend`) can rule out the compiled kernels and torch_scatter.
Max and min never use torch_scatter (see :mod:`.ext`). Under ``torch.compile`` the
compiled kernels run as the ``graphpool::csr_*`` and ``graphpool::scatter_*`` operators
(opaque to the compiler, with their output shapes registered); torch_scatter is left out
there, and with the ``"auto"`` backend sums and means over an unsorted index are torch's
``scatter_add``, what PyG's aggregation compiles to (the opaque operator cost 5% of a
compiled GIN training step). With inductor's defaults on the CPU that is aten's
deterministic ``scatter_add`` (eager's bits) on several threads and inductor's own loop on
one (one thread: one order); on CUDA it adds with atomics, as PyG does.

Every path returns the same values and the same gradients: the backward is shared
(see :class:`~graphpool.kernels.autograd.SegmentReduce`).
"""
from __future__ import annotations

from numbers import Number


import torch
from torch import Tensor

from ..errors import GraphpoolError
from ..segments import Kind, Segments
from . import compiled, dense, export, ext, native
from .autograd import (Path, SegmentReduce, SegmentReduceJvp, forward_ad, gradient_rule,
                       jit_tracing, plain_torch)
from .backends import get_backend, set_backend, use_backend
from .checks import check_input
from .reductions import HALF as _HALF, MAX, MIN, SUM, Primitive, resolve_reduction

__all__ = ["segment_reduce", "set_backend", "get_backend", "use_backend"]

_COMPILED_OPS = (SUM, MAX, MIN)  # what compiled.combine.accepts


def _pick_path(seg: Segments, x: Tensor, op: Primitive, plain: bool = False) -> Path:
    """The first path that applies and declares ``op`` (see the module docs)."""
    if export.exporting():  # torch.export / the dynamo ONNX exporter: standard ops only
        return export.pick_path(seg, x, op)
    if (seg.kind == Kind.CSR and not plain and op in _COMPILED_OPS and compiled.supports(x, seg)
            and get_backend() in ("auto", "compiled")
            and (compiled.OPERATORS or not torch.compiler.is_compiling())):
        return compiled.combine  # the common case of a PyG batch on the CPU
    if seg.kind in (Kind.UNIFORM, Kind.MASK):
        candidates = [dense.combine]
    else:
        compiling = torch.compiler.is_compiling()
        backend = get_backend()
        candidates = []
        if compiling and seg.kind == Kind.SCATTER and op is SUM and backend == "auto":
            candidates.append(native.scatter)  # compiled: scatter_add, as PyG's aggregation
        if (not plain and backend in ("auto", "compiled") and op in _COMPILED_OPS
                and (compiled.OPERATORS or not compiling) and compiled.supports(x, seg)):
            candidates.append(compiled.combine)
        if backend in ("auto", "torch_scatter") and ext.AVAILABLE and not compiling \
                and not plain:
            candidates.append(ext.combine)
        if seg.kind == Kind.CSR and x.is_floating_point():
            candidates.append(native.csr)
        candidates.append(native.scatter)
    for path in candidates:
        if path.accepts(op):
            return path
    raise GraphpoolError("segment_reduce", "reduce", "a reduction whose primitive some "
                         f"path implements for a {seg.kind!r} grouping", repr(op),
                         "give the primitive its torch forms (scatter=, segment=, dense=)")


def segment_reduce(x: Tensor, segments: Segments, reduce: str = "sum", *,
                   fill_value: Number = 0.0, _where: str = "segment_reduce") -> Tensor:
    r"""Reduce each set of rows of ``x`` to one row.

    For set :math:`b` with rows :math:`\mathcal{V}_b` and :math:`n_b = |\mathcal{V}_b|`:

    .. math::
        \mathrm{sum}_b = \sum_{v \in \mathcal{V}_b} x_v, \quad
        \mathrm{mean}_b = \frac{1}{n_b}\sum_{v \in \mathcal{V}_b} x_v, \quad
        \mathrm{max}_b = \max_{v \in \mathcal{V}_b} x_v, \quad
        \mathrm{min}_b = \min_{v \in \mathcal{V}_b} x_v

    feature by feature. Empty sets (:math:`n_b = 0`) get ``fill_value``, decided
    from the counts: ``inf`` and ``nan`` in the data propagate as in a per-set loop.
    ``float16``/``bfloat16`` sums accumulate in ``float32``.

    Args:
        x: ``[*, N, F]`` node features (``[*, B, Nmax, F]`` for a mask grouping).
        segments: the grouping, a :class:`~graphpool.Segments`.
        reduce: ``"sum"`` (alias ``"add"``), ``"mean"``, ``"max"`` or ``"min"``.
        fill_value: value of empty sets (default 0).

    Returns:
        ``[*, B, F]`` tensor of the dtype of ``x``; sums of integers are ``int64`` (as
        :func:`torch.sum` gives), so they never wrap around.

    Example:
        >>> import torch
        >>> from graphpool import Segments, segment_reduce
        >>> x = torch.tensor([[1.], [2.], [5.]])
        >>> seg = Segments.from_index(torch.tensor([0, 0, 2]), num_segments=3)
        >>> segment_reduce(x, seg, "mean").flatten().tolist()
        [1.5, 0.0, 5.0]
        >>> segment_reduce(x, seg, "max", fill_value=float("nan")).flatten().tolist()
        [2.0, nan, 5.0]
    """
    red = resolve_reduction(reduce, _where)
    fill_value = check_input(x, segments, red.name, red.integer_inputs, fill_value, _where)
    if not torch.compiler.is_compiling() and x.is_neg():  # a view holding its values
        x = x.resolve_neg()  # negated (z.conj().imag): C reads bytes (one copy)
    plain = plain_torch(x)
    prim = red.primitive
    path = _pick_path(segments, x, prim, plain)
    acc = x.dtype
    if prim is SUM and x.dtype in _HALF:
        acc = torch.float32
    elif prim is SUM and not x.is_floating_point():  # no wrap-around: torch.sum's int64
        acc = torch.int64
    op, finalize = prim, red.finalize
    if finalize is not None and red.name in path.fused:
        op, finalize = red, None
    if gradient_rule(op) is None and forward_ad(x):
        raise GraphpoolError(_where, "reduce", "a reduction with a forward-mode rule under "
                             "torch.autograd.forward_ad / torch.func.jvp", repr(red),
                             "use reverse mode (backward, torch.func.grad) for this reduction, "
                             "or give its primitive gradient='broadcast' or 'extremum'")
    if (plain and jit_tracing()) or gradient_rule(op) is None:
        out = path(x, segments, op, acc)  # plain torch ops: traced, or torch's autograd
    elif plain or forward_ad(x):
        out = SegmentReduceJvp.apply(x, segments, path, op, acc)
    elif x.requires_grad and torch.is_grad_enabled():
        out = SegmentReduce.apply(x, segments, path, op, acc)
    else:  # nothing to differentiate: skip the autograd.Function's overhead
        out = path(x, segments, op, acc)
    if finalize is not None:
        out = finalize(out, segments._counts)
    if out.dtype != x.dtype and x.is_floating_point():
        out = out.to(x.dtype)
    if segments.has_empty is not False and not (prim is SUM and fill_value == 0):
        out = out.masked_fill((segments._counts == 0).unsqueeze(-1), fill_value)
    return out
