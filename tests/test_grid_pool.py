"""GlobalPool1d/2d/3d: the graph readouts equal torch's adaptive pooling on images."""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from graphpool import (GraphpoolError, MaxReadout, MeanReadout, Readout, readout,
                       segment_reduce)
from graphpool.grid import (GlobalPool1d, GlobalPool2d, GlobalPool3d, global_pool,
                            image_to_batch, pad_images)

SHAPES = [(1, 1, 1, 1), (2, 3, 4, 5), (3, 8, 7, 7), (2, 5, 1, 9), (4, 16, 14, 14), (0, 4, 3, 3)]

# torch's own global pooling: the independent reference
TORCH_POOL = {
    "mean": lambda m: F.adaptive_avg_pool2d(m, 1).flatten(1),
    "max": lambda m: F.adaptive_max_pool2d(m, 1).flatten(1),
}


def tie_free(shape, dtype=torch.float32, seed=0):
    """Distinct values in every image: max has one argmax, so gradients are comparable."""
    n = 1
    for s in shape:
        n *= s
    g = torch.Generator().manual_seed(seed)
    return (torch.randperm(n, generator=g).to(dtype) / max(n, 1) - 0.5).view(shape)


def memory_layouts(fmap):
    """The same NCHW values as (name, tensor, layout) in every memory arrangement."""
    yield "contiguous", fmap, "NCHW"
    yield "channels_last", fmap.contiguous(memory_format=torch.channels_last), "NCHW"
    wide = torch.zeros(*fmap.shape[:3], 2 * fmap.size(3), dtype=fmap.dtype)
    wide[..., ::2] = fmap
    yield "strided", wide[..., ::2], "NCHW"
    yield "nhwc", fmap.permute(0, 2, 3, 1).contiguous(), "NHWC"


def test_seed_worked_example():
    fmap = torch.arange(1., 49.).view(1, 3, 4, 4)  # channels 1..16, 17..32, 33..48
    expected = torch.tensor([[8.5, 24.5, 40.5]])
    for name, m, layout in memory_layouts(fmap):
        assert torch.equal(GlobalPool2d("mean", layout=layout)(m), expected), name
    batch = image_to_batch(fmap)
    assert torch.equal(MeanReadout()(batch.x, batch), expected)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduce", ["mean", "max"])
def test_equals_torch_adaptive_pool_float32(shape, reduce):
    fmap = torch.randn(shape)
    expected = TORCH_POOL[reduce](fmap)
    for name, m, layout in memory_layouts(fmap):
        out = GlobalPool2d(reduce, layout=layout)(m)
        torch.testing.assert_close(out, expected, msg=name)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduce", ["mean", "max"])
def test_exact_in_float64(shape, reduce):
    # dyadic values: every partial sum is exact, so any summation order gives the same bits
    fmap = torch.randint(-64, 64, shape).double() / 8
    expected = TORCH_POOL[reduce](fmap)
    for name, m, layout in memory_layouts(fmap):
        assert torch.equal(GlobalPool2d(reduce, layout=layout)(m), expected), name
    fmap = torch.randn(shape, dtype=torch.float64)
    torch.testing.assert_close(GlobalPool2d(reduce)(fmap), TORCH_POOL[reduce](fmap))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("reduce", ["mean", "max"])
def test_half_precision(dtype, reduce):
    fmap = torch.randn(3, 6, 9, 9).to(dtype)
    for name, m, layout in memory_layouts(fmap):
        out = GlobalPool2d(reduce, layout=layout)(m)
        assert out.dtype == dtype
        torch.testing.assert_close(out, TORCH_POOL[reduce](fmap), msg=name)
        # accumulation in float32: as close to the float64 result as rounding allows
        torch.testing.assert_close(out, TORCH_POOL[reduce](fmap.double()).to(dtype), msg=name)


