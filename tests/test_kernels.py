"""segment_reduce against a naive per-set loop: every op x grouping x dtype x backend."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

import graphpool
from graphpool import GraphpoolError, Segments, segment_reduce
from graphpool import _native
from graphpool.kernels import compiled, ext
from graphpool.kernels.reductions import MAX, SUM

from .groupings import groupings, groups_from_counts
from .reference import naive_readout

OPS = ["sum", "mean", "max", "min"]
FLOATS = [torch.float64, torch.float32, torch.float16, torch.bfloat16]

# (name, rows per set): empty sets anywhere, one node, zero rows, zero sets, a big set.
CASES = [
    ("basic", [3, 1, 2]),
    ("empty-middle", [2, 0, 3]),
    ("empty-leading", [0, 4]),
    ("empty-trailing", [2, 3, 0, 0]),
    ("one-node", [1]),
    ("uniform", [4, 4, 4]),
    ("uniform-empty", [0, 0, 0]),
    ("zero-sets", []),
    ("big", [60, 7, 0, 13]),
]


def make_x(counts, dtype, values="randn", features=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = sum(counts)
    if values == "ties" or not dtype.is_floating_point:
        x = torch.randint(-3, 4, (n, features), generator=g).to(dtype)
    else:
        x = torch.randn(n, features, generator=g, dtype=torch.float64).to(dtype)
    if values == "special" and n >= 4:
        x[0, 0], x[1, 1], x[2, 2 % features] = float("inf"), float("-inf"), float("nan")
        x[3, 0] = float("-inf")
    return x


def check(x, counts, op, **kwargs):
    integer_sum = op == "sum" and not x.is_floating_point()  # int64, as torch.sum gives
    expected = naive_readout(x.long() if integer_sum else x, groups_from_counts(counts), op,
                             **kwargs)
    for name, x_in, seg in groupings(x, counts):
        out = segment_reduce(x_in, seg, op, **kwargs)
        assert out.dtype == (torch.int64 if integer_sum else x.dtype), name
        torch.testing.assert_close(out, expected, equal_nan=True, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("case,counts", CASES)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_matches_naive_loop(case, counts, op, dtype, backend):
    check(make_x(counts, dtype), counts, op)


@pytest.mark.parametrize("values", ["ties", "special"])
@pytest.mark.parametrize("op", OPS)
def test_ties_inf_nan_propagate_like_a_loop(values, op, backend):
    for case, counts in CASES:
        check(make_x(counts, torch.float32, values), counts, op)


@pytest.mark.parametrize("op", ["sum", "max", "min"])
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32])
def test_integer_inputs(op, dtype, backend):
    for case, counts in CASES:
        check(make_x(counts, dtype), counts, op)


@pytest.mark.parametrize("dtype", [torch.int8, torch.uint8, torch.int16])
def test_integer_sums_never_wrap_around(dtype, backend):
    x = torch.full((3, 2), 100, dtype=dtype)
    for name, x_in, seg in groupings(x, [3]):
        out = segment_reduce(x_in, seg, "sum")
        assert out.dtype == torch.int64 and out.tolist() == [[300, 300]], name


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("fill", [0.0, -1.5, float("nan")])
def test_fill_value_only_touches_empty_sets(op, fill, backend):
    counts = [2, 0, 3, 0]
    check(make_x(counts, torch.float64, "special"), counts, op, fill_value=fill)


def test_empty_set_of_genuine_minus_inf_is_not_confused_with_empty():
    x = torch.tensor([[float("-inf")], [float("-inf")]])
    seg = Segments.from_index(torch.tensor([0, 0]), num_segments=2)
    out = segment_reduce(x, seg, "max", fill_value=7.0)
    assert out.flatten().tolist() == [float("-inf"), 7.0]


@pytest.mark.parametrize("op", OPS)
def test_non_contiguous_and_leading_dims(op, backend):
    counts = [3, 0, 2, 4]
    base = make_x(counts, torch.float64, features=8)
    x = base[:, ::2]
    assert not x.is_contiguous()
    check(x, counts, op)
    stacked = torch.stack([base, -base, 2 * base])[:, :, 1::3]  # [3, N, F], non-contiguous
    for name, x_in, seg in groupings(stacked, counts):
        out = segment_reduce(x_in, seg, op)
        for k in range(3):
            expected = naive_readout(stacked[k], groups_from_counts(counts), op)
            torch.testing.assert_close(out[k], expected, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("op", OPS)
def test_gradcheck_every_path(op, backend):
    counts = [3, 0, 2, 1]
    x = make_x(counts, torch.float64, features=2, seed=3)
    for name, x_in, seg in groupings(x, counts):
        x_in = x_in.clone().nan_to_num(0.0).requires_grad_()
        if seg.kind == "mask":  # padding rows are never read: their gradient must be zero
            x_in.data[~seg.mask] = 1e6
        assert torch.autograd.gradcheck(lambda t: segment_reduce(t, seg, op), (x_in,)), name


@pytest.mark.parametrize("op", ["max", "min"])
def test_tie_policy_splits_gradient_evenly_on_every_path(op, backend):
    counts = [4, 3, 0, 5]
    x = make_x(counts, torch.float64, "ties", features=4, seed=1)
    grads = {}
    for name, x_in, seg in groupings(x, counts):
        x_in = x_in.clone().requires_grad_()
        segment_reduce(x_in, seg, op).mul(torch.arange(1.0, 5.0)).sum().backward()
        grads[name] = x_in.grad
    ref = x.clone().requires_grad_()
    for b, members in enumerate(groups_from_counts(counts)):  # torch.amax per set
        if members:
            red = torch.amax if op == "max" else torch.amin
            red(ref[members], 0).mul(torch.arange(1.0, 5.0)).sum().backward()
    perm = torch.randperm(x.size(0), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(grads["index-sorted"], ref.grad)
    torch.testing.assert_close(grads["ptr"], ref.grad)
    torch.testing.assert_close(grads["index-unsorted"], ref.grad[perm])
    mask = torch.arange(5).unsqueeze(0) < torch.tensor(counts).unsqueeze(1)
    torch.testing.assert_close(grads["mask"][mask], ref.grad)
    assert grads["mask"][~mask].eq(0).all()


@pytest.mark.parametrize("op", [*OPS, "prod", "vpa"])
def test_double_backward(op):
    x = make_x([3, 2], torch.float64, seed=2)
    for name, x_in, seg in groupings(x, [3, 2]):  # prod: torch's autograd of its forms
        leaf = x_in.detach().requires_grad_()
        assert torch.autograd.gradgradcheck(lambda t: segment_reduce(t, seg, op) ** 2,
                                            (leaf,)), name


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_types_accumulate_in_float32(op, dtype):
    # 4096 ones: a float16 running sum stalls at 2048, a float32 accumulator does not.
    x = torch.ones(4096, 1, dtype=dtype)
    for name, x_in, seg in groupings(x, [4096]):
        out = segment_reduce(x_in, seg, op)
        assert out.item() == {"sum": 4096.0, "mean": 1.0, "max": 1.0, "min": 1.0}[op], name


@pytest.mark.skipif(not ext.AVAILABLE or _native.library() is None,
                    reason="needs torch_scatter and the compiled kernels")
@pytest.mark.parametrize("op", OPS)
def test_backends_agree_on_values_and_gradients(op):
    counts = [5, 0, 3, 7]
    x = make_x(counts, torch.float64, "ties", seed=4)
    results = {}
    for backend in ["native", "compiled", "torch_scatter"]:
        with graphpool.use_backend(backend):
            for name, x_in, seg in groupings(x, counts):
                x_in = x_in.clone().nan_to_num(0.0).requires_grad_()
                out = segment_reduce(x_in, seg, op)
                out.sum().backward()
                results[backend, name] = (out, x_in.grad)
    for (backend, name), (out, grad) in results.items():
        torch.testing.assert_close(out, results["native", name][0])
        torch.testing.assert_close(grad, results["native", name][1])


def test_ci_tests_every_backend():
    """CI sets GRAPHPOOL_REQUIRE_BACKENDS so that no optional backend goes untested."""
    from .conftest import BACKENDS

    required = [b for b in os.environ.get("GRAPHPOOL_REQUIRE_BACKENDS", "").split(",") if b]
    assert set(required) <= set(BACKENDS), f"missing backends: {set(required) - set(BACKENDS)}"
    assert "native" in BACKENDS


def test_path_choice_follows_the_grouping():
    from graphpool.kernels import dense, dispatch, native

    x = torch.zeros(4, 2)
    with graphpool.use_backend("native"):
        assert dispatch._pick_path(Segments.uniform(2, 2), x, MAX) is dense.combine
        assert dispatch._pick_path(Segments.from_ptr(torch.tensor([0, 4])), x, MAX) is native.csr
        assert dispatch._pick_path(Segments.from_index(torch.tensor([1, 0, 1, 0])), x, MAX) \
            is native.scatter
        assert dispatch._pick_path(Segments.from_ptr(torch.tensor([0, 4])), x.long(), MAX) \
            is native.scatter
    if _native.library() is not None:
        with graphpool.use_backend("auto"):
            csr = Segments.from_ptr(torch.tensor([0, 4]))
            assert dispatch._pick_path(csr, x, MAX) is compiled.combine
            assert dispatch._pick_path(csr, x.long(), SUM) is not compiled.combine
            unsorted = Segments.from_index(torch.tensor([1, 0, 1, 0]))
            assert dispatch._pick_path(unsorted, x, MAX) is compiled.combine
            assert dispatch._pick_path(unsorted, x.long(), SUM) is not compiled.combine
    if ext.AVAILABLE:
        with graphpool.use_backend("torch_scatter"):
            csr = Segments.from_ptr(torch.tensor([0, 4]))
            assert dispatch._pick_path(csr, x, SUM) is ext.combine
            assert dispatch._pick_path(csr, x, MAX) is native.csr


@pytest.mark.skipif(not ext.AVAILABLE, reason="torch_scatter is not installed")
def test_why_max_and_min_never_use_torch_scatter():
    """torch_scatter 2.1 drops nan and turns an all -inf set into a finite value."""
    import torch_scatter

    x = torch.tensor([[float("-inf")], [float("-inf")], [1.0], [float("nan")]])
    ptr = torch.tensor([0, 2, 4])
    theirs = torch_scatter.segment_csr(x, ptr, reduce="max").flatten()
    assert theirs[0] != float("-inf") and not theirs[1].isnan()
    with graphpool.use_backend("torch_scatter"):
        ours = segment_reduce(x, Segments.from_ptr(ptr), "max").flatten()
    assert ours[0] == float("-inf") and ours[1].isnan()


def test_without_a_compiler_the_native_kernels_give_the_same_results(monkeypatch, tmp_path):
    counts = [3, 0, 4]
    x = make_x(counts, torch.float32, "special")
    seg = Segments.from_ptr(torch.tensor([0, 3, 3, 7]))
    expected = {op: segment_reduce(x, seg, op) for op in OPS}
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("GRAPHPOOL_CACHE", str(tmp_path))
    _native.library.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="native torch kernels"):
            assert _native.library() is None
        assert not compiled.supports(x, seg)
        for op in OPS:
            torch.testing.assert_close(segment_reduce(x, seg, op), expected[op], equal_nan=True)
        with pytest.raises(graphpool.GraphpoolError, match="'compiled'.*C\\+\\+ compiler"):
            graphpool.set_backend("compiled")
    finally:
        _native.library.cache_clear()


def _same_for_every_thread_count(x, seg, op):
    """Values and gradients of ``op`` are bitwise equal with 1, 2 and 3 threads."""
    before = torch.get_num_threads()
    runs = []
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            out = segment_reduce(x, seg, op)
            (grad,) = torch.autograd.grad(out.square().sum(), x)
            runs.append((out, grad))
    finally:
        torch.set_num_threads(before)
    for out, grad in runs[1:]:
        assert torch.equal(out, runs[0][0]) and torch.equal(grad, runs[0][1])


@pytest.mark.parametrize("counts", [[9000], [5000, 0, 4500], [30] * 40])
@pytest.mark.parametrize("op", OPS)
def test_results_do_not_depend_on_the_number_of_threads(counts, op):
    """Sets longer than a kernel chunk, and fewer sets than threads, still fold in one order."""
    x = make_x(counts, torch.float32, features=5, seed=7).requires_grad_()
    seg = Segments.from_ptr(torch.cat([torch.zeros(1, dtype=torch.long),
                                       torch.tensor(counts).cumsum(0)]))
    _same_for_every_thread_count(x, seg, op)
    index = seg.index  # the same sets, rows shuffled: the scatter kernels split features
    perm = torch.randperm(len(index), generator=torch.Generator().manual_seed(1))
    shuffled = Segments.from_index(index[perm], num_segments=len(counts))
    xs = x.detach()[perm].repeat(1, 30).requires_grad_()  # enough features for 3 blocks
    _same_for_every_thread_count(xs, shuffled, op)
    x64 = x.detach().double()  # long float32 sums round differently from a loop: check in float64
    torch.testing.assert_close(segment_reduce(x64, seg, op),
                               naive_readout(x64, groups_from_counts(counts), op))


needs_kernels = pytest.mark.skipif(_native.library() is None,
                                   reason="the compiled kernels are not available")


@needs_kernels
@pytest.mark.parametrize("op", OPS)
def test_unsorted_index_on_the_compiled_kernels_equals_the_native_path(op):
    """The compiled scatter kernels fold each set's rows in row order, as index_add does:
    values equal the native scatter path's bit for bit, gradients too (ties split evenly)."""
    g = torch.Generator().manual_seed(3)
    index = torch.randint(0, 40, (3000,), generator=g)
    x = torch.randint(-2, 3, (3000, 70), generator=g).float().requires_grad_()  # ties
    seg = Segments.from_index(index, num_segments=43)
    seed = torch.randn(43, 70, generator=g)
    results = []
    for backend in ("auto", "native"):
        with graphpool.use_backend(backend):
            out = segment_reduce(x, seg, op)
            (grad,) = torch.autograd.grad(out, x, seed)
        results.append((out, grad))
    assert compiled.supports(x, seg)
    assert torch.equal(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1], rtol=0, atol=1e-6)


