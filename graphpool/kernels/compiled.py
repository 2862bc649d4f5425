"""Compiled CPU kernels for sorted (CSR) groupings.

``csrc/segment_csr.cpp`` is plain C++ with OpenMP and a C ABI, built and loaded by
:mod:`graphpool._native` (which also checks every buffer handed to C). It reads each input element once, in parallel over sets (or over the rows of a set when
there are fewer sets than threads), accumulating half types in float32.

It is used for floating point ``x`` on the CPU with a ``csr`` grouping, and with an
unsorted index: ``gp_order_*`` gather each set's rows by the index's sorted order (a
counting sort, kept on the Segments), or, for narrow rows and few sets, ``gp_scatter_*``
stream ``x`` once, the threads splitting the features. Both fold each set's rows in row
order, so their results are the same bits and never depend on the thread count. Eager code calls
the kernels through ctypes directly; under ``torch.compile`` they are the operators
``graphpool::csr_reduce``, ``graphpool::csr_broadcast``,
``graphpool::csr_extremum_backward``, ``graphpool::scatter_reduce`` and
``graphpool::scatter_extremum_backward``, whose output shapes are registered, so
``torch.compile(fullgraph=True)`` keeps them (forward and backward) in its graph.
Without a compiler, with ``GRAPHPOOL_COMPILED=0`` or with ``set_backend("native")``,
the native torch paths give the same values and gradients.
"""
from __future__ import annotations

import math
import mmap
from typing import Any, Optional, Tuple

import torch
import torch.autograd.forward_ad as fwAD
from torch import Tensor

from .._native import (_PLAIN, available, check_buffer, check_ptr, dispatch_mode,
                       legacy_batched, library)
from ..errors import GraphpoolError, env_choice
from ..segments import Kind, Segments
from .reductions import MAX, MIN, SUM, Reduction, divide_by_count


# every buffer a kernel fills is on the CPU, whatever torch.set_default_device says
_CPU = torch.device("cpu")
_CSR, _SCATTER = Kind.CSR, Kind.SCATTER  # an Enum member lookup costs a descriptor call
DTYPE_CODES = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}
OP_CODES = {"sum": 0, "max": 1, "min": 2, "mean": 3}
_DIVIDES = (torch.float32, torch.float64)  # the dtypes gp_csr_broadcast_mean takes
# Below this many elements (256 KiB of float32) one thread beats waking the pool.
PARALLEL_THRESHOLD = 1 << 16
# Buffers from this size on are backed by transparent huge pages (see `empty`); glibc's
# malloc serves smaller ones from its heap, where pages are reused instead of faulted.
HUGE_PAGE_BYTES = 32 << 20
_HUGE_PAGES = (hasattr(mmap, "MADV_HUGEPAGE")
               and env_choice("GRAPHPOOL_HUGE_PAGES", ("0", "1"), "1") == "1")


def supports(x: Tensor, seg: Segments) -> bool:
    """Whether this path takes ``x``: CPU floats, leading dims flattenable, and a CSR
    grouping or an unsorted index."""
    kind = seg.kind
    return ((kind is _CSR or kind is _SCATTER and (OPERATORS or not torch.compiler.is_compiling()))
            and x.is_cpu and x.dtype in DTYPE_CODES
            and (x.dim() <= 3 or _as_3d(x) is not None) and available())


def _as_3d(x: Tensor) -> Optional[Tensor]:
    if x.dim() == 3:
        return x
    if x.dim() == 2:
        return x.unsqueeze(0)
    try:
        return x.view(-1, x.size(-2), x.size(-1))
    except RuntimeError:  # leading dims that cannot be merged without a copy
        return None


def _threads(numel: int) -> int:
    return torch.get_num_threads() if numel >= PARALLEL_THRESHOLD else 1


