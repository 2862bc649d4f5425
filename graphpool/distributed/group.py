r"""The process group of a distributed readout, and the one small collective that checks
that every rank of it called the readout with the same arguments.

:func:`check_agreement` all-gathers 9 int64 numbers per rank (a sentinel, the number of
sets, the feature width, the dtype, the readout, the leading dims, whether a gradient is
needed, the backward mode and a digest of the readout's learnable weights), so every rank
sees the same table and decides the same way: on a mismatch every rank raises the same
:class:`~graphpool.GraphpoolError`, naming the argument and each rank's value; nothing
hangs and nothing is silently wrong. (The readable values are gathered once more, on the
error path only.) A rank whose own arguments were rejected before the check, or whose
readout failed on its rows (the local part runs before the check), sends a failure code
instead of the sentinel, so that error too is raised on every rank, naming that rank.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
from torch import Tensor

from ..errors import GraphpoolError, describe

__all__ = ["resolve_group", "check_agreement", "weights_digest", "FIELDS", "raise_everywhere"]

#: What the ranks must agree on, in order: (field, argument named in the error, what it is).
FIELDS: Tuple[Tuple[str, str, str], ...] = (
    ("num_sets", "num_sets", "the global number of sets"),
    ("features", "x", "the number of features (last dim of x)"),
    ("dtype", "x", "the dtype of x"),
    ("reduce", "reduce", "the readout"),
    ("leading", "x", "the leading dims of x (before the node axis)"),
    ("gradient", "x", "whether a gradient is needed (x.requires_grad or learnable weights, "
     "with grad mode on)"),
    ("backward", "backward", "the backward mode"),
    ("weights", "reduce", "the readout's learnable weights (a digest of their bits)"),
)
_SENTINEL = 0x6770  # "gp": a rank that sends something else is not running this check
_FAILED = 0x6771  # a rank whose own arguments were rejected before the check
_FAILED_LOCAL = 0x6772  # a rank whose local part failed (its fields are valid)

_INIT_FIX = ("initialise it in every process first: torch.distributed.init_process_group("
             "'gloo') on CPU or 'nccl' on GPUs (with MASTER_ADDR/MASTER_PORT, rank and "
             "world_size, or init_method='tcp://host:port'), or launch the script with "
             "torchrun --nproc-per-node N, which sets them")


def resolve_group(group: Any, where: str) -> Tuple[Any, int, int]:
    """``(group, rank, world_size)`` for ``group`` (``None``: the default group). A
    process group that is not initialised, or a rank outside ``group``, is an error that
    says how to set one up."""
    if not dist.is_available():
        raise GraphpoolError(where, "group", "a torch.distributed process group",
                             "a torch build without torch.distributed",
                             "install a torch build with distributed support")
    if not dist.is_initialized():
        raise GraphpoolError(where, "group", "an initialised torch.distributed process "
                             "group", "no default process group (torch.distributed is not "
                             "initialised)", _INIT_FIX)
    if group is not None and not isinstance(group, dist.ProcessGroup):
        raise GraphpoolError(where, "group", "None (the default group) or a "
                             "torch.distributed ProcessGroup (from dist.new_group)",
                             describe(group), "pass group=dist.new_group(ranks) or leave it "
                             "out")
    rank = dist.get_rank(group)
    if rank < 0:
        raise GraphpoolError(where, "group", "a process group this rank belongs to",
                             f"a group without global rank {dist.get_rank()}",
                             "call the readout only on the ranks of the group")
    return group, rank, dist.get_world_size(group)


def _code(value: Any) -> int:
    """A stable int64 code of ``value``: ints as they are, the rest by the 32-bit FNV-1a
    hash of its ``repr`` (plain Python, which ``torch.compile`` folds into a constant)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    code = 0x811C9DC5
    for char in repr(value):
        code = ((code ^ ord(char)) * 0x01000193) & 0xFFFFFFFF
    return code


def weights_digest(params: Iterable[Tensor], device: torch.device) -> Tensor:
    """An int64 digest of the bits of ``params`` (order and position weighted, summed with
    integer wrap-around, so the same on every rank for the same weights whatever the
    reduction order), computed on ``device`` without a host sync; 0 without weights.

    Example:
        >>> import torch
        >>> a, b = torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)
        >>> _ = b.load_state_dict(a.state_dict())
        >>> cpu = torch.device("cpu")
        >>> bool(weights_digest(a.parameters(), cpu) == weights_digest(b.parameters(), cpu))
        True
        >>> _ = b.bias.data.add_(1e-7)
        >>> bool(weights_digest(a.parameters(), cpu) == weights_digest(b.parameters(), cpu))
        False
    """
    total = torch.zeros((), dtype=torch.int64, device=device)
    for i, p in enumerate(params):
        flat = p.detach().reshape(-1)
        bits = flat.view(_INT_OF_SIZE[flat.element_size()]).to(torch.int64)
        place = torch.arange(1, bits.numel() + 1, dtype=torch.int64, device=flat.device)
        total = total + ((bits * place).sum() * (2 * i + 3) + bits.numel()).to(device)
    return total


