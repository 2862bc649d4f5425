r"""Local pooling as segments: every ``k x k`` window of a map is a node set.

Window :math:`(o, p)` of kernel :math:`(k_h, k_w)` and stride :math:`(s_h, s_w)` holds the
pixels :math:`(o s_h + a,\; p s_w + c)` for :math:`0 \le a < k_h`, :math:`0 \le c < k_w`;
there are :math:`H_o = \lfloor (H - k_h) / s_h \rfloor + 1` by
:math:`W_o = \lfloor (W - k_w) / s_w \rfloor + 1` of them (no padding, floor mode, as
``avg_pool2d`` / ``max_pool2d`` with their defaults). A readout of these sets *is* local
pooling. Windows may overlap (stride < kernel): a pixel then belongs to several sets, so
the rows are gathered window by window (the only copy) and grouped uniformly.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from ..errors import GraphpoolError
from ..readouts import Readout
from ..segments import Segments
from .layout import (Layout, as_int, as_nodes, describe_input, is_proxy, nodes_to_map,
                     resolve_layout, trace_function)
from .pool import check_dtype, readout_module

__all__ = ["WindowSegments", "window_segments", "window_pool", "ReceptiveField",
           "receptive_field"]

Pair = Union[int, Tuple[int, int]]


def _pair(where: str, name: str, value: object) -> Tuple[int, int]:
    pair = value if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) == 2:
        try:
            return tuple(as_int(where, name, v, 1, "") for v in pair)  # type: ignore
        except GraphpoolError:
            pass
    raise GraphpoolError(where, name, "an int >= 1 or a pair of them", repr(value),
                         f"pass e.g. {name}=2 or {name}=(2, 3)")


@dataclass(frozen=True)
class WindowSegments:
    r"""The windows of a map as segments of gathered pixels (see the module docs).

    Attributes:
        index: ``[H_o W_o k_h k_w]`` pixel ids (row-major in the map), window by window.
        segments: ``Segments.uniform(H_o * W_o, k_h * k_w)`` over the gathered rows.
        out_size: ``(H_o, W_o)``.
    """

    index: Tensor
    segments: Segments
    out_size: Tuple[int, int]

    def gather(self, x: Tensor) -> Tensor:
        """The rows of every window, window by window: ``x[..., index, :]``."""
        return x.index_select(-2, self.index)


def window_segments(height: int, width: int, kernel: Pair, stride: Optional[Pair] = None, *,
                    device: Optional[torch.device] = None,
                    _where: str = "window_segments") -> WindowSegments:
    r"""The ``kernel`` windows with ``stride`` (default: ``kernel``) of an ``height x width`` map.

    Example:
        >>> w = window_segments(3, 3, kernel=2, stride=1)    # overlapping windows
        >>> w.out_size, w.segments
        ((2, 2), Segments(kind='uniform', num_segments=4, num_nodes=16, size=4))
        >>> w.index.view(4, 4).tolist()
        [[0, 1, 3, 4], [1, 2, 4, 5], [3, 4, 6, 7], [4, 5, 7, 8]]
    """
    where = _where
    height = as_int(where, "height", height, 0, "the height of the map in pixels")
    width = as_int(where, "width", width, 0, "the width of the map in pixels")
    kh, kw = _pair(where, "kernel", kernel)
    sh, sw = _pair(where, "stride", kernel if stride is None else stride)
    if kh > height or kw > width:
        raise GraphpoolError(where, "kernel", f"a window that fits in the {height} x {width} "
                             "map", f"{kh} x {kw}",
                             "use a smaller kernel or a larger map (no padding is added)")
    out_h, out_w = (height - kh) // sh + 1, (width - kw) // sw + 1
    rows = (torch.arange(out_h, device=device) * sh).view(-1, 1, 1, 1) + \
        torch.arange(kh, device=device).view(1, 1, -1, 1)
    cols = (torch.arange(out_w, device=device) * sw).view(1, -1, 1, 1) + \
        torch.arange(kw, device=device).view(1, 1, 1, -1)
    index = (rows * width + cols).reshape(-1)
    return WindowSegments(index, Segments.uniform(out_h * out_w, kh * kw, device=device),
                          (out_h, out_w))


def window_pool(fmap: Tensor, kernel: Pair, stride: Optional[Pair] = None,
                reduce: Union[str, Readout] = "mean",
                layout: Union[str, Layout] = "NCHW") -> Tensor:
    r"""Local pooling by a readout over :func:`window_segments`.

    .. math::
        y_{b, o, p} = \operatorname{reduce}_{(a, c) \in [0, k_h) \times [0, k_w)}
        x_{b,\, o s_h + a,\, p s_w + c}

    ``reduce="mean"`` equals ``F.avg_pool2d(fmap, kernel, stride)`` and ``"max"``
    equals ``F.max_pool2d`` in values and, without ties, gradients (ties split the
    gradient evenly here, torch gives it to one pixel). Any readout works.

    Example:
        >>> import torch
        >>> import torch.nn.functional as F
        >>> fmap = torch.randn(2, 3, 7, 6)
        >>> torch.allclose(window_pool(fmap, 3, 2), F.avg_pool2d(fmap, 3, 2))
        True
        >>> torch.equal(window_pool(fmap, 2, reduce="max"), F.max_pool2d(fmap, 2))
        True
    """
    where = "window_pool"
    layout = resolve_layout(layout, where, spatial_dims=2)
    if is_proxy(fmap):  # torch.fx.symbolic_trace: one call_function node
        return trace_function(window_pool, where, "fmap", fmap, kernel, stride, reduce,
                              layout.value)
    if not isinstance(fmap, Tensor):
        raise GraphpoolError(where, "fmap", f"a tensor {layout.shape_text}", describe_input(fmap),
                             "window pooling needs images of one size: pool a list image "
                             "by image, or pad it with pad_images")
    module = readout_module(reduce, where)
    check_dtype(where, "fmap", fmap, module)
    nodes = as_nodes(fmap, layout, where=where)
    windows = window_segments(*nodes.spatial, kernel, stride, device=fmap.device, _where=where)
    pooled = module(windows.gather(nodes.x), windows.segments)
    return nodes_to_map(pooled, layout, windows.out_size)


class ReceptiveField(NamedTuple):
    """Receptive field ``size`` of one output pixel, and ``jump`` (its stride in input
    pixels), after a layer."""

    size: int
    jump: int


def receptive_field(layers: Sequence[Tuple[int, int]]) -> List[ReceptiveField]:
    r"""Receptive field after each layer of a stack of ``(kernel, stride)`` layers.

    .. math::
        \mathrm{RF}_0 = 1,\quad S_0 = 1,\qquad
        \mathrm{RF}_i = \mathrm{RF}_{i-1} + (k_i - 1)\, S_{i-1},\quad S_i = S_{i-1}\, s_i

    (dilation ``d`` acts as a kernel of ``d (k - 1) + 1``).

    Example:
        >>> receptive_field([(3, 1), (2, 2), (3, 1)])
        [ReceptiveField(size=3, jump=1), ReceptiveField(size=4, jump=2), ReceptiveField(size=8, jump=2)]
    """
    if isinstance(layers, (str, bytes, Mapping, Tensor)) or not isinstance(layers, Iterable):
        raise GraphpoolError("receptive_field", "layers", "a list of (kernel, stride) pairs",
                             describe_input(layers), "pass e.g. [(3, 1), (2, 2)]"
                             + ("; convert a tensor with layers.tolist()"
                                if isinstance(layers, Tensor) else ""))
    size, jump, out = 1, 1, []
    for i, layer in enumerate(layers):
        if (not isinstance(layer, (tuple, list)) or len(layer) != 2
                or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in layer)):
            raise GraphpoolError("receptive_field", f"layers[{i}]", "a (kernel, stride) pair "
                                 "of ints >= 1", repr(layer),
                                 "describe every layer as (kernel, stride), e.g. (3, 1)")
        kernel, stride = layer
        size, jump = size + (kernel - 1) * jump, jump * stride
        out.append(ReceptiveField(size, jump))
    return out
