"""Optional torch_scatter path for sums (``pip install --no-build-isolation torch-scatter``).

Used for index and CSR groupings when torch_scatter is importable and the backend is
``"auto"`` or ``"torch_scatter"`` (see :func:`graphpool.set_backend`).

Max and min always take the native paths: torch_scatter 2.1's max/min neither
propagate ``nan`` nor keep a set of only ``-inf`` (it returns the lowest finite value
or 0), which would silently change data; ``tests/test_kernels.py`` pins that down.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..errors import GraphpoolError
from ..segments import Kind, Segments
from .reductions import SUM, Primitive

try:  # pragma: no cover - depends on the environment
    import torch_scatter
except ImportError:  # pragma: no cover
    torch_scatter = None

AVAILABLE = torch_scatter is not None


def combine(x: Tensor, seg: Segments, op: Primitive, acc_dtype: torch.dtype) -> Tensor:
    if not combine.accepts(op):
        raise GraphpoolError("segment_reduce", "reduce", "'sum' on the torch_scatter path",
                             repr(op), "use another backend for this reduction")
    x = x.to(acc_dtype)
    if seg.kind == Kind.CSR:
        ptr = seg._checked_ptr().expand(*x.shape[:-2], seg.num_segments + 1)
        return torch_scatter.segment_csr(x, ptr, reduce="sum")
    return torch_scatter.scatter(x, seg._index, dim=x.dim() - 2, dim_size=seg.num_segments,
                                 reduce="sum")


combine.accepts = lambda op: op is SUM
combine.fused = frozenset()
