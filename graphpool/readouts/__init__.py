"""Readout modules (PyG ``Aggregation`` subclasses) and the name resolver."""
from __future__ import annotations

from typing import Any, Union

from ..errors import GraphpoolError, describe
from ..kernels.reductions import ALIASES
from .base import Readout
from .basic import MaxReadout, MeanReadout, MinReadout, SumReadout

__all__ = ["Readout", "SumReadout", "MeanReadout", "MaxReadout", "MinReadout",
           "READOUTS", "resolve_readout"]

READOUTS = {"sum": SumReadout, "mean": MeanReadout, "max": MaxReadout, "min": MinReadout}


def resolve_readout(readout: Union[str, Readout], **kwargs: Any) -> Readout:
    """A readout module from its name (``"sum"``/``"add"``, ``"mean"``, ``"max"``, ``"min"``)
    or an instance (returned as is); ``kwargs`` go to the constructor.

    Example:
        >>> resolve_readout("add")
        SumReadout()
    """
    if isinstance(readout, Readout):
        return readout
    if isinstance(readout, str):
        key = readout.lower()
        key = ALIASES.get(key, key)
        if key in READOUTS:
            return READOUTS[key](**kwargs)
    choices = ", ".join(repr(n) for n in [*READOUTS, *ALIASES])
    raise GraphpoolError("resolve_readout", "readout", f"a Readout or one of {choices}",
                         describe(readout), "pick one of the listed names")
