r"""Image grids are graphs: feature maps as node sets, read out by the library's readouts.

* :mod:`.layout` — named layouts and :func:`as_nodes`, the zero-copy node view of a map
  (uniform, padded + mask, or a list of images of different sizes);
* :mod:`.pool` — :class:`GlobalPool1d` / :class:`GlobalPool2d` / :class:`GlobalPool3d`,
  global pooling through any readout (``avgmax``, ``catavgmax`` included);
* :mod:`.graph` — :func:`grid_graph`, :func:`image_to_batch` and :func:`batch_to_image`;
* :mod:`.windows` — local pooling windows as segments, and :func:`receptive_field`.

Example:
    >>> import torch
    >>> from graphpool import MeanReadout
    >>> from graphpool.grid import GlobalPool2d, image_to_batch
    >>> fmap = torch.arange(1., 49.).view(1, 3, 4, 4)
    >>> GlobalPool2d("mean")(fmap)
    tensor([[ 8.5000, 24.5000, 40.5000]])
    >>> batch = image_to_batch(fmap)                 # the same map as a PyG grid graph
    >>> MeanReadout()(batch.x, batch)
    tensor([[ 8.5000, 24.5000, 40.5000]])
"""
from .graph import batch_to_image, grid_graph, image_to_batch
from .layout import GridNodes, Layout, as_nodes, nodes_to_map, pad_images, resolve_layout
from .pool import POOL_TYPES, GlobalPool1d, GlobalPool2d, GlobalPool3d, global_pool
from .windows import (ReceptiveField, WindowSegments, receptive_field, window_pool,
                      window_segments)

__all__ = [
    "Layout", "GridNodes", "as_nodes", "nodes_to_map", "pad_images", "resolve_layout",
    "global_pool", "GlobalPool1d", "GlobalPool2d", "GlobalPool3d", "POOL_TYPES",
    "grid_graph", "image_to_batch", "batch_to_image",
    "WindowSegments", "window_segments", "window_pool", "ReceptiveField", "receptive_field",
]
