r"""Class activation maps, one implementation for images and graphs.

For a model whose head is *readout -> linear layer*, the logit of class :math:`k` for set
:math:`b` is :math:`z_{bk} = \sum_c w_{kc}\, r_b(x)_c + \beta_k`. Moving the linear layer
inside the readout gives a score per node (Zhou et al., 2016):

.. math::
    \mathrm{CAM}_k(v) = \sum_c w_{kc}\, x_{vc},

an ``H x W`` heatmap when the nodes are pixels. For a mean readout (global average
pooling) the mean of :math:`\mathrm{CAM}_k` over a set is exactly :math:`z_{bk} - \beta_k`;
for a sum readout, the sum. Rendering needs matplotlib (``pip install graphpool[plot]``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ..errors import GraphpoolError
from ..grid.layout import Layout, as_nodes, describe_input, is_proxy, resolve_layout

__all__ = ["class_activation", "save_image_cam", "save_graph_cam"]


def _weight(classifier: Union[nn.Linear, Tensor], where: str) -> Tensor:
    weight = classifier.weight if isinstance(classifier, nn.Linear) else classifier
    if isinstance(weight, nn.parameter.UninitializedParameter):
        raise GraphpoolError(where, "classifier", "an initialised nn.Linear",
                             "an nn.LazyLinear that has not run yet",
                             "run the model once (or pass the weight tensor) first")
    if not isinstance(weight, Tensor) or weight.dim() != 2:
        raise GraphpoolError(where, "classifier", "an nn.Linear or a [K, C] weight tensor",
                             describe_input(classifier), "pass the linear layer after the readout")
    if not weight.is_floating_point():
        raise GraphpoolError(where, "classifier", "a floating point [K, C] weight",
                             describe_input(weight), "pass the classifier's weight, e.g. "
                             "weight.float()")
    return weight


def _scores(x: Tensor, weight: Tensor, where: str) -> Tensor:
    """``x @ weight.t()`` in the promoted floating dtype (float64 features and a float32
    head give float64 scores, exact in the features' precision)."""
    if not x.is_floating_point():
        raise GraphpoolError(where, "features", "a floating point tensor", describe_input(x),
                             "convert it, e.g. features.float()")
    if x.device != weight.device:
        raise GraphpoolError(where, "classifier", f"a weight on {x.device} (the device of "
                             "features)", describe_input(weight),
                             "move the classifier or the features to one device")
    dtype = torch.promote_types(x.dtype, weight.dtype)
    return x.to(dtype) @ weight.to(dtype).t()


def class_activation(features: Union[Tensor, Sequence[Tensor]],
                     classifier: Union[nn.Linear, Tensor], *,
                     layout: Union[str, Layout, None] = None,
                     mask: Optional[Tensor] = None) -> Union[Tensor, list]:
    r"""Per-node class scores :math:`\mathrm{CAM}_k(v) = \sum_c w_{kc} x_{vc}` (no bias).

    Args:
        features: node features ``[*, N, C]`` of graphs (``layout=None``), or the feature
            map read out by the model (a map in ``layout``, a padded map, or a list).
        classifier: the ``nn.Linear(C, K)`` after the readout, or its ``[K, C]`` weight.
        layout: ``None`` for node features; a :class:`~graphpool.grid.Layout` name for
            maps.
        mask: ``(B, H, W)`` mask of a padded map (the CAM of padding pixels is returned
            too; ignore it).

    Returns:
        ``[*, N, K]`` for graphs; for maps, a map of ``K`` channels in the same layout
        (``(B, K, H, W)`` for ``"NCHW"``), or a list for a list input.

    Example:
        >>> import torch
        >>> fmap, head = torch.randn(2, 8, 5, 5), torch.nn.Linear(8, 3)
        >>> cam = class_activation(fmap, head, layout="NCHW")
        >>> cam.shape
        torch.Size([2, 3, 5, 5])
        >>> logits = head(fmap.mean((2, 3)))
        >>> torch.allclose(cam.mean((2, 3)), logits - head.bias, atol=1e-6)
        True
    """
    where = "class_activation"
    if is_proxy(features):
        raise GraphpoolError(where, "features", "a tensor", describe_input(features),
                             "compute class activation maps outside the traced model (they "
                             "are an analysis step), or use torch.export")
    weight = _weight(classifier, where)
    if layout is None:
        if mask is not None:
            raise GraphpoolError(where, "mask", "None for node features (layout=None)",
                                 describe_input(mask), "drop the mask, or name the layout of "
                                 "a padded feature map, e.g. layout='NCHW'")
        if not isinstance(features, Tensor) or features.dim() < 2 or \
                features.size(-1) != weight.size(1):
            raise GraphpoolError(where, "features", f"node features [*, N, {weight.size(1)}] "
                                 "(the classifier's input width)", describe_input(features),
                                 "pass the node features the readout reads; for a feature "
                                 "map also name its layout, e.g. layout='NCHW'")
        return _scores(features, weight, where)
    layout = resolve_layout(layout, where)
    nodes = as_nodes(features, layout, mask=mask, channels=weight.size(1), where=where,
                     argument="features")
    return nodes.to_map(_scores(nodes.x, weight, where))


def _pyplot_free_figure(where: str, **kwargs):
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # exercised in the tests by hiding matplotlib
        raise ImportError(f"{where} needs matplotlib: pip install graphpool[plot]") from err
    return Figure(**kwargs)


def _as_2d(where: str, name: str, t: object) -> Tensor:
    if not isinstance(t, Tensor) or t.dim() != 2:
        raise GraphpoolError(where, name, "an (H, W) tensor", describe_input(t),
                             "select one image and one class, e.g. cam[b, k]")
    return t.detach().float().cpu()


def save_image_cam(path: Union[str, Path], cam: Tensor, image: Optional[Tensor] = None, *,
                   alpha: float = 0.5, cmap: str = "jet", title: Optional[str] = None) -> Path:
    r"""Save a heatmap of one class activation map as a PNG: with an image, the image and
    the heatmap over it side by side.

    The CAM is resized to the image (bilinear) when their sizes differ.

    Args:
        path: file to write.
        cam: ``(H', W')`` scores of one image and one class.
        image: ``(H, W)``, ``(1, H, W)`` or ``(3, H, W)`` image drawn underneath.
        alpha: opacity of the heatmap over the image.

    Example:
        >>> import tempfile, torch
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     out = save_image_cam(f"{tmp}/cam.png", torch.rand(4, 4), torch.rand(8, 8))
        ...     out.read_bytes()[:4]
        b'\x89PNG'
    """
    where = "save_image_cam"
    heat = _as_2d(where, "cam", cam)
    if image is None:
        fig = _pyplot_free_figure(where, figsize=(3, 3))
        axes = [fig.add_subplot()]
        axes[0].imshow(heat.numpy(), cmap=cmap, interpolation="bilinear")
    else:
        if isinstance(image, Tensor) and image.dim() == 2:
            image = image.unsqueeze(0)
        if not isinstance(image, Tensor) or image.dim() != 3 or image.size(0) not in (1, 3):
            raise GraphpoolError(where, "image", "an (H, W), (1, H, W) or (3, H, W) tensor",
                                 describe_input(image),
                                 "pass one grey or RGB image, channels first")
        picture = image.detach().float().cpu()
        low, high = picture.min(), picture.max()
        picture = ((picture - low) / (high - low).clamp(min=1e-12)).permute(1, 2, 0)
        if tuple(heat.shape) != tuple(picture.shape[:2]):
            heat = torch.nn.functional.interpolate(heat[None, None], size=picture.shape[:2],
                                                   mode="bilinear", align_corners=False)[0, 0]
        fig = _pyplot_free_figure(where, figsize=(6, 3))
        axes = [fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)]
        for ax in axes:
            ax.imshow(picture.squeeze(-1).numpy(), cmap="gray")
        axes[1].imshow(heat.numpy(), cmap=cmap, alpha=alpha, interpolation="bilinear")
    for ax in axes:
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    path = Path(path)
    fig.savefig(path, format="png", bbox_inches="tight")
    return path


