r"""Every grouping as a padded batch: ``to_dense`` and the readouts that sort or attend.

:func:`to_dense` turns ``x`` over any :class:`~graphpool.Segments` into
``[*, B, Nmax, F]`` and a ``[B, Nmax]`` mask (PyG's ``to_dense_batch``, for every
grouping): a view for uniform groupings, ``x`` itself for a mask grouping, one scatter
for index and ptr groupings. ``Nmax`` is the largest set (one host sync on a GPU), or
``max_num_nodes`` when given — a set larger than that is an error, never truncated (under
:func:`torch.compile`, which cannot read the sizes while tracing, a runtime assertion in the
graph).
"""
from __future__ import annotations

from numbers import Number
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from ..errors import GraphpoolError
from ..kernels import export, segment_reduce
from ..kernels.checks import check_fill_value
from ..kernels.dense import may_be_empty
from ..segments import Kind, Segments, check_count, is_fake

__all__ = ["to_dense", "segment_quantile", "segment_sort_k", "INTERPOLATIONS"]

#: PyG's (and :func:`torch.quantile`'s) interpolation modes.
INTERPOLATIONS = ("linear", "lower", "higher", "nearest", "midpoint")


def to_dense(x: Tensor, segments: Segments, fill_value: Number = 0.0,
             max_num_nodes: Optional[int] = None, *,
             where: str = "to_dense") -> Tuple[Tensor, Tensor]:
    r"""``x`` as a padded batch ``[*, B, Nmax, F]`` and its ``[B, Nmax]`` bool mask.

    Rows keep their order inside each set; padding rows hold ``fill_value`` (for a mask
    grouping too: its padding rows are replaced, never read).

    Example:
        >>> import torch
        >>> from graphpool import Segments
        >>> dense, mask = to_dense(torch.tensor([[1.], [2.], [3.]]),
        ...                        Segments.from_index(torch.tensor([1, 0, 1])))
        >>> dense.squeeze(-1).tolist(), mask.tolist()
        ([[2.0, 0.0], [1.0, 3.0]], [[True, False], [True, True]])
    """
    segment_reduce(x[..., :0], segments, "sum", _where=where)  # the usual checks, no work
    fill_value = check_fill_value(where, fill_value, x.dtype)
    if segments.kind == Kind.MASK:  # already padded: only its padding rows change
        # the mask a copy: a write into what the caller got must not change the grouping
        dense, mask = torch.where(segments._m.unsqueeze(-1), x, fill_value), segments._m.clone()
        if max_num_nodes is None:
            return dense, mask
        size = check_count(where, "max_num_nodes", max_num_nodes)
        if size < segments.num_nodes:
            raise GraphpoolError(where, "max_num_nodes", f"at least the padded size of the "
                                 f"mask grouping ({segments.num_nodes})", size,
                                 "raise max_num_nodes or leave it out for a padded batch")
        extra = size - segments.num_nodes  # more padding rows, as an index grouping gets
        dense = torch.cat([dense, dense.new_full((*dense.shape[:-2], extra, dense.size(-1)),
                                                 fill_value)], -2)
        return dense, torch.cat([mask, mask.new_zeros(mask.size(0), extra)], -1)
    counts = segments._counts
    num = segments.num_segments
    if max_num_nodes is not None:
        size = check_count(where, "max_num_nodes", max_num_nodes)
        if (torch.compiler.is_compiling() or is_fake(counts)) and num:
            # no host read while tracing, but never a silent overlap: a larger set's extra
            # rows would land in the next set's slots. A runtime assertion in the graph.
            torch._assert_async(counts.max() <= size,
                                f"{where}: invalid 'max_num_nodes': a set is larger than "
                                f"max_num_nodes={size}; raise it or leave it out")
        elif num and int(counts.max()) > size:
            raise GraphpoolError(where, "max_num_nodes", "at least the size of the largest set "
                                 f"({int(counts.max())} rows)", size,
                                 "raise max_num_nodes or leave it out (then it is the "
                                 "largest set)")
    elif segments.kind == Kind.UNIFORM:
        size = segments.size
    elif export.exporting():  # a symbolic size, read when the exported program runs
        size = export.largest_set(counts)
    elif is_fake(counts):  # make_fx(tracing_mode="fake"), FakeTensorMode: no values
        raise GraphpoolError(where, "max_num_nodes", "an int for a grouping without values "
                             "(a FakeTensor)", "None", "pass max_num_nodes=<the largest set>")
    else:
        size = int(counts.max()) if num else 0
    positions = torch.arange(size, device=x.device)
    mask = positions < counts.unsqueeze(-1)
    if segments.kind == Kind.UNIFORM and size == segments.size:
        return x.unflatten(-2, (num, size)), mask
    out = x.new_full((*x.shape[:-2], num * size, x.size(-1)), fill_value)
    if segments.kind == Kind.UNIFORM:
        rows = torch.arange(segments.num_nodes, device=x.device)
        slot = rows // segments.size * size + rows % segments.size
    else:
        index = segments._index
        ptr = segments._ptr if segments.kind == Kind.CSR else None
        if ptr is None:  # unsorted: the rank of each row inside its set, in row order
            order = export.stable_argsort(index)
            start = torch.cumsum(counts, 0) - counts
            rank = torch.empty_like(index)
            rank[order] = torch.arange(index.numel(), device=x.device) - start[index[order]]
        else:
            rank = torch.arange(index.numel(), device=x.device) - ptr[:-1][index]
        slot = index * size + rank
        if max_num_nodes is not None and export.exporting():  # a larger set: out of bounds
            slot = torch.where(rank < size, slot, num * size)  # (an error when run), not
            # the next set's rows: the graph's assertion does not reach an ONNX model
    out = out.index_copy(-2, slot, x)  # also with no rows: the result stays tied to x
    return out.unflatten(-2, (num, size)), mask


