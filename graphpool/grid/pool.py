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

from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ..errors import GraphpoolError, describe
from ..readouts import (COMBINATIONS, MaxReadout, MinReadout, MultiReadout, Readout,
                        SumReadout, TableReadout, readout_names, resolve_readout)
from ..kernels import segment_reduce
from ..kernels.dense import may_be_empty
from ..kernels.reductions import REDUCTIONS
from ..segments import Segments
from .layout import (GridNodes, Layout, as_nodes, batch_nodes, check_flag, describe_input,
                     is_proxy, resolve_layout, trace_function, trace_leaf)

__all__ = ["global_pool", "GlobalPool1d", "GlobalPool2d", "GlobalPool3d", "POOL_TYPES"]

ReduceSpec = Union[str, Readout, Sequence[Union[str, Readout]]]

#: timm's combinations (the readouts' :data:`~graphpool.readouts.COMBINATIONS`).
POOL_TYPES = COMBINATIONS


def readout_module(item: object, where: str) -> Readout:
    """A readout module from a name, a list or an instance, by the one resolver
    (:func:`~graphpool.readouts.resolve_readout`); errors name ``where`` and the argument
    ``reduce``, and list the choices."""
    if isinstance(item, (list, tuple)) and not item:
        raise GraphpoolError(where, "reduce", "a non-empty sequence of readouts", "()",
                             "list at least one readout, e.g. ('mean', 'max')")
    try:
        return resolve_readout(item, where=where, argument="reduce")
    except GraphpoolError as err:
        if err.where != where or err.argument != "reduce" or (
                isinstance(item, str) and item in readout_names()):  # a known name: its
            raise                                                    # resolver's reason
        raise GraphpoolError(where, "reduce", "a graphpool Readout, a list of readouts or "
                             f"one of {', '.join(repr(n) for n in readout_names())}",
                             describe_input(item), "pick one of the listed names, or pass a "
                             "Readout instance (e.g. MeanReadout())") from None


_INTEGER_READOUTS = (SumReadout, MaxReadout, MinReadout)


def _integer_ok(module: Readout) -> bool:
    if isinstance(module, MultiReadout):
        return module.mode in ("cat", "max", "min") and all(map(_integer_ok, module.readouts))
    if isinstance(module, TableReadout):
        return module.reduce in REDUCTIONS and REDUCTIONS[module.reduce].integer_inputs
    return type(module) in _INTEGER_READOUTS


def check_dtype(where: str, argument: str, fmap: object, module: Readout) -> None:
    """Refuse maps the readout cannot reduce, naming the user's argument: bool and complex
    maps always, integer maps unless every readout is a sum, max or min (no mean, no
    ``"avgmax"`` average, no statistic or learnable readout)."""
    first = fmap[0] if isinstance(fmap, (list, tuple)) and len(fmap) else fmap
    if not isinstance(first, Tensor) or first.dtype.is_floating_point:
        return  # the shape checks report non-tensors
    dtype = first.dtype
    if dtype == torch.bool or dtype.is_complex:
        expected = "a floating point tensor (or an integer one for sum, max and min)"
    elif _integer_ok(module):
        return
    else:
        expected = ("a floating point tensor for this reduce (integer maps work only with "
                    "sum, max and min)")
    raise GraphpoolError(where, argument, expected, describe_input(fmap),
                         f"convert it, e.g. {argument}.float()")


def _pool(nodes: GridNodes, module: Readout, flatten: bool) -> Tensor:
    out = nodes.readout(module)
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
    module = readout_module(reduce, where)
    check_dtype(where, "fmap", fmap, module)
    nodes = as_nodes(fmap, layout, mask=mask, where=where)
    return _pool(nodes, module, flatten)


_TORCH_DTYPES = (torch.float32, torch.float64)  # half types: graphpool's float32 sums
_FAST = ("fast", "fastavg", "fastmax", "fastavgmax", "fastcatavgmax")


