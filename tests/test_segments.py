"""Segments: constructors, counts, sortedness, index <-> ptr, PyG objects."""
from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch, Data

from graphpool import GraphpoolError, Segments, as_segments, segment_broadcast, segment_reduce
from graphpool import _native

INDEX_CASES = [
    # index, num_segments, kind, counts, ptr
    ([0, 0, 1, 2, 2], None, "csr", [2, 1, 2], [0, 2, 3, 5]),
    ([0, 0, 1], 4, "csr", [2, 1, 0, 0], [0, 2, 3, 3, 3]),
    ([1, 1, 3], None, "csr", [0, 2, 0, 1], [0, 0, 2, 2, 3]),
    ([2, 0, 1, 0], None, "scatter", [2, 1, 1], None),
    ([], 3, "csr", [0, 0, 0], [0, 0, 0, 0]),
    ([], None, "csr", [], [0]),
]


@pytest.mark.parametrize("index,num,kind,counts,ptr", INDEX_CASES)
def test_from_index(index, num, kind, counts, ptr):
    seg = Segments.from_index(torch.tensor(index, dtype=torch.long), num)
    assert (seg.kind, seg.counts.tolist(), seg.num_nodes) == (kind, counts, len(index))
    assert seg.num_segments == len(counts) == len(seg)
    assert seg.has_empty in (None, 0 in counts)  # when known, it is right
    if ptr is not None:
        assert seg.ptr.tolist() == ptr
        assert Segments.from_ptr(torch.tensor(ptr)).index.tolist() == index


FAST_CASES = [  # index, num_segments: what from_index's common case sees
    ([0, 0, 1, 2, 2], 3), ([0, 0, 1], 5), ([1, 1, 3], 4), ([3], 4), ([2, 0, 1, 0], 3),
    ([0, 0, 1, 1], 2), ([0, 1, 5], 3), ([-1, 0, 1], 2), ([0, 2, 1], 2), ([0, 0], 0),
]


def _seg_state(seg):
    return (seg.kind, seg.num_segments, seg.num_nodes, seg.has_empty, seg.checked,
            seg.counts.tolist(), seg.ptr.tolist() if seg.kind == "csr" else None,
            seg.index.tolist())


@pytest.mark.parametrize("validate", [True, False])
@pytest.mark.parametrize("index,num", FAST_CASES)
def test_common_case_of_from_index_builds_what_the_general_path_builds(index, num, validate):
    """A CPU int64 index with an int count takes a shorter path; a count given as a 0-d
    tensor takes the general one. Both build the same grouping, or raise the same error."""
    t = torch.tensor(index, dtype=torch.long)
    outcomes = []
    for count in (num, torch.tensor(num)):
        try:
            outcomes.append(_seg_state(Segments.from_index(t, count, validate=validate)))
        except GraphpoolError as err:
            outcomes.append(("error", str(err)))
    assert outcomes[0] == outcomes[1]
    bad = min(index) < 0 or max(index) >= num
    assert (outcomes[0][0] == "error") == bad
    assert t.tolist() == index  # the user's tensor is read, never written


def test_unvalidated_index_order(monkeypatch):
    index = torch.tensor([0, 0, 1])
    # A CPU index is always read (one cheap pass, no device sync), so its order is known,
    # with or without the compiled helpers.
    assert Segments.from_index(index, 2, validate=False).kind == "csr"
    assert Segments.from_index(index, 2, sorted=True, validate=False).kind == "csr"
    monkeypatch.setenv("GRAPHPOOL_COMPILED", "0")
    _native.library.cache_clear()
    try:
        assert Segments.from_index(index, 2, validate=False).kind == "csr"
        assert Segments.from_index(torch.tensor([1, 0]), 2, validate=False).kind == "scatter"
    finally:
        _native.library.cache_clear()


@pytest.mark.parametrize("bad, match", [([0, 0, 5], "num_segments.*>= 6"),
                                        ([-1, 0, 1], "'index'.*non-negative")])
def test_unvalidated_bad_cpu_index_is_still_caught(bad, match):
    # validate=False skips no check of a CPU index: its one pass finds the range anyway
    with pytest.raises(GraphpoolError, match=match):
        Segments.from_index(torch.tensor(bad), 2, sorted=True, validate=False)


def test_unvalidated_bad_ptr_is_caught_before_any_kernel_reads_it(backend):
    x = torch.randn(3, 2)
    seg = Segments.from_ptr(torch.tensor([0, 1000000]), num_nodes=3, validate=False)
    with pytest.raises(GraphpoolError, match=r"'(ptr|segments)'"):
        segment_reduce(x, seg, "sum")


