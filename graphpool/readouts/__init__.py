"""Readout modules (PyG ``Aggregation`` subclasses) and the one name resolver."""
from __future__ import annotations

import inspect
import math
from typing import Any, Dict, Optional, Tuple, Type, Union

from ..errors import GraphpoolError, describe
from ..kernels.reductions import ALIASES as REDUCTION_ALIASES, REDUCTIONS
from .base import Readout
from .basic import MaxReadout, MeanReadout, MinReadout, SumReadout
from .learnable import AttentionalReadout, DeepSetsReadout, Set2SetReadout, SortReadout
from .multi import MultiReadout
from .transformer import GMTReadout, LatentAttentionReadout, SetTransformerReadout
from .statistic import (CountReadout, GeMReadout, LogSumExpReadout, MedianReadout,
                        PowerMeanReadout, ProdReadout, QuantileReadout, SoftmaxReadout,
                        StdReadout, VarReadout, VPAReadout)

__all__ = ["Readout", "SumReadout", "MeanReadout", "MaxReadout", "MinReadout",
           "VarReadout", "StdReadout", "LogSumExpReadout", "SoftmaxReadout",
           "PowerMeanReadout", "GeMReadout", "MedianReadout", "QuantileReadout",
           "ProdReadout", "VPAReadout", "CountReadout", "AttentionalReadout",
           "Set2SetReadout", "SortReadout", "DeepSetsReadout", "SetTransformerReadout",
           "GMTReadout", "LatentAttentionReadout", "MultiReadout", "TableReadout",
           "READOUTS", "ALIASES", "COMBINATIONS", "resolve_readout", "readout_names",
           "readout_key"]

#: Every readout by name. Learnable readouts that need the input width take
#: ``in_channels`` from the resolver.
READOUTS: Dict[str, Type[Readout]] = {
    "sum": SumReadout, "mean": MeanReadout, "max": MaxReadout, "min": MinReadout,
    "var": VarReadout, "std": StdReadout, "logsumexp": LogSumExpReadout,
    "softmax": SoftmaxReadout, "powermean": PowerMeanReadout, "gem": GeMReadout,
    "median": MedianReadout, "quantile": QuantileReadout, "prod": ProdReadout,
    "vpa": VPAReadout, "count": CountReadout,
    # learnable: built with in_channels
    "attention": AttentionalReadout, "set2set": Set2SetReadout, "sort": SortReadout,
    "deepsets": DeepSetsReadout, "settransformer": SetTransformerReadout, "gmt": GMTReadout,
    "latentattention": LatentAttentionReadout,
}
#: Names every resolver accepts for another name (PyG's class names without
#: ``Aggregation``, timm's ``avg``); the aliases registered with a reduction
#: (:func:`~graphpool.kernels.reductions.register_reduction`) count too.
ALIASES = {"avg": "mean", "lse": "logsumexp", "power_mean": "powermean",
           "variance_preserving": "vpa", "variancepreserving": "vpa", "attentional": "attention",
           "globalattention": "attention", "sortk": "sort", "sort_k": "sort",
           "sortpool": "sort", "sortpooling": "sort", "deep_sets": "deepsets",
           "set_transformer": "settransformer", "graphmultisettransformer": "gmt",
           "latent_attention": "latentattention", "attentionpoollatent": "latentattention"}
#: timm's combinations of readouts, on graphs as on images: name -> (readouts, mode).
COMBINATIONS: Dict[str, Tuple[Tuple[str, ...], str]] = {
    "avgmax": (("mean", "max"), "mean"), "catavgmax": (("mean", "max"), "cat")}


