r"""One plan per readout: the local part (graphpool's single-process kernels and
composites on this rank's rows), the collectives it requests, and the combination.

A plan is a generator (see :data:`~graphpool.distributed.collectives.Step`). Per rank
and call, for ``B`` sets, ``F`` features and ``W`` ranks (``G``: the gate width of an
attention, 1 or ``F``; a softmax readout has ``G = F``):

* sum, mean, vpa (table sums): one SUM of ``[s, n]``, ``B(F+1)`` numbers;
* count: one SUM of ``n``, ``B`` numbers;
* max, min: one MAX/MIN of ``[m, has rows, has nan]``, ``B(2F+1)`` (``B(F+1)`` for
  integers); with a gradient, one SUM of the tie counts, ``BF`` more;
* logsumexp: one MAX of ``[max_r, has rows]`` and one SUM of ``sum exp(x - M)``,
  ``B(F+1) + BF``;
* softmax, attention: one MAX of ``[max_r score, has rows]`` and one SUM of
  ``[sum e, sum e h]`` (``e = exp(score - M)``), ``B(G+1) + B(G+F)``;
* power mean, GeM: one MAX of ``[max |x|, has rows]`` and one SUM of ``[sum f, n]``,
  ``2B(F+1)``;
* var, std: one all-gather of ``[n, mean, M2, max, min]``, ``B(4F+1)`` sent (``W``
  times that received).

A :class:`~graphpool.MultiReadout` runs its readouts' plans in lockstep, so requests
of one op and dtype share one collective.
"""
from __future__ import annotations

import math
from typing import Any, Callable, List, Optional, Tuple

import torch
from torch import Tensor, nn

from ..composite import segment_var
from ..composite.stats import Passes, _check_per_feature, _signed_pow
from ..errors import GraphpoolError
from ..kernels import segment_broadcast, segment_reduce
from ..kernels.checks import check_fill_value, check_input
from ..kernels.reductions import HALF, MAX, MIN, SUM, resolve_reduction
from ..readouts import (AttentionalReadout, CountReadout, LogSumExpReadout, MultiReadout,
                        PowerMeanReadout, Readout, SoftmaxReadout, StdReadout, VarReadout)
from ..readouts.learnable import gate_scores_and_values
from ..readouts.statistic import _check_channels
from ..segments import Segments
from .collectives import Extremum, Shared, Step

__all__ = ["build", "describe_readout", "SUPPORTED"]

SUPPORTED = ("sum", "mean", "vpa", "max", "min", "count", "var", "std", "logsumexp",
             "softmax", "powermean", "gem", "attention", "a MultiReadout of these")

Finish = Callable[[List[Tensor]], Tensor]


class Local:
    """This rank's rows ``x`` (in the computation type: ``float32`` for half types) over
    ``seg`` (``B`` sets, every rank the same ``B``), and what the plans share."""

    def __init__(self, x: Tensor, seg: Segments, grad: bool, where: str, world: int) -> None:
        self.dtype, self.grad, self.where, self.seg = x.dtype, grad, where, seg
        self.world = world
        self.x = x.float() if x.dtype in HALF else x
        self.lead = tuple(x.shape[:-2])
        self._passes = None

    def counts(self, dtype: torch.dtype) -> Tensor:
        """``[*, B, 1]`` rows of each set on this rank."""
        n = self.seg._counts.to(dtype).unsqueeze(-1)
        return n.expand(*self.lead, *n.shape)

    @property
    def passes(self) -> Passes:
        if self._passes is None:  # shared by the composites of one input (MultiReadout)
            self._passes = Passes(self.x, self.seg, self.where)
        return self._passes

    def finish(self, out: Tensor, nonempty: Tensor, fill_value: Any) -> Tensor:
        """``out`` in the dtype of ``x``, empty sets (no row on any rank) ``fill_value``."""
        fill_value = check_fill_value(self.where, fill_value, self.dtype)
        out = out.to(self.dtype) if self.dtype.is_floating_point else out
        return out.masked_fill(~nonempty, fill_value)


def _has_rows(local: Local, dtype: torch.dtype) -> Tensor:
    """``[*, B, 1]``: 1 where this rank holds rows of the set (its MAX over ranks: 1 for
    the sets with a row somewhere)."""
    return (local.counts(dtype) > 0).to(dtype)


def _floating(local: Local, name: str) -> None:
    if not local.dtype.is_floating_point:
        raise GraphpoolError(local.where, "x", f"a floating point tensor for {name}",
                             f"a {local.dtype} tensor", "convert it with x.float()")


