r"""Grid graphs: the edges a CNN never writes down, so that PyG layers can run on images.

Pixel :math:`(i, j)` of an ``H x W`` image is node :math:`v = iW + j`. With 4-connectivity
it is joined to :math:`(i \pm 1, j)` and :math:`(i, j \pm 1)`; 8-connectivity adds the
diagonals. Positions follow :func:`torch_geometric.utils.grid`:
:math:`\mathrm{pos}_v = (j,\, H - 1 - i)`, so drawings show the image upright.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from ..errors import GraphpoolError
from .layout import Layout, as_nodes, describe_input, nodes_to_map, resolve_layout

__all__ = ["grid_graph", "image_to_batch", "batch_to_image"]

_OFFSETS = {4: ((0, 1), (1, 0)), 8: ((0, 1), (1, 0), (1, 1), (1, -1))}


def _check_size(where: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise GraphpoolError(where, name, "an int >= 1", repr(value), f"pass the {name} "
                             "of the image in pixels")
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
    height = _check_size("grid_graph", "height", height)
    width = _check_size("grid_graph", "width", width)
    if connectivity not in _OFFSETS:
        raise GraphpoolError("grid_graph", "connectivity", "4 or 8", repr(connectivity),
                             "pass 4 (side neighbours) or 8 (side and corner neighbours)")
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
    if connectivity not in _OFFSETS:
        raise GraphpoolError(where, "connectivity", "4 or 8", repr(connectivity),
                             "pass 4 (side neighbours) or 8 (side and corner neighbours)")
    nodes = as_nodes(fmap, layout, mask=mask, where=where)
    height, width = nodes.spatial
    num_images, pixels = nodes.num_images, height * width
    device = nodes.x.device
    if nodes.segments.kind == "csr":
        sizes = torch.tensor(nodes.sizes, device=device).view(-1, 2)
        valid = ((torch.arange(height, device=device).view(1, -1, 1) < sizes[:, :1, None])
                 & (torch.arange(width, device=device).view(1, 1, -1) < sizes[:, 1:, None]))
        valid = valid.view(num_images, pixels)
        x = nodes.x
    elif nodes.segments.kind == "mask":
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
                   return_mask: bool = False) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    r"""Node values of a batch from :func:`image_to_batch` back to a feature map.

    Row :math:`v` of ``values`` (``[N, F]``, e.g. a GNN's output) goes to its pixel,
    read from ``batch.pos`` and ``batch.batch``: for a uniform batch this inverts
    :func:`image_to_batch` exactly. Images of different sizes or masked pixels need
    ``return_mask=True``: the map is then padded with zeros to the largest size, and the
    ``(B, H, W)`` mask marks the pixels that had a node.

    Example:
        >>> import torch
        >>> fmap = torch.randn(2, 3, 4, 5)
        >>> torch.equal(batch_to_image(image_to_batch(fmap).x, image_to_batch(fmap)), fmap)
        True
    """
    where = "batch_to_image"
    layout = resolve_layout(layout, where, spatial_dims=2)
    needed = ("pos", "batch", "image_size")
    if any(getattr(batch, name, None) is None for name in needed):
        raise GraphpoolError(where, "batch", "a Batch made by image_to_batch (with pos, batch "
                             "and image_size)", describe_input(batch),
                             "build the batch with image_to_batch(fmap)")
    if not isinstance(values, Tensor) or values.dim() != 2 or values.size(0) != batch.num_nodes:
        raise GraphpoolError(where, "values", f"a tensor [{batch.num_nodes}, F] (one row per "
                             "node of the batch)", describe_input(values),
                             "pass node-level outputs, e.g. the result of a GNN layer")
    sizes = batch.image_size
    num_images = sizes.size(0)
    height, width = (int(v) for v in sizes.max(0).values.tolist()) if num_images else (0, 0)
    complete = values.size(0) == num_images * height * width and bool(
        (sizes == torch.tensor([height, width], device=sizes.device)).all())
    if not complete and not return_mask:
        raise GraphpoolError(where, "return_mask", "True for images of different sizes or "
                             "with masked pixels", "False",
                             "pass return_mask=True to get the zero-padded map and its mask")
    image = batch.batch
    rows = sizes[image, 0] - 1 - batch.pos[:, 1].long()
    flat = (image * height + rows) * width + batch.pos[:, 0].long()
    nodes = values.new_zeros(num_images * height * width, values.size(1))
    nodes = nodes.index_put((flat,), values)
    fmap = nodes_to_map(nodes.view(num_images, height * width, values.size(1)), layout,
                        (height, width))
    if not return_mask:
        return fmap
    mask = torch.zeros(num_images * height * width, dtype=torch.bool, device=values.device)
    mask[flat] = True
    return fmap, mask.view(num_images, height, width)
