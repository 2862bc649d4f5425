"""Local pooling as window segments == avg_pool2d / max_pool2d; receptive fields."""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from graphpool import GraphpoolError, MeanReadout
from graphpool.grid import ReceptiveField, receptive_field, window_pool, window_segments

# (H, W, kernel, stride): non-overlapping, overlapping (stride < kernel), gaps (stride >
# kernel), rectangular, kernel == map, sizes that do not divide
CASES = [
    (4, 4, 2, 2), (5, 7, 2, 2), (6, 6, 3, 1), (7, 5, 3, 2), (8, 9, (2, 3), (1, 2)),
    (5, 5, 5, 1), (9, 9, 2, 3), (3, 10, (1, 4), (1, 3)), (1, 1, 1, 1),
]
TORCH = {"mean": F.avg_pool2d, "max": F.max_pool2d}


def tie_free(shape, dtype=torch.float32):
    n = torch.Size(shape).numel()
    return (torch.randperm(n).to(dtype) / n - 0.5).view(shape)


def naive_windows(h, w, kernel, stride):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    out = []
    for top in range(0, h - kh + 1, sh):
        for left in range(0, w - kw + 1, sw):
            out.append([(top + a) * w + left + c for a in range(kh) for c in range(kw)])
    return out


@pytest.mark.parametrize("h, w, kernel, stride", CASES)
def test_window_index_equals_a_naive_loop(h, w, kernel, stride):
    windows = window_segments(h, w, kernel, stride)
    expected = naive_windows(h, w, kernel, stride)
    assert windows.index.view(len(expected), -1).tolist() == expected
    assert windows.out_size[0] * windows.out_size[1] == len(expected)
    assert windows.segments.kind == "uniform"


@pytest.mark.parametrize("h, w, kernel, stride", CASES)
@pytest.mark.parametrize("reduce", ["mean", "max"])
def test_values_and_gradients_equal_torch(h, w, kernel, stride, reduce):
    fmap = tie_free((2, 3, h, w))
    ours = fmap.clone().requires_grad_()
    ref = fmap.clone().requires_grad_()
    out = window_pool(ours, kernel, stride, reduce)
    expected = TORCH[reduce](ref, kernel, stride)
    torch.testing.assert_close(out, expected)
    weight = torch.randn(expected.shape)
    (out * weight).sum().backward()
    (expected * weight).sum().backward()
    torch.testing.assert_close(ours.grad, ref.grad)


@pytest.mark.parametrize("reduce", ["mean", "max"])
def test_channels_last_layout_and_memory(reduce):
    fmap = torch.randn(2, 4, 7, 7)
    expected = TORCH[reduce](fmap, 3, 2)
    nhwc = window_pool(fmap.permute(0, 2, 3, 1).contiguous(), 3, 2, reduce, layout="NHWC")
    torch.testing.assert_close(nhwc, expected.permute(0, 2, 3, 1))
    cl = window_pool(fmap.contiguous(memory_format=torch.channels_last), 3, 2, reduce)
    torch.testing.assert_close(cl, expected)


@pytest.mark.parametrize("reduce", ["mean", "max", "sum", "min"])
def test_gradcheck_float64_overlapping(reduce):
    fmap = tie_free((1, 2, 5, 4), torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda m: window_pool(m, (3, 2), 1, reduce), (fmap,))


def test_readout_instance_and_other_reductions():
    fmap = torch.randn(1, 2, 6, 6)
    torch.testing.assert_close(window_pool(fmap, 2, reduce=MeanReadout()), F.avg_pool2d(fmap, 2))
    torch.testing.assert_close(window_pool(fmap, 3, 3, "sum"), F.avg_pool2d(fmap, 3) * 9)
    torch.testing.assert_close(window_pool(fmap, 2, 1, "min"), -F.max_pool2d(-fmap, 2, 1))


