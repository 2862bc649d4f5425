"""Readout modules (PyG ``Aggregation`` subclasses) and the name resolver."""
from __future__ import annotations

from typing import Any, Union

from ..errors import GraphpoolError, describe
from ..kernels.reductions import ALIASES as REDUCTION_ALIASES, REDUCTIONS
from .base import Readout
from .basic import MaxReadout, MeanReadout, MinReadout, SumReadout

__all__ = ["Readout", "SumReadout", "MeanReadout", "MaxReadout", "MinReadout",
           "TableReadout", "READOUTS", "ALIASES", "resolve_readout"]

READOUTS = {"sum": SumReadout, "mean": MeanReadout, "max": MaxReadout, "min": MinReadout}
#: Names every resolver accepts for another name (PyG's ``add``, timm's ``avg``); the
#: aliases registered with a reduction (:func:`~graphpool.kernels.reductions.register_reduction`)
#: count too.
ALIASES = {"avg": "mean"}


class TableReadout(Readout):
    r"""The readout of any reduction of the table by its name, e.g. one registered with
    :func:`~graphpool.kernels.reductions.register_reduction` (the basic ones have their
    own classes).

    Example:
        >>> import torch
        >>> TableReadout("max")(torch.tensor([[1.], [3.]]), torch.tensor([0, 0])).tolist()
        [[3.0]]
    """

    def __init__(self, reduce: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reduce = reduce

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reduce!r})"


def readout_names() -> list:
    """Every name :func:`resolve_readout` takes: readouts, reductions, then aliases."""
    return list(dict.fromkeys([*READOUTS, *REDUCTIONS, *REDUCTION_ALIASES, *ALIASES]))


def resolve_readout(readout: Union[str, Readout], *, where: str = "resolve_readout",
                    **kwargs: Any) -> Readout:
    """A readout module from its name or an instance (returned as is); ``kwargs`` go to the
    constructor. Names are case-insensitive: ``"sum"``/``"add"``, ``"mean"``/``"avg"``,
    ``"max"``, ``"min"`` and every reduction registered in the table. This is the one
    resolver behind every module, pooling layer and command that takes a readout name.

    Example:
        >>> resolve_readout("add"), resolve_readout("AVG")
        (SumReadout(), MeanReadout())
    """
    if isinstance(readout, Readout):
        return readout
    if isinstance(readout, str):
        key = readout.lower()
        key = ALIASES.get(key, REDUCTION_ALIASES.get(key, key))
        if key in READOUTS:
            return READOUTS[key](**kwargs)
        if key in REDUCTIONS:
            return TableReadout(key, **kwargs)
    choices = ", ".join(repr(n) for n in readout_names())
    raise GraphpoolError(where, "readout" if where == "resolve_readout" else "reduce",
                         f"a Readout or one of {choices}", describe(readout),
                         "pick one of the listed names, or pass a Readout instance")
