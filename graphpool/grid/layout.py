r"""Feature maps as node sets: named layouts and the zero-copy adapter.

A feature map is a batch of grid graphs whose nodes are pixels. :func:`as_nodes` turns
a map into node features ``x`` (nodes on dim ``-2``, channels last) and a
:class:`~graphpool.Segments`, so that every readout of the library applies to it:

=================================  =================================  ======================
input                              ``x``                              ``segments``
=================================  =================================  ======================
``(B, C, *S)`` / ``(B, *S, C)``    ``(B, prod(S), C)`` strided view   ``uniform(1, prod(S))``
same + ``mask`` ``(B, *S)``        ``(B, prod(S), C)`` strided view   ``from_mask``
list of ``(C, *S_i)`` maps         ``(sum prod(S_i), C)`` (one copy)  ``from_ptr``
=================================  =================================  ======================

For a uniform batch each image is the single set of its own leading slice of ``x``, so
readouts return ``(B, 1, F)`` and :meth:`GridNodes.readout` drops the set axis. NCHW
(``fmap.flatten(2).transpose(1, 2)``), ``channels_last`` NCHW and NHWC maps all become
views of the same memory; only maps whose spatial axes cannot be merged (e.g. strided
slices along ``W``) are copied by ``flatten``.
"""
from __future__ import annotations

import functools
import operator

from dataclasses import dataclass
from enum import Enum
from math import prod
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from ..errors import GraphpoolError, describe
from ..kernels import segment_broadcast
from ..readouts import Readout
from ..segments import Kind, Segments

__all__ = ["Layout", "GridNodes", "as_nodes", "nodes_to_map", "pad_images", "resolve_layout",
           "describe_input"]

_SPATIAL_NAMES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}


class Layout(str, Enum):
    r"""Named axis orders of feature maps (timm's ``Format``, extended to 1-D and 3-D).

    ``N`` is the batch axis, ``C`` the channels; the other letters are spatial axes.
    Channels-first layouts (``NCL``, ``NCHW``, ``NCDHW``) are PyTorch's default;
    channels-last ones (``NLC``, ``NHWC``, ``NDHWC``) are what TensorFlow and some
    timm models use. A ``torch.channels_last`` NCHW tensor is still ``NCHW``.

    Example:
        >>> Layout("NHWC").spatial_dims, Layout("NHWC").channels_last
        (2, True)
        >>> Layout.NCHW.shape_text
        '(B, C, H, W)'
    """

    NCL = "NCL"
    NLC = "NLC"
    NCHW = "NCHW"
    NHWC = "NHWC"
    NCDHW = "NCDHW"
    NDHWC = "NDHWC"

    @classmethod
    def _missing_(cls, value: object) -> "Layout":
        """``Layout("nchw")`` works (names are case-insensitive); an unknown name is a
        :class:`~graphpool.GraphpoolError` that lists the layouts."""
        if isinstance(value, str):
            for member in cls:
                if member.value == value.upper():
                    return member
        raise GraphpoolError("Layout", "value", "one of " + ", ".join(
            repr(m.value) for m in cls), repr(value), "name the axis order of your tensor "
            "with one of the listed layouts")

    @property
    def spatial_dims(self) -> int:
        """Number of spatial axes (1, 2 or 3)."""
        return len(self.value) - 2

    @property
    def channels_last(self) -> bool:
        """Whether channels are the last axis."""
        return self.value.endswith("C")

    @property
    def shape_text(self) -> str:
        """The symbolic shape, used in error messages: ``'(B, C, H, W)'``."""
        spatial = _SPATIAL_NAMES[self.spatial_dims]
        axes = ("B", *spatial, "C") if self.channels_last else ("B", "C", *spatial)
        return "(" + ", ".join(axes) + ")"


_BY_NAME = {m.value: m for m in Layout}


