"""Attention readouts (graphpool/readouts/transformer.py) against independent references.

* SetTransformerReadout and GMTReadout: PyG's SetTransformerAggregation and
  GraphMultisetTransformer with the same weights (state dicts load both ways), run on the
  whole batch when no set is empty and set by set (a loop, no padding) otherwise.
* LatentAttentionReadout: a per-set loop over torch's scaled_dot_product_attention with
  the module's own parameters.

Values and gradients (input and parameters), float32 and float64, every grouping of
tests/groupings.py (mask padding is nan), empty sets, permutations, PyG Batch input.
Tolerances are multiples of the dtype's eps, scaled by the size of the problem.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.data import Batch, Data
from torch_geometric.nn import SimpleConv
from torch_geometric.nn.aggr import GraphMultisetTransformer, SetTransformerAggregation

from graphpool import GraphpoolError, Segments
from graphpool.readouts import Readout
from graphpool.readouts.transformer import (GMTReadout, LatentAttentionReadout,
                                            SetTransformerReadout)

from .groupings import groupings

DTYPES = (torch.float32, torch.float64)
CLASSES = (SetTransformerReadout, GMTReadout, LatentAttentionReadout)
PYG = {SetTransformerReadout: SetTransformerAggregation, GMTReadout: GraphMultisetTransformer}


# ------------------------------------------------------------------------ helpers

@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tensors are tiny: one intra-op thread is fastest, and stays fast on a busy
    machine (idle threads spinning on shared cores slow small ops tenfold)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tol(dtype, size=1):
    """Absolute/relative tolerance: a multiple of eps growing with the problem size (the
    number of terms summed along the longest path of the computation)."""
    return 32 * torch.finfo(dtype).eps * math.sqrt(max(1, size))


def assert_close(got, expected, dtype, size=1, msg=""):
    scale = max(1.0, float(expected.detach().abs().max())) if expected.numel() else 1.0
    t = tol(dtype, size)
    torch.testing.assert_close(got, expected, atol=t * scale, rtol=t, equal_nan=False,
                               msg=lambda m: f"{msg}: {m}")


def build(cls, channels, dtype=torch.float32, seed=0, **kwargs):
    torch.manual_seed(seed)
    module = cls(channels, **kwargs).to(dtype).eval()
    if cls is LatentAttentionReadout:  # non-trivial biases and norm, not the init values
        with torch.no_grad():
            for p in module.parameters():
                p.add_(0.1 * torch.randn_like(p))
    return module


def pyg_twin(module):
    """PyG's class with the same arguments and weights as ``module``."""
    if isinstance(module, SetTransformerReadout):
        twin = SetTransformerAggregation(
            module.in_channels, module.num_seed_points, len(module.encoders),
            len(module.decoders), module.heads, module.concat, module.layer_norm,
            module.dropout)
    else:
        twin = GraphMultisetTransformer(module.in_channels, module.k, len(module.encoders),
                                        module.heads, module.layer_norm, module.dropout)
    twin = twin.to(next(module.parameters()).dtype).eval()
    twin.load_state_dict(module.state_dict())
    return twin


def latent_reference_one(module, x):
    """timm's AttentionPoolLatent on one set ``x`` [n, C], written out with SDPA."""
    C, H, L = module.in_channels, module.heads, module.num_latents
    D = C // H
    q = F.linear(module.latent[0], module.q.weight, module.q.bias)           # [L, C]
    q = q.reshape(L, H, D).transpose(0, 1)                                 # [H, L, D]
    kv = F.linear(x, module.kv.weight, module.kv.bias).reshape(-1, 2, H, D)
    k, v = kv[:, 0].transpose(0, 1), kv[:, 1].transpose(0, 1)             # [H, n, D]
    o = F.scaled_dot_product_attention(q, k, v)                            # [H, L, D]
    z = F.linear(o.transpose(0, 1).reshape(L, C), module.proj.weight, module.proj.bias)
    h = F.layer_norm(z, (C,), module.norm.weight, module.norm.bias)
    h = F.linear(F.gelu(F.linear(h, module.mlp.fc1.weight, module.mlp.fc1.bias)),
                 module.mlp.fc2.weight, module.mlp.fc2.bias)
    z = z + h
    return z[0] if module.pool == "token" else z.mean(0)