def _run(x, seg, op, seed):
    """Values of ``op`` over ``seg`` and the gradient of ``x`` for the output gradient
    ``seed``."""
    leaf = x.detach().clone().requires_grad_()
    out = segment_reduce(leaf, seg, op)
    return (out, *torch.autograd.grad(out, leaf, seed))


def _unsorted_run(x, index, num_segments, op, min_width, monkeypatch, seed):
    """Values and gradient of ``op`` over an unsorted index, with the order kernels taken
    from ``min_width`` features on (1: always; a huge value: never, streaming)."""
    monkeypatch.setattr(compiled, "ORDER_MIN_WIDTH", min_width)
    seg = Segments.from_index(index, num_segments=num_segments)
    return (*_run(x, seg, op, seed), seg._o is not None, seg.kind)


@needs_kernels
@pytest.mark.parametrize("case,counts", CASES)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_unsorted_index_by_its_order_equals_streaming_bit_for_bit(case, counts, op, dtype,
                                                                  monkeypatch):
    """An unsorted index reduced by its sorted order (rows gathered set by set) folds each
    set's rows in row order, as the streaming kernel does: the same bits, the same
    gradients, both equal to a per-set loop."""
    g = torch.Generator().manual_seed(5)
    x = make_x(counts, dtype, features=11, seed=5)
    index = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts, dtype=torch.long))
    perm = torch.randperm(len(index), generator=g)
    x, index = x[perm], index[perm]
    seed = torch.randn(len(counts), 11, generator=g).to(dtype)
    order = _unsorted_run(x, index, len(counts), op, 1, monkeypatch, seed)
    stream = _unsorted_run(x, index, len(counts), op, 1 << 40, monkeypatch, seed)
    unsorted = order[3] is graphpool.Kind.SCATTER and sum(counts) > 0
    assert order[2] == unsorted and not stream[2]  # each run took the path it names
    assert torch.equal(order[0], stream[0]) and torch.equal(order[1], stream[1])
    groups = [perm.argsort()[torch.tensor(grp, dtype=torch.long)].tolist()
              for grp in groups_from_counts(counts)]
    torch.testing.assert_close(order[0], naive_readout(x, groups, op), equal_nan=True)


