r"""What can each readout tell apart? Two measurements on the synthetic families.

* **Exact distinguishability** (:func:`distinguishability`): encode node types with
  random vectors (injective almost surely), optionally run untrained message passing,
  read out both graphs of a pair and check whether the readouts differ by more than a
  bound on float64 rounding (:func:`rounding_floor`), so the answer is the same on
  every machine. No training: it measures what the readout *keeps*.
* **Learned accuracy** (:func:`learned_accuracy`): train a small classifier (node
  encoder -> readout -> MLP) on a family's task and report held-out accuracy, mean and
  standard deviation over seeds. It measures what can be *learned* through the readout.

Columns are every readout of :data:`graphpool.READOUTS` (the statistic readouts and
any learnable one registered there) and the edge readouts ``edge`` (sum of squared
feature differences over edges) and ``edge-dir`` (the same per edge direction); see
:func:`readout_names`. Statistic readouts are built with their default arguments.
Learnable readouts (a class attribute ``needs_in_channels = True``) are built with
``in_channels`` the node-state width; in the exact matrix their weights are drawn at
random from a fixed seed, once per trial (see :func:`distinguishability`), and in the
learned one they are trained with the rest of the model.
"""
from __future__ import annotations

import math
import statistics
from fractions import Fraction
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data
from torch_geometric.nn import GINConv

from ..errors import GraphpoolError
from ..kernels import segment_reduce
from ..readouts import (READOUTS, CountReadout, GeMReadout, LogSumExpReadout, MaxReadout,
                        MeanReadout, MedianReadout, MinReadout, PowerMeanReadout, ProdReadout,
                        QuantileReadout, SoftmaxReadout, StdReadout, SumReadout,
                        TableReadout, VarReadout, VPAReadout, readout_key, resolve_readout)
from ..readouts.edge import EdgeEnergyReadout
from ..segments import Segments
from .families import NUM_EDGE_TYPES, Family, Task, resolve_families
from .matrix import Matrix

__all__ = ["readout_names", "resolve_readout_names", "is_learnable", "GraphReadout",
           "random_node_states", "node_states_with_error", "rounding_floor",
           "has_error_bound", "distinguishability", "ReadoutClassifier", "train_and_test",
           "learned_accuracy", "ENCODERS", "UNIT_ROUNDOFF", "TANH_ERROR",
           "ELEMENTARY_ERROR", "MODEL_TOLERANCE", "FLOOR_SAFETY"]

_EDGE_READOUTS = {"edge": None, "edge-dir": NUM_EDGE_TYPES}

#: Node encoders of :class:`ReadoutClassifier`.
ENCODERS = ("mlp", "gin")


def readout_names() -> Tuple[str, ...]:
    """The readout columns: every name of :data:`graphpool.READOUTS`, then the edge readouts.

    Example:
        >>> readout_names()[:4], readout_names()[-2:]
        (('sum', 'mean', 'max', 'min'), ('edge', 'edge-dir'))
        >>> {"var", "softmax", "quantile", "count"} <= set(readout_names())
        True
    """
    return (*READOUTS, *_EDGE_READOUTS)


def resolve_readout_names(names: Optional[Sequence[str]] = None,
                          where: str = "resolve_readout_names") -> Tuple[str, ...]:
    """Check readout column names; ``None`` means all of :func:`readout_names`. The
    resolver's other names for a readout of :data:`graphpool.READOUTS` (``"add"``,
    ``"AVG"``, ``"SoftmaxAggregation"``, ...) give its column.

    Example:
        >>> resolve_readout_names(["mean", "median", "edge"])
        ('mean', 'median', 'edge')
        >>> resolve_readout_names(["add", "AVG", "lse"])
        ('sum', 'mean', 'logsumexp')
        >>> resolve_readout_names(["medoid"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        graphpool.errors.GraphpoolError: resolve_readout_names: invalid 'readouts': \
expected names from 'sum', 'mean', 'max', 'min', ..., got 'medoid'. Fix: ...
    """
    choices = readout_names()
    if names is None:
        return choices
    resolved = []
    for name in names:
        column = name if name in choices else readout_key(name)
        if column not in choices:
            raise GraphpoolError(where, "readouts", "names from " + ", ".join(
                repr(c) for c in choices), repr(name), "pick from the listed names")
        resolved.append(column)
    return tuple(resolved)


def is_learnable(name: str) -> bool:
    """Whether the column ``name`` is a learnable readout: its class in
    :data:`graphpool.READOUTS` has ``needs_in_channels = True`` (it is built with the
    input width, and has weights).

    Example:
        >>> is_learnable("sum"), is_learnable("edge")
        (False, False)
    """
    cls = READOUTS.get(name)
    return bool(getattr(cls, "needs_in_channels", False))