def describe_input(value: Any) -> str:
    """:func:`graphpool.errors.describe`, short for lists of tensors and long reprs.

    Example:
        >>> import torch
        >>> describe_input([torch.ones(3, 2, 2), torch.ones(3, 1, 4)])
        'a list of 2 items (tensor shapes [(3, 2, 2), (3, 1, 4)])'
    """
    if isinstance(value, (list, tuple)):
        shapes = [tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
                  for v in value[:4]]
        more = ", ..." if len(value) > 4 else ""
        return (f"a {type(value).__name__} of {len(value)} items (tensor shapes "
                f"{str(shapes)[:-1]}{more}])")
    text = describe(value)
    return text if len(text) <= 120 else text[:117] + "..."


def as_int(where: str, name: str, value: object, minimum: int, what: str) -> int:
    """``value`` as an ``int >= minimum``: Python, NumPy and 0-d integer tensor ints are
    accepted; bools, floats (even ``2.0``) and anything else are refused."""
    if not isinstance(value, bool):
        try:
            number = operator.index(value)
        except TypeError:
            number = None
        if number is not None and number >= minimum:
            return number
    raise GraphpoolError(where, name, f"an int >= {minimum}", repr(value), f"pass {what}")


def check_flag(where: str, name: str, value: object) -> bool:
    """A ``True``/``False`` option: a string such as ``"no"`` would silently read as True."""
    if isinstance(value, bool):
        return value
    raise GraphpoolError(where, name, "True or False", repr(value), f"pass {name}=True or "
                         f"{name}=False")


def is_proxy(value: object) -> bool:
    """Whether ``value`` is a ``torch.fx`` symbolic-tracing proxy."""
    return isinstance(value, torch.fx.Proxy)


_FX_FIX = ("symbolic tracing cannot look inside graphpool's shape checks: trace a model "
           "that holds the pooling module as a submodule (it is recorded as one call_module "
           "node), use torch.export.export / torch.compile, or pass a torch.fx.Tracer whose "
           "is_leaf_module returns True for it")


def trace_leaf(module: torch.nn.Module, where: str, argument: str, *args: Any,
               **kwargs: Any) -> Any:
    """Record ``module(*args, **kwargs)`` as a ``call_module`` node of the fx graph being
    traced (the module becomes a leaf): the graph then replays the real module, so it is
    correct on inputs of any size."""
    proxy = next(a for a in (*args, *kwargs.values()) if is_proxy(a))
    tracer = proxy.tracer
    try:
        path = tracer.path_of_module(module)
    except NameError:
        path = ""
    if not path:
        raise GraphpoolError(where, argument, "a tensor (an fx Proxy only when the module is "
                             "a submodule of the traced model)", describe_input(proxy),
                             "register the module as a submodule of the model you trace "
                             "(an attribute of an nn.Module), or use torch.export.export / "
                             "torch.compile")
    return tracer.create_proxy("call_module", path, args, kwargs)


def trace_function(function: Any, where: str, argument: str, *args: Any, **kwargs: Any) -> Any:
    """Record ``function(*args, **kwargs)`` as one ``call_function`` node of the fx graph
    being traced; its replay runs the real function on the real tensors."""
    proxy = next(a for a in (*args, *kwargs.values()) if is_proxy(a))
    try:
        return proxy.tracer.create_proxy("call_function", function, args, kwargs)
    except Exception as err:  # an argument fx cannot record (e.g. an unregistered module)
        raise GraphpoolError(where, argument, "arguments torch.fx can record", f"{type(err).__name__}: "
                             f"{err}", _FX_FIX) from err


def resolve_layout(layout: Union[str, Layout], where: str,
                   spatial_dims: Optional[int] = None) -> Layout:
    """A :class:`Layout` from its name; ``spatial_dims`` restricts the allowed ones.

    Example:
        >>> resolve_layout("nchw", "example")
        <Layout.NCHW: 'NCHW'>
    """
    if isinstance(layout, Layout):
        found = layout
    else:
        found = _BY_NAME.get(layout.upper()) if isinstance(layout, str) else None
    if found is not None and (spatial_dims is None or found.spatial_dims == spatial_dims):
        return found
    allowed = [m for m in Layout if spatial_dims is None or m.spatial_dims == spatial_dims]
    choices = ", ".join(repr(m.value) for m in allowed)
    got = repr(layout.value if isinstance(layout, Layout) else layout)
    raise GraphpoolError(where, "layout", f"one of {choices}", got,
                         "name the axis order of your tensor with one of the listed layouts")