def _wide_x(counts, dtype, features, values, seed):
    """``make_x`` rows, with "special": nan, inf and -inf in every register block (first,
    middle and last lanes, early and late rows), a whole column of -inf in set 0 and a
    column holding both inf and -inf (whose sum is nan) but no nan."""
    x = make_x(counts, dtype, "ties" if values == "ties" else "randn", features, seed)
    if values == "special":
        n = x.size(0)
        for k, (r, f) in enumerate([(0, 0), (3, 31), (5, features - 1), (n - 1, 63 % features),
                                    (n // 2, 32 % features), (n - 2, features // 2)]):
            x[r % n, f] = (float("nan"), float("inf"), float("-inf"))[k % 3]
        x[:counts[0], 1] = float("-inf")
        x[1, 2], x[2, 2] = float("inf"), float("-inf")
    return x


def _same(a, b):
    return torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(0), b.nan_to_num(0))


@needs_kernels
@pytest.mark.parametrize("values", ["randn", "ties", "special"])
@pytest.mark.parametrize("features", [64, 71, 130])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("op", OPS)
def test_register_blocks_fold_rows_in_row_order_on_every_path(features, dtype, op, values,
                                                              monkeypatch):
    """Rows wide enough for the kernels' register blocks (64 float32 or 32 float64
    features at a time in vector registers, then the remaining features): the CSR
    kernel, the order kernel and the streaming kernel fold each set's rows in row order,
    so all three give the same bits (values and gradients, ties and nan included: a block
    that met a nan is folded again elementwise), equal to a per-set loop."""
    counts = [60, 7, 0, 13, 1]
    g = torch.Generator().manual_seed(9)
    x = _wide_x(counts, dtype, features, values, seed=9)
    index = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    seed = torch.randn(len(counts), features, generator=g).to(dtype)
    csr_seg = Segments.from_index(index, num_segments=len(counts))
    assert csr_seg.kind is graphpool.Kind.CSR and compiled.supports(x, csr_seg)
    csr = _run(x, csr_seg, op, seed)
    runs = []
    for min_width in (1, 1 << 40):  # the order kernels, then the streaming one
        monkeypatch.setattr(compiled, "ORDER_MIN_WIDTH", min_width)
        seg = Segments.from_index(index, num_segments=len(counts), sorted=False)
        assert seg.kind is graphpool.Kind.SCATTER
        runs.append(_run(x, seg, op, seed))
        assert (seg._o is not None) == (min_width == 1)  # each run took the path it names
    for got in runs:
        assert _same(got[0], csr[0]) and _same(got[1], csr[1])
    expected = naive_readout(x, groups_from_counts(counts), op)
    torch.testing.assert_close(csr[0], expected, equal_nan=True)
    if values == "special" and op in ("max", "min"):
        assert csr[0].isnan().any() and csr[0][0, 1] == float("-inf")  # a set of -inf
        assert csr[0][0, 2] == float("inf" if op == "max" else "-inf")


@needs_kernels
@pytest.mark.parametrize("values", ["ties", "special"])
@pytest.mark.parametrize("op", ["max", "min"])
def test_register_blocks_of_a_set_in_chunks(op, values):
    """One set longer than a kernel chunk (4096 rows), on two threads: the chunks are
    folded in register blocks, then folded together; nan and ties as a per-set loop."""
    counts = [9000, 5]
    x = _wide_x(counts, torch.float32, 64, values, seed=4)
    if values == "special":
        x[8191, 5] = float("nan")  # the last row of the second chunk
    ptr = torch.tensor([0, 9000, 9005])
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        out = segment_reduce(x, Segments.from_ptr(ptr), op)
    finally:
        torch.set_num_threads(threads)
    expected = naive_readout(x, groups_from_counts(counts), op)
    torch.testing.assert_close(out, expected, rtol=0, atol=0, equal_nan=True)
    if values == "special":
        assert out[0, 5].isnan()


@needs_kernels
@pytest.mark.parametrize("op", OPS)
def test_order_kernels_on_leading_dims_and_strided_features(op, monkeypatch):
    """``[L, N, F]`` with leading dims and a transposed (strided) feature axis."""
    g = torch.Generator().manual_seed(2)
    index = torch.randint(0, 30, (400,), generator=g)
    x = torch.randn(3, 9, 400, generator=g).transpose(-1, -2)  # feature stride 400
    seed = torch.randn(3, 30, 9, generator=g)
    order = _unsorted_run(x, index, 30, op, 1, monkeypatch, seed)
    stream = _unsorted_run(x, index, 30, op, 1 << 40, monkeypatch, seed)
    with graphpool.use_backend("native"):
        native = _unsorted_run(x, index, 30, op, 1, monkeypatch, seed)
    assert order[2] and torch.equal(order[0], stream[0]) and torch.equal(order[1], stream[1])
    assert torch.equal(order[0], native[0])
    torch.testing.assert_close(order[1], native[1], rtol=0, atol=1e-6)


@needs_kernels
@pytest.mark.parametrize("index, num_segments", [
    ([3, 0, 3, 1, 0], 5), ([], 3), ([2, 2, 2], 3), ([1, 0], 2)])
def test_index_order_is_a_stable_sort(index, num_segments):
    index = torch.tensor(index, dtype=torch.long)
    ptr, perm = _native.index_order(index, num_segments)
    assert torch.equal(perm, index.argsort(stable=True))
    counts = torch.bincount(index, minlength=num_segments)
    assert torch.equal(ptr, torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)]))


