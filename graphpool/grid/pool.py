r"""Global pooling of feature maps, as graph readouts.

``GlobalPool2d("mean")`` is ``nn.AdaptiveAvgPool2d(1)`` + flatten, computed by
:func:`~graphpool.segment_reduce` (the function behind :class:`~graphpool.MeanReadout`)
on the node view of the map (see :func:`~graphpool.grid.as_nodes`): one implementation
for images and graphs. A named basic readout calls it directly; any
:class:`~graphpool.Readout` instance (learnable ones included) runs as a module.

timm's combinations are named too:

==============  ======================================================  ==========
``reduce``      result                                                  width
==============  ======================================================  ==========
``"avgmax"``    :math:`\tfrac12(\mathrm{mean}_b + \mathrm{max}_b)`      ``C``
``"catavgmax"`` :math:`[\mathrm{mean}_b \,\|\, \mathrm{max}_b]`          ``2C``
a sequence      concatenation of every readout in it                    ``len * C``
==============  ======================================================  ==========

:meth:`GlobalPool2d.feat_mult` gives the width factor so a classifier can size itself.

Max and min readouts split the gradient evenly between tied pixels (like
:func:`torch.amax`); ``nn.AdaptiveMaxPool2d`` gives all of it to one pixel. Without ties
both agree exactly.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ..errors import GraphpoolError
from ..readouts import (MaxReadout, MinReadout, Readout, SumReadout, readout_names,
                        resolve_readout)
from ..kernels import segment_reduce
from .layout import (GridNodes, Layout, as_nodes, batch_nodes, check_flag, describe_input,
                     is_proxy, resolve_layout, trace_function, trace_leaf)

__all__ = ["global_pool", "GlobalPool1d", "GlobalPool2d", "GlobalPool3d", "POOL_TYPES"]

ReduceSpec = Union[str, Readout, Sequence[Union[str, Readout]]]

#: timm-style combinations: name -> (readouts, how their results combine).
POOL_TYPES = {"avgmax": (("mean", "max"), "average"), "catavgmax": (("mean", "max"), "concat")}


def _choices() -> str:
    return ", ".join(repr(n) for n in [*readout_names(), *POOL_TYPES])


def readout_module(item: object, where: str) -> Readout:
    """A readout module from a name or an instance, by the one resolver
    (:func:`~graphpool.readouts.resolve_readout`); errors name ``where`` and list the
    choices, timm's combinations included."""
    try:
        return resolve_readout(item, where=where)
    except GraphpoolError:
        raise GraphpoolError(where, "reduce", f"a graphpool Readout or one of {_choices()}",
                             describe_input(item), "pick one of the listed names, or pass a "
                             "Readout instance (e.g. MeanReadout())") from None


def resolve_pool(reduce: ReduceSpec, where: str) -> Tuple[List[Readout], str]:
    """Readout modules and their combination (``single``, ``average``, ``concat``)."""
    if isinstance(reduce, str) and reduce.lower() in POOL_TYPES:
        names, how = POOL_TYPES[reduce.lower()]
        return [resolve_readout(n) for n in names], how
    if isinstance(reduce, (list, tuple)):
        if len(reduce) == 0:
            raise GraphpoolError(where, "reduce", "a non-empty sequence of readouts", "()",
                                 "list at least one readout, e.g. ('mean', 'max')")
        return [readout_module(r, where) for r in reduce], "concat"
    return [readout_module(reduce, where)], "single"


_INTEGER_READOUTS = (SumReadout, MaxReadout, MinReadout)


def check_dtype(where: str, argument: str, fmap: object, readouts: Sequence[Readout],
                how: str = "single") -> None:
    """Refuse maps the readouts cannot reduce, naming the user's argument: bool and complex
    maps always, integer maps unless every readout is a sum, max or min (no mean, no
    ``"avgmax"`` average, no learnable readout)."""
    first = fmap[0] if isinstance(fmap, (list, tuple)) and len(fmap) else fmap
    if not isinstance(first, Tensor) or first.dtype.is_floating_point:
        return  # the shape checks report non-tensors
    dtype = first.dtype
    if dtype == torch.bool or dtype.is_complex:
        expected = "a floating point tensor (or an integer one for sum, max and min)"
    elif how != "average" and all(isinstance(r, _INTEGER_READOUTS) for r in readouts):
        return
    else:
        expected = ("a floating point tensor for this reduce (integer maps work only with "
                    "sum, max and min)")
    raise GraphpoolError(where, argument, expected, describe_input(fmap),
                         f"convert it, e.g. {argument}.float()")


