r"""Turn the user's grouping arguments (index, ptr, Segments, PyG Batch) into one
:class:`~graphpool.Segments`; a ``batch`` or ``ptr`` tensor goes through the cache
(:mod:`graphpool.segments_cache`).
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from .errors import GraphpoolError, describe
from .segments import Segments
from .segments_cache import CACHE

__all__ = ["as_segments"]


def _is_pyg_data(obj: Any) -> bool:
    try:
        from torch_geometric.data import Data
    except ImportError:  # pragma: no cover - torch_geometric is a runtime dependency
        return False
    return isinstance(obj, Data)


def as_segments(x: Tensor, batch: Any = None, *, ptr: Optional[Tensor] = None,
                num_segments: Optional[int] = None, validate: bool = True,
                where: str = "readout") -> Segments:
    r"""Resolve the many ways of saying how rows are grouped into one :class:`Segments`.

    A ``batch`` or ``ptr`` tensor is resolved once and reused while it is alive and
    unmodified (see :mod:`graphpool.segments_cache`).

    Args:
        x: node tensor ``[*, N, F]``; only its node count and device are read.
        batch: ``None`` (all rows form one set), a ``[N]`` index tensor, a
            :class:`Segments`, or a PyG ``Batch``/``Data``.
        ptr: a CSR pointer, used when ``batch`` is ``None``.
        num_segments: number of sets; must agree with ``batch`` when that fixes it.
        validate: check index values (see :class:`Segments`).

    Example:
        >>> import torch
        >>> as_segments(torch.zeros(3, 2), torch.tensor([0, 0, 1]), num_segments=4)
        Segments(kind='csr', num_segments=4, num_nodes=3)
    """
    if isinstance(batch, Segments):
        seg = batch
    elif isinstance(batch, Tensor):
        if isinstance(x, Tensor) and batch.device != x.device:
            raise GraphpoolError(where, "batch", f"a tensor on {x.device} (the device of x)",
                                 f"one on {batch.device}", f"move it with .to({str(x.device)!r})")
        if ptr is not None:
            raise GraphpoolError(where, "ptr", "None when an index is given", "both",
                                 "pass either the index (batch) or ptr, not both")
        seg = CACHE.resolve(batch, ("index", num_segments, validate),
                            lambda: Segments.from_index(batch, num_segments, validate=validate))
    elif batch is None:
        if not isinstance(x, Tensor):
            raise GraphpoolError(where, "x", "a torch.Tensor [*, N, F]", describe(x),
                                 "pass node features as a tensor")
        nodes = x.size(-2) if x.dim() >= 2 else 0
        if ptr is not None:
            if isinstance(ptr, Tensor) and ptr.device != x.device:
                raise GraphpoolError(where, "ptr", f"a tensor on {x.device} (the device of x)",
                                     f"one on {ptr.device}", f"move it with .to({str(x.device)!r})")
            seg = CACHE.resolve(ptr, ("ptr", nodes, validate),
                                lambda: Segments.from_ptr(ptr, num_nodes=nodes, validate=validate))
        else:
            ptr = torch.tensor([0, nodes], device=x.device)
            seg = Segments.from_ptr(ptr, num_nodes=nodes, validate=False)
    elif _is_pyg_data(batch):
        seg = Segments.from_pyg(batch, validate=validate)
    else:
        raise GraphpoolError(where, "batch", "None, an index tensor, a Segments or a PyG "
                             "Batch/Data", describe(batch),
                             "pass the batch vector of your PyG batch, or a Segments")
    if num_segments is not None and num_segments != seg.num_segments:
        hint = ("leave num_graphs out: the grouping already fixes it"
                if not isinstance(batch, Tensor) else "pass a larger num_graphs")
        raise GraphpoolError(where, "num_graphs", f"{seg.num_segments} (the grouping's number "
                             "of sets)", num_segments, hint)
    return seg