@pytest.mark.parametrize("shape", [s for s in SHAPES if s[0] > 0])
@pytest.mark.parametrize("reduce", ["mean", "max"])
def test_gradients_equal_torch_without_ties(shape, reduce):
    fmap = tie_free(shape)
    weight = torch.randn(shape[0], shape[1])
    for name, m, layout in memory_layouts(fmap):
        ours = m.detach().requires_grad_()
        (GlobalPool2d(reduce, layout=layout)(ours) * weight).sum().backward()
        ref = fmap.detach().requires_grad_()
        (TORCH_POOL[reduce](ref) * weight).sum().backward()
        expected = ref.grad.permute(0, 2, 3, 1) if layout == "NHWC" else ref.grad
        torch.testing.assert_close(ours.grad, expected, msg=name)


def test_max_tie_policy_differs_from_torch_by_design():
    """Ties share the gradient evenly (like torch.amax); AdaptiveMaxPool2d picks one pixel."""
    fmap = torch.ones(1, 1, 2, 2, requires_grad=True)
    GlobalPool2d("max")(fmap).sum().backward()
    assert fmap.grad.flatten().tolist() == [0.25] * 4
    ref = torch.ones(1, 1, 2, 2, requires_grad=True)
    nn.AdaptiveMaxPool2d(1)(ref).sum().backward()
    assert sorted(ref.grad.flatten().tolist()) == [0.0, 0.0, 0.0, 1.0]


@pytest.mark.parametrize("reduce", ["mean", "sum", "max", "min", "avgmax", "catavgmax"])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_gradcheck_float64(reduce, layout):
    fmap = tie_free((2, 3, 3, 4), torch.float64)
    if layout == "NHWC":
        fmap = fmap.permute(0, 2, 3, 1).contiguous()
    pool = GlobalPool2d(reduce, layout=layout)
    assert torch.autograd.gradcheck(pool, (fmap.requires_grad_(),))


def test_timm_combinations_closed_forms():
    fmap = torch.randn(2, 5, 6, 7)
    avg, mx = fmap.mean((2, 3)), fmap.amax((2, 3))
    torch.testing.assert_close(GlobalPool2d("avgmax")(fmap), 0.5 * (avg + mx))
    torch.testing.assert_close(GlobalPool2d("catavgmax")(fmap), torch.cat([avg, mx], 1))
    torch.testing.assert_close(GlobalPool2d("avg")(fmap), avg)
    torch.testing.assert_close(GlobalPool2d(("sum", "min"))(fmap),
                               torch.cat([fmap.sum((2, 3)), fmap.amin((2, 3))], 1))


@pytest.mark.parametrize("reduce, mult", [("mean", 1), ("avgmax", 1), ("catavgmax", 2),
                                          (("mean", "max", "sum"), 3), (MaxReadout(), 1)])
def test_feat_mult_sizes_a_classifier(reduce, mult):
    pool = GlobalPool2d(reduce)
    assert pool.feat_mult() == mult
    head = nn.Linear(8 * pool.feat_mult(), 3)
    assert head(pool(torch.randn(2, 8, 4, 4))).shape == (2, 3)


@pytest.mark.parametrize("layout, shape, out", [
    ("NCHW", (2, 3, 4, 5), (2, 3, 1, 1)), ("NHWC", (2, 4, 5, 3), (2, 1, 1, 3))])
def test_flatten_false_keeps_singleton_axes(layout, shape, out):
    fmap = torch.randn(shape)
    pooled = GlobalPool2d("mean", flatten=False, layout=layout)(fmap)
    assert pooled.shape == out
    if layout == "NCHW":
        torch.testing.assert_close(pooled, nn.AdaptiveAvgPool2d(1)(fmap))


def test_repr_word_for_word():
    assert repr(GlobalPool2d()) == "GlobalPool2d(reduce='mean', layout='NCHW', flatten=True)"
    assert repr(GlobalPool1d("MAX", layout="NLC", flatten=False)) == \
        "GlobalPool1d(reduce='max', layout='NLC', flatten=False)"
    assert repr(GlobalPool3d(MeanReadout())) == \
        "GlobalPool3d(reduce=MeanReadout(), layout='NCDHW', flatten=True)"


def test_module_equals_function():
    fmap = torch.randn(2, 4, 5, 5)
    for reduce in ["mean", "max", "catavgmax"]:
        assert torch.equal(GlobalPool2d(reduce)(fmap), global_pool(fmap, reduce))
    seq = torch.randn(2, 4, 9)
    assert torch.equal(GlobalPool1d("max")(seq), global_pool(seq, "max", "NCL"))


