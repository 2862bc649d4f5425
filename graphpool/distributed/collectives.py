r"""The collectives of the distributed readouts, with the gradients of a replicated loss,
and the runner that packs the requests of several readouts into one collective per step.

Under a **replicated loss** every rank computes the same loss of the same readout output
``y = c(s_0, ..., s_{W-1})``, so every rank already holds :math:`\partial L / \partial y`,
and rank ``r`` needs only :math:`\partial L / \partial s_r`:

* a SUM all-reduce :math:`y = \sum_r s_r` has :math:`\partial y / \partial s_r = I`: its
  backward is the identity, **no communication**
  (:func:`torch.distributed.nn.functional.all_reduce` all-reduces the gradient again and
  makes it ``world_size`` times too large here);
* an all-gather :math:`y = [s_0, \dots, s_{W-1}]`: rank ``r`` keeps the gradient of its
  own slice;
* MAX and MIN all-reduces carry no gradient: the extremum readouts route it themselves
  (:class:`Extremum`), and the others use them only for shifts that cancel out.

:class:`GradSum` (identity forward, SUM all-reduce of the gradient backward) turns a
loss that differs per rank (the objective :math:`\sum_r L_r`) into the replicated case.
"""
from __future__ import annotations

from typing import Any, Dict, Generator, List, Optional, Tuple

import torch
import torch.distributed as dist
from torch import Tensor

from ..kernels import segment_broadcast
from ..segments import Segments

__all__ = ["AllReduceSum", "AllGather", "GradSum", "Shared", "Extremum", "start", "run",
           "Step"]

#: A readout's plan: a generator that yields ``(op, tensor)`` requests (``op`` one of
#: ``"sum"``, ``"max"``, ``"min"``, ``"gather"``; tensors ``[*, B, k]``), receives each
#: result, and returns the readout.
Step = Generator[Tuple[str, Tensor], Tensor, Tensor]

_OPS = {"max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}


class AllReduceSum(torch.autograd.Function):
    r""":math:`y = \sum_r s_r` over the group; backward: the identity (replicated loss)."""

    @staticmethod
    def forward(ctx, s: Tensor, group: Any) -> Tensor:
        out = s.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out, op=dist.ReduceOp.SUM, group=group)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad, None


class AllGather(torch.autograd.Function):
    r""":math:`y = [s_0, \dots, s_{W-1}]` stacked on a new dim 0; backward: this rank's
    slice of the gradient (replicated loss)."""

    @staticmethod
    def forward(ctx, s: Tensor, group: Any, rank: int, world: int) -> Tensor:
        s = s.contiguous()
        parts = [torch.empty_like(s) for _ in range(world)]
        dist.all_gather(parts, s, group=group)
        ctx.rank = rank
        return torch.stack(parts)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad[ctx.rank], None, None, None


class GradSum(torch.autograd.Function):
    r"""Identity forward; backward: the SUM all-reduce of the gradient, for a loss that
    differs per rank (the objective :math:`\sum_r L_r`, ``backward="sum"``)."""

    @staticmethod
    def forward(ctx, y: Tensor, group: Any) -> Tensor:
        ctx.group = group
        return y.view_as(y)

    @staticmethod
    def backward(ctx, grad: Tensor):
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        return grad, None


class Shared(torch.autograd.Function):
    r"""Identity forward; backward: the gradient divided by ``world``. For a learnable
    weight used after a collective (the power of a power mean in :math:`f^{-1}`): every
    rank computes that part of its gradient in full, so each keeps a ``1/W`` share and,
    as for the weights used on the local rows, the sum over ranks is the gradient."""

    @staticmethod
    def forward(ctx, w: Tensor, world: int) -> Tensor:
        ctx.world = world
        return w.view_as(w)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad / ctx.world, None


class Extremum(torch.autograd.Function):
    r"""The global maximum (minimum) ``m`` of each set and feature, known on every rank,
    as a function of this rank's rows ``x``: the gradient of each set is split evenly over
    the rows of **all** ranks that attain it, by the global tie count ``ties`` (as the
    single-process readout splits it):

    .. math::
        \frac{\partial L}{\partial x_v} = \frac{[x_v = m_b]}{\mathrm{ties}_b}
        \frac{\partial L}{\partial m_b}

    Rows holding ``nan`` get no gradient; ranks without a row of the extremum get 0.
    """

    @staticmethod
    def forward(ctx, x: Tensor, m: Tensor, ties: Tensor, seg: Segments) -> Tensor:
        ctx.seg, ctx.x_dtype = seg, x.dtype
        ctx.save_for_backward(x == segment_broadcast(m, seg), ties)
        return m.clone()

    @staticmethod
    def backward(ctx, grad: Tensor):
        hit, ties = ctx.saved_tensors
        share = segment_broadcast((grad.to(ties.dtype) / ties).to(ctx.x_dtype), ctx.seg)
        return torch.where(hit, share, 0), None, None, None


def _collective(op: str, packed: Tensor, group: Any, rank: int, world: int) -> Tensor:
    if op == "sum":
        return AllReduceSum.apply(packed, group)
    if op == "gather":
        return AllGather.apply(packed, group, rank, world)
    out = packed.detach().clone(memory_format=torch.contiguous_format)
    dist.all_reduce(out, op=_OPS[op], group=group)
    return out


def start(plans: List[Step]) -> Tuple[List[Optional[Tensor]], Dict[int, Tuple[str, Tensor]]]:
    """Run every plan up to its first request: the local part, no collective (so an error
    in it can be told to the other ranks in the agreement check before any collective of
    the plans). ``(results, pending requests)`` for :func:`run`."""
    results: List[Optional[Tensor]] = [None] * len(plans)
    pending: Dict[int, Tuple[str, Tensor]] = {}
    for i in range(len(plans)):
        _advance(plans, results, pending, i, None)
    return results, pending


def _advance(plans: List[Step], results: List[Optional[Tensor]],
             pending: Dict[int, Tuple[str, Tensor]], i: int, value: Optional[Tensor]) -> None:
    try:
        pending[i] = plans[i].send(value)
    except StopIteration as stop:
        results[i] = stop.value


def run(plans: List[Step], group: Any, rank: int, world: int,
        log: Optional[List[Tuple[str, int]]] = None, started: Optional[Tuple[
            List[Optional[Tensor]], Dict[int, Tuple[str, Tensor]]]] = None) -> List[Tensor]:
    """Run the readouts' ``plans`` in lockstep (from ``started``, what :func:`start`
    returned, if given): at every step the requests with the same op and dtype are
    concatenated on the last dim and sent as **one** collective. Every rank runs the same
    plans (their structure depends only on arguments checked to agree), so the
    collectives match. ``log`` collects ``(op, numbers sent)`` per collective."""
    results, pending = started if started is not None else start(plans)
    while pending:
        step, groups = dict(pending), {}
        pending.clear()
        for i, (op, t) in step.items():
            groups.setdefault((op, str(t.dtype)), []).append(i)
        for key in sorted(groups):  # the same order on every rank
            ids = groups[key]
            parts = [step[i][1] for i in ids]
            packed = parts[0] if len(parts) == 1 else torch.cat(parts, -1)
            if log is not None:
                log.append((key[0], packed.numel()))
            out = _collective(key[0], packed, group, rank, world)
            for i, piece in zip(ids, out.split([p.size(-1) for p in parts], -1)):
                _advance(plans, results, pending, i, piece)
    return results  # type: ignore[return-value]