def _check_map(where: str, name: str, fmap: Any, layout: Layout, batched: bool,
               channels: Optional[int], channel_fix: str = "pass a map with the channel "
               "count the module was built for, or check the layout"
               ) -> Tuple[int, Tuple[int, ...]]:
    """Check rank and channels of one map; return ``(C, spatial)``."""
    rank = len(layout.value) - (0 if batched else 1)
    if (isinstance(fmap, Tensor) and fmap.dim() == rank and fmap.layout == torch.strided
            and not fmap.is_nested):
        # the common case, checked fast
        last = layout.value[-1] == "C"
        c_axis = -1 if last else (1 if batched else 0)
        if channels is None or fmap.size(c_axis) == channels:
            shape = fmap.shape
            return shape[c_axis], tuple(shape[int(batched):-1] if last else shape[c_axis + 1:])
    shape_text = layout.shape_text if batched else "(" + layout.shape_text[4:]
    if is_proxy(fmap):
        raise GraphpoolError(where, name, f"a tensor {shape_text}", describe_input(fmap),
                             _FX_FIX)
    if not isinstance(fmap, Tensor):
        raise GraphpoolError(where, name, f"a tensor {shape_text}", describe_input(fmap),
                             "pass the feature map as a torch.Tensor")
    if fmap.layout != torch.strided or fmap.is_nested:
        raise GraphpoolError(where, name, f"a dense (strided) tensor {shape_text}",
                             f"a {'nested' if fmap.is_nested else fmap.layout} tensor",
                             f"convert it with {name}.to_dense()")
    if fmap.dim() != rank:
        if batched and fmap.dim() == rank - 1:
            fix = f"add the batch axis with {name}.unsqueeze(0)"
        elif not batched and fmap.dim() == rank + 1:
            fix = "list items are single images without the batch axis: pass image[0]"
        else:
            fix = f"pass a {rank}-D tensor, or name its axis order with another layout"
        raise GraphpoolError(where, name, f"a {rank}-D tensor {shape_text} for layout "
                             f"{layout.value!r}", describe_input(fmap), fix)
    c_axis = -1 if layout.channels_last else (1 if batched else 0)
    spatial = tuple(fmap.shape[c_axis + 1:] if not layout.channels_last
                    else fmap.shape[int(batched):-1])
    if channels is not None and fmap.size(c_axis) != channels:
        raise GraphpoolError(where, name, f"{channels} channels on the 'C' axis of "
                             f"{shape_text}", describe_input(fmap), channel_fix)
    return fmap.size(c_axis), spatial


def _node_view(fmap: Tensor, layout: Layout, batched: bool) -> Tensor:
    """``(B, C, *S)`` -> ``(B, prod(S), C)`` (or unbatched ``(C, *S)`` -> ``(prod(S), C)``)."""
    first = 1 if batched else 0
    if layout.channels_last:
        return fmap.flatten(first, -2)
    return fmap.flatten(first + 1).transpose(-1, -2)


def nodes_to_map(values: Tensor, layout: Union[str, Layout],
                 spatial: Sequence[int]) -> Tensor:
    r"""Inverse of the node view: ``(*, prod(S), F)`` node values -> a map in ``layout``.

    ``(B, prod(S), F)`` becomes ``(B, F, *S)`` (channels first) or ``(B, *S, F)``
    (channels last), as a view when possible; an unbatched ``(prod(S), F)`` gives
    ``(F, *S)`` or ``(*S, F)``.

    Example:
        >>> import torch
        >>> nodes_to_map(torch.arange(6.).view(1, 3, 2), "NCL", (3,)).tolist()
        [[[0.0, 2.0, 4.0], [1.0, 3.0, 5.0]]]
    """
    layout = resolve_layout(layout, "nodes_to_map")
    names = _SPATIAL_NAMES[layout.spatial_dims]
    if (not isinstance(spatial, (tuple, list, torch.Size)) or len(spatial) != len(names)):
        raise GraphpoolError("nodes_to_map", "spatial", f"a sequence of {len(names)} sizes "
                             f"({', '.join(names)}) for layout {layout.value!r}",
                             describe_input(spatial), "pass the spatial size of the map, e.g. "
                             "GridNodes.spatial")
    spatial = tuple(as_int("nodes_to_map", "spatial", s, 0, "sizes that are ints >= 0")
                    for s in spatial)
    if not isinstance(values, Tensor) or values.dim() < 2 or values.size(-2) != prod(spatial):
        raise GraphpoolError("nodes_to_map", "values", f"a tensor [*, {prod(spatial)}, F] "
                             f"(one row per pixel of {spatial})", describe_input(values),
                             "pass node values in the row order of as_nodes")
    if layout.channels_last:
        return values.unflatten(-2, spatial)
    return values.transpose(-1, -2).unflatten(-1, spatial)


