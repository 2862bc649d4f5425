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
unsorted index (``scatter``)    torch_scatter ``scatter`` for sums if installed; native
                               ``index_add`` / ``scatter_reduce``
=============================  ====================================================

The backend (:func:`set_backend`) can rule out the compiled kernels and torch_scatter.
Max and min never use torch_scatter (see :mod:`.ext`). Under ``torch.compile`` the
compiled kernels run as the ``graphpool::csr_*`` operators (opaque to the compiler, with
their output shapes registered); torch_scatter is left out there, so sums of unsorted
indices take the native path.

Every path returns the same values and the same gradients: the backward is shared
(see :class:`_SegmentReduce`).
"""
from __future__ import annotations

import contextlib
import contextvars
import math
import os
from numbers import Integral, Number, Real
from typing import Any, Callable, Iterator, Optional, Tuple

import torch
import torch.autograd.forward_ad as fwAD
from torch import Tensor

from ..errors import GraphpoolError, describe, refuse_fx
from torch.utils._python_dispatch import _get_current_dispatch_mode as _dispatch_mode
from ..segments import Segments, check_nodes_tensor, probe_output
from . import compiled, dense, ext, native
from .reductions import SUM, Primitive, Reduction, divide_by_count, resolve_reduction

__all__ = ["segment_reduce", "set_backend", "get_backend", "use_backend"]

Path = Callable[[Tensor, Segments, Any, torch.dtype], Tensor]
_BACKENDS = ("auto", "native", "compiled", "torch_scatter")
_HALF = (torch.float16, torch.bfloat16)
_DTYPES = (*_HALF, torch.float32, torch.float64, torch.int8, torch.int16, torch.int32,
           torch.int64, torch.uint8)


def _check_backend(name: str, where: str = "set_backend", argument: str = "name") -> str:
    if name not in _BACKENDS:
        raise GraphpoolError(where, argument, f"one of {_BACKENDS}", repr(name),
                             "pick one of the listed backends")
    if name == "torch_scatter" and not ext.AVAILABLE:
        raise GraphpoolError(where, argument, "a backend that is installed",
                             "'torch_scatter', which cannot be imported",
                             "pip install --no-build-isolation torch-scatter, or use 'auto'")
    if name == "compiled" and compiled.library() is None:
        raise GraphpoolError(where, argument, "a backend that can be built",
                             "'compiled', which could not be compiled or loaded",
                             "install a C++ compiler with OpenMP (g++), unset "
                             "GRAPHPOOL_COMPILED=0, or use 'auto'")
    return name


_default = _check_backend(os.environ.get("GRAPHPOOL_BACKEND", "auto"), "environment",
                          "GRAPHPOOL_BACKEND")
# use_backend overrides the default in its own context only (a thread, an asyncio task)
_override: contextvars.ContextVar = contextvars.ContextVar("graphpool_backend", default=None)


def set_backend(name: str) -> None:
    r"""Choose the kernels for index/ptr groupings, for every thread.

    * ``"auto"`` (default): the compiled CSR kernels for floating point ``x`` on the CPU
      (see :mod:`graphpool.kernels.compiled`), torch_scatter for other sums when it is
      installed, native torch otherwise;
    * ``"native"``: native torch only (disables both the compiled kernels and torch_scatter);
    * ``"compiled"``: like ``"auto"`` without torch_scatter; fails if the kernels cannot be built;
    * ``"torch_scatter"``: torch_scatter for sums, native torch otherwise.

    The environment variable ``GRAPHPOOL_BACKEND`` sets the initial value. Uniform and
    masked groupings always take the dense path; under ``torch.compile``, torch_scatter
    is not used. :func:`use_backend` changes the backend for one block of one thread.

    Example:
        >>> import graphpool
        >>> graphpool.set_backend("native"); graphpool.get_backend()
        'native'
        >>> graphpool.set_backend("auto")
    """
    global _default
    _default = _check_backend(name)


@torch.compiler.assume_constant_result  # a compiled graph keeps the backend it was traced with
def get_backend() -> str:
    """The backend in force here: the innermost :func:`use_backend` of this thread or
    task, else the one of :func:`set_backend`."""
    override = _override.get()
    return _default if override is None else override


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Use backend ``name`` inside the block, in this thread (or asyncio task) only: other
    threads keep theirs, and the previous backend is back when the block ends.

    Example:
        >>> import graphpool
        >>> with graphpool.use_backend("native"):
        ...     graphpool.get_backend()
        'native'
    """
    token = _override.set(_check_backend(name, "use_backend"))
    try:
        yield
    finally:
        _override.reset(token)