def empty(shape: Tuple[int, ...], dtype: torch.dtype) -> Tensor:
    """``torch.empty``, backed by transparent huge pages from :data:`HUGE_PAGE_BYTES` on.

    A fresh ``N x F`` gradient costs a page fault per 4 KiB page on first write, about as
    much as writing it; 2 MiB pages cut that cost to the kernel zeroing the memory. Such
    buffers come from ``mmap``, as glibc's do at this size, so no reuse is lost. Without
    THP support (or with ``GRAPHPOOL_HUGE_PAGES=0``) this is ``torch.empty``.
    """
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < HUGE_PAGE_BYTES or not _HUGE_PAGES:
        return torch.empty(shape, dtype=dtype, device=_CPU)
    buffer = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        buffer.madvise(mmap.MADV_HUGEPAGE)
    except OSError:  # a kernel built without THP: plain pages, as torch.empty would give
        pass
    return torch.frombuffer(buffer, dtype=dtype).view(shape)  # the tensor owns the mapping


def _check_status(status: int, ptr: Tensor) -> None:
    if status == 2:  # only reachable with validate=False and a malformed grouping
        raise GraphpoolError("segment_reduce", "segments", "a CSR pointer that starts at 0, "
                             "never decreases and ends at the number of rows",
                             f"segments of {ptr.numel() - 1} sets with an out-of-range or "
                             "decreasing ptr",
                             "build the Segments with validate=True to find the bad entry")
    assert status == 0, status


def _x3(op: str, x: Tensor) -> Tensor:
    if type(x) in _PLAIN and x.dim() == 2 and x.is_cpu and x.dtype in DTYPE_CODES \
            and not x.is_neg():
        return x.unsqueeze(0)  # the common case (a wrapped tensor fails data_ptr())
    if not isinstance(x, Tensor) or x.dtype not in DTYPE_CODES:
        check_buffer(op, "x", x, torch.float32)
    check_buffer(op, "x", x, None, contiguous=False, dims=2)
    if x.dim() == 2:
        return x.unsqueeze(0)
    x3 = _as_3d(x)
    if x3 is None:
        raise GraphpoolError(op, "x", "leading dims that merge without a copy",
                             f"strides {x.stride()}", "pass x.contiguous()")
    return x3


def _check_how(op: str, how: Any) -> None:
    if how not in OP_CODES:
        raise GraphpoolError(op, "how", f"one of {tuple(OP_CODES)}", repr(how),
                             "pass a primitive the kernel implements")


