r"""End to end: one epoch of GIN-0 training on NCI1, graphpool against PyG's stock modules.

The same network twice, with the same initial weights: three ``GINConv`` layers
(:math:`\epsilon = 0`, a two-layer MLP of width 64 each), a sum readout and a linear
classifier, trained with Adam on cross entropy. ``PyG`` uses ``GINConv``'s default
``aggr="add"`` and ``global_add_pool``; ``graphpool`` passes ``aggr=SumReadout()`` and reads
out with ``SumReadout``. PyG stores ``edge_index`` sorted by source, so the aggregation's
destination index is unsorted, as in real training.

``floor`` is the same network with every aggregation and the readout replaced by one read
of its input (``x.sum`` over the rows, broadcast to the output's shape; eager only): not a
peer (it computes something else), but the step that a readout costing nothing beyond
reading its input would give. ``PyG / floor`` is then the largest speed-up over PyG that
any readout implementation can reach in this model.

``kernels`` is graphpool's network with every aggregation and the readout replaced by a
bare ``torch.autograd.Function`` that calls graphpool's compiled kernels (forward and
backward) on groupings built before timing (eager only): the same sums, without any of
graphpool's Python above the kernels (no grouping to resolve, no checks, no dispatch).
``PyG / kernels`` is what graphpool's kernels can reach behind a Python autograd node, the
kind every graphpool readout is (PyG's aggregation records C++ nodes).

The batches of the epoch are collated once, before timing (collation is the same code for
both and not what is compared); a timed epoch is every step over them, forward, backward
and optimiser. Before timing, one step of each model from the same weights on the same
batch must give the same loss and the same gradients (a disagreement aborts the run).
Under ``torch.compile`` (``dynamic=True``, one compilation serving every batch shape) the
compiled models are checked the same way, against each other and their eager twins.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from typing import Callable, Dict, List, Sequence, Tuple

import torch
from torch import Tensor, nn

import graphpool as gp
from graphpool.kernels import compiled
from graphpool.kernels.reductions import SUM

__all__ = ["GIN0", "epoch_batches", "run_training"]

BATCH_SIZES = (32, 128)


class GIN0(nn.Module):
    """GIN-0 with pluggable neighbourhood aggregation and graph readout."""

    def __init__(self, in_channels: int, classes: int, aggr: Callable[[], object],
                 readout: nn.Module | Callable[..., Tensor], hidden: int = 64,
                 layers: int = 3) -> None:
        from torch_geometric.nn import GINConv

        super().__init__()
        widths = [in_channels] + [hidden] * layers
        self.convs = nn.ModuleList(
            GINConv(nn.Sequential(nn.Linear(a, hidden), nn.ReLU(), nn.Linear(hidden, hidden)),
                    train_eps=False, aggr=aggr()) for a in widths[:-1])
        self.readout = readout
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: Tensor, edge_index: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        for conv in self.convs:
            x = conv(x, edge_index).relu()
        return self.head(self.readout(x, batch, dim_size=num_graphs))


def _floor_readout(x: Tensor, batch: Tensor, dim_size: int) -> Tensor:
    """One read of ``x``: what a readout costs at the least (the bound, not a readout)."""
    return x.sum(-2, keepdim=True).expand(dim_size, -1)


def _floor_aggregation() -> nn.Module:
    from torch_geometric.nn.aggr import Aggregation

    class FloorAggregation(Aggregation):
        def forward(self, x: Tensor, index=None, ptr=None, dim_size=None, dim=-2, **_):
            return _floor_readout(x, index, dim_size)

    return FloorAggregation()


class _KernelSum(torch.autograd.Function):
    """A segment sum by graphpool's kernels alone: ``compiled.combine`` forward, its
    broadcast backward, no checks (the groupings are built and checked beforehand)."""

    @staticmethod
    def forward(ctx, x: Tensor, seg: gp.Segments) -> Tensor:
        ctx.seg = seg
        return compiled.combine(x, seg, SUM, x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return compiled.broadcast(grad, ctx.seg), None


Groupings = Dict[Tuple[int, int], gp.Segments]


def kernel_groupings(batches: Sequence[tuple]) -> Groupings:
    """The groupings of every index the epoch's steps read out (each destination index and
    batch vector), keyed by the index's storage and length (message passing hands each layer
    a fresh view of ``edge_index[1]``)."""
    out: Groupings = {}
    for x, edge_index, batch, num_graphs, _ in batches:
        for index, sets in ((edge_index[1], x.size(0)), (batch, num_graphs)):
            seg = gp.Segments.from_index(index, sets)
            if seg.kind == gp.Kind.SCATTER:
                seg._order  # the sorted order, built once (as graphpool's cache keeps it)
            out[index.data_ptr(), index.numel()] = seg
    return out


def _kernels_model(in_channels: int, classes: int, groupings: Groupings) -> nn.Module:
    from torch_geometric.nn.aggr import Aggregation

    def read(x: Tensor, index: Tensor, dim_size: int) -> Tensor:
        return _KernelSum.apply(x, groupings[index.data_ptr(), index.numel()])

    class KernelsAggregation(Aggregation):
        def forward(self, x: Tensor, index=None, ptr=None, dim_size=None, dim=-2, **_):
            return read(x, index, dim_size)

    return GIN0(in_channels, classes, KernelsAggregation, read)


def _pyg_readout(x: Tensor, batch: Tensor, dim_size: int) -> Tensor:
    from torch_geometric.nn import global_add_pool

    return global_add_pool(x, batch, size=dim_size)


def models(in_channels: int, classes: int, seed: int = 0) -> Dict[str, nn.Module]:
    """``{"graphpool": ..., "PyG": ...}`` with identical initial weights."""
    torch.manual_seed(seed)
    pyg = GIN0(in_channels, classes, lambda: "add", _pyg_readout)
    ours = GIN0(in_channels, classes, gp.SumReadout, gp.SumReadout())
    ours.load_state_dict(pyg.state_dict())
    return {"graphpool": ours, "PyG": pyg}


def epoch_batches(batch_size: int, root: str) -> List[tuple]:
    """NCI1's training batches of one epoch (fixed shuffle), collated once."""
    from torch_geometric.loader import DataLoader

    from graphpool.datasets import load_tu_dataset

    dataset = load_tu_dataset("NCI1", root=root)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    return [(b.x, b.edge_index, b.batch, b.num_graphs, b.y) for b in loader]


