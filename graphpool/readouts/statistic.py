r"""Statistic readouts: var, std, logsumexp, softmax, power mean / GeM, median, quantile,
prod, variance-preserving sum and count — each a module over one function of
:mod:`graphpool.composite` (or one entry of the reduction table)."""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ..composite import (INTERPOLATIONS, Passes, segment_count, segment_logsumexp,
                         segment_power_mean, segment_quantile, segment_softmax_sum,
                         segment_std, segment_var)
from ..composite.dense import _check_q
from ..composite.stats import _check_correction
from ..errors import GraphpoolError
from ..segments import Segments, check_count
from .base import Readout

__all__ = ["VarReadout", "StdReadout", "LogSumExpReadout", "SoftmaxReadout",
           "PowerMeanReadout", "GeMReadout", "MedianReadout", "QuantileReadout",
           "ProdReadout", "VPAReadout", "CountReadout"]


class _Statistic(Readout):
    """A readout whose forward shares passes (max, mean, counts) with others of the same
    input (see :class:`~graphpool.readouts.multi.MultiReadout`)."""

    shares_passes = True

    def forward(self, x: Tensor, segments: Segments,
                passes: Optional[Passes] = None) -> Tensor:
        raise NotImplementedError


class VarReadout(_Statistic):
    r"""Variance of each set (PyG ``VarAggregation``), computed without cancellation; see
    :func:`~graphpool.composite.segment_var`.

    Args:
        correction: 0 (default, PyG's population variance) or 1 (sample variance).

    Example:
        >>> import torch
        >>> VarReadout()(torch.tensor([[1.], [3.], [7.]]), torch.tensor([0, 0, 1])).tolist()
        [[1.0], [0.0]]
    """

    def __init__(self, correction: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.correction = _check_correction(correction, type(self).__name__)

    def forward(self, x, segments, passes=None):
        return segment_var(x, segments, correction=self.correction,
                           fill_value=self.fill_value, passes=passes, _where=type(self).__name__)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(correction={self.correction})"


class StdReadout(VarReadout):
    r"""Standard deviation of each set (PyG ``StdAggregation``); 0 with gradient 0 at zero
    variance, see :func:`~graphpool.composite.segment_std`.

    Example:
        >>> import torch
        >>> StdReadout()(torch.tensor([[1.], [3.]]), torch.tensor([0, 0])).tolist()
        [[1.0]]
    """

    def forward(self, x, segments, passes=None):
        return segment_std(x, segments, correction=self.correction,
                           fill_value=self.fill_value, passes=passes, _where=type(self).__name__)


class LogSumExpReadout(_Statistic):
    r"""Stable :math:`\log\sum_v e^{x_v}` of each set; see
    :func:`~graphpool.composite.segment_logsumexp`.

    Example:
        >>> import torch
        >>> LogSumExpReadout()(torch.zeros(2, 1), torch.tensor([0, 0])).exp().tolist()
        [[2.0]]
    """

    def forward(self, x, segments, passes=None):
        return segment_logsumexp(x, segments, fill_value=self.fill_value, passes=passes,
                                 _where=type(self).__name__)


def _scalar_or_parameter(where: str, name: str, value: Any, learn: bool, channels: Any,
                         positive: bool) -> Union[float, nn.Parameter]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
            value) or (positive and not value > 0):
        expected = "a finite number" + (" > 0" if positive else "")
        raise GraphpoolError(where, name, expected, repr(value), f"pass e.g. {name}=1.0")
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise GraphpoolError(where, "channels", "an int >= 1 (1: one value for all "
                             "features, F: one per feature)", repr(channels),
                             "pass channels=1 or the number of features")
    if not learn:
        if channels != 1:
            raise GraphpoolError(where, "channels", "1 when learn=False", channels,
                                 "pass learn=True for one learnable value per channel")
        return float(value)
    return nn.Parameter(torch.full((channels,), float(value)))


def _reset(value: Union[float, nn.Parameter], initial: float) -> None:
    if isinstance(value, nn.Parameter):
        with torch.no_grad():
            value.fill_(initial)


def _check_channels(module: nn.Module, x: Tensor) -> None:
    """``channels`` learnable values are one per feature of ``x`` (or one for all): any other
    count would broadcast to a different width, or silently widen a 1-feature input."""
    if module.channels not in (1, x.size(-1)):
        raise GraphpoolError(type(module).__name__, "channels", f"1 or the number of features "
                             f"of x ({x.size(-1)})", module.channels,
                             "build it with channels=1" + (f" or channels={x.size(-1)}"
                                                           if x.size(-1) > 1 else ""))