@dataclass(frozen=True)
class GridNodes:
    r"""A feature map seen as node sets: ``x``, its :class:`~graphpool.Segments` and the
    way back to maps. Build it with :func:`as_nodes`.

    Attributes:
        x: node features, ``(B, P, C)`` for a uniform or padded batch (``P`` pixels per
            image), ``(N, C)`` for a list of images.
        segments: ``uniform(1, P)``, ``from_mask(mask)`` or ``from_ptr`` respectively.
        layout: the :class:`Layout` of the map.
        spatial: the spatial size of the batch (padded size; for a list, the largest
            size of every axis).
        sizes: the spatial size of every image (``spatial`` for a tensor batch).

    Example:
        >>> import torch
        >>> from graphpool import MeanReadout
        >>> nodes = as_nodes(torch.arange(8.).view(2, 1, 2, 2), "NCHW")
        >>> nodes.x.shape, nodes.segments
        (torch.Size([2, 4, 1]), Segments(kind='uniform', num_segments=1, num_nodes=4, size=4))
        >>> nodes.readout(MeanReadout()).tolist()
        [[1.5], [5.5]]
    """

    x: Tensor
    segments: Segments
    layout: Layout
    spatial: Tuple[int, ...]
    sizes: Tuple[Tuple[int, ...], ...]

    @property
    def num_images(self) -> int:
        """Number of images ``B``."""
        return len(self.sizes)

    def readout(self, module: Readout) -> Tensor:
        r"""Read out every image with a readout module: ``(B, F)``."""
        out = module(self.x, self.segments)
        return out.squeeze(-2) if self.segments.kind == Kind.UNIFORM else out

    def broadcast(self, values: Tensor) -> Tensor:
        r"""Copy each image's row of ``values`` ``(B, F)`` to all its pixels (layout of ``x``)."""
        if self.segments.kind == Kind.UNIFORM:
            return segment_broadcast(values.unsqueeze(-2), self.segments)
        return segment_broadcast(values, self.segments)

    def to_map(self, values: Tensor) -> Union[Tensor, List[Tensor]]:
        r"""Node values shaped like ``x`` (any feature width) back to map(s) in the layout.

        A padded batch gives the padded map (padding pixels keep their values); a list of
        images gives a list of unbatched maps.
        """
        if self.segments.kind != Kind.CSR:
            return nodes_to_map(values, self.layout, self.spatial)
        parts = values.split([prod(s) for s in self.sizes], dim=-2)
        return [nodes_to_map(p, self.layout, s) for p, s in zip(parts, self.sizes)]


@functools.lru_cache(maxsize=64)
def _one_set(pixels: int, device: torch.device) -> Segments:
    """``Segments.uniform(1, pixels)``, built once per size: maps are pooled every step."""
    return Segments.uniform(1, pixels, device=device)