def plain_torch(x: Tensor) -> bool:
    """Whether ``x`` must be reduced with plain torch ops that PyTorch's machinery sees:
    under ``torch.jit.trace``, ``torch.func`` transforms, a ``TorchDispatchMode``
    (``make_fx``, FlopCounterMode, ...) or for a tensor subclass. The ctypes kernels and
    torch_scatter are invisible to these, so they are never used there."""
    if torch.compiler.is_compiling():  # dynamo sees the operators; FakeTensors need no care
        return False
    return (torch.jit.is_tracing() or torch._C._are_functorch_transforms_active()
            or type(x) not in (Tensor, torch.nn.Parameter)
            or _dispatch_mode() is not None)


def _forward_ad(x: Tensor) -> bool:
    """Whether ``x`` carries a tangent of ``torch.autograd.forward_ad`` (outside compile)."""
    return (not torch.compiler.is_compiling() and torch._C._is_fwd_grad_enabled()
            and fwAD.unpack_dual(x).tangent is not None)


def _pick_path(seg: Segments, x: Tensor, op: Primitive, plain: bool = False) -> Path:
    """The first path that applies and declares ``op`` (see the module docs)."""
    if seg.kind in ("uniform", "mask"):
        candidates = [dense.combine]
    else:
        compiling = torch.compiler.is_compiling()
        backend = get_backend()
        candidates = []
        if (not plain and backend in ("auto", "compiled")
                and (compiled.OPERATORS or not compiling) and compiled.supports(x, seg)):
            candidates.append(compiled.combine)
        if backend in ("auto", "torch_scatter") and ext.AVAILABLE and not compiling \
                and not plain:
            candidates.append(ext.combine)
        if seg.kind == "csr" and x.is_floating_point():
            candidates.append(native.csr)
        candidates.append(native.scatter)
    for path in candidates:
        if path.accepts(op):
            return path
    raise GraphpoolError("segment_reduce", "reduce", "a reduction whose primitive some "
                         f"path implements for a {seg.kind!r} grouping", repr(op),
                         "give the primitive its torch forms (scatter=, segment=, dense=)")


class _SegmentReduce(torch.autograd.Function):
    r"""Run a path's ``combine`` forward; one shared backward for every path.

    * ``sum``: the adjoint of a segment sum is a broadcast,
      :math:`\partial L / \partial x_v = \partial L / \partial y_b` for :math:`v \in b`.
    * ``mean`` (when the path fuses it): the same broadcast of
      :math:`\partial L / \partial y_b \,/\, \max(n_b, 1)`.
    * ``max``/``min``: each set's gradient is split evenly over the rows that attain the
      extremum (per feature), like :func:`torch.amax`:

      .. math::
          \frac{\partial L}{\partial x_{v}} = \frac{[x_v = y_b]}
          {|\{u \in b : x_u = y_b\}|} \frac{\partial L}{\partial y_b} .

      Rows holding ``nan`` receive no gradient.

    Padding rows of a mask grouping always get zero. The backward is built from
    differentiable ops, so double backward works; when no graph of the backward is
    needed, CSR groupings on the compiled path use its one-pass backward kernels instead
    (same values, tested).
    """

    generate_vmap_rule = True  # torch.func.vmap runs forward/backward on batched tensors

    @staticmethod
    def forward(x: Tensor, seg: Segments, path: Path, op: Any,
                acc_dtype: torch.dtype) -> Tensor:
        return path(x, seg, op, acc_dtype)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, seg, path, op, acc_dtype = inputs
        ctx.seg, ctx.path, ctx.op, ctx.x_dtype, ctx.acc_dtype = seg, path, op, x.dtype, \
            acc_dtype
        ctx.rule = _gradient_rule(op)
        if ctx.rule == "extremum":
            ctx.save_for_backward(x, output)
            ctx.save_for_forward(x, output)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        seg: Segments = ctx.seg
        if ctx.rule == "mean":  # fused by the path: the adjoint of sum, scaled per set
            grad_out = divide_by_count(grad_out, seg._counts)
        if ctx.rule != "extremum":  # a broadcast copies: cast the [*, B, F] side first
            grad_out = grad_out.to(ctx.x_dtype)
        if ctx.path is compiled.combine and not torch.is_grad_enabled():  # one-pass kernels
            if ctx.rule != "extremum":
                return compiled.broadcast(grad_out, seg), None, None, None, None
            x, out = ctx.saved_tensors
            return compiled.extremum_backward(x, seg, out, grad_out), None, None, None, None
        if ctx.rule != "extremum":
            hit = seg._m.unsqueeze(-1) if seg._m is not None else None
            share = seg.broadcast(grad_out)
        else:
            x, out = ctx.saved_tensors
            hit, ties = _ties(ctx.path, x, out, seg)
            # the share in the exact type of the counts, rounded once to the dtype of x
            share = seg.broadcast((grad_out.to(ties.dtype) / ties).to(ctx.x_dtype))
        grad_x = share if hit is None else torch.where(hit, share, 0)
        return grad_x.to(ctx.x_dtype), None, None, None, None