def save_graph_cam(path: Union[str, Path], edge_index: Tensor, scores: Tensor, *,
                   pos: Optional[Tensor] = None, cmap: str = "coolwarm",
                   title: Optional[str] = None) -> Path:
    r"""Save a networkx drawing of one graph with nodes coloured by their CAM scores (PNG).

    Args:
        path: file to write.
        edge_index: ``[2, E]`` edges of the graph (node ids ``0 .. N-1``).
        scores: ``[N]`` per-node scores of one class.
        pos: ``[N, 2]`` drawing coordinates (e.g. the ``pos`` of
            :func:`~graphpool.grid.image_to_batch`); a seeded spring layout when omitted.

    Example:
        >>> import tempfile, torch
        >>> edges = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     out = save_graph_cam(f"{tmp}/g.png", edges, torch.tensor([0.1, 0.9, -0.5]))
        ...     out.read_bytes()[:4]
        b'\x89PNG'
    """
    import networkx as nx

    where = "save_graph_cam"
    if not isinstance(scores, Tensor) or scores.dim() != 1:
        raise GraphpoolError(where, "scores", "a [N] tensor (one score per node)",
                             describe_input(scores), "select one class, e.g. cam[:, k]")
    num_nodes = scores.numel()
    if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise GraphpoolError(where, "edge_index", "a [2, E] integer tensor",
                             describe_input(edge_index), "pass the graph's edge_index")
    if edge_index.numel() and int(edge_index.max()) >= num_nodes:
        raise GraphpoolError(where, "edge_index", f"node ids < {num_nodes} (the length of "
                             "scores)", f"a node id {int(edge_index.max())}",
                             "pass the edges and scores of the same graph")
    if pos is not None and (not isinstance(pos, Tensor) or tuple(pos.shape) != (num_nodes, 2)):
        raise GraphpoolError(where, "pos", f"a [{num_nodes}, 2] tensor", describe_input(pos),
                             "pass one (x, y) per node, or leave pos out")
    fig = _pyplot_free_figure(where, figsize=(4, 4))
    ax = fig.add_subplot()
    graph = nx.Graph()
    graph.add_nodes_from(range(num_nodes))
    graph.add_edges_from(edge_index.t().tolist())
    layout = ({v: tuple(p) for v, p in enumerate(pos.tolist())} if pos is not None
              else nx.spring_layout(graph, seed=0))
    values = scores.detach().float().cpu()
    nx.draw_networkx(graph, layout, ax=ax, node_color=values.numpy(), cmap=cmap,
                     with_labels=False, node_size=max(30, 6000 // max(num_nodes, 1)),
                     edge_color="lightgray", width=0.8)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    path = Path(path)
    fig.savefig(path, format="png", bbox_inches="tight")
    return path