@needs_kernels
def test_order_kernels_refuse_ids_and_rows_out_of_range():
    """An id outside [0, B) gives no order; a perm entry outside [0, N) or a bad ptr is
    skipped and reported, never read: an error, not a crash."""
    assert _native.index_order(torch.tensor([0, 5, 1]), 3) is None
    assert _native.index_order(torch.tensor([0, -1]), 3) is None
    x = torch.ones(4, 8)
    ptr, perm = torch.tensor([0, 2, 4]), torch.tensor([0, 1, 2, 1 << 40])
    with pytest.raises(GraphpoolError, match="ids in \\[0, num_segments\\)"):
        compiled._order_reduce(x, ptr, perm, "sum", torch.float32)
    with pytest.raises(GraphpoolError, match="ids in \\[0, num_segments\\)"):
        compiled._order_reduce(x, torch.tensor([0, 2, 9]), torch.arange(4), "max", x.dtype)
    with pytest.raises(GraphpoolError, match="'perm'.*4 elements"):
        compiled._order_reduce(x, ptr, torch.arange(3), "sum", torch.float32)
    with pytest.raises(GraphpoolError, match="ids in \\[0, num_segments\\)"):
        compiled._order_extremum_backward(x, ptr, perm, torch.ones(2, 8), torch.ones(2, 8))
    with pytest.raises(GraphpoolError, match="'grad_out'.*16 elements"):
        compiled._order_extremum_backward(x, ptr, torch.arange(4), torch.ones(2, 8),
                                          torch.ones(1, 8))
    with pytest.raises(GraphpoolError, match="ids in \\[0, num_segments\\)"):
        compiled._index_broadcast(torch.ones(2, 8), torch.tensor([0, 2, 1]))


