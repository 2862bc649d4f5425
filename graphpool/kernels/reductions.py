r"""The table of reductions: the extension point of every kernel path.

A reduction is built on a **primitive**, the fold that kernel paths implement:

* :class:`Primitive` — ``sum``, ``max``, ``min`` (and any registered later, e.g. ``prod``):
  its identity (the neutral element: ``0``, ``-inf``, ``+inf``; integer limits for integer
  tensors), its torch forms (the ``reduce=`` names of :func:`torch.segment_reduce` and
  :meth:`torch.Tensor.scatter_reduce`, and a dense reduction over one axis) and its
  gradient rule (``"broadcast"`` for sums, ``"extremum"`` for max/min with the even tie
  split; ``None`` leaves the gradient to torch's autograd of those forms);
* :class:`Reduction` — a primitive plus an optional ``finalize(combined, counts)`` (mean
  divides by the count), as torch_scatter's identity/update/write triple.

The :class:`Reduction` object, never a bare string, flows from :func:`resolve_reduction`
to the path. Every path declares the primitives it implements (``supports``) and the
reductions it fuses with their finalize (``fused``); dispatch only hands a path what it
declared, and a path refuses anything else, so a new entry can never silently run as
another op. The native and dense paths run any primitive from its torch forms, so adding
an op is one definition and one :func:`register_reduction` call:

Example:
    >>> import torch
    >>> from graphpool import readout
    >>> from graphpool.kernels.reductions import Reduction, register_reduction, unregister_reduction
    >>> from graphpool.kernels.reductions import SUM
    >>> register_reduction(Reduction("sum_per_2", SUM, finalize=lambda s, counts: s / 2))
    >>> readout(torch.tensor([[2.], [3.], [5.]]), torch.tensor([0, 0, 1]), "sum_per_2").tolist()
    [[2.5], [2.5]]
    >>> unregister_reduction("sum_per_2")
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Optional, Union

import torch
from torch import Tensor

from ..errors import GraphpoolError

__all__ = ["Primitive", "Reduction", "REDUCTIONS", "ALIASES", "SUM", "MAX", "MIN", "PROD", "HALF",
           "register_reduction", "unregister_reduction", "resolve_reduction"]

Number = Union[int, float]
#: The half types: their sums accumulate in float32, their tie counts are float32.
HALF = (torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class Primitive:
    """A fold that kernel paths implement (see the module docs).

    Args:
        name: its name, e.g. ``"sum"``.
        identity: ``dtype -> value`` neutral element, used to start, pad and fill.
        scatter: the ``reduce=`` of :meth:`torch.Tensor.scatter_reduce` (``None``: none).
        segment: the ``reduce=`` of :func:`torch.segment_reduce` (``None``: none).
        dense: ``(view, dim, keepdim) -> Tensor`` over one axis of a padded view.
        gradient: ``"broadcast"``, ``"extremum"`` or ``None`` (torch's autograd).
    """

    name: str
    identity: Callable[[torch.dtype], Number]
    scatter: Optional[str] = None
    segment: Optional[str] = None
    dense: Optional[Callable[[Tensor, int, bool], Tensor]] = None
    gradient: Optional[str] = None

    def __repr__(self) -> str:
        return f"Primitive({self.name!r})"


def _extreme(lowest: bool) -> Callable[[torch.dtype], Number]:
    def identity(dtype: torch.dtype) -> Number:
        if dtype.is_floating_point:
            return float("-inf") if lowest else float("inf")
        info = torch.iinfo(dtype)
        return info.min if lowest else info.max
    return identity


SUM = Primitive("sum", lambda dtype: 0, scatter="sum", segment="sum",
                dense=lambda v, dim, keepdim: v.sum(dim, keepdim=keepdim), gradient="broadcast")
MAX = Primitive("max", _extreme(lowest=True), scatter="amax", segment="max",
                dense=lambda v, dim, keepdim: v.amax(dim, keepdim=keepdim), gradient="extremum")
MIN = Primitive("min", _extreme(lowest=False), scatter="amin", segment="min",
                dense=lambda v, dim, keepdim: v.amin(dim, keepdim=keepdim), gradient="extremum")


def divide_by_count(combined: Tensor, counts: Tensor) -> Tensor:
    """``combined / max(count, 1)`` per set: the finalize of the mean (and its adjoint)."""
    return combined / counts.clamp(min=1).unsqueeze(-1).to(combined.dtype)


@dataclass(frozen=True)
class Reduction:
    """One op of the table: a :class:`Primitive` and an optional ``finalize``."""

    name: str
    primitive: Primitive
    finalize: Optional[Callable[[Tensor, Tensor], Tensor]] = None
    integer_inputs: bool = True

    def identity(self, dtype: torch.dtype) -> Number:
        return self.primitive.identity(dtype)

    def __repr__(self) -> str:
        return f"Reduction({self.name!r})"


REDUCTIONS: Dict[str, Reduction] = {}
ALIASES: Dict[str, str] = {}


def register_reduction(reduction: Reduction, aliases: Iterable[str] = ()) -> None:
    """Add ``reduction`` (and ``aliases`` of its name) to the table; every readout function
    and module taking a name then knows it. Names are lower case and unique."""
    if not isinstance(reduction, Reduction):
        raise GraphpoolError("register_reduction", "reduction", "a Reduction",
                             repr(reduction), "build one with Reduction(name, primitive)")
    names = [reduction.name, *aliases]
    for name in names:
        if not isinstance(name, str) or name != name.lower() or not name:
            raise GraphpoolError("register_reduction", "name", "a lower-case string",
                                 repr(name), "use lower-case names")
        if name in REDUCTIONS or name in ALIASES:
            raise GraphpoolError("register_reduction", "name", "a name not in the table",
                                 repr(name), "unregister the old entry first, or pick "
                                 "another name")
    REDUCTIONS[reduction.name] = reduction
    ALIASES.update({alias: reduction.name for alias in aliases})


def unregister_reduction(name: str) -> None:
    """Remove the entry ``name`` and its aliases from the table."""
    REDUCTIONS.pop(name, None)
    for alias in [a for a, target in ALIASES.items() if target == name]:
        del ALIASES[alias]


# no segment form: torch.segment_reduce's backward of a product has no derivative of its
# own (double backward would fail on sorted groupings); scatter_reduce's has
PROD = Primitive("prod", lambda dtype: 1, scatter="prod",
                 dense=lambda v, dim, keepdim: v.prod(dim, keepdim=keepdim))


def divide_by_sqrt_count(combined: Tensor, counts: Tensor) -> Tensor:
    """``combined / sqrt(max(count, 1))`` per set: the variance-preserving sum."""
    return combined / counts.clamp(min=1).unsqueeze(-1).to(combined.dtype).sqrt()


register_reduction(Reduction("sum", SUM), aliases=("add",))
register_reduction(Reduction("mean", SUM, finalize=divide_by_count, integer_inputs=False))
register_reduction(Reduction("max", MAX))
register_reduction(Reduction("min", MIN))
# products of integers would wrap around: floats only; torch's autograd of its forms
register_reduction(Reduction("prod", PROD, integer_inputs=False), aliases=("mul",))
register_reduction(Reduction("vpa", SUM, finalize=divide_by_sqrt_count, integer_inputs=False))


def resolve_reduction(name: object, where: str = "segment_reduce") -> Reduction:
    """Look ``name`` up in the table (aliases included); a :class:`Reduction` is taken as
    is; unknown names list the choices."""
    found = REDUCTIONS.get(name) if type(name) is str else None
    if found is not None:  # the common call: a registered name as written
        return found
    if isinstance(name, Reduction):
        return name
    if isinstance(name, str):
        key = ALIASES.get(name.lower(), name.lower())
        if key in REDUCTIONS:
            return REDUCTIONS[key]
    choices = ", ".join(repr(n) for n in [*REDUCTIONS, *ALIASES])
    raise GraphpoolError(where, "reduce", f"one of {choices}", repr(name),
                         "pick one of the listed names")
