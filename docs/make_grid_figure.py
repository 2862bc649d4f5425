"""Draw docs/img/grid_is_a_graph.png: a feature map, its grid graph, and pooling as segments.

Run from the repository root:  python docs/make_grid_figure.py
"""
from pathlib import Path

import networkx as nx
import torch
from matplotlib.figure import Figure

from graphpool import MeanReadout
from graphpool.grid import GlobalPool2d, grid_graph, image_to_batch, window_pool

OUT = Path(__file__).resolve().parent / "img" / "grid_is_a_graph.png"


def main() -> Path:
    fmap = torch.arange(1., 17.).view(1, 1, 4, 4)          # channel 1 of the worked example
    gap = GlobalPool2d("mean")(fmap).item()
    batch = image_to_batch(fmap)
    assert MeanReadout()(batch.x, batch).item() == gap
    pooled = window_pool(fmap, 2, reduce="max")[0, 0]

    edges, pos = grid_graph(4, 4, return_pos=True)
    graph = nx.Graph()
    graph.add_nodes_from(range(16))                         # node order = pixel order
    graph.add_edges_from(edges.t().tolist())
    layout = {v: tuple(p) for v, p in enumerate(pos.tolist())}
    values = fmap.flatten().tolist()

    fig = Figure(figsize=(13, 4.6))
    ax_map, ax_graph, ax_windows = (fig.add_subplot(1, 3, i) for i in (1, 2, 3))

    ax_map.imshow(fmap[0, 0].numpy(), cmap="viridis")
    for v, value in enumerate(values):
        ax_map.text(v % 4, v // 4, f"{value:g}", ha="center", va="center", color="white")
    ax_map.set_title("feature map (1, 1, 4, 4)\nGlobalPool2d('mean') = %.1f" % gap)

    nx.draw_networkx(graph, layout, ax=ax_graph, node_color=values, cmap="viridis",
                     node_size=650, font_color="white",
                     labels={v: f"{value:g}" for v, value in enumerate(values)},
                     edge_color="gray")
    ax_graph.set_title("image_to_batch: a 4-connected grid graph\n"
                       "MeanReadout of its node set = %.1f" % gap)

    window = [((3 - int(p[1])) // 2) * 2 + int(p[0]) // 2 for p in pos.tolist()]
    nx.draw_networkx(graph, layout, ax=ax_windows, node_color=window, cmap="tab10",
                     vmin=0, vmax=9, node_size=650,
                     labels={v: f"{value:g}" for v, value in enumerate(values)},
                     edge_color="lightgray")
    ax_windows.set_title("window_segments(4, 4, kernel=2): 4 node sets\n"
                         "max readouts = max_pool2d = "
                         + str([int(v) for v in pooled.flatten().tolist()]))
    for ax in (ax_map, ax_graph, ax_windows):
        ax.set_axis_off()
        ax.title.set_fontsize(11)
    fig.subplots_adjust(wspace=0.25)
    fig.savefig(OUT, format="png", bbox_inches="tight", dpi=90)
    return OUT


if __name__ == "__main__":
    print(main())