def test_from_ptr_uniform_mask():
    seg = Segments.from_ptr(torch.tensor([0, 3, 3, 5]))
    assert (seg.kind, seg.num_nodes, seg.counts.tolist()) == ("csr", 5, [3, 0, 2])
    assert seg.index.tolist() == [0, 0, 0, 2, 2]
    uni = Segments.uniform(3, 2)
    assert (uni.kind, uni.num_nodes, uni.ptr.tolist()) == ("uniform", 6, [0, 2, 4, 6])
    assert uni.index.tolist() == [0, 0, 1, 1, 2, 2]
    mask = torch.tensor([[True, False, True], [False, False, False], [True, True, True]])
    m = Segments.from_mask(mask)
    assert (m.kind, m.num_nodes, m.counts.tolist()) == ("mask", 3, [2, 0, 3])
    assert m.index.tolist() == [0, 0, 2, 2, 2]
    assert m.ptr.tolist() == [0, 2, 2, 5]


def test_from_pyg_batch_and_data():
    graphs = [Data(x=torch.ones(n, 2), edge_index=torch.empty(2, 0, dtype=torch.long))
              for n in (3, 1, 2)]
    batch = Batch.from_data_list(graphs)
    seg = Segments.from_pyg(batch)
    assert (seg.kind, seg.counts.tolist()) == ("csr", [3, 1, 2])
    single = Segments.from_pyg(graphs[0])
    assert (single.num_segments, single.counts.tolist()) == (1, [3])
    with_batch = Data(x=torch.ones(3, 1), batch=torch.tensor([0, 1, 1]))
    assert Segments.from_pyg(with_batch).counts.tolist() == [1, 2]


def test_broadcast_is_the_adjoint_of_sum():
    seg = Segments.from_index(torch.tensor([2, 0, 2, 1]))
    values = torch.tensor([[1.0], [2.0], [3.0]])
    assert segment_broadcast(values, seg).flatten().tolist() == [3.0, 1.0, 3.0, 2.0]
    assert segment_broadcast(values[:2], Segments.uniform(2, 2)).flatten().tolist() == [1, 1, 2, 2]
    mask = Segments.from_mask(torch.tensor([[True, False], [True, True]]))
    assert segment_broadcast(values[:2], mask).shape == (2, 2, 1)


# What the no-gradient copy kernel must not lose: every kind of values it may be handed.
BROADCAST_VALUES = {
    "plain": lambda v: v,
    "strided": lambda v: v.t().contiguous().t(),
    "conj-bit": lambda v: torch.complex(v, -v).conj(),
    "neg-bit": lambda v: torch._neg_view(v),
    "float16": lambda v: v.half(),
    "int64": lambda v: (v * 10).long(),
    "leading-dim": lambda v: torch.stack([v, 2 * v]),
}


@pytest.mark.parametrize("name", sorted(BROADCAST_VALUES))
@pytest.mark.parametrize("make", [lambda: Segments.from_ptr(torch.tensor([0, 2, 2, 5])),
                                  lambda: Segments.from_index(torch.tensor([2, 0, 0, 2, 2]))],
                         ids=["csr", "unsorted"])
def test_broadcast_equals_gather_for_every_value_kind(name, make):
    seg = make()
    values = BROADCAST_VALUES[name](torch.randn(3, 4, generator=torch.Generator().manual_seed(0)))
    expected = values.resolve_conj().resolve_neg().index_select(-2, seg.index)
    out = segment_broadcast(values, seg)
    assert out.dtype == values.dtype and torch.equal(out.resolve_conj().resolve_neg(), expected)


def test_broadcast_keeps_forward_mode_tangents():
    import torch.autograd.forward_ad as fwAD
    seg = Segments.from_ptr(torch.tensor([0, 2, 5]))
    values, tangent = torch.randn(2, 3), torch.randn(2, 3)
    with fwAD.dual_level():
        out = fwAD.unpack_dual(segment_broadcast(fwAD.make_dual(values, tangent), seg))
    assert out.tangent is not None and torch.equal(out.tangent, tangent[seg.index])


@pytest.mark.parametrize("values", [torch.ones(3, 2), torch.ones(2), torch.ones(2, 1, 2), [1.0, 2.0]],
                         ids=["rows", "1d", "rows-dim-2", "list"])
@pytest.mark.parametrize("seg", [Segments.from_ptr(torch.tensor([0, 1, 3])),
                                 Segments.from_index(torch.tensor([1, 0, 1])),
                                 Segments.uniform(2, 2),
                                 Segments.from_mask(torch.tensor([[True, False], [True, True]]))],
                         ids=["csr", "unsorted", "uniform", "mask"])
def test_broadcast_names_values_of_the_wrong_shape(values, seg):
    with pytest.raises(GraphpoolError, match=r"^segment_broadcast: invalid 'values'.*\[\*, 2, F\]"):
        segment_broadcast(values, seg)


