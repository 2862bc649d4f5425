r"""Statistic readouts built from the kernels' primitives and broadcasts.

Each function takes ``x`` (``[*, N, F]``, ``[*, B, Nmax, F]`` for a mask grouping) and a
:class:`~graphpool.Segments` and returns ``[*, B, F]``; empty sets get ``fill_value``
(decided from the counts). The passes they share (the maximum, the mean, the counts)
can be handed in through ``passes`` (a :class:`Passes`), so that several readouts of
one input compute each of them once.

Half types (``float16``, ``bfloat16``) are computed in ``float32`` and rounded once.
"""
from __future__ import annotations

import math
from numbers import Number
from typing import Dict, Optional, Union

import torch
from torch import Tensor

from ..errors import GraphpoolError, describe
from ..kernels import moments, powermean, segment_broadcast, segment_reduce
from ..kernels.autograd import forward_ad, plain_torch
from ..kernels.checks import check_fill_value, check_input
from ..kernels.reductions import HALF
from ..segments import Kind, Segments

__all__ = ["Passes", "segment_softmax", "segment_var", "segment_std", "segment_logsumexp",
           "segment_softmax_sum", "segment_power_mean", "segment_count"]

Temperature = Union[float, Tensor]


class Passes:
    """The reductions of one ``x`` over one grouping, each computed once on first use.

    ``x`` is held in its computation type (``float32`` for half types) with the padding
    rows of a mask grouping set to 0, so that no padding value (``nan`` included) reaches
    a value or a gradient.

    Example:
        >>> import torch
        >>> from graphpool import Segments
        >>> p = Passes(torch.tensor([[1.], [3.]]), Segments.from_index(torch.tensor([0, 0])))
        >>> p.reduce("mean").item(), p.reduce("mean") is p.reduce("mean")
        (2.0, True)
    """

    def __init__(self, x: Tensor, segments: Segments, where: str = "readout") -> None:
        # x and the grouping checked here, once, before any pass (fused kernels included)
        check_input(x, segments, "sum", True, 0.0, where)
        if not x.is_floating_point():
            raise GraphpoolError(where, "x", "a floating point tensor for this readout",
                                 f"a {x.dtype} tensor", "convert it with x.float()")
        self.source = x  # the tensor these passes belong to
        self.dtype = x.dtype
        self.segments = segments
        self.where = where
        x = x.float() if x.dtype in HALF else x.resolve_neg()  # (see segment_reduce)
        self.valid = segments._m.unsqueeze(-1) if segments.kind == Kind.MASK else None
        if self.valid is not None:
            x = torch.where(self.valid, x, 0)
        self.x = x
        self._done: Dict[str, Tensor] = {}

    def reduce(self, op: str) -> Tensor:
        """``segment_reduce(x, segments, op)``, once (empty sets hold 0)."""
        if op not in self._done:
            self._done[op] = segment_reduce(self.x, self.segments, op, _where=self.where)
        return self._done[op]

    def centre(self) -> Tensor:
        """The mean of each set, without gradient (the mean pass itself once it was taken;
        computed without recording a graph otherwise)."""
        if "mean" in self._done:
            return self._done["mean"].detach()
        if "centre" not in self._done:
            with torch.no_grad():
                self._done["centre"] = segment_reduce(self.x, self.segments, "mean",
                                                      _where=self.where)
        return self._done["centre"]

    def shift(self) -> Tensor:
        """A per-set value inside each set's range, with no gradient: the maximum, or 0
        where it is not finite (empty sets, sets of ``-inf``)."""
        if "shift" not in self._done:
            top = self.reduce("max").detach()
            self._done["shift"] = top.nan_to_num(0.0, 0.0, 0.0)  # one op (isfinite is four)
        return self._done["shift"]

    @property
    def counts(self) -> Tensor:
        """``[B, 1]`` rows per set, in the computation type."""
        if "counts" not in self._done:
            self._done["counts"] = self.segments._counts.unsqueeze(-1).to(self.x.dtype)
        return self._done["counts"]

    def broadcast(self, values: Tensor) -> Tensor:
        """``values`` per set copied to the rows (0 on padding rows)."""
        out = segment_broadcast(values, self.segments)
        return out if self.valid is None else torch.where(self.valid, out, 0)

    def finish(self, out: Tensor, fill_value: Number) -> Tensor:
        """``out`` rounded to the input's type, with empty sets set to ``fill_value``."""
        fill_value = check_fill_value(self.where, fill_value, self.dtype)
        out = out.to(self.dtype)
        if self.segments.has_empty is not False:
            out = out.masked_fill((self.segments._counts == 0).unsqueeze(-1), fill_value)
        return out