class TableReadout(Readout):
    r"""The readout of any reduction of the table by its name, e.g. one registered with
    :func:`~graphpool.kernels.reductions.register_reduction` (the built-in ones have their
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
    """Every name :func:`resolve_readout` takes: readouts, reductions, combinations, then
    aliases."""
    return list(dict.fromkeys([*READOUTS, *REDUCTIONS, *COMBINATIONS, *REDUCTION_ALIASES,
                               *ALIASES]))


def _key(name: str) -> str:
    key = name.lower()
    for suffix in ("aggregation", "readout"):  # PyG's and graphpool's class names
        if key.endswith(suffix) and key != suffix:
            key = key[:-len(suffix)]
    return ALIASES.get(key, REDUCTION_ALIASES.get(key, key))


def readout_key(name: object) -> Optional[str]:
    """The canonical name of a readout name (``"add"`` -> ``"sum"``,
    ``"SoftmaxAggregation"`` -> ``"softmax"``), or ``None`` for an unknown one.

    Example:
        >>> readout_key("AVG"), readout_key("catavgmax"), readout_key("medoid")
        ('mean', 'catavgmax', None)
    """
    if not isinstance(name, str):
        return None
    key = _key(name)
    return key if key in READOUTS or key in COMBINATIONS or key in REDUCTIONS else None


def resolve_readout(readout: Union[str, Readout, list, tuple], *,
                    where: str = "resolve_readout", argument: str = "readout",
                    in_channels: Any = None, **kwargs: Any) -> Readout:
    """A readout module from its name, an instance (returned as is: ``kwargs`` given with
    it must be what it holds) or a list (their concatenation, a :class:`MultiReadout`);
    ``kwargs`` go to the constructor. Names are
    case-insensitive and may carry PyG's or graphpool's class suffix (``"SoftmaxAggregation"``,
    ``"MeanReadout"``): every name of :data:`READOUTS`, of the reduction table, timm's
    ``"avgmax"`` and ``"catavgmax"``, and the aliases (``"add"``, ``"avg"``, ``"mul"``, ...).
    Learnable readouts that need the input width get ``in_channels``. This is the one
    resolver behind every function, module, pooling layer and command that takes a readout;
    errors name ``where`` (the caller) and ``argument`` (what the user passed the name as).

    Example:
        >>> resolve_readout("add"), resolve_readout("AVG"), resolve_readout("StdAggregation")
        (SumReadout(), MeanReadout(), StdReadout(correction=0))
        >>> resolve_readout(["mean", "max"])
        MultiReadout([MeanReadout(), MaxReadout()], mode='cat')
    """
    if isinstance(readout, Readout):
        return _built(where, argument, readout, kwargs)
    if isinstance(readout, (list, tuple)):
        return MultiReadout(list(readout), in_channels=in_channels, **kwargs)
    if isinstance(readout, str):
        key = _key(readout)
        if key in COMBINATIONS:
            names, mode = COMBINATIONS[key]
            return MultiReadout(list(names), mode=mode, **kwargs)
        cls = READOUTS.get(key)
        if cls is not None:
            if getattr(cls, "needs_in_channels", False):
                if in_channels is None:
                    raise GraphpoolError(where, argument, f"a readout whose width is known: "
                                         f"{readout!r} is learnable and needs the input "
                                         f"width", repr(readout), f"build it yourself, e.g. "
                                         f"{cls.__name__}(in_channels=64, ...), or pass "
                                         f"in_channels= where the readout is named")
                kwargs["in_channels"] = in_channels
            return _construct(where, readout, cls, **kwargs)
        if key in REDUCTIONS:
            return _construct(where, readout, TableReadout, key, **kwargs)
    choices = ", ".join(repr(n) for n in readout_names())
    raise GraphpoolError(where, argument, f"a Readout, a list of readouts or one of {choices}",
                         describe(readout), "pick one of the listed names, or pass a "
                         "Readout instance")


#: The default ``fill_value`` of the functions that take a readout or its name: a value
#: passed explicitly (this object is not) is checked against a built Readout's own.
DEFAULT_FILL_VALUE = 0.0


def _built(where: str, argument: str, module: Readout, kwargs: Dict[str, Any]) -> Readout:
    """A Readout instance keeps the arguments it was built with: one given along with it
    (an option, an explicit ``fill_value``) must be what it holds, else it would be
    silently ignored; it is refused instead."""
    name = type(module).__name__
    for key in sorted(kwargs):
        value = kwargs[key]
        if key == "fill_value" and value is DEFAULT_FILL_VALUE:  # not given: the default
            continue
        if not hasattr(module, key):
            raise GraphpoolError(where, key, f"no {key} with a built Readout as {argument!r} "
                                 f"(it keeps its own arguments)", f"{key}={value!r}",
                                 "remove it (a readout named by a string takes options)")
        own = getattr(module, key)
        if not _same(value, own):
            raise GraphpoolError(where, key, f"{key}={own!r}, what the {name} passed as "
                                 f"{argument!r} holds (a built Readout keeps its arguments)",
                                 f"{key}={value!r}", f"build the module with it: "
                                 f"{name}({key}={value!r})")
    return module


def _same(a: Any, b: Any) -> bool:
    """``a`` and ``b`` as one argument value: equal numbers of the same sign (``nan``
    equals ``nan``; ``0`` and ``0.0`` agree, ``0.0`` and ``-0.0`` do not), or equal
    strings / bools, or sequences of such values (a list of quantiles, say) of one length;
    ``None`` equals only ``None``."""
    if a is None or b is None:
        return a is b
    if isinstance(a, (str, bool)) or isinstance(b, (str, bool)):
        return type(a) is type(b) and a == b
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple))
                and len(a) == len(b) and all(map(_same, a, b)))
    try:
        fa, fb = float(a), float(b)
    except (TypeError, ValueError, RuntimeError):
        return False
    if fa != fa or fb != fb:
        return fa != fa and fb != fb
    return fa == fb and math.copysign(1.0, fa) == math.copysign(1.0, fb)


def _construct(where: str, name: str, cls: Type[Readout], *args: Any, **kwargs: Any
               ) -> Readout:
    """``cls(*args, **kwargs)``; an option that no constructor on the way up takes (e.g.
    ``readout(x, batch, "mean", tt=1)``) is a GraphpoolError naming it, not Python's
    ``TypeError``. Only a failed call is inspected: a constructor that forwards its
    ``**kwargs`` elsewhere (Set2Set's LSTM) is never second-guessed."""
    try:
        return cls(*args, **kwargs)
    except TypeError:
        accepted = _options(cls)
        unknown = sorted(set(kwargs) - accepted)
        if not unknown:
            raise
        options = ", ".join(sorted(accepted - {"self", "reduce"}))
        raise GraphpoolError(where, unknown[0], f"an option of {name!r} ({cls.__name__}): "
                             f"one of {options}", f"{unknown[0]}={kwargs[unknown[0]]!r}",
                             "remove it or correct its spelling") from None


def _options(cls: type) -> set:
    """The keyword names ``cls(...)`` takes: its ``__init__``'s, and up the MRO while
    each passes ``**kwargs`` on (to ``torch.nn.Module``, which takes none)."""
    names: set = set()
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None:
            continue
        if klass.__module__.startswith("torch"):
            break
        params = inspect.signature(init).parameters.values()
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names