class _SegmentReduceJvp(_SegmentReduce):
    """:class:`_SegmentReduce` with forward-mode AD, for ``torch.func.jvp`` and
    ``torch.autograd.forward_ad`` (dynamo cannot trace a custom ``jvp``, so the class
    used under ``torch.compile`` has none). The tangent of max/min is the even split of
    the backward: the mean of the tangents of the rows that attain the extremum."""

    @staticmethod
    def jvp(ctx, x_t: Tensor, *_) -> Tensor:
        seg: Segments = ctx.seg
        if ctx.rule != "extremum":
            return ctx.path(x_t, seg, ctx.op, ctx.acc_dtype)
        x, out = ctx.saved_tensors
        hit, ties = _ties(ctx.path, x, out, seg)
        picked = ctx.path(torch.where(hit, x_t, 0).to(ties.dtype), seg, SUM, ties.dtype)
        return (picked / ties.clamp(min=1)).to(x_t.dtype)


def _ties(path: Path, x: Tensor, out: Tensor, seg: Segments) -> Tuple[Tensor, Tensor]:
    """Rows that attain each set's extremum, and how many per set and feature, counted in
    float32 for half types (exact up to 2**24 ties; a half type would round from 2**11
    on and overflow at 65504)."""
    hit = x == seg.broadcast(out)
    if seg._m is not None:
        hit = hit & seg._m.unsqueeze(-1)
    dtype = torch.float32 if x.dtype in _HALF or not x.is_floating_point() else x.dtype
    return hit, path(hit.to(dtype), seg, SUM, dtype)


def _gradient_rule(op: Any) -> Optional[str]:
    """``"broadcast"``, ``"mean"`` (a fused mean), ``"extremum"`` or ``None`` (autograd)."""
    if isinstance(op, Reduction):  # fused by the path: only the mean is
        return "mean" if op.name == "mean" and op.primitive is SUM else None
    return op.gradient