#: the integer types gloo's MAX and MIN take (NCCL's too); others travel as int64
_GLOO_INTS = (torch.int8, torch.uint8, torch.int32, torch.int64)


def _table(local: Local, reduce: str, fill_value: Any) -> Step:
    red = resolve_reduction(reduce, local.where)
    x = local.x
    if red.primitive is SUM:
        if not red.integer_inputs:
            _floating(local, repr(red.name))
        s = segment_reduce(x, local.seg, "sum", _where=local.where)
        total = yield "sum", torch.cat([s, local.counts(s.dtype)], -1)
        s, n = total[..., :-1], total[..., -1:]
        # finalize(combined, counts) broadcasts counts.unsqueeze(-1): [*, B] as [B]
        out = red.finalize(s, n[..., 0]) if red.finalize else s
        return local.finish(out, n > 0, fill_value)
    if red.primitive not in (MAX, MIN) or red.finalize is not None:
        raise GraphpoolError(local.where, "reduce", f"a readout with a distributed form "
                             f"({', '.join(SUPPORTED)})", repr(red.name),
                             "all-gather the rows yourself for other readouts")
    op = red.primitive.name
    m = segment_reduce(x.detach(), local.seg, op, fill_value=red.identity(x.dtype),
                       _where=local.where)
    if not x.is_floating_point() and m.dtype not in _GLOO_INTS:
        m = m.long()  # gloo has no MAX/MIN of int16 ("Invalid scalar type"): exact in int64
    # MAX of "has rows" / MIN of "has none": 0 or 1, exact in every dtype
    flag = local.counts(m.dtype) > 0 if op == "max" else local.counts(m.dtype) == 0
    parts = [m, flag.to(m.dtype)]
    if x.is_floating_point():  # gloo's MAX/MIN may drop a nan: flags per feature, and
        nan = torch.isnan(m)   # the extremum of the other values
        parts = [torch.where(nan, red.identity(x.dtype), m), parts[1],
                 (nan if op == "max" else ~nan).to(m.dtype)]
    top = yield op, torch.cat(parts, -1)
    f = m.size(-1)
    m, nonempty = top[..., :f], (top[..., f:f + 1] == 1) == (op == "max")
    if x.is_floating_point():  # a nan on any rank is the set's nan, as in one process
        m = torch.where((top[..., f + 1:] == 1) == (op == "max"), math.nan, m)
    if local.grad:
        hit = x.detach() == segment_broadcast(m, local.seg)
        tie_dtype = torch.float32 if local.dtype in HALF else x.dtype
        ties = yield "sum", segment_reduce(hit.to(tie_dtype), local.seg, "sum",
                                           _where=local.where)
        m = Extremum.apply(x, m, ties, local.seg)
    return local.finish(m if x.is_floating_point() else m.to(x.dtype), nonempty, fill_value)


def _count(local: Local, fill_value: Any = 0) -> Step:
    check_input(local.x, local.seg, "count", True, fill_value, local.where)  # x's type, as
    dtype = local.dtype if local.dtype.is_floating_point else torch.int64  # in one process
    n = yield "sum", local.counts(dtype)
    return local.finish(n, n > 0, fill_value)


def _var(local: Local, correction: int, std: bool, fill_value: Any) -> Step:
    _floating(local, "var/std")
    p, nan = local.passes, math.nan
    n = local.counts(local.x.dtype)
    mean = p.reduce("mean")
    m2 = segment_var(local.x, local.seg, passes=p) * n  # this rank's sum of squares
    top = torch.where(n > 0, p.reduce("max").detach(), -math.inf)
    low = torch.where(n > 0, p.reduce("min").detach(), math.inf)
    table = yield "gather", torch.cat([n, mean, m2, top, low], -1)
    f = mean.size(-1)
    ns, means, m2s = table[..., :1], table[..., 1:1 + f], table[..., 1 + f:1 + 2 * f]
    count = ns.sum(0)
    centre = (ns * means).sum(0) / count.clamp(min=1)
    # Chan et al.: the ranks' sums of squares plus the spread of their means
    m2 = (m2s + ns * (means - centre) ** 2).sum(0)
    constant = table[..., 1 + 2 * f:1 + 3 * f].amax(0) == table[..., 1 + 3 * f:].amin(0)
    var = torch.where(constant, 0, m2)
    dof = count - correction
    var = torch.where(dof > 0, var / dof.clamp(min=1), nan)
    if std:
        positive = var > 0
        var = torch.where(torch.isnan(var), var,
                          torch.where(positive, torch.where(positive, var, 1).sqrt(), 0))
    return local.finish(var, count > 0, fill_value)


