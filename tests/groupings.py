"""Every way of grouping the same sets, for tests that must agree across kernel paths."""
from __future__ import annotations

from typing import Iterator, List, Sequence, Tuple

import torch
from torch import Tensor

from graphpool import Segments


def padding_value(dtype: torch.dtype):
    """Garbage for padding rows: nan for floats, a huge value for integers."""
    return float("nan") if dtype.is_floating_point else torch.iinfo(dtype).max


def groupings(x: Tensor, counts: Sequence[int], seed: int = 0
              ) -> Iterator[Tuple[str, Tensor, Segments]]:
    """``x`` holds the rows of set 0, then set 1, ... (``counts[b]`` rows each).

    Yields ``(name, x_for_this_grouping, segments)``; every one describes the same sets,
    so every readout must give the same ``[B, F]`` result.
    """
    num_sets = len(counts)
    counts_t = torch.tensor(list(counts), dtype=torch.long)
    index = torch.repeat_interleave(torch.arange(num_sets), counts_t)
    ptr = torch.cat([torch.zeros(1, dtype=torch.long), counts_t.cumsum(0)])
    yield "index-sorted", x, Segments.from_index(index, num_sets)
    yield "ptr", x, Segments.from_ptr(ptr)
    perm = torch.randperm(x.size(-2), generator=torch.Generator().manual_seed(seed))
    yield "index-unsorted", x.index_select(-2, perm), Segments.from_index(index[perm], num_sets)
    n_max = max(counts, default=0)
    padded = torch.full((*x.shape[:-2], num_sets, n_max, x.size(-1)), padding_value(x.dtype),
                        dtype=x.dtype)
    mask = torch.arange(n_max).unsqueeze(0) < counts_t.unsqueeze(1)
    padded[..., mask, :] = x
    yield "mask", padded, Segments.from_mask(mask)
    if num_sets > 0 and len(set(counts)) == 1:
        yield "uniform", x, Segments.uniform(num_sets, counts[0])


def groups_from_counts(counts: Sequence[int]) -> List[List[int]]:
    groups, start = [], 0
    for c in counts:
        groups.append(list(range(start, start + c)))
        start += c
    return groups
