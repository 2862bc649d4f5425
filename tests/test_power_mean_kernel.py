"""The fused power-mean kernel (``graphpool.kernels.powermean``, p = 1, 2, 3): the bits of
the composite it replaces, values and gradients; a per-set float64 loop; double backward;
special values; every layout and thread count the kernel walks; where it is not taken."""
from __future__ import annotations

import pytest
import torch

import graphpool as gp
from graphpool import Segments
from graphpool.composite import segment_power_mean
from graphpool.kernels import compiled, powermean
from graphpool.readouts import MultiReadout

from .test_kernels import make_x

needs_kernels = pytest.mark.skipif(not compiled.available(),
                                   reason="the compiled kernels cannot be built here")

COUNTS = {  # empty sets, one-row sets, sets of thousands of rows (chunks of 4096)
    "molecules": [25, 0, 1, 12, 38, 2],
    "one-huge-set": [9000],
    "huge-and-small": [5000, 0, 4500, 3],
}
WIDTHS = [1, 7, 64, 130]


def _input(counts, dtype, width, seed=0, special=False):
    x = make_x(counts, dtype, features=width, seed=seed)
    if special and x.size(0) >= 6:
        # zeros of both signs (no slope there but for p = 1), values of one sign; with 4+
        # features also nan, inf (scale 1: x itself is raised to p) and a column of zeros
        # in set 0 (scale 1), each in a column of its own
        x[0, 0], x[1, 0], x[4, 0] = 0.0, -0.0, float("inf")
        x[counts[0]:, 0] = x[counts[0]:, 0].abs()
        if width >= 4:
            x[2, width - 1], x[3, width - 2] = float("nan"), float("inf")
        if width >= 7:  # a nan with its sign bit set (the composite's copysign keeps it)
            x[5, width - 3] = -float("nan")
            x[: counts[0], 1] = 0.0
    index = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    return x, Segments.from_index(index, num_segments=len(counts))


def _values_and_grad(x, seg, p, seed):
    leaf = x.detach().clone().requires_grad_()
    out = segment_power_mean(leaf, seg, p)
    return out, torch.autograd.grad(out, leaf, seed)[0]


def _paths(x, seg, p, monkeypatch):
    """(fused, composite) runs of values and gradients, each checked to take its path."""
    calls = []
    real = compiled.power_mean
    monkeypatch.setattr(compiled, "power_mean", lambda *a: calls.append(1) or real(*a))
    seed = torch.randn((*x.shape[:-2], seg.num_segments, x.size(-1)),
                       generator=torch.Generator().manual_seed(1), dtype=x.dtype)
    assert powermean.fused(x, seg, p)
    fused = _values_and_grad(x, seg, p, seed)
    assert calls, "the fused kernel did not run"
    with monkeypatch.context() as m:
        m.setattr(powermean, "fused", lambda *a: False)
        calls.clear()
        composite = _values_and_grad(x, seg, p, seed)
        assert not calls
    return fused, composite


_INT = {torch.float32: torch.int32, torch.float64: torch.int64}


def _bits(got, want):
    """The same bits, a nan's sign and payload included."""
    assert got.shape == want.shape and got.dtype == want.dtype
    same = got.contiguous().view(_INT[got.dtype]) == want.contiguous().view(_INT[want.dtype])
    assert same.all(), (got[~same], want[~same])