def _check_q(where: str, q: Union[float, Sequence[float]]) -> Tuple[list, bool]:
    many = isinstance(q, (list, tuple))
    values = list(q) if many else [q]
    if not values or any(isinstance(v, bool) or not isinstance(v, (int, float))
                         or not 0 <= v <= 1 for v in values):
        raise GraphpoolError(where, "q", "a number in [0, 1] or a non-empty list of them",
                             repr(q), "pass e.g. q=0.5 or q=[0.25, 0.5, 0.75]")
    return [float(v) for v in values], many


def segment_quantile(x: Tensor, segments: Segments, q: Union[float, Sequence[float]] = 0.5,
                     interpolation: str = "linear", *, fill_value: Number = 0.0,
                     max_num_nodes: Optional[int] = None, _where: Optional[str] = None
                     ) -> Tensor:
    r"""The ``q``-quantile of each set, feature by feature (PyG ``QuantileAggregation``).

    With the set's values sorted, :math:`x_{(0)} \le \dots \le x_{(n_b - 1)}`, and
    :math:`h = q (n_b - 1)`, ``"linear"`` gives :math:`x_{(\lfloor h\rfloor)} + (h -
    \lfloor h\rfloor)(x_{(\lceil h\rceil)} - x_{(\lfloor h\rfloor)})`; ``"lower"``,
    ``"higher"``, ``"nearest"`` and ``"midpoint"`` pick :math:`\lfloor h\rfloor`,
    :math:`\lceil h\rceil`, the nearest (ties to even, as :func:`torch.round`) or the
    mean of both. A list of ``q`` concatenates the quantiles along the features
    (``[*, B, len(q) * F]``, PyG's layout). ``nan`` sorts last, as in PyG. Infinite values
    are kept where they are picked (the ``"linear"`` maximum of :math:`\{1, \infty\}` is
    :math:`\infty`, where :func:`torch.quantile` and PyG give ``nan``). Gradients flow
    to the picked rows.

    Example:
        >>> import torch
        >>> from graphpool import Segments
        >>> seg = Segments.from_index(torch.tensor([0, 0, 0, 1]))
        >>> x = torch.tensor([[3.], [1.], [2.], [5.]])
        >>> segment_quantile(x, seg, 0.5).flatten().tolist()
        [2.0, 5.0]
        >>> segment_quantile(x, seg, [0.0, 1.0]).tolist()
        [[1.0, 3.0], [5.0, 5.0]]
    """
    where = _where or "segment_quantile"
    qs, _ = _check_q(where, q)
    if interpolation not in INTERPOLATIONS:
        raise GraphpoolError(where, "interpolation", f"one of {INTERPOLATIONS}",
                             repr(interpolation), "pass e.g. interpolation='linear'")
    if not x.is_floating_point():
        raise GraphpoolError(where, "x", "a floating point tensor", f"a {x.dtype} tensor",
                             "convert it with x.float()")
    dense, mask = to_dense(x, segments, max_num_nodes=max_num_nodes, where=where)
    dense = torch.where(mask.unsqueeze(-1), dense, float("nan"))  # padding sorts last
    ordered = torch.sort(dense, dim=-2).values                   # [*, B, Nmax, F]
    last = (segments._counts - 1).clamp(min=0).to(torch.float64)  # [B]
    outs = []
    for value in qs:
        h = value * last
        if interpolation in ("lower", "linear", "midpoint"):
            low = h.floor()
        elif interpolation == "higher":
            low = h.ceil()
        else:
            low = torch.round(h)
        picked_low = _pick(ordered, low)
        if interpolation in ("lower", "higher", "nearest"):
            outs.append(picked_low)
            continue
        picked_high = _pick(ordered, h.ceil())
        if interpolation == "midpoint":
            outs.append(0.5 * picked_low + 0.5 * picked_high)
        else:
            frac = (h - low).to(ordered.dtype).unsqueeze(-1)
            diff = picked_high - picked_low
            # An exact rank (frac 0: one row) is that row; an infinite end (or a difference
            # beyond the dtype) interpolates as a weighted sum, so it is that end: the
            # usual form gives inf + 0 * (inf - inf) = nan for the maximum of {1, inf}.
            outs.append(torch.where(frac == 0, picked_low, torch.where(
                torch.isfinite(diff), picked_low + diff * frac,
                picked_low * (1 - frac) + picked_high * frac)))
    out = torch.cat(outs, dim=-1) if len(outs) > 1 else outs[0]
    fill_value = check_fill_value(where, fill_value, x.dtype)
    return out.masked_fill((segments._counts == 0).unsqueeze(-1), fill_value)


