r"""Readouts over node shards (``torch.distributed``): each rank holds any subset of the
rows of any set, and every rank gets the readout of the union, with the single-process
readout's gradients under a replicated loss. See docs/distributed.md."""
from .collectives import AllGather, AllReduceSum, Extremum, GradSum
from .group import check_agreement
from .readout import BACKWARDS, DistributedReadout, distributed_readout

__all__ = ["distributed_readout", "DistributedReadout", "BACKWARDS", "check_agreement",
           "AllReduceSum", "AllGather", "GradSum", "Extremum"]