@needs_kernels
@pytest.mark.parametrize("index, num_segments, expected", [
    ([0, 0, 1, 3], 5, ([0, 2, 3, 3, 4, 4], 2)),   # empty middle and trailing sets
    ([2, 2], 3, ([0, 0, 0, 2], 2)),               # empty leading sets
    ([], 2, ([0, 0, 0], 2)),
    ([1, 0], 2, None),                            # unsorted: no ptr
    ([0, 1], None, None),                         # number of sets unknown: no ptr
])
def test_index_to_ptr(index, num_segments, expected):
    index = torch.tensor(index, dtype=torch.long)
    buffer = None if num_segments is None else torch.empty(num_segments + 1, dtype=torch.long)
    lo, hi, is_sorted, ptr, empty = _native.index_to_ptr(index, buffer)
    if index.numel():
        assert (lo, hi, is_sorted) == (int(index.min()), int(index.max()),
                                       bool((index[1:] >= index[:-1]).all()))
    if expected is None:
        assert ptr is None
    else:
        assert (ptr.tolist(), empty) == expected


@needs_kernels
@pytest.mark.parametrize("op", OPS)
def test_huge_page_buffers_give_the_same_gradients(op, monkeypatch):
    """Force every backward buffer through the mmap + MADV_HUGEPAGE allocator."""
    counts = [5, 0, 3, 7]
    x = make_x(counts, torch.float32, "ties", seed=5)
    seg = Segments.from_ptr(torch.tensor([0, 5, 5, 8, 15]))
    grads = {}
    for backend, threshold in [("native", compiled.HUGE_PAGE_BYTES), ("compiled", 1)]:
        monkeypatch.setattr(compiled, "HUGE_PAGE_BYTES", threshold)
        with graphpool.use_backend(backend):
            leaf = x.clone().requires_grad_()
            segment_reduce(leaf, seg, op).pow(2).sum().backward()
            grads[backend] = leaf.grad
    torch.testing.assert_close(grads["compiled"], grads["native"])
    grads["compiled"].add_(1)  # a normal, writable tensor