def _pick(ordered: Tensor, position: Tensor) -> Tensor:
    """Row ``position[b]`` of set ``b`` of ``ordered`` (``[*, B, Nmax, F]`` -> ``[*, B, F]``)."""
    if torch.compiler.is_exporting() and may_be_empty(ordered.size(-2)):  # 0 rows when run:
        ordered = torch.cat([ordered, ordered.new_zeros(  # one more row, picked by empty
            (*ordered.shape[:-2], 1, ordered.size(-1)))], -2)  # sets only (then filled)
    elif ordered.size(-2) == 0:
        return ordered.new_zeros((*ordered.shape[:-2], ordered.size(-1)))
    at = position.long().view(-1, 1, 1).expand(-1, 1, ordered.size(-1))
    at = at.expand(*ordered.shape[:-3], *at.shape)
    return ordered.gather(-2, at).squeeze(-2)


def segment_sort_k(x: Tensor, segments: Segments, k: int, *,
                   max_num_nodes: Optional[int] = None) -> Tensor:
    r"""SortPooling (Zhang et al. 2018; PyG ``SortAggregation``): the ``k`` rows of each set
    with the largest last feature, in descending order, concatenated: ``[*, B, k * F]``.
    Sets with fewer than ``k`` rows are padded with zero rows.

    Rows whose last features tie are ordered by the features before it (lexicographically,
    last feature most significant), so the result does not depend on the order of the
    nodes; PyG keeps tied rows in an order that does. DGL's ``SortPooling`` differs: it
    first sorts every node's own features, then the nodes by the largest one.

    Example:
        >>> import torch
        >>> from graphpool import Segments
        >>> x = torch.tensor([[1., 5.], [2., 7.], [3., 6.]])
        >>> segment_sort_k(x, Segments.from_index(torch.tensor([0, 0, 0])), 2).tolist()
        [[2.0, 7.0, 3.0, 6.0]]
    """
    where = "segment_sort_k"
    k = check_count(where, "k", k, minimum=1)
    dense, mask = to_dense(x, segments, max_num_nodes=max_num_nodes, where=where)
    nmax, features = dense.size(-2), dense.size(-1)
    order = torch.arange(nmax, device=x.device).expand(*dense.shape[:-1])
    keys = dense.detach()
    for c in range(features):  # stable sorts, least significant key first
        key = keys[..., c].gather(-1, order)
        order = order.gather(-1, export.stable_argsort(key, descending=True))
    valid = mask.expand(*dense.shape[:-1]).gather(-1, order)
    last = export.stable_argsort(valid.to(torch.uint8), descending=True)  # padding rows last
    order = order.gather(-1, last)
    rows = dense.gather(-2, order.unsqueeze(-1).expand(*order.shape, features))
    keep = mask.expand(*dense.shape[:-1]).gather(-1, order).unsqueeze(-1)
    rows = torch.where(keep, rows, 0)
    if export.exporting():  # nmax is read when the program runs: pad k rows, keep k
        rows = torch.cat([rows, rows.new_zeros((*rows.shape[:-2], k, features))], -2)
        rows = rows[..., :k, :]
    elif nmax >= k:
        rows = rows[..., :k, :]
    else:
        rows = torch.cat([rows, rows.new_zeros((*rows.shape[:-2], k - nmax, features))], -2)
    return rows.flatten(-2)
