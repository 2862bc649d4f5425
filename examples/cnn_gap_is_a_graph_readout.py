"""CNN global average pooling *is* a graph readout, shown on scikit-learn's digits (offline).

1. A small CNN (conv -> conv -> conv -> ``GlobalPool2d("mean")`` -> linear) learns the
   8 x 8 digits that ship with scikit-learn.
2. Its last feature maps become a PyG batch of grid graphs (``image_to_batch``); the
   graph readout ``MeanReadout`` of that batch gives the same logits. The script prints
   the largest difference between the two paths.
3. A GNN (PyG ``RGCNConv`` layers on the 8-connected pixel grid, one relation per
   direction, then the same mean readout) learns the same task from the grid graphs.
4. Class activation maps of both models are saved as PNG files.

Run:  python examples/cnn_gap_is_a_graph_readout.py [--out DIR] [--epochs N]
(well under two minutes on two CPU cores; ``--threads`` sets torch's CPU threads, and one
is fastest for models this small).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch_geometric.nn import RGCNConv

from graphpool import MeanReadout
from graphpool.analysis.cam import class_activation, save_graph_cam, save_image_cam
from graphpool.grid import GlobalPool2d, image_to_batch


class DigitCNN(nn.Module):
    """conv(1->16) -> conv(16->32) -> conv(32->32), ReLUs, global average pool, linear."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU())
        self.pool = GlobalPool2d("mean")
        self.head = nn.Linear(32, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(images)))


class GridGNN(nn.Module):
    """Relational graph convolutions on pixel grids, mean readout, linear head.

    ``RGCNConv`` with one relation per direction of the 8-neighbourhood (and its root
    weight for the centre) has one weight matrix per tap of a 3 x 3 kernel: on a grid
    graph it is a 3 x 3 convolution with zero padding (border pixels just have fewer
    edges). An isotropic layer such as ``GraphConv`` cannot tell directions apart.
    """

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.convs = nn.ModuleList([RGCNConv(1, 16, 8, aggr="add"),
                                    RGCNConv(16, 32, 8, aggr="add"),
                                    RGCNConv(32, 32, 8, aggr="add")])
        self.readout = MeanReadout()
        self.head = nn.Linear(32, classes)

    def node_features(self, batch) -> torch.Tensor:
        h, relation = batch.x, direction(batch)
        for conv in self.convs:
            h = torch.relu(conv(h, batch.edge_index, relation))
        return h

    def forward(self, batch) -> torch.Tensor:
        return self.head(self.readout(self.node_features(batch), batch))


def direction(batch) -> torch.Tensor:
    """Relation id 0..7 of every edge: the direction from target to source pixel."""
    offset = (batch.pos[batch.edge_index[0]] - batch.pos[batch.edge_index[1]]).long() + 1
    code = offset[:, 0] * 3 + offset[:, 1]          # 0..8, with 4 = same pixel (unused)
    return code - (code > 4).long()


def train(model: nn.Module, inputs, labels: torch.Tensor, epochs: int, batch_size: int,
          make_input, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        for idx in torch.randperm(labels.numel(), generator=generator).split(batch_size):
            optimiser.zero_grad()
            loss = nn.functional.cross_entropy(model(make_input(inputs[idx])), labels[idx])
            loss.backward()
            optimiser.step()


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(1) == labels).float().mean().item()


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/cnn_gap_is_a_graph_readout",
                        help="folder for the PNG files")
    parser.add_argument("--epochs", type=int, default=30, help="CNN training epochs")
    parser.add_argument("--gnn-epochs", type=int, default=15, help="GNN training epochs")
    parser.add_argument("--limit", type=int, default=None, help="use only this many digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return run(args)
    finally:
        torch.set_num_threads(threads)


def run(args: argparse.Namespace) -> dict:
    start = time.perf_counter()
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(digits.target)
    if args.limit:
        images, labels = images[:args.limit], labels[:args.limit]
    train_idx, test_idx = train_test_split(torch.arange(labels.numel()), test_size=0.25,
                                           random_state=args.seed, stratify=labels)
    x_train, y_train, x_test, y_test = (images[train_idx], labels[train_idx],
                                        images[test_idx], labels[test_idx])

    # 1. the CNN, pooled by GlobalPool2d (a graph readout under the hood)
    cnn = DigitCNN()
    train(cnn, x_train, y_train, args.epochs, 64, lambda t: t, args.seed)
    cnn.eval()
    with torch.no_grad():
        fmap = cnn.features(x_test)                              # (B, 32, 8, 8)
        cnn_logits = cnn.head(cnn.pool(fmap))
        # 2. the same feature maps as grid graphs, read out by a graph readout
        batch = image_to_batch(fmap)
        graph_logits = cnn.head(MeanReadout()(batch.x, batch))
    difference = (cnn_logits - graph_logits).abs().max().item()
    cnn_accuracy = accuracy(cnn_logits, y_test)
    print(f"CNN test accuracy: {cnn_accuracy:.3f} ({len(y_test)} test digits)")
    print(f"max |CNN logits - graph readout logits| = {difference:.2e}")

    # 3. a GNN on the pixel grid graphs, with the same mean readout
    gnn = GridGNN()
    train(gnn, x_train, y_train, args.gnn_epochs, 64,
          lambda t: image_to_batch(t, connectivity=8), args.seed)
    gnn.eval()
    with torch.no_grad():
        test_graphs = image_to_batch(x_test, connectivity=8)
        node_h = gnn.node_features(test_graphs)
        gnn_logits = gnn.head(gnn.readout(node_h, test_graphs))
    gnn_accuracy = accuracy(gnn_logits, y_test)
    print(f"GNN (RGCNConv on 8-connected grids) test accuracy: {gnn_accuracy:.3f}")

    # 4. class activation maps: one function for the image model and the graph model
    with torch.no_grad():
        image_cam = class_activation(fmap, cnn.head, layout="NCHW")   # (B, 10, 8, 8)
        node_cam = class_activation(node_h, gnn.head)                 # (N, 10)
    saved = []
    predicted = cnn_logits.argmax(1)
    for i in range(min(4, len(y_test))):
        k = int(predicted[i])
        saved.append(save_image_cam(out / f"cnn_cam_{i}.png", image_cam[i, k], x_test[i, 0],
                                    title=f"CNN: true {int(y_test[i])}, CAM of {k}"))
    first = test_graphs.batch == 0
    k = int(gnn_logits[0].argmax())
    saved.append(save_graph_cam(out / "gnn_cam_0.png",
                                test_graphs.edge_index[:, first[test_graphs.edge_index[0]]],
                                node_cam[first, k], pos=test_graphs.pos[first],
                                title=f"GNN: true {int(y_test[0])}, CAM of {k}"))
    print("saved: " + ", ".join(str(p) for p in saved))
    elapsed = time.perf_counter() - start
    print(f"done in {elapsed:.1f} s")
    return {"cnn_accuracy": cnn_accuracy, "gnn_accuracy": gnn_accuracy,
            "cnn_logits": cnn_logits, "graph_logits": graph_logits,
            "max_abs_difference": difference, "saved": saved}


if __name__ == "__main__":
    main()
