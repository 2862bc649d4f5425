r"""k-fold cross-validation of a GIN under the two model-selection protocols.

``paper`` (Xu et al., 2019): train on the k-1 outer folds, record the test-fold accuracy
:math:`a_{c,f,t}` of every setting :math:`c`, fold :math:`f` and epoch :math:`t`, then pick
the one setting and epoch that maximise the mean curve,

.. math::
    (c^*, t^*) = \arg\max_{c, t} \frac{1}{k} \sum_{f} a_{c,f,t},

and report the mean and standard deviation over folds of :math:`a_{c^*,f,t^*}`. The test
folds take part in the choice, so the estimate is optimistic.

``heldout``: inside every outer training split a stratified share (``val_fraction``) is held
out; the model trains on the rest and each fold picks its own setting and epoch by the
highest validation accuracy (ties: lowest validation loss, then the earliest). The outer
test fold is only read at the chosen point.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
from tqdm.auto import tqdm

from ...errors import GraphpoolError
from ...readouts import Readout
from .config import TrainConfig
from .folds import holdout_split, stratified_folds
from .packing import PackedGraphs
from .training import train_gin

__all__ = ["PROTOCOLS", "CVResult", "cross_validate", "select_paper", "select_heldout",
           "run_seed"]

PROTOCOLS = ("paper", "heldout")


@dataclass
class CVResult:
    """The outcome of :func:`cross_validate`: test accuracy (%) per fold at the selected
    setting and epoch (epochs are 1-based), their mean and population std, and wall time."""

    protocol: str
    fold_accuracy: List[float]
    selected_epoch: List[int]
    selected_config: List[TrainConfig]
    wall_s: float
    mean: float = field(init=False)
    std: float = field(init=False)

    def __post_init__(self) -> None:
        self.mean = float(np.mean(self.fold_accuracy))
        self.std = float(np.std(self.fold_accuracy))


def select_paper(test_accuracy: np.ndarray) -> Tuple[int, int]:
    """``(setting, epoch)`` maximising the fold-averaged test curve; ``test_accuracy`` is
    ``[settings, folds, epochs]``; the first maximum wins.

    Example:
        >>> import numpy as np
        >>> acc = np.array([[[50, 70, 60], [50, 90, 60]],     # setting 0: mean 50, 80, 60
        ...                 [[60, 60, 95], [60, 60, 55]]])    # setting 1: mean 60, 60, 75
        >>> select_paper(acc)
        (0, 1)
    """
    mean = test_accuracy.mean(axis=1)
    setting, epoch = np.unravel_index(np.argmax(mean), mean.shape)
    return int(setting), int(epoch)


def select_heldout(val_accuracy: np.ndarray, val_loss: np.ndarray) -> Tuple[int, int]:
    """``(setting, epoch)`` of one fold with the best validation accuracy; ties go to the
    lowest validation loss, then to the earliest setting and epoch. Both are
    ``[settings, epochs]``.

    Example:
        >>> import numpy as np
        >>> select_heldout(np.array([[80., 90., 90.]]), np.array([[0.5, 0.4, 0.3]]))
        (0, 2)
    """
    flat_acc, flat_loss = val_accuracy.ravel(), val_loss.ravel()
    order = np.lexsort((np.arange(flat_acc.size), flat_loss, -flat_acc))
    setting, epoch = np.unravel_index(order[0], val_accuracy.shape)
    return int(setting), int(epoch)


def run_seed(seed: int, fold: int, setting: int) -> int:
    """The seed of one training run, derived from the experiment seed, the fold and the
    setting (not the readout, so readouts are compared on the same batches and inits).

    Example:
        >>> run_seed(0, 1, 2) == run_seed(0, 1, 2) != run_seed(0, 2, 1)
        True
    """
    return int(np.random.SeedSequence([seed, fold, setting]).generate_state(1)[0])


def cross_validate(graphs: PackedGraphs, readout: Union[str, Readout],
                   configs: Sequence[TrainConfig], *, protocol: str = "paper", folds: int = 10,
                   max_folds: Optional[int] = None, seed: int = 0, val_fraction: float = 0.1,
                   progress: bool = True, desc: str = "") -> CVResult:
    """Cross-validate a GIN with ``readout`` over the settings ``configs``.

    Args:
        graphs: the packed dataset.
        readout: graph readout, a name or a :class:`~graphpool.Readout`.
        configs: the settings to choose from (all with the same ``epochs``).
        protocol: ``"paper"`` or ``"heldout"`` (see the module docs).
        folds: number of outer folds (at least 2).
        max_folds: run only the first ``max_folds`` folds (each still trains on
            ``(folds - 1) / folds`` of the data); ``None`` runs them all.
        seed: seeds the folds and every run (see :func:`run_seed`).
        val_fraction: share of each outer training split held out (``heldout`` only).
        progress: show a tqdm bar, one tick per epoch.
        desc: the bar's label.

    Example:
        >>> import tempfile
        >>> from graphpool.datasets import load_tu_dataset
        >>> graphs = PackedGraphs(load_tu_dataset("MUTAG", tempfile.mkdtemp()))
        >>> result = cross_validate(graphs, "sum", [TrainConfig(epochs=2)], folds=10,
        ...                         max_folds=2, progress=False)
        >>> len(result.fold_accuracy), result.selected_epoch[0] in (1, 2)
        (2, True)
    """
    if protocol not in PROTOCOLS:
        raise GraphpoolError("cross_validate", "protocol", f"one of {PROTOCOLS}",
                             repr(protocol), "use 'paper' or 'heldout'")
    if not configs or len({c.epochs for c in configs}) != 1:
        raise GraphpoolError("cross_validate", "configs",
                             "a non-empty list of settings with the same number of epochs",
                             [c.epochs for c in configs], "build them with config_grid")
    if max_folds is not None and (isinstance(max_folds, bool) or not isinstance(max_folds, int)
                                  or not 1 <= max_folds <= folds):
        raise GraphpoolError("cross_validate", "max_folds", f"None or an int from 1 to {folds}",
                             repr(max_folds), "leave it out to run every fold")
    splits = stratified_folds(graphs.labels, folds, seed)[:max_folds]
    epochs = configs[0].epochs
    start = time.perf_counter()
    bar = tqdm(total=len(splits) * len(configs) * epochs, desc=desc, disable=not progress,
               leave=True, dynamic_ncols=True)
    shape = (len(configs), len(splits), epochs)
    test_acc, val_acc, val_loss = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    for f, (train_idx, test_idx) in enumerate(splits):
        evals = {"test": test_idx}
        if protocol == "heldout":
            train_idx, evals["val"] = holdout_split(graphs.labels, train_idx, val_fraction,
                                                    seed + f)
        for c, config in enumerate(configs):
            def tick(epoch, loss, acc, f=f, c=c):
                bar.set_postfix_str(f"fold {f + 1}/{len(splits)} {configs[c].label()} "
                                    f"loss {loss:.3f} " +
                                    " ".join(f"{n} {a:.1f}" for n, a in acc.items()))
                bar.update()

            curves = train_gin(graphs, train_idx, evals, readout, config, run_seed(seed, f, c),
                               on_epoch=tick)
            test_acc[c, f] = curves.accuracy["test"]
            if protocol == "heldout":
                val_acc[c, f], val_loss[c, f] = curves.accuracy["val"], curves.loss["val"]
    bar.close()
    if protocol == "paper":
        c, t = select_paper(test_acc)
        chosen = [(c, t)] * len(splits)
    else:
        chosen = [select_heldout(val_acc[:, f], val_loss[:, f]) for f in range(len(splits))]
    return CVResult(protocol, [float(test_acc[c, f, t]) for f, (c, t) in enumerate(chosen)],
                    [t + 1 for _, t in chosen], [configs[c] for c, _ in chosen],
                    time.perf_counter() - start)
