r"""Train one GIN on one split and record its learning curves.

Every epoch the model is evaluated (eval mode, no dropout) on each named split, so that
the protocols can choose an epoch afterwards. The loss is cross-entropy,

.. math::
    \mathcal{L} = -\frac{1}{B} \sum_{i=1}^{B} \log \mathrm{softmax}(\mathrm{logits}_i)_{y_i},

minimised with Adam; the learning rate is halved every ``lr_halving`` epochs.

Inside an initialised ``torch.distributed`` process group of ``W > 1`` ranks (``graphpool
train --nproc W``), :func:`train_gin` trains data-parallel: the model is wrapped in
:class:`~torch.nn.parallel.DistributedDataParallel` (gradients averaged over the ranks
after every step), a :class:`~torch.utils.data.DistributedSampler` deals each rank its
share of every epoch's shuffled training graphs, and each rank takes
``ceil(batch_size / W)`` of them per step, so ``batch_size`` stays the global batch size
and an epoch has the single-process number of steps. (With ``iters_per_epoch``, every
rank draws the same random global batch and keeps its ``rank::W`` share.) Batch norm
statistics are each rank's own. Rank 0 evaluates; the other ranks' curves hold only the
training loss, which is averaged over all ranks.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, Optional, Union

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from ..models import GIN
from ...readouts import Readout
from .config import TrainConfig
from .packing import GraphBatch, PackedGraphs

__all__ = ["Curves", "train_gin", "evaluate"]


@dataclass
class Curves:
    """Per-epoch metrics of one run: the mean training loss and, for every evaluated split,
    accuracy (in %) and loss; each is a ``[epochs]`` array."""

    train_loss: np.ndarray
    accuracy: Dict[str, np.ndarray]
    loss: Dict[str, np.ndarray]


def _epoch_batches(train_idx: Tensor, config: TrainConfig,
                   generator: torch.Generator) -> Iterator[Tensor]:
    n = train_idx.numel()
    if config.iters_per_epoch is None:
        order = train_idx[torch.randperm(n, generator=generator)]
        yield from order.split(config.batch_size)
    else:
        for _ in range(config.iters_per_epoch):
            yield train_idx[torch.randperm(n, generator=generator)[:config.batch_size]]


def _rank_batches(train_idx: Tensor, config: TrainConfig, generator: torch.Generator,
                  seed: int, epoch: int, rank: int, world: int) -> Iterator[Tensor]:
    """This rank's share of every global batch of one epoch (see the module docs)."""
    if config.iters_per_epoch is not None:
        for ids in _epoch_batches(train_idx, config, generator):
            yield ids[rank::world]
        return
    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(range(train_idx.numel()), num_replicas=world, rank=rank,
                                 shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    yield from train_idx[torch.tensor(list(sampler))].split(-(-config.batch_size // world))


def _world() -> tuple:
    """``(rank, world size)`` of the default process group; ``(0, 1)`` without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def evaluate(model: torch.nn.Module, batch: GraphBatch) -> tuple:
    """``(accuracy in %, mean cross-entropy)`` of ``model`` on ``batch``, in eval mode.

    Example:
        >>> import torch
        >>> from torch_geometric.data import Data
        >>> from graphpool.apps.models import GIN
        >>> graphs = PackedGraphs([Data(x=torch.ones(2, 3), y=torch.tensor([1]),
        ...                             edge_index=torch.tensor([[0, 1], [1, 0]]))])
        >>> acc, loss = evaluate(GIN(3, 2, hidden_channels=4), graphs.batch(torch.tensor([0])))
        >>> acc in (0.0, 100.0), loss > 0
        (True, True)
    """
    model.eval()
    with torch.no_grad():
        logits = model(batch.x, batch.edge_index, batch.segments)
        accuracy = (logits.argmax(-1) == batch.y).double().mean().item() * 100
        return accuracy, F.cross_entropy(logits, batch.y).item()


def train_gin(graphs: PackedGraphs, train_idx: Tensor, eval_idx: Dict[str, Tensor],
              readout: Union[str, Readout], config: TrainConfig, seed: int = 0,
              on_epoch: Optional[Callable[[int, float, Dict[str, float]], None]] = None) -> Curves:
    """Train a fresh :class:`~graphpool.apps.models.GIN` on ``train_idx``; evaluate every epoch.

    Args:
        graphs: the packed dataset.
        train_idx: graphs to train on.
        eval_idx: named splits to evaluate after every epoch, e.g. ``{"test": idx}``.
        readout: the graph readout, a name or a :class:`~graphpool.Readout` (copied, so
            runs never share trained parameters).
        config: hyper-parameters.
        seed: seeds the initialisation, dropout and batch order; same seed, same curves.
        on_epoch: called as ``on_epoch(epoch, train_loss, accuracies)`` after each epoch.

    Example:
        >>> import torch
        >>> from graphpool.datasets import load_tu_dataset
        >>> import tempfile
        >>> graphs = PackedGraphs(load_tu_dataset("MUTAG", tempfile.mkdtemp()))
        >>> curves = train_gin(graphs, torch.arange(0, 188, 2), {"test": torch.arange(1, 188, 2)},
        ...                    "sum", TrainConfig(hidden=16, epochs=2))
        >>> curves.accuracy["test"].shape
        (2,)
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    readout = readout if isinstance(readout, str) else copy.deepcopy(readout)
    model = GIN(graphs.x.size(-1), int(graphs.labels.max()) + 1, config.hidden, config.num_layers,
                readout, aggr=readout if config.aggr == "same" else config.aggr,
                train_eps=config.train_eps, dropout=config.dropout)
    rank, world = _world()
    net = model
    if world > 1:  # data-parallel: the same initial weights (DDP broadcasts rank 0's)
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model)
        torch.manual_seed(seed + rank)  # each rank its own dropout masks
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, foreach=True)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_halving, gamma=0.5)
    eval_batches = {name: graphs.batch(idx) for name, idx in eval_idx.items()}
    train_loss = np.zeros(config.epochs)
    accuracy = {name: np.zeros(config.epochs) for name in eval_idx}
    loss = {name: np.zeros(config.epochs) for name in eval_idx}
    for epoch in range(config.epochs):
        model.train()
        total, steps = 0.0, 0
        batches = (_epoch_batches(train_idx, config, generator) if world == 1 else
                   _rank_batches(train_idx, config, generator, seed, epoch, rank, world))
        for ids in batches:
            batch = graphs.batch(ids)
            optimizer.zero_grad()
            step_loss = F.cross_entropy(net(batch.x, batch.edge_index, batch.segments), batch.y)
            step_loss.backward()
            optimizer.step()
            total, steps = total + step_loss.item(), steps + 1
        schedule.step()
        if world > 1:
            total, steps = _summed(total, steps)
        train_loss[epoch] = total / max(steps, 1)
        for name, batch in eval_batches.items():
            if rank == 0:
                accuracy[name][epoch], loss[name][epoch] = evaluate(model, batch)
        if on_epoch is not None:
            on_epoch(epoch, train_loss[epoch], {n: a[epoch] for n, a in accuracy.items()})
    return Curves(train_loss, accuracy, loss)


def _summed(total: float, steps: int) -> tuple:
    """``total`` and ``steps`` summed over the ranks."""
    import torch.distributed as dist

    both = torch.tensor([total, float(steps)], dtype=torch.float64)
    dist.all_reduce(both)
    return float(both[0]), int(both[1])
