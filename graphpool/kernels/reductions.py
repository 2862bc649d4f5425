r"""The table of reductions: one entry per op.

A reduction is a triple, as in torch_scatter:

* **combine** — the primitive every kernel path implements (``sum``, ``max``, ``min``);
* **identity** — the neutral element of ``combine`` (``0``, ``-inf``, ``+inf``; integer
  limits for integer tensors), used where a path needs a starting or padding value;
* **finalize** — an optional map ``(combined, counts) -> result`` (mean divides by the
  count).

Adding an op is adding one entry to :data:`REDUCTIONS`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch
from torch import Tensor

from ..errors import GraphpoolError

__all__ = ["Reduction", "REDUCTIONS", "ALIASES", "resolve_reduction"]


def _identity(combine: str, dtype: torch.dtype) -> Union[int, float]:
    if combine == "sum":
        return 0
    if dtype.is_floating_point:
        return float("-inf") if combine == "max" else float("inf")
    info = torch.iinfo(dtype)
    return info.min if combine == "max" else info.max


def _divide_by_count(combined: Tensor, counts: Tensor) -> Tensor:
    return combined / counts.clamp(min=1).unsqueeze(-1).to(combined.dtype)


@dataclass(frozen=True)
class Reduction:
    """One op of the table: ``combine`` primitive, its identity, an optional ``finalize``."""

    name: str
    combine: str
    finalize: Optional[Callable[[Tensor, Tensor], Tensor]] = None
    integer_inputs: bool = True

    def identity(self, dtype: torch.dtype) -> Union[int, float]:
        return _identity(self.combine, dtype)


REDUCTIONS = {
    "sum": Reduction("sum", "sum"),
    "mean": Reduction("mean", "sum", finalize=_divide_by_count, integer_inputs=False),
    "max": Reduction("max", "max"),
    "min": Reduction("min", "min"),
}

ALIASES = {"add": "sum"}


def resolve_reduction(name: object, where: str = "segment_reduce") -> Reduction:
    """Look ``name`` up in the table (aliases included); unknown names list the choices."""
    if isinstance(name, str):
        key = ALIASES.get(name.lower(), name.lower())
        if key in REDUCTIONS:
            return REDUCTIONS[key]
    choices = ", ".join(repr(n) for n in [*REDUCTIONS, *ALIASES])
    raise GraphpoolError(where, "reduce", f"one of {choices}", repr(name),
                         "pick one of the listed names")
