"""An independent reference: a plain Python loop over sets.

It shares no code with graphpool: it folds the rows of each set one at a time with
elementwise torch ops, in float64 (integers stay integers), and casts at the end.
"""
from __future__ import annotations

from typing import List, Sequence

import torch
from torch import Tensor

_FOLD = {"sum": torch.add, "mean": torch.add, "max": torch.maximum, "min": torch.minimum}


def naive_readout(x: Tensor, groups: Sequence[Sequence[int]], reduce: str,
                  fill_value: float = 0.0) -> Tensor:
    """``x``: [N, F]; ``groups[b]``: the row numbers of set b. Returns [B, F]."""
    work = x if not x.is_floating_point() else x.double()
    rows: List[Tensor] = []
    for members in groups:
        if len(members) == 0:
            rows.append(torch.full((x.size(1),), fill_value, dtype=work.dtype))
            continue
        acc = work[members[0]].clone()
        for v in members[1:]:
            acc = _FOLD[reduce](acc, work[v])
        if reduce == "mean":
            acc = acc / len(members)
        rows.append(acc)
    if not rows:
        return x.new_zeros(0, x.size(1))
    return torch.stack(rows).to(x.dtype)


def groups_of(index: Tensor, num_sets: int) -> List[List[int]]:
    """Row numbers of each set, from an index vector, by a Python loop."""
    groups: List[List[int]] = [[] for _ in range(num_sets)]
    for row, s in enumerate(index.tolist()):
        groups[s].append(row)
    return groups