@pytest.mark.parametrize("segments", [torch.tensor([0, 1, 1]), None, [0, 1, 1]],
                         ids=["batch-vector", "none", "list"])
def test_broadcast_names_a_grouping_that_is_not_segments(segments):
    with pytest.raises(GraphpoolError, match=r"^segment_broadcast: invalid 'segments': "
                                             r"expected a graphpool.Segments.*from_index"):
        segment_broadcast(torch.ones(2, 1), segments)


def test_broadcast_names_a_grouping_on_another_device():
    seg = Segments.from_index(torch.tensor([0, 1, 1]))  # on the CPU; values elsewhere
    with pytest.raises(GraphpoolError, match=r"^segment_broadcast: invalid 'segments': "
                                             r"expected a grouping on meta.*one on cpu"):
        segment_broadcast(torch.ones(2, 1, device="meta"), seg)


def test_to_device_and_repr():
    seg = Segments.from_index(torch.tensor([0, 1, 1])).to("cpu")
    assert seg.counts.tolist() == [1, 2]
    assert repr(seg) == "Segments(kind='csr', num_segments=2, num_nodes=3)"
    assert repr(Segments.uniform(2, 5)) == "Segments(kind='uniform', num_segments=2, num_nodes=10, size=5)"


def test_as_segments_resolves_everything():
    x = torch.zeros(4, 2)
    assert as_segments(x).counts.tolist() == [4]
    assert as_segments(x, ptr=torch.tensor([0, 1, 4])).counts.tolist() == [1, 3]
    seg = Segments.uniform(2, 2)
    assert as_segments(x, seg) is seg
    assert as_segments(x, torch.tensor([0, 0, 1, 1]), num_segments=3).num_segments == 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_segments_need_no_host_sync_when_num_segments_is_given():
    index = torch.tensor([0, 0, 1], device="cuda")
    torch.cuda.set_sync_debug_mode("error")
    try:
        seg = Segments.from_index(index, 3, validate=False)
        seg.counts.sum()
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.skipif(_native.library() is None, reason="the compiled helpers cannot be built")
def test_index_counts_helper_is_the_histogram_and_writes_nothing_outside_counts():
    g = torch.Generator().manual_seed(2)
    index = torch.randint(0, 50, (2000,), generator=g)
    counts = torch.empty(60, dtype=torch.int64)
    assert _native.index_counts(index, counts)
    assert torch.equal(counts, torch.bincount(index, minlength=60))
    assert torch.equal(Segments.from_index(index, 60).counts, counts)  # the unsorted path
    for bad in (torch.tensor([0, 5, 1]), torch.tensor([0, -1, 1])):
        guard = torch.full((7,), -7, dtype=torch.int64)
        assert not _native.index_counts(bad, guard[1:6])  # ids in [0, 5) only
        assert guard[0] == -7 and guard[6] == -7


@pytest.mark.parametrize("example,other", [([2, 0, 1, 0, 2, 2], [1, 1, 0, 2, 0, 1]),
                                           ([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 1, 2]),
                                           ([0, 0, 1, 1, 2, 2], [2, 0, 1, 0, 2, 1])],
                         ids=["unsorted", "sorted", "sorted-then-unsorted"])
@pytest.mark.parametrize("pre_dispatch", [False, True], ids=["dispatch", "pre-dispatch"])
@pytest.mark.parametrize("mode", ["real", "fake", "symbolic"])
def test_groupings_built_under_make_fx_replay_with_other_indices(example, other, pre_dispatch,
                                                                  mode):
    """Under a dispatch mode the counts and pointer come from torch ops the mode records
    (the C helpers fill buffers that a recorded graph would keep empty), and the order of
    the example is not recorded as the order of every input (as under torch.jit.trace).
    A fake or symbolic trace has no index values to read: none are checked or copied."""
    from torch.fx.experimental.proxy_tensor import make_fx

    def build(x, index):
        seg = Segments.from_index(index, num_segments=3)
        return segment_reduce(x, seg, "mean"), seg.counts

    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(0))
    graph = make_fx(build, tracing_mode=mode, pre_dispatch=pre_dispatch)(
        x, torch.tensor(example))
    for index in (example, other):
        got, want = graph(x, torch.tensor(index)), build(x, torch.tensor(index))
        assert torch.equal(got[1], want[1]) and torch.equal(got[1], torch.bincount(torch.tensor(index), minlength=3))
        torch.testing.assert_close(got[0], want[0])