def _check_per_feature(where: str, name: str, value: Tensor, x: Tensor) -> Tensor:
    """A tensor ``t`` or ``p`` that broadcasts against ``x`` without changing its shape (one
    value, or one per feature): a wider one would silently widen the output (``[N, 1]``
    times ``[3]`` is ``[N, 3]``)."""
    try:
        fits = torch.broadcast_shapes(value.shape, x.shape) == x.shape
    except RuntimeError:
        fits = False
    if not fits:
        raise GraphpoolError(where, name, f"a number or a tensor that broadcasts against the "
                             f"{x.size(-1)} features of x (one value, or one per feature)",
                             describe(value), f"pass a tensor of shape [1] or "
                             f"[{x.size(-1)}]")
    return value.to(x.dtype)


def _passes(x: Tensor, segments: Segments, passes: Optional[Passes], where: str) -> Passes:
    if passes is not None and passes.segments is segments and passes.source is x:
        return passes
    return Passes(x, segments, where)


def segment_softmax(src: Tensor, segments: Segments) -> Tensor:
    r"""Softmax over the rows of each set, feature by feature (PyG ``softmax(src, index)``):

    .. math::
        \alpha_v = \frac{\exp(s_v - m_b)}{\sum_{u \in \mathcal{V}_b} \exp(s_u - m_b)},
        \qquad m_b = \max_{u \in \mathcal{V}_b} s_u

    The shift :math:`m_b` makes it stable and has no gradient (the softmax does not depend
    on it). A set whose scores are all ``-inf`` gets weights 0; padding rows of a mask
    grouping get 0. The result has the layout of ``src``.

    Example:
        >>> import torch
        >>> from graphpool import Segments
        >>> seg = Segments.from_index(torch.tensor([0, 0, 1]))
        >>> segment_softmax(torch.tensor([[0.], [0.], [5.]]), seg).flatten().tolist()
        [0.5, 0.5, 1.0]
    """
    p = Passes(src, segments, "segment_softmax")
    e = torch.exp(p.x - p.broadcast(p.shift()))
    if p.valid is not None:
        e = torch.where(p.valid, e, 0)
    total = segment_reduce(e, segments, "sum", _where="segment_softmax")
    total = torch.where(total > 0, total, 1)
    return (e / segment_broadcast(total, segments)).to(src.dtype)


def segment_var(x: Tensor, segments: Segments, *, correction: int = 0,
                fill_value: Number = 0.0, passes: Optional[Passes] = None,
                _where: Optional[str] = None) -> Tensor:
    r"""Variance of each set, feature by feature:

    .. math::
        \mathrm{var}_b = \frac{1}{n_b - c}\Big(\sum_{v}(x_v - k_b)^2
        - \frac{1}{n_b}\big(\sum_{v}(x_v - k_b)\big)^2\Big)

    with :math:`k_b` the set's mean (without gradient; sets whose maximum equals their
    minimum are exactly 0)
    and :math:`c` = ``correction`` (0: the population variance, PyG's ``VarAggregation``;
    1: the sample variance, :func:`torch.var`'s default; sets with :math:`n_b \le c` give
    ``nan``, as :func:`torch.var`). This is the corrected two-pass algorithm: no
    cancellation of :math:`E[x^2] - E[x]^2`, never negative, exactly 0 on constant sets.

    Example:
        >>> import torch
        >>> from graphpool import Segments
        >>> seg = Segments.from_index(torch.tensor([0, 0, 1]))
        >>> segment_var(torch.tensor([[1.], [3.], [7.]]), seg).flatten().tolist()
        [1.0, 0.0]
    """
    p = _passes(x, segments, passes, _where or "segment_var")
    return p.finish(_var(p, _check_correction(correction, p.where)), fill_value)


def _check_correction(correction: object, where: str) -> int:
    if isinstance(correction, bool) or not isinstance(correction, int) or correction < 0:
        raise GraphpoolError(where, "correction", "a non-negative int (0: population "
                             "variance, 1: sample variance)", repr(correction),
                             "pass correction=0 or correction=1")
    return correction


