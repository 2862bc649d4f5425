r"""Stratified splits: the outer k folds and the inner validation hold-out.

The outer folds are the GIN paper's, ``StratifiedKFold(k, shuffle=True, random_state=seed)``
over the graphs in file order (seed 0 rebuilds the paper's folds). Every class keeps its
share in every fold, and the test folds partition the dataset.
"""
from __future__ import annotations

from typing import List, Tuple

import numpy as np
import torch
from torch import Tensor

from ...errors import GraphpoolError

__all__ = ["stratified_folds", "holdout_split"]


def stratified_folds(labels: Tensor, folds: int = 10, seed: int = 0) -> List[Tuple[Tensor, Tensor]]:
    """``folds`` pairs ``(train_idx, test_idx)`` of sorted graph indices; the test parts are
    disjoint and cover every graph.

    Args:
        labels: ``[G]`` class of every graph.
        folds: number of folds, from 2 to the size of the smallest class.
        seed: ``random_state`` of the shuffle.

    Example:
        >>> import torch
        >>> labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
        >>> splits = stratified_folds(labels, folds=4)
        >>> [labels[test].tolist() for _, test in splits]  # every class in every fold
        [[0, 1], [0, 1], [0, 1], [0, 1]]
        >>> sorted(torch.cat([test for _, test in splits]).tolist())  # a partition
        [0, 1, 2, 3, 4, 5, 6, 7]
    """
    from sklearn.model_selection import StratifiedKFold

    smallest = int(torch.bincount(labels).min()) if labels.numel() else 0
    if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= smallest:
        raise GraphpoolError("stratified_folds", "folds",
                             f"an int from 2 to {smallest} (the size of the smallest class)",
                             repr(folds), "use 10 folds as in the paper")
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    y = labels.numpy()
    return [(torch.from_numpy(np.sort(train)), torch.from_numpy(np.sort(test)))
            for train, test in splitter.split(np.zeros(len(y)), y)]


def holdout_split(labels: Tensor, train_idx: Tensor, fraction: float = 0.1,
                  seed: int = 0) -> Tuple[Tensor, Tensor]:
    """Split ``train_idx`` into ``(fit_idx, val_idx)``, stratified, ``fraction`` for validation.

    Example:
        >>> import torch
        >>> labels = torch.tensor([0] * 10 + [1] * 10)
        >>> fit, val = holdout_split(labels, torch.arange(20), fraction=0.2)
        >>> len(fit), len(val), labels[val].tolist()
        (16, 4, [0, 0, 1, 1])
    """
    from sklearn.model_selection import train_test_split

    if not 0.0 < fraction < 1.0:
        raise GraphpoolError("holdout_split", "fraction", "a number in (0, 1)", repr(fraction),
                             "use 0.1 (a tenth of the training graphs for validation)")
    fit, val = train_test_split(train_idx.numpy(), test_size=fraction, random_state=seed,
                                stratify=labels[train_idx].numpy())
    return torch.from_numpy(np.sort(fit)), torch.from_numpy(np.sort(val))