def _compiled_with_graphs(fn):
    """``fn`` compiled with fullgraph=True, and the code of its forward and backward graphs."""
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    graphs = []

    def keep(gm, example_inputs):
        graphs.append(gm.code)
        return make_boxed_func(gm.forward)
    torch._dynamo.reset()
    return torch.compile(fn, backend=aot_autograd(fw_compiler=keep, bw_compiler=keep),
                         fullgraph=True), graphs


@needs_kernels
@pytest.mark.skipif(not compiled.OPERATORS, reason="torch.library.custom_op needs torch>=2.4")
@pytest.mark.parametrize("op", OPS)
def test_torch_compile_fullgraph_keeps_the_compiled_kernels(op):
    counts = [4, 0, 3, 6]
    ptr = torch.tensor([0, 4, 4, 7, 13])
    x = make_x(counts, torch.float32, "ties", seed=6)
    readout = lambda x, ptr: graphpool.readout(x, ptr=ptr, reduce=op)  # noqa: E731
    compiled_readout, graphs = _compiled_with_graphs(readout)
    leaf, eager_leaf = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = compiled_readout(leaf, ptr)
    out.pow(2).sum().backward()
    forward, backward = graphs
    assert "graphpool.csr_reduce" in forward
    assert ("graphpool.csr_broadcast" if op in ("sum", "mean")
            else "graphpool.csr_extremum_backward") in backward
    expected = readout(eager_leaf, ptr)
    expected.pow(2).sum().backward()
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(leaf.grad, eager_leaf.grad)


@needs_kernels
@pytest.mark.skipif(not compiled.OPERATORS, reason="torch.library.custom_op needs torch>=2.4")
@pytest.mark.parametrize("op", OPS)
def test_torch_compile_fullgraph_keeps_the_scatter_kernels_of_an_unsorted_index(op):
    """Max and min stay graphpool's kernels; sums and means become torch's scatter_add,
    which inductor fuses with the gather that makes the messages of a message-passing
    layer (no E x F buffer between them, as in PyG's compiled aggregations)."""
    index = torch.tensor([2, 0, 3, 2, 0, 0, 3, 2, 3, 3, 0, 2, 3])
    x = make_x([13], torch.float32, "ties", seed=7)
    readout = lambda x, index: graphpool.readout(x, index, reduce=op, num_graphs=5)  # noqa: E731
    compiled_readout, graphs = _compiled_with_graphs(readout)
    leaf, eager_leaf = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = compiled_readout(leaf, index)
    out.pow(2).sum().backward()
    forward, backward = graphs
    if op in ("sum", "mean"):
        assert "graphpool.scatter_reduce" not in forward and "scatter_add" in forward
    else:
        assert "graphpool.scatter_reduce" in forward
    if op in ("max", "min"):
        assert "graphpool.scatter_extremum_backward" in backward
    expected = readout(eager_leaf, index)
    expected.pow(2).sum().backward()
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(leaf.grad, eager_leaf.grad)


@needs_kernels
def test_huge_page_buffers_fall_back_when_the_kernel_refuses_madvise(monkeypatch):
    import mmap

    class NoTHP(mmap.mmap):
        def madvise(self, *args):
            raise OSError(22, "Invalid argument")
    monkeypatch.setattr(compiled.mmap, "mmap", NoTHP)
    monkeypatch.setattr(compiled, "HUGE_PAGE_BYTES", 1)
    buffer = compiled.empty((3, 4), torch.float32)
    assert buffer.shape == (3, 4) and buffer.fill_(2.0).sum() == 24.0


