r"""Attention readouts: Set Transformer, Graph Multiset Transformer and latent attention.

Learned queries attend to the nodes of each set; the set's output is what the queries
read. Three readouts:

* :class:`SetTransformerReadout` (Lee et al. 2019; PyG ``SetTransformerAggregation``):
  self-attention blocks over the nodes (SAB), pooling by attention of learned seeds
  (PMA), self-attention blocks over the seeds.
* :class:`GMTReadout` (Baek et al. 2021; PyG ``GraphMultisetTransformer``): PMA with
  ``k`` seeds, SAB blocks over them, PMA with one seed.
* :class:`LatentAttentionReadout` (timm's ``AttentionPoolLatent``): learned latent
  queries cross-attend to the nodes, then a projection and a residual MLP. It needs no
  padding: a softmax over each set's rows and one segment sum, ``O(N)`` on every grouping.

The first two attend among the nodes of a set, so they run on a padded batch
(:func:`~graphpool.composite.to_dense`, ``O(B N_{max}^2)``). Attention over a set
with no key is undefined (``0/0``); PyG's classes return ``nan`` or, on PyTorch > 2.4,
a value that depends on the weights only, for empty sets. Here every empty set is given
one zero dummy key, so that every softmax is over a non-empty set and every value and
gradient stays finite, and its output is then replaced by ``fill_value``: empty sets
read out as ``fill_value`` and contribute nothing to any gradient.

All three take ``x`` of shape ``[*, N, F]`` (``[*, B, Nmax, F]`` for a mask grouping,
whose padding rows never reach a value or a gradient) with ``F = in_channels``, and
return ``[*, B, out_features(F)]``; their parameters must have the dtype and device
of ``x`` (``module.double()``, ``module.to(device)``).

``torch.compile(fullgraph=True)``: :class:`LatentAttentionReadout` compiles on every
grouping (given the number of sets). The padded readouts need a padded size known
without reading the counts: a mask or uniform grouping, or ``max_num_nodes=`` (else
``Nmax`` is data-dependent, which :class:`torch.nn.MultiheadAttention` cannot trace;
without ``fullgraph`` they compile with a graph break).
"""
from __future__ import annotations

import math
from numbers import Real
from typing import Any, Optional, Tuple

import torch
from torch import Tensor, nn

from ..composite import segment_softmax, to_dense
from ..errors import GraphpoolError, describe
from ..kernels import export, segment_reduce
from ..kernels.checks import check_fill_value
from ..kernels.dense import may_be_empty
from ..segments import Kind, Segments, check_count, check_flag
from .base import Readout, check_parameters

__all__ = ["SetTransformerReadout", "GMTReadout", "LatentAttentionReadout"]

POOLS = ("token", "avg")


# --------------------------------------------------------------------------- checks

def _channels(where: str, in_channels: Any) -> int:
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise GraphpoolError(where, "in_channels", "an int >= 1 (the width of x)",
                             describe(in_channels), "pass the number of node features, "
                             "e.g. in_channels=x.size(-1)")
    return in_channels


def _heads(where: str, heads: Any, in_channels: int) -> int:
    heads = check_count(where, "heads", heads, minimum=1)
    if in_channels % heads:
        divisors = [d for d in range(1, min(in_channels, 16) + 1) if in_channels % d == 0]
        raise GraphpoolError(where, "heads", f"a divisor of in_channels={in_channels} (each "
                             f"head reads in_channels / heads features)", repr(heads),
                             f"pass one of {divisors}")
    return heads


def _dropout(where: str, dropout: Any) -> float:
    if isinstance(dropout, bool) or not isinstance(dropout, Real) or not 0 <= dropout < 1:
        raise GraphpoolError(where, "dropout", "a number in [0, 1)", describe(dropout),
                             "pass e.g. dropout=0.0")
    return float(dropout)


def _max_num_nodes(where: str, value: Any) -> Optional[int]:
    return None if value is None else check_count(where, "max_num_nodes", value, 1)