class GatedSum(Readout):
    """A learnable readout defined outside the library: sum of sigmoid(w.x + c) * x."""

    def __init__(self, channels):
        super().__init__()
        self.gate = nn.Linear(channels, 1)

    def forward(self, x, segments):
        return segment_reduce(torch.sigmoid(self.gate(x)) * x, segments, "sum")


def test_any_readout_instance_works_on_images_learnable_too():
    torch.manual_seed(0)
    readout = GatedSum(4)
    pool = GlobalPool2d(readout)
    assert [p is q for p, q in zip(pool.parameters(), readout.parameters())] == [True, True]
    fmap = torch.randn(3, 4, 5, 6)
    expected = torch.stack([
        (torch.sigmoid(readout.gate(img.flatten(1).t())) * img.flatten(1).t()).sum(0)
        for img in fmap])
    torch.testing.assert_close(pool(fmap), expected)
    pool(fmap).sum().backward()
    assert readout.gate.weight.grad is not None


@pytest.mark.parametrize("reduce", ["mean", "max", "sum", "min"])
def test_ragged_list_and_padded_mask_equal_each_images_own_pool(reduce):
    sizes = [(4, 5), (1, 1), (7, 3), (2, 6)]
    maps = [torch.randn(3, h, w) for h, w in sizes]
    expected = torch.stack([global_pool(m.unsqueeze(0), reduce)[0] for m in maps])
    torch.testing.assert_close(GlobalPool2d(reduce)(maps), expected)
    padded, mask = pad_images(maps, value=float("nan"))  # padding is never read
    torch.testing.assert_close(GlobalPool2d(reduce)(padded, mask), expected)
    if reduce == "mean":
        torch.testing.assert_close(expected, torch.stack([m.mean((1, 2)) for m in maps]))


def test_ragged_channels_last_and_gradients():
    maps = [torch.randn(h, w, 2, dtype=torch.float64, requires_grad=True)
            for h, w in [(2, 3), (4, 1)]]
    assert torch.autograd.gradcheck(lambda *ms: GlobalPool2d("mean", layout="NHWC")(list(ms)),
                                    maps)


@pytest.mark.parametrize("reduce", ["mean", "max"])
def test_1d_and_3d_equal_torch(reduce):
    seq = torch.randn(3, 4, 11)
    vol = torch.randn(2, 3, 4, 5, 6)
    ref1 = {"mean": F.adaptive_avg_pool1d, "max": F.adaptive_max_pool1d}[reduce]
    ref3 = {"mean": F.adaptive_avg_pool3d, "max": F.adaptive_max_pool3d}[reduce]
    torch.testing.assert_close(GlobalPool1d(reduce)(seq), ref1(seq, 1).flatten(1))
    torch.testing.assert_close(GlobalPool1d(reduce, layout="NLC")(seq.transpose(1, 2)),
                               ref1(seq, 1).flatten(1))
    torch.testing.assert_close(GlobalPool3d(reduce)(vol), ref3(vol, 1).flatten(1))
    torch.testing.assert_close(GlobalPool3d(reduce, layout="NDHWC")(vol.permute(0, 2, 3, 4, 1)),
                               ref3(vol, 1).flatten(1))


maps_strategy = st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 6),
                          st.integers(1, 6), st.integers(0, 2**16))


@settings(max_examples=40, deadline=None)
@given(maps_strategy, st.sampled_from(["mean", "max", "sum", "min"]))
def test_invariant_to_any_permutation_of_pixels(shape_seed, reduce):
    *shape, seed = shape_seed
    g = torch.Generator().manual_seed(seed)
    fmap = torch.randint(-8, 8, shape, generator=g).double() / 4
    perm = torch.randperm(shape[2] * shape[3], generator=g)
    shuffled = fmap.flatten(2)[..., perm].view(shape)
    assert torch.equal(GlobalPool2d(reduce)(shuffled), GlobalPool2d(reduce)(fmap))