@pytest.mark.skipif(not _native.SANITIZE, reason="runs in the sanitizer run (.ci/sanitize)")
def test_the_sanitizer_run_catches_an_out_of_bounds_write():
    # The old half-precision bug, called raw: float32 sums written into a float16 buffer.
    # The checked entry points refuse this; the raw C call must abort under ASan.
    code = textwrap.dedent("""
        import torch
        from graphpool import _native
        x, ptr = torch.ones(2000, 64, dtype=torch.float16), torch.arange(0, 2001, 2)
        out = torch.empty(1000, 64, dtype=torch.float16)
        _native.library().gp_csr_reduce(2, 0, x.data_ptr(), 1, 2000, 64, 0, 64, 1,
                                         ptr.data_ptr(), 1000, out.data_ptr(), 1)
        """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode != 0
    assert "AddressSanitizer: heap-buffer-overflow" in run.stderr


@needs_kernels
def test_the_checked_entry_points_refuse_a_buffer_of_the_wrong_dtype():
    x, ptr = torch.ones(4, 2, dtype=torch.float16), torch.tensor([0, 2, 4])
    with pytest.raises(GraphpoolError, match="'ptr'.*int64"):
        compiled._reduce(x, ptr.int(), "sum", torch.float32)
    with pytest.raises(GraphpoolError, match="'grad_out'.*2 elements|'grad_out'.*4 elements"):
        compiled._extremum_backward(x, ptr, torch.ones(2, 2, dtype=torch.float16),
                                    torch.ones(1, 2, dtype=torch.float16))
    with pytest.raises(GraphpoolError, match="'values'.*2 rows"):
        compiled._broadcast(torch.ones(3, 2), ptr, 4)
    # a half sum comes back in the accumulation dtype asked for, from a float32 buffer
    out = compiled._reduce(x, ptr, "sum", torch.float16)
    assert out.dtype == torch.float16 and out.tolist() == [[2.0, 2.0], [2.0, 2.0]]


MEAN_BROADCASTS = [  # (name, rows per set, leading dims, features): both thread layouts
    ("many-sets", [3, 0, 5, 1, 0], (), 4),
    ("leading-dims", [2, 7, 0], (2, 3), 5),
    ("one-set-rows-split", [70000], (), 1),  # >= 2**16 elements, fewer sets than tasks
    ("few-sets-empty", [40000, 0, 30000], (), 3),
    ("count-above-2**24-rounds-as-torch", [2 ** 24 + 1], (), 1),
    ("no-rows", [0, 0], (), 3),
]


@needs_kernels
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name, counts, lead, features", MEAN_BROADCASTS,
                         ids=[c[0] for c in MEAN_BROADCASTS])
def test_the_fused_mean_broadcast_has_the_bits_of_divide_then_broadcast(
        name, counts, lead, features, dtype):
    """The mean's backward kernel divides on the way: the same bits as torch's division
    by the counts (nan, inf and zero rows included), then the copy; half types take
    torch's division."""
    from graphpool.kernels.reductions import divide_by_count

    if name.startswith("count-above") and dtype != torch.float32:
        pytest.skip("the rounding of a count only shows in float32")
    seg = Segments.from_ptr(torch.tensor([0, *counts]).cumsum(0))
    g = torch.Generator().manual_seed(len(counts))
    values = (torch.randn(*lead, len(counts), features, generator=g) * 1e3).to(dtype)
    values.view(-1)[0], values.view(-1)[-1] = float("nan"), float("-inf")
    got = compiled.broadcast_mean(values, seg)
    expected = compiled.broadcast(divide_by_count(values, seg._counts), seg)
    bits = {2: torch.int16, 4: torch.int32, 8: torch.int64}[dtype.itemsize]
    assert got.shape == expected.shape == (*lead, sum(counts), features)
    assert torch.equal(got.view(bits), expected.view(bits))


@needs_kernels
def test_the_mean_broadcast_kernel_refuses_values_it_cannot_divide():
    ptr = torch.tensor([0, 2, 4])
    with pytest.raises(GraphpoolError, match=r"'values'.*float32 or float64.*torch.int64"):
        compiled._broadcast_to(torch.ones(2, 3, dtype=torch.long), ptr, 4, False, mean=True)
    with pytest.raises(GraphpoolError, match=r"out-of-range or decreasing ptr"):  # read nothing
        compiled._broadcast_to(torch.ones(2, 3), torch.tensor([0, 2, 9]), 4, False, mean=True)


@needs_kernels
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mean_gradients_of_the_compiled_path_equal_the_native_bits(dtype):
    counts = [5, 0, 3, 7, 1]
    x = make_x(counts, dtype, seed=9, features=6)
    seed = torch.randn(len(counts), 6, generator=torch.Generator().manual_seed(3)).to(dtype)
    grads = {}
    for backend in ["native", "compiled"]:
        with graphpool.use_backend(backend):
            leaf = x.clone().requires_grad_()
            seg = Segments.from_ptr(torch.tensor([0, *counts]).cumsum(0))
            segment_reduce(leaf, seg, "mean").backward(seed)
            grads[backend] = leaf.grad
    assert torch.equal(grads["compiled"], grads["native"])


