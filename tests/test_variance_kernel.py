"""The fused variance kernel (``graphpool.kernels.moments``): the bits of the composite it
replaces, a per-set float64 loop's values and gradients, double backward, and every
layout and thread count the kernel walks."""
from __future__ import annotations

import pytest
import torch

import graphpool as gp
from graphpool import Segments
from graphpool.kernels import compiled, moments

from .test_kernels import make_x

needs_kernels = pytest.mark.skipif(not compiled.available(),
                                   reason="the compiled kernels cannot be built here")

# rows per set: empty sets, one-row sets (nan for correction=1), sets of thousands of rows
# (folded in chunks of 4096), and one set alone (its chunks go to the threads)
COUNTS = {
    "molecules": [25, 0, 1, 12, 38, 2],
    "one-huge-set": [9000],
    "huge-and-small": [5000, 0, 4500, 3],
}
WIDTHS = [1, 7, 32, 71, 130]  # below, at and across the kernel's blocks of features


def _input(counts, dtype, width, seed=0):
    x = make_x(counts, dtype, features=width, seed=seed)
    if counts[0] > 1:  # a set of one value whose mean is inexact: its variance must be 0
        x[: counts[0], 0] = 0.1
    index = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    return x, Segments.from_index(index, num_segments=len(counts))


def _values_and_grad(x, seg, op, correction, seed):
    leaf = x.detach().clone().requires_grad_()
    out = gp.readout(leaf, seg, op, correction=correction)
    return out, torch.autograd.grad(out, leaf, seed)[0]


def _paths(x, seg, op, correction, monkeypatch):
    """(fused, composite) runs, each checked to have taken its path."""
    calls = []
    real = compiled.moments
    monkeypatch.setattr(compiled, "moments", lambda *a: calls.append(1) or real(*a))
    seed = torch.randn((*x.shape[:-2], seg.num_segments, x.size(-1)),
                       generator=torch.Generator().manual_seed(1), dtype=x.dtype)
    assert moments.fused(x, seg)
    fused = _values_and_grad(x, seg, op, correction, seed)
    assert calls, "the fused kernel did not run"
    with monkeypatch.context() as m:
        m.setattr(moments, "fused", lambda x, seg: False)
        calls.clear()
        composite = _values_and_grad(x, seg, op, correction, seed)
        assert not calls
    return fused, composite


