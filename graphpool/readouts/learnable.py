r"""Learnable readouts: gated attention, Set2Set, SortPooling and Deep Sets — PyG's
``AttentionalAggregation``, ``Set2Set``, ``SortAggregation`` and ``DeepSetsAggregation``
on every grouping graphpool takes.

Each is a :class:`~graphpool.readouts.Readout` (so a PyG ``Aggregation``): a graph
readout, ``readout(x, batch)``, and a message-passing ``aggr=``. They hold weights, so
they are not usable by name in the functional :func:`~graphpool.readout`
(``functional = False``), and they need the input width to build their default
networks (``needs_in_channels = True``: the resolver builds them as
``cls(in_channels=C)``).

Shared conventions:

* The node networks (``gate_nn``, ``nn``, ``local_nn``) see the real rows only, as
  ``[*, N, F]``. For a mask grouping (``x`` is ``[*, B, Nmax, F]``) the real rows are
  taken out first (``x[..., mask, :]``, in row-major order) and read out over the
  equivalent sorted grouping: padding rows never reach a network, a value or a gradient
  (their gradient is exactly 0), and networks that mix rows (batch norm in training
  mode) see the same rows as for an index grouping. This costs one copy of the real
  rows and, on a GPU, one host sync for their number. A PyG
  :class:`~torch_geometric.nn.models.MLP` as a node network gets
  ``batch=index, batch_size=B``, as PyG passes them.
* Empty sets get ``fill_value`` (default 0) in every output feature, decided from the
  counts. PyG gives an empty set the value its formula gives an empty sum: 0 for
  attention, ``global_nn(0)`` for Deep Sets, ``[q_T, 0]`` for Set2Set.
* ``x`` must be floating point for the readouts with networks; the networks must have
  the dtype of ``x`` (convert the module with ``.double()`` for ``float64``).
"""
from __future__ import annotations

import math
from numbers import Number
from typing import Any, ClassVar, Optional, Tuple

import torch
from torch import Tensor, nn as tnn

from ..composite import segment_softmax, segment_sort_k
from ..errors import GraphpoolError, describe
from ..kernels import export, segment_broadcast, segment_reduce
from ..kernels.checks import check_fill_value
from ..segments import Kind, Segments
from .base import Readout, check_parameters

__all__ = ["AttentionalReadout", "Set2SetReadout", "SortReadout", "DeepSetsReadout"]

_GATES = ("node", "feature")


# ----------------------------------------------------------------------------- helpers
def _check_channels(where: str, name: str, value: Any, required: bool, fix: str) -> Optional[int]:
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        expected = "an int >= 1 (the number of input features)"
        raise GraphpoolError(where, name, expected if value is not None else
                             expected + ", needed to build the default network",
                             describe(value) if value is not None else "None", fix)
    return value


def _check_module(where: str, name: str, value: Any) -> Optional[tnn.Module]:
    if value is None or isinstance(value, tnn.Module):
        return value
    raise GraphpoolError(where, name, "a torch.nn.Module or None", describe(value),
                         f"wrap the function in a module, e.g. {name}=torch.nn.Sequential(...)")


def _check_int(where: str, name: str, value: Any, example: str) -> int:
    if isinstance(value, Tensor) and value.dim() == 0 and not value.is_floating_point() \
            and value.dtype != torch.bool:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise GraphpoolError(where, name, "an int >= 1", describe(value),
                             f"pass e.g. {name}={example}")
    return value