def _check_x(module: nn.Module, x: Tensor, segments: Segments) -> None:
    """``x`` fits the module: floating point, ``in_channels`` wide, of the parameters'
    dtype and device, with a node axis (and a set axis for a mask grouping)."""
    where = type(module).__name__
    least = 3 if segments.kind == Kind.MASK else 2
    if x.dim() < least:
        raise GraphpoolError(where, "x", "[*, B, Nmax, F] for a mask grouping" if least == 3
                             else "[*, N, F]", describe(x), "pass node features with a "
                             "feature axis last")
    if not x.is_floating_point():
        raise GraphpoolError(where, "x", "a floating point tensor", describe(x),
                             "convert it with x.float()")
    if x.size(-1) != module.in_channels:
        raise GraphpoolError(where, "x", f"{module.in_channels} features (in_channels) on "
                             "its last axis", describe(x), f"build {where}(in_channels="
                             f"{x.size(-1)}) or project x to {module.in_channels} features")
    check_parameters(module, x)


def _fill_empty(out: Tensor, segments: Segments, fill_value: Any, where: str) -> Tensor:
    """``out`` (``[*, B, W]``) with the rows of empty sets set to ``fill_value``; the
    gradient to those rows is 0, so nothing computed for an empty set reaches a
    parameter."""
    fill_value = check_fill_value(where, fill_value, out.dtype)
    if segments.has_empty is False:
        return out
    return out.masked_fill((segments._counts == 0).unsqueeze(-1), fill_value)


# --------------------------------------------------------------- attention blocks
# Parameter names follow PyG's torch_geometric.nn.aggr.utils, so that state_dicts
# load both ways.

class _MAB(nn.Module):
    r"""Multihead attention block: :math:`H = \mathrm{LN}(Q + \mathrm{MHA}(Q, Y, Y))`,
    :math:`\mathrm{MAB}(Q, Y) = \mathrm{LN}(H + \mathrm{ReLU}(W H + b))` (the layer
    norms optional). Query rows outside ``q_mask`` get no attention output; keys outside
    ``key_mask`` are not attended to (every query must have at least one key)."""

    def __init__(self, channels: int, heads: int, layer_norm: bool, dropout: float) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(channels, heads, dropout=dropout, batch_first=True)
        self.lin = nn.Linear(channels, channels)
        self.layer_norm1 = nn.LayerNorm(channels) if layer_norm else None
        self.layer_norm2 = nn.LayerNorm(channels) if layer_norm else None

    def reset_parameters(self) -> None:
        self.attn._reset_parameters()
        self.lin.reset_parameters()
        for norm in (self.layer_norm1, self.layer_norm2):
            if norm is not None:
                norm.reset_parameters()

    def forward(self, q: Tensor, y: Tensor, q_mask: Optional[Tensor] = None,
                key_mask: Optional[Tensor] = None) -> Tensor:
        padding = None if key_mask is None else ~key_mask
        h = self.attn(q, y, y, key_padding_mask=padding, need_weights=False)[0]
        if q_mask is not None:
            h = torch.where(q_mask.unsqueeze(-1), h, 0)
        h = h + q
        if self.layer_norm1 is not None:
            h = self.layer_norm1(h)
        h = h + torch.relu(self.lin(h))
        if self.layer_norm2 is not None:
            h = self.layer_norm2(h)
        return h


class _SAB(nn.Module):
    r"""Set attention block :math:`\mathrm{SAB}(X) = \mathrm{MAB}(X, X)`."""

    def __init__(self, channels: int, heads: int, layer_norm: bool, dropout: float) -> None:
        super().__init__()
        self.mab = _MAB(channels, heads, layer_norm, dropout)

    def reset_parameters(self) -> None:
        self.mab.reset_parameters()

    def forward(self, x: Tensor, rows: Optional[Tensor] = None,
                keys: Optional[Tensor] = None) -> Tensor:
        return self.mab(x, x, rows, keys)