def _check_images(maps: Sequence[Any], layout: Layout, channels: Optional[int],
                  where: str, argument: str = "fmap") -> Tuple[Tuple[int, ...], ...]:
    """Check a list of unbatched maps (same channel count); return their spatial sizes."""
    if len(maps) == 0:
        raise GraphpoolError(where, argument, "a non-empty list of images", "an empty list",
                             "pass at least one image, or a (0, C, ...) tensor for none")
    sizes = []
    for i, image in enumerate(maps):
        fix = (f"every image of the list needs the channel count of {argument}[0]" if i else
               "pass images with the channel count the module was built for")
        channels, spatial = _check_map(where, f"{argument}[{i}]", image, layout, batched=False,
                                       channels=channels, channel_fix=fix)
        if i and (image.dtype != maps[0].dtype or image.device != maps[0].device):
            # torch.cat would promote (float32 + float64 -> float64) and pad_images would
            # cast to the first image's dtype (0.5 -> 0 for an integer first image).
            raise GraphpoolError(where, f"{argument}[{i}]", f"a {maps[0].dtype} tensor on "
                                 f"{maps[0].device} (the dtype and device of {argument}[0])",
                                 describe_input(image), "convert every image to one dtype "
                                 "and device first, e.g. [m.to(maps[0]) for m in maps]")
        sizes.append(spatial)
    return tuple(sizes)


def _ragged_nodes(maps: Sequence[Tensor], layout: Layout, channels: Optional[int],
                  where: str, argument: str) -> GridNodes:
    sizes = _check_images(maps, layout, channels, where, argument)
    x = torch.cat([_node_view(m, layout, batched=False) for m in maps], dim=0)
    counts = torch.tensor([0] + [prod(s) for s in sizes], device=x.device)
    segments = Segments.from_ptr(counts.cumsum(0), num_nodes=x.size(0), validate=False)
    spatial = tuple(max(axis) for axis in zip(*sizes))
    return GridNodes(x, segments, layout, spatial, sizes)


def batch_nodes(fmap: Any, layout: Layout, channels: Optional[int] = None,
                where: str = "as_nodes", argument: str = "fmap"
                ) -> Tuple[Tensor, Segments, Tuple[int, ...]]:
    """The node view of a batched map without a mask: ``(x, segments, spatial)``, the
    parts of :func:`as_nodes` that pooling needs (checked the same way)."""
    _, spatial = _check_map(where, argument, fmap, layout, batched=True, channels=channels)
    x = _node_view(fmap, layout, batched=True)
    pixels = x.size(1)  # a symbolic size (make_fx, compile) is no cache key
    segments = (_one_set(pixels, fmap.device) if type(pixels) is int
                and not torch.compiler.is_compiling() else
                Segments.uniform(1, pixels, device=fmap.device))
    return x, segments, spatial


def as_nodes(fmap: Union[Tensor, Sequence[Tensor]], layout: Union[str, Layout] = "NCHW", *,
             mask: Optional[Tensor] = None, channels: Optional[int] = None,
             where: str = "as_nodes", argument: str = "fmap") -> GridNodes:
    r"""View a feature map as node sets (see the module table).

    Pixel :math:`p = (i_1, \dots, i_d)` of image :math:`b` becomes node
    :math:`v = i_1 S_2 \cdots S_d + \dots + i_d` (row-major) of set :math:`b`, with feature
    vector :math:`x_v = \mathrm{fmap}[b, :, p]`.

    Args:
        fmap: a batched map in ``layout``, or a list of unbatched maps of different sizes
            (``(C, H_i, W_i)`` for ``"NCHW"``).
        layout: a :class:`Layout` or its name.
        mask: ``(B, *S)`` bool tensor marking the real pixels of a padded batch.
        channels: if given, the channel count the map must have.
        where, argument: the public function and argument named in errors.

    Example:
        >>> import torch
        >>> fmap = torch.randn(2, 3, 4, 5)
        >>> nodes = as_nodes(fmap)
        >>> nodes.x.shape, nodes.x.data_ptr() == fmap.data_ptr()
        (torch.Size([2, 20, 3]), True)
        >>> torch.equal(nodes.to_map(nodes.x), fmap)
        True
        >>> ragged = as_nodes([torch.ones(3, 2, 2), torch.ones(3, 1, 3)])
        >>> ragged.x.shape, ragged.segments.counts.tolist()
        (torch.Size([7, 3]), [4, 3])
    """
    layout = resolve_layout(layout, where)
    if channels is not None:
        channels = as_int(where, "channels", channels, 0, "the channel count, or None")
    if isinstance(fmap, (list, tuple)):
        if mask is not None:
            raise GraphpoolError(where, "mask", "None for a list of images", describe_input(mask),
                                 "a list already gives every image its own size: drop the mask")
        return _ragged_nodes(fmap, layout, channels, where, argument)
    if mask is None:
        x, segments, spatial = batch_nodes(fmap, layout, channels, where, argument)
        return GridNodes(x, segments, layout, spatial, (spatial,) * fmap.size(0))
    _, spatial = _check_map(where, argument, fmap, layout, batched=True, channels=channels)
    x = _node_view(fmap, layout, batched=True)
    expected = (fmap.size(0), *spatial)
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool or tuple(mask.shape) != expected:
        raise GraphpoolError(where, "mask", f"a bool tensor of shape {expected} (B and the "
                             f"spatial axes of {layout.shape_text})", describe_input(mask),
                             "pass True for real pixels and False for padding, one entry per "
                             "pixel; pad_images(list) builds both the map and the mask")
    if mask.device != fmap.device:
        raise GraphpoolError(where, "mask", f"a tensor on {fmap.device} (the device of "
                             f"{argument})", describe_input(mask),
                             f"move it with mask.to({argument}.device)")
    if mask.layout != torch.strided or mask.is_nested:
        raise GraphpoolError(where, "mask", "a dense (strided) bool tensor",
                             f"a {'nested' if mask.is_nested else mask.layout} tensor",
                             "convert it with mask.to_dense()")
    segments = Segments.from_mask(mask.reshape(fmap.size(0), prod(spatial)))
    return GridNodes(x, segments, layout, spatial, (spatial,) * fmap.size(0))