def _pool(nodes: GridNodes, readouts: Sequence[Readout], how: str, flatten: bool) -> Tensor:
    pooled = [nodes.readout(r) for r in readouts]
    if how == "concat":
        out = torch.cat(pooled, dim=-1)
    elif how == "average":
        out = torch.stack(pooled).mean(0)
    else:
        out = pooled[0]
    return out if flatten else _keep_spatial_axes(out, nodes.layout)


def _keep_spatial_axes(out: Tensor, layout: Layout) -> Tensor:
    """``(B, F)`` -> ``(B, F, 1, ..., 1)`` (or ``(B, 1, ..., 1, F)`` channels last)."""
    ones = (1,) * layout.spatial_dims
    if layout.channels_last:
        return out.reshape(out.size(0), *ones, out.size(-1))
    return out.reshape(out.size(0), out.size(-1), *ones)


def global_pool(fmap: Union[Tensor, Sequence[Tensor]], reduce: ReduceSpec = "mean",
                layout: Union[str, Layout] = "NCHW", *, mask: Optional[Tensor] = None,
                flatten: bool = True) -> Tensor:
    r"""Pool every image of a feature map to one vector with a graph readout.

    With the pixels :math:`\mathcal{V}_b` of image :math:`b` as a node set,
    ``reduce="mean"`` gives :math:`y_b = \frac{1}{|\mathcal{V}_b|}\sum_{v \in
    \mathcal{V}_b} x_v` (global average pooling), ``"max"`` global max pooling, and so
    on for every readout; see the module docs for the timm combinations.

    Args:
        fmap: a map in ``layout`` (1-D, 2-D or 3-D), or a list of unbatched maps of
            different sizes.
        reduce: a readout name (``"avg"`` means ``"mean"``), a :class:`~graphpool.Readout`,
            ``"avgmax"``, ``"catavgmax"`` or a sequence of readouts to concatenate.
        layout: the axis order of ``fmap`` (a :class:`~graphpool.grid.Layout` or its name).
        mask: ``(B, *S)`` bool mask of the real pixels of a padded batch.
        flatten: return ``(B, F)``; ``False`` keeps singleton spatial axes in the layout,
            e.g. ``(B, F, 1, 1)``, like ``nn.AdaptiveAvgPool2d(1)``.

    Example:
        >>> import torch
        >>> fmap = torch.arange(1., 49.).view(1, 3, 4, 4)   # channels 1..16, 17..32, 33..48
        >>> global_pool(fmap, "mean")
        tensor([[ 8.5000, 24.5000, 40.5000]])
        >>> global_pool(fmap, "catavgmax").shape
        torch.Size([1, 6])
    """
    where = "global_pool"
    layout = resolve_layout(layout, where)
    flatten = check_flag(where, "flatten", flatten)
    if is_proxy(fmap) or is_proxy(mask):  # torch.fx.symbolic_trace: one call_function node
        return trace_function(global_pool, where, "fmap", fmap, reduce, layout.value,
                              mask=mask, flatten=flatten)
    readouts, how = resolve_pool(reduce, where)
    check_dtype(where, "fmap", fmap, readouts, how)
    nodes = as_nodes(fmap, layout, mask=mask, where=where)
    return _pool(nodes, readouts, how, flatten)


