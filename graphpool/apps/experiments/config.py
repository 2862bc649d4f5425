"""Hyper-parameters of one GIN training run, and the grid the paper searches."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterable, List, Optional

__all__ = ["TrainConfig", "config_grid"]


@dataclass(frozen=True)
class TrainConfig:
    r"""One training run's settings; the defaults are the GIN paper's.

    The learning rate follows :math:`\mathrm{lr}_t = \mathrm{lr} \cdot
    0.5^{\lfloor t / \mathrm{lr\_halving} \rfloor}` at epoch :math:`t`.

    Args:
        hidden: width of the GIN layers (paper: {16, 32}).
        batch_size: graphs per minibatch (paper: {32, 128}).
        dropout: dropout on the per-layer class scores (paper: {0, 0.5}).
        epochs: training epochs (paper: 350).
        lr: Adam's initial learning rate (paper: 0.01).
        lr_halving: epochs between halvings of the learning rate (paper: 50).
        num_layers: layers counting the input (paper: 5).
        train_eps: learn :math:`\epsilon` (GIN-:math:`\epsilon`) instead of GIN-0.
        aggr: neighbourhood aggregation of the GIN layers: ``"sum"`` (GIN), another readout
            name, or ``"same"`` for the graph readout's.
        iters_per_epoch: ``None`` makes an epoch one shuffled pass over the training graphs
            (PyG's convention); an int makes it that many batches drawn at random, as in the
            paper's code (50).

    Example:
        >>> TrainConfig(hidden=16).label()
        'hidden=16 batch=32 dropout=0.5'
    """

    hidden: int = 32
    batch_size: int = 32
    dropout: float = 0.5
    epochs: int = 350
    lr: float = 0.01
    lr_halving: int = 50
    num_layers: int = 5
    train_eps: bool = False
    aggr: str = "sum"
    iters_per_epoch: Optional[int] = None

    def label(self) -> str:
        """The tuned settings, for tables and logs."""
        return f"hidden={self.hidden} batch={self.batch_size} dropout={self.dropout:g}"


def config_grid(hidden: Iterable[int] = (32,), batch_size: Iterable[int] = (32,),
                dropout: Iterable[float] = (0.5,), **fixed) -> List[TrainConfig]:
    """Every combination of the tuned settings (the paper's grid is ``hidden=(16, 32),
    batch_size=(32, 128), dropout=(0, 0.5)``); ``fixed`` sets the other fields.

    Example:
        >>> [c.label() for c in config_grid(hidden=(16, 32), dropout=(0.0,), epochs=5)]
        ['hidden=16 batch=32 dropout=0', 'hidden=32 batch=32 dropout=0']
    """
    return [TrainConfig(hidden=h, batch_size=b, dropout=d, **fixed)
            for h, b, d in itertools.product(hidden, batch_size, dropout)]