@pytest.mark.parametrize("pre_dispatch", [False, True], ids=["dispatch", "pre-dispatch"])
@pytest.mark.parametrize("mode", ["real", "fake", "symbolic"])
def test_make_fx_needs_the_number_of_sets_and_replays_any_ptr(pre_dispatch, mode):
    """make_fx records no data-dependent size: an index grouping needs num_graphs (else
    the example's would be replayed), and a ptr grouping replays other pointers."""
    from torch.fx.experimental.proxy_tensor import make_fx
    import graphpool as gp

    x = torch.arange(6.0).view(6, 1)
    with pytest.raises(gp.GraphpoolError, match=r"^readout: invalid 'num_graphs': expected "
                                                r"an int while torch.jit.trace or make_fx"):
        make_fx(lambda t, b: gp.readout(t, b, "sum"), tracing_mode=mode,
                pre_dispatch=pre_dispatch)(x, torch.tensor([0, 0, 1, 1, 2, 2]))
    graph = make_fx(lambda t, p: gp.readout(t, ptr=p, reduce="max"), tracing_mode=mode,
                    pre_dispatch=pre_dispatch)(x, torch.tensor([0, 2, 4, 6]))
    for ptr in ([0, 1, 5, 6], [0, 6, 6, 6], [0, 2, 4, 6]):
        ptr = torch.tensor(ptr)
        torch.testing.assert_close(graph(x, ptr), gp.readout(x, ptr=ptr, reduce="max"))


@pytest.mark.parametrize("mode", ["fake", "symbolic"])
@pytest.mark.parametrize("reduce", ["sum", "max", "softmax"])
def test_make_fx_without_values_replays_values_and_gradients(mode, reduce):
    """A fake or symbolic make_fx trace (an index without values) of a readout and its
    gradient replays other batches and other sizes like eager code."""
    from torch.fx.experimental.proxy_tensor import make_fx
    import graphpool as gp

    def step(t, b):
        out = gp.readout(t, b, reduce, num_graphs=3)
        return out, torch.autograd.grad((out * out).sum(), t)[0]

    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 2, generator=g).requires_grad_()
    graph = make_fx(step, tracing_mode=mode)(x, torch.tensor([0, 0, 1, 1, 2, 2]))
    for rows, index in ((6, [2, 0, 1, 0, 2, 2]), (9, [1, 1, 0, 2, 0, 1, 2, 2, 0])):
        t = torch.randn(rows, 2, generator=g).requires_grad_()
        if mode == "symbolic" or rows == 6:  # a fake trace keeps the sizes of the example
            for got, want in zip(graph(t, torch.tensor(index)), step(t, torch.tensor(index))):
                torch.testing.assert_close(got, want)


def test_fake_tensors_propagate_shapes_and_need_the_number_of_sets():
    """Under FakeTensorMode (shape propagation, no values) a readout gives the output's
    shape; the number of sets, which only the values know, must be given."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    import graphpool as gp

    with FakeTensorMode() as fake:
        x = fake.from_tensor(torch.randn(6, 4))
        batch, ptr = fake.from_tensor(torch.tensor([0, 0, 1, 2, 2, 2])), \
            fake.from_tensor(torch.tensor([0, 2, 3, 6]))
        for reduce in ("sum", "mean", "max", "var", "softmax"):
            assert gp.readout(x, batch, reduce, num_graphs=5).shape == (5, 4)
        assert gp.readout(x, ptr=ptr, reduce="mean").shape == (3, 4)
        with pytest.raises(gp.GraphpoolError, match=r"^readout: invalid 'num_graphs': expected "
                                                    r"an int for an index without values"):
            gp.readout(x, batch, "sum")
        with pytest.raises(gp.GraphpoolError, match=r"^Segments.from_ptr: invalid "
                                                    r"'num_nodes'.*without values"):
            Segments.from_ptr(ptr)
        # a padded readout needs its padded size: the largest set is in the values
        assert gp.MedianReadout(max_num_nodes=3)(x, batch, dim_size=5).shape == (5, 4)
        with pytest.raises(gp.GraphpoolError, match=r"invalid 'max_num_nodes': expected an "
                                                    r"int for a grouping without values"):
            gp.readout(x, batch, "median", num_graphs=5)


def test_a_resolved_batch_is_not_reused_by_a_make_fx_trace():
    """A batch vector resolved eagerly is cached; under make_fx the cached grouping would
    enter the graph as a constant, so the trace resolves it with recorded ops."""
    from torch.fx.experimental.proxy_tensor import make_fx
    import graphpool as gp

    x, batch = torch.randn(6, 2), torch.tensor([0, 0, 1, 1, 2, 2])
    gp.readout(x, batch, "sum", num_graphs=3)  # cached now
    graph = make_fx(lambda t, b: gp.readout(t, b, "sum", num_graphs=3))(x, batch)
    other = torch.tensor([0, 1, 1, 1, 1, 2])
    torch.testing.assert_close(graph(x, other), gp.readout(x, other, "sum", num_graphs=3))
