"""The one autograd function behind every path: a shared backward (broadcast for sums
and means, the even tie split for max/min), a forward-mode rule and a generated vmap
rule; and when PyTorch's machinery needs plain torch ops instead of the ctypes kernels."""
from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

import torch
import torch.autograd.forward_ad as fwAD
from torch import Tensor

from .._native import dispatch_mode, legacy_batched
from ..segments import Segments
from . import compiled
from .broadcast import segment_broadcast
from .reductions import HALF as _HALF, SUM, Reduction, divide_by_count

__all__ = ["SegmentReduce", "SegmentReduceJvp", "plain_torch", "forward_ad", "gradient_rule",
           "jit_tracing", "one_pass_backward"]

Path = Callable[[Tensor, Segments, Any, torch.dtype], Tensor]


_PLAIN = (Tensor, torch.nn.Parameter)


def jit_tracing() -> bool:
    """Whether ``torch.jit.trace`` is running (the C check behind ``torch.jit.is_tracing``)."""
    return torch._C._get_tracing_state() is not None


def plain_torch(x: Tensor) -> bool:
    """Whether ``x`` must be reduced with plain torch ops that PyTorch's machinery sees:
    under ``torch.jit.trace``, ``torch.func`` transforms, a ``TorchDispatchMode``
    (``make_fx``, FlopCounterMode, ...) or for a tensor subclass. The ctypes kernels and
    torch_scatter are invisible to these, so they are never used there."""
    if torch.compiler.is_compiling():  # dynamo sees the operators; FakeTensors need no care
        return False
    return (type(x) not in _PLAIN or torch._C._get_tracing_state() is not None
            or torch._C._are_functorch_transforms_active() or dispatch_mode())


def one_pass_backward(grad: Tensor) -> bool:
    """Whether a backward may hand ``grad`` to a one-pass C kernel: no graph of the backward
    is recorded (``create_graph``), and ``grad`` is not batched by ``is_grads_batched``
    (``torch.autograd.functional.jacobian(..., vectorize=True)``), whose vmap batches
    torch ops only (its tensors have no storage to read)."""
    return not torch.is_grad_enabled() and (torch.compiler.is_compiling()  # (no vmap there)
                                            or not legacy_batched(grad))


def forward_ad(x: Tensor) -> bool:
    """Whether ``x`` carries a tangent of ``torch.autograd.forward_ad`` (outside compile)."""
    return (fwAD._current_level >= 0 and not torch.compiler.is_compiling()
            and fwAD.unpack_dual(x).tangent is not None)


class SegmentReduce(torch.autograd.Function):
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

    @staticmethod
    def forward(ctx, x: Tensor, seg: Segments, path: Path, op: Any,
                acc_dtype: torch.dtype) -> Tensor:
        # the classic form: a Function with setup_context pays for inspect.signature on
        # every apply (about 40 us), which the eager hot path cannot afford
        out = path(x, seg, op, acc_dtype)
        _save(ctx, x, seg, path, op, acc_dtype, out)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        seg: Segments = ctx.seg
        rule = ctx.rule
        # mean (fused by the path): the adjoint of sum, scaled per set; in the type of the
        # output gradient, so a wider one is divided before the cast
        if rule == "mean" and grad_out.dtype != ctx.x_dtype:
            grad_out, rule = divide_by_count(grad_out, seg._counts), "broadcast"
        if rule != "extremum":  # a broadcast copies: cast the [*, B, F] side first
            grad_out = grad_out.to(ctx.x_dtype)
        if not torch.compiler.is_compiling() and grad_out.is_neg():  # the C kernels read bytes
            grad_out = grad_out.resolve_neg()
        one_pass = one_pass_backward(grad_out)
        if (rule == "extremum" and one_pass and ctx.runs
                and ctx.path is not compiled.combine):  # a channels-first map's max
            x, out = ctx.saved_tensors
            return compiled.run_extremum_backward(x, out, grad_out), None, None, None, None
        if ctx.path is compiled.combine and one_pass:  # one-pass kernels
            if rule == "mean":  # the division fused into the copy
                return compiled.broadcast_mean(grad_out, seg), None, None, None, None
            if rule != "extremum":
                return compiled.broadcast(grad_out, seg), None, None, None, None
            x, out = ctx.saved_tensors
            return compiled.extremum_backward(x, seg, out, grad_out), None, None, None, None
        if rule == "mean":
            grad_out = divide_by_count(grad_out, seg._counts)
        if rule != "extremum":
            hit = seg._m.unsqueeze(-1) if seg._m is not None else None
            share = segment_broadcast(grad_out, seg)
        else:
            x, out = ctx.saved_tensors
            hit, ties = _ties(ctx.path, x, out, seg)
            # the share in the exact type of the counts, rounded once to the dtype of x
            share = segment_broadcast((grad_out.to(ties.dtype) / ties).to(ctx.x_dtype), seg)
        grad_x = share if hit is None else torch.where(hit, share, 0)
        return grad_x.to(ctx.x_dtype), None, None, None, None


def _save(ctx, x: Tensor, seg: Segments, path: Path, op: Any, acc_dtype: torch.dtype,
          out: Tensor, forward: bool = False) -> None:
    ctx.seg, ctx.path, ctx.op, ctx.x_dtype, ctx.acc_dtype = seg, path, op, x.dtype, acc_dtype
    ctx.rule = gradient_rule(op)
    ctx.runs = False
    if ctx.rule == "extremum":
        ctx.runs = compiled.runs(x, seg) and not torch.compiler.is_compiling()
        ctx.save_for_backward(x, out)
        if forward:
            ctx.save_for_forward(x, out)


class SegmentReduceJvp(torch.autograd.Function):
    """:class:`SegmentReduce` for ``torch.func`` transforms and forward-mode AD: the same
    forward and backward, a generated vmap rule and a ``jvp`` (dynamo cannot trace a custom
    ``jvp``, and ``setup_context`` costs an ``inspect.signature`` per call, so the eager
    and compiled class has neither). The tangent of max/min is the even split of the
    backward: the mean of the tangents of the rows that attain the extremum."""

    generate_vmap_rule = True  # torch.func.vmap runs forward/backward on batched tensors

    @staticmethod
    def forward(x: Tensor, seg: Segments, path: Path, op: Any,
                acc_dtype: torch.dtype) -> Tensor:
        return path(x, seg, op, acc_dtype)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        _save(ctx, *inputs, output, forward=True)

    backward = SegmentReduce.backward

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
    hit = x == segment_broadcast(out, seg)
    if seg._m is not None:
        hit = hit & seg._m.unsqueeze(-1)
    dtype = torch.float32 if x.dtype in _HALF or not x.is_floating_point() else x.dtype
    return hit, path(hit.to(dtype), seg, SUM, dtype)


def gradient_rule(op: Any) -> Optional[str]:
    """``"broadcast"``, ``"mean"`` (a fused mean), ``"extremum"`` or ``None`` (autograd)."""
    if isinstance(op, Reduction):  # fused by the path: only the mean is
        return "mean" if op.name == "mean" and op.primitive is SUM else None
    return op.gradient