def _check_input(x: Tensor, seg: Segments, reduce_name: str, integer_ok: bool,
                 fill_value: Number, where: str) -> Number:
    """Check the arguments of :func:`segment_reduce`; returns ``fill_value`` as a number of
    the kind ``x`` holds."""
    refuse_fx(where, x)
    if not isinstance(x, Tensor):
        raise GraphpoolError(where, "x", "a torch.Tensor [*, N, F]", describe(x),
                             "pass node features as a tensor")
    check_nodes_tensor(where, x)
    if not isinstance(seg, Segments):
        raise GraphpoolError(where, "segments", "a graphpool.Segments", describe(seg),
                             "build one with Segments.from_index(batch) or similar")
    if torch.onnx.is_in_onnx_export() and not torch.compiler.is_compiling():
        raise GraphpoolError(where, "x", "a trace of the dynamo-based exporter",
                             "torch.onnx.export(..., dynamo=False), whose TorchScript "
                             "translation of scatter reductions is not checked by graphpool",
                             "export with torch.onnx.export(..., dynamo=True) (the default) "
                             "or torch.export.export")
    if torch.jit.is_tracing() and seg.kind == "uniform" and seg.num_segments != 1:
        raise GraphpoolError(where, "segments", "under torch.jit.trace, one uniform set per "
                             "leading index (the trace would fix the rows per set)",
                             repr(seg), "use torch.export or torch.compile, which keep sizes "
                             "symbolic")
    if x.dtype not in _DTYPES or x.is_quantized or x.is_nested:
        kind = "a nested" if x.is_nested else "a quantized" if x.is_quantized else "a"
        raise GraphpoolError(where, "x", "a floating point or integer tensor (float16, "
                             "bfloat16, float32, float64, int8/16/32/64, uint8)",
                             f"{kind} {describe(x)[2:]}",
                             "convert it, e.g. x.float() (or x.dequantize(), "
                             "x.to_padded_tensor(0) with a mask grouping)")
    if seg.kind == "mask":
        if x.dim() < 3 or tuple(x.shape[-3:-1]) != (seg.num_segments, seg.num_nodes):
            raise GraphpoolError(
                where, "x", f"shape [*, {seg.num_segments}, {seg.num_nodes}, F] to match the "
                f"mask [{seg.num_segments}, {seg.num_nodes}]", describe(x),
                "pass the padded batch the mask belongs to (to_dense_batch returns both)")
    else:
        if x.dim() < 2:
            raise GraphpoolError(where, "x", "at least 2 dims [*, N, F] (nodes on dim -2, "
                                 "features last)", describe(x),
                                 "add a feature axis with x.unsqueeze(-1)")
        if x.size(-2) != seg.num_nodes:
            raise GraphpoolError(where, "x", f"{seg.num_nodes} rows on dim -2, one per entry "
                                 "of the grouping", describe(x),
                                 "the batch/index vector needs one entry per node (row) of x")
    if x.device != seg.device:
        raise GraphpoolError(where, "segments", f"a grouping on {x.device} (the device of x)",
                             f"one on {seg.device}", f"move it with .to({str(x.device)!r})")
    if not x.is_floating_point() and not integer_ok:
        raise GraphpoolError(where, "x", f"a floating point tensor for reduce={reduce_name!r}",
                             describe(x), "convert it with x.float()")
    fill_value = _check_fill_value(where, fill_value, x.dtype)
    probe_output(where, "segments", x, seg.num_segments)
    if seg.kind == "csr" and not seg.checked:  # validate=False: still no read out of bounds
        seg._checked_ptr(where)
    return fill_value


def _check_fill_value(where: str, fill_value: Any, dtype: torch.dtype) -> Number:
    """``fill_value`` as a Python number that ``dtype`` represents: never rounded to
    ``inf`` or wrapped."""
    if isinstance(fill_value, Tensor) and fill_value.dim() == 0 and not fill_value.is_complex():
        fill_value = fill_value.item()
    if isinstance(fill_value, bool) or not isinstance(fill_value, Real):
        raise GraphpoolError(where, "fill_value", "a real number", describe(fill_value),
                             "pass the value empty sets should get, e.g. 0")
    shown = repr(fill_value) if len(repr(fill_value)) < 40 else f"{repr(fill_value)[:36]}..."
    if dtype.is_floating_point:
        try:
            value = float(fill_value)
        except OverflowError:  # an integer beyond any float
            value = None
        if value is None or math.isfinite(value) and abs(value) > torch.finfo(dtype).max:
            raise GraphpoolError(where, "fill_value", f"a number that {dtype} can hold "
                                 f"(|v| <= {torch.finfo(dtype).max:g}) or +-inf / nan",
                                 shown, "pick a smaller value, or convert x")
        return value
    info = torch.iinfo(dtype)
    exact = fill_value if isinstance(fill_value, Integral) else None
    if exact is None:
        value = float(fill_value)
        exact = int(value) if math.isfinite(value) and value.is_integer() else None
    if exact is None or not info.min <= exact <= info.max:
        raise GraphpoolError(where, "fill_value", f"an integer in [{info.min}, {info.max}] "
                             f"(x is {dtype})", shown,
                             "pass an integer that fits, or convert x to a float type")
    return int(exact)


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
    fill_value = _check_input(x, segments, red.name, red.integer_inputs, fill_value, _where)
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
    if torch.jit.is_tracing() or _gradient_rule(op) is None:
        out = path(x, segments, op, acc)  # plain torch ops: traced, or torch's autograd
    elif plain or _forward_ad(x):
        out = _SegmentReduceJvp.apply(x, segments, path, op, acc)
    elif x.requires_grad and torch.is_grad_enabled():
        out = _SegmentReduce.apply(x, segments, path, op, acc)
    else:  # nothing to differentiate: skip the autograd.Function's overhead
        out = path(x, segments, op, acc)
    if finalize is not None:
        out = finalize(out, segments._counts)
    if out.dtype != x.dtype and x.is_floating_point():
        out = out.to(x.dtype)
    if segments.has_empty is not False and not (prim is SUM and fill_value == 0):
        out = out.masked_fill((segments._counts == 0).unsqueeze(-1), fill_value)
    return out