def reference(module, x, counts, fill_value=0.0):
    """``[B, W]`` set by set: no padding, no batching. Returns (output, the module whose
    parameters it used)."""
    if isinstance(module, LatentAttentionReadout):
        ref_module, one = module, lambda rows: latent_reference_one(module, rows)
    else:
        ref_module = pyg_twin(module)
        one = lambda rows: ref_module(rows, torch.zeros(len(rows), dtype=torch.long),
                                      dim_size=1)[0]
    width = module.out_features(module.in_channels)
    outs, start = [], 0
    for n in counts:
        if n == 0:
            outs.append(torch.full((width,), fill_value, dtype=x.dtype))
        else:
            outs.append(one(x[start:start + n]))
        start += n
    if not outs:
        return x.new_zeros(0, width), ref_module
    return torch.stack(outs), ref_module


def params_of(module):
    return [p for _, p in sorted(module.named_parameters())]


def grads(out, weight, inputs):
    got = torch.autograd.grad((out * weight).sum(), inputs, allow_unused=True,
                              retain_graph=True)
    return [torch.zeros_like(i) if g is None else g for g, i in zip(got, inputs)]


# ------------------------------------------------------------ configurations

CONFIGS = [
    (SetTransformerReadout, 8, {}),
    (SetTransformerReadout, 8, dict(num_seed_points=3, heads=2, layer_norm=True)),
    (SetTransformerReadout, 6, dict(num_seed_points=2, heads=3, concat=False,
                                    num_encoder_blocks=2, num_decoder_blocks=0,
                                    dropout=0.2)),
    (SetTransformerReadout, 4, dict(num_encoder_blocks=0, num_decoder_blocks=2)),
    (GMTReadout, 8, {}),
    (GMTReadout, 8, dict(k=2, heads=4, layer_norm=True, num_encoder_blocks=2)),
    (GMTReadout, 5, dict(k=1, num_encoder_blocks=0, dropout=0.3)),
    (LatentAttentionReadout, 16, {}),
    (LatentAttentionReadout, 12, dict(num_latents=3, heads=4, pool="avg")),
    (LatentAttentionReadout, 6, dict(num_latents=2, heads=2, qkv_bias=False, mlp_ratio=1.5)),
    (LatentAttentionReadout, 5, dict(num_latents=4, pool="token", dropout=0.1)),
]
COUNTS = [(3, 1, 4, 2), (2, 0, 5, 0, 1), (3, 3, 3), (0, 4), (1,)]


def _id(case):
    cls, channels, kwargs = case
    return f"{cls.__name__}-{channels}-" + "-".join(f"{k}={v}" for k, v in kwargs.items())


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", CONFIGS, ids=_id)
def test_values_and_gradients_match_the_reference_on_every_grouping(case, dtype):
    cls, channels, kwargs = case
    module = build(cls, channels, dtype, **kwargs)
    for counts in COUNTS:
        g = torch.Generator().manual_seed(sum(counts))
        x = torch.randn(sum(counts), channels, dtype=dtype, generator=g, requires_grad=True)
        expected, ref_module = reference(module, x, counts, fill_value=-2.5)
        weight = torch.randn(expected.shape, dtype=dtype, generator=g)
        ref_grads = grads(expected, weight, [x, *params_of(ref_module)])
        size = max(counts) * channels
        module.fill_value = -2.5
        for name, x_g, seg in groupings(x, counts):
            out = module(x_g, seg)
            assert out.shape == expected.shape and out.dtype == dtype
            msg = f"{name} {counts}"
            assert_close(out, expected, dtype, size, msg)
            got = grads(out, weight, [x, *params_of(module)])
            for i, (a, b) in enumerate(zip(got, ref_grads)):
                assert_close(a, b, dtype, size * len(counts), f"{msg} grad {i}")
            if name == "mask":  # nan padding: no nan, no gradient to padding rows
                (gx,) = grads(out, weight, [x_g])
                assert torch.isfinite(gx).all()
                assert (gx[~seg.mask] == 0).all()


