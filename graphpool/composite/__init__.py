r"""Composite readouts: statistics and order statistics built from the kernels'
primitives (:func:`~graphpool.segment_reduce`) and broadcasts
(:func:`~graphpool.segment_broadcast`), apart from the kernels themselves (as
torch_scatter keeps its ``composite/``). Every function takes ``(x, segments, ...)``
and works on every grouping; the readout modules of :mod:`graphpool.readouts` call them.
"""
from .dense import INTERPOLATIONS, segment_quantile, segment_sort_k, to_dense
from .stats import (Passes, segment_count, segment_logsumexp, segment_power_mean,
                    segment_softmax, segment_softmax_sum, segment_std, segment_var)

__all__ = ["Passes", "segment_softmax", "segment_var", "segment_std", "segment_logsumexp",
           "segment_softmax_sum", "segment_power_mean", "segment_count", "to_dense",
           "segment_quantile", "segment_sort_k", "INTERPOLATIONS"]
