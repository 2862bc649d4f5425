"""Property tests: what must hold for every input, not just for one example."""
from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from graphpool import Segments, readout, segment_reduce

from .groupings import groupings

OPS = st.sampled_from(["sum", "mean", "max", "min"])
settings.register_profile("graphpool", max_examples=60, deadline=None)
settings.load_profile("graphpool")


@st.composite
def sets(draw, max_sets=6, max_size=7, features=3):
    """Rows per set (empty sets allowed) and float64 rows with deliberate ties."""
    counts = draw(st.lists(st.integers(0, max_size), min_size=0, max_size=max_sets))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(sum(counts), features, generator=g, dtype=torch.float64)
    if draw(st.booleans()):
        x = x.round()  # many ties
    return counts, x, seed


def _index(counts):
    return torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts, dtype=torch.long))


def _close(a, b, op):
    if op in ("max", "min"):
        assert torch.equal(a, b)
    else:
        torch.testing.assert_close(a, b)


@given(sets(), OPS, st.data())
def test_permuting_nodes_never_changes_the_readout(data, op, draw):
    counts, x, _ = data
    index = _index(counts)
    perm = torch.tensor(draw.draw(st.permutations(range(x.size(0)))), dtype=torch.long)
    out = readout(x, index, op, num_graphs=len(counts))
    _close(readout(x[perm], index[perm], op, num_graphs=len(counts)), out, op)


@given(sets(), OPS, st.data())
def test_relabeling_sets_permutes_the_output(data, op, draw):
    counts, x, _ = data
    index = _index(counts)
    relabel = torch.tensor(draw.draw(st.permutations(range(len(counts)))), dtype=torch.long)
    out = readout(x, index, op, num_graphs=len(counts))
    relabeled = readout(x, relabel[index] if len(counts) else index, op,
                        num_graphs=len(counts))
    _close(relabeled[relabel] if len(counts) else relabeled, out, op)


@given(sets(), sets(), OPS)
def test_a_sets_readout_ignores_the_other_sets(a, b, op):
    (counts_a, x_a, _), (counts_b, x_b, _) = a, b
    alone = readout(x_a, _index(counts_a), op, num_graphs=len(counts_a))
    both = readout(torch.cat([x_a, x_b]), _index(counts_a + counts_b), op,
                   num_graphs=len(counts_a) + len(counts_b))
    _close(both[: len(counts_a)], alone, op)


@given(sets(), OPS)
def test_index_ptr_uniform_and_mask_groupings_agree(data, op):
    counts, x, seed = data
    results = {name: segment_reduce(x_in, seg, op)
               for name, x_in, seg in groupings(x, counts, seed=seed)}
    first = results.pop("index-sorted")
    for out in results.values():
        _close(out, first, op)


@given(sets())
def test_sum_is_mean_times_count(data):
    counts, x, _ = data
    seg = Segments.from_index(_index(counts), len(counts))
    torch.testing.assert_close(
        segment_reduce(x, seg, "sum"),
        segment_reduce(x, seg, "mean") * seg.counts.unsqueeze(-1).to(x.dtype))


@given(sets(), OPS, st.integers(0, 5))
def test_padding_with_masked_nodes_changes_nothing(data, op, extra):
    counts, x, seed = data
    _, padded, seg = [g for g in groupings(x, counts, seed=seed) if g[0] == "mask"][0]
    wider = torch.cat([padded, torch.full((*padded.shape[:-2], extra, x.size(-1)),
                                          float("nan"), dtype=x.dtype)], dim=-2)
    mask = torch.cat([seg.mask, torch.zeros(len(counts), extra, dtype=torch.bool)], 1)
    _close(segment_reduce(wider, Segments.from_mask(mask), op),
           segment_reduce(padded, seg, op), op)