class _GlobalPool(nn.Module):
    """Shared body of :class:`GlobalPool1d`, :class:`GlobalPool2d`, :class:`GlobalPool3d`."""

    spatial_dims: int = 2

    def __init__(self, reduce: ReduceSpec = "mean", flatten: bool = True,
                 layout: Union[str, Layout, None] = None) -> None:
        super().__init__()
        where = type(self).__name__
        default = {1: Layout.NCL, 2: Layout.NCHW, 3: Layout.NCDHW}[self.spatial_dims]
        self.layout = resolve_layout(default if layout is None else layout, where,
                                     self.spatial_dims)
        readouts, self.how = resolve_pool(reduce, where)
        self.readouts = nn.ModuleList(readouts)
        # A basic readout named by a string is built here and never seen by the user, so
        # forward may call its segment_reduce directly (same kernels, fewer Python layers).
        self._direct = (readouts[0].reduce if self.how == "single" and isinstance(reduce, str)
                        else None)
        self.flatten = check_flag(where, "flatten", flatten)
        self._reduce_text = repr(reduce.lower()) if isinstance(reduce, str) else repr(reduce)

    def feat_mult(self) -> int:
        """Output width / input channels: 2 for ``"catavgmax"``, ``len(reduce)`` for a
        sequence, else 1 (for readouts that keep the feature width)."""
        return len(self.readouts) if self.how == "concat" else 1

    def forward(self, fmap: Union[Tensor, Sequence[Tensor]],
                mask: Optional[Tensor] = None) -> Tensor:
        """Pool ``fmap`` (a map in :attr:`layout`, a padded map + ``mask``, or a list)."""
        if self._direct is not None and mask is None and isinstance(fmap, Tensor):
            where = type(self).__name__
            if not fmap.dtype.is_floating_point:
                check_dtype(where, "fmap", fmap, list(self.readouts), self.how)
            x, segments, _ = batch_nodes(fmap, self.layout, where=where)
            out = segment_reduce(x, segments, self._direct, _where=where).squeeze(-2)
            return out if self.flatten else _keep_spatial_axes(out, self.layout)
        where = type(self).__name__
        if is_proxy(fmap) or is_proxy(mask):  # torch.fx.symbolic_trace: a leaf module
            return trace_leaf(self, where, "fmap", fmap, mask)
        check_dtype(where, "fmap", fmap, list(self.readouts), self.how)
        nodes = as_nodes(fmap, self.layout, mask=mask, where=where)
        return _pool(nodes, list(self.readouts), self.how, self.flatten)

    def extra_repr(self) -> str:
        return (f"reduce={self._reduce_text}, layout={self.layout.value!r}, "
                f"flatten={self.flatten}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


class GlobalPool1d(_GlobalPool):
    r"""Global pooling of ``(B, C, L)`` (``"NCL"``) or ``(B, L, C)`` (``"NLC"``) sequences by a
    graph readout; see :func:`global_pool`.

    Example:
        >>> import torch
        >>> GlobalPool1d("max")(torch.tensor([[[1., 5., 2.]]])).tolist()
        [[5.0]]
    """

    spatial_dims = 1


class GlobalPool2d(_GlobalPool):
    r"""Drop-in for ``nn.AdaptiveAvgPool2d(1)`` + flatten (``reduce="mean"``) and
    ``nn.AdaptiveMaxPool2d(1)`` (``"max"``), computed by graph readouts.

    .. math::
        y_{b} = \operatorname{reduce}_{v \in \mathcal{V}_b} x_v, \qquad
        \mathcal{V}_b = \text{the pixels of image } b

    Args:
        reduce: a readout name, a :class:`~graphpool.Readout` (learnable ones too),
            ``"avg"``, ``"avgmax"``, ``"catavgmax"`` or a sequence of readouts whose
            results are concatenated.
        flatten: ``(B, F)`` output; ``False`` gives ``(B, F, 1, 1)`` (``(B, 1, 1, F)`` for
            ``"NHWC"``).
        layout: ``"NCHW"`` (default; ``channels_last`` memory works as is) or ``"NHWC"``.

    ``forward(fmap, mask=None)`` also takes a padded batch with a ``(B, H, W)`` mask or a
    list of ``(C, H_i, W_i)`` maps of different sizes.

    Example:
        >>> import torch
        >>> pool = GlobalPool2d("catavgmax")
        >>> pool
        GlobalPool2d(reduce='catavgmax', layout='NCHW', flatten=True)
        >>> fmap = torch.randn(2, 8, 5, 5)
        >>> pool(fmap).shape[1] == pool.feat_mult() * 8
        True
        >>> torch.allclose(GlobalPool2d("mean")(fmap), fmap.mean((2, 3)))
        True
    """

    spatial_dims = 2


class GlobalPool3d(_GlobalPool):
    r"""Global pooling of ``(B, C, D, H, W)`` (``"NCDHW"``) or ``(B, D, H, W, C)``
    (``"NDHWC"``) volumes by a graph readout; see :func:`global_pool`.

    Example:
        >>> import torch
        >>> GlobalPool3d("sum", flatten=False)(torch.ones(1, 2, 2, 2, 2)).shape
        torch.Size([1, 2, 1, 1, 1])
    """

    spatial_dims = 3