def _var(p: Passes, correction: int) -> Tensor:
    key = f"var{correction}"
    if key in p._done:
        return p._done[key]
    if moments.fused(p.x, p.segments):  # one pass over each set (the composite's sums' bits)
        var = moments.segment_variance(p.x, p.segments, p.counts, correction)
    else:
        # the centre has no gradient: E[(x - c)^2] - E[x - c]^2 is the variance for any c
        d = p.x - p.broadcast(p.centre())
        s1 = segment_reduce(d, p.segments, "sum", _where=p.where)
        s2 = segment_reduce(d * d, p.segments, "sum", _where=p.where)
        # max and min are single reads of x, without the copies a shifted mean would make;
        # a constant set has variance exactly 0 (its rounded mean would leave a residue)
        constant = p.reduce("max") == p.reduce("min")
        var = moments.finish_variance(s1, s2, constant, p.counts, correction)
    p._done[key] = var
    return var


def segment_std(x: Tensor, segments: Segments, *, correction: int = 0,
                fill_value: Number = 0.0, passes: Optional[Passes] = None,
                _where: Optional[str] = None) -> Tensor:
    r"""Standard deviation :math:`\sqrt{\mathrm{var}_b}` (see :func:`segment_var`).

    At zero variance (constant sets, one-node sets) the value is 0 and the gradient is 0:
    :math:`\sqrt{\cdot}` has no derivative there, and 0 is the subgradient that leaves
    the features of constant sets untouched. Unlike PyG's ``StdAggregation`` (which
    returns 0 for every variance below ``1e-5``), small deviations are kept exactly.

    Example:
        >>> import torch
        >>> from graphpool import Segments
        >>> seg = Segments.from_index(torch.tensor([0, 0]))
        >>> segment_std(torch.tensor([[1.], [3.]]), seg).item()
        1.0
    """
    p = _passes(x, segments, passes, _where or "segment_std")
    var = _var(p, _check_correction(correction, p.where))
    zero = var <= 0  # (nan is not: it stays nan)
    return p.finish(var.masked_fill(zero, 1).sqrt().masked_fill(zero, 0), fill_value)


def segment_logsumexp(x: Tensor, segments: Segments, *, fill_value: Number = 0.0,
                      passes: Optional[Passes] = None, _where: Optional[str] = None) -> Tensor:
    r"""Stable :math:`\log\sum_{v \in \mathcal{V}_b} e^{x_v}
    = m_b + \log\sum_v e^{x_v - m_b}` with :math:`m_b` the set's maximum (no overflow;
    :math:`\max \le \mathrm{lse} \le \max + \log n_b`). Sets of ``-inf`` give ``-inf``;
    empty sets ``fill_value``.

    Example:
        >>> import torch
        >>> from graphpool import Segments
        >>> seg = Segments.from_index(torch.tensor([0, 0]))
        >>> x = torch.tensor([[1000.], [1000.]], dtype=torch.float64)
        >>> round(segment_logsumexp(x, seg).item(), 4)
        1000.6931
    """
    p = _passes(x, segments, passes, _where or "segment_logsumexp")
    shift = p.shift()
    e = torch.exp(p.x - p.broadcast(shift))
    if p.valid is not None:
        e = torch.where(p.valid, e, 0)
    out = torch.log(segment_reduce(e, segments, "sum", _where=p.where)) + shift
    return p.finish(out, fill_value)


