r"""The power mean's ``N x F`` work in one compiled pass per set, for ``p`` = 1, 2, 3.

:func:`graphpool.composite.segment_power_mean` computes, per set :math:`b` and feature,
the scale :math:`s_b = \max_{v} |x_v|` (1 where that is 0, ``inf`` or ``nan``), then

.. math::
    m_b = \frac{1}{n_b} \sum_{v \in \mathcal{V}_b} f\Big(\frac{x_v}{s_b}\Big), \qquad
    f(u) = \operatorname{sign}(u)\,|u|^p ,

and the readout :math:`f^{-1}(m_b)\, s_b` from these ``[*, B, F]`` values. Composed from
torch ops, the first two take eight passes over ``N x F`` (the maximum, the minimum, a
broadcast of the scale, a division, the power's three ops, the mean); the compiled kernel
reads each set twice (the second time from the cache) and writes ``m`` and ``s``. For
``p`` in 1, 2, 3 the power is exact arithmetic (``u``, ``u |u|``, ``u u u``: what ATen's
``pow`` computes for 2 and 3), so the kernel gives the composite's bits. Its backward is
one pass as well, :math:`\partial m_b / \partial x_v = f'(x_v / s_b) / (n_b s_b)` (the scale
has no gradient). It applies to sorted (CSR) groupings of float32/float64 CPU tensors in
eager code (:func:`fused` says when); other powers, groupings and tracers, and a backward
whose own graph is recorded (double backward), use torch ops.
"""
from __future__ import annotations

from typing import Any, Tuple, Union

import torch
from torch import Tensor

from ..segments import Segments
from . import compiled
from .autograd import one_pass_backward
from .broadcast import segment_broadcast
from .moments import fused as _fused_csr
from .reductions import divide_by_count

__all__ = ["fused", "power_mean_core", "slope"]


def fused(x: Tensor, seg: Segments, p: Any) -> bool:
    """Whether :func:`power_mean_core` runs the compiled kernel for ``x`` and ``p``."""
    return type(p) in (int, float) and p in (1, 2, 3) and _fused_csr(x, seg)


def slope(v: Tensor, e: Union[float, Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
    """``(f'(v), zero, safe)`` of :math:`f(v) = \\operatorname{sign}(v)|v|^e`: the slope
    :math:`e|v|^{e-1}`, and where :math:`|v| > 0` fails (zeros and ``nan``) the slope of
    ``v * (e == 1)`` (0, or 1 for ``e = 1``); ``zero`` marks those rows, ``safe`` is ``|v|``
    with 1 there (no ``0 ** (e - 1) = inf`` where the slope is unused)."""
    mag = v.abs()
    zero = ~(mag > 0)
    safe = mag.masked_fill(zero, 1)
    at_zero = (e == 1) if not isinstance(e, Tensor) else (e == 1).to(v.dtype)
    return torch.where(zero, at_zero, e * safe.pow(e - 1)), zero, safe


class _PowerMeanCore(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, seg: Segments, p: int) -> Tuple[Tensor, Tensor]:
        inner, scale = compiled.power_mean(x, seg._ptr, p)
        ctx.seg, ctx.p = seg, p
        ctx.mark_non_differentiable(scale)
        ctx.save_for_backward(x, scale)
        return inner, scale

    @staticmethod
    def backward(ctx, grad: Tensor, _):
        x, scale = ctx.saved_tensors
        seg: Segments = ctx.seg
        g = divide_by_count(grad, seg._counts).to(x.dtype)  # the mean's adjoint, per set
        if not one_pass_backward(g):  # create_graph: differentiable ops (double backward)
            spread = segment_broadcast(scale, seg)
            return segment_broadcast(g, seg) * slope(x / spread, ctx.p)[0] / spread, None, None
        return compiled.power_mean_backward(x, seg._ptr, scale, g, ctx.p), None, None


def power_mean_core(x: Tensor, seg: Segments, p: int) -> Tuple[Tensor, Tensor]:
    """``(m, s)`` of the module docs, each ``[*, B, F]`` (only where :func:`fused` holds).

    Example:
        >>> import torch
        >>> from graphpool import Segments
        >>> seg = Segments.from_ptr(torch.tensor([0, 2, 3]))
        >>> m, s = power_mean_core(torch.tensor([[1.], [-2.], [0.]]), seg, 2)
        >>> m.flatten().tolist(), s.flatten().tolist()
        ([-0.375, 0.0], [2.0, 1.0])
    """
    if x.requires_grad and torch.is_grad_enabled():
        return _PowerMeanCore.apply(x, seg, p)
    return compiled.power_mean(x, seg._ptr, p)
