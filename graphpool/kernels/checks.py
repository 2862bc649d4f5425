"""The argument checks of :func:`~graphpool.segment_reduce` (``x``, the grouping,
``fill_value``), shared by every readout that reaches it."""
from __future__ import annotations

import math
from numbers import Integral, Number, Real
from typing import Any

import torch
from torch import Tensor

from ..errors import GraphpoolError, describe, refuse_fx
from ..segments import Kind, Segments, check_nodes_tensor, probe_output
from .reductions import HALF

__all__ = ["check_input", "check_fill_value", "DTYPES"]

DTYPES = (*HALF, torch.float32, torch.float64, torch.int8, torch.int16, torch.int32,
          torch.int64, torch.uint8)


def check_input(x: Tensor, seg: Segments, reduce_name: str, integer_ok: bool,
                 fill_value: Number, where: str) -> Number:
    """Check the arguments of :func:`segment_reduce`; returns ``fill_value`` as a number of
    the kind ``x`` holds."""
    if type(x) is not Tensor and type(x) is not torch.nn.Parameter:
        refuse_fx(where, x)
        if not isinstance(x, Tensor):
            raise GraphpoolError(where, "x", "a torch.Tensor [*, N, F]", describe(x),
                                 "pass node features as a tensor")
    if x.is_nested or x.layout != torch.strided or x.is_meta:
        check_nodes_tensor(where, x)
    if type(seg) is not Segments:
        raise GraphpoolError(where, "segments", "a graphpool.Segments", describe(seg),
                             "build one with Segments.from_index(batch) or similar")
    if torch._C._get_tracing_state() is not None:
        _check_jit_trace(where, seg)
    if x.dtype not in DTYPES:  # quantized dtypes included
        kind = "a quantized" if x.is_quantized else "a"
        raise GraphpoolError(where, "x", "a floating point or integer tensor (float16, "
                             "bfloat16, float32, float64, int8/16/32/64, uint8)",
                             f"{kind} {describe(x)[2:]}",
                             "convert it, e.g. x.float() (or x.dequantize(), "
                             "x.to_padded_tensor(0) with a mask grouping)")
    if seg.kind == Kind.MASK:
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
    fill_value = check_fill_value(where, fill_value, x.dtype)
    probe_output(where, "segments", x, seg.num_segments)
    if seg.kind == Kind.CSR and not seg.checked:  # validate=False: still no read out of bounds
        seg._checked_ptr(where)
    return fill_value


def _check_jit_trace(where: str, seg: Segments) -> None:
    if torch.onnx.is_in_onnx_export():  # the legacy exporter runs torch.jit.trace
        raise GraphpoolError(where, "x", "a trace of the dynamo-based exporter",
                             "torch.onnx.export(..., dynamo=False), whose TorchScript "
                             "translation of scatter reductions is not checked by graphpool",
                             "export with torch.onnx.export(..., dynamo=True) (the default) "
                             "or torch.export.export")
    if seg.kind == Kind.UNIFORM and seg.num_segments != 1:
        raise GraphpoolError(where, "segments", "under torch.jit.trace, one uniform set per "
                             "leading index (the trace would fix the rows per set)",
                             repr(seg), "use torch.export or torch.compile, which keep sizes "
                             "symbolic")


def check_fill_value(where: str, fill_value: Any, dtype: torch.dtype) -> Number:
    """``fill_value`` as a Python number that ``dtype`` represents: never rounded to
    ``inf`` or wrapped."""
    if (fill_value == 0 and type(fill_value) in (float, int)) or (
            type(fill_value) is float and dtype.is_floating_point and dtype.itemsize >= 4
            and not abs(fill_value) < math.inf):
        return fill_value if dtype.is_floating_point else 0  # 0, +-inf, nan: the fast path
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