@pytest.mark.parametrize("case", [c for c in CONFIGS if c[0] in PYG], ids=_id)
def test_pyg_state_dict_loads_and_gives_pygs_results_on_the_whole_batch(case):
    cls, channels, kwargs = case
    dtype = torch.float64
    module = build(cls, channels, dtype, **kwargs)
    twin = pyg_twin(module)
    assert module.state_dict().keys() == twin.state_dict().keys()
    x = torch.randn(10, channels, dtype=dtype, requires_grad=True)
    index = torch.tensor([0, 0, 0, 1, 2, 2, 2, 2, 3, 3])
    out, expected = module(x, index), twin(x, index)
    assert_close(out, expected, dtype, 4 * channels, "values")
    weight = torch.randn_like(out)
    for a, b in zip(grads(out, weight, [x, *params_of(module)]),
                    grads(expected, weight, [x, *params_of(twin)])):
        assert_close(a, b, dtype, 40 * channels, "grads")
    back = cls(channels, **kwargs).to(dtype)
    back.load_state_dict(twin.state_dict())  # and back
    assert_close(back.eval()(x, index), expected, dtype, 4 * channels, "reloaded")


@pytest.mark.parametrize("cls", list(PYG))
def test_empty_sets_are_fill_value_here_and_not_in_pyg(cls):
    module = build(cls, 8, torch.float32, heads=2)
    twin = pyg_twin(module)
    x = torch.randn(5, 8, requires_grad=True)
    index = torch.tensor([0, 0, 0, 2, 2])  # set 1 and set 3 are empty
    out = module(x, index, dim_size=4)
    pyg = twin(x, index, dim_size=4)
    for b in (1, 3):
        assert torch.equal(out[b], torch.zeros_like(out[b]))
        # PyG: nan (PyTorch <= 2.4) or a value of the weights alone (> 2.4); never the fill
        assert not torch.equal(pyg[b], torch.zeros_like(pyg[b]))
    assert_close(out[[0, 2]], pyg[[0, 2]], torch.float32, 24, "non-empty sets")
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in module.parameters())


@pytest.mark.parametrize("cls", list(PYG))
def test_no_attention_is_over_an_empty_key_set(cls):
    """The invariant behind finite gradients on every PyTorch version (<= 2.4 gives nan for
    an all-masked row, later ones 0): every query has a key, so no softmax is 0/0."""
    module = build(cls, 4, torch.float64, num_encoder_blocks=2)
    seen = []

    def hook(attn, args, kwargs):
        padding = kwargs.get("key_padding_mask")
        seen.append(True if padding is None else bool((~padding).any(-1).all()))

    for attn in [m for m in module.modules() if isinstance(m, torch.nn.MultiheadAttention)]:
        attn.register_forward_pre_hook(hook, with_kwargs=True)
    for counts in [(0, 2, 0), (0,), (), (1, 0, 3)]:
        x = torch.randn(sum(counts), 4, dtype=torch.float64)
        for name, x_g, seg in groupings(x, counts):
            module(x_g, seg)
    assert seen and all(seen)


@pytest.mark.parametrize("fill_value", [0.0, -1.5, float("inf")])
@pytest.mark.parametrize("cls", CLASSES)
def test_empty_sets_give_fill_value_with_finite_gradients_in_training(cls, fill_value):
    kwargs = {"dropout": 0.3} if cls is not LatentAttentionReadout else {"dropout": 0.5}
    module = build(cls, 8, torch.float64, fill_value=fill_value, **kwargs).train()
    counts = (0, 3, 0, 1, 0)
    x = torch.randn(sum(counts), 8, dtype=torch.float64, requires_grad=True)
    for name, x_g, seg in groupings(x, counts):
        out = module(x_g, seg)
        empty = torch.tensor(counts) == 0
        assert (out[empty] == fill_value).all(), name
        assert torch.isfinite(out[~empty]).all(), name
        gx, *gp = grads(out, torch.ones_like(out).masked_fill(empty.unsqueeze(-1), 0),
                        [x_g, *params_of(module)])
        assert torch.isfinite(gx).all() and all(torch.isfinite(g).all() for g in gp), name