def _check_size(op: str, name: str, value: Any) -> int:
    """A count the caller passes beside the buffers (sets, rows): an int >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise GraphpoolError(op, name, "an int >= 0", repr(value),
                             "pass the grouping's size, as the readout functions do")
    return value


def _reduce(x: Tensor, ptr: Tensor, how: str, acc_dtype: torch.dtype) -> Tensor:
    op = "graphpool::csr_reduce"
    x3 = _x3(op, x)
    B = check_ptr(op, ptr)
    _check_how(op, how)
    L, N, F = x3.shape
    sL, sN, sF = x3.stride()
    # the kernel writes its accumulator type for sums (float32 for half types, else the
    # dtype of x) and the dtype of x for max/min: the buffer is always of that type
    kernel_dtype = (torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype) \
        if how in ("sum", "mean") else x.dtype
    out = torch.empty((*x.shape[:-2], B, F), dtype=kernel_dtype, device=_CPU)
    status = library().gp_csr_reduce(DTYPE_CODES[x.dtype], OP_CODES[how], x3.data_ptr(),
                                     L, N, F, sL, sN, sF, ptr.data_ptr(), B,
                                     out.data_ptr(), _threads(L * N * F))
    if status:
        _check_status(status, ptr)
    wanted = acc_dtype if how in ("sum", "mean") else x.dtype
    return out if out.dtype == wanted else out.to(wanted)


def _check_index_status(status: int) -> None:
    if status == 2:  # only reachable with a grouping built from unchecked values
        raise GraphpoolError("segment_reduce", "segments", "set ids in [0, num_segments)",
                             "an index with ids out of range (they were skipped)",
                             "build the Segments with validate=True to find the bad id")
    assert status == 0, status


def _scatter(x: Tensor, index: Tensor, num_segments: int, how: str,
             acc_dtype: torch.dtype) -> Tensor:
    """:func:`_reduce` for an unsorted ``index`` (``[N]`` int64 set ids)."""
    op = "graphpool scatter_reduce"
    x3 = _x3(op, x)
    L, N, F = x3.shape
    check_buffer(op, "index", index, torch.int64, N)
    _check_how(op, how)
    num_segments = _check_size(op, "num_segments", num_segments)
    kernel_dtype = (torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype) \
        if how in ("sum", "mean") else x.dtype
    out = torch.empty((*x.shape[:-2], num_segments, F), dtype=kernel_dtype,
                      device=_CPU)
    status = library().gp_scatter_reduce(DTYPE_CODES[x.dtype], OP_CODES[how], x3.data_ptr(),
                                         L, N, F, *x3.stride(), index.data_ptr(),
                                         num_segments, out.data_ptr(), _threads(L * N * F))
    _check_index_status(status)
    wanted = acc_dtype if how in ("sum", "mean") else x.dtype
    return out if out.dtype == wanted else out.to(wanted)


def _order_reduce(x: Tensor, ptr: Tensor, perm: Tensor, how: str,
                  acc_dtype: torch.dtype) -> Tensor:
    """:func:`_scatter` by the sorted order of the index (:func:`Segments._order`): each
    set's rows gathered in row order, so the same values bit for bit."""
    op = "graphpool order_reduce"
    x3 = _x3(op, x)
    L, N, F = x3.shape
    B = check_ptr(op, ptr)
    _check_how(op, how)
    check_buffer(op, "perm", perm, torch.int64, N)
    kernel_dtype = (torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype) \
        if how in ("sum", "mean") else x.dtype
    out = torch.empty((*x.shape[:-2], B, F), dtype=kernel_dtype, device=_CPU)
    status = library().gp_order_reduce(DTYPE_CODES[x.dtype], OP_CODES[how], x3.data_ptr(),
                                       L, N, F, *x3.stride(), ptr.data_ptr(), perm.data_ptr(),
                                       B, out.data_ptr(), _threads(L * N * F))
    _check_index_status(status)
    wanted = acc_dtype if how in ("sum", "mean") else x.dtype
    return out if out.dtype == wanted else out.to(wanted)


def _index_broadcast(values: Tensor, index: Tensor) -> Tensor:
    """``values.index_select(-2, index)`` (``values`` ``[*, B, F]``) into a buffer of
    :func:`empty`, written once in parallel."""
    op = "graphpool index_broadcast"
    check_buffer(op, "values", values, None, contiguous=False, dims=2)
    check_buffer(op, "index", index, torch.int64)
    values = values.contiguous()
    lead, (B, F), N = values.shape[:-2], values.shape[-2:], index.numel()
    if math.prod(lead) * N * F == 0 or values.element_size() not in (2, 4, 8):
        return values.index_select(-2, index)
    out = empty((*lead, N, F), values.dtype)
    status = library().gp_index_broadcast(values.element_size(), values.data_ptr(),
                                          math.prod(lead), N, F, index.data_ptr(), B,
                                          out.data_ptr(), _threads(out.numel()))
    _check_index_status(status)
    return out


def _extremum_inputs(op: str, x: Tensor, out: Tensor, grad_out: Tensor,
                     numel: int) -> Tuple[Tensor, Tensor]:
    """The forward's output and its gradient as contiguous buffers of the dtype of ``x``
    and ``numel`` elements, checked for the max/min backward kernels."""
    y = out.to(x.dtype).contiguous()
    grad = grad_out.to(x.dtype).contiguous()
    check_buffer(op, "out", y, x.dtype, numel)
    check_buffer(op, "grad_out", grad, x.dtype, numel)
    return y, grad