class GraphReadout(nn.Module):
    r"""One column of the matrix: reads out node states ``h`` of a PyG batch, by name.

    A node readout :math:`y_b = \bigoplus_{v \in \mathcal{V}_b} h_v` for the names of
    :data:`graphpool.READOUTS`, built with :func:`graphpool.resolve_readout` and its
    default arguments; ``"edge"`` is
    :math:`y_b = \sum_{(u,v) \in \mathcal{E}_b} (h_u - h_v)^{\odot 2}` and ``"edge-dir"``
    the same per edge direction (the batch's ``edge_type``), concatenated.
    A learnable readout (:func:`is_learnable`) needs ``in_channels``, the width of ``h``,
    and draws its weights from torch's global random state, as any module does.
    ``validate=False`` skips the index checks (one host sync per call) for trusted
    batches, as in training. The output width is :meth:`out_features`.

    Example:
        >>> import torch
        >>> from graphpool.analysis.families import grid_image, to_pyg
        >>> batch = Batch.from_data_list([to_pyg(grid_image("vertical", 2, 2), "ab")])
        >>> GraphReadout("edge-dir")(batch.x, batch).tolist()  # 4 row edges, 0 column edges
        [[4.0, 4.0, 0.0, 0.0]]
        >>> GraphReadout("count")(batch.x, batch).tolist(), GraphReadout("count").out_features(2)
        ([[4.0]], 1)
    """

    def __init__(self, name: str, *, in_channels: Optional[int] = None,
                 validate: bool = True) -> None:
        super().__init__()
        self.name = resolve_readout_names([name], type(self).__name__)[0]
        self.learnable = is_learnable(self.name)
        if self.name in _EDGE_READOUTS:
            self.inner = EdgeEnergyReadout(num_edge_types=_EDGE_READOUTS[self.name],
                                           validate=validate)
        else:
            self.inner = resolve_readout(self.name, where=type(self).__name__, argument="name",
                                         in_channels=in_channels if self.learnable else None,
                                         validate=validate)

    def forward(self, h: Tensor, batch: Batch, segments: Optional[Segments] = None) -> Tensor:
        """Read out ``h`` per graph of ``batch``; ``segments``, the batch's grouping of the
        nodes when the caller has it, saves resolving it again on every call."""
        grouping = batch if segments is None else segments
        if isinstance(self.inner, EdgeEnergyReadout):
            types = getattr(batch, "edge_type", None) if self.inner.num_edge_types else None
            if self.inner.num_edge_types and types is None:
                raise GraphpoolError(type(self).__name__, "batch", "a PyG batch with an "
                                     "edge_type attribute for 'edge-dir'", "none",
                                     "build the graphs with families.to_pyg, or set "
                                     "data.edge_type (0 = along a row, 1 = along a column)")
            return self.inner(h, batch.edge_index, grouping, types)
        return self.inner(h, grouping)

    def out_features(self, in_features: int) -> int:
        """The output width for node states of width ``in_features``: the readout's own
        :meth:`~graphpool.Readout.out_features` (1 for ``count``, ``len(q) F`` for several
        quantiles, ...), ``T F`` for ``edge-dir`` with ``T`` edge types."""
        if isinstance(self.inner, EdgeEnergyReadout):
            return in_features * (self.inner.num_edge_types or 1)
        return self.inner.out_features(in_features)

    def extra_repr(self) -> str:
        return repr(self.name)


def random_node_states(batch: Batch, rounds: int = 0, *, dim: int = 32,
                       generator: Optional[torch.Generator] = None) -> Tensor:
    r"""Random injective node encodings, then ``rounds`` of untrained GIN message passing.

    .. math::
        h^{0}_v = E^\top x_v, \qquad
        h^{r+1}_v = \tanh\!\Big(W_r \big((1 + \epsilon_r)\, h^{r}_v
            + \textstyle\sum_{u \in \mathcal{N}(v)} h^{r}_u\big) + c_r\Big)

    with :math:`E, W_r, c_r` standard normal (:math:`W_r` scaled by
    :math:`1/\sqrt{d}`) and :math:`\epsilon_r \sim U(0, 1)`, in float64, drawn from
    ``generator`` in the order :math:`E`, then :math:`W_r, c_r, \epsilon_r` for each
    round. For one-hot ``x``, distinct types get distinct vectors and no integer
    combination of them vanishes (almost surely), so sums over different multisets
    differ; :math:`W_r` is invertible and :math:`\tanh` injective, so a round is as
    discriminative as one 1-WL refinement. The neighbour sum uses
    :func:`~graphpool.segment_reduce` with edges grouped by target node.
    :func:`node_states_with_error` also returns a bound on their rounding error.

    Example:
        >>> from graphpool.analysis.families import to_pyg, typed_graph
        >>> batch = Batch.from_data_list([to_pyg(typed_graph("ab", "cycle"), "ab")])
        >>> random_node_states(batch, 1, dim=4, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([2, 4])
    """
    return node_states_with_error(batch, rounds, dim=dim, generator=generator)[0]


#: Unit roundoff of float64, :math:`u = 2^{-53}` (half of ``torch.finfo(float64).eps``).
UNIT_ROUNDOFF = torch.finfo(torch.float64).eps / 2

#: Assumed accuracy of float64 ``tanh`` (absolute, its values lie in :math:`[-1, 1]`):
#: 4 units in the last place. SLEEF's ``u10`` kernels (ATen's vectorised path) are
#: within 1 ulp and glibc's ``tanh`` within 2.
TANH_ERROR = 4 * UNIT_ROUNDOFF

#: Assumed relative accuracy of float64 ``exp``, ``log`` and ``pow``: 4 ulps, that is
#: :math:`8u` relative (an ulp is at most :math:`2u|x|`); the same margin as
#: :data:`TANH_ERROR` over SLEEF's ``u10`` (1 ulp) and glibc (at most 2).
ELEMENTARY_ERROR = 8 * UNIT_ROUNDOFF

#: The tolerance of a readout without an error analysis (learnable readouts, or any
#: readout class :func:`rounding_floor` does not know): :math:`\sqrt{\epsilon} = 2^{-26}`
#: of float64, per node and per unit of :math:`\max(1, H)`; see :func:`rounding_floor`.
MODEL_TOLERANCE = math.sqrt(torch.finfo(torch.float64).eps)


def _gamma(k: int) -> float:
    r""":math:`\gamma_k = k u / (1 - k u)`: a sum or dot product of ``k`` terms, in any
    order, with or without FMA, is within :math:`\gamma_k \sum_i |a_i b_i|` of the exact
    value (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., §3.1)."""
    k = max(k, 0)
    return k * UNIT_ROUNDOFF / (1 - k * UNIT_ROUNDOFF)