def _attend(local: Local, score: Tensor, h: Tensor, fill_value: Any) -> Step:
    r""":math:`\sum_v \alpha_v h_v` with :math:`\alpha` the softmax of ``score`` over the
    rows of each set on **all** ranks: with :math:`M` the global maximum of the scores
    (no gradient: it cancels), each rank sends :math:`w_r = \sum_v e^{s_v - M}` and
    :math:`\sum_v e^{s_v - M} h_v`, and :math:`y = \sum_r (\dots) / \sum_r w_r`. No
    logarithm of a rank's own sum: a rank whose rows of a set all score ``-inf`` (masked
    nodes) sends 0 with gradient 0, as those rows get in one process."""
    top = yield "max", torch.cat([_local_max(local, score), _has_rows(local, score.dtype)], -1)
    shift, nonempty = top[..., :-1], top[..., -1:] > 0
    shift = torch.where(torch.isfinite(shift), shift, 0)
    e = torch.exp(score - segment_broadcast(shift, local.seg))
    w = segment_reduce(e, local.seg, "sum", _where=local.where)
    y = segment_reduce(e * h, local.seg, "sum", _where=local.where)
    total = yield "sum", torch.cat([w, y], -1)
    weight, weighted = total[..., :w.size(-1)], total[..., w.size(-1):]
    return local.finish(weighted / torch.where(weight > 0, weight, 1), nonempty, fill_value)


def _local_max(local: Local, v: Tensor) -> Tensor:
    """``[*, B, k]``: this rank's maximum of ``v`` per set, ``-inf`` for the sets it holds
    no row of and in place of ``nan`` (gloo's MAX may drop a ``nan`` anyway; the rows'
    ``nan`` reaches the result through the SUM), without gradient."""
    m = segment_reduce(v.detach(), local.seg, "max", fill_value=-math.inf,
                       _where=local.where)
    return torch.where(torch.isnan(m) | (local.counts(m.dtype) == 0), -math.inf, m)


def _logsumexp(local: Local, fill_value: Any) -> Step:
    _floating(local, "logsumexp")
    top = yield "max", torch.cat([_local_max(local, local.x), _has_rows(local, local.x.dtype)],
                                 -1)
    shift, nonempty = top[..., :-1], top[..., -1:] > 0
    shift = torch.where(torch.isfinite(shift), shift, 0)
    e = torch.exp(local.x - segment_broadcast(shift, local.seg))
    total = yield "sum", segment_reduce(e, local.seg, "sum", _where=local.where)
    return local.finish(torch.log(total) + shift, nonempty, fill_value)


def _power_mean(local: Local, p: Any, fill_value: Any) -> Step:
    _floating(local, "powermean")
    if isinstance(p, Tensor):
        p = _check_per_feature(local.where, "p", p, local.x)
    pw = local.passes
    scale = torch.maximum(pw.reduce("max").detach().abs(), pw.reduce("min").detach().abs())
    top = yield "max", torch.cat([scale, _has_rows(local, scale.dtype)], -1)
    scale, nonempty = top[..., :-1], top[..., -1:] > 0
    scale = torch.where(torch.isfinite(scale) & (scale > 0), scale, 1)
    scaled = local.x / segment_broadcast(scale, local.seg)
    inner = segment_reduce(_signed_pow(scaled, p), local.seg, "sum", _where=local.where)
    total = yield "sum", torch.cat([inner, local.counts(inner.dtype)], -1)
    mean = total[..., :-1] / total[..., -1:].clamp(min=1)
    if isinstance(p, Tensor) and p.requires_grad:  # every rank differentiates f^-1 in full
        p = Shared.apply(p, local.world)
    return local.finish(_signed_pow(mean, 1 / p) * scale, nonempty, fill_value)


def _softmax(local: Local, r: SoftmaxReadout) -> Step:
    _floating(local, "softmax")
    _check_channels(r, local.x)
    t = r.t
    t = _check_per_feature(local.where, "t", t, local.x) if isinstance(t, Tensor) else t
    return (yield from _attend(local, local.x * t, local.x, r.fill_value))