class _GlobalPool(nn.Module):
    """Shared body of :class:`GlobalPool1d`, :class:`GlobalPool2d`, :class:`GlobalPool3d`."""

    spatial_dims: int = 2

    def __init__(self, reduce: ReduceSpec = "mean", flatten: bool = True,
                 layout: Union[str, Layout, None] = None, *, pool_type: Optional[str] = None,
                 input_fmt: Union[str, Layout, None] = None, output_size: object = 1) -> None:
        super().__init__()
        where = type(self).__name__
        reduce = _alias(where, "pool_type", pool_type, "reduce", reduce, "mean")
        layout = _alias(where, "input_fmt", input_fmt, "layout", layout, None)
        if output_size not in (1, (1,) * self.spatial_dims):
            raise GraphpoolError(where, "output_size", "1 (global pooling)", repr(output_size),
                                 "pool globally with output_size=1, or use "
                                 "nn.AdaptiveAvgPool2d for other output sizes")
        default = {1: Layout.NCL, 2: Layout.NCHW, 3: Layout.NCDHW}[self.spatial_dims]
        self.layout = resolve_layout(default if layout is None else layout, where,
                                     self.spatial_dims)
        self.flatten = check_flag(where, "flatten", flatten)
        if isinstance(reduce, str) and reduce.lower() in _FAST:  # timm's spellings
            reduce = reduce.lower()[4:] or "avg"
        self.pool_type = reduce.lower() if isinstance(reduce, str) else reduce
        self.readout = None if reduce == "" else readout_module(reduce, where)
        # A table reduction named by a string is built here and never seen by the user, so
        # forward may call its segment_reduce directly (same kernels, fewer Python layers).
        self._direct = (self.readout.reduce if isinstance(reduce, str) and self.readout
                        is not None and self.readout.reduce is not None else None)
        self._reduce_text = repr(self.pool_type) if isinstance(reduce, str) else repr(reduce)
        # A sum or mean of a float32/64 map's spatial axes *is* torch's own reduction over
        # them (the dense path of its one uniform set runs that kernel on the node view):
        # call it on the map itself and skip the Python between (see docs/performance.md).
        first = 1 if self.layout.channels_last else 2  # the first spatial axis
        self._spatial = tuple(range(first, first + self.spatial_dims))
        self._torch = ({"sum": torch.sum, "mean": torch.mean}.get(self._direct)
                       if self._direct is not None else None)

    def is_identity(self) -> bool:
        """Whether this layer passes maps through unpooled (``reduce=""``, as timm's)."""
        return self.readout is None

    def out_features(self, channels: int) -> int:
        """The output width for maps of ``channels`` channels."""
        return channels if self.readout is None else self.readout.out_features(channels)

    def feat_mult(self) -> int:
        """Output width / input channels (timm's name): 2 for ``"catavgmax"``, the number of
        readouts of a concatenation (counting each one's own factor, e.g. ``len(q)`` of a
        quantile readout), 1 for readouts that keep the width. A readout whose width is
        not a multiple of the channels (``count``, a projection) has none: use
        :meth:`out_features`."""
        mult = self.out_features(1)
        if any(self.out_features(c) != mult * c for c in (3, 64)):
            raise GraphpoolError(type(self).__name__, "reduce", "a readout whose width is a "
                                 "multiple of the channels for feat_mult()",
                                 self._reduce_text, "size the next layer with "
                                 "pool.out_features(channels)")
        return mult

    def forward(self, fmap: Union[Tensor, Sequence[Tensor]],
                mask: Optional[Tensor] = None) -> Tensor:
        """Pool ``fmap`` (a map in :attr:`layout`, a padded map + ``mask``, or a list)."""
        if (self._torch is not None and mask is None and type(fmap) is Tensor
                and fmap.dtype in _TORCH_DTYPES and fmap.dim() == self.spatial_dims + 2
                and fmap.layout == torch.strided and not fmap.is_nested
                and (not may_be_empty(fmap.numel()) if torch.compiler.is_exporting()
                     else fmap.numel())):  # (exported: unless the map may be empty when run)
            return self._torch(fmap, self._spatial, keepdim=not self.flatten)
        where = type(self).__name__
        if self._direct is not None and mask is None and isinstance(fmap, Tensor):
            if not fmap.dtype.is_floating_point:
                check_dtype(where, "fmap", fmap, self.readout)
            x, segments, _ = batch_nodes(fmap, self.layout, where=where)
            out = segment_reduce(x, segments, self._direct, _where=where).squeeze(-2)
            return out if self.flatten else _keep_spatial_axes(out, self.layout)
        if self.readout is None:  # timm's pass-through
            if mask is not None:
                raise GraphpoolError(where, "mask", "None for the pass-through (pool_type='',"
                                     " which pools nothing)", describe(mask),
                                     "pick a pool type to pool the masked maps, or drop mask")
            if not self.flatten:
                return fmap
            if not isinstance(fmap, Tensor) or fmap.dim() < 2:
                raise GraphpoolError(where, "fmap", "one batched map [B, ...] to flatten in "
                                     "the pass-through (pool_type='', flatten=True)",
                                     describe(fmap), "pass one tensor, or pick a pool type "
                                     "to pool a list of maps of different sizes")
            return fmap.flatten(1)
        if is_proxy(fmap) or is_proxy(mask):  # torch.fx.symbolic_trace: a leaf module
            return trace_leaf(self, where, "fmap", fmap, mask)
        check_dtype(where, "fmap", fmap, self.readout)
        if isinstance(fmap, Tensor):  # one batched map: no per-image sizes, so the number
            x, segments = _batched_nodes(fmap, self.layout, mask, where)  # of images stays
            out = self.readout(x, segments)                     # symbolic under torch.export
            out = out.squeeze(-2) if mask is None else out
            return out if self.flatten else _keep_spatial_axes(out, self.layout)
        nodes = as_nodes(fmap, self.layout, mask=mask, where=where)
        return _pool(nodes, self.readout, self.flatten)

    def extra_repr(self) -> str:
        return (f"reduce={self._reduce_text}, layout={self.layout.value!r}, "
                f"flatten={self.flatten}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


def _batched_nodes(fmap: Tensor, layout: Layout, mask: Optional[Tensor],
                   where: str) -> Tuple[Tensor, Segments]:
    """The node view of a batched map and its grouping (one uniform set per image, or the
    padded batch of ``mask``), checked as :func:`~graphpool.grid.as_nodes` checks them."""
    x, segments, spatial = batch_nodes(fmap, layout, where=where)
    if mask is None:
        return x, segments
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.device != fmap.device \
            or tuple(mask.shape) != (fmap.size(0), *spatial) or mask.layout != torch.strided \
            or mask.is_nested:
        as_nodes(fmap, layout, mask=mask, where=where)  # raises the error naming the mask
    return x, Segments.from_mask(mask.reshape(fmap.size(0), x.size(-2)))


def _alias(where: str, alias: str, alias_value: object, name: str, value: object,
           default: object) -> object:
    """The value of argument ``name`` given under its timm alias ``alias`` too."""
    if alias_value is None:
        return value
    if value is not default and value != alias_value:
        raise GraphpoolError(where, alias, f"the same value as {name}={value!r} ({alias} is "
                             f"timm's name for {name})", repr(alias_value),
                             f"pass only one of {name} and {alias}")
    return alias_value


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
        pool_type, input_fmt, output_size: timm's names (``SelectAdaptivePool2d``) for
            ``reduce`` and ``layout``, and its output size (1 only). ``pool_type=""`` is
            timm's pass-through (:meth:`is_identity`); the ``"fast"`` spellings
            (``"fastavg"``, ``"fastcatavgmax"``, ...) name the same readouts.

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
