r"""Sum, mean, max and min readouts: each names its op in the reduction table."""
from __future__ import annotations

from .base import Readout

__all__ = ["SumReadout", "MeanReadout", "MaxReadout", "MinReadout"]


class SumReadout(Readout):
    r"""Sum of each set, :math:`y_b = \sum_{v \in \mathcal{V}_b} x_v` (PyG ``global_add_pool``).

    Example:
        >>> import torch
        >>> from graphpool import SumReadout
        >>> SumReadout()(torch.ones(3, 2), torch.tensor([0, 1, 1])).tolist()
        [[1.0, 1.0], [2.0, 2.0]]
    """

    reduce = "sum"


class MeanReadout(Readout):
    r"""Mean of each set, :math:`y_b = \frac{1}{|\mathcal{V}_b|}\sum_{v \in \mathcal{V}_b} x_v`.

    Example:
        >>> import torch
        >>> from graphpool import MeanReadout
        >>> MeanReadout()(torch.tensor([[1.], [2.], [6.]]), torch.tensor([0, 1, 1])).tolist()
        [[1.0], [4.0]]
    """

    reduce = "mean"


class MaxReadout(Readout):
    r"""Feature-wise maximum, :math:`y_b = \max_{v \in \mathcal{V}_b} x_v`; tied rows share
    the gradient evenly.

    Example:
        >>> import torch
        >>> from graphpool import MaxReadout
        >>> MaxReadout()(torch.tensor([[1.], [2.], [6.]]), torch.tensor([0, 1, 1])).tolist()
        [[1.0], [6.0]]
    """

    reduce = "max"


class MinReadout(Readout):
    r"""Feature-wise minimum, :math:`y_b = \min_{v \in \mathcal{V}_b} x_v`; tied rows share
    the gradient evenly.

    Example:
        >>> import torch
        >>> from graphpool import MinReadout
        >>> MinReadout()(torch.tensor([[1.], [2.], [6.]]), torch.tensor([0, 1, 1])).tolist()
        [[1.0], [2.0]]
    """

    reduce = "min"