@pytest.mark.parametrize("cls", CLASSES)
def test_only_empty_sets_and_no_sets(cls):
    module = build(cls, 4, torch.float64, fill_value=7.0)
    width = module.out_features(4)
    x = torch.randn(0, 4, dtype=torch.float64, requires_grad=True)
    for counts in [(0, 0, 0), ()]:
        for name, x_g, seg in groupings(x, counts):
            out = module(x_g, seg)
            assert out.shape == (len(counts), width) and (out == 7.0).all(), name
            # nothing of an empty set reaches a parameter: gradients exactly 0
            for g in grads(out, torch.ones_like(out), params_of(module)):
                assert (g == 0).all(), name


# ------------------------------------------------------------ properties

settings.register_profile("transformer_readouts", max_examples=25, deadline=None,
                          derandomize=True)

_MODULES = {}


def module_for(cls, dtype):
    key = (cls, dtype)
    if key not in _MODULES:
        kwargs = {SetTransformerReadout: dict(num_seed_points=2, heads=2, layer_norm=True),
                  GMTReadout: dict(k=3, heads=2),
                  LatentAttentionReadout: dict(num_latents=2, heads=2, pool="avg")}[cls]
        _MODULES[key] = build(cls, 6, dtype, **kwargs)
    return _MODULES[key]


counts_st = st.lists(st.integers(0, 6), min_size=1, max_size=5)


@settings(settings.get_profile("transformer_readouts"))
@given(counts=counts_st, cls=st.sampled_from(CLASSES), dtype=st.sampled_from(DTYPES),
       seed=st.integers(0, 2 ** 16))
def test_permuting_nodes_inside_sets_does_not_change_the_output(counts, cls, dtype, seed):
    module = module_for(cls, dtype)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(sum(counts), 6, dtype=dtype, generator=g)
    index = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    out = module(x, index, dim_size=len(counts))
    perm = torch.randperm(len(index), generator=g)  # any order, index unsorted
    shuffled = module(x[perm], index[perm], dim_size=len(counts))
    assert_close(shuffled, out, dtype, max(counts) * 6, f"{counts}")
    within = torch.cat([torch.randperm(n, generator=g) + s for n, s in zip(
        counts, [0, *torch.tensor(counts).cumsum(0).tolist()])])
    assert_close(module(x[within], index, dim_size=len(counts)), out, dtype,
                 max(counts) * 6, f"{counts} within")


@settings(settings.get_profile("transformer_readouts"))
@given(counts=counts_st, cls=st.sampled_from(CLASSES), seed=st.integers(0, 2 ** 16))
def test_relabelling_sets_permutes_the_outputs(counts, cls, seed):
    dtype = torch.float64
    module = module_for(cls, dtype)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(sum(counts), 6, dtype=dtype, generator=g)
    index = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    relabel = torch.randperm(len(counts), generator=g)  # set b becomes set relabel[b]
    out = module(x, index, dim_size=len(counts))
    moved = module(x, relabel[index], dim_size=len(counts))
    assert_close(moved[relabel], out, dtype, max(counts) * 6, f"{counts}")


@settings(settings.get_profile("transformer_readouts"))
@given(counts=counts_st, cls=st.sampled_from(CLASSES), seed=st.integers(0, 2 ** 16))
def test_every_grouping_agrees_with_the_reference(counts, cls, seed):
    dtype = torch.float64
    module = module_for(cls, dtype)
    x = torch.randn(sum(counts), 6, dtype=dtype, generator=torch.Generator().manual_seed(seed))
    expected, _ = reference(module, x, counts)
    for name, x_g, seg in groupings(x, counts, seed=seed):
        assert_close(module(x_g, seg), expected, dtype, max(counts) * 6, f"{name} {counts}")


# ------------------------------------------------------------ layouts and PyG use

@pytest.mark.parametrize("cls", CLASSES)
def test_leading_dims_are_read_out_independently(cls):
    module = module_for(cls, torch.float64)
    counts = (2, 0, 3, 1)
    x = torch.randn(3, sum(counts), 6, dtype=torch.float64)
    expected = torch.stack([reference(module, xi, counts)[0] for xi in x])
    for name, x_g, seg in groupings(x, counts):
        assert_close(module(x_g, seg), expected, torch.float64, 18, name)