def _scatter_extremum_backward(x: Tensor, index: Tensor, out: Tensor,
                               grad_out: Tensor) -> Tensor:
    op = "graphpool scatter_extremum_backward"
    x3 = _x3(op, x)
    L, N, F = x3.shape
    check_buffer(op, "out", out, None, contiguous=False, dims=2)
    B = out.size(-2)
    check_buffer(op, "index", index, torch.int64, N)
    y, grad = _extremum_inputs(op, x, out, grad_out, L * B * F)
    grad_x = empty(tuple(x3.shape), x.dtype)
    status = library().gp_scatter_extremum_backward(
        DTYPE_CODES[x.dtype], x3.data_ptr(), L, N, F, *x3.stride(), index.data_ptr(), B,
        y.data_ptr(), grad.data_ptr(), grad_x.data_ptr(), _threads(x3.numel()))
    _check_index_status(status)
    return grad_x.view(x.shape)


def _order_extremum_backward(x: Tensor, ptr: Tensor, perm: Tensor, out: Tensor,
                             grad_out: Tensor) -> Tensor:
    """:func:`_scatter_extremum_backward` by the sorted order: the same bits."""
    op = "graphpool order_extremum_backward"
    x3 = _x3(op, x)
    L, N, F = x3.shape
    B = check_ptr(op, ptr)
    check_buffer(op, "perm", perm, torch.int64, N)
    y, grad = _extremum_inputs(op, x, out, grad_out, L * B * F)
    grad_x = empty(tuple(x3.shape), x.dtype)
    status = library().gp_order_extremum_backward(
        DTYPE_CODES[x.dtype], x3.data_ptr(), L, N, F, *x3.stride(), ptr.data_ptr(),
        perm.data_ptr(), B, y.data_ptr(), grad.data_ptr(), grad_x.data_ptr(),
        _threads(x3.numel()))
    _check_index_status(status)
    return grad_x.view(x.shape)


def _moments_input(op: str, x: Tensor, ptr: Tensor) -> Tuple[Tensor, int]:
    """``x`` as ``[L, N, F]`` and the number of sets, checked for the moments kernels."""
    x3 = _x3(op, x)  # a tensor of a kernel dtype, leading dims merged
    if x.dtype not in (torch.float32, torch.float64):
        raise GraphpoolError(op, "x", "float32 or float64", str(x.dtype), "pass x.float()")
    return x3, check_ptr(op, ptr)


