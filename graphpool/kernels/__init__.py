"""Segment-reduce kernels: one dispatch point, a table of reductions, interchangeable paths."""
from .broadcast import segment_broadcast
from .backends import get_backend, set_backend, use_backend
from .dispatch import segment_reduce
from .reductions import REDUCTIONS, Reduction, resolve_reduction

__all__ = ["segment_reduce", "segment_broadcast", "set_backend", "get_backend", "use_backend", "REDUCTIONS",
           "Reduction", "resolve_reduction"]
