r"""Grid graphs: the edges a CNN never writes down, so that PyG layers can run on images.

Pixel :math:`(i, j)` of an ``H x W`` image is node :math:`v = iW + j`. With 4-connectivity
it is joined to :math:`(i \pm 1, j)` and :math:`(i, j \pm 1)`; 8-connectivity adds the
diagonals. Positions follow :func:`torch_geometric.utils.grid`:
:math:`\mathrm{pos}_v = (j,\, H - 1 - i)`, so drawings show the image upright.
"""
from __future__ import annotations

import operator
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from ..errors import GraphpoolError
from ..segments import Kind
from .layout import (Layout, as_int, as_nodes, check_flag, describe_input, is_proxy,
                     nodes_to_map, resolve_layout)

__all__ = ["grid_graph", "image_to_batch", "batch_to_image"]

_OFFSETS = {4: ((0, 1), (1, 0)), 8: ((0, 1), (1, 0), (1, 1), (1, -1))}


#: Largest pixel count of one grid: the sort key ``source * (H W) + target`` of
#: :func:`_grid_edges` must not overflow int64.
_MAX_PIXELS = 3_037_000_499


def _check_size(where: str, name: str, value: object) -> int:
    return as_int(where, name, value, 1, f"the {name} of the image in pixels")


def _check_device(where: str, device: object) -> Optional[torch.device]:
    if device is None:
        return None
    try:
        return torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise GraphpoolError(where, "device", "None, a torch.device or a device name such as "
                             "'cpu' or 'cuda:0'", repr(device), "pass a valid device") from None


def _check_connectivity(where: str, connectivity: object) -> int:
    try:
        value = None if isinstance(connectivity, bool) else operator.index(connectivity)
    except TypeError:
        value = None
    if value not in _OFFSETS:
        raise GraphpoolError(where, "connectivity", "4 or 8", repr(connectivity),
                             "pass 4 (side neighbours) or 8 (side and corner neighbours)")
    return value


def _grid_edges(height: int, width: int, connectivity: int, self_loops: bool,
                device: Optional[torch.device]) -> Tensor:
    """Sorted (coalesced) ``[2, E]`` edges of one ``height x width`` grid, both directions."""
    rows = torch.arange(height, device=device).view(-1, 1).expand(height, width)
    cols = torch.arange(width, device=device).view(1, -1).expand(height, width)
    parts = []
    for di, dj in _OFFSETS[connectivity]:
        for si in (1, -1):
            ti, tj = rows + si * di, cols + si * dj
            ok = (ti >= 0) & (ti < height) & (tj >= 0) & (tj < width)
            parts.append(torch.stack([(rows * width + cols)[ok], (ti * width + tj)[ok]]))
    if self_loops:
        nodes = torch.arange(height * width, device=device)
        parts.append(torch.stack([nodes, nodes]))
    edges = torch.cat(parts, dim=1)
    order = (edges[0] * (height * width) + edges[1]).argsort()
    return edges[:, order]


def _positions(height: int, width: int, device: Optional[torch.device]) -> Tensor:
    rows = torch.arange(height, device=device).repeat_interleave(width)
    cols = torch.arange(width, device=device).repeat(height)
    return torch.stack([cols, height - 1 - rows], dim=1).float()