def test_max_tie_policy_differs_from_torch_by_design():
    fmap = torch.ones(1, 1, 2, 2, requires_grad=True)
    window_pool(fmap, 2, reduce="max").sum().backward()
    assert fmap.grad.flatten().tolist() == [0.25] * 4


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.integers(1, 4), st.integers(1, 4),
       st.integers(1, 4), st.integers(1, 4), st.sampled_from(["mean", "max"]))
def test_random_geometries_equal_torch(h, w, kh, kw, sh, sw, reduce):
    if kh > h or kw > w:
        return
    fmap = torch.randn(2, 2, h, w)
    torch.testing.assert_close(window_pool(fmap, (kh, kw), (sh, sw), reduce),
                               TORCH[reduce](fmap, (kh, kw), (sh, sw)))


def empirical_receptive_field(layers, size=64):
    """Input pixels that reach output pixels (0, 0) and (0, 1) of a stack of avg pools."""
    def extent(col):
        x = torch.zeros(1, 1, 1, size, requires_grad=True)
        y = x
        for k, s in layers:
            y = F.avg_pool2d(y, (1, k), (1, s))
        y[0, 0, 0, col].backward()
        hit = x.grad.flatten().nonzero().flatten()
        return hit.min().item(), hit.max().item()
    first, second = extent(0), extent(1)
    return first[1] - first[0] + 1, second[0] - first[0]


@pytest.mark.parametrize("layers", [
    [(3, 1)], [(3, 1), (3, 1)], [(2, 2), (2, 2)], [(3, 1), (2, 2), (3, 1), (2, 2)],
    [(5, 2), (3, 3)], [(7, 2), (3, 2), (3, 1), (3, 2)],
])
def test_receptive_field_equals_gradient_support(layers):
    rf = receptive_field(layers)
    assert len(rf) == len(layers)
    assert (rf[-1].size, rf[-1].jump) == empirical_receptive_field(layers)


def test_receptive_field_of_a_small_vgg():
    # conv3 conv3 pool2 conv3 conv3 pool2: the classic 16 pixels after the second block
    layers = [(3, 1), (3, 1), (2, 2), (3, 1), (3, 1), (2, 2)]
    assert receptive_field(layers)[-1] == ReceptiveField(size=16, jump=4)
    assert receptive_field([]) == []


ERRORS = [
    ("kernel-too-big", lambda: window_segments(3, 4, 5), "kernel.*fits in the 3 x 4.*5 x 5"),
    ("kernel-too-wide", lambda: window_pool(torch.randn(1, 1, 4, 4), (2, 5)),
     "kernel.*4 x 4 map.*2 x 5"),
    ("stride-0", lambda: window_segments(4, 4, 2, 0), "stride.*int >= 1.*0"),
    ("stride-neg", lambda: window_pool(torch.randn(1, 1, 4, 4), 2, (1, -1)),
     r"stride.*\(1, -1\)"),
    ("kernel-triple", lambda: window_segments(4, 4, (2, 2, 2)), "kernel.*pair"),
    ("height", lambda: window_segments(-1, 4, 1), "height.*int >= 0"),
    ("list", lambda: window_pool([torch.randn(1, 4, 4)], 2), "fmap.*tensor.*pad_images"),
    ("rank", lambda: window_pool(torch.randn(1, 4, 4), 2), "fmap.*4-D"),
    ("layout", lambda: window_pool(torch.randn(1, 1, 4), 2, layout="NCL"), "layout.*'NCHW'"),
    ("reduce", lambda: window_pool(torch.randn(1, 1, 4, 4), 2, reduce="medoid"),
     "reduce.*'medoid'"),
    ("layers", lambda: receptive_field([(3, 1), (2, 0)]), r"layers\[1\].*\(kernel, stride\)"),
]


@pytest.mark.parametrize("name, call, match", ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_input_raises_graphpool_error(name, call, match):
    with pytest.raises(GraphpoolError, match=match):
        call()