def node_states_with_error(batch: Batch, rounds: int = 0, *, dim: int = 32,
                           generator: Optional[torch.Generator] = None
                           ) -> Tuple[Tensor, Tensor]:
    r""":func:`random_node_states` (the same draws) and an entrywise bound on their
    rounding error: ``(h, err)`` with :math:`|h - h^{\text{exact}}| \le \mathrm{err}`.

    :math:`h^{\text{exact}}` is the same recurrence in exact arithmetic with the same
    float64 parameters (:math:`E, W_r, c_r`, the rounded :math:`1 + \epsilon_r` and
    :math:`\sqrt d`): both graphs of a pair share those, so only arithmetic on node
    states can make a collision look like a separation. A running error analysis
    (Higham §3.3), where :math:`|\tilde a|` are the computed magnitudes, :math:`g` the
    largest in-degree and :math:`\gamma_k` as in :func:`_gamma`:

    .. math::
        e^{0} &= \gamma_T\, |x|\, |E| \qquad (T \text{ node types}) \\
        e_a &= (1 + \epsilon)\, e^{r}_v + \textstyle\sum_{u \in \mathcal{N}(v)} e^{r}_u
              + \gamma_{g + 2} \big((1 + \epsilon) |h^{r}_v|
              + \textstyle\sum_{u \in \mathcal{N}(v)} |h^{r}_u|\big) \\
        e_z &= e_a |W| / \sqrt d + \gamma_{d + 2} \big(|\tilde a|\, |W| / \sqrt d + |c|\big) \\
        e^{r+1} &= \min(e_z, 2) + \text{TANH\_ERROR}

    since :math:`|\tanh'| \le 1`: the pre-activation is a sum of at most
    :math:`g + 1` node terms, then a dot product of :math:`d` terms, a division and a
    bias addition (two more roundings). The bound holds for every summation order,
    thread count and SIMD width; the safety factor of :func:`rounding_floor` absorbs
    its second-order terms and the rounding of its own evaluation.

    Example:
        >>> from graphpool.analysis.families import to_pyg, typed_graph
        >>> batch = Batch.from_data_list([to_pyg(typed_graph("a" * 6, "cycle"), "a")])
        >>> h, err = node_states_with_error(batch, 3, generator=torch.Generator().manual_seed(0))
        >>> bool(0 < err.max() < 1e-9)
        True
    """
    x = batch.x.double()
    embedding = torch.randn(x.size(-1), dim, generator=generator, dtype=torch.float64)
    h = x @ embedding
    err = _gamma(x.size(-1)) * (x.abs() @ embedding.abs())
    src, dst = batch.edge_index
    targets = Segments.from_index(dst, h.size(0))
    in_degree = int(torch.bincount(dst, minlength=h.size(0)).max()) if dst.numel() else 0
    scale = math.sqrt(dim)
    for _ in range(rounds):
        weight = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
        bias = torch.randn(dim, generator=generator, dtype=torch.float64)
        eps = torch.rand((), generator=generator, dtype=torch.float64)
        neighbours = segment_reduce(h.index_select(0, src), targets, "sum")
        pre = (1 + eps) * h + neighbours
        h_next = torch.tanh(pre @ weight / scale + bias)
        # Error bound of this round, from the previous states (h, err).
        coefficient = float(1 + eps)
        err_pre = (coefficient * err + segment_reduce(err.index_select(0, src), targets, "sum")
                   + _gamma(in_degree + 2) * (coefficient * h.abs() + segment_reduce(
                       h.abs().index_select(0, src), targets, "sum")))
        err_z = (err_pre @ weight.abs() / scale
                 + _gamma(dim + 2) * (pre.abs() @ weight.abs() / scale + bias.abs()))
        h, err = h_next, err_z.clamp(max=2.0) + TANH_ERROR
    return h, err