@pytest.mark.parametrize("cls", CLASSES)
def test_graph_readout_of_a_pyg_batch(cls):
    module = module_for(cls, torch.float32)
    g = torch.Generator().manual_seed(3)
    sizes = (4, 0, 2, 5)
    graphs = [Data(x=torch.randn(n, 6, generator=g),
                   edge_index=torch.randint(0, max(n, 1), (2, 2 * n), generator=g))
              for n in sizes]
    batch = Batch.from_data_list(graphs)
    out = module(batch.x, batch)
    assert out.shape == (4, module.out_features(6))
    expected, _ = reference(module, batch.x, sizes)
    assert_close(out, expected, torch.float32, 30, "Batch")
    assert_close(module(batch.x, batch.batch, dim_size=4), expected, torch.float32, 30, "batch")


def test_latent_attention_is_a_message_passing_aggregation():
    module = module_for(LatentAttentionReadout, torch.float64)
    conv = SimpleConv(aggr=module)
    x = torch.randn(5, 6, dtype=torch.float64)
    edge_index = torch.tensor([[1, 2, 3, 0, 4, 2], [0, 0, 0, 4, 1, 1]])
    out = conv(x, edge_index)
    for node in range(5):
        sources = edge_index[0, edge_index[1] == node]
        expected = (latent_reference_one(module, x[sources]) if len(sources)
                    else torch.zeros(6, dtype=torch.float64))
        assert_close(out[node], expected, torch.float64, 18, f"node {node}")


@pytest.mark.parametrize("cls", list(PYG))
def test_a_fixed_padded_size_gives_the_same_results(cls):
    module = module_for(cls, torch.float64)
    counts = (2, 0, 3, 1)
    x = torch.randn(sum(counts), 6, dtype=torch.float64)
    expected, _ = reference(module, x, counts)
    module.max_num_nodes = 5
    try:
        for name, x_g, seg in groupings(x, counts):
            assert_close(module(x_g, seg), expected, torch.float64, 30, name)
    finally:
        module.max_num_nodes = None


@pytest.mark.parametrize("cls", [SetTransformerReadout, LatentAttentionReadout])
def test_gradcheck_float64(cls):
    module = build(cls, 4, torch.float64, heads=2)
    index = torch.tensor([0, 1, 1, 1, 3])
    x = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: module(t, index, dim_size=4), (x,))


# ------------------------------------------------------------ construction and errors

@pytest.mark.parametrize("channels", [1, 3, 8, 12, 16])
@pytest.mark.parametrize("cls", CLASSES)
def test_resolver_style_construction_works_with_defaults(cls, channels):
    assert cls.needs_in_channels is True and cls.functional is False
    module = cls(in_channels=channels)
    assert isinstance(module, Readout)
    x = torch.randn(7, channels)
    out = module(x, torch.tensor([0, 0, 1, 1, 1, 3, 3]))
    assert out.shape == (4, module.out_features(channels)) and torch.isfinite(out).all()
    assert (out[2] == 0).all()
    if cls is LatentAttentionReadout:
        assert module.heads == (8 if channels % 8 == 0 else 1)
    assert repr(module).startswith(f"{cls.__name__}({channels}")


def test_one_dimensional_x_is_one_feature_per_node():
    module = LatentAttentionReadout(1)
    out = module(torch.randn(4), torch.tensor([0, 0, 1, 1]))
    assert out.shape == (2,)


def test_defaults_out_features_and_reset_parameters():
    st_ = SetTransformerReadout(8, num_seed_points=3)
    assert st_.out_features(8) == 24 and SetTransformerReadout(8, 3, concat=False
                                                               ).out_features(8) == 8
    assert GMTReadout(8).k == 4 and GMTReadout(8).out_features(8) == 8
    latent = LatentAttentionReadout(8)
    assert (latent.num_latents, latent.heads, latent.pool) == (1, 8, "token")
    assert latent.mlp.fc1.out_features == 32
    for module in (st_, GMTReadout(8), latent):
        before = [p.detach().clone() for p in module.parameters()]
        module.reset_parameters()
        assert any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))
    assert repr(GMTReadout(8, k=2, heads=2)) == ("GMTReadout(8, k=2, heads=2, "
                                                 "layer_norm=False, dropout=0.0)")