def segment_softmax_sum(x: Tensor, segments: Segments, t: Temperature = 1.0, *,
                        fill_value: Number = 0.0, passes: Optional[Passes] = None,
                        _where: Optional[str] = None) -> Tensor:
    r"""Softmax-weighted sum (PyG ``SoftmaxAggregation``), feature by feature:

    .. math::
        y_b = \sum_{v \in \mathcal{V}_b} \alpha_v\, x_v, \qquad
        \alpha = \mathrm{softmax}_b(t\, x)

    ``t`` is a number or a tensor broadcast against the features (one per channel).
    ``t -> 0`` gives the mean, ``t -> inf`` the maximum, ``t -> -inf`` the minimum.
    It is computed as :math:`\sum_v e_v x_v / \sum_v e_v` with
    :math:`e = \exp(t x - m_b)`, :math:`m_b` the set's largest score (the weights are not
    formed row by row): like the mean's sum, :math:`\sum_v e_v x_v` overflows once a set's
    values reach the largest finite value over its size (``float32`` and ``bfloat16``:
    about ``3.4e38 / n``; ``float16`` is computed in ``float32``, so its sets never do),
    where PyG's normalized weights would still give a finite result.

    Example:
        >>> import torch
        >>> from graphpool import Segments
        >>> seg = Segments.from_index(torch.tensor([0, 0]))
        >>> x = torch.tensor([[1.], [3.]])
        >>> segment_softmax_sum(x, seg, 0.0).item(), segment_softmax_sum(x, seg, 100.).item()
        (2.0, 3.0)
    """
    p = _passes(x, segments, passes, _where or "segment_softmax_sum")
    t = _check_per_feature(p.where, "t", t, p.x) if isinstance(t, Tensor) else t
    # sum_v e_v x_v / sum_v e_v with e = exp(t x - m): the weights are never formed row by
    # row (two passes over N x F fewer than softmax, then a weighted sum)
    if isinstance(t, Tensor) or t != 1:
        scores = p.x * t
        top = segment_reduce(scores, segments, "max", _where=p.where).detach()
        shift = top.nan_to_num(0.0, 0.0, 0.0)
    else:  # t = 1: the scores are x, whose maximum the other readouts share
        scores, shift = p.x, p.shift()
    e = torch.exp(scores - p.broadcast(shift))
    if p.valid is not None:
        e = torch.where(p.valid, e, 0)
    total = segment_reduce(e, segments, "sum", _where=p.where)
    out = segment_reduce(e * p.x, segments, "sum", _where=p.where)
    return p.finish(out / torch.where(total > 0, total, 1), fill_value)


def _signed_pow(v: Tensor, exponent: Temperature) -> Tensor:
    """``sign(v) |v|^exponent``, odd (``-0.0`` stays ``-0.0``), with value ``v`` at
    ``v = 0`` and at nan, and there the derivative of ``v * (e == 1)``: 0 for ``e != 1``
    (``e < 1``: infinite, no ``inf * 0``), 1 for ``e = 1`` (it is ``v``: the power mean with
    ``p = 1`` is the mean, with the mean's gradient at zeros, e.g. after a ReLU). Eager code
    runs :class:`_SignedPow` (its derivative written out); tracers, ``torch.func``
    transforms, forward-mode AD and ``torch.compile`` (which traces this function) compose
    the same values and gradients from torch ops."""
    tensors = [t for t in (v, exponent) if isinstance(t, Tensor)]
    if (any(plain_torch(t) or forward_ad(t) for t in tensors) or torch.compiler.is_exporting()
            or torch.compiler.is_compiling()):
        return _signed_pow_composite(v, exponent)
    return _SignedPow.apply(v, exponent)


def _signed_pow_composite(v: Tensor, exponent: Temperature) -> Tensor:
    mag = v.abs()
    nonzero = mag > 0
    powered = torch.where(nonzero, mag, 1) ** exponent
    # at 0 and nan: v * (e == 1), with a number e as a float (jit.trace has no mul by a bool)
    at_zero = exponent == 1 if isinstance(exponent, Tensor) else float(exponent == 1)
    return torch.where(nonzero, torch.sign(v) * powered, v * at_zero)


class _SignedPow(torch.autograd.Function):
    r""":func:`_signed_pow` with the derivatives written out: :math:`e |v|^{e-1}` by ``v``
    (the values at ``v = 0`` and nan above), :math:`\operatorname{sign}(v)|v|^e \ln|v|` by a
    tensor ``e`` (0 at ``v = 0`` and nan). The forward is the composite's bits: for a
    number ``e > 0`` (every caller's), ``|v|^e`` with the sign of ``v`` copied (exact; the
    zeros keep theirs), for a tensor ``e`` (which may hold values <= 0) the composition
    itself. The backward is torch ops on the saved inputs, so it has derivatives of its own
    (double backward)."""

    @staticmethod
    def forward(ctx, v: Tensor, exponent: Temperature) -> Tensor:
        tensor = isinstance(exponent, Tensor)
        out = _signed_pow_composite(v, exponent) if tensor else v.abs().pow(exponent).copysign(v)
        ctx.exponent = None if tensor else exponent
        ctx.save_for_backward(v, out, exponent if tensor else None)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        v, out, e_tensor = ctx.saved_tensors
        e = ctx.exponent if e_tensor is None else e_tensor
        slope, zero, safe = powermean.slope(v, e)  # zeros and nan: the slope of v * (e == 1)
        grad_e = None
        if e_tensor is not None and ctx.needs_input_grad[1]:
            grad_e = (grad * (out * safe.log()).masked_fill(zero, 0)).sum_to_size(e.shape)
        return grad * slope, grad_e