def grid_graph(height: int, width: int, connectivity: int = 4, self_loops: bool = False, *,
               return_pos: bool = False, device: Optional[torch.device] = None
               ) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    r"""The ``edge_index`` of an ``height x width`` pixel grid (see the module docs).

    Edges go both ways and are sorted by (source, target); ``self_loops=True`` adds
    :math:`(v, v)` for every pixel. ``torch_geometric.utils.grid`` is the 8-connected
    grid with self-loops.

    Args:
        height, width: image size in pixels.
        connectivity: 4 (edges to the pixels that share a side) or 8 (and a corner).
        self_loops: add an edge from every pixel to itself.
        return_pos: also return the ``[H*W, 2]`` float positions ``(j, H - 1 - i)``.
        device: device of the result.

    Example:
        >>> grid_graph(2, 2)
        tensor([[0, 0, 1, 1, 2, 2, 3, 3],
                [1, 2, 0, 3, 0, 3, 1, 2]])
        >>> grid_graph(3, 3, connectivity=8).size(1), grid_graph(3, 3, self_loops=True).size(1)
        (40, 33)
    """
    where = "grid_graph"
    height = _check_size(where, "height", height)
    width = _check_size(where, "width", width)
    if height * width > _MAX_PIXELS:
        raise GraphpoolError(where, "height", f"height * width <= {_MAX_PIXELS} (node ids "
                             "and their sort keys must fit in int64)", f"{height} x {width}",
                             "build the graph of a smaller grid, or tile the image")
    connectivity = _check_connectivity(where, connectivity)
    self_loops = check_flag(where, "self_loops", self_loops)
    return_pos = check_flag(where, "return_pos", return_pos)
    device = _check_device(where, device)
    edges = _grid_edges(height, width, connectivity, self_loops, device)
    if return_pos:
        return edges, _positions(height, width, device)
    return edges


def image_to_batch(fmap: Union[Tensor, Sequence[Tensor]], layout: Union[str, Layout] = "NCHW",
                   *, mask: Optional[Tensor] = None, connectivity: int = 4,
                   self_loops: bool = False):
    r"""A feature map as a PyG ``Batch`` of grid graphs, one graph per image.

    Node :math:`v` of graph :math:`b` is pixel :math:`(i, j)` of image :math:`b` (row-major,
    as in :func:`~graphpool.grid.as_nodes`) with ``x[v] = fmap[b, :, i, j]``; edges are
    those of :func:`grid_graph`. A padded batch keeps only the pixels of ``mask`` and the
    edges between them; a list of ``(C, H_i, W_i)`` maps gives graphs of different sizes.
    Any PyG layer then runs on CNN features, and a readout of the batch equals the
    global pooling of the map.

    The batch is assembled directly (no ``from_data_list``), so ``to_data_list`` is not
    available; :func:`batch_to_image` is the way back.

    Returns:
        ``Batch`` with ``x`` ``[N, C]``, ``edge_index``, ``pos`` ``[N, 2]`` (see
        :func:`grid_graph`), ``batch``, ``ptr`` and ``image_size`` ``[B, 2]`` (``H, W``
        of every image; the padded size for a masked batch).

    Example:
        >>> import torch
        >>> from graphpool import MeanReadout
        >>> fmap = torch.randn(2, 3, 4, 5)
        >>> batch = image_to_batch(fmap)
        >>> batch
        DataBatch(x=[40, 3], edge_index=[2, 124], pos=[40, 2], batch=[40], ptr=[3], image_size=[2, 2])
        >>> torch.allclose(MeanReadout()(batch.x, batch), fmap.mean((2, 3)))
        True
    """
    from torch_geometric.data import Batch

    where = "image_to_batch"
    layout = resolve_layout(layout, where, spatial_dims=2)
    connectivity = _check_connectivity(where, connectivity)
    self_loops = check_flag(where, "self_loops", self_loops)
    nodes = as_nodes(fmap, layout, mask=mask, where=where)
    height, width = nodes.spatial
    num_images, pixels = nodes.num_images, height * width
    device = nodes.x.device
    if nodes.segments.kind == Kind.CSR:
        sizes = torch.tensor(nodes.sizes, device=device).view(-1, 2)
        valid = ((torch.arange(height, device=device).view(1, -1, 1) < sizes[:, :1, None])
                 & (torch.arange(width, device=device).view(1, 1, -1) < sizes[:, 1:, None]))
        valid = valid.view(num_images, pixels)
        x = nodes.x
    elif nodes.segments.kind == Kind.MASK:
        valid = nodes.segments.mask
        sizes = torch.tensor([[height, width]], device=device).expand(num_images, 2)
        x = nodes.x[valid]
    else:
        valid = None
        sizes = torch.tensor([[height, width]], device=device).expand(num_images, 2)
        x = nodes.x.reshape(num_images * pixels, nodes.x.size(-1))
    base = _grid_edges(height, width, connectivity, self_loops, device)
    offsets = torch.arange(num_images, device=device).view(-1, 1, 1) * pixels
    edges = (base.unsqueeze(0) + offsets).transpose(0, 1).reshape(2, -1)
    pixel = torch.arange(num_images * pixels, device=device) % pixels
    image = torch.arange(num_images, device=device).repeat_interleave(pixels)
    rows, cols = pixel // width, pixel % width
    if valid is not None:
        flat = valid.reshape(-1)
        new_id = flat.long().cumsum(0) - 1
        keep = flat[edges[0]] & flat[edges[1]]
        edges = new_id[edges[:, keep]]
        rows, cols, image = rows[flat], cols[flat], image[flat]
    pos = torch.stack([cols, sizes[image, 0] - 1 - rows], dim=1).float()
    counts = torch.bincount(image, minlength=num_images)
    ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    return Batch(x=x, edge_index=edges, pos=pos, batch=image, ptr=ptr,
                 image_size=sizes.clone())