def _attention(local: Local, r: AttentionalReadout) -> Step:
    _floating(local, "attention")
    x, seg, where = local.x, local.seg, local.where
    if r.in_channels is not None and x.size(-1) != r.in_channels:
        raise GraphpoolError(where, "x", f"{r.in_channels} features (in_channels) on the "
                             "last dim", f"{x.size(-1)}", f"pass x with {r.in_channels} "
                             "features")
    score, h = gate_scores_and_values(r, x, seg, where)
    return (yield from _attend(local, score, h, r.fill_value))


def build(r: Readout, local: Local) -> Tuple[List[Step], Finish]:
    """The plans of readout ``r`` on ``local`` and the function that turns their results
    into its output (a :class:`~graphpool.MultiReadout` combines those of its readouts)."""
    if isinstance(r, MultiReadout):
        plans, spans, finishes = [], [], []
        for sub in r.readouts:
            sub_plans, finish = build(sub, local)
            spans.append((len(plans), len(plans) + len(sub_plans)))
            plans += sub_plans
            finishes.append(finish)
        masks = r.fills_empty_sets  # the sets empty on every rank get fill_value
        if masks:
            plans.append(_count(local))

        def combine(outs: List[Tensor]) -> Tensor:
            empty = (outs[-1] == 0).squeeze(-1) if masks else None
            return _combine(r, [f(outs[a:b]) for f, (a, b) in zip(finishes, spans)], empty,
                            local.world)
        return plans, combine
    return [_plan(r, local)], lambda outs: outs[0]


class _Combine(nn.Module):
    def __init__(self, multi: MultiReadout) -> None:
        super().__init__()
        self.multi = multi

    def forward(self, outs: List[Tensor], empty: Optional[Tensor]) -> Tensor:
        return self.multi.combine(outs, empty)


def _combine(r: MultiReadout, outs: List[Tensor], empty: Optional[Tensor],
             world: int) -> Tensor:
    """``r.combine(outs)`` on the global results. The weights of the combination
    (``mode="proj"``'s linear layer, ``"attn"``'s heads and attention) run after the
    collectives, so every rank computes their gradient in full: through
    :class:`~graphpool.distributed.collectives.Shared` each keeps ``1/W`` of it, and the
    sum over ranks is the gradient, as for every other weight of the readout."""
    inner = {id(p) for p in r.readouts.parameters()}
    own = {f"multi.{name}": Shared.apply(p, world) for name, p in r.named_parameters()
           if id(p) not in inner and p.requires_grad and torch.is_grad_enabled()}
    if not own:
        return r.combine(outs, empty)
    return torch.func.functional_call(_Combine(r), own, (outs, empty))


def _plan(r: Readout, local: Local) -> Step:
    if isinstance(r, StdReadout) or type(r) is VarReadout:
        return _var(local, r.correction, isinstance(r, StdReadout), r.fill_value)
    if type(r) is LogSumExpReadout:
        return _logsumexp(local, r.fill_value)
    if type(r) is SoftmaxReadout:
        return _softmax(local, r)
    if isinstance(r, PowerMeanReadout):
        _check_channels(r, local.x)
        p = r.p.clamp(min=0.01) if isinstance(r.p, Tensor) else r.p
        return _power_mean(local, p, r.fill_value)
    if type(r) is AttentionalReadout:
        return _attention(local, r)
    if type(r) is CountReadout:
        return _count(local, r.fill_value)
    if r.reduce is not None and type(r).forward is Readout.forward:
        return _table(local, r.reduce, r.fill_value)
    raise GraphpoolError(local.where, "reduce", f"a readout with a distributed form "
                         f"({', '.join(SUPPORTED)})", repr(r),
                         "all-gather the rows yourself for other readouts")


def describe_readout(r: Readout) -> str:
    """What the ranks must agree on about ``r``: its kind and every argument that changes
    the result or the collectives (learnable weights are kept equal by the user, e.g.
    by DDP, and are not compared)."""
    if isinstance(r, MultiReadout):
        inner = ", ".join(describe_readout(s) for s in r.readouts)
        return f"MultiReadout([{inner}], mode={r.mode!r})"
    extra = []
    for name in ("t", "p"):
        value = getattr(r, name, None)
        if isinstance(value, Tensor):
            extra.append(f"{name}=<learnable, {value.numel()}>")
        elif value is not None:
            extra.append(f"{name}={value!r}")
    return f"{r!r}" + "".join(f" {e}" for e in extra) + f" fill_value={r.fill_value!r}"