def _width(module: Optional[tnn.Module], in_width: Optional[int]) -> Optional[int]:
    """The output width of ``module`` for ``in_width`` input features, when the module
    says so statically: linear layers and PyG ``MLP`` s give theirs, layers without
    weights and normalisations keep the width, a ``Sequential`` folds its layers;
    ``None`` when unknown."""
    if module is None:
        return in_width
    for attr in ("out_features", "out_channels"):  # nn.Linear; PyG Linear, MLP
        value = getattr(module, attr, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    if isinstance(module, tnn.Sequential):
        for child in module:
            in_width = _width(child, in_width)
        return in_width
    keeps = (tnn.modules.batchnorm._NormBase, tnn.LayerNorm, tnn.GroupNorm)
    if isinstance(module, keeps) or not any(True for _ in module.parameters()):
        return in_width
    return None


def _is_pyg_mlp(module: Optional[tnn.Module]) -> bool:
    if module is None:
        return False
    from torch_geometric.nn import MLP
    return isinstance(module, MLP)


def _apply(module: Optional[tnn.Module], x: Tensor, segments: Segments) -> Tensor:
    """A node network on the real rows ``[*, N, F]``: a PyG ``MLP`` gets the batch vector
    (for its batch-aware norms), as PyG's aggregations pass it."""
    if module is None:
        return x
    if _is_pyg_mlp(module):
        return module(x, batch=segments._index, batch_size=segments.num_segments)
    return module(x)


def gate_scores_and_values(readout: "AttentionalReadout", x: Tensor, segments: Segments,
                           where: str) -> Tuple[Tensor, Tensor]:
    """The gate scores and the values of an :class:`AttentionalReadout` on these rows,
    checked against each other (the distributed readout runs the same networks on its
    rows)."""
    score = _apply(readout.gate_nn, x, segments)
    h = _apply(readout.nn, x, segments)
    want = 1 if readout.gate == "node" else h.size(-1)
    if score.shape[:-1] != h.shape[:-1] or score.size(-1) != want:
        raise GraphpoolError(where, "gate_nn", f"an output of width {want} for "
                             f"gate={readout.gate!r} (one row per node)",
                             f"{describe(score)} for values {describe(h)}",
                             "make gate_nn end in a layer of that width, or change gate")
    return score, h


def _real_rows(x: Tensor, segments: Segments) -> Tuple[Tensor, Segments]:
    """``x`` as ``[*, N, F]`` real rows and their grouping: a mask grouping's padded batch
    ``[*, B, Nmax, F]`` gives its real rows in row-major order (set by set) over the
    equivalent sorted grouping; other groupings are returned as they are."""
    if segments.kind != Kind.MASK:
        return x, segments
    rows = x[..., segments._m, :]
    counts = segments._counts
    ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    flat = Segments(kind=Kind.CSR, num_segments=segments.num_segments,
                    num_nodes=rows.size(-2), device=segments.device, counts=counts, ptr=ptr,
                    has_empty=segments.has_empty)
    return rows, flat


def _check_x(module: Readout, x: Tensor, segments: Segments, floating: bool = True) -> None:
    """``x`` fits ``module``: the usual checks, floating point (unless not ``floating``),
    ``in_channels`` wide, of the parameters' dtype and device."""
    where, in_channels = type(module).__name__, module.in_channels
    segment_reduce(x[..., :0], segments, "sum", _where=where)  # the usual checks, no work
    if floating:
        if not x.is_floating_point():
            raise GraphpoolError(where, "x", "a floating point tensor for a learnable "
                                 "readout", describe(x), "convert it with x.float()")
        check_parameters(module, x)
    if in_channels is not None and x.size(-1) != in_channels:
        raise GraphpoolError(where, "x", f"{in_channels} features (in_channels) on the last "
                             f"dim", describe(x), f"pass x with {in_channels} features, or "
                             f"build the readout with in_channels={x.size(-1)}")


def _fill_empty(where: str, out: Tensor, segments: Segments, fill_value: Number) -> Tensor:
    """``out`` (``[*, B, F]``) with the rows of empty sets set to ``fill_value``."""
    fill_value = check_fill_value(where, fill_value, out.dtype)
    if segments.has_empty is False:
        return out
    return out.masked_fill((segments._counts == 0).unsqueeze(-1), fill_value)


def _reset(module: Optional[tnn.Module]) -> None:
    if module is None:
        return
    if hasattr(module, "reset_parameters"):
        module.reset_parameters()
        return
    for child in module.children():
        _reset(child)


class _Learnable(Readout):
    needs_in_channels: ClassVar[bool] = True
    functional: ClassVar[bool] = False


# -------------------------------------------------------------------------- attention
class AttentionalReadout(_Learnable):
    r"""Gated attention readout (Li et al. 2016, "Gated Graph Sequence Neural Networks";
    PyG ``AttentionalAggregation``, DGL ``GlobalAttentionPooling``):

    .. math::
        \alpha_v = \operatorname{softmax}_{v \in \mathcal{V}_b}
        \big(h_{\mathrm{gate}}(x_v)\big), \qquad
        y_b = \sum_{v \in \mathcal{V}_b} \alpha_v \odot h_{\Theta}(x_v)

    The softmax runs over the nodes of each set, column by column
    (:func:`~graphpool.composite.segment_softmax`, shifted by the set's maximum). With
    ``gate="node"`` the gate has width 1 (one weight per node, shared by all features);
    with ``gate="feature"`` it has the width of :math:`h_\Theta` (one weight per node and
    feature).

    Args:
        in_channels: input width ``F``; needed when ``gate_nn`` is left out.
        gate_nn: :math:`h_{\mathrm{gate}}`, ``[*, N, F] -> [*, N, 1]`` (node gate) or
            ``[*, N, F_out]`` (feature gate). Default: ``Linear(in_channels, 1)``, or
            ``Linear(in_channels, F_out)`` for ``gate="feature"``.
        nn: :math:`h_\Theta`, ``[*, N, F] -> [*, N, F_out]``; default ``None``, the
            identity (``F_out = F``).
        gate: ``"node"`` (default) or ``"feature"``.
        fill_value, validate: see :class:`~graphpool.readouts.Readout`.

    ``cls(in_channels=C)`` builds ``gate_nn = Linear(C, 1)``, ``nn = None``; the output
    width is ``F_out`` (:meth:`out_features`).

    Differences from PyG: empty sets get ``fill_value`` (PyG: 0, the same by default);
    the gate width is checked against ``gate`` (PyG broadcasts whatever it gets);
    ``gate_nn`` may be left out. ``torch.compile(..., fullgraph=True)`` works on index,
    ptr and uniform groupings (a mask grouping selects its real rows, a data-dependent
    shape).

    Example:
        >>> import torch
        >>> attn = AttentionalReadout(gate_nn=torch.nn.Linear(1, 1))
        >>> _ = attn.gate_nn.weight.data.zero_()  # equal gates: the mean of each set
        >>> x, batch = torch.tensor([[1.], [3.], [5.]]), torch.tensor([0, 0, 1])
        >>> attn(x, batch).tolist()
        [[2.0], [5.0]]
        >>> AttentionalReadout(in_channels=16)
        AttentionalReadout(gate_nn=Linear(in_features=16, out_features=1, bias=True),
                           nn=None, gate='node')
    """

    def __init__(self, in_channels: Optional[int] = None, gate_nn: Optional[tnn.Module] = None,
                 nn: Optional[tnn.Module] = None, *, gate: str = "node",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        where = type(self).__name__
        if gate not in _GATES:
            raise GraphpoolError(where, "gate", f"one of {_GATES}", repr(gate),
                                 "pass gate='node' (one weight per node) or gate='feature' "
                                 "(one per node and feature)")
        gate_nn = _check_module(where, "gate_nn", gate_nn)
        nn = _check_module(where, "nn", nn)
        self.in_channels = _check_channels(
            where, "in_channels", in_channels, gate_nn is None,
            f"pass in_channels=F or a gate network, e.g. {where}(gate_nn=torch.nn.Linear(F, 1))")
        self.gate = gate
        if gate_nn is None:
            width = 1 if gate == "node" else _width(nn, self.in_channels)
            if width is None:
                raise GraphpoolError(where, "gate_nn", "a gate network, since the output "
                                     "width of nn is not known for a feature gate",
                                     "None", "pass gate_nn=torch.nn.Linear(in_channels, "
                                     "F_out) with F_out the width of nn")
            gate_nn = tnn.Linear(self.in_channels, width)
        self.gate_nn, self.nn = gate_nn, nn  # PyG's order: one state_dict for both

    def reset_parameters(self) -> None:
        _reset(self.gate_nn)
        _reset(self.nn)

    def forward(self, x: Tensor, segments: Segments) -> Tensor:
        where = type(self).__name__
        _check_x(self, x, segments)
        x, segments = _real_rows(x, segments)
        score, h = gate_scores_and_values(self, x, segments, where)
        alpha = segment_softmax(score, segments)
        out = segment_reduce(alpha * h, segments, "sum", _where=where)
        return _fill_empty(where, out, segments, self.fill_value)

    def out_features(self, in_features: int) -> int:
        width = _width(self.nn, in_features)
        if width is None:
            raise GraphpoolError(f"{type(self).__name__}.out_features", "nn", "a network "
                                 "whose output width is known (linear layers, PyG MLPs, "
                                 "activations, norms, Sequentials of them)", repr(self.nn),
                                 "read the width from your network")
        return width

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(gate_nn={self.gate_nn}, nn={self.nn}, "
                f"gate={self.gate!r})")


# ---------------------------------------------------------------------------- Set2Set
_LSTM_REFUSED = ("batch_first", "bidirectional", "proj_size", "input_size", "hidden_size")


class Set2SetReadout(_Learnable):
    r"""Set2Set (Vinyals et al. 2016, "Order Matters"; PyG ``Set2Set``): ``T`` steps of
    content-based attention driven by an LSTM, for each set :math:`b`:

    .. math::
        q_t = \mathrm{LSTM}(q^*_{t-1}), \quad
        a_{v,t} = \operatorname{softmax}_{v \in \mathcal{V}_b}(x_v \cdot q_t), \quad
        r_t = \sum_{v \in \mathcal{V}_b} a_{v,t}\, x_v, \quad
        q^*_t = q_t \,\|\, r_t

    from :math:`q^*_0 = 0` and a zero LSTM state; the output is :math:`q^*_T`, of width
    ``2 * in_channels``. The LSTM maps ``2C -> C``.

    Args:
        in_channels: the input width ``C``.
        processing_steps: the number of steps ``T`` (default 3), an int >= 1.
        fill_value, validate: see :class:`~graphpool.readouts.Readout`.
        **kwargs: other arguments of :class:`torch.nn.LSTM` (``num_layers``, ``dropout``,
            ``bias``, ``dtype``...), as PyG passes them; ``batch_first``,
            ``bidirectional`` and ``proj_size`` are refused (they change the layout or
            width the attention needs).

    ``cls(in_channels=C)`` builds ``LSTM(2C, C)`` with ``processing_steps=3``.

    Differences from PyG: an empty set gets ``fill_value`` in all ``2C`` features (PyG
    gives it ``[q_T, 0]``, the LSTM's output for a set it never sees); leading batch dims
    ``[*, N, C]`` are read out independently (PyG takes 2-D input only). ``torch.compile``
    breaks the graph at the LSTM (dynamo does not trace RNN modules by default), so
    ``fullgraph=True`` fails; without it the compiled module matches eager.

    Example:
        >>> import torch
        >>> s2s = Set2SetReadout(4)
        >>> s2s(torch.randn(5, 4), torch.tensor([0, 0, 1, 1, 1])).shape
        torch.Size([2, 8])
        >>> s2s, s2s.out_features(4)
        (Set2SetReadout(in_channels=4, processing_steps=3), 8)
    """

    def __init__(self, in_channels: int, processing_steps: int = 3, **kwargs: Any) -> None:
        where = type(self).__name__
        base = {k: kwargs.pop(k) for k in ("fill_value", "validate") if k in kwargs}
        super().__init__(**base)
        self.in_channels = _check_channels(where, "in_channels", in_channels, True,
                                           f"pass the input width, e.g. {where}(64)")
        self.processing_steps = _check_int(where, "processing_steps", processing_steps, "3")
        for name in _LSTM_REFUSED:
            if name in kwargs:
                raise GraphpoolError(where, name, "not given (the LSTM maps 2C -> C, "
                                     "sequence first, one direction)",
                                     f"{name}={kwargs[name]!r}", f"leave {name} out")
        try:
            self.lstm = tnn.LSTM(2 * self.in_channels, self.in_channels, **kwargs)
        except (TypeError, ValueError) as err:
            raise GraphpoolError(where, "kwargs", "arguments of torch.nn.LSTM (num_layers, "
                                 "dropout, bias, ...)", repr(kwargs),
                                 f"fix or drop them ({str(err).splitlines()[0][:80]})"
                                 ) from None
        self.out_channels = 2 * self.in_channels

    def reset_parameters(self) -> None:
        self.lstm.reset_parameters()

    def forward(self, x: Tensor, segments: Segments) -> Tensor:
        where = type(self).__name__
        _check_x(self, x, segments)
        x, segments = _real_rows(x, segments)
        lead, channels = x.shape[:-2], self.in_channels
        rows = math.prod(lead) * segments.num_segments
        state = (x.new_zeros((self.lstm.num_layers, rows, channels)),
                 x.new_zeros((self.lstm.num_layers, rows, channels)))
        q_star = x.new_zeros((*lead, segments.num_segments, 2 * channels))
        for _ in range(self.processing_steps):
            step = self._lstm_step if export.exporting() else self.lstm
            q, state = step(q_star.reshape(1, rows, 2 * channels), state)
            q = q.reshape(*lead, segments.num_segments, channels)
            e = (x * segment_broadcast(q, segments)).sum(dim=-1, keepdim=True)
            a = segment_softmax(e, segments)
            r = segment_reduce(a * x, segments, "sum", _where=where)
            q_star = torch.cat([q, r], dim=-1)
        return _fill_empty(where, q_star, segments, self.fill_value)

    def out_features(self, in_features: int) -> int:
        return 2 * in_features

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(in_channels={self.in_channels}, "
                f"processing_steps={self.processing_steps})")

    def _lstm_step(self, x: Tensor, state: Tuple[Tensor, Tensor]
                   ) -> Tuple[Tensor, Tuple[Tensor, Tensor]]:
        """One step of :attr:`lstm` written out (gates ``i, f, g, o``, layer by layer),
        for torch.export: it traces ``nn.LSTM`` as a loop whose state shapes it cannot
        match when the number of sets is read when the program runs."""
        lstm, (h0, c0) = self.lstm, state
        hs, cs = [], []
        for layer in range(lstm.num_layers):
            gates = x[0] @ getattr(lstm, f"weight_ih_l{layer}").T \
                + h0[layer] @ getattr(lstm, f"weight_hh_l{layer}").T
            if lstm.bias:
                gates = gates + getattr(lstm, f"bias_ih_l{layer}") \
                    + getattr(lstm, f"bias_hh_l{layer}")
            i, f, g, o = gates.chunk(4, dim=-1)
            c = torch.sigmoid(f) * c0[layer] + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            hs.append(h)
            cs.append(c)
            x = h.unsqueeze(0)
            if layer + 1 < lstm.num_layers:
                x = tnn.functional.dropout(x, lstm.dropout, self.training)
        return x, (torch.stack(hs), torch.stack(cs))


# ------------------------------------------------------------------------ SortPooling
class SortReadout(_Learnable):
    r"""SortPooling (Zhang et al. 2018, DGCNN; PyG ``SortAggregation``): the ``k`` rows of
    each set with the largest last feature, in descending order, concatenated:

    .. math::
        y_b = x_{\pi_b(1)} \,\|\, x_{\pi_b(2)} \,\|\, \dots \,\|\, x_{\pi_b(k)},
        \qquad x_{\pi_b(1), F} \ge x_{\pi_b(2), F} \ge \dots

    a ``[*, B, k * F]`` output (:func:`~graphpool.composite.segment_sort_k`). Sets with
    fewer than ``k`` rows are padded with zero rows (as in PyG). It has no weights; it is
    learnable in the sense that the layers before it learn what to sort by.

    Args:
        k: the number of rows kept per set (default 30, as PyG's DGCNN example), an
            int >= 1 (first, as in PyG's ``SortAggregation(k)``).
        in_channels: the input width ``F``, optional; when given, ``x`` is checked
            against it.
        fill_value, validate: see :class:`~graphpool.readouts.Readout`.

    ``cls(in_channels=C)`` builds ``k=30``: output width ``30 * C``.

    Differences: rows whose last features tie are ordered by the features before it
    (lexicographically, last feature most significant), so the output never depends on
    the order of the nodes — PyG keeps tied rows in an order that does (it matches PyG
    exactly when the last feature has no ties). PyG needs a sorted index; any grouping
    works here. An empty set gets ``fill_value`` in all ``k * F`` features (PyG: 0).
    DGL's ``SortPooling`` is a different readout: it first sorts every node's own
    features (ascending), then keeps the ``k`` nodes with the largest (now last) feature,
    so its output rows are sorted feature vectors, not the nodes' features.
    ``torch.compile`` breaks the graph where the padded batch is sized by the largest
    set (a data-dependent size), so ``fullgraph=True`` fails; without it the compiled
    module matches eager.

    Example:
        >>> import torch
        >>> x = torch.tensor([[1., 5.], [2., 7.], [3., 6.], [4., 1.]])
        >>> SortReadout(k=2)(x, torch.tensor([0, 0, 0, 1])).tolist()
        [[2.0, 7.0, 3.0, 6.0], [4.0, 1.0, 0.0, 0.0]]
    """

    def __init__(self, k: int = 30, in_channels: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # k first: PyG's SortAggregation(k)
        where = type(self).__name__
        self.in_channels = _check_channels(where, "in_channels", in_channels, False,
                                           "pass the input width, or leave it out")
        self.k = _check_int(where, "k", k, "30")

    def reset_parameters(self) -> None:
        pass  # no weights

    def forward(self, x: Tensor, segments: Segments) -> Tensor:
        where = type(self).__name__
        _check_x(self, x, segments, floating=False)
        out = segment_sort_k(x, segments, self.k)
        if x.size(-2) == 0:  # keep the (empty) graph to x: to_dense drops it for no rows
            out = out + x.sum().to(out.dtype)
        return _fill_empty(where, out, segments, self.fill_value)

    def out_features(self, in_features: int) -> int:
        return self.k * in_features

    def __repr__(self) -> str:
        return f"{type(self).__name__}(k={self.k})"


# -------------------------------------------------------------------------- Deep Sets
class DeepSetsReadout(_Learnable):
    r"""Deep Sets (Zaheer et al. 2017; Buterez et al. 2022, "Graph Neural Networks with
    Adaptive Readouts"; PyG ``DeepSetsAggregation``):

    .. math::
        y_b = \rho\Big(\sum_{v \in \mathcal{V}_b} \phi(x_v)\Big)

    Args:
        in_channels: input width ``C``; needed when ``local_nn`` is left out.
        local_nn: :math:`\phi`, applied to every node. Default:
            ``Sequential(Linear(C, C), ReLU(), Linear(C, C))`` (a two-layer MLP without
            normalisation, so it acts on each row alone).
        global_nn: :math:`\rho`, applied to every set's sum; default ``None``, the
            identity.
        fill_value, validate: see :class:`~graphpool.readouts.Readout`.

    ``cls(in_channels=C)`` builds the default :math:`\phi` above and :math:`\rho` = the
    identity: output width ``C``.

    Differences from PyG: PyG's default :math:`\phi` is the identity (then this is a
    sum); here the default is the MLP (pass ``local_nn=torch.nn.Identity()`` for PyG's).
    An empty set gets ``fill_value`` (PyG: :math:`\rho(0)`). A PyG ``MLP`` as
    :math:`\rho` is called on the set rows alone (PyG also passes it the node batch
    vector, which does not describe those rows). ``torch.compile(..., fullgraph=True)``
    works on index, ptr and uniform groupings.

    Example:
        >>> import torch
        >>> sums = DeepSetsReadout(local_nn=torch.nn.Identity())
        >>> sums(torch.tensor([[1.], [3.], [5.]]), torch.tensor([0, 0, 1])).tolist()
        [[4.0], [5.0]]
        >>> DeepSetsReadout(in_channels=8).out_features(8)
        8
    """

    def __init__(self, in_channels: Optional[int] = None, local_nn: Optional[tnn.Module] = None,
                 global_nn: Optional[tnn.Module] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        where = type(self).__name__
        local_nn = _check_module(where, "local_nn", local_nn)
        global_nn = _check_module(where, "global_nn", global_nn)
        self.in_channels = _check_channels(
            where, "in_channels", in_channels, local_nn is None,
            f"pass in_channels=C or a node network, e.g. {where}(local_nn=torch.nn.Linear(C, D))")
        if local_nn is None:
            c = self.in_channels
            local_nn = tnn.Sequential(tnn.Linear(c, c), tnn.ReLU(), tnn.Linear(c, c))
        self.local_nn, self.global_nn = local_nn, global_nn

    def reset_parameters(self) -> None:
        _reset(self.local_nn)
        _reset(self.global_nn)

    def forward(self, x: Tensor, segments: Segments) -> Tensor:
        where = type(self).__name__
        _check_x(self, x, segments)
        x, segments = _real_rows(x, segments)
        h = _apply(self.local_nn, x, segments)
        out = segment_reduce(h, segments, "sum", _where=where)
        if self.global_nn is not None:
            out = self.global_nn(out)
        return _fill_empty(where, out, segments, self.fill_value)

    def out_features(self, in_features: int) -> int:
        width = in_features
        for name in ("local_nn", "global_nn"):
            width = _width(getattr(self, name), width)
            if width is None:
                raise GraphpoolError(f"{type(self).__name__}.out_features", name, "a "
                                     "network whose output width is known (linear layers, "
                                     "PyG MLPs, activations, norms, Sequentials of them)",
                                     repr(getattr(self, name)),
                                     "read the width from your network")
        return width

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(local_nn={self.local_nn}, "
                f"global_nn={self.global_nn})")