class _PMA(nn.Module):
    r"""Pooling by multihead attention of ``num_seed_points`` learned seeds :math:`S`:
    :math:`\mathrm{PMA}(X) = \mathrm{MAB}(S, \mathrm{ReLU}(W X + b))`."""

    def __init__(self, channels: int, num_seed_points: int, heads: int, layer_norm: bool,
                 dropout: float) -> None:
        super().__init__()
        self.lin = nn.Linear(channels, channels)
        self.seed = nn.Parameter(torch.empty(1, num_seed_points, channels))
        self.mab = _MAB(channels, heads, layer_norm, dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()
        nn.init.xavier_uniform_(self.seed)
        self.mab.reset_parameters()

    def forward(self, x: Tensor, keys: Optional[Tensor] = None) -> Tensor:
        seeds = self.seed.expand(x.size(0), -1, -1)
        return self.mab(seeds, torch.relu(self.lin(x)), None, keys)


class _Padded(Readout):
    """A readout that attends over a padded batch of its sets."""

    needs_in_channels = True
    functional = False

    def _padded(self, x: Tensor, segments: Segments
                ) -> Tuple[Tensor, Tensor, Tensor, Tuple[int, ...]]:
        """``x`` as ``[R, Nmax, F]`` (``R = prod(*) * B``, padding rows 0), the ``[R, Nmax]``
        rows of the sets and the keys to attend to: the rows, plus row 0 (a zero row) of
        every empty set, so that no softmax is over nothing."""
        _check_x(self, x, segments)
        dense, rows = to_dense(x, segments, max_num_nodes=self.max_num_nodes,
                               where=type(self).__name__)
        if segments.kind == Kind.MASK:  # garbage (nan) in the padding rows: never read it
            dense = torch.where(rows.unsqueeze(-1), dense, 0)
        lead = tuple(dense.shape[:-3])
        num, features = rows.size(0), dense.size(-1)
        if export.exporting() and may_be_empty(rows.size(1)):  # the padded size may be 0
            # when the program runs: one zero row more (a padding row), never a test of it
            dense = torch.cat([dense, dense.new_zeros((*dense.shape[:-2], 1, features))], -2)
            rows = torch.cat([rows, rows.new_zeros((num, 1))], -1)
        elif rows.size(1) == 0:  # no set has a row: one zero row for the dummy keys
            dense = dense.new_zeros((*dense.shape[:-2], 1, features))
            rows = rows.new_zeros((num, 1))
        size = rows.size(1)
        first = torch.arange(size, device=rows.device) == 0
        keys = rows | ((segments._counts == 0).unsqueeze(-1) & first)
        batch = math.prod(lead) * num
        if batch == 0:  # no set at all: one dummy set (attention refuses a batch of 0),
            # so that the output is still connected to the parameters; _finish drops it
            return (dense.new_zeros((1, size, features)), rows.new_zeros((1, size)),
                    first.unsqueeze(0), lead)
        rows = rows.expand(*lead, num, size).reshape(batch, size)
        keys = keys.expand(*lead, num, size).reshape(batch, size)
        dense = dense.reshape(batch, size, features)
        if export.exporting():  # one dummy set more (dropped by _finish): attention never
            # tests a symbolic batch for size 1, which would fix the number of sets
            dense = torch.cat([dense, dense.new_zeros((1, size, features))])
            rows, keys = torch.cat([rows, rows[:1] & False]), torch.cat([keys, first[None]])
        return dense, rows, keys, lead

    def _finish(self, out: Tensor, segments: Segments, lead: Tuple[int, ...]) -> Tensor:
        num = segments.num_segments
        out = out[:math.prod(lead) * num].reshape(*lead, num, out.size(-1))
        return _fill_empty(out, segments, self.fill_value, type(self).__name__)


# ------------------------------------------------------------------------ readouts

class SetTransformerReadout(_Padded):
    r"""Set Transformer readout (Lee et al. 2019, "Set Transformer"; Buterez et al. 2022,
    "Graph Neural Networks with Adaptive Readouts"), as PyG's
    ``SetTransformerAggregation``:

    .. math::
        Z_b = \mathrm{SAB}^{n_{dec}}\big(\mathrm{PMA}_S\big(
              \mathrm{SAB}^{n_{enc}}(X_b)\big)\big) \in \mathbb{R}^{S \times C}, \qquad
        y_b = \mathrm{vec}(Z_b) \ \ (\texttt{concat}) \ \text{ or } \
              \tfrac{1}{S}\textstyle\sum_s Z_{b,s}

    with :math:`X_b` the rows of set :math:`b`,
    :math:`\mathrm{SAB}(X) = \mathrm{MAB}(X, X)`,
    :math:`\mathrm{PMA}_S(X) = \mathrm{MAB}(S, \mathrm{ReLU}(W X + b))` for ``S`` learned
    seeds, and :math:`\mathrm{MAB}(Q, Y) = \mathrm{LN}(H + \mathrm{ReLU}(W' H + b'))`,
    :math:`H = \mathrm{LN}(Q + \mathrm{MultiHead}(Q, Y, Y))` (layer norms only with
    ``layer_norm=True``). Every attention over nodes is restricted to the set's own rows.

    Args:
        in_channels: the width ``C`` of ``x``.
        num_seed_points: the number of seeds ``S`` of the PMA.
        num_encoder_blocks: SABs over the nodes before the PMA.
        num_decoder_blocks: SABs over the seeds after it.
        heads: attention heads (a divisor of ``in_channels``).
        concat: concatenate the seeds' outputs (``[*, B, S C]``), else average them
            (``[*, B, C]``).
        layer_norm: layer norms in every block.
        dropout: dropout of the attention weights (training mode only).
        max_num_nodes: a fixed padded size ``Nmax`` for index and ptr groupings (PyG's
            ``max_num_elements``); ``None``: the largest set (one host sync). A fixed
            size makes ``torch.compile(fullgraph=True)`` possible; a larger set is an
            error, never truncated.
        **kwargs: ``fill_value`` (the value of empty sets, default 0) and ``validate``
            of :class:`~graphpool.Readout`.

    Parameter names are PyG's: ``load_state_dict`` takes a ``SetTransformerAggregation``'s
    state dict of the same arguments, and gives its results on batches without empty sets.
    Unlike PyG, empty sets give ``fill_value`` (PyG: a weight-dependent value, or ``nan``
    mapped to 0 with ``nan`` gradients, depending on the PyTorch version), every grouping
    works (PyG needs a sorted index), and leading batch dims ``[*, N, C]`` are read out
    independently. The padded batch costs ``O(B N_{max}^2 C)``.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> readout = SetTransformerReadout(8, num_seed_points=2, heads=2).eval()
        >>> x, batch = torch.randn(5, 8), torch.tensor([0, 0, 0, 2, 2])
        >>> out = readout(x, batch, num_graphs=4)
        >>> out.shape, readout.out_features(8)
        (torch.Size([4, 16]), 16)
        >>> out[1].abs().max().item(), out[3].abs().max().item()  # empty sets
        (0.0, 0.0)
        >>> perm = torch.tensor([2, 0, 1, 4, 3])  # the order of the nodes does not matter
        >>> torch.allclose(readout(x[perm], batch, num_graphs=4), out, atol=1e-6)
        True
    """

    def __init__(self, in_channels: int, num_seed_points: int = 1, num_encoder_blocks: int = 1,
                 num_decoder_blocks: int = 1, heads: int = 1, concat: bool = True,
                 layer_norm: bool = False, dropout: float = 0.0,
                 max_num_nodes: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        where = type(self).__name__
        self.in_channels = _channels(where, in_channels)
        self.max_num_nodes = _max_num_nodes(where, max_num_nodes)
        self.num_seed_points = check_count(where, "num_seed_points", num_seed_points, 1)
        num_encoder_blocks = check_count(where, "num_encoder_blocks", num_encoder_blocks)
        num_decoder_blocks = check_count(where, "num_decoder_blocks", num_decoder_blocks)
        self.heads = _heads(where, heads, self.in_channels)
        self.concat = check_flag(where, "concat", concat)
        self.layer_norm = check_flag(where, "layer_norm", layer_norm)
        self.dropout = _dropout(where, dropout)
        block = (self.in_channels, self.heads, self.layer_norm, self.dropout)
        self.encoders = nn.ModuleList([_SAB(*block) for _ in range(num_encoder_blocks)])
        self.pma = _PMA(self.in_channels, self.num_seed_points, *block[1:])
        self.decoders = nn.ModuleList([_SAB(*block) for _ in range(num_decoder_blocks)])

    def reset_parameters(self) -> None:
        for block in (*self.encoders, self.pma, *self.decoders):
            block.reset_parameters()

    def forward(self, x: Tensor, segments: Segments) -> Tensor:
        if self.max_num_nodes is None and len(self.encoders) and export.exporting() \
                and segments.kind in (Kind.CSR, Kind.SCATTER):
            raise GraphpoolError(type(self).__name__, "max_num_nodes", "a fixed padded size "
                                 "to export over an index or ptr grouping (self-attention "
                                 "among the nodes cannot take a set size read when the "
                                 "program runs)", "None", "build it with max_num_nodes=<the "
                                 "largest set> (a larger one is an error when the model "
                                 "runs), or export over a mask grouping")
        h, rows, keys, lead = self._padded(x, segments)
        for encoder in self.encoders:
            h = encoder(h, rows, keys)
        h = self.pma(h, keys)
        for decoder in self.decoders:
            h = decoder(h)
        out = h.flatten(-2) if self.concat else h.mean(-2)
        return self._finish(out, segments, lead)

    def out_features(self, in_features: int) -> int:
        """``num_seed_points * in_features`` with ``concat``, else ``in_features``."""
        return self.num_seed_points * in_features if self.concat else in_features

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.in_channels}, num_seed_points="
                f"{self.num_seed_points}, heads={self.heads}, concat={self.concat}, "
                f"layer_norm={self.layer_norm}, dropout={self.dropout})")


