r"""Squeeze-and-Excitation for node sets and feature maps (Hu et al., 2018).

Squeeze each set to one vector with a readout, excite it with a small MLP, and gate every
node of the set with the result:

.. math::
    s_b = r(\{x_v\}_{v \in \mathcal{V}_b}), \qquad
    g_b = \sigma\big(W_2\, \mathrm{ReLU}(W_1 s_b + c_1) + c_2\big), \qquad
    x'_v = g_b \odot x_v \quad (v \in \mathcal{V}_b).

With the pixels of an image as the set and a mean readout this is the standard SE block
(whose two 1 x 1 convolutions are these linear layers); with a graph's nodes it gates
node features by a graph-level summary.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from .errors import GraphpoolError
from .kernels import segment_broadcast
from .grid.layout import Layout, as_nodes, describe_input, is_proxy, resolve_layout, trace_leaf
from .grid.pool import readout_module
from .readouts import Readout
from .resolve import as_segments

__all__ = ["SqueezeExcitation"]


class SqueezeExcitation(nn.Module):
    r"""Gate node (or pixel) features by a learned function of their set's readout.

    Args:
        channels: feature width ``C``.
        reduction: the hidden width is ``max(1, channels // reduction)``.
        readout: the squeeze: a readout name or a :class:`~graphpool.Readout` module.
        layout: ``None`` for node sets (``forward(x, batch)``); a
            :class:`~graphpool.grid.Layout` name such as ``"NCHW"`` for feature maps
            (``forward(fmap, mask=None)``, a list of maps works too).

    Example:
        >>> import torch
        >>> se = SqueezeExcitation(16, reduction=4, layout="NCHW")
        >>> se
        SqueezeExcitation(channels=16, hidden=4, readout=MeanReadout(), layout='NCHW')
        >>> se(torch.randn(2, 16, 5, 5)).shape
        torch.Size([2, 16, 5, 5])
        >>> graph_se = SqueezeExcitation(16, reduction=4)          # node sets
        >>> graph_se(torch.randn(7, 16), torch.tensor([0, 0, 0, 1, 1, 1, 1])).shape
        torch.Size([7, 16])
    """

    def __init__(self, channels: int, reduction: int = 16,
                 readout: Union[str, Readout] = "mean",
                 layout: Union[str, Layout, None] = None) -> None:
        super().__init__()
        where = "SqueezeExcitation"
        for name, value in (("channels", channels), ("reduction", reduction)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise GraphpoolError(where, name, "an int >= 1", repr(value),
                                     f"pass a positive {name}")
        self.channels = channels
        self.hidden = max(1, channels // reduction)
        self.readout = readout_module(readout, where)
        self.layout = None if layout is None else resolve_layout(layout, where)
        self.fc1 = nn.Linear(channels, self.hidden)
        self.fc2 = nn.Linear(self.hidden, channels)

    def gates(self, squeezed: Tensor) -> Tensor:
        r""":math:`g = \sigma(W_2\, \mathrm{ReLU}(W_1 s + c_1) + c_2)` for readouts ``s``."""
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(squeezed))))

    def forward(self, x: Union[Tensor, Sequence[Tensor]], batch: Any = None, *,
                mask: Optional[Tensor] = None,
                num_graphs: Optional[int] = None) -> Union[Tensor, list]:
        """Gate ``x``: node features ``[*, N, C]`` grouped by ``batch`` (an index, a
        Segments or a PyG Batch; ``None`` = one set), or a feature map in :attr:`layout`."""
        where = "SqueezeExcitation"
        if is_proxy(x) or is_proxy(batch) or is_proxy(mask):  # torch.fx: a leaf module
            return trace_leaf(self, where, "x", x, batch, mask=mask, num_graphs=num_graphs)
        self._check_values(x, where)
        if self.layout is not None:
            if batch is not None:
                raise GraphpoolError(where, "batch", "None for a feature map (its images are "
                                     "the sets)", describe_input(batch),
                                     "drop batch, or build the module with layout=None")
            nodes = as_nodes(x, self.layout, mask=mask, channels=self.channels, where=where,
                             argument="x")
            gates = self.gates(nodes.readout(self.readout))
            return nodes.to_map(nodes.x * nodes.broadcast(gates))
        if mask is not None:
            raise GraphpoolError(where, "mask", "None for node sets", describe_input(mask),
                                 "pass batch=Segments.from_mask(mask) for a padded batch, "
                                 "or build the module with a layout for feature maps")
        if not isinstance(x, Tensor) or x.dim() < 2 or x.size(-1) != self.channels:
            raise GraphpoolError(where, "x", f"node features [*, N, {self.channels}]",
                                 describe_input(x), "pass features of the width the module was "
                                 "built for; for a feature map build it with layout='NCHW'")
        segments = as_segments(x, batch, num_segments=num_graphs, where=where)
        if x.size(-2) != segments.num_nodes:
            raise GraphpoolError(where, "batch", f"a grouping of the {x.size(-2)} rows of x",
                                 f"a grouping of {segments.num_nodes} rows",
                                 "pass the batch vector of x (one entry per node)")
        gates = self.gates(self.readout(x, segments))
        return x * segment_broadcast(gates, segments)

    def _check_values(self, x: object, where: str) -> None:
        """Refuse inputs the gating layers cannot take, before any readout runs."""
        first = x[0] if isinstance(x, (list, tuple)) and len(x) else x
        if not isinstance(first, Tensor):
            return  # the shape checks report it
        weight = self.fc1.weight
        if first.dtype != weight.dtype:
            raise GraphpoolError(where, "x", f"a {weight.dtype} tensor (the dtype of the "
                                 "module's parameters)", describe_input(x),
                                 f"convert x with x.to({weight.dtype}) or the module with "
                                 f"se.to({first.dtype})" if first.is_floating_point() else
                                 f"convert x with x.to({weight.dtype})")
        if first.device != weight.device:
            raise GraphpoolError(where, "x", f"a tensor on {weight.device} (the device of the "
                                 "module's parameters)", describe_input(x),
                                 "move x or the module, e.g. se.to(x.device)")

    def __repr__(self) -> str:
        layout = None if self.layout is None else self.layout.value
        return (f"{type(self).__name__}(channels={self.channels}, hidden={self.hidden}, "
                f"readout={self.readout!r}, layout={layout!r})")