BAD_ARGUMENTS = [
    (SetTransformerReadout, dict(in_channels=0), "in_channels"),
    (SetTransformerReadout, dict(in_channels=8.0), "in_channels"),
    (SetTransformerReadout, dict(in_channels=True), "in_channels"),
    (SetTransformerReadout, dict(in_channels=8, heads=3), "heads"),
    (SetTransformerReadout, dict(in_channels=8, heads=0), "heads"),
    (SetTransformerReadout, dict(in_channels=8, num_seed_points=0), "num_seed_points"),
    (SetTransformerReadout, dict(in_channels=8, num_encoder_blocks=-1), "num_encoder_blocks"),
    (SetTransformerReadout, dict(in_channels=8, num_decoder_blocks=1.5), "num_decoder_blocks"),
    (SetTransformerReadout, dict(in_channels=8, concat=1), "concat"),
    (SetTransformerReadout, dict(in_channels=8, layer_norm="yes"), "layer_norm"),
    (SetTransformerReadout, dict(in_channels=8, dropout=1.0), "dropout"),
    (SetTransformerReadout, dict(in_channels=8, dropout=-0.1), "dropout"),
    (SetTransformerReadout, dict(in_channels=8, max_num_nodes=0), "max_num_nodes"),
    (SetTransformerReadout, dict(in_channels=8, max_num_nodes=1), "max_num_nodes"),  # a set of 2
    (GMTReadout, dict(in_channels=8, max_num_nodes="4"), "max_num_nodes"),
    (GMTReadout, dict(in_channels=8, k=0), "k"),
    (GMTReadout, dict(in_channels=8, k=2.5), "k"),
    (GMTReadout, dict(in_channels=8, heads=5), "heads"),
    (GMTReadout, dict(in_channels=8, dropout=True), "dropout"),
    (LatentAttentionReadout, dict(in_channels=8, num_latents=0), "num_latents"),
    (LatentAttentionReadout, dict(in_channels=8, heads=3), "heads"),
    (LatentAttentionReadout, dict(in_channels=8, mlp_ratio=0), "mlp_ratio"),
    (LatentAttentionReadout, dict(in_channels=8, mlp_ratio=float("nan")), "mlp_ratio"),
    (LatentAttentionReadout, dict(in_channels=8, mlp_ratio=True), "mlp_ratio"),
    (LatentAttentionReadout, dict(in_channels=8, qkv_bias=1), "qkv_bias"),
    (LatentAttentionReadout, dict(in_channels=8, pool="max"), "pool"),
    (LatentAttentionReadout, dict(in_channels=8, fill_value="zero"), "fill_value"),
]


@pytest.mark.parametrize("cls,kwargs,argument", BAD_ARGUMENTS)
def test_bad_arguments_name_the_class_and_the_argument(cls, kwargs, argument):
    with pytest.raises(GraphpoolError) as info:
        module = cls(**kwargs)
        module(torch.randn(2, 8), torch.tensor([0, 0]))  # fill_value is checked on use
    assert info.value.where == cls.__name__ and info.value.argument == argument


@pytest.mark.parametrize("cls", CLASSES)
def test_bad_inputs_name_x(cls):
    module = cls(4)
    index = torch.tensor([0, 0, 1])
    cases = [torch.randn(3, 5), torch.ones(3, 4, dtype=torch.long),
             torch.randn(3, 4, dtype=torch.float64)]
    for x in cases:
        with pytest.raises(GraphpoolError) as info:
            module(x, index)
        assert info.value.where == cls.__name__ and info.value.argument == "x", x
    mask = torch.tensor([[True, False]])
    with pytest.raises(GraphpoolError):
        module(torch.randn(2, 4), Segments.from_mask(mask))


@pytest.mark.parametrize("cls", CLASSES)
def test_under_autocast_bfloat16_rows_meet_float32_weights(cls):
    """torch.autocast casts for the attention layers: bfloat16 rows and float32 weights are
    read out, close to the float32 result at bfloat16's precision (eps 2**-8) through the
    layers; float64 rows, which autocast does not cast, are refused by name."""
    module = build(cls, 8).eval()
    x = torch.randn(9, 8, generator=torch.Generator().manual_seed(3))
    index = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    want = module(x, index)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = module(x.bfloat16(), index)
        with pytest.raises(GraphpoolError, match=r"invalid 'x'"):
            module(x.double(), index)
    torch.testing.assert_close(got.float(), want, rtol=2 ** -3, atol=2 ** -3)