@needs_kernels
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("special", [False, True], ids=["randn", "special"])
@pytest.mark.parametrize("p", [1, 2.0, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("case", list(COUNTS))
def test_fused_power_mean_gives_the_composites_bits(case, width, dtype, p, special, threads,
                                                    monkeypatch):
    """Values and gradients: the same bits as the composite (the same roundings in the
    same order), on one thread and on two, zeros, nan and inf included."""
    x, seg = _input(COUNTS[case], dtype, width, special=special)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        (out, grad), (ref, ref_grad) = _paths(x, seg, p, monkeypatch)
    finally:
        torch.set_num_threads(before)
    _bits(out, ref)
    _bits(grad, ref_grad)


@needs_kernels
@pytest.mark.parametrize("counts", [[9000, 0], [0, 9000, 0]], ids=["huge-then-empty",
                                                                   "empty-huge-empty"])
def test_fused_power_mean_reads_no_row_of_an_empty_set(counts, monkeypatch):
    """An empty set last must not read the row after the buffer (the sanitizer build,
    ``.ci/sanitize``, runs this file); its value is fill_value, its rows' gradient 0."""
    x, seg = _input(counts, torch.float32, 64)
    x = x.clone()  # exactly N rows in the buffer
    (out, grad), (ref, ref_grad) = _paths(x, seg, 2, monkeypatch)
    _bits(out, ref)
    _bits(grad, ref_grad)
    assert (out[torch.tensor(counts) == 0] == 0).all()


@needs_kernels
@pytest.mark.parametrize("layout", ["leading-dims", "strided-features", "transposed"])
def test_fused_power_mean_walks_any_layout(layout, monkeypatch):
    x, seg = _input(COUNTS["molecules"], torch.float32, 40)
    if layout == "leading-dims":  # [L, N, F]
        x = torch.stack([x, 2 * x + 1])
    elif layout == "strided-features":  # every other feature: a feature stride of 2
        x = x[:, ::2]
    else:  # a [F, N] buffer seen as [N, F]: rows are strided, features are not
        x = x.t().contiguous().t()
    (out, grad), (ref, ref_grad) = _paths(x, seg, 3, monkeypatch)
    _bits(out, ref)
    _bits(grad, ref_grad)


@needs_kernels
@pytest.mark.parametrize("p", [1, 2, 3])
def test_fused_power_mean_matches_a_per_set_loop(p):
    """An independent reference: per set, ``(mean sign(x)|x|^p)^(1/p)`` with the sign
    carried (the odd extension), in float64, and its gradient by autograd."""
    counts = COUNTS["molecules"]
    x, seg = _input(counts, torch.float64, 5, seed=3)
    seed = torch.randn(len(counts), 5, generator=torch.Generator().manual_seed(4),
                       dtype=torch.float64)
    assert powermean.fused(x, seg, p)
    out, grad = _values_and_grad(x, seg, p, seed)
    leaf = x.clone().requires_grad_()
    rows = []
    for part in leaf.split(counts):
        if len(part) == 0:
            rows.append(torch.zeros(5, dtype=torch.float64))  # fill_value
            continue
        m = (part.sign() * part.abs() ** p).mean(0)
        rows.append(m.sign() * m.abs() ** (1 / p))
    expected = torch.stack(rows)
    (expected_grad,) = torch.autograd.grad((expected * seed).sum(), leaf)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(grad, expected_grad)


@needs_kernels
@pytest.mark.parametrize("p", [2, 3])
def test_fused_power_mean_has_first_and_second_derivatives(p):
    x, seg = _input([3, 2, 4, 0, 2], torch.float64, 3, seed=5)
    x = x.abs() + 0.5  # away from 0, where sign(x)|x|^p has no second derivative for p = 2
    assert powermean.fused(x, seg, p)
    f = lambda t: segment_power_mean(t, seg, p)  # noqa: E731
    leaf = x.clone().requires_grad_()
    assert torch.autograd.gradcheck(f, (leaf,))
    assert torch.autograd.gradgradcheck(f, (leaf,))


@needs_kernels
def test_fused_power_mean_serves_the_readout_and_shared_passes(monkeypatch):
    """``readout(..., "powermean", p=2)`` and a MultiReadout sharing its passes run the
    kernel once, with the composite's values."""
    x, seg = _input(COUNTS["molecules"], torch.float32, 8)
    calls = []
    real = compiled.power_mean
    monkeypatch.setattr(compiled, "power_mean", lambda *a: calls.append(1) or real(*a))
    out = gp.readout(x, seg, "powermean", p=2.0)
    multi = MultiReadout(["mean", "powermean", "max"], readouts_kwargs=[{}, {"p": 2}, {}])(x, seg)
    assert len(calls) == 2
    with monkeypatch.context() as m:
        m.setattr(powermean, "fused", lambda *a: False)
        ref = gp.readout(x, seg, "powermean", p=2.0)
    _bits(out, ref)
    _bits(multi[:, 8:16], ref)


@needs_kernels
def test_fused_power_mean_is_not_taken_where_torch_must_see_the_ops():
    x, seg = _input(COUNTS["molecules"], torch.float32, 4)
    assert powermean.fused(x, seg, 2)
    for p in (2.5, 0.5, True, torch.tensor(2.0), 4):
        assert not powermean.fused(x, seg, p)
    with gp.use_backend("native"):
        assert not powermean.fused(x, seg, 2)
    assert not powermean.fused(x.half(), seg, 2)
    assert not powermean.fused(x, Segments.from_index(torch.tensor([1, 0] * 39), 6), 2)
    vmapped = torch.func.vmap(lambda t: segment_power_mean(t, seg, 2))(x[None])
    _bits(vmapped[0], segment_power_mean(x, seg, 2))