@settings(max_examples=40, deadline=None)
@given(maps_strategy, st.integers(-7, 7), st.integers(-7, 7),
       st.sampled_from(["mean", "max", "catavgmax"]))
def test_circular_shifts_leave_it_unchanged(shape_seed, dy, dx, reduce):
    *shape, seed = shape_seed
    fmap = torch.randint(-8, 8, shape, generator=torch.Generator().manual_seed(seed)) / 4.
    shifted = torch.roll(fmap, shifts=(dy, dx), dims=(2, 3))
    assert torch.equal(GlobalPool2d(reduce)(shifted), GlobalPool2d(reduce)(fmap))


@settings(max_examples=40, deadline=None)
@given(maps_strategy, st.sampled_from(["mean", "max", "sum", "min"]),
       st.sampled_from(["NCHW", "NHWC"]))
def test_grid_path_equals_graph_path(shape_seed, reduce, layout):
    *shape, seed = shape_seed
    fmap = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    if layout == "NHWC":
        fmap = fmap.permute(0, 2, 3, 1)
    batch = image_to_batch(fmap, layout)
    graph = readout(batch.x, batch, reduce)
    torch.testing.assert_close(GlobalPool2d(reduce, layout=layout)(fmap), graph)


ERRORS = [
    ("rank", lambda: GlobalPool2d()(torch.randn(3, 4, 5)), "fmap.*4-D tensor.*unsqueeze"),
    ("rank-5", lambda: GlobalPool2d()(torch.randn(1, 2, 3, 4, 5)), "fmap.*4-D tensor"),
    ("layout-dims", lambda: GlobalPool2d(layout="NCL"), "layout.*'NCHW', 'NHWC'.*'NCL'"),
    ("layout-name", lambda: global_pool(torch.randn(1, 2, 3, 3), layout="CHWN"),
     "layout.*one of 'NCL'"),
    ("reduce-name", lambda: GlobalPool2d("medoid"), "reduce.*'catavgmax'.*str 'medoid'"),
    ("reduce-aggr", lambda: GlobalPool2d(nn.Identity()), "reduce.*Readout.*Identity"),
    ("reduce-learnable", lambda: GlobalPool2d("attention"),
     r"'reduce'.*needs the input width.*AttentionalReadout\(in_channels="),
    ("reduce-empty", lambda: GlobalPool2d(()), "reduce.*non-empty sequence"),
    ("mask-shape", lambda: GlobalPool2d()(torch.randn(2, 3, 4, 5),
                                          torch.ones(2, 4, 4, dtype=torch.bool)),
     r"mask.*\(2, 4, 5\).*pad_images"),
    ("mask-dtype", lambda: GlobalPool2d()(torch.randn(2, 3, 4, 5), torch.ones(2, 4, 5)),
     "mask.*bool tensor.*torch.float32"),
    ("mask-with-list", lambda: GlobalPool2d()([torch.randn(3, 2, 2)],
                                              torch.ones(1, 2, 2, dtype=torch.bool)),
     "mask.*None for a list"),
    ("list-empty", lambda: GlobalPool2d()([]), "fmap.*non-empty list"),
    ("list-rank", lambda: GlobalPool2d()([torch.randn(3, 2, 2), torch.randn(1, 3, 2, 2)]),
     r"fmap\[1\].*3-D tensor \(C, H, W\).*without the batch axis"),
    ("list-channels", lambda: GlobalPool2d()([torch.randn(3, 2, 2), torch.randn(4, 2, 2)]),
     r"fmap\[1\].*3 channels.*channel count of fmap\[0\]"),
    ("not-a-tensor", lambda: GlobalPool2d()("image"), "fmap.*a tensor"),
    ("sparse-mean", lambda: GlobalPool2d("mean")(torch.randn(2, 3, 4, 4).to_sparse()),
     r"'fmap'.*dense \(strided\).*sparse_coo.*fmap.to_dense\(\)"),
    ("sparse-max", lambda: global_pool(torch.randn(2, 3, 4, 4).to_sparse(), "max"),
     r"^global_pool: invalid 'fmap'.*dense \(strided\)"),
    ("mkldnn", lambda: GlobalPool2d("mean")(torch.randn(2, 3, 4, 4).to_mkldnn()),
     r"'fmap'.*dense \(strided\).*_mkldnn"),
    ("nested", lambda: GlobalPool2d("mean")(torch.nested.nested_tensor(
        [torch.randn(3, 4, 4), torch.randn(3, 4, 4)])), r"'fmap'.*dense.*a nested tensor"),
    ("sparse-mask", lambda: GlobalPool2d("mean")(torch.randn(2, 3, 4, 4), torch.ones(
        2, 4, 4, dtype=torch.bool).to_sparse()), r"'mask'.*dense \(strided\).*sparse_coo"),
    ("passthrough-list", lambda: GlobalPool2d(pool_type="")([torch.randn(3, 2, 2)] * 2),
     r"'fmap'.*one batched map.*pass-through.*got a list of 2 \(a torch.float32 tensor"
     r".*pick a pool type"),
    ("passthrough-none", lambda: GlobalPool2d(pool_type="")(None), r"'fmap'.*NoneType"),
    ("passthrough-mask", lambda: GlobalPool2d(pool_type="")(
        torch.randn(2, 3, 4, 4), torch.ones(2, 4, 4, dtype=torch.bool)),
     r"'mask'.*None for the pass-through.*drop mask"),
]