def moments(x: Tensor, ptr: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per set and feature of a CSR grouping, for a float32/float64 ``x``: the mean ``c``
    (the bits of :func:`_reduce`'s), ``s1 = sum(x - c)``, ``s2 = sum((x - c) ** 2)`` (the
    bits of those sums by :func:`_reduce`) and ``same`` (bool: every row equals the set's
    first), each ``[*, B, F]``."""
    x3, B = _moments_input("graphpool csr_moments", x, ptr)
    L, N, F = x3.shape
    shape = (*x.shape[:-2], B, F)
    centre, s1, s2 = (torch.empty(shape, dtype=x.dtype, device=_CPU) for _ in range(3))
    same = torch.empty(shape, dtype=torch.bool, device=_CPU)
    status = library().gp_csr_moments(
        DTYPE_CODES[x.dtype], x3.data_ptr(), L, N, F, *x3.stride(), ptr.data_ptr(), B,
        centre.data_ptr(), s1.data_ptr(), s2.data_ptr(), same.data_ptr(),
        _threads(x3.numel()))
    _check_status(status, ptr)
    return centre, s1, s2, same


def moments_backward(x: Tensor, ptr: Tensor, centre: Tensor, g1: Tensor,
                     g2: Tensor) -> Tensor:
    """``grad_x = g1 + 2 (x - c) g2`` per set (the adjoint of :func:`moments`), in one pass."""
    op = "graphpool csr_moments_backward"
    x3, B = _moments_input(op, x, ptr)
    L, N, F = x3.shape
    buffers = [t.to(x.dtype).contiguous() for t in (centre, g1, g2)]
    for name, t in zip(("centre", "g1", "g2"), buffers):
        check_buffer(op, name, t, x.dtype, L * B * F)
    grad_x = empty(tuple(x3.shape), x.dtype)
    status = library().gp_csr_moments_backward(
        DTYPE_CODES[x.dtype], x3.data_ptr(), L, N, F, *x3.stride(), ptr.data_ptr(), B,
        *(t.data_ptr() for t in buffers), grad_x.data_ptr(), _threads(x3.numel()))
    _check_status(status, ptr)
    return grad_x.view(x.shape)


def power_mean(x: Tensor, ptr: Tensor, p: int) -> Tuple[Tensor, Tensor]:
    """``(inner, scale)``, each ``[*, B, F]``, of the power mean with ``p`` in 1, 2, 3 over a
    CSR grouping of a float32/float64 ``x``: the bits of the composite's (see
    :mod:`graphpool.kernels.powermean`)."""
    op = "graphpool csr_power_mean"
    x3, B = _moments_input(op, x, ptr)
    L, N, F = x3.shape
    inner, scale = (torch.empty((*x.shape[:-2], B, F), dtype=x.dtype, device=_CPU)
                    for _ in range(2))
    status = library().gp_csr_power_mean(
        DTYPE_CODES[x.dtype], _power(op, p), x3.data_ptr(), L, N, F, *x3.stride(),
        ptr.data_ptr(), B, inner.data_ptr(), scale.data_ptr(), _threads(x3.numel()))
    _check_status(status, ptr)
    return inner, scale


def power_mean_backward(x: Tensor, ptr: Tensor, scale: Tensor, g: Tensor, p: int) -> Tensor:
    """``grad_x`` of :func:`power_mean`'s ``inner`` for ``g``, its output gradient divided
    by the counts, in one pass."""
    op = "graphpool csr_power_mean_backward"
    x3, B = _moments_input(op, x, ptr)
    L, N, F = x3.shape
    buffers = [t.to(x.dtype).contiguous() for t in (scale, g)]
    for name, t in zip(("scale", "g"), buffers):
        check_buffer(op, name, t, x.dtype, L * B * F)
    grad_x = empty(tuple(x3.shape), x.dtype)
    status = library().gp_csr_power_mean_backward(
        DTYPE_CODES[x.dtype], _power(op, p), x3.data_ptr(), L, N, F, *x3.stride(),
        ptr.data_ptr(), B, *(t.data_ptr() for t in buffers), grad_x.data_ptr(),
        _threads(x3.numel()))
    _check_status(status, ptr)
    return grad_x.view(x.shape)


def _power(op: str, p: Any) -> int:
    if type(p) not in (int, float) or p not in (1, 2, 3):
        raise GraphpoolError(op, "p", "1, 2 or 3", repr(p), "use the composite for other powers")
    return int(p)


def runs(x: Tensor, seg: Segments) -> bool:
    """Whether ``x`` is ``[L, S, F]`` of one uniform set whose ``S`` rows are contiguous
    for every feature: the node view of a channels-first map (``fmap.flatten(2)
    .transpose(1, 2)``), a view of ``L * F`` contiguous runs of ``S`` pixels."""
    return (seg.kind == Kind.UNIFORM and seg.num_segments == 1 and type(x) in _PLAIN
            and x.dim() == 3 and x.is_cpu and x.dtype in DTYPE_CODES and x.size(-2) > 0
            and x.stride(-2) == 1 and x.stride(-1) == x.size(-2)
            and x.stride(0) == x.size(-2) * x.size(-1) and available())


def run_extremum_backward(x: Tensor, out: Tensor, grad_out: Tensor) -> Tensor:
    """``grad_x`` of max/min over the runs of :func:`runs` (even tie split), strided as
    ``x``: per run one pass counts the ties and one writes the shares."""
    op = "graphpool run_extremum_backward"
    L, S, F = x.shape
    runs_x = x.transpose(-1, -2)  # [L, F, S]: contiguous
    check_buffer(op, "x", runs_x, x.dtype, L * F * S)
    y, grad = _extremum_inputs(op, x, out, grad_out, L * F)
    grad_x = empty((L, F, S), x.dtype)
    status = library().gp_run_extremum_backward(DTYPE_CODES[x.dtype], runs_x.data_ptr(),
                                                L * F, S, y.data_ptr(), grad.data_ptr(),
                                                grad_x.data_ptr(), _threads(x.numel()))
    assert status == 0, status
    return grad_x.transpose(-1, -2)


def _extremum_backward(x: Tensor, ptr: Tensor, out: Tensor, grad_out: Tensor) -> Tensor:
    op = "graphpool::csr_extremum_backward"
    x3 = _x3(op, x)
    B = check_ptr(op, ptr)
    L, N, F = x3.shape
    y, grad = _extremum_inputs(op, x, out, grad_out, L * B * F)
    grad_x = empty(tuple(x3.shape), x.dtype)
    check_buffer(op, "grad_x", grad_x, x.dtype, L * N * F)
    status = library().gp_csr_extremum_backward(
        DTYPE_CODES[x.dtype], x3.data_ptr(), L, N, F, x3.stride(0), x3.stride(1),
        x3.stride(2), ptr.data_ptr(), B, y.data_ptr(), grad.data_ptr(), grad_x.data_ptr(),
        _threads(x3.numel()))
    _check_status(status, ptr)
    return grad_x.view(x.shape)


def _broadcast(values: Tensor, ptr: Tensor, num_nodes: int) -> Tensor:
    return _broadcast_to(values, ptr, num_nodes, True)


def _broadcast_to(values: Tensor, ptr: Tensor, num_nodes: int, huge: bool,
                  mean: bool = False) -> Tensor:
    """The broadcast kernel; ``huge``: a large output in huge pages (see :func:`empty`:
    right for a gradient, which outlives the call; a temporary of a composite's forward
    is freed at once, and fresh huge pages for it each call can stall: see
    docs/performance.md on what a fresh huge page costs on a VM). ``mean``: each set's
    row divided by the set's row count on the way (float32/float64), the bits of
    :func:`~graphpool.kernels.reductions.divide_by_count` then a broadcast."""
    op = "graphpool::csr_broadcast"
    check_buffer(op, "values", values, None, contiguous=False, dims=2)
    if mean and values.dtype not in _DIVIDES:
        raise GraphpoolError(op, "values", "float32 or float64", str(values.dtype),
                             "divide with divide_by_count, then broadcast")
    if values.element_size() not in (2, 4, 8):
        raise GraphpoolError(op, "values", "elements of 2, 4 or 8 bytes", str(values.dtype),
                             "cast the values to a float type")
    B = check_ptr(op, ptr)
    num_nodes = _check_size(op, "num_nodes", num_nodes)
    values = values.contiguous()
    lead, feats = values.shape[:-2], values.size(-1)
    if values.size(-2) != B:
        raise GraphpoolError(op, "values", f"{B} rows on dim -2 (one per set)",
                             f"shape {tuple(values.shape)}", "pass one row per set")
    shape = (*lead, num_nodes, feats)
    out = empty(shape, values.dtype) if huge else torch.empty(shape, dtype=values.dtype,
                                                                     device=_CPU)
    if out.numel() == 0:
        return out
    check_buffer(op, "out", out, values.dtype, math.prod(lead) * num_nodes * feats)
    kernel, code = ((library().gp_csr_broadcast_mean, DTYPE_CODES[values.dtype]) if mean
                    else (library().gp_csr_broadcast, values.element_size()))
    status = kernel(code, values.data_ptr(), math.prod(lead), num_nodes, feats,
                    ptr.data_ptr(), B, out.data_ptr(), _threads(out.numel()))
    _check_status(status, ptr)
    return out


# The same kernels as torch operators, for torch.compile: dynamo cannot trace a ctypes
# call, but it can place an opaque operator whose output shape it is told (the "fake").
# Eager code calls the functions above directly and skips the operator dispatch.
OPERATORS = hasattr(torch.library, "custom_op")  # torch >= 2.4
if OPERATORS:
    _reduce_op = torch.library.custom_op("graphpool::csr_reduce", mutates_args=())(_reduce)
    _extremum_backward_op = torch.library.custom_op(
        "graphpool::csr_extremum_backward", mutates_args=())(_extremum_backward)
    _broadcast_op = torch.library.custom_op("graphpool::csr_broadcast",
                                            mutates_args=())(_broadcast)

    @_reduce_op.register_fake
    def _(x, ptr, how, acc_dtype):
        dtype = acc_dtype if how in ("sum", "mean") else x.dtype
        return x.new_empty((*x.shape[:-2], ptr.size(0) - 1, x.size(-1)), dtype=dtype)

    @_extremum_backward_op.register_fake
    def _(x, ptr, out, grad_out):
        return torch.empty_like(x, memory_format=torch.contiguous_format)

    @_broadcast_op.register_fake
    def _(values, ptr, num_nodes):
        return values.new_empty((*values.shape[:-2], num_nodes, values.size(-1)))

    @torch.library.custom_op("graphpool::scatter_reduce", mutates_args=())
    def _scatter_op(x: Tensor, index: Tensor, num_segments: int, how: str,
                    acc_dtype: torch.dtype) -> Tensor:
        return _scatter(x, index, num_segments, how, acc_dtype)

    @torch.library.custom_op("graphpool::scatter_extremum_backward", mutates_args=())
    def _scatter_extremum_backward_op(x: Tensor, index: Tensor, out: Tensor,
                                      grad_out: Tensor) -> Tensor:
        return _scatter_extremum_backward(x, index, out, grad_out)

    @_scatter_op.register_fake
    def _(x, index, num_segments, how, acc_dtype):
        dtype = acc_dtype if how in ("sum", "mean") else x.dtype
        return x.new_empty((*x.shape[:-2], num_segments, x.size(-1)), dtype=dtype)

    @_scatter_extremum_backward_op.register_fake
    def _(x, index, out, grad_out):
        return torch.empty_like(x, memory_format=torch.contiguous_format)


#: An unsorted index is reduced by its sorted order (built once per grouping, O(N + B))
#: from this many features per row on: gathering rows of that width beats updating a
#: random output row per input row; narrower rows stream.
ORDER_MIN_WIDTH = 8


def _by_order(x: Tensor, seg: Segments) -> bool:
    """Whether :func:`combine` reduces an unsorted index by its sorted order: wide enough
    rows, and enough sets to keep the threads busy (parallel over sets; the streaming
    kernel splits the features instead)."""
    width = x.size(-1) if seg.num_nodes else 0
    threads = _threads(x.numel())
    return width >= ORDER_MIN_WIDTH and (threads == 1 or seg.num_segments >= 8 * threads)


def _tracing() -> bool:
    return OPERATORS and torch.compiler.is_compiling()


def combine(x: Tensor, seg: Segments, op: Any, acc_dtype: torch.dtype) -> Tensor:
    """Sum, max or min (a primitive) or the fused mean (a reduction) of every set; sums and
    means in ``acc_dtype``."""
    name = getattr(op, "name", None)
    if not (combine.accepts(op) or isinstance(op, Reduction) and name in combine.fused):
        raise GraphpoolError("segment_reduce", "reduce", "sum, max, min or mean on the "
                             "compiled path", repr(op), "use the native backend")
    if seg.kind == Kind.SCATTER:
        if _tracing():
            return _scatter_op(x, seg._index, seg.num_segments, name, acc_dtype)
        if _by_order(x, seg):
            order = seg._order
            if order is None:
                _check_index_status(2)
            ptr, perm = order
            return _order_reduce(x, ptr, perm, name, acc_dtype)
        return _scatter(x, seg._index, seg.num_segments, name, acc_dtype)
    if _tracing():
        return _reduce_op(x, seg._ptr, name, acc_dtype)
    return _reduce(x, seg._ptr, name, acc_dtype)


combine.accepts = lambda op: op in (SUM, MAX, MIN)
combine.fused = frozenset({"mean"})  # segment_reduce skips the finalize of these ops


def extremum_backward(x: Tensor, seg: Segments, out: Tensor, grad_out: Tensor) -> Tensor:
    """``grad_x`` of max/min with the even tie split, in one pass over ``x``."""
    if seg.kind == Kind.SCATTER:
        if _tracing():
            return _scatter_extremum_backward_op(x, seg._index, out, grad_out)
        if _by_order(x, seg):
            order = seg._order
            if order is None:
                _check_index_status(2)
            ptr, perm = order
            return _order_extremum_backward(x, ptr, perm, out, grad_out)
        return _scatter_extremum_backward(x, seg._index, out, grad_out)
    if _tracing():
        return _extremum_backward_op(x, seg._ptr, out, grad_out)
    return _extremum_backward(x, seg._ptr, out, grad_out)


def copies(values: Tensor) -> bool:
    """Whether :func:`broadcast` may copy ``values`` eagerly: a plain CPU tensor of 2, 4
    or 8-byte elements, without a lazy conjugate or negation bit (a byte copy would drop
    it) or a forward-mode tangent, outside every tracer, ``torch.func`` transform and
    dispatch mode (which must see torch's own ops). Reverse-mode gradients are the
    caller's business."""
    return (not torch.compiler.is_compiling() and type(values) in _PLAIN and values.is_cpu
            and values.dim() >= 2 and values.element_size() in (2, 4, 8)
            and not values.is_conj() and not values.is_neg()
            and not legacy_batched(values)
            and torch._C._get_tracing_state() is None
            and not torch._C._are_functorch_transforms_active()
            and not dispatch_mode() and available()
            and (fwAD._current_level < 0 or fwAD.unpack_dual(values).tangent is None))


def broadcast(values: Tensor, seg: Segments, huge: bool = True) -> Tensor:
    """``segment_broadcast(values, seg)`` for a CSR grouping, written once, in parallel
    (for an unsorted index: torch's gather, ``values.index_select(-2, index)``); ``huge``
    as in :func:`_broadcast_to`."""
    if seg.kind == Kind.SCATTER:
        if _tracing():
            return values.index_select(-2, seg._index)
        return _index_broadcast(values, seg._index)
    if _tracing():
        return _broadcast_op(values, seg._ptr, seg.num_nodes)
    return _broadcast_to(values, seg._ptr, seg.num_nodes, huge)


def broadcast_mean(values: Tensor, seg: Segments) -> Tensor:
    """:func:`broadcast` of ``divide_by_count(values, counts)`` (the adjoint of a mean),
    the division fused into the copy for a CSR grouping (one op instead of four, and no
    ``[*, B, F]`` temporary; half types are divided by torch, which rounds the count
    to their type)."""
    if seg.kind == Kind.SCATTER or values.dtype not in _DIVIDES or _tracing():
        return broadcast(divide_by_count(values, seg._counts), seg)
    return _broadcast_to(values, seg._ptr, seg.num_nodes, True, mean=True)
