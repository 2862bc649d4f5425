"""Optional torch_scatter path (``pip install graphpool[scatter]``).

Used for index and CSR groupings when torch_scatter is importable and the backend
is ``"auto"`` or ``"torch_scatter"`` (see :func:`graphpool.set_backend`). Its
max/min do not propagate ``nan``; a second pass restores ``nan`` so that results
match the native paths exactly.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..segments import Segments

try:  # pragma: no cover - depends on the environment
    import torch_scatter
except ImportError:  # pragma: no cover
    torch_scatter = None

AVAILABLE = torch_scatter is not None
SUPPORTED_KINDS = ("csr", "scatter")


def combine(x: Tensor, seg: Segments, how: str, acc_dtype: torch.dtype) -> Tensor:
    x = x.to(acc_dtype)
    if seg.kind == "csr":
        ptr = seg.ptr.expand(*x.shape[:-2], seg.num_segments + 1)
        out = torch_scatter.segment_csr(x, ptr, reduce=how)
    else:
        out = torch_scatter.scatter(x, seg.index, dim=x.dim() - 2,
                                    dim_size=seg.num_segments, reduce=how)
    if how != "sum" and x.is_floating_point():
        has_nan = combine(x.isnan().to(x.dtype), seg, "sum", x.dtype) > 0
        out = out.masked_fill(has_nan, float("nan"))
    return out