def _step(model: nn.Module, optimiser: torch.optim.Optimizer, batch: tuple) -> Tensor:
    x, edge_index, index, num_graphs, y = batch
    optimiser.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(x, edge_index, index, num_graphs), y)
    loss.backward()
    optimiser.step()
    return loss


def _check_same_step(models: Dict[str, nn.Module], batch: tuple) -> None:
    """From equal weights, one step's loss and gradients must agree with graphpool's."""
    results = {}
    for name, model in models.items():
        x, edge_index, index, num_graphs, y = batch
        model.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(x, edge_index, index, num_graphs), y)
        loss.backward()
        results[name] = (loss.detach(), [p.grad.clone() for p in model.parameters()])
        model.zero_grad(set_to_none=True)
    ref_loss, ref_grads = results["graphpool"]
    for name, (loss, grads) in results.items():
        torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-6,
                                   msg=lambda m: f"{name}'s loss disagrees: {m}")
        for g, r in zip(grads, ref_grads):
            scale = r.abs().max().clamp(min=1e-3)  # float32 sums in another order
            if (g - r).abs().max() > 1e-4 * scale:
                raise AssertionError(f"{name}'s gradients disagree with graphpool's")


def run_training(rounds: int = 3, compile_too: bool = True,
                 batch_sizes: Sequence[int] = BATCH_SIZES,
                 progress: Callable[[str], None] | None = None) -> List[dict]:
    """Median seconds per epoch of each candidate, eager (and compiled), per batch size."""
    from torch_geometric.datasets import TUDataset  # noqa: F401  (import cost outside timing)

    rows = []
    with tempfile.TemporaryDirectory() as root:
        for batch_size in batch_sizes:
            batches = epoch_batches(batch_size, root)
            in_channels = batches[0][0].size(1)
            classes = int(max(int(b[4].max()) for b in batches)) + 1
            for mode in ("eager", "compiled") if compile_too else ("eager",):
                if progress:
                    progress(f"GIN-0 training epoch, NCI1, batch {batch_size}, {mode}")
                eager = models(in_channels, classes)
                runs = {name: torch.compile(m, dynamic=True) if mode == "compiled" else m
                        for name, m in eager.items()}
                if mode == "eager":  # graphpool's kernels alone: a bound, never compared
                    kernels = _kernels_model(in_channels, classes, kernel_groupings(batches))
                    kernels.load_state_dict(eager["PyG"].state_dict())
                    runs["kernels"] = eager["kernels"] = kernels
                # equal weights: all candidates (compiled: and their eager twins) agree
                _check_same_step({**runs, **({f"{k} eager": m for k, m in eager.items()}
                                             if mode == "compiled" else {})}, batches[0])
                if mode == "eager":  # the bound: timed beside them, never compared
                    floor = GIN0(in_channels, classes, _floor_aggregation, _floor_readout)
                    floor.load_state_dict(eager["PyG"].state_dict())
                    runs["floor"] = eager["floor"] = floor
                trainers = {name: (run, torch.optim.Adam(eager[name].parameters(), lr=1e-3))
                            for name, run in runs.items()}
                times: Dict[str, List[float]] = {name: [] for name in trainers}
                for r in range(rounds + 1):  # round 0 warms up (and compiles)
                    for name, (model, optimiser) in trainers.items():
                        start = time.perf_counter()
                        for batch in batches:
                            _step(model, optimiser, batch)
                        if r:
                            times[name].append(time.perf_counter() - start)
                ours = statistics.median(times["graphpool"])
                for name, ts in times.items():
                    rows.append({"regime": f"GIN-0 epoch NCI1 batch {batch_size}",
                                 "mode": mode, "candidate": name,
                                 "median_s": statistics.median(ts),
                                 "ratio_to_graphpool": statistics.median(ts) / ours,
                                 "steps": len(batches)})
    return rows


def markdown(rows: Sequence[dict]) -> str:
    out = ["| regime | mode | steps | graphpool s | PyG s | PyG / graphpool | kernels s "
           "| PyG / kernels | floor s | PyG / floor |", "|---|---|---|---|---|---|---|---|---|---|"]
    keys = dict.fromkeys((r["regime"], r["mode"]) for r in rows)
    for regime, mode in keys:
        rs = {r["candidate"]: r for r in rows if r["regime"] == regime and r["mode"] == mode}
        ours, pyg = rs["graphpool"], rs["PyG"]
        bound = " | ".join(f"{rs[b]['median_s']:.3f} | {pyg['median_s'] / rs[b]['median_s']:.2f}"
                           if b in rs else " | " for b in ("kernels", "floor"))
        out.append(f"| {regime} | {mode} | {ours['steps']} | {ours['median_s']:.3f} | "
                   f"{pyg['median_s']:.3f} | {pyg['median_s'] / ours['median_s']:.2f} | "
                   f"{bound} |")
    return "\n".join(out)
