"""``graphpool demo``: the README's main job, on bundled data, offline, in about a minute.

First two quick checks (graph readouts against PyG's pooling, image global pooling against
torch), then a short 10-fold cross-validation of GIN-0 on MUTAG with the sum, mean and max
readouts, next to the GIN paper's numbers. ``graphpool train`` runs the full version.
"""
from __future__ import annotations

import argparse
import textwrap
import time

from ._args import add_progress_flags, positive_int

__all__ = ["add_parser"]

DEMO_EPOCHS = 20


def _readout_checks() -> None:
    import torch
    from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool

    import graphpool as gp
    from graphpool.datasets import load_tu_dataset
    from graphpool.apps.experiments.packing import PackedGraphs

    graphs = PackedGraphs(load_tu_dataset("MUTAG"))
    batch = graphs.batch(torch.arange(len(graphs)))
    index = batch.segments.index
    pyg = {"sum": global_add_pool, "mean": global_mean_pool, "max": global_max_pool}
    gaps = {name: (gp.readout(batch.x, batch.segments, name) - pool(batch.x, index)).abs().max()
            for name, pool in pyg.items()}
    print(f"MUTAG (bundled, offline): {len(graphs)} molecules, {batch.x.size(0)} atoms. "
          "max |graphpool - PyG pool|: " +
          ", ".join(f"{n} {g.item():.1e}" for n, g in gaps.items()))
    fmap = torch.randn(8, 16, 7, 7)
    nodes = fmap.flatten(2).transpose(1, 2)  # [B, H*W, C]: a strided view, no copy
    grid = gp.Segments.uniform(1, 7 * 7)     # each image is one set of H*W pixel nodes
    gaps = {name: (gp.segment_reduce(nodes, grid, name).squeeze(-2) - ref).abs().max()
            for name, ref in {"mean": fmap.mean((2, 3)), "max": fmap.amax((2, 3))}.items()}
    print("A CNN feature map (8, 16, 7, 7) is a batch of 7x7 grid graphs. "
          "max |graphpool - torch global pool|: " +
          ", ".join(f"{n} {g.item():.1e}" for n, g in gaps.items()))


def _demo(args: argparse.Namespace) -> int:
    import torch

    from graphpool.apps.commands.train import report
    from graphpool.apps.experiments.config import TrainConfig
    from graphpool.apps.experiments.runner import run_experiments

    torch.set_num_threads(1)
    start = time.perf_counter()
    _readout_checks()
    print("\n" + textwrap.fill(
        f"GIN-0 on MUTAG, 10-fold CV, readouts sum, mean and max, {args.epochs} epochs "
        "(hidden 32, batch 32, dropout 0.5), protocol 'paper': the epoch with the best "
        "fold-averaged test accuracy, as in the paper (optimistic). The paper trains 350 "
        "epochs and tunes a grid: `graphpool train` runs that (docs/molecules.md).", 92))
    rows = run_experiments(["MUTAG"], ["sum", "mean", "max"], [TrainConfig(epochs=args.epochs)],
                           protocol="paper", folds=10, progress=not args.no_progress)
    report(rows)
    print(f"\ndemo wall time {time.perf_counter() - start:.0f} s")
    return 0


def add_parser(subparsers) -> None:
    demo = subparsers.add_parser("demo", help="readout checks and a quick GIN cross-validation "
                                 "on bundled MUTAG (about a minute)", description=__doc__)
    demo.add_argument("--epochs", type=positive_int, default=DEMO_EPOCHS,
                      help=f"training epochs per fold and readout, >= 1 (default: {DEMO_EPOCHS})")
    add_progress_flags(demo)
    demo.set_defaults(run=_demo)