class SoftmaxReadout(_Statistic):
    r"""Softmax-weighted sum with temperature ``t`` (PyG ``SoftmaxAggregation``): ``t -> 0``
    is the mean, ``t -> inf`` the maximum; see
    :func:`~graphpool.composite.segment_softmax_sum`.

    Args:
        t: the temperature (initial value when learnable).
        learn: make ``t`` a parameter.
        channels: number of learnable temperatures (1, or one per feature).

    Example:
        >>> import torch
        >>> x, batch = torch.tensor([[1.], [3.]]), torch.tensor([0, 0])
        >>> SoftmaxReadout(t=0.0)(x, batch).tolist(), SoftmaxReadout(t=50.)(x, batch).tolist()
        ([[2.0]], [[3.0]])
    """

    def __init__(self, t: float = 1.0, learn: bool = False, channels: int = 1,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.learn, self.channels = learn, channels
        self.t = _scalar_or_parameter(type(self).__name__, "t", t, learn, channels, False)
        self._initial = float(t)

    def reset_parameters(self) -> None:
        """A learnable ``t`` back to its initial value (as PyG's aggregation does)."""
        _reset(self.t, self._initial)

    def forward(self, x, segments, passes=None):
        _check_channels(self, x)
        return segment_softmax_sum(x, segments, self.t, fill_value=self.fill_value,
                                   passes=passes, _where=type(self).__name__)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(learn={self.learn})"


class PowerMeanReadout(_Statistic):
    r"""Sign-safe power mean :math:`f^{-1}(\frac1n\sum_v f(x_v))`,
    :math:`f(x) = \operatorname{sign}(x)|x|^p` (PyG ``PowerMeanAggregation`` on positive
    inputs, without its clamp to ``[1e-4, 100]``); see
    :func:`~graphpool.composite.segment_power_mean`.

    Args:
        p: the power, > 0 (initial value when learnable). A learnable ``p`` is used as
            ``max(p, 0.01)``, so training never takes it to 0 or below.
        learn: make ``p`` a parameter.
        channels: number of learnable powers (1, or one per feature).

    Example:
        >>> import torch
        >>> PowerMeanReadout(p=2.)(torch.tensor([[1.], [7.]]), torch.tensor([0, 0])).tolist()
        [[5.0]]
    """

    def __init__(self, p: float = 1.0, learn: bool = False, channels: int = 1,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.learn, self.channels = learn, channels
        self.p = _scalar_or_parameter(type(self).__name__, "p", p, learn, channels, True)
        self._initial = float(p)

    def reset_parameters(self) -> None:
        """A learnable ``p`` back to its initial value (as PyG's aggregation does)."""
        _reset(self.p, self._initial)

    def forward(self, x, segments, passes=None):
        _check_channels(self, x)
        p = self.p.clamp(min=0.01) if isinstance(self.p, Tensor) else self.p
        return segment_power_mean(x, segments, p, fill_value=self.fill_value, passes=passes,
                                  _where=type(self).__name__)

    def __repr__(self) -> str:
        p = f"{self.p:g}" if not isinstance(self.p, Tensor) else "learnable"
        return f"{type(self).__name__}(p={p})"


class GeMReadout(PowerMeanReadout):
    r"""Generalised-mean (GeM) pooling (Radenović et al. 2018): a power mean with a learnable
    ``p``, initially 3 — image retrieval's pooling, here on any node set.

    Example:
        >>> import torch
        >>> gem = GeMReadout()
        >>> round(gem(torch.tensor([[1.], [2.]]), torch.tensor([0, 0])).item() ** 3, 5)
        4.5
    """

    def __init__(self, p: float = 3.0, learn: bool = True, channels: int = 1,
                 **kwargs: Any) -> None:
        super().__init__(p=p, learn=learn, channels=channels, **kwargs)


class QuantileReadout(Readout):
    r"""The ``q``-quantile(s) of each set (PyG ``QuantileAggregation``); a list of ``q``
    concatenates them (``len(q) * F`` features). See
    :func:`~graphpool.composite.segment_quantile`.

    Args:
        q: a number in ``[0, 1]`` or a list of them.
        interpolation: ``"linear"``, ``"lower"``, ``"higher"``, ``"nearest"`` or
            ``"midpoint"``.
        max_num_nodes: the padded size of the sets (at least the largest set); by
            default the largest set, read from the counts (one host read, which
            ``torch.compile(fullgraph=True)`` cannot trace over an index or ptr).

    Example:
        >>> import torch
        >>> x = torch.tensor([[1.], [2.], [3.], [4.]])
        >>> QuantileReadout([0.25, 0.5])(x, torch.tensor([0, 0, 0, 0])).tolist()
        [[1.75, 2.5]]
    """

    def __init__(self, q: Union[float, Sequence[float]] = 0.5, interpolation: str = "linear",
                 max_num_nodes: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        where = type(self).__name__
        self._qs, _ = _check_q(where, q)
        if interpolation not in INTERPOLATIONS:
            raise GraphpoolError(where, "interpolation", f"one of {INTERPOLATIONS}",
                                 repr(interpolation), "pass e.g. interpolation='linear'")
        self.q, self.interpolation = q, interpolation
        self.max_num_nodes = (None if max_num_nodes is None else
                              check_count(where, "max_num_nodes", max_num_nodes, 1))

    def forward(self, x: Tensor, segments: Segments) -> Tensor:
        return segment_quantile(x, segments, self.q, self.interpolation,
                                fill_value=self.fill_value, max_num_nodes=self.max_num_nodes,
                                _where=type(self).__name__)

    def out_features(self, in_features: int) -> int:
        return len(self._qs) * in_features

    def restore_features(self, out: Tensor, trail: Tuple[int, ...]) -> Tensor:
        """Several ``q`` over trailing dims ``trail``: the quantiles stack on the first of
        them, ``[*, B, len(q) * trail[0], *trail[1:]]``, as PyG's aggregation gives."""
        if len(self._qs) == 1 or not trail:
            return super().restore_features(out, trail)
        return out.reshape(*out.shape[:-1], len(self._qs) * trail[0], *trail[1:])

    def _extra(self) -> str:
        return "" if self.max_num_nodes is None else f", max_num_nodes={self.max_num_nodes}"

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(q={self.q!r}, interpolation={self.interpolation!r}"
                f"{self._extra()})")


class MedianReadout(QuantileReadout):
    r"""The median of each set (PyG ``MedianAggregation``): the lower median by default, an
    element of the set; ``interpolation="linear"`` averages the two middle ones.

    Example:
        >>> import torch
        >>> MedianReadout()(torch.tensor([[4.], [1.], [3.], [2.]]), torch.tensor([0] * 4)).tolist()
        [[2.0]]
    """

    def __init__(self, interpolation: str = "lower", **kwargs: Any) -> None:
        if "q" in kwargs:
            raise GraphpoolError(type(self).__name__, "q", "no q (the median is q = 0.5)",
                                 f"q={kwargs['q']!r}", "use QuantileReadout(q=...) or the "
                                 "'quantile' readout for other quantiles")
        super().__init__(0.5, interpolation, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(interpolation={self.interpolation!r}{self._extra()})"


class ProdReadout(Readout):
    r"""Product of each set, :math:`\prod_{v \in \mathcal{V}_b} x_v` (PyG
    ``MulAggregation``); the ``prod`` entry of the reduction table.

    Example:
        >>> import torch
        >>> ProdReadout()(torch.tensor([[2.], [3.], [5.]]), torch.tensor([0, 0, 1])).tolist()
        [[6.0], [5.0]]
    """

    reduce = "prod"


class VPAReadout(Readout):
    r"""Variance-preserving sum :math:`\frac{1}{\sqrt{n_b}}\sum_{v} x_v` (Schneckenreiter et
    al. 2024; PyG ``VariancePreservingAggregation``): unit-variance inputs give
    unit-variance outputs whatever the set size. The ``vpa`` entry of the table.

    Example:
        >>> import torch
        >>> VPAReadout()(torch.ones(4, 1), torch.tensor([0, 0, 0, 0])).tolist()
        [[2.0]]
    """

    reduce = "vpa"


class CountReadout(Readout):
    r"""The number of nodes of each set, :math:`n_b`, as one feature (``[*, B, 1]``; the
    readout that tells sets apart by size alone). See
    :func:`~graphpool.composite.segment_count`.

    Example:
        >>> import torch
        >>> CountReadout()(torch.ones(3, 4), torch.tensor([0, 1, 1])).tolist()
        [[1.0], [2.0]]
    """

    def forward(self, x: Tensor, segments: Segments) -> Tensor:
        return segment_count(x, segments, fill_value=self.fill_value,
                             _where=type(self).__name__)

    def out_features(self, in_features: int) -> int:
        return 1
