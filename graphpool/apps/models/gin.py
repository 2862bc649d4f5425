r"""The Graph Isomorphism Network of Xu et al. (ICLR 2019) with a pluggable readout.

Layer :math:`k = 1, \dots, K` updates every node :math:`v` with a 2-layer MLP,

.. math::
    h_v^{(k)} = \mathrm{ReLU}\Big(\mathrm{BN}\big(\mathrm{MLP}^{(k)}\big(
        (1 + \epsilon^{(k)})\, h_v^{(k-1)} + \textstyle\sum_{u \in \mathcal{N}(v)} h_u^{(k-1)}
    \big)\big)\Big), \qquad h_v^{(0)} = x_v,

and the graph is classified from *every* layer, jumping-knowledge style (the paper's Eq. 4.2
with one linear map per layer instead of a concatenation, as in its reference code):

.. math::
    \mathrm{logits}(G) = \sum_{k=0}^{K} \mathrm{Dropout}\Big(W^{(k)}\,
        \mathrm{READOUT}\big(\{h_v^{(k)} : v \in G\}\big) + b^{(k)}\Big).

GIN-0 fixes :math:`\epsilon^{(k)} = 0`; GIN-:math:`\epsilon` learns it. ``READOUT`` is any
graphpool readout; the neighbourhood sum can be swapped too (``aggr``), since graphpool
readouts are PyG aggregations.
"""
from __future__ import annotations

from typing import Any, List, Optional, Union

from torch import Tensor, nn
from torch_geometric.nn import GINConv

from ...errors import GraphpoolError
from ...readouts import Readout, resolve_readout

__all__ = ["GIN"]


def _gin_mlp(in_channels: int, hidden_channels: int) -> nn.Sequential:
    """Linear-BN-ReLU-Linear (the paper's 2-layer MLP), then the layer's BN and ReLU."""
    return nn.Sequential(
        nn.Linear(in_channels, hidden_channels), nn.BatchNorm1d(hidden_channels), nn.ReLU(),
        nn.Linear(hidden_channels, hidden_channels), nn.BatchNorm1d(hidden_channels), nn.ReLU(),
    )


class GIN(nn.Module):
    r"""GIN-0 / GIN-:math:`\epsilon` for graph classification with a per-layer readout
    (math in the module docstring).

    Args:
        in_channels: node feature width.
        out_channels: number of classes.
        hidden_channels: width of every GIN layer (the paper tunes {16, 32}).
        num_layers: layers *counting the input*, as in the paper (5 means 4 GIN layers).
        readout: graph readout, a name (``"sum"``, ``"mean"``, ``"max"``, ...) or a
            :class:`~graphpool.Readout`. A name builds one module per layer; an instance
            is shared by every layer.
        aggr: neighbourhood aggregation of the GIN layers, a name or a readout
            (``"sum"`` is GIN; ``"mean"``/``"max"`` are close to the paper's MEAN-/MAX-MLP
            variants, which also average or maximise over the node itself).
        train_eps: learn :math:`\epsilon` (GIN-:math:`\epsilon`); ``False`` is GIN-0.
        dropout: dropout on each layer's class scores (the paper tunes {0, 0.5}).

    Example:
        >>> import torch
        >>> from graphpool.apps.models import GIN
        >>> _ = torch.manual_seed(0)
        >>> model = GIN(7, 2, hidden_channels=16, readout="max")
        >>> x = torch.randn(5, 7)
        >>> edge_index = torch.tensor([[0, 1, 1, 2, 3, 4], [1, 0, 2, 1, 4, 3]])
        >>> batch = torch.tensor([0, 0, 0, 1, 1])
        >>> model(x, edge_index, batch).shape
        torch.Size([2, 2])
        >>> model.readouts[0]
        MaxReadout()
    """

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int = 32,
                 num_layers: int = 5, readout: Union[str, Readout] = "sum", *,
                 aggr: Union[str, Readout] = "sum", train_eps: bool = False,
                 dropout: float = 0.5) -> None:
        super().__init__()
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 2:
            raise GraphpoolError("GIN", "num_layers", "an int >= 2 (layers counting the input)",
                                 repr(num_layers), "use 5 as in the paper")
        if not 0.0 <= dropout < 1.0:
            raise GraphpoolError("GIN", "dropout", "a probability in [0, 1)", repr(dropout),
                                 "use 0 or 0.5 as in the paper")
        widths = [in_channels] + [hidden_channels] * (num_layers - 1)
        aggrs = [resolve_readout(aggr, where="GIN", argument="aggr", validate=False,
                                 in_channels=w) if isinstance(aggr, (str, list, tuple))
                 else aggr for w in widths[:-1]]
        for a, w in zip(aggrs, widths):
            if isinstance(a, Readout) and a.out_features(w) != w:
                raise GraphpoolError("GIN", "aggr", "a neighbourhood aggregation that keeps "
                                     "the feature width (GIN adds it to the node's own "
                                     "features)", f"{a!r}, {w} -> {a.out_features(w)} features",
                                     "use a width-preserving readout such as 'sum', 'mean', "
                                     "'max', 'std' or 'softmax' as aggr")
        self.convs = nn.ModuleList(
            GINConv(_gin_mlp(widths[k], hidden_channels), train_eps=train_eps, aggr=aggrs[k])
            for k in range(num_layers - 1))
        self.readouts = nn.ModuleList(
            resolve_readout(readout, where="GIN", in_channels=w)
            if isinstance(readout, (str, list, tuple)) else readout for w in widths)
        self.heads = nn.ModuleList(
            nn.Linear(r.out_features(w), out_channels) for r, w in zip(self.readouts, widths))
        self.dropout = dropout

    def forward(self, x: Tensor, edge_index: Tensor, batch: Any,
                num_graphs: Optional[int] = None) -> Tensor:
        """Class scores ``[B, out_channels]``; ``batch`` is anything a readout accepts
        (batch vector, :class:`~graphpool.Segments`, PyG ``Batch``)."""
        states: List[Tensor] = [x]
        for conv in self.convs:
            states.append(conv(states[-1], edge_index))
        logits = 0
        for h, read, head in zip(states, self.readouts, self.heads):
            pooled = read(h, batch, num_graphs=num_graphs)
            logits = logits + nn.functional.dropout(head(pooled), self.dropout, self.training)
        return logits