def pad_images(maps: Sequence[Tensor], layout: Union[str, Layout] = "NCHW", *,
               value: float = 0.0) -> Tuple[Tensor, Tensor]:
    r"""Pad a list of unbatched maps of different sizes into one batch and a mask.

    Each image sits in the top-left (low-index) corner of the padded map; the rest is
    ``value`` and the mask marks the real pixels.

    Returns:
        ``(padded, mask)``: the batch in ``layout`` with the largest size of every spatial
        axis, and the ``(B, *S_max)`` bool mask for :func:`as_nodes` and the pooling modules.

    Example:
        >>> import torch
        >>> padded, mask = pad_images([torch.ones(1, 2, 2), torch.ones(1, 1, 3)])
        >>> padded.shape, mask.sum((1, 2)).tolist()
        (torch.Size([2, 1, 2, 3]), [4, 3])
    """
    where = "pad_images"
    layout = resolve_layout(layout, where)
    if not isinstance(maps, (list, tuple)):
        raise GraphpoolError(where, "maps", "a list of unbatched maps", describe_input(maps),
                             "pass a list of images; a batched tensor needs no padding")
    sizes = _check_images(maps, layout, None, where, "maps")
    dtype = maps[0].dtype
    number = isinstance(value, (int, float))
    if dtype == torch.bool:
        ok = number and value in (0, 1)
    else:
        ok = number and not isinstance(value, bool) and (
            dtype.is_floating_point or float(value).is_integer())
    if not ok:
        kind = ("a number" if dtype.is_floating_point else
                "0 or 1" if dtype == torch.bool else "an integer")
        raise GraphpoolError(where, "value", f"{kind} (padding for {dtype} maps)",
                             repr(value), "pass a padding value the maps' dtype can hold")
    big = tuple(max(axis) for axis in zip(*sizes))
    channels = maps[0].size(-1 if layout.channels_last else 0)
    shape = (len(maps), *big, channels) if layout.channels_last else (len(maps), channels, *big)
    padded = maps[0].new_full(shape, value)
    mask = torch.zeros((len(maps), *big), dtype=torch.bool, device=padded.device)
    for b, (image, size) in enumerate(zip(maps, sizes)):
        region = tuple(slice(0, s) for s in size)
        channel_region = (*region, slice(None)) if layout.channels_last else (slice(None), *region)
        padded[(b, *channel_region)] = image
        mask[(b, *region)] = True
    return padded, mask