OPERATOR_ERRORS = [  # the registered operators called with wrong scalar arguments
    ("csr_reduce-how", lambda x, idx, ptr: torch.ops.graphpool.csr_reduce(
        x, ptr, "foo", torch.float32), r"csr_reduce: invalid 'how'.*'sum'.*got 'foo'"),
    ("scatter_reduce-how", lambda x, idx, ptr: torch.ops.graphpool.scatter_reduce(
        x, idx, 2, "foo", torch.float32), r"scatter_reduce: invalid 'how'.*got 'foo'"),
    ("scatter_reduce-count", lambda x, idx, ptr: torch.ops.graphpool.scatter_reduce(
        x, idx, -1, "max", torch.float32), r"invalid 'num_segments'.*int >= 0.*got -1"),
    ("csr_broadcast-count", lambda x, idx, ptr: torch.ops.graphpool.csr_broadcast(
        torch.randn(2, 3), ptr, -1), r"csr_broadcast: invalid 'num_nodes'.*got -1"),
    ("scatter_extremum_backward-out", lambda x, idx, ptr:
     torch.ops.graphpool.scatter_extremum_backward(x, idx, torch.randn(6), torch.randn(6)),
     r"scatter_extremum_backward: invalid 'out'.*at least 2 dims"),
]


@needs_kernels
@pytest.mark.parametrize("name, call, match", OPERATOR_ERRORS,
                         ids=[e[0] for e in OPERATOR_ERRORS])
def test_the_operators_refuse_wrong_scalar_arguments(name, call, match):
    x, idx, ptr = torch.randn(6, 3), torch.tensor([1, 0, 1, 0, 1, 1]), torch.tensor([0, 2, 6])
    with pytest.raises(GraphpoolError, match=match):
        call(x, idx, ptr)


def _negated_view(t):
    """``t``'s values in a view with the negation bit set (``z.conj().imag`` of a complex
    ``z``): its bytes hold ``-t``, torch negates on read. Differentiable in ``t``."""
    view = torch.complex(torch.zeros_like(t), -t).conj().imag
    assert view.is_neg()
    torch.testing.assert_close(view, t, rtol=0, atol=0, equal_nan=True)  # (mask padding)
    return view


@pytest.mark.parametrize("op", OPS + ["var", "std"])
@pytest.mark.parametrize("backend", ["auto", "native"])
def test_values_and_gradients_behind_a_negation_bit(op, backend):
    """A view with the negation bit (``z.conj().imag``) holds its values negated in
    memory: every path reads the values (C kernels must not take the bytes), forward and
    backward, and an output gradient with the bit is read as its values too."""
    counts = [3, 0, 5, 1]
    x = make_x(counts, torch.float32, "ties", features=4)
    seed = make_x([len(counts)], torch.float32, features=4, seed=1)
    fn = (lambda t, s: gp_readout(t, s, op)) if op in ("var", "std") else \
        (lambda t, s: segment_reduce(t, s, op))
    with graphpool.use_backend(backend):
        for name, x_in, seg in groupings(x, counts):
            plain = x_in.detach().clone().requires_grad_()
            want = fn(plain, seg)
            (want_grad,) = torch.autograd.grad(want, plain, seed)
            leaf = x_in.detach().clone().requires_grad_()
            got = fn(_negated_view(leaf), seg)
            assert torch.equal(got, want), f"{name}: {got} != {want}"
            (got_grad,) = torch.autograd.grad(got, leaf, _negated_view(seed))
            assert torch.equal(got_grad, want_grad), name


def gp_readout(x, seg, op):
    return graphpool.readout(x, seg, op)


def test_channels_first_max_behind_a_negation_bit():
    from graphpool.grid import GlobalPool2d
    fmap = make_x([2 * 3 * 5 * 4], torch.float32, "ties", features=1).view(2, 3, 5, 4)
    seed = torch.randn(2, 3, generator=torch.Generator().manual_seed(2))
    pool = GlobalPool2d("max")
    plain = fmap.clone().requires_grad_()
    want = pool(plain)
    (want_grad,) = torch.autograd.grad(want, plain, seed)
    leaf = fmap.clone().requires_grad_()
    got = pool(_negated_view(leaf))
    (got_grad,) = torch.autograd.grad(got, leaf, seed)
    assert torch.equal(got, want) and torch.equal(got_grad, want_grad)


@needs_kernels
def test_c_kernels_refuse_a_buffer_behind_a_negation_bit():
    x = _negated_view(torch.ones(4, 2))
    ptr = torch.tensor([0, 2, 4])
    with pytest.raises(GraphpoolError, match=r"'x'.*without a negation or conjugate bit"):
        compiled._reduce(x, ptr, "sum", torch.float32)