def _check_positive(where: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise GraphpoolError(where, name, "an int >= 1", repr(value), f"pass {name}=1 or more")


#: Safety factor of :func:`rounding_floor` on its first-order bound.
FLOOR_SAFETY = 2.0

#: A per-graph bound: (readout module, the graph's node states [n, F], H = max |h| of both
#: graphs, Delta = max error) -> float.
_Bound = Callable[[nn.Module, Tensor, float, float], float]


def _sum_bound(n: int, big_h: float, delta: float) -> float:
    return n * delta + _gamma(n - 1) * n * big_h


def _vpa_bound(n: int, big_h: float, delta: float) -> float:
    root = math.sqrt(n)
    return (_sum_bound(n, big_h, delta) / root * (1 + _gamma(2))
            + _gamma(2) * root * (big_h + delta))


def _prod_bound(module: nn.Module, rows: Tensor, big_h: float, delta: float) -> float:
    r"""Per coordinate :math:`j`, with :math:`a_v = |\tilde x_{vj}|`: the input term
    :math:`\prod_v (a_v + \Delta) - \prod_v a_v \le \prod_v (a_v + \Delta) \sum_v
    \Delta / (a_v + \Delta)` (telescoping, evaluated without cancellation), rounding
    :math:`\gamma_{n-1} \prod_v a_v` in any order, gradual underflow :math:`2^{-1075}` per
    product scaled by the later factors; the largest over the coordinates."""
    n = rows.size(0)
    mags = rows.abs().to(torch.float64)
    padded = mags + delta
    share = torch.where(padded > 0, delta / padded.clamp(min=torch.finfo(torch.float64).tiny),
                        0.0)
    tiny = torch.finfo(torch.float64).tiny * UNIT_ROUNDOFF
    bound = (padded.prod(0) * share.sum(0) + _gamma(n - 1) * mags.prod(0)
             + (n - 1) * tiny * mags.clamp(min=1).prod(0))
    # evaluating it rounds (2n + 2 operations, all on non-negative numbers)
    return float(bound.max()) * (1 + _gamma(2 * n + 2)) if bound.numel() else 0.0


def _var_bound(module: nn.Module, rows: Tensor, big_h: float, delta: float) -> float:
    c, n = module.correction, rows.size(0)
    if n <= c:
        return 0.0                                   # nan for both graphs
    d = 2 * big_h * (1 + _gamma(n + 3))              # |x - centre| in the two-pass algorithm
    g = _gamma(n + 3)
    return n / (n - c) * (8 * delta * (big_h + delta) + (_gamma(n + 5) + 8 * n * g * g) * d * d)


def _std_bound(module: nn.Module, rows: Tensor, big_h: float, delta: float) -> float:
    n = rows.size(0)
    if n <= module.correction:
        return 0.0
    top = 2 * big_h * (1 + _gamma(n + 3)) * math.sqrt(n / (n - module.correction))
    return math.sqrt(_var_bound(module, rows, big_h, delta)) + UNIT_ROUNDOFF * top


def _logsumexp_bound(n: int, big_h: float, delta: float) -> float:
    u = UNIT_ROUNDOFF
    theta = 2 * big_h * u + ELEMENTARY_ERROR + _gamma(n - 1)  # relative error of the sum
    log_n = math.log(n)
    return delta + theta + ELEMENTARY_ERROR * log_n + u * (big_h + log_n)


def _softmax_bound(module: nn.Module, rows: Tensor, big_h: float, delta: float) -> float:
    t, n = module.t, rows.size(0)
    tau = float(t.detach().abs().max()) if isinstance(t, Tensor) else abs(float(t))
    big = big_h + delta
    rho = 4 * tau * big * UNIT_ROUNDOFF + ELEMENTARY_ERROR   # relative error of exp(t x - m)
    return delta * (1 + 2 * tau * big) + (2 * rho + 2 * _gamma(n)) * big


def _power_mean_bound(module: nn.Module, rows: Tensor, big_h: float,
                      delta: float) -> float:
    p, n = module.p, rows.size(0)
    powers = (sorted({float(v) for v in p.detach().clamp(min=0.01).flatten()})
              if isinstance(p, Tensor) else [float(p)])
    return max(_one_power_mean_bound(q, n, big_h, delta) for q in powers)


def _holder(p: float, eps: float) -> float:
    """A bound on |g(a) - g(b)| for |a - b| <= eps and |a|, |b| <= 1, with
    g(a) = sign(a) |a|^(1/p)."""
    if p >= 1:
        return 2 ** (1 - 1 / p) * eps ** (1 / p)
    return eps / p


def _one_power_mean_bound(p: float, n: int, big_h: float, delta: float) -> float:
    u, scale = UNIT_ROUNDOFF, big_h + delta
    if delta == 0:
        change = 0.0
    elif p >= 1:                                    # f Lipschitz p on [-1, 1], g Hoelder
        change = 2 ** (1 - 1 / p) * (p * delta) ** (1 / p) * scale ** (1 - 1 / p)
    else:                                           # f Hoelder p, g Lipschitz 1/p
        change = scale / p * 2 ** (1 - p) * (delta / scale) ** p
    inner = p * u + ELEMENTARY_ERROR + _gamma(n)    # error of the mean of f(x / s)
    return change + big_h * (_holder(p, inner) + ELEMENTARY_ERROR + 2 * u)


def _quantile_bound(module: nn.Module, rows: Tensor, big_h: float, delta: float) -> float:
    big, worst, n = big_h + delta, 0.0, rows.size(0)
    for q in module._qs:
        h = Fraction(q) * (n - 1)
        rounded = Fraction(q * (n - 1))              # the position the code computes
        mode = module.interpolation
        if mode == "linear":
            # continuous in the position (slope <= 2H'); lo + (hi - lo) frac: 3 roundings
            bound = delta + 8 * UNIT_ROUNDOFF * big + float(abs(rounded - h)) * 2 * big
        else:
            picks = {"lower": (math.floor,), "higher": (math.ceil,), "nearest": (round,),
                     "midpoint": (math.floor, math.ceil)}[mode]
            if any(pick(rounded) != pick(h) for pick in picks):
                bound = 2 * big                     # another element could be picked
            else:
                bound = delta + (UNIT_ROUNDOFF * big if mode == "midpoint" else 0.0)
        worst = max(worst, bound)
    return worst


def _model_bound(n: int, big_h: float, delta: float) -> float:
    return MODEL_TOLERANCE * n * max(1.0, big_h)


def _by_count(bound: Callable[[int, float, float], float]) -> _Bound:
    """A per-graph bound that depends on the graph through its number of nodes only."""
    return lambda module, rows, big_h, delta: bound(rows.size(0), big_h, delta)


_BY_REDUCE: Dict[str, _Bound] = {
    "sum": _by_count(_sum_bound),
    "mean": _by_count(lambda n, big_h, delta: delta + _gamma(n + 1) * big_h),
    "max": _by_count(lambda n, big_h, delta: delta),
    "min": _by_count(lambda n, big_h, delta: delta),
    "prod": _prod_bound,
    "vpa": _by_count(_vpa_bound),
}

#: The readout classes with an error analysis, by exact type (a subclass may compute
#: something else, so it gets the model floor until it is listed here).
_BOUNDS: Dict[type, _Bound] = {
    SumReadout: _BY_REDUCE["sum"],
    MeanReadout: _BY_REDUCE["mean"],
    MaxReadout: _BY_REDUCE["max"],
    MinReadout: _BY_REDUCE["min"],
    ProdReadout: _BY_REDUCE["prod"],
    VPAReadout: _BY_REDUCE["vpa"],
    TableReadout: lambda m, *a: _BY_REDUCE.get(m.reduce, _by_count(_model_bound))(m, *a),
    CountReadout: lambda m, rows, big_h, delta: 0.0,
    VarReadout: _var_bound,
    StdReadout: _std_bound,
    LogSumExpReadout: _by_count(_logsumexp_bound),
    SoftmaxReadout: _softmax_bound,
    PowerMeanReadout: _power_mean_bound,
    GeMReadout: _power_mean_bound,
    QuantileReadout: _quantile_bound,
    MedianReadout: _quantile_bound,
}


def has_error_bound(readout: Union[str, nn.Module]) -> bool:
    """Whether :func:`rounding_floor` has a proven bound for this column (a name or a
    :class:`GraphReadout`), rather than the :data:`MODEL_TOLERANCE` model.

    Example:
        >>> [has_error_bound(n) for n in ("sum", "var", "gem", "quantile", "edge")]
        [True, True, True, True, True]
    """
    module = readout if isinstance(readout, GraphReadout) else None
    if module is None:
        name = resolve_readout_names([readout], "has_error_bound")[0]
        if name in _EDGE_READOUTS:
            return True
        if is_learnable(name):
            return False
        module = GraphReadout(name)
    return isinstance(module.inner, EdgeEnergyReadout) or type(module.inner) in _BOUNDS


def _edge_bound(m: int, big_h: float, delta: float) -> float:
    """Per-graph error bound of an edge-energy readout over ``m`` directed edges."""
    u = UNIT_ROUNDOFF
    eta = 2 * delta + u * (2 * big_h + 2 * delta)        # error of one difference
    term = eta * (4 * big_h + eta) + u * (2 * big_h + eta) ** 2  # of its square
    return m * term + _gamma(m - 1) * m * (2 * big_h + eta) ** 2


def rounding_floor(readout: Union[str, nn.Module], h: Tensor, batch: Batch,
                   error: Union[float, Tensor] = 0.0) -> float:
    r"""An absolute bound on float64 rounding in one readout column, for a batch of two
    graphs: if their readouts are equal in exact arithmetic, the computed ones differ
    by at most this much in every coordinate, whatever the summation order.

    ``readout`` is a column name (the readout with its default arguments) or a
    :class:`GraphReadout` (its own parameters: ``t``, ``p``, ``q``, ``correction``).
    The floor is scaled to the *node states* (the readout's inputs), never to the
    readout's output: an output can be exactly 0 for one graph and 2.6e-29 for the other
    when node states of order 1 round differently. With :math:`u = 2^{-53}`,
    :math:`\gamma_k = ku/(1 - ku)`, :math:`H = \max |h|` and :math:`\Delta = \max`
    ``error`` (the bound on :math:`|h - h^{\text{exact}}|`, from
    :func:`node_states_with_error`) over both graphs, :math:`H' = H + \Delta`,
    :math:`n` nodes and :math:`m` directed edges in a graph, :math:`e` =
    :data:`ELEMENTARY_ERROR` (exp, log, pow), the per-graph bounds are

    .. math::
        \text{sum}: &\ n \Delta + \gamma_{n - 1}\, n H \qquad
        \text{mean}: \ \Delta + \gamma_{n + 1} H \qquad
        \text{max, min, median}: \ \Delta \qquad \text{count}: \ 0 \\
        \text{vpa}: &\ (1 + \gamma_2)\,\text{sum} / \sqrt n + \gamma_2 \sqrt n\, H' \\
        \text{prod}: &\ \max_j \Big(\textstyle\prod_v (a_{vj} + \Delta) \sum_v
            \frac{\Delta}{a_{vj} + \Delta} + \gamma_{n-1} \prod_v a_{vj}
            + (n - 1)\, 2^{-1075} \prod_v \max(1, a_{vj})\Big), \quad a = |h| \\
        \text{quantile}: &\ \Delta + 8 u H' \ \ (\text{linear; the positions } q(n-1)
            \text{ exact, else } + 2H' |\mathrm{fl}(q(n-1)) - q(n-1)|) \\
        \text{var}: &\ \tfrac{n}{n - c}\big(8 \Delta H'
            + (\gamma_{n+5} + 8 n \gamma_{n+3}^2) D^2\big), \quad D = 2H(1 + \gamma_{n+3})
            \qquad \text{std}: \ \sqrt{\text{var}} + u D \sqrt{n / (n - c)} \\
        \text{logsumexp}: &\ \Delta + (2Hu + e + \gamma_{n-1}) + e \log n
            + u (H + \log n) \\
        \text{softmax}: &\ \Delta (1 + 2|t| H') + (2\rho + 2\gamma_n) H', \quad
            \rho = 4 |t| H' u + e \\
        \text{power mean}: &\ 2^{1 - 1/p} (p \Delta)^{1/p} H'^{\,1 - 1/p}
            + H \big(2^{1 - 1/p} (p u + e + \gamma_n)^{1/p} + e + 2u\big) \quad (p \ge 1) \\
        \text{edge, edge-dir}: &\ m \big(\eta (4H + \eta) + u (2H + \eta)^2\big)
            + \gamma_{m - 1}\, m (2H + \eta)^2, \quad \eta = 2\Delta + u (2H + 2\Delta)

    Why: a sum of :math:`k` terms in any order is within :math:`\gamma_{k-1}` times the
    sum of their magnitudes (Higham, *Accuracy and Stability of Numerical Algorithms*,
    §3.1), a product of :math:`k` factors within :math:`\gamma_{k-1}` relatively (the
    product's floor is the only one that reads the node states themselves, per
    coordinate: a bound through :math:`H^n` would be vacuous for large sets); max,
    min and order statistics are 1-Lipschitz in the inputs and select a computed value;
    the two-pass variance (centre the data, then
    :math:`(\sum d^2 - (\sum d)^2 / n) / (n - c)`) is exact for any centre, its
    :math:`\sum d` is of order :math:`n \gamma D`, and the variance moves by at most
    :math:`8 \Delta H'` when each input moves by :math:`\Delta`;
    :math:`|\sqrt a - \sqrt b| \le \sqrt{|a - b|}`; logsumexp is 1-Lipschitz (its
    gradient is a softmax) and the softmax-weighted sum moves by at most
    :math:`1 + 2|t| H'` times :math:`\Delta`; the power mean is computed on the set
    scaled by its largest :math:`|x|` (values in :math:`[-1, 1]`), where
    :math:`f(x) = \mathrm{sign}(x)|x|^p` is :math:`p`-Lipschitz and its inverse
    :math:`(1/p)`-Hölder with constant :math:`2^{1 - 1/p}` (for :math:`p < 1` the roles
    swap: :math:`\tfrac{1}{p} 2^{1-p} \Delta^p H'^{1-p}` and :math:`H(\cdot)/p`). For
    learnable ``p``, ``t`` or ``q`` the worst value counts. An edge term is one
    subtraction and one squaring of inputs each within :math:`\Delta`, with
    :math:`|h_u - h_v| \le 2H`. The floor is :data:`FLOOR_SAFETY` times the sum of
    both graphs' bounds (the factor covers second-order terms and the rounding of
    evaluating the bound and of the final subtraction).

    Readouts without an error analysis — learnable ones (:func:`is_learnable`), or any
    readout class not listed here (see :func:`has_error_bound`) — get the *model*
    bound :data:`MODEL_TOLERANCE` :math:`\cdot\, n \max(1, H)` per graph,
    :math:`\sqrt{\epsilon} \approx 1.5 \cdot 10^{-8}` of float64: not a proof, but it
    holds for any computation whose rounding, amplified by its conditioning, stays below
    :math:`\sqrt{\epsilon}` per node and unit of input, and the genuine separations of
    the families are larger than :math:`10^{-4}` by orders of magnitude.

    Example:
        >>> from graphpool.analysis.families import to_pyg, typed_graph
        >>> batch = Batch.from_data_list([to_pyg(typed_graph("ab", "cycle"), "ab")] * 2)
        >>> h = torch.ones(4, 3, dtype=torch.float64)
        >>> 1e-16 < rounding_floor("edge", h, batch) < 1e-13
        True
        >>> rounding_floor("max", h, batch), rounding_floor("count", h, batch)  # exact
        (0.0, 0.0)
        >>> 1e-7 < rounding_floor("std", h, batch) < 1e-6  # the square root of ~1e-15
        True
    """
    if isinstance(readout, GraphReadout):
        module = readout
    else:
        name = resolve_readout_names([readout], "rounding_floor")[0]
        module = None if is_learnable(name) else GraphReadout(name)
    big_h = float(h.abs().max()) if h.numel() else 0.0
    error = torch.as_tensor(error, dtype=torch.float64)  # not float32: it would round
    delta = float(error.max()) if error.numel() else 0.0
    sizes = torch.bincount(batch.batch, minlength=batch.num_graphs).tolist()
    if module is not None and isinstance(module.inner, EdgeEnergyReadout):
        edges = torch.bincount(batch.batch[batch.edge_index[0]],
                               minlength=batch.num_graphs).tolist()
        bound = sum(_edge_bound(m, big_h, delta) for m in edges)
    else:
        inner = module.inner if module is not None else None
        per_graph = _BOUNDS.get(type(inner)) if inner is not None else None
        if per_graph is None:
            bound = sum(_model_bound(n, big_h, delta) for n in sizes)
        else:
            graphs = torch.split(h.detach()[batch.batch.argsort(stable=True)], sizes)
            bound = sum(per_graph(inner, rows, big_h, delta) for rows in graphs if len(rows))
    return FLOOR_SAFETY * bound


def _differ(out: Tensor, floor: float) -> bool:
    r"""Whether the readouts ``out[0]`` and ``out[1]`` of a pair differ beyond rounding:
    :math:`\lVert out_0 - out_1 \rVert_\infty > \text{floor}`, ``floor`` from
    :func:`rounding_floor`. Absolute, never relative to ``out``: with node states of
    order 1, an edge energy of 2.6e-29 against 0 is rounding, not a separation."""
    return bool((out[0] - out[1]).abs().max() > floor)


def _columns(names: Sequence[str], dim: int, seed: int) -> List[GraphReadout]:
    """The float64 column modules of one trial: learnable ones with weights drawn from
    ``seed`` (torch's global random state is left as it was), in eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return [GraphReadout(n, in_channels=dim).to(torch.float64).eval() for n in names]


def distinguishability(families: Optional[Sequence[Union[str, Family]]] = None,
                       readouts: Optional[Sequence[str]] = None, *, trials: int = 3,
                       dim: int = 32, seed: int = 0) -> Matrix:
    r"""Exact distinguishability of every pair of the families, for every readout.

    For each pair :math:`(G, H)` and ``trials`` draws of :func:`random_node_states`
    (shared by both graphs and all readouts), the readout *separates* the pair when
    for some draw

    .. math::
        \lVert R(G) - R(H) \rVert_\infty > \text{floor}

    in float64, where ``floor`` (:func:`rounding_floor`) is a proven bound on the
    rounding of node states and readout for every summation order, scaled to the node
    states :math:`\max |h|` and their error bound (:func:`node_states_with_error`), not
    to the readout output. So ``no`` means "equal up to rounding" and ``yes`` means
    "differ by more than any rounding could", on every machine. Collisions that theory
    predicts (mean of :math:`X` and :math:`kX`, max of sets with equal support) hold
    for *every* encoding; separations hold for almost every one.

    A learnable readout (:func:`is_learnable`) is built with ``in_channels=dim`` and
    weights drawn by its own initialisation from ``torch.manual_seed(seed + trial)``
    (the same for every pair, in float64, eval mode: no dropout). Its column measures
    what a *random* instance keeps: ``yes`` shows that the architecture can separate the
    pair; ``no`` is a collision of those weights, and a collision that theory predicts
    for every weight (attention normalised over the nodes on :math:`X` vs :math:`kX`)
    holds for any training. Its floor is the :data:`MODEL_TOLERANCE` model, not a proof.

    Args:
        families: family names or :class:`~graphpool.analysis.families.Family`
            instances; ``None`` for all.
        readouts: readout column names; ``None`` for :func:`readout_names`.
        trials: random encodings (and learnable weights) tried per pair.
        dim: encoding width (the ``in_channels`` of learnable readouts).
        seed: seed of the first encoding and of the first weights.

    Returns:
        a ``"separates"`` :class:`~graphpool.analysis.matrix.Matrix`, one row per
        pair labelled ``"family: pair"``.

    Example:
        >>> m = distinguishability(["gin"], ["sum", "mean", "max", "vpa", "count"])
        >>> print(m.format())
        exact distinguishability (random injective encodings, no training)
                                     sum    mean   max    vpa    count
        gin: {a,a} vs {a,a,a}        yes    no     no     yes    yes
        gin: {g,r} vs {g,r,r}        yes    yes    no     yes    yes
        gin: {g,r} vs {g,g,r,r}      yes    no     no     yes    yes
    """
    _check_positive("distinguishability", "trials", trials)
    _check_positive("distinguishability", "dim", dim)
    names = resolve_readout_names(readouts, "distinguishability")
    fixed = _columns([n for n in names if not is_learnable(n)], dim, seed)
    learnable = [n for n in names if is_learnable(n)]
    per_trial = [_columns(learnable, dim, seed + trial) if learnable else []
                 for trial in range(trials)]
    rows, values = [], []
    for family in resolve_families(families, "distinguishability"):
        for pair in family.pairs:
            batch = Batch.from_data_list([pair.left, pair.right])
            segments = Segments.from_index(batch.batch, batch.num_graphs)
            separated = [False] * len(names)
            for trial in range(trials):
                gen = torch.Generator().manual_seed(seed + trial)
                h, err = node_states_with_error(batch, pair.rounds, dim=dim, generator=gen)
                modules = {m.name: m for m in (*fixed, *per_trial[trial])}
                with torch.no_grad():
                    for j, name in enumerate(names):
                        module = modules[name]
                        separated[j] = separated[j] or _differ(
                            module(h, batch, segments), rounding_floor(module, h, batch, err))
            rows.append(f"{family.name}: {pair.name}")
            values.append(tuple(separated))
    return Matrix("exact distinguishability (random injective encodings, no training)",
                  "separates", tuple(rows), names, tuple(values))


class ReadoutClassifier(nn.Module):
    r"""Node encoder -> readout -> MLP head, to see what can be learned through a readout.

    .. math::
        \hat y_G = \mathrm{MLP}_{\text{head}}\big(R(\{h_v\}_{v \in G})\big), \qquad
        h_v = \begin{cases} h^{0}_v = \mathrm{MLP}(x_v) & \text{encoder} = \text{"mlp"} \\
        [\,h^{0}_v \,\|\, h^{1}_v \,\|\, \cdots \,\|\, h^{L}_v\,],\
        h^{l}_v = \mathrm{GIN}_l(h^{l-1}, A)_v & \text{encoder} = \text{"gin"} \end{cases}

    The ``"mlp"`` encoder sees each node alone (a DeepSets model: the readout sees the
    multiset of node types). ``"gin"`` adds ``layers`` GIN layers and, as in Xu et al.
    (2019), reads out the states of every layer, the node MLP's included (for
    per-feature readouts, reading out the concatenation is concatenating the readouts),
    so it can learn whatever the ``"mlp"`` model can. The head starts with batch
    normalisation: at test time an invertible per-feature affine map, so it keeps
    everything the readout keeps, while it conditions training (sums grow with size).
    Its momentum is 1, so its statistics are those of the latest training batch: in
    full-batch training (:func:`train_and_test`), the whole training set. The head is
    sized by the readout's :meth:`GraphReadout.out_features` (``count`` gives one
    feature, ``edge-dir`` two per node feature); a learnable readout is built with
    ``in_channels`` the width it reads (``hidden``, times ``layers + 1`` for ``"gin"``)
    and trained with the rest.

    Args:
        in_features: width of ``x``.
        num_classes: number of classes.
        readout: a column name (see :func:`readout_names`).
        encoder: ``"mlp"`` or ``"gin"``.
        hidden: width of every hidden layer.
        layers: number of GIN layers (``"gin"`` only).

    Example:
        >>> import torch
        >>> from graphpool.analysis.families import resolve_families
        >>> task = resolve_families(["count"])[0].task
        >>> batch = Batch.from_data_list(task.sample(4, seed=0))
        >>> model = ReadoutClassifier(3, 4, "sum", encoder="gin")
        >>> model(batch).shape
        torch.Size([4, 4])
    """

    def __init__(self, in_features: int, num_classes: int, readout: str, *,
                 encoder: str = "mlp", hidden: int = 16, layers: int = 2) -> None:
        super().__init__()
        if encoder not in ENCODERS:
            raise GraphpoolError(type(self).__name__, "encoder", f"one of {ENCODERS}",
                                 repr(encoder), "pick one of the listed encoders")
        self.node_mlp = _mlp(in_features, hidden)
        self.gin = nn.ModuleList([GINConv(_mlp(hidden, hidden))
                                  for _ in range(layers if encoder == "gin" else 0)])
        width = hidden * (1 + len(self.gin))
        self.readout = GraphReadout(readout, in_channels=width, validate=False)
        features = self.readout.out_features(width)
        self.head = nn.Sequential(nn.BatchNorm1d(features, momentum=1.0),
                                  nn.Linear(features, hidden), nn.ReLU(),
                                  nn.Linear(hidden, num_classes))

    def forward(self, batch: Batch) -> Tensor:
        states = [self.node_mlp(batch.x)]
        for layer in self.gin:
            states.append(layer(states[-1], batch.edge_index))
        return self.head(self.readout(torch.cat(states, -1), batch))


def _mlp(in_features: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU())


def train_and_test(train: List[Data], test: List[Data], readout: str, *,
                   num_classes: int, encoder: str = "mlp", seed: int = 0,
                   epochs: int = 60, lr: float = 0.01, hidden: int = 16) -> float:
    r"""Train a :class:`ReadoutClassifier` full-batch with Adam on cross-entropy for
    ``epochs`` steps and return its accuracy on ``test``.

    The model is initialised from ``seed`` inside :func:`torch.random.fork_rng`, so the
    global random state is left as it was. It runs on one CPU thread (the setting is
    restored afterwards): small graphs gain nothing from more, and the result does not
    depend on the machine's thread count. It still depends on the CPU kernels, that is
    the SIMD width of ATen's kernels, the BLAS code path and graphpool's compiled
    kernels: they round float32 sums differently, and training can amplify that into
    other predictions. Pin them before starting Python for numbers that are the same on
    every x86-64 machine with the same torch build: ``MKL_CBWR=COMPATIBLE
    ATEN_CPU_CAPABILITY=default GRAPHPOOL_BACKEND=native`` (see
    docs/expressiveness.md, "Reproducing the matrices").

    Example:
        >>> from graphpool.analysis.families import resolve_families
        >>> task = resolve_families(["count"])[0].task
        >>> train, test = task.sample(16, seed=0), task.sample(8, seed=1)
        >>> train_and_test(train, test, "mean", num_classes=4, epochs=5)
        0.25
    """
    train_batch, test_batch = Batch.from_data_list(train), Batch.from_data_list(test)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = ReadoutClassifier(train_batch.x.size(-1), num_classes, readout,
                                      encoder=encoder, hidden=hidden)
            optimiser = torch.optim.Adam(model.parameters(), lr=lr, foreach=True)
            for _ in range(epochs):
                optimiser.zero_grad()
                nn.functional.cross_entropy(model(train_batch), train_batch.y).backward()
                optimiser.step()
            with torch.no_grad():
                model(train_batch)  # batch-norm statistics of the final model on train
        model.eval()
        with torch.no_grad():
            predicted = model(test_batch).argmax(-1)
    finally:
        torch.set_num_threads(threads)
    return float((predicted == test_batch.y).double().mean())


def learned_accuracy(families: Optional[Sequence[Union[str, Family]]] = None,
                     readouts: Optional[Sequence[str]] = None, *,
                     encoders: Sequence[str] = ENCODERS, seeds: int = 3,
                     train_size: int = 96, test_size: int = 96, epochs: int = 60,
                     hidden: int = 16) -> Matrix:
    r"""Held-out accuracy of :class:`ReadoutClassifier` on every family that has a task.

    For seed :math:`s` the training set is ``task.sample(train_size, 2s)``, the test
    set ``task.sample(test_size, 2s + 1)`` (balanced classes) and the model is
    initialised from :math:`s`; the cell is the mean accuracy over seeds and
    ``spread`` its sample standard deviation (0 for one seed). Row labels give the
    chance level, :math:`1 / \text{classes}`.

    Example:
        >>> m = learned_accuracy(["count"], ["sum", "mean"], encoders=["mlp"], seeds=1,
        ...                      train_size=32, test_size=16)
        >>> m.rows, m.values
        (('count / mlp (chance 0.25)',), ((1.0, 0.25),))
    """
    _check_positive("learned_accuracy", "seeds", seeds)
    names = resolve_readout_names(readouts, "learned_accuracy")
    for encoder in encoders:
        if encoder not in ENCODERS:
            raise GraphpoolError("learned_accuracy", "encoders", f"names from {ENCODERS}",
                                 repr(encoder), "pick from the listed encoders")
    tasks: List[Task] = [f.task for f in resolve_families(families, "learned_accuracy")
                         if f.task is not None]
    scores: Dict[Tuple[str, str, str], List[float]] = {}
    for task in tasks:
        for s in range(seeds):
            train, test = task.sample(train_size, 2 * s), task.sample(test_size, 2 * s + 1)
            for encoder in encoders:
                for name in names:
                    scores.setdefault((task.name, encoder, name), []).append(train_and_test(
                        train, test, name, num_classes=task.num_classes, encoder=encoder,
                        seed=s, epochs=epochs, hidden=hidden))
    rows, values, spread, chance = [], [], [], []
    for task in tasks:
        for encoder in encoders:
            runs = [scores[task.name, encoder, name] for name in names]
            rows.append(f"{task.name} / {encoder} (chance {1 / task.num_classes:.2f})")
            chance.append(1 / task.num_classes)
            values.append(tuple(statistics.fmean(r) for r in runs))
            spread.append(tuple(statistics.stdev(r) if len(r) > 1 else 0.0 for r in runs))
    return Matrix(f"learned accuracy (held-out, mean±std over {seeds} seed"
                  f"{'s' if seeds != 1 else ''})", "accuracy",
                  tuple(rows), names, tuple(values), tuple(spread), tuple(chance))