@pytest.mark.parametrize("name, call, match", ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_input_raises_graphpool_error(name, call, match):
    with pytest.raises(GraphpoolError, match=match):
        call()


def test_torch_compile_fullgraph():
    fmap = torch.randn(2, 3, 4, 5)
    compiled = torch.compile(GlobalPool2d("catavgmax"), fullgraph=True)
    torch.testing.assert_close(compiled(fmap), torch.cat([fmap.mean((2, 3)),
                                                          fmap.amax((2, 3))], 1))


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_make_fx_symbolic_trace_replays_other_sizes(layout):
    """A symbolic make_fx trace keeps the map's sizes symbolic (no size is a cache key)."""
    from torch.fx.experimental.proxy_tensor import make_fx

    pool = GlobalPool2d("catavgmax", input_fmt=layout)
    graph = make_fx(pool, tracing_mode="symbolic")(torch.randn(2, 3, 4, 5))
    for shape in ((2, 3, 4, 5), (1, 6, 7, 2), (3, 2, 1, 1)):
        fmap = torch.randn(shape)
        torch.testing.assert_close(graph(fmap), pool(fmap))


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min"])
@pytest.mark.parametrize("layout, flatten", [("NCHW", True), ("NHWC", False), ("NCHW", False)])
def test_named_readouts_take_the_short_path_to_the_same_result(name, layout, flatten):
    """A name calls segment_reduce directly; an instance goes through the module."""
    from graphpool.readouts import READOUTS

    fmap = torch.randint(-3, 4, (3, 4, 5, 6)).float()  # ties for max/min
    short, general = GlobalPool2d(name, flatten, layout), GlobalPool2d(READOUTS[name](), flatten,
                                                                        layout)
    assert short._direct == name and general._direct is None
    a, b = fmap.clone().requires_grad_(), fmap.clone().requires_grad_()
    out_a, out_b = short(a), general(b)
    (out_a * torch.arange(out_a.numel()).view(out_a.shape)).sum().backward()
    (out_b * torch.arange(out_b.numel()).view(out_b.shape)).sum().backward()
    assert torch.equal(out_a, out_b) and torch.equal(a.grad, b.grad)


# ----------------------------------------------------------------- timm's vocabulary
def _timm_reference(fmap, pool_type, channels_last):
    """timm's SelectAdaptivePool2d semantics, written from its documentation with torch ops:
    'avg'/'fast' mean, 'max' amax, 'avgmax' 0.5 * (avg + max), 'catavgmax' [avg, max]."""
    dims = (1, 2) if channels_last else (2, 3)
    kind = pool_type[4:] if pool_type.startswith("fast") else pool_type
    avg, mx = fmap.mean(dims), fmap.amax(dims)
    return {"": avg, "avg": avg, "max": mx, "avgmax": 0.5 * (avg + mx),
            "catavgmax": torch.cat([avg, mx], 1)}[kind]


@pytest.mark.parametrize("pool_type", ["avg", "max", "avgmax", "catavgmax", "fast", "fastavg",
                                       "fastmax", "fastavgmax", "fastcatavgmax"])
@pytest.mark.parametrize("input_fmt", ["NCHW", "NHWC"])
def test_timm_names_and_arguments(pool_type, input_fmt):
    fmap = tie_free((3, 5, 4, 6) if input_fmt == "NCHW" else (3, 4, 6, 5))
    pool = GlobalPool2d(pool_type=pool_type, input_fmt=input_fmt, flatten=True)
    torch.testing.assert_close(pool(fmap), _timm_reference(fmap, pool_type,
                                                           input_fmt == "NHWC"))
    assert not pool.is_identity()
    assert pool.feat_mult() == (2 if pool_type.endswith("catavgmax") else 1)
    assert pool(fmap).size(1) == pool.out_features(5) == 5 * pool.feat_mult()


@pytest.mark.parametrize("flatten, shape", [(False, (2, 3, 4, 5)), (True, (2, 60))])
def test_timm_empty_pool_type_is_the_identity(flatten, shape):
    fmap = torch.randn(2, 3, 4, 5)
    pool = GlobalPool2d(pool_type="", flatten=flatten)
    assert pool.is_identity() and pool(fmap).shape == shape
    torch.testing.assert_close(pool(fmap).reshape(fmap.shape), fmap)


@pytest.mark.parametrize("reduce, in_channels, width", [
    ("catavgmax", 8, 16), (["mean", "std", "max"], 8, 24), ("quantile", 8, 8),
    (["count", "mean"], 8, 9), ("median", 4, 4)])
def test_out_features_is_the_real_output_width(reduce, in_channels, width):
    pool = GlobalPool2d(reduce)
    assert pool.out_features(in_channels) == width
    assert pool(torch.randn(2, in_channels, 3, 3)).shape == (2, width)


def test_feat_mult_follows_the_readout_and_refuses_widths_it_cannot_express():
    from graphpool import QuantileReadout
    assert GlobalPool2d(QuantileReadout([0.25, 0.5, 0.75])).feat_mult() == 3
    with pytest.raises(GraphpoolError, match=r"^GlobalPool2d: invalid 'reduce'.*out_features"):
        GlobalPool2d(["count", "mean"]).feat_mult()


@pytest.mark.parametrize("name", ["std", "var", "logsumexp", "softmax", "powermean", "median",
                                  "vpa", "prod"])
def test_statistic_readouts_on_images_equal_torch_per_image(name):
    fmap = tie_free((2, 3, 4, 5), torch.float64) + 1.0  # positive: prod and powermean defined
    flat = fmap.flatten(2)
    n = flat.size(-1)
    want = {"std": lambda: flat.std(-1, correction=0), "var": lambda: flat.var(-1, correction=0),
            "logsumexp": lambda: flat.logsumexp(-1),
            "softmax": lambda: (flat.softmax(-1) * flat).sum(-1),
            "powermean": lambda: flat.mean(-1), "median": lambda: flat.median(-1).values,
            "vpa": lambda: flat.sum(-1) / n ** 0.5, "prod": lambda: flat.prod(-1)}[name]()
    torch.testing.assert_close(GlobalPool2d(name)(fmap), want)


@pytest.mark.parametrize("bad, match", [
    (lambda: GlobalPool2d("max", pool_type="avg"), r"'pool_type'.*same value as reduce"),
    (lambda: GlobalPool2d(layout="NCHW", input_fmt="NHWC"), r"'input_fmt'"),
    (lambda: GlobalPool2d(output_size=2), r"'output_size': expected 1"),
    (lambda: GlobalPool2d(pool_type="fastmedoid"), r"'reduce'"),
])
def test_timm_arguments_bad_input(bad, match):
    with pytest.raises(GraphpoolError, match=match):
        bad()


def test_catavgmax_on_graphs_as_on_images():
    x, batch = torch.randn(7, 4), torch.tensor([0, 0, 0, 1, 1, 2, 2])
    want = torch.cat([readout(x, batch, "mean"), readout(x, batch, "max")], -1)
    torch.testing.assert_close(readout(x, batch, "catavgmax"), want)
    torch.testing.assert_close(readout(x, batch, ["mean", "max"]), want)
    fmap = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(GlobalPool2d("catavgmax")(fmap),
                               readout(fmap.flatten(2).transpose(1, 2), None, "catavgmax")
                               .flatten(1))


@pytest.mark.parametrize("cls, layout, shape", [
    (GlobalPool2d, "NCHW", (3, 5, 4, 6)), (GlobalPool2d, "NHWC", (3, 4, 6, 5)),
    (GlobalPool1d, "NCL", (2, 3, 7)), (GlobalPool1d, "NLC", (2, 7, 3)),
    (GlobalPool3d, "NCDHW", (2, 3, 2, 3, 4)), (GlobalPool3d, "NDHWC", (2, 2, 3, 4, 3))])
@pytest.mark.parametrize("reduce", ["sum", "mean", "avg"])
@pytest.mark.parametrize("flatten", [True, False])
def test_sums_and_means_of_float_maps_equal_the_readout_of_the_node_view(cls, layout, shape,
                                                                        reduce, flatten):
    """The module calls torch's reduction on the map itself for float32/64 sums and means:
    values and gradients equal the segment readout of the node view, and the mask path
    (an all-true mask) gives the same pooling."""
    g = torch.Generator().manual_seed(0)
    fmap = torch.randn(shape, generator=g, dtype=torch.float64).requires_grad_()
    pool = cls(reduce, layout=layout, flatten=flatten)
    assert pool._torch is not None
    out = pool(fmap)
    expected = global_pool(fmap, reduce, layout, flatten=flatten)  # nodes -> segment_reduce
    seed = torch.randn(expected.shape, generator=g, dtype=torch.float64)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12 * shape[1] * 64)
    (grad,) = torch.autograd.grad(out, fmap, seed)
    (expected_grad,) = torch.autograd.grad(expected, fmap, seed)
    torch.testing.assert_close(grad, expected_grad, rtol=0, atol=1e-15)
    mask = torch.ones(fmap.shape[0], *[fmap.shape[i] for i in pool._spatial], dtype=torch.bool)
    torch.testing.assert_close(pool(fmap, mask), expected, rtol=0, atol=1e-12 * 64)