class GMTReadout(_Padded):
    r"""Graph Multiset Transformer readout (Baek et al. 2021, "Accurate Learning of Graph
    Representations with Graph Multiset Pooling"), as PyG's ``GraphMultisetTransformer``
    aggregation:

    .. math::
        y_b = \mathrm{PMA}_1\big(\mathrm{SAB}^{n_{enc}}\big(\mathrm{PMA}_k(X_b)\big)\big)
        \in \mathbb{R}^{C}

    the rows of each set pooled to ``k`` representatives by attention of ``k`` learned
    seeds, ``num_encoder_blocks`` self-attention blocks among them, then pooled to one
    by attention of one seed (blocks as in :class:`SetTransformerReadout`).

    Args:
        in_channels: the width ``C`` of ``x``.
        k: the number of representatives (PyG requires it; 4 by default here, so that
            ``GMTReadout(in_channels=C)`` works).
        num_encoder_blocks: SABs between the two PMAs.
        heads: attention heads (a divisor of ``in_channels``).
        layer_norm: layer norms in every block.
        dropout: dropout of the attention weights (training mode only).
        max_num_nodes: a fixed padded size, as for :class:`SetTransformerReadout`.
        **kwargs: ``fill_value`` and ``validate`` of :class:`~graphpool.Readout`.

    Parameter names are PyG's (``pma1``, ``encoders``, ``pma2``): it loads a
    ``GraphMultisetTransformer``'s state dict and gives its results on batches without
    empty sets. Unlike PyG, empty sets give ``fill_value`` with finite gradients (PyG:
    ``nan``, or a weight-dependent value on PyTorch > 2.4), and every grouping works.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> readout = GMTReadout(8, k=3, heads=2).eval()
        >>> out = readout(torch.randn(5, 8), torch.tensor([0, 0, 0, 2, 2]), num_graphs=3)
        >>> out.shape, out[1].abs().max().item()
        (torch.Size([3, 8]), 0.0)
    """

    def __init__(self, in_channels: int, k: int = 4, num_encoder_blocks: int = 1,
                 heads: int = 1, layer_norm: bool = False, dropout: float = 0.0,
                 max_num_nodes: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        where = type(self).__name__
        self.in_channels = _channels(where, in_channels)
        self.max_num_nodes = _max_num_nodes(where, max_num_nodes)
        self.k = check_count(where, "k", k, 1)
        num_encoder_blocks = check_count(where, "num_encoder_blocks", num_encoder_blocks)
        self.heads = _heads(where, heads, self.in_channels)
        self.layer_norm = check_flag(where, "layer_norm", layer_norm)
        self.dropout = _dropout(where, dropout)
        block = (self.heads, self.layer_norm, self.dropout)
        self.pma1 = _PMA(self.in_channels, self.k, *block)
        self.encoders = nn.ModuleList([_SAB(self.in_channels, *block)
                                       for _ in range(num_encoder_blocks)])
        self.pma2 = _PMA(self.in_channels, 1, *block)

    def reset_parameters(self) -> None:
        for block in (self.pma1, *self.encoders, self.pma2):
            block.reset_parameters()

    def forward(self, x: Tensor, segments: Segments) -> Tensor:
        h, _, keys, lead = self._padded(x, segments)
        h = self.pma1(h, keys)
        for encoder in self.encoders:
            h = encoder(h)
        return self._finish(self.pma2(h).squeeze(-2), segments, lead)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.in_channels}, k={self.k}, heads={self.heads}, "
                f"layer_norm={self.layer_norm}, dropout={self.dropout})")


