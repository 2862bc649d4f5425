r"""Readouts over node shards: every rank holds some rows of some sets and gets the readout
of the union, with the gradient of the single-process readout of the concatenated rows."""
from __future__ import annotations

from numbers import Number
from typing import Any, List, Optional, Tuple

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..errors import GraphpoolError, describe
from ..readouts import DEFAULT_FILL_VALUE, Readout, resolve_readout
from ..readouts.learnable import _real_rows
from ..resolve import as_segments
from ..segments import Kind, Segments
from .collectives import GradSum, run, start
from .group import check_agreement, raise_everywhere, resolve_group, weights_digest
from .plans import Local, build, describe_readout

__all__ = ["distributed_readout", "DistributedReadout", "BACKWARDS"]

#: ``"replicated"``: every rank computes the same loss of the same output (the backward
#: communicates nothing, or only what the readout needs); ``"sum"``: the objective is the
#: sum of the ranks' losses (one extra SUM all-reduce of the output gradient).
BACKWARDS = ("replicated", "sum")


def distributed_readout(x: Tensor, batch: Any = None, reduce: Any = "sum", *,
                        num_sets: Optional[int] = None, ptr: Optional[Tensor] = None,
                        group: Any = None, backward: str = "replicated",
                        fill_value: Number = DEFAULT_FILL_VALUE, validate: bool = True,
                        log: Optional[List[Tuple[str, int]]] = None,
                        **options: Any) -> Tensor:
    r"""The readout of the union of every rank's rows, on every rank.

    Rank :math:`r` holds rows :math:`x^{(r)}` grouped by its ``batch`` (or ``ptr``, or a
    :class:`~graphpool.Segments`) into the same ``num_sets`` sets :math:`b`; a set may
    have rows on any ranks, or on none (``fill_value``), and a rank may hold no row at all
    (``x`` of shape ``[0, F]``). Every rank gets

    .. math::
        y_b = \mathrm{readout}\Big(\bigcup_r \{x^{(r)}_v : v \in \mathcal{V}^{(r)}_b\}\Big),

    the value the single-process readout gives for the concatenated rows, and, under the
    replicated loss (every rank computes the same loss of ``y``), each rank's gradient is
    that readout's gradient for its rows (max/min ties split evenly over the ranks by a
    global tie count). Communication is ``O(B F)`` numbers per rank, never ``O(N F)``.

    Args:
        x: this rank's ``[*, N_r, F]`` rows (``[N_r]``: one value per row).
        batch: their grouping: a batch vector, a :class:`~graphpool.Segments`, a PyG
            ``Batch``, a padded-batch mask grouping; ``None``: all rows in set 0.
        reduce: a readout name (sum, mean, vpa, max, min, count, var, std, logsumexp,
            softmax, powermean, gem), a list of them, or a :class:`~graphpool.Readout`
            (also a learnable :class:`~graphpool.AttentionalReadout` or a
            :class:`~graphpool.MultiReadout`).
        num_sets: the global number of sets ``B`` (required with a batch vector: a rank
            does not see the sets it holds no row of).
        ptr: a CSR pointer of ``num_sets + 1`` entries, instead of ``batch``.
        group: the process group (default: the default group).
        backward: ``"replicated"`` (default) or ``"sum"`` (the objective is the sum of
            the ranks' different losses): see :data:`BACKWARDS`.
        fill_value: the value of sets without rows on any rank.
        validate: check the local index values (one host sync).
        log: a list that receives ``(op, numbers)`` for each collective.
        options: the named readout's arguments (``t=``, ``p=``, ``correction=``).

    Every rank checks, with one all-gather of 9 numbers, that all ranks passed the same
    ``num_sets``, width, dtype, readout, leading dims, gradient need, ``backward`` and
    learnable weights (a digest of their bits); otherwise every rank raises
    :class:`~graphpool.GraphpoolError`.

    Example (one process; the tests run 2 and 3):
        >>> import os, tempfile, torch, torch.distributed as dist
        >>> init = "file://" + os.path.join(tempfile.mkdtemp(), "rendezvous")
        >>> dist.init_process_group("gloo", init_method=init, rank=0, world_size=1)
        >>> x = torch.tensor([[1.], [3.], [5.]])
        >>> distributed_readout(x, torch.tensor([0, 0, 2]), "mean", num_sets=3).tolist()
        [[2.0], [0.0], [5.0]]
        >>> dist.destroy_process_group()
    """
    where = "distributed_readout"
    try:
        module = _module(where, reduce, fill_value, options)
    except GraphpoolError as error:  # the other ranks wait in the agreement check
        if not (dist.is_available() and dist.is_initialized()):
            raise  # no other rank to tell
        group, _, world = resolve_group(group, where)
        raise_everywhere(where, error, group, world, _device(x, group))
        raise
    return _readout(where, x, batch, module, num_sets, ptr, group, backward, validate, log)


def _module(where: str, reduce: Any, fill_value: Number, options: Any) -> Readout:
    module = resolve_readout(reduce, where=where, argument="reduce", fill_value=fill_value,
                             **options)  # a built one: what is passed must be what it holds
    if not module.functional and not isinstance(reduce, Readout):
        raise GraphpoolError(where, "reduce", "a readout without weights to learn (a "
                             "learnable one needs its module)", repr(module),
                             f"build the module once, on every rank with the same "
                             f"weights, and pass it: {type(module).__name__}(...)")
    return module