@pytest.mark.parametrize("reduce, torch_op", [("max", torch.amax), ("min", torch.amin)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_channels_first_max_backward_runs_over_each_channel_with_the_even_tie_split(
        reduce, torch_op, dtype, monkeypatch):
    """A channels-first map's max/min backward is one kernel over each channel's contiguous
    pixels; with ties everywhere it equals torch.amax's even split (its documented rule)."""
    from graphpool.kernels import compiled

    if not compiled.available():
        pytest.skip("the compiled kernels are not available")
    calls = []
    real = compiled.run_extremum_backward
    monkeypatch.setattr(compiled, "run_extremum_backward",
                        lambda *a: calls.append(1) or real(*a))
    g = torch.Generator().manual_seed(0)
    fmap = torch.randint(-2, 3, (3, 5, 4, 6), generator=g).to(dtype).requires_grad_()
    seed = torch.randn(3, 5, generator=g).to(dtype)
    (grad,) = torch.autograd.grad(GlobalPool2d(reduce)(fmap), fmap, seed)
    assert calls and grad.shape == fmap.shape
    twin = fmap.detach().double().requires_grad_()
    (expected,) = torch.autograd.grad(torch_op(twin, (2, 3)), twin, seed.double())
    torch.testing.assert_close(grad.double(), expected, rtol=0,
                               atol=0 if dtype == torch.float64 else 1e-2 * seed.abs().max())
    channels_last = fmap.detach().permute(0, 2, 3, 1).contiguous().requires_grad_()
    (other,) = torch.autograd.grad(GlobalPool2d(reduce, layout="NHWC")(channels_last),
                                   channels_last, seed)
    assert len(calls) == 1  # channels last: no runs, the generic even split
    torch.testing.assert_close(other.permute(0, 3, 1, 2), grad, rtol=0, atol=0)
