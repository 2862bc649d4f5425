"""``graphpool demo``: the README's main job, on bundled data, offline."""
from __future__ import annotations

import argparse

__all__ = ["add_parser"]


def _demo(args: argparse.Namespace) -> int:
    import torch
    from torch_geometric.loader import DataLoader
    from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool

    import graphpool as gp
    from graphpool.datasets import load_tu_dataset

    dataset = load_tu_dataset("MUTAG")
    batch = next(iter(DataLoader(dataset, batch_size=len(dataset))))
    print(f"MUTAG (bundled, offline): {batch.num_graphs} molecules, {batch.num_nodes} atoms, "
          f"{batch.x.size(1)} atom-type features")
    pyg = {"sum": global_add_pool, "mean": global_mean_pool, "max": global_max_pool}
    print("\nGraph readouts of one PyG batch, against PyG's global pooling:")
    print(f"{'reduce':<8}{'out shape':<12}{'max |graphpool - PyG|':>24}")
    for name, pool in pyg.items():
        ours = gp.readout(batch.x, batch, name)
        print(f"{name:<8}{str(tuple(ours.shape)):<12}"
              f"{(ours - pool(batch.x, batch.batch)).abs().max().item():>24.2e}")
    counts = gp.readout(batch.x, batch, "sum").sum(0)
    print("atom types over the dataset (sum readout):", counts.long().tolist())

    fmap = torch.randn(8, 16, 7, 7)
    nodes = fmap.flatten(2).transpose(1, 2)  # [B, H*W, C]: a strided view, no copy
    grid = gp.Segments.uniform(1, 7 * 7)     # each image is one set of H*W pixel nodes
    print("\nA CNN feature map (8, 16, 7, 7) is a batch of 7x7 grid graphs:")
    for name, ref in {"mean": fmap.mean((2, 3)), "max": fmap.amax((2, 3))}.items():
        ours = gp.segment_reduce(nodes, grid, name).squeeze(-2)
        print(f"{name:<8} max |graphpool - torch| = {(ours - ref).abs().max().item():.2e}")
    return 0


def add_parser(subparsers) -> None:
    demo = subparsers.add_parser("demo", help="readouts on bundled MUTAG and on an image")
    demo.set_defaults(run=_demo)