class _Mlp(nn.Module):
    """``fc2(GELU(fc1(x)))`` (timm's ``Mlp`` names)."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LatentAttentionReadout(Readout):
    r"""Attention pooling with learned latent queries, as timm's ``AttentionPoolLatent``
    (SigLIP's and ViT's ``map`` head), on sets of any size and without padding.

    ``L = num_latents`` learned latents :math:`\ell_j \in \mathbb{R}^C` are projected to
    queries, the rows to keys and values, :math:`q_j = W_q \ell_j`,
    :math:`[k_v, v_v] = W_{kv} x_v`; with ``H`` heads of ``D = C / H`` features (head
    :math:`h` of a vector: :math:`\cdot^{(h)}`), latent :math:`j` reads set :math:`b` as

    .. math::
        o_{bj}^{(h)} = \sum_{v \in \mathcal{V}_b} \alpha_{vj}^{(h)} v_v^{(h)}, \qquad
        \alpha_{\cdot j}^{(h)} = \mathrm{softmax}_{v \in \mathcal{V}_b}
        \Big(\frac{q_j^{(h)} \cdot k_v^{(h)}}{\sqrt{D}}\Big)

    then :math:`z_{bj} = W_p o_{bj} + b_p`, :math:`z_{bj} \leftarrow z_{bj} +
    \mathrm{MLP}(\mathrm{LN}(z_{bj}))` (``fc1``, GELU, ``fc2``; hidden width
    ``int(C * mlp_ratio)``), and the output is :math:`z_{b1}` (``pool="token"``) or
    :math:`\frac1L \sum_j z_{bj}` (``pool="avg"``): ``[*, B, C]``.

    The softmax is :func:`~graphpool.composite.segment_softmax` over the scores of every
    row against every (head, latent) and the weighted sum one
    :func:`~graphpool.segment_reduce`: ``O(N L C)`` work and memory on every grouping,
    no padded batch, no host sync.

    Args:
        in_channels: the width ``C`` of ``x``.
        num_latents: the number of latent queries ``L`` (timm's ``latent_len``).
        heads: attention heads, a divisor of ``in_channels``; default (``None``) 8 when
            ``in_channels`` is a multiple of 8, else 1.
        mlp_ratio: hidden width of the MLP over ``in_channels``.
        qkv_bias: biases in the query and key/value projections.
        pool: ``"token"`` (the first latent's output) or ``"avg"`` (the mean of all).
            The latents do not interact, so with ``"token"`` the others are unused (as in
            timm); use ``"avg"`` with ``num_latents > 1``.
        dropout: dropout after the projection (timm's ``drop``; training mode only).
        **kwargs: ``fill_value`` and ``validate`` of :class:`~graphpool.Readout`.

    Differences from timm: the MLP's input is layer-normalised (timm's default
    ``norm_layer=None`` skips the norm; its SigLIP models pass ``LayerNorm``, which is
    what this is); no ``pos_embed``, ``qk_norm``, ``embed_dim``, ``latent_dim`` or
    ``out_features`` options (the width stays ``C``). Parameter names are timm's, so
    ``load_state_dict`` moves weights between this and
    ``AttentionPoolLatent(C, num_heads=H, latent_len=L, norm_layer=nn.LayerNorm)``.
    Empty sets give ``fill_value``.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> readout = LatentAttentionReadout(16, num_latents=2, pool="avg").eval()
        >>> readout.heads
        8
        >>> x, batch = torch.randn(5, 16), torch.tensor([1, 0, 1, 1, 0])
        >>> out = readout(x, batch, num_graphs=3)
        >>> out.shape, out[2].abs().max().item()
        (torch.Size([3, 16]), 0.0)
        >>> torch.allclose(readout(x[[4, 1]], torch.tensor([0, 0])), out[:1], atol=1e-6)
        True
    """

    needs_in_channels = True
    functional = False

    def __init__(self, in_channels: int, num_latents: int = 1, heads: Optional[int] = None,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, pool: str = "token",
                 dropout: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        where = type(self).__name__
        self.in_channels = channels = _channels(where, in_channels)
        self.num_latents = check_count(where, "num_latents", num_latents, 1)
        if heads is None:
            heads = 8 if channels % 8 == 0 else 1
        self.heads = _heads(where, heads, channels)
        if (isinstance(mlp_ratio, bool) or not isinstance(mlp_ratio, Real)
                or not math.isfinite(mlp_ratio) or int(channels * mlp_ratio) < 1):
            raise GraphpoolError(where, "mlp_ratio", f"a finite number > 0 with "
                                 f"int(in_channels * mlp_ratio) >= 1 (in_channels="
                                 f"{channels})", describe(mlp_ratio),
                                 "pass e.g. mlp_ratio=4.0")
        self.mlp_ratio = float(mlp_ratio)
        self.qkv_bias = check_flag(where, "qkv_bias", qkv_bias)
        if pool not in POOLS:
            raise GraphpoolError(where, "pool", f"one of {POOLS}", describe(pool),
                                 "pass pool='token' (first latent) or pool='avg' (mean)")
        self.pool = pool
        self.dropout = _dropout(where, dropout)
        self.latent = nn.Parameter(torch.empty(1, self.num_latents, channels))
        self.q = nn.Linear(channels, channels, bias=self.qkv_bias)
        self.kv = nn.Linear(channels, 2 * channels, bias=self.qkv_bias)
        self.proj = nn.Linear(channels, channels)
        self.proj_drop = nn.Dropout(self.dropout)
        self.norm = nn.LayerNorm(channels)
        self.mlp = _Mlp(channels, int(channels * self.mlp_ratio))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = self.in_channels ** -0.5  # timm: truncated normal, cut at two stds
        nn.init.trunc_normal_(self.latent, std=std, a=-2 * std, b=2 * std)
        for layer in (self.q, self.kv, self.proj, self.norm, self.mlp.fc1, self.mlp.fc2):
            layer.reset_parameters()

    def forward(self, x: Tensor, segments: Segments) -> Tensor:
        _check_x(self, x, segments)
        if segments.kind == Kind.MASK:  # garbage (nan) in the padding rows: never read it
            x = torch.where(segments._m.unsqueeze(-1), x, 0)
        heads, latents = self.heads, self.num_latents
        width = self.in_channels // heads
        q = self.q(self.latent[0]).view(latents, heads, width)                # [L, H, D]
        k, v = self.kv(x).unflatten(-1, (2, heads, width)).unbind(-3)         # [*, N, H, D]
        scores = torch.einsum("...nhd,lhd->...nhl", k, q) * width ** -0.5     # [*, N, H, L]
        alpha = segment_softmax(scores.flatten(-2), segments).view_as(scores)
        weighted = alpha.unsqueeze(-1) * v.unsqueeze(-2)                      # [*, N, H, L, D]
        o = segment_reduce(weighted.flatten(-3), segments, "sum",
                           _where=type(self).__name__)                        # [*, B, H L D]
        o = o.unflatten(-1, (heads, latents, width)).transpose(-3, -2).flatten(-2)
        z = self.proj_drop(self.proj(o))                                      # [*, B, L, C]
        z = z + self.mlp(self.norm(z))
        out = z[..., 0, :] if self.pool == "token" else z.mean(-2)
        return _fill_empty(out, segments, self.fill_value, type(self).__name__)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.in_channels}, num_latents={self.num_latents}, "
                f"heads={self.heads}, mlp_ratio={self.mlp_ratio:g}, pool={self.pool!r})")