def _device(x: Any, group: Any) -> torch.device:
    """Where the agreement check's numbers live: the device of ``x``, or for a rank whose
    ``x`` was rejected, the backend's (nccl: this process's GPU)."""
    if isinstance(x, Tensor):
        return x.device
    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


class DistributedReadout(nn.Module):
    r"""A readout module over node shards: :func:`distributed_readout` with ``readout``
    (a name, a list or a :class:`~graphpool.Readout`, built once, so learnable weights
    such as an attention's gate network or a learnable temperature live here; keep them
    equal on every rank, e.g. with DDP).

    Args:
        readout: what to read out; ``kwargs`` go to its constructor when it is a name.
        group: the process group (default: the default group).
        backward: ``"replicated"`` or ``"sum"`` (see :data:`BACKWARDS`).
        validate: check the local index values.

    Example (one process; the tests run 2 and 3):
        >>> import os, tempfile, torch, torch.distributed as dist
        >>> init = "file://" + os.path.join(tempfile.mkdtemp(), "rendezvous")
        >>> dist.init_process_group("gloo", init_method=init, rank=0, world_size=1)
        >>> pool = DistributedReadout(["mean", "max"])
        >>> pool(torch.tensor([[1.], [3.]]), torch.tensor([0, 0]), num_sets=1).tolist()
        [[2.0, 3.0]]
        >>> dist.destroy_process_group()
    """

    def __init__(self, readout: Any, *, group: Any = None, backward: str = "replicated",
                 validate: bool = True, **kwargs: Any) -> None:
        super().__init__()
        self.readout = resolve_readout(readout, where=type(self).__name__,
                                       argument="readout", **kwargs)
        self.group, self.backward, self.validate = group, backward, validate

    def forward(self, x: Tensor, batch: Any = None, *, num_sets: Optional[int] = None,
                ptr: Optional[Tensor] = None,
                log: Optional[List[Tuple[str, int]]] = None) -> Tensor:
        return _readout(type(self).__name__, x, batch, self.readout, num_sets, ptr,
                        self.group, self.backward, self.validate, log)

    def out_features(self, in_features: int) -> int:
        return self.readout.out_features(in_features)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.readout!r}, backward={self.backward!r})"


def _readout(where: str, x: Any, batch: Any, module: Readout, num_sets: Optional[int],
             ptr: Optional[Tensor], group: Any, backward: str, validate: bool,
             log: Optional[List[Tuple[str, int]]]) -> Tensor:
    group, rank, world = resolve_group(group, where)
    try:  # this rank's own arguments; on every rank the same collectives follow
        flat, seg = _local(where, x, batch, num_sets, ptr, backward, validate)
    except GraphpoolError as error:
        raise_everywhere(where, error, group, world, _device(x, group))
        raise
    grad = torch.is_grad_enabled() and (x.requires_grad or any(
        p.requires_grad for p in module.parameters()))
    failed = None
    try:  # the local part, before any collective of the plans (told in the check)
        plans, finish = build(module, Local(flat, seg, grad, where, world))
        started = start(plans)
    except Exception as error:  # noqa: BLE001 -- raised on every rank by the check
        failed = error
    check_agreement(where, {"num_sets": seg.num_segments, "features": flat.size(-1),
                            "dtype": flat.dtype, "reduce": describe_readout(module),
                            "leading": tuple(flat.shape[:-2]), "gradient": grad,
                            "backward": backward,
                            "weights": weights_digest(module.parameters(), flat.device)},
                    group, world, flat.device, failed)
    out = finish(run(plans, group, rank, world, log, started))
    if backward == "sum" and out.requires_grad:
        out = GradSum.apply(out, group)
    return out.squeeze(-1) if x.dim() == 1 else out


def _local(where: str, x: Any, batch: Any, num_sets: Optional[int], ptr: Optional[Tensor],
           backward: str, validate: bool) -> Tuple[Tensor, Segments]:
    """This rank's rows as ``[*, N, F]`` and their grouping, checked without collectives."""
    if not isinstance(x, Tensor) or x.dim() == 0:
        raise GraphpoolError(where, "x", "a torch.Tensor [*, N, F] or [N]", describe(x),
                             "pass this rank's rows as a tensor (x.new_zeros(0, F) for none)")
    if backward not in BACKWARDS:
        raise GraphpoolError(where, "backward", f"one of {BACKWARDS}", repr(backward),
                             "pass 'replicated' when every rank computes the same loss")
    if num_sets is None and isinstance(batch, Tensor) and ptr is None:
        raise GraphpoolError(where, "num_sets", "the global number of sets (an int), with "
                             "a batch vector", "None", "pass num_sets=B: a rank's batch "
                             "vector does not show the sets it holds no row of")
    flat = x.unsqueeze(-1) if x.dim() == 1 else x
    try:
        seg = as_segments(flat, batch, ptr=ptr, num_segments=num_sets, validate=validate,
                          where=where, _count="num_sets")
    except GraphpoolError as err:
        if err.argument != "num_sets" or num_sets is None:
            raise
        # an id beyond num_sets: the single-process advice (leave it out to infer it) does
        # not hold here, where num_sets is required and global
        raise GraphpoolError(where, "num_sets", err.expected, err.got,
                             "pass the global number of sets, larger than the largest id "
                             "in batch on every rank, or fix this rank's batch") from None
    if seg.kind == Kind.MASK:
        flat, seg = _real_rows(flat, seg)
    elif flat.size(-2) != seg.num_nodes:
        raise GraphpoolError(where, "x", f"{seg.num_nodes} rows on dim -2, one per entry of "
                             "the grouping", describe(x), "pass one entry of batch per row")
    return flat, seg
