r"""``segment_broadcast``: each set's row copied back to the rows of that set.

It is the adjoint of a sum readout, and what composite readouts use to centre or weight
nodes by a per-set statistic (the variance subtracts the broadcast mean, a softmax the
broadcast maximum).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..errors import GraphpoolError, describe
from ..segments import Kind, Segments
from . import compiled
from .backends import get_backend

__all__ = ["segment_broadcast"]


def segment_broadcast(values: Tensor, segments: Segments) -> Tensor:
    r"""Copy row ``b`` of ``values`` (``[*, B, F]``) to every row of set ``b``:
    :math:`y_v = \mathrm{values}_{b(v)}`.

    The result has the layout of ``x``: ``[*, N, F]`` (``[*, B, Nmax, F]`` for a mask,
    padding rows included; a view, not a copy, for uniform and mask groupings).

    Example:
        >>> import torch
        >>> from graphpool import Segments, segment_broadcast
        >>> seg = Segments.from_index(torch.tensor([0, 1, 1]))
        >>> segment_broadcast(torch.tensor([[1.], [2.]]), seg).flatten().tolist()
        [1.0, 2.0, 2.0]
    """
    if type(segments) is not Segments:
        raise GraphpoolError("segment_broadcast", "segments", "a graphpool.Segments",
                             describe(segments), "build one with Segments.from_index(batch) "
                             "or similar, the grouping the values were read out over")
    B = segments.num_segments
    if not isinstance(values, Tensor) or values.dim() < 2 or values.size(-2) != B:
        raise GraphpoolError("segment_broadcast", "values",
                             f"a tensor [*, {B}, F]: one row per set of the grouping on dim -2",
                             describe(values), "pass a readout's output for this grouping")
    if values.device != segments.device:
        raise GraphpoolError("segment_broadcast", "segments", f"a grouping on {values.device} "
                             "(the device of values)", f"one on {segments.device}",
                             f"move it with .to({str(values.device)!r})")
    if segments.kind == Kind.MASK:
        return values.unsqueeze(-2).expand(*values.shape[:-1], segments.num_nodes,
                                           values.size(-1))
    if segments.kind == Kind.UNIFORM:
        expanded = values.unsqueeze(-2).expand(*values.shape[:-1], segments.size,
                                               values.size(-1))
        # (reshape, not flatten: the legacy vmap of is_grads_batched batches only reshape)
        return expanded.reshape(*values.shape[:-2], segments.num_nodes, values.size(-1))
    if segments.kind == Kind.CSR:
        segments._checked_ptr("segment_broadcast")
        if (not (values.requires_grad and torch.is_grad_enabled()) and compiled.copies(values)
                and get_backend() in ("auto", "compiled")):
            return compiled.broadcast(values, segments, huge=False)  # the copy kernel
    return values.index_select(-2, segments._index)