def segment_power_mean(x: Tensor, segments: Segments, p: Temperature = 1.0, *,
                       fill_value: Number = 0.0, passes: Optional[Passes] = None,
                       _where: Optional[str] = None) -> Tensor:
    r"""Power mean (generalised mean; GeM pooling for :math:`p = 3`), sign-safe:

    .. math::
        M_p(x)_b = f^{-1}\Big(\frac{1}{n_b}\sum_{v \in \mathcal{V}_b} f(x_v)\Big), \qquad
        f(x) = \operatorname{sign}(x)\,|x|^p

    For non-negative inputs this is the usual :math:`(\frac1n\sum x^p)^{1/p}`; for negative
    ones :math:`f` is its odd extension, so :math:`M_p` is still a mean (between the
    minimum and the maximum, of the sign of the data, :math:`M_p(-x) = -M_p(x)`), where
    PyG's ``PowerMeanAggregation`` clamps inputs to ``[1e-4, 100]`` and loses the sign.
    ``p = 1`` is the mean; large ``p`` tends to the value of largest magnitude (the
    maximum for non-negative data). Each set is scaled by its largest :math:`|x|` before
    the power, so large ``p`` does not overflow. ``p > 0``: a number or a tensor broadcast
    against the features. Gradients at :math:`x = 0` are those of :math:`f`: 0 for
    :math:`p > 1`, the mean's for :math:`p = 1`, and 0 for :math:`p < 1` (where :math:`f`
    has none).

    Example:
        >>> import torch
        >>> from graphpool import Segments
        >>> seg = Segments.from_index(torch.tensor([0, 0]))
        >>> x = torch.tensor([[1.], [2.]], dtype=torch.float64)
        >>> round(segment_power_mean(x, seg, 2.0).item() ** 2, 12)
        2.5
        >>> round(segment_power_mean(-x, seg, 2.0).item(), 6)
        -1.581139
    """
    pw = _passes(x, segments, passes, _where or "segment_power_mean")
    if isinstance(p, Tensor):
        p = _check_per_feature(pw.where, "p", p, pw.x)
    elif isinstance(p, bool) or not isinstance(p, (int, float)) or not p > 0 \
            or not math.isfinite(p):
        raise GraphpoolError(pw.where, "p", "a finite number > 0 (or a tensor)",
                             repr(p), "pass p=1 for the mean, p=3 for GeM")
    if "absmax" not in pw._done and powermean.fused(pw.x, segments, p):  # the same bits
        inner, pw._done["absmax"] = powermean.power_mean_core(pw.x, segments, p)
        return pw.finish(_signed_pow(inner, 1 / p) * pw._done["absmax"], fill_value)
    if "absmax" not in pw._done:
        top, low = pw.reduce("max").detach(), pw.reduce("min").detach()
        scale = torch.maximum(top.abs(), low.abs())
        pw._done["absmax"] = scale.nan_to_num(1.0, 1.0, 1.0).masked_fill(scale == 0, 1)
    scale = pw._done["absmax"]
    scaled = pw.x / segment_broadcast(scale, segments)  # padding rows stay 0
    inner = segment_reduce(_signed_pow(scaled, p), segments, "mean", _where=pw.where)
    return pw.finish(_signed_pow(inner, 1 / p) * scale, fill_value)


def segment_count(x: Tensor, segments: Segments, fill_value: Number = 0.0, *,
                  _where: Optional[str] = None) -> Tensor:
    r"""The number of rows of each set, :math:`n_b`, as ``[*, B, 1]`` of the type of ``x``
    (float types; ``int64`` for integer ``x``); empty sets get ``fill_value`` like every
    readout's (by default 0, their count). No gradient flows to ``x``.

    Example:
        >>> import torch
        >>> from graphpool import Segments
        >>> segment_count(torch.ones(3, 2), Segments.from_index(torch.tensor([0, 1, 1]))).tolist()
        [[1.0], [2.0]]
    """
    dtype = x.dtype if x.is_floating_point() else torch.int64
    where = _where or "segment_count"
    fill_value = check_input(x, segments, "count", True, fill_value, where)
    probe = segment_reduce(x[..., :1] if x.size(-1) else x.new_zeros(*x.shape[:-1], 1),
                           segments, "sum", _where=where)  # output shape
    counts = segments._counts.unsqueeze(-1).to(dtype)
    if segments.has_empty is not False and fill_value != 0:
        counts = counts.masked_fill(counts == 0, fill_value)
    return counts.expand(probe.shape).clone()
