"""What can each readout tell apart? The library calls behind `graphpool expressiveness`.

Run: python examples/expressiveness.py  (about ten seconds on two CPU cores)
"""
from torch_geometric.data import Batch

import graphpool as gp
from graphpool.analysis.expressiveness import (distinguishability, is_learnable,
                                               learned_accuracy, readout_names)
from graphpool.analysis.families import grid_image, to_pyg
from graphpool.readouts.edge import edge_energy_readout

# 1. The seed example: a stripe image and a checkerboard with the same colour histogram.
#    Node readouts see the multiset of pixels, which is the same; the energy across
#    edges, per direction, is not.
images = Batch.from_data_list([to_pyg(grid_image(p, 4, 4), "ab")
                               for p in ("vertical", "checkerboard")])
for reduce in ("sum", "mean", "max", "var", "quantile"):
    print(f"{reduce:>8} readout, stripes | checkerboard:",
          gp.readout(images.x, images, reduce).tolist())
print("edge energy per direction (row edges, column edges) of colour a:",
      edge_energy_readout(images.x[:, :1], images.edge_index, images,
                          edge_type=images.edge_type, num_edge_types=2).tolist())

# 2. Every pair of every family, every readout: random injective encodings, no training
#    (learnable readouts with random weights drawn from a fixed seed).
print()
print("learnable columns:", [n for n in readout_names() if is_learnable(n)])
print(distinguishability().format())

# 3. What a small model learns through each readout (node MLP, 1 seed to stay quick):
#    on the count task every graph is half a, half b, so only the readouts that keep the
#    counts (sum, vpa, count, ...) can learn it.
print()
print(learned_accuracy(["count", "grid"], ["sum", "mean", "max", "vpa", "count", "softmax",
                                           "attention", "edge-dir"],
                       encoders=["mlp"], seeds=1).format())