def batch_to_image(values: Tensor, batch, layout: Union[str, Layout] = "NCHW", *,
                   return_mask: bool = False, size: Optional[Sequence[int]] = None
                   ) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    r"""Node values of a batch from :func:`image_to_batch` back to a feature map.

    Row :math:`v` of ``values`` (``[N, F]``, e.g. a GNN's output) goes to its pixel,
    read from ``batch.pos`` and ``batch.batch``: for a uniform batch this inverts
    :func:`image_to_batch` exactly. Images of different sizes or masked pixels need
    ``return_mask=True``: the map is then padded with zeros to the largest size, and the
    ``(B, H, W)`` mask marks the pixels that had a node.

    ``size=(H, W)`` fixes the spatial size of the map (at least every image's size; larger
    means padding, so ``return_mask=True``). A batch of 0 images has no size to read:
    ``size`` is then required, and the result is ``(0, F, H, W)``.

    Every node must sit on its own pixel: ``pos`` must hold the integer coordinates
    ``image_to_batch`` wrote (a transform that moved or scaled them is refused, never
    rounded).

    Example:
        >>> import torch
        >>> fmap = torch.randn(2, 3, 4, 5)
        >>> torch.equal(batch_to_image(image_to_batch(fmap).x, image_to_batch(fmap)), fmap)
        True
        >>> empty = image_to_batch(torch.randn(0, 3, 4, 5))
        >>> batch_to_image(empty.x, empty, size=(4, 5)).shape
        torch.Size([0, 3, 4, 5])
    """
    where = "batch_to_image"
    layout = resolve_layout(layout, where, spatial_dims=2)
    return_mask = check_flag(where, "return_mask", return_mask)
    if is_proxy(values) or is_proxy(batch):
        raise GraphpoolError(where, "values", "a tensor", describe_input(values),
                             "symbolic tracing cannot follow a PyG Batch: call "
                             "batch_to_image outside the traced model, or use torch.export")
    needed = ("pos", "batch", "image_size")
    if any(not isinstance(getattr(batch, name, None), Tensor) for name in needed):
        raise GraphpoolError(where, "batch", "a Batch made by image_to_batch (with pos, batch "
                             "and image_size)", describe_input(batch),
                             "build the batch with image_to_batch(fmap)")
    sizes, image, pos = batch.image_size, batch.batch, batch.pos
    num_nodes = image.numel()
    if (sizes.dim() != 2 or sizes.size(1) != 2 or sizes.is_floating_point()
            or sizes.dtype == torch.bool or tuple(pos.shape) != (num_nodes, 2)
            or image.dim() != 1 or image.is_floating_point() or image.dtype == torch.bool):
        raise GraphpoolError(where, "batch", "a Batch made by image_to_batch (image_size "
                             "[B, 2] ints, pos [N, 2], batch [N] ints)", describe_input(batch),
                             "build the batch with image_to_batch(fmap)")
    if not isinstance(values, Tensor) or values.dim() != 2 or values.size(0) != num_nodes:
        raise GraphpoolError(where, "values", f"a tensor [{num_nodes}, F] (one row per "
                             "node of the batch)", describe_input(values),
                             "pass node-level outputs, e.g. the result of a GNN layer")
    if values.device != pos.device:
        raise GraphpoolError(where, "values", f"a tensor on {pos.device} (the device of the "
                             "batch)", describe_input(values),
                             f"move it with values.to('{pos.device}') or batch.to(...)")
    num_images = sizes.size(0)
    if num_images and int(sizes.min()) < 0:
        raise GraphpoolError(where, "batch", "image_size >= 0", "a negative image size",
                             "build the batch with image_to_batch(fmap)")
    largest = tuple(int(v) for v in sizes.max(0).values.tolist()) if num_images else None
    if size is None:
        if largest is None:
            raise GraphpoolError(where, "size", "the (H, W) of the map for a batch of 0 images "
                                 "(there is no image to read it from)", "None",
                                 "pass size=(H, W), e.g. the size of the maps of a non-empty "
                                 "batch")
        height, width = largest
    else:
        if not isinstance(size, (tuple, list, torch.Size)) or len(size) != 2:
            raise GraphpoolError(where, "size", "None or a pair (H, W)", describe_input(size),
                                 "pass size=(H, W)")
        height, width = (as_int(where, "size", v, 0, "sizes that are ints >= 0")
                         for v in size)
        if largest is not None and (height < largest[0] or width < largest[1]):
            raise GraphpoolError(where, "size", f"at least the largest image, {largest[0]} x "
                                 f"{largest[1]}", f"{height} x {width}",
                                 "leave size out, or pass a larger one")
    complete = num_nodes == num_images * height * width and bool(
        (sizes == torch.tensor([height, width], device=sizes.device)).all())
    if not complete and not return_mask:
        raise GraphpoolError(where, "return_mask", "True for images of different sizes or "
                             "with masked pixels", "False",
                             "pass return_mask=True to get the zero-padded map and its mask")
    pixels = num_images * height * width
    if num_nodes:
        if int(image.min()) < 0 or int(image.max()) >= num_images:
            raise GraphpoolError(where, "batch", f"batch.batch ids in [0, {num_images})",
                                 f"ids in [{int(image.min())}, {int(image.max())}]",
                                 "build the batch with image_to_batch(fmap)")
        cols_f, up_f = pos[:, 0], pos[:, 1]
        cols, up = cols_f.long(), up_f.long()
        own = sizes.index_select(0, image)
        rows = own[:, 0] - 1 - up
        if (not bool(((cols == cols_f) & (up == up_f)).all())
                or not bool(((cols >= 0) & (cols < own[:, 1])
                             & (rows >= 0) & (rows < own[:, 0])).all())):
            raise GraphpoolError(where, "batch", "pos with the integer pixel coordinates "
                                 "(j, H - 1 - i) that image_to_batch wrote", "positions off "
                                 "the pixel grid (moved, scaled or not integers)",
                                 "keep the batch's pos as image_to_batch made it (copy it "
                                 "before a transform that changes pos)")
        flat = (image * height + rows) * width + cols
        if int(torch.bincount(flat, minlength=1).max()) > 1:
            raise GraphpoolError(where, "batch", "one node per pixel", "two nodes with the "
                                 "same image and pos", "build the batch with image_to_batch(fmap)")
    else:
        flat = torch.zeros(0, dtype=torch.long, device=values.device)
    nodes = values.new_zeros(pixels, values.size(1))
    nodes = nodes.index_put((flat,), values)
    fmap = nodes_to_map(nodes.view(num_images, height * width, values.size(1)), layout,
                        (height, width))
    if not return_mask:
        return fmap
    mask = torch.zeros(pixels, dtype=torch.bool, device=values.device)
    mask[flat] = True
    return fmap, mask.view(num_images, height, width)
