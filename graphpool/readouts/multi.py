r"""Several readouts of one input at once (PyG ``MultiAggregation``; timm's ``catavgmax``)."""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..composite import Passes
from ..errors import GraphpoolError, describe
from ..kernels.checks import check_fill_value
from ..segments import Segments
from .base import Readout

__all__ = ["MultiReadout", "MODES"]

#: How the readouts' results combine: ``cat`` concatenates; ``proj`` concatenates and
#: projects with a linear layer; ``attn`` attends over them (a linear layer per readout, then
#: multi-head self-attention, then the mean); the others reduce the stack of results.
MODES = ("cat", "proj", "attn", "sum", "mean", "max", "min", "logsumexp", "std", "var")
_BASIC = ("sum", "mean", "max", "min")


class MultiReadout(Readout):
    r"""Read out with every readout of ``readouts`` and combine the results:

    .. math::
        y_b = \big[\, r_1(\mathcal{V}_b) \,\|\, r_2(\mathcal{V}_b) \,\|\, \dots \big]
        \quad (\texttt{mode="cat"})

    Readouts that need the same pass over ``x`` (the maximum, the sum or the mean, the
    counts: e.g. ``mean``, ``std`` and ``softmax``) compute it once.

    Args:
        readouts: names or :class:`Readout` instances (resolved like every readout name).
        readouts_kwargs: one dict of constructor arguments per name (PyG's
            ``aggrs_kwargs``).
        in_channels: the input width, for the learnable readouts named in ``readouts``
            (``readouts_kwargs`` may give one its own).
        mode: one of :data:`MODES` (default ``"cat"``).
        mode_kwargs: for ``"proj"`` and ``"attn"``: ``in_channels`` (an int, or one per
            readout: its output width) and ``out_channels``; ``"attn"`` also takes
            ``num_heads`` (and other :class:`torch.nn.MultiheadAttention` arguments),
            ``"proj"`` other :class:`torch.nn.Linear` arguments.
        fill_value: the value of empty sets for the readouts given by name (their
            ``readouts_kwargs`` may give another); :class:`Readout` instances keep their own.

    The output width is :meth:`out_features`; ``mode="cat"`` gives the sum of the readouts'
    widths. Several feature dims (``[N, H, C]`` on ``dim=0``) combine along the last one,
    as in PyG: ``"cat"`` gives ``[B, H, 2C]`` for two readouts that keep the width, and the
    layers of ``"proj"`` and ``"attn"`` map the last axis (``in_channels=C``; see
    docs/readouts.md for readouts that widen on another axis).

    Example:
        >>> import torch
        >>> multi = MultiReadout(["mean", "max"])
        >>> multi(torch.tensor([[1.], [3.]]), torch.tensor([0, 0])).tolist()
        [[2.0, 3.0]]
        >>> multi.out_features(16)
        32
    """

    def __init__(self, readouts: Sequence[Any], readouts_kwargs: Optional[Sequence[Dict]] = None,
                 mode: str = "cat", mode_kwargs: Optional[Dict[str, Any]] = None,
                 in_channels: Optional[int] = None, **kwargs: Any) -> None:
        where = type(self).__name__
        unknown = sorted(set(kwargs) - {"fill_value", "validate"})
        if unknown:  # e.g. readout(x, batch, ["mean", "var"], correction=1)
            raise GraphpoolError(where, unknown[0], "an argument of MultiReadout (the "
                                 "readouts' own arguments go in readouts_kwargs)",
                                 repr(kwargs[unknown[0]]), "pass readouts_kwargs=[{...}, "
                                 "...], one dict per readout, or build the readouts yourself")
        super().__init__(**kwargs)
        from . import resolve_readout  # the one resolver (it also builds MultiReadouts)

        if isinstance(readouts, (str, Readout)) or not isinstance(readouts, (list, tuple)):
            raise GraphpoolError(where, "readouts", "a list of readout names or Readouts",
                                 describe(readouts), "pass e.g. ['mean', 'max']")
        if not readouts:
            raise GraphpoolError(where, "readouts", "a non-empty list", "[]",
                                 "list at least one readout, e.g. ['mean', 'max']")
        if readouts_kwargs is None:
            readouts_kwargs = [{}] * len(readouts)
        if not isinstance(readouts_kwargs, (list, tuple)) or len(readouts_kwargs) != len(
                readouts):
            raise GraphpoolError(where, "readouts_kwargs", f"one dict per readout "
                                 f"({len(readouts)})", describe(readouts_kwargs),
                                 "pass a list of dicts as long as readouts, or None")
        for kw in readouts_kwargs:
            if not isinstance(kw, dict):
                raise GraphpoolError(where, "readouts_kwargs", "one dict of constructor "
                                     "arguments per readout", describe(kw),
                                     "pass e.g. [{}, {'q': 0.9}]")
        # the readouts built here from names fill empty sets with this module's fill_value
        # (unless their readouts_kwargs say otherwise); instances keep their own
        fill = {"fill_value": kwargs["fill_value"]} if "fill_value" in kwargs else {}
        built = []
        for r, kw in zip(readouts, readouts_kwargs):
            kw = dict(kw)
            width = kw.pop("in_channels", in_channels)
            built.append(resolve_readout(r, where=where, argument="readouts", in_channels=width,
                                         **({**fill, **kw} if not isinstance(r, Readout)
                                            else kw)))
        self.readouts = nn.ModuleList(built)
        if mode not in MODES:
            raise GraphpoolError(where, "mode", f"one of {MODES}", repr(mode),
                                 "pass mode='cat' to concatenate")
        self.mode = mode
        if mode_kwargs is not None and not isinstance(mode_kwargs, dict):
            raise GraphpoolError(where, "mode_kwargs", "a dict (or None)",
                                 describe(mode_kwargs), "pass e.g. mode_kwargs=dict("
                                 "in_channels=C, out_channels=D)")
        mode_kwargs = dict(mode_kwargs or {})
        self.out_channels = None
        if mode in ("proj", "attn"):
            given = dict(mode_kwargs)
            in_channels = mode_kwargs.pop("in_channels", None)
            out_channels = mode_kwargs.pop("out_channels", None)
            if _positive_int(in_channels):
                in_channels = [r.out_features(in_channels) for r in self.readouts]
            if (not isinstance(in_channels, (list, tuple)) or len(in_channels) != len(
                    self.readouts) or not all(map(_positive_int, in_channels))
                    or not _positive_int(out_channels)):
                raise GraphpoolError(where, "mode_kwargs", f"in_channels (an int >= 1 or one "
                                     f"per readout) and out_channels (an int >= 1) for "
                                     f"mode={mode!r}", repr(given),
                                     "pass mode_kwargs=dict(in_channels=C, out_channels=D)")
            for flag in ("bias", "add_bias_kv", "add_zero_attn", "batch_first"):
                if flag in mode_kwargs and not isinstance(mode_kwargs[flag], bool):
                    raise GraphpoolError(where, "mode_kwargs", f"{flag}=True or False",
                                         f"{flag}={mode_kwargs[flag]!r}",
                                         f"pass a Python bool, e.g. {flag}=True")
            dropout = mode_kwargs.get("dropout", 0.0)
            if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not (
                    0 <= dropout < 1):
                raise GraphpoolError(where, "mode_kwargs", "dropout in [0, 1)",
                                     f"dropout={dropout!r}", "pass e.g. dropout=0.1")
            self.out_channels = out_channels
            self._in_width = sum(in_channels)
            try:  # torch's own checks (unknown arguments, num_heads not dividing, ...)
                if mode == "proj":
                    self.lin = nn.Linear(sum(in_channels), out_channels, **mode_kwargs)
                else:
                    self.lin_heads = nn.ModuleList([nn.Linear(c, out_channels)
                                                    for c in in_channels])
                    num_heads = mode_kwargs.pop("num_heads", 1)
                    self.multihead_attn = nn.MultiheadAttention(out_channels, num_heads,
                                                                **mode_kwargs)
            except (TypeError, ValueError, AssertionError, RuntimeError) as err:
                raise GraphpoolError(where, "mode_kwargs", f"arguments of "
                                     f"{'nn.Linear' if mode == 'proj' else 'nn.MultiheadAttention'}"
                                     f" for mode={mode!r} ({err})", repr(given),
                                     "pass only in_channels, out_channels and that layer's "
                                     "arguments") from None
        elif mode_kwargs:
            raise GraphpoolError(where, "mode_kwargs", f"nothing for mode={mode!r}",
                                 repr(mode_kwargs), "leave mode_kwargs out")
        # "proj" and "attn" hold fresh weights: readout(x, batch, [...], mode="proj") would
        # give another random answer on every call, so it needs the module
        self.functional = mode not in ("proj", "attn") and all(r.functional
                                                               for r in self.readouts)

    @property
    def restores_features(self) -> bool:  # (a subclass with its own forward: restored after)
        return type(self).forward is MultiReadout.forward

    def forward(self, x: Tensor, segments: Segments,
                trail: Optional[Tuple[int, ...]] = None) -> Tensor:
        """The readouts' results combined; ``trail``: the trailing feature dims of an
        ``x`` of several (flattened here to one): each result is restored to them first, so
        ``"cat"`` concatenates and the layers of ``"proj"`` and ``"attn"`` act along the
        last feature axis, as in PyG's ``MultiAggregation``."""
        share = x.is_floating_point() and sum(
            r.shares_passes or _basic(r) for r in self.readouts) > 1
        passes = Passes(x, segments, type(self).__name__) if share else None
        outs: List[Tensor] = []
        done: List[bool] = []  # results that come with the feature dims already restored
        for r in self.readouts:
            done.append(trail is not None and r.restores_features)
            if done[-1]:  # a MultiReadout inside: it combines along the last axis too
                outs.append(nn.Module.__call__(r, x, segments, trail=trail))
            elif passes is not None and r.shares_passes:
                outs.append(nn.Module.__call__(r, x, segments, passes=passes))
            elif passes is not None and _basic(r):
                outs.append(passes.finish(passes.reduce(r.reduce), r.fill_value))
            else:
                outs.append(nn.Module.__call__(r, x, segments))
        masks = self.fills_empty_sets and segments.has_empty is not False
        empty = segments._counts == 0 if masks else None
        if trail is None:
            return self.combine(outs, empty)
        restored = [o if d else r.restore_features(o, trail)
                    for r, o, d in zip(self.readouts, outs, done)]
        # the feature dims of each result, after the sets (static sizes: the sets and
        # leading dims may be symbolic under torch.export, so only these are compared)
        feats = [tuple(o.shape[x.dim() - 1:]) for o in restored]
        gained = all(len(f) == len(trail) for f in feats)
        if gained and all(f[:-1] == feats[0][:-1] for f in feats):
            if empty is not None:  # one set per entry of the dim before the features
                empty = empty.reshape(*empty.shape, *[1] * (len(trail) - 1))
            return self.combine(restored, empty)
        if self.mode not in ("proj", "attn") and not any(done) and not (
                gained and self.mode != "cat"):
            # flat results (a count, a readout of unknown width) or a quantile's stacked
            # on the first feature dim beside others: combined flat, then restored
            return self.restore_features(self.combine(outs, empty), trail)
        raise GraphpoolError(type(self).__name__, "readouts", f"readouts whose results keep "
                             f"the feature dims {trail} of x but the last, for "
                             f"mode={self.mode!r}", f"results of feature shapes {feats}",
                             "combine readouts that keep the feature dims (several quantiles "
                             "stack on the first), or read out x with its feature dims "
                             "flattened into one")

    @property
    def fills_empty_sets(self) -> bool:
        """Whether :meth:`combine` gives empty sets :attr:`fill_value` itself (every mode
        that combines several results, and the layers of ``"proj"`` / ``"attn"``)."""
        return self.mode != "cat" and (len(self.readouts) > 1 or self.mode in ("proj", "attn"))

    def combine(self, outs: List[Tensor], empty: Optional[Tensor] = None) -> Tensor:
        """The results of the readouts, combined as :attr:`mode` says. Unless they are
        concatenated, the sets marked in ``empty`` (``[*, B]``) get :attr:`fill_value`: a
        combination of the readouts' fills is not one (``logsumexp`` of zeros is
        ``log R``, ``sum`` adds the fills up), and the layers of ``"proj"`` and ``"attn"``
        would give them a learned value (no gradient reaches the layers from them)."""
        if len(outs) == 1 and self.mode not in ("proj", "attn"):
            return outs[0]
        if self.mode == "cat":
            return torch.cat(outs, dim=-1)
        if self.mode in ("proj", "attn"):
            widths = [o.size(-1) for o in outs]
            expected = ([lin.in_features for lin in self.lin_heads] if self.mode == "attn"
                        else None)
            if (sum(widths) != self._in_width if expected is None else widths != expected):
                raise GraphpoolError(type(self).__name__, "mode_kwargs", f"in_channels that "
                                     f"match the readouts' widths {widths}",
                                     f"in_channels giving {expected or self._in_width}",
                                     "pass in_channels=<the number of input features>")
        if self.mode in ("proj", "attn"):
            out = self.lin(torch.cat(outs, dim=-1)) if self.mode == "proj" else self._attend(outs)
            return out if empty is None else out.masked_fill(empty.unsqueeze(-1),
                                                             self.fill_value)
        if any(o.size(-1) != outs[0].size(-1) for o in outs[1:]):  # (no set: sizes may be
            widths = sorted({int(o.size(-1)) for o in outs})       # symbolic, unhashable)
            raise GraphpoolError(type(self).__name__, "readouts", f"readouts of one width for "
                                 f"mode={self.mode!r}", f"widths {widths}",
                                 "use mode='cat' for readouts of different widths")
        stacked = torch.stack(outs)
        if self.mode in ("max", "min"):
            out = getattr(torch, "a" + self.mode)(stacked, 0)
        elif self.mode == "sum" or stacked.is_floating_point():
            out = getattr(torch, self.mode)(stacked, 0)
        else:
            raise GraphpoolError(type(self).__name__, "x", f"a floating point tensor for "
                                 f"mode={self.mode!r}", f"one whose readouts give "
                                 f"{stacked.dtype}", "convert it with x.float(), or use mode "
                                 "'cat', 'sum', 'max' or 'min'")
        if empty is None:
            return out
        fill = check_fill_value(type(self).__name__, self.fill_value, out.dtype)
        return out.masked_fill(empty.unsqueeze(-1), fill)

    def reset_parameters(self) -> None:
        """Every readout's parameters and the layers of ``"proj"`` / ``"attn"``."""
        for r in self.readouts:
            r.reset_parameters()
        if self.mode == "proj":
            self.lin.reset_parameters()
        elif self.mode == "attn":
            for lin in self.lin_heads:
                lin.reset_parameters()
            self.multihead_attn._reset_parameters()

    def _attend(self, outs: List[Tensor]) -> Tensor:
        """``"attn"``: the readouts of each set attend to each other (a sequence of ``R``),
        then their mean; leading dims are sets too."""
        heads = torch.stack([lin(o) for lin, o in zip(self.lin_heads, outs)])  # [R, *, B, D]
        (count, *lead, width) = heads.shape
        heads = heads.reshape(count, math.prod(lead), width)  # [R, prod(*) B, D]
        if self.multihead_attn.batch_first:
            heads = heads.transpose(0, 1)
        out = self.multihead_attn(heads, heads, heads, need_weights=False)[0]
        return out.mean(1 if self.multihead_attn.batch_first else 0).reshape(*lead, width)

    def out_features(self, in_features: int) -> int:
        if self.out_channels is not None:
            return self.out_channels
        widths = [r.out_features(in_features) for r in self.readouts]
        return sum(widths) if self.mode == "cat" else widths[0]

    def __repr__(self) -> str:
        inner = ", ".join(repr(r) for r in self.readouts)
        return f"{type(self).__name__}([{inner}], mode={self.mode!r})"


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _basic(r: Readout) -> bool:
    """A basic readout (sum, mean, max, min) that runs ``segment_reduce`` as it is."""
    return r.reduce in _BASIC and type(r).forward is Readout.forward