_INT_OF_SIZE = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def check_agreement(where: str, values: Dict[str, Any], group: Any, world: int,
                    device: torch.device, failed: Optional[BaseException] = None) -> None:
    """All-gather the codes of ``values`` (keys: :data:`FIELDS`; ``"weights"`` an int64
    tensor from :func:`weights_digest`, optional) and raise the same
    :class:`~graphpool.GraphpoolError` on every rank if any field differs between ranks.
    ``failed``: an error of this rank's local part (raised on every rank, after the
    fields' check, when the fields agree).

    Example (one process, so nothing can disagree):
        >>> import os, tempfile, torch, torch.distributed as dist
        >>> init = "file://" + os.path.join(tempfile.mkdtemp(), "rendezvous")
        >>> dist.init_process_group("gloo", init_method=init, rank=0, world_size=1)
        >>> check_agreement("doctest", {"num_sets": 2, "features": 3, "dtype": torch.float32,
        ...                 "reduce": "mean", "leading": (), "gradient": False,
        ...                 "backward": "replicated"}, None, 1, torch.device("cpu"))
        >>> dist.destroy_process_group()
    """
    _agree(where, values, group, world, device, failed, _FAILED_LOCAL)


def raise_everywhere(where: str, error: GraphpoolError, group: Any, world: int,
                     device: torch.device) -> None:
    """Raise ``error``, found in this rank's own arguments before the agreement check, on
    **every** rank: this rank joins the check's all-gather with a failure code instead
    of its values (the others are waiting in it), so every rank raises the same
    :class:`~graphpool.GraphpoolError`, naming the argument and the failing ranks."""
    _agree(where, {}, group, world, device, error, _FAILED)


def _agree(where: str, values: Dict[str, Any], group: Any, world: int, device: torch.device,
           failed: Optional[BaseException], code: int) -> None:
    if failed is None or code == _FAILED_LOCAL:
        values = {"weights": torch.zeros((), dtype=torch.int64, device=device), **values}
        head = [_SENTINEL if failed is None else code,
                *(_code(values[f]) for f, _, _ in FIELDS[:-1])]
        codes = torch.cat([torch.tensor(head, dtype=torch.int64, device=device),
                           values["weights"].reshape(1).to(device)])
    else:
        codes = torch.tensor([_FAILED] + [0] * len(FIELDS), dtype=torch.int64, device=device)
    table = [torch.empty_like(codes) for _ in range(world)]
    dist.all_gather(table, codes, group=group)
    rows = torch.stack(table).cpu()
    early, local = bool((rows[:, 0] == _FAILED).any()), bool((rows[:, 0] == _FAILED_LOCAL).any())
    if early or (local and bool((rows[:, 1:] == rows[0, 1:]).all())):  # else: the fields'
        # error below explains it (a local part fails on a rank that got other arguments)
        errors: List[Optional[Tuple[str, str, str, Optional[str]]]] = [None] * world
        dist.all_gather_object(errors, _fields(failed), group=group)
        first = next(e for e in errors if e is not None)
        got = "; ".join(f"rank {r}: {e[2]}" for r, e in enumerate(errors) if e is not None)
        raise GraphpoolError(where, first[0], first[1], got, first[3]) from failed
    if bool((rows == rows[0]).all()):
        return
    markers = torch.tensor([_SENTINEL, _FAILED_LOCAL], device=rows.device)
    if bool((~torch.isin(rows[:, 0], markers)).any()):
        raise GraphpoolError(where, "group", "every rank of the group in the same call of a "
                             "graphpool.distributed readout", "a rank in another collective",
                             "call the distributed readout on every rank, in the same order")
    shown: List[Optional[Dict[str, str]]] = [None] * world
    dist.all_gather_object(shown, {f: _show(values[f]) for f, _, _ in FIELDS}, group=group)
    for column, (field, argument, what) in enumerate(FIELDS, start=1):
        if bool((rows[:, column] != rows[0, column]).any()):
            got = ", ".join(f"rank {r}: {shown[r][field]}" for r in range(world))
            raise GraphpoolError(where, argument, f"{what} to be the same on every rank",
                                 got, _fix(field))


def _fields(error: Optional[BaseException]) -> Optional[Tuple[str, str, str, Optional[str]]]:
    """``(argument, expected, got, fix)`` of a rank's error, for the other ranks' message;
    another exception than a GraphpoolError was raised by the readout's own part on this
    rank's rows (its networks: e.g. a batch norm in training mode on one row)."""
    if error is None:
        return None
    if isinstance(error, GraphpoolError):
        return error.argument, error.expected, str(error.got), error.fix
    return ("reduce", "a readout whose local part runs on every rank's rows",
            f"{type(error).__name__}: {error}", "make the readout's networks work on any "
            "number of rows, on every rank (batch norm in training mode needs 2 rows: use "
            "eval mode or a LayerNorm)")


def _show(value: Any) -> str:
    if isinstance(value, Tensor):  # the weights' digest
        return f"digest {int(value) & 0xFFFFFFFFFFFFFFFF:016x}"
    if isinstance(value, torch.dtype):
        return str(value).replace("torch.", "")
    if isinstance(value, Sequence) and not isinstance(value, str):
        return str(tuple(value))
    return value if isinstance(value, str) and value.startswith(("'", "<")) else repr(value)


def _fix(field: str) -> str:
    return {
        "num_sets": "pass the same num_sets (the number of sets of the whole batch, not of "
                    "this rank's nodes) on every rank",
        "features": "give every rank the same feature width; a rank without nodes passes "
                    "x.new_zeros(0, F)",
        "dtype": "convert x to the same dtype on every rank",
        "reduce": "call the same readout with the same arguments on every rank",
        "leading": "give x the same leading dims on every rank",
        "gradient": "make x require grad on every rank or on none (a rank without nodes "
                    "passes a zero-row tensor with requires_grad=True), and use the same "
                    "grad mode",
        "backward": "pass the same backward= on every rank",
        "weights": "give the readout the same weights on every rank: build it after "
                   "torch.manual_seed(s) with the same s, load one state_dict, or wrap the "
                   "model in DistributedDataParallel (it broadcasts rank 0's)",
    }[field]
