r"""graphpool: graph readouts on segment kernels, where CNN global pooling is a graph readout.

The one idea: a readout is ``segment_reduce(x, segments, op)``. Rows of ``x`` are
nodes (dim ``-2``, features last), :class:`Segments` says which rows form each set,
and ``op`` says how a set becomes one row.
"""
from .errors import GraphpoolError
from .functional import max_readout, mean_readout, min_readout, readout, sum_readout
from .kernels import (REDUCTIONS, get_backend, segment_broadcast, segment_reduce, set_backend, use_backend)
from .readouts import (READOUTS, AttentionalReadout, CountReadout, DeepSetsReadout,
                       GMTReadout, LatentAttentionReadout, Set2SetReadout,
                       SetTransformerReadout, SortReadout, GeMReadout, LogSumExpReadout, MaxReadout,
                       MeanReadout, MedianReadout, MinReadout, MultiReadout, PowerMeanReadout,
                       ProdReadout, QuantileReadout, Readout, SoftmaxReadout, StdReadout,
                       SumReadout, TableReadout, VarReadout, VPAReadout, resolve_readout)
from .readouts.edge import EdgeEnergyReadout, edge_energy_readout
from .segments import Kind, Segments
from .resolve import as_segments
from .grid import (GlobalPool1d, GlobalPool2d, GlobalPool3d, Layout, as_nodes, batch_to_image,
                   global_pool, grid_graph, image_to_batch, receptive_field, window_pool,
                   window_segments)
from .excitation import SqueezeExcitation
from .analysis.cam import class_activation

__version__ = "0.1.0"

__all__ = [
    "GraphpoolError", "Segments", "Kind", "as_segments", "segment_reduce", "segment_broadcast", "REDUCTIONS",
    "set_backend", "get_backend", "use_backend",
    "readout", "sum_readout", "mean_readout", "max_readout", "min_readout",
    "Readout", "SumReadout", "MeanReadout", "MaxReadout", "MinReadout", "VarReadout",
    "StdReadout", "LogSumExpReadout", "SoftmaxReadout", "PowerMeanReadout", "GeMReadout",
    "MedianReadout", "QuantileReadout", "ProdReadout", "VPAReadout", "CountReadout",
    "AttentionalReadout", "Set2SetReadout", "SortReadout", "DeepSetsReadout",
    "SetTransformerReadout", "GMTReadout", "LatentAttentionReadout",
    "MultiReadout", "TableReadout", "READOUTS",
    "resolve_readout", "EdgeEnergyReadout", "edge_energy_readout",
    "Layout", "as_nodes", "global_pool", "GlobalPool1d", "GlobalPool2d", "GlobalPool3d",
    "grid_graph", "image_to_batch", "batch_to_image", "window_segments", "window_pool",
    "receptive_field", "SqueezeExcitation", "class_activation",
]