@needs_kernels
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("correction", [0, 1])
@pytest.mark.parametrize("op", ["var", "std"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("case", list(COUNTS))
def test_fused_variance_gives_the_composites_bits(case, width, dtype, op, correction, threads,
                                                  monkeypatch):
    """Values: the same bits as the composite (the same roundings in the same order), on one
    thread and on two; gradients: equal up to the order of three additions."""
    x, seg = _input(COUNTS[case], dtype, width)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        (out, grad), (ref, ref_grad) = _paths(x, seg, op, correction, monkeypatch)
    finally:
        torch.set_num_threads(before)
    torch.testing.assert_close(out, ref, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(grad, ref_grad)
    if COUNTS[case][0] > 1:
        assert (out[0, 0] == 0).all() and (grad[: COUNTS[case][0], 0] == 0).all()


@needs_kernels
@pytest.mark.parametrize("counts", [[9000, 0], [0, 9000, 0]], ids=["huge-then-empty",
                                                                   "empty-huge-empty"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_variance_reads_no_row_of_an_empty_set(counts, dtype, monkeypatch):
    """More threads than sets: the kernel hands each set's chunks to the threads, and an
    empty set last must not read the row after the buffer. Only the sanitizer build
    (``.ci/sanitize``, which runs this file) can catch that read: the row after the buffer
    usually lies on a mapped page, and the empty set's value is replaced by fill_value.
    Here, the values and gradients equal the composite's."""
    x, seg = _input(counts, dtype, 64)
    x = x.clone()  # exactly N rows in the buffer: nothing readable after the last one
    before = torch.get_num_threads()
    torch.set_num_threads(len(counts) + 1)
    try:
        (out, grad), (ref, ref_grad) = _paths(x, seg, "var", 0, monkeypatch)
    finally:
        torch.set_num_threads(before)
    torch.testing.assert_close(out, ref, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(grad, ref_grad)
    assert (out[torch.tensor(counts) == 0] == 0).all()


@needs_kernels
@pytest.mark.parametrize("layout", ["leading-dims", "strided-features", "transposed"])
def test_fused_variance_walks_any_layout(layout, monkeypatch):
    x, seg = _input(COUNTS["molecules"], torch.float32, 40)
    if layout == "leading-dims":  # [L, N, F]
        x = torch.stack([x, 2 * x + 1])
    elif layout == "strided-features":  # every other feature: a feature stride of 2
        x = x[:, ::2]
    else:  # a [F, N] buffer seen as [N, F]: rows are strided, features are not
        x = x.t().contiguous().t()
    (out, grad), (ref, ref_grad) = _paths(x, seg, "var", 0, monkeypatch)
    torch.testing.assert_close(out, ref, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(grad, ref_grad)


@needs_kernels
@pytest.mark.parametrize("correction", [0, 1])
@pytest.mark.parametrize("op", ["var", "std"])
def test_fused_variance_matches_a_per_set_loop(op, correction):
    counts = COUNTS["molecules"]
    x, seg = _input(counts, torch.float64, 5, seed=3)
    seed = torch.randn(len(counts), 5, generator=torch.Generator().manual_seed(4),
                       dtype=torch.float64)
    assert moments.fused(x, seg)
    out, grad = _values_and_grad(x, seg, op, correction, seed)
    leaf = x.clone().requires_grad_()
    rows = []
    for part in leaf.split(counts):
        if len(part) == 0:
            rows.append(torch.zeros(5, dtype=torch.float64))  # fill_value
        elif len(part) <= correction:
            rows.append(torch.full((5,), float("nan"), dtype=torch.float64))
        else:
            var = part.var(0, correction=correction)
            rows.append(var if op == "var" else var.clamp(min=0).sqrt())
    expected = torch.stack(rows)
    finite = ~expected.isnan()
    (expected_grad,) = torch.autograd.grad((expected[finite] * seed[finite]).sum(), leaf)
    torch.testing.assert_close(out, expected, equal_nan=True)
    # rows of sets of variance 0 (one row, one value): sqrt has no derivative there, the
    # loop's is nan, graphpool's subgradient 0 (for var itself both are 0)
    index = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    flat = (expected == 0)[index] if op == "std" else torch.zeros_like(grad, dtype=torch.bool)
    torch.testing.assert_close(grad[~flat], expected_grad[~flat])
    assert (grad[flat] == 0).all()
    assert flat[: counts[0], 0].all() == (op == "std")


@needs_kernels
@pytest.mark.parametrize("correction", [0, 1])
def test_fused_variance_has_first_and_second_derivatives(correction):
    x, seg = _input([3, 2, 4, 0, 2], torch.float64, 3, seed=5)  # no set of n <= correction
    x = x + torch.linspace(0, 1, x.numel(), dtype=torch.float64).view_as(x)  # no constant set
    assert moments.fused(x, seg)
    f = lambda t: gp.readout(t, seg, "var", correction=correction)  # noqa: E731
    leaf = x.clone().requires_grad_()
    assert torch.autograd.gradcheck(f, (leaf,))
    assert torch.autograd.gradgradcheck(f, (leaf,))


@needs_kernels
def test_fused_variance_is_not_taken_where_torch_must_see_the_ops():
    x, seg = _input(COUNTS["molecules"], torch.float32, 4)
    assert moments.fused(x, seg)
    with gp.use_backend("native"):
        assert not moments.fused(x, seg)
    assert not moments.fused(x.half(), seg)
    assert not moments.fused(x, Segments.from_index(torch.tensor([1, 0] * 39), 6))
    assert torch.func.vmap(lambda t: gp.readout(t, seg, "var"))(x[None]).shape == (1, 6, 4)
