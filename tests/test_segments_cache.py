"""The Segments cache behind as_segments: reused only for the same, unmodified tensor."""
from __future__ import annotations

import gc

import pytest
import torch

import graphpool as gp
from graphpool import GraphpoolError
from graphpool.resolve import as_segments
from graphpool.segments_cache import CACHE, SegmentsCache

from .reference import naive_readout


def loop(x, batch, num_sets, reduce):
    groups = [[i for i, b in enumerate(batch.tolist()) if b == s] for s in range(num_sets)]
    return naive_readout(x, groups, reduce).to(x.dtype)


@pytest.fixture(autouse=True)
def empty_cache():
    CACHE.clear()
    yield
    CACHE.clear()


def test_the_same_tensor_resolves_once():
    x, batch = torch.randn(5, 2), torch.tensor([0, 0, 1, 2, 2])
    first = as_segments(x, batch, num_segments=3)
    second = as_segments(x, batch, num_segments=3)
    assert len(CACHE) == 1
    assert second is first  # an immutable value that owns its tensors
    assert second.index is not batch and torch.equal(second.index, batch)


def test_fresh_views_of_one_base_share_an_entry_and_see_writes():
    """PyG's message passing hands each layer a new ``edge_index[1]`` view."""
    x = torch.randn(6, 2)
    edge_index = torch.tensor([[0, 1, 2, 3, 4, 5], [2, 0, 2, 1, 0, 2]])
    first = as_segments(x, edge_index[1], num_segments=3)
    assert as_segments(x, edge_index[1], num_segments=3) is first
    assert as_segments(x, edge_index[0], num_segments=6) is not first  # another slice
    assert len(CACHE) == 2
    edge_index[1, 0] = 1  # through the base: the copy comparison sees it
    got = gp.readout(x, edge_index[1], "sum", num_graphs=3)
    torch.testing.assert_close(got, loop(x, edge_index[1], 3, "sum"))
    del edge_index
    gc.collect()
    assert len(CACHE) == 0  # entries leave with their base


def test_in_place_changes_are_seen():
    x, batch = torch.randn(4, 2), torch.tensor([0, 0, 1, 1])
    gp.readout(x, batch, "sum", num_graphs=2)
    batch[1:] = torch.tensor([1, 1, 1])  # bumps the version counter
    got = gp.readout(x, batch, "sum", num_graphs=2)
    torch.testing.assert_close(got, loop(x, batch, 2, "sum"))


@pytest.mark.parametrize("first, second", [
    (dict(num_graphs=2), dict(num_graphs=3)),
    (dict(validate=False), dict(validate=True)),
])
def test_arguments_are_part_of_the_key(first, second):
    x, batch = torch.randn(3, 1), torch.tensor([0, 1, 1])
    a = gp.readout(x, batch, "sum", **first)
    b = gp.readout(x, batch, "sum", **second)
    assert a.shape[0] == first.get("num_graphs", 2) and b.shape[0] == second.get("num_graphs", 2)


def test_validation_still_runs_for_a_bad_index_after_an_unvalidated_call():
    x, batch = torch.randn(3, 1), torch.tensor([0, 1, 5])
    gp.readout(x, batch, "sum", num_graphs=6, validate=False)
    with pytest.raises(GraphpoolError, match="num_graphs|num_segments"):
        gp.readout(x, batch, "sum", num_graphs=2)


def test_entries_leave_with_their_tensor_and_never_hold_it():
    x, batch = torch.randn(3, 1), torch.tensor([0, 1, 1])
    gp.readout(x, batch, "sum")
    assert len(CACHE) == 1
    del batch
    gc.collect()
    assert len(CACHE) == 0


def test_ptr_and_inference_tensors():
    x, ptr = torch.randn(4, 2), torch.tensor([0, 1, 4])
    torch.testing.assert_close(gp.readout(x, ptr=ptr), gp.readout(x, ptr=ptr))
    assert len(CACHE) == 1
    with torch.inference_mode():
        batch = torch.tensor([0, 0, 1, 1])  # no version counter: never cached
        out = gp.readout(x, batch, "mean")
    torch.testing.assert_close(out, loop(x, torch.tensor([0, 0, 1, 1]), 2, "mean"))
    assert len(CACHE) == 1


@pytest.mark.parametrize("backend", ["auto", "native", "compiled"])
@pytest.mark.parametrize("reduce", ["sum", "max", "prod", "var", "logsumexp", "softmax",
                                    "powermean", "gem"])
def test_a_grouping_first_used_in_inference_mode_serves_training(backend, reduce):
    """An evaluation pass under inference_mode first, then training on the same batch: the
    grouping (cached, or a Segments whose tensors were first read in that pass) holds no
    inference tensors, which a backward could not save."""
    batch = torch.tensor([2, 0, 1, 0, 2, 1])
    x = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)

    def gradients():
        y = gp.readout(x, batch, reduce)
        g, = torch.autograd.grad((y * y).sum(), x, create_graph=True)
        return g, torch.autograd.grad((g * g).sum(), x)[0]

    with gp.use_backend(backend):
        expected = gradients()
        CACHE.clear()
        with torch.inference_mode():
            gp.readout(x, batch, reduce)
            seg = gp.Segments.from_index(batch)
        got = gradients()
        for a, b in zip(got, expected):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        y = gp.segment_reduce(x, seg, "max")  # a Segments built in that pass
        torch.autograd.grad(y.sum(), x, create_graph=True)
        with torch.inference_mode():
            unread = gp.Segments.from_index(batch)
            unread_order = unread._order  # the lazily built tensors, read in the pass
        assert not any(t.is_inference() for t in (*unread_order, unread._counts))


def test_the_oldest_entry_leaves_first():
    cache = SegmentsCache(maxsize=2)
    tensors = [torch.tensor([0, i]) for i in range(3)]
    for t in tensors:
        cache.resolve(t, (), lambda t=t: gp.Segments.from_index(t))
    assert len(cache) == 2
    assert (id(tensors[0]), ()) not in cache._entries
