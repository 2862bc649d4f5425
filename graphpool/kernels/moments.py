r"""The variance of every set in one pass: the fused core of the variance readouts.

With :math:`c_b` the set's mean (used without gradient: any centre gives the variance,
the mean keeps it accurate),

.. math::
    s_{1,b} = \sum_{v \in \mathcal{V}_b} (x_v - c_b), \qquad
    s_{2,b} = \sum_{v \in \mathcal{V}_b} (x_v - c_b)^2, \qquad
    \mathrm{var}_b = \frac{s_{2,b} - s_{1,b}^2 / n_b}{n_b - \mathrm{correction}}

feature by feature (:func:`finish_variance`: never negative, exactly 0 on sets of one
value, ``nan`` where :math:`n_b \le` ``correction``). The compiled kernel reads each set's
rows for the mean and then, from the cache, for :math:`s_1`, :math:`s_2` and whether every
row equals the set's first; the composite (:func:`graphpool.composite.segment_var`) makes a
broadcast, a difference, a square and five reductions over ``N x F`` for the same numbers,
and the kernel's are their bits (the same roundings in the same order). The backward is
one pass too: :math:`\partial \mathrm{var}_b / \partial x_v = 2 k_b\,(x_v - c_b - s_{1,b}/n_b)`
with :math:`k_b` the derivative of :func:`finish_variance` with respect to :math:`s_2`.
It applies to sorted (CSR) groupings of float32/float64 CPU tensors in eager code
(:func:`fused` says when); every other case, and a backward whose own graph is recorded
(double backward), use torch ops.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..segments import Kind, Segments
from . import compiled, export
from .autograd import forward_ad, one_pass_backward, plain_torch
from .backends import get_backend
from .broadcast import segment_broadcast
from .dispatch import segment_reduce

__all__ = ["fused", "segment_variance", "finish_variance"]


def fused(x: Tensor, seg: Segments) -> bool:
    """Whether :func:`segment_variance` runs the compiled kernel for ``x`` (else the caller
    composes torch ops)."""
    return (seg.kind is Kind.CSR and x.dtype in (torch.float32, torch.float64)
            and get_backend() in ("auto", "compiled") and not torch.compiler.is_compiling()
            and not export.exporting() and not plain_torch(x) and not forward_ad(x)
            and compiled.supports(x, seg))


def finish_variance(s1: Tensor, s2: Tensor, same: Tensor, counts: Tensor,
                    correction: int) -> Tensor:
    r"""The variance from the centred moments (``counts``: ``[*, B, 1]`` rows per set):
    :math:`(s_2 - s_1^2 / n) / (n - c)`, never negative, exactly 0 on sets of one value
    (``same``), ``nan`` where :math:`n \le c`. Shared by the fused and the composite path."""
    dof = counts - correction
    var = (s2 - s1 * s1 / counts.clamp(min=1)).clamp(min=0).masked_fill(same, 0)
    return (var / dof.clamp(min=1)).masked_fill(dof <= 0, math.nan)


class _Variance(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, seg: Segments, counts: Tensor, correction: int) -> Tensor:
        centre, s1, s2, same = compiled.moments(x, seg._ptr)
        var = finish_variance(s1, s2, same, counts, correction)
        dof, n1 = counts - correction, counts.clamp(min=1)
        # where finish_variance passes a gradient (its clamp's test on the same expression)
        keep = (s2 - s1 * s1 / n1 >= 0) & ~same & (dof > 0)
        mean1 = s1 / n1
        ctx.seg = seg
        ctx.save_for_backward(x, centre, mean1, keep / dof.clamp(min=1), n1)
        return var

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, centre, mean1, k, n1 = ctx.saved_tensors
        seg: Segments = ctx.seg
        g2 = (grad * k).masked_fill(k == 0, 0)  # blocked: 0, even for a nan gradient
        if not one_pass_backward(grad):  # create_graph: differentiable ops (double backward)
            d = x - segment_broadcast(centre, seg)
            mean1 = segment_reduce(d, seg, "sum", _where="segment_var") / n1
            grad_x = 2 * segment_broadcast(g2, seg) * (d - segment_broadcast(mean1, seg))
        else:  # g1 + 2 (x - c) g2 with g1 = -2 (s1 / n) g2, in one pass
            grad_x = compiled.moments_backward(x, seg._ptr, centre, -2 * mean1 * g2, g2)
        return grad_x, None, None, None


def segment_variance(x: Tensor, seg: Segments, counts: Tensor, correction: int) -> Tensor:
    """The variance of every set (only where :func:`fused` holds); ``counts`` is ``[*, B,
    1]``, the rows per set in the type of ``x``.

    Example:
        >>> import torch
        >>> from graphpool import Segments
        >>> seg = Segments.from_ptr(torch.tensor([0, 2, 3]))
        >>> x = torch.tensor([[1.], [3.], [5.]])
        >>> segment_variance(x, seg, torch.tensor([[2.], [1.]]), 0).flatten().tolist()
        [1.0, 0.0]
    """
    if x.requires_grad and torch.is_grad_enabled():
        return _Variance.apply(x, seg, counts, correction)
    _, s1, s2, same = compiled.moments(x, seg._ptr)
    return finish_variance(s1, s2, same, counts, correction)
