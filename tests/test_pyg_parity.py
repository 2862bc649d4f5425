"""graphpool against PyG itself, case by case.

Every test calls a graphpool readout and PyG's own implementation on the same input and
compares them. The cases restate, in this file's own words, those of PyG's
``test/nn/aggr/test_basic.py`` (the basic aggregations sum/mean/max/min: index, ptr,
dim_size, dim, empty input, validation) and ``test/nn/pool/test_glob.py``
(``global_add_pool`` / ``global_mean_pool`` / ``global_max_pool``: a batch, no batch,
permuted nodes, ``size``, 1-D and 3-D ``x``), plus message passing with a graphpool
readout as ``aggr=`` (``GATConv``, ``GINConv``, ``SAGEConv``, ``GraphConv``), on plain
``edge_index`` and on an ``EdgeIndex`` sorted by column, for which PyG passes both
``index`` and ``ptr``. Error messages are graphpool's own; only the error class
(``ValueError``, which ``GraphpoolError`` is) is compared.

Gradients are compared where PyG defines them the same way. graphpool splits a max/min
gradient evenly over tied rows; random normal data has no ties, and the graphs have no
duplicate edges, so max/min gradients are compared too.
"""
from __future__ import annotations

import pytest
import torch
from torch_geometric import EdgeIndex
from torch_geometric.nn import (GATConv, GINConv, GraphConv, MaxAggregation, MeanAggregation,
                                MinAggregation, SAGEConv, SumAggregation, global_add_pool,
                                global_max_pool, global_mean_pool)
from torch_geometric.nn.aggr import MultiAggregation, QuantileAggregation, StdAggregation
from torch_geometric.utils import coalesce, remove_self_loops

import graphpool as gp

OPS = ["sum", "mean", "max", "min"]
OURS = {"sum": gp.SumReadout, "mean": gp.MeanReadout, "max": gp.MaxReadout,
        "min": gp.MinReadout}
THEIRS = {"sum": SumAggregation, "mean": MeanAggregation, "max": MaxAggregation,
          "min": MinAggregation}
PYG_AGGR = {"sum": "add", "mean": "mean", "max": "max", "min": "min"}
POOLS = [("sum", gp.sum_readout, global_add_pool), ("mean", gp.mean_readout, global_mean_pool),
         ("max", gp.max_readout, global_max_pool)]


def same_values_and_grads(ours, theirs, x, *args, **kwargs):
    """Run both callables on copies of ``x``; equal outputs (shape included) and equal
    gradients of a random linear functional of the output."""
    a = x.detach().clone().requires_grad_(x.is_floating_point())
    b = x.detach().clone().requires_grad_(x.is_floating_point())
    out_a, out_b = ours(a, *args, **kwargs), theirs(b, *args, **kwargs)
    assert out_a.shape == out_b.shape
    torch.testing.assert_close(out_a, out_b)
    if x.is_floating_point() and out_a.numel():
        weight = torch.randn(out_a.shape, generator=torch.Generator().manual_seed(1))
        (out_a * weight).sum().backward()
        (out_b * weight).sum().backward()
        torch.testing.assert_close(a.grad, b.grad)
    return out_a


# --------------------------------------------------------------- test_basic.py cases
X = torch.randn(6, 16, generator=torch.Generator().manual_seed(0))
INDEX = torch.tensor([0, 0, 1, 1, 1, 2])
PTR = torch.tensor([0, 2, 5, 6])


@pytest.mark.parametrize("op", OPS)
def test_basic_aggregation_by_index_and_by_ptr(op):
    ours, theirs = OURS[op](), THEIRS[op]()
    assert str(ours) == f"{type(ours).__name__}()"  # PyG's repr convention
    out = same_values_and_grads(ours, theirs, X, INDEX)
    assert out.shape == (3, 16)
    same_values_and_grads(ours, theirs, X, ptr=PTR)
    torch.testing.assert_close(ours(X, ptr=PTR), out)


@pytest.mark.parametrize("op", OPS)
def test_index_and_ptr_together_as_pyg_passes_them(op):
    ours, theirs = OURS[op](), THEIRS[op]()
    out = same_values_and_grads(ours, theirs, X, INDEX, PTR)
    torch.testing.assert_close(out, ours(X, INDEX))
    same_values_and_grads(ours, theirs, X, INDEX, PTR, dim_size=3)


@pytest.mark.parametrize("op", OPS)
def test_dim_size_adds_trailing_empty_sets(op):
    ours, theirs = OURS[op](), THEIRS[op]()
    out = same_values_and_grads(ours, theirs, X, INDEX, dim_size=5)
    assert out.shape == (5, 16) and out[3:].eq(0).all()
    # a gap in the ids (set 1 empty) behaves the same
    same_values_and_grads(ours, theirs, X, torch.tensor([0, 0, 2, 2, 2, 3]), dim_size=4)


@pytest.mark.parametrize("op", OPS)
def test_no_index_is_one_set_and_dim_size_pads_it(op):
    ours, theirs = OURS[op](), THEIRS[op]()
    assert same_values_and_grads(ours, theirs, X).shape == (1, 16)
    assert same_values_and_grads(ours, theirs, X, dim_size=3).shape == (3, 16)


SHAPES_AND_DIMS = [
    ((6, 16), -2), ((6, 16), 0),              # [N, F]
    ((3, 6, 5), -2), ((3, 6, 5), 1),          # [*, N, F]
    ((2, 3, 6, 5), -2), ((2, 3, 6, 5), 2),    # [*, *, N, F]
    ((6, 2, 5), 0), ((6, 2, 5), -3),          # [N, heads, C] (GATConv's node_dim=0)
    ((3, 6, 2, 4), 1),                        # [*, N, H, C]
    ((6,), 0), ((6,), -1),                    # [N]
    ((4, 6), 1), ((4, 6), -1),                # nodes last: [F, N]
]


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("shape,dim", SHAPES_AND_DIMS, ids=[f"{s}-dim{d}" for s, d in
                                                            SHAPES_AND_DIMS])
def test_dim_semantics_match_pyg(op, shape, dim):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(2))
    ours, theirs = OURS[op](), THEIRS[op]()
    out = same_values_and_grads(ours, theirs, x, INDEX, dim=dim)
    expected_shape = list(shape)
    expected_shape[dim] = 3
    assert list(out.shape) == expected_shape
    same_values_and_grads(ours, theirs, x, ptr=PTR, dim=dim)
    same_values_and_grads(ours, theirs, x, INDEX, PTR, dim=dim)
    same_values_and_grads(ours, theirs, x, INDEX, dim=dim, dim_size=5)


WIDENING = {  # readouts whose width is a multiple of the input's, against PyG's
    "quantile": (lambda: gp.QuantileReadout([0.25, 0.5, 0.75]),
                 lambda: QuantileAggregation([0.25, 0.5, 0.75])),
    "cat": (lambda: gp.MultiReadout(["mean", "max"]),
            lambda: MultiAggregation(["mean", "max"])),
    "cat-quantile": (lambda: gp.MultiReadout(["sum", gp.QuantileReadout([0.1, 0.9])]),
                     lambda: MultiAggregation(["sum", QuantileAggregation([0.1, 0.9])])),
    "std": (lambda: gp.StdReadout(), lambda: StdAggregation()),
}


@pytest.mark.parametrize("name", WIDENING)
@pytest.mark.parametrize("shape,dim", [((6, 2, 3), 0), ((3, 6, 2, 4), 1), ((6, 2, 3, 2), 0),
                                       ((6, 3), 0), ((6,), 0)])
def test_readouts_that_widen_restore_several_feature_dims_as_pyg(name, shape, dim):
    """[E, heads, C] on dim 0 (GATConv) and more: the feature dims come back in PyG's shape."""
    ours, theirs = (build() for build in WIDENING[name])
    if name.startswith("cat") and (len(shape) == 1 or name == "cat-quantile"
                                   and len(shape) > 2 + (dim > 0)):
        pytest.skip("PyG's MultiAggregation cannot concatenate its results' shapes there")
    x = torch.randn(shape, generator=torch.Generator().manual_seed(4))
    same_values_and_grads(ours, theirs, x, INDEX, dim=dim, dim_size=4)


COMBINING = ["cat", "sum", "mean", "max", "min", "std", "logsumexp"]


@pytest.mark.parametrize("mode", [*COMBINING, "proj"])
@pytest.mark.parametrize("shape,dim", [((6, 2, 3), 0), ((3, 6, 2, 4), 1), ((6, 2, 3, 2), 0)])
def test_multi_readout_combines_along_the_last_feature_axis_as_pyg(mode, shape, dim):
    """Several feature dims ([E, heads, C] on dim 0 and more): "proj"'s layer maps the last
    axis of the concatenated results, as PyG's (in_channels is that axis' width); the other
    modes combine the results in PyG's shape. Every set is non-empty (an empty set gets
    fill_value, where PyG's layer gives it the bias)."""
    names = ["mean", "max"]
    kwargs = dict(in_channels=shape[-1], out_channels=5) if mode == "proj" else None
    ours = gp.MultiReadout(names, mode=mode, mode_kwargs=kwargs)
    theirs = MultiAggregation(names, mode=mode, mode_kwargs=kwargs)
    if mode == "proj":
        ours.lin.load_state_dict(theirs.lin.state_dict())
    x = torch.randn(shape, generator=torch.Generator().manual_seed(5))
    out = same_values_and_grads(ours, theirs, x, INDEX, dim=dim)
    width = {"cat": 2 * shape[-1], "proj": 5}.get(mode, shape[-1])
    assert out.shape[-1] == width and out.shape[dim + 1:-1] == shape[dim + 1:-1]


@pytest.mark.parametrize("mode", ["proj", "attn"])
def test_multi_readout_layers_over_several_feature_dims_act_per_position(mode):
    """"proj" / "attn" over [N, H, C] (PyG's attention takes only [N, C]): the layers map
    the last axis and every position of the other feature dims is combined on its own,
    exactly as the same module on each slice x[:, h]; an empty set gets fill_value."""
    torch.manual_seed(0)
    readout = gp.MultiReadout(["sum", "max"], mode=mode, fill_value=-1.0, mode_kwargs=dict(
        in_channels=3, out_channels=4, **({"num_heads": 2} if mode == "attn" else {})))
    x = torch.randn(6, 2, 3, generator=torch.Generator().manual_seed(6))
    index = torch.tensor([0, 0, 1, 1, 1, 3])  # set 2 is empty
    out = readout(x, index, dim=0, dim_size=4)
    per_slice = torch.stack([readout(x[:, h], index, dim_size=4) for h in range(2)], dim=1)
    assert out.shape == (4, 2, 4)
    torch.testing.assert_close(out, per_slice)
    assert out[2].eq(-1).all() and out[[0, 1, 3]].ne(-1).all()


def test_multi_readout_inside_a_multi_readout_combines_along_the_last_axis_as_pyg():
    """A "proj" MultiReadout inside a "cat" one over [N, H, C]: the inner layer maps C, as
    PyG's nested MultiAggregation does."""
    kwargs = dict(in_channels=3, out_channels=5)
    ours = gp.MultiReadout([gp.MultiReadout(["mean", "max"], mode="proj", mode_kwargs=kwargs),
                            "sum"])
    theirs = MultiAggregation([MultiAggregation(["mean", "max"], mode="proj",
                                                mode_kwargs=kwargs), "sum"])
    ours.readouts[0].lin.load_state_dict(theirs.aggrs[0].lin.state_dict())
    x = torch.randn(6, 2, 3, generator=torch.Generator().manual_seed(7))
    assert same_values_and_grads(ours, theirs, x, INDEX, dim=0).shape == (3, 2, 8)


@pytest.mark.parametrize("mode", ["sum", "max", "cat"])
@pytest.mark.parametrize("shape,dim", [((6, 2, 3), 0), ((2, 6, 2, 3), 1)])
def test_multi_readout_of_flat_results_over_several_feature_dims_fills_the_empty_sets(
        mode, shape, dim):
    """Counts stay one column per set whatever the feature dims: their combination is
    [*, B, 1] and only the empty sets (2 and 4) get fill_value, against a per-set count."""
    index = torch.tensor([0, 0, 1, 1, 1, 3])
    readout = gp.MultiReadout(["count", "count"], mode=mode, fill_value=-1.0)
    out = readout(torch.randn(shape), index, dim=dim, dim_size=5)
    counts = torch.bincount(index, minlength=5).float()
    per_set = {"sum": 2 * counts, "max": counts, "cat": counts}[mode]
    expected = torch.where(counts > 0, per_set, -1.0).unsqueeze(-1)  # (cat: each count's fill)
    expected = expected.expand(5, 2) if mode == "cat" else expected
    torch.testing.assert_close(out, expected.expand(*out.shape[:-2], *expected.shape))


def test_a_multi_readout_subclass_with_its_own_forward_is_restored_after_it():
    """A subclass whose forward takes (x, segments) only: its result is restored to the
    feature dims after it, as for every readout (never a surprise keyword argument)."""
    class Shifted(gp.MultiReadout):
        def forward(self, x, segments):
            return super().forward(x, segments) + 1

    x = torch.randn(6, 2, 3, generator=torch.Generator().manual_seed(8))
    plain = gp.MultiReadout(["mean", "max"])
    torch.testing.assert_close(Shifted(["mean", "max"])(x, INDEX, dim=0),
                               plain(x, INDEX, dim=0) + 1)


@pytest.mark.parametrize("mode", ["proj", "attn"])
def test_multi_readout_layers_refuse_results_that_do_not_keep_the_feature_dims(mode):
    """A mean and a quantile pair over [N, H, C] restore to [H, C] and [2H, C]: no last axis
    to map for "proj" / "attn" (never a layer across the flattened features)."""
    readout = gp.MultiReadout(["mean", gp.QuantileReadout([0.2, 0.8])], mode=mode,
                              mode_kwargs=dict(in_channels=[6, 12], out_channels=6))
    with pytest.raises(gp.GraphpoolError, match="keep the feature dims") as err:
        readout(torch.randn(6, 2, 3), INDEX, dim=0)
    assert "(2, 3)" in str(err.value) and "(4, 3)" in str(err.value)


def test_multi_readout_of_results_that_do_not_line_up_names_them():
    """"sum" of a mean and a quantile pair over [N, H, C]: the quantiles stack on H, so the
    results cannot be added; the error names the readouts and both feature shapes."""
    readout = gp.MultiReadout(["mean", gp.QuantileReadout([0.2, 0.8])], mode="sum")
    with pytest.raises(gp.GraphpoolError, match="keep the feature dims") as err:
        readout(torch.randn(6, 2, 3), INDEX, dim=0)
    assert "(2, 3)" in str(err.value) and "(4, 3)" in str(err.value)


@pytest.mark.parametrize("op", OPS)
def test_non_contiguous_input_with_node_dim_first(op):
    x = torch.randn(2, 5, 6, generator=torch.Generator().manual_seed(3)).permute(2, 0, 1)
    assert not x.is_contiguous()  # [N=6, 2, 5]
    same_values_and_grads(OURS[op](), THEIRS[op](), x, INDEX, dim=0)


@pytest.mark.parametrize("op", OPS)
def test_empty_input(op):
    ours, theirs = OURS[op](), THEIRS[op]()
    x = torch.empty(0, 16)
    index = torch.empty(0, dtype=torch.long)
    assert same_values_and_grads(ours, theirs, x, index).shape == (0, 16)
    assert same_values_and_grads(ours, theirs, x, index, dim_size=3).shape == (3, 16)
    assert same_values_and_grads(ours, theirs, x, ptr=torch.tensor([0])).shape == (0, 16)
    assert same_values_and_grads(ours, theirs, x, ptr=torch.tensor([0, 0, 0])).shape == (2, 16)
    heads = torch.empty(0, 2, 3)  # [E = 0, heads, C] on dim 0, as GATConv on an edgeless graph
    assert same_values_and_grads(ours, theirs, heads, index, dim=0, dim_size=4).shape == (4, 2, 3)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("call", [
    lambda aggr: aggr(X, INDEX, dim=-3),            # no such axis
    lambda aggr: aggr(X, INDEX, dim=2),
    lambda aggr: aggr(X, ptr=PTR, dim_size=2),      # ptr has 3 sets
    lambda aggr: aggr(X, INDEX, dim_size=2),        # index reaches set 2
    lambda aggr: aggr(X, INDEX, PTR, dim_size=2),
], ids=["dim=-3", "dim=2", "ptr+dim_size", "index+dim_size", "index+ptr+dim_size"])
def test_invalid_calls_are_rejected_like_pyg(op, call):
    with pytest.raises(ValueError):
        call(THEIRS[op]())
    with pytest.raises(gp.GraphpoolError):
        call(OURS[op]())


def test_index_disagreeing_with_ptr_is_an_error():
    with pytest.raises(gp.GraphpoolError, match=r"MeanReadout: invalid 'ptr'.*same grouping"):
        gp.MeanReadout()(X, torch.tensor([0, 0, 0, 1, 1, 2]), PTR)
    with pytest.raises(gp.GraphpoolError, match=r"MeanReadout: invalid 'index'.*6 entries"):
        gp.MeanReadout()(X, INDEX[:5], PTR)
    # without validation the ptr is trusted and the index not read
    out = gp.MeanReadout(validate=False)(X, torch.tensor([0, 0, 0, 1, 1, 2]), PTR)
    torch.testing.assert_close(out, MeanAggregation()(X, ptr=PTR))


# ---------------------------------------------------------------- test_glob.py cases
def two_graphs(n1=4, n2=6, features=4, seed=0):
    x = torch.randn(n1 + n2, features, generator=torch.Generator().manual_seed(seed))
    batch = torch.tensor([0] * n1 + [1] * n2)
    return x, batch


@pytest.mark.parametrize("op,ours,theirs", POOLS, ids=[p[0] for p in POOLS])
def test_global_pool_with_and_without_batch(op, ours, theirs):
    x, batch = two_graphs()
    out = same_values_and_grads(ours, theirs, x, batch)
    assert out.shape == (2, 4)
    by_hand = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax}[op]
    torch.testing.assert_close(out[0], by_hand(x[:4], 0))
    torch.testing.assert_close(out[1], by_hand(x[4:], 0))
    out = same_values_and_grads(ours, theirs, x, None)
    assert out.shape == (1, 4)
    torch.testing.assert_close(out, by_hand(x, 0, keepdim=True))


@pytest.mark.parametrize("op,ours,theirs", POOLS, ids=[p[0] for p in POOLS])
def test_global_pool_of_permuted_nodes(op, ours, theirs):
    x, batch = two_graphs()
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(4))
    out = same_values_and_grads(ours, theirs, x[perm], batch[perm])
    assert out.shape == (2, 4)
    torch.testing.assert_close(out, ours(x, batch))


@pytest.mark.parametrize("op,ours,theirs", POOLS, ids=[p[0] for p in POOLS])
def test_global_pool_with_size(op, ours, theirs):
    x, batch = two_graphs()
    out = same_values_and_grads(ours, theirs, x, batch, 5)  # positional, as PyG allows
    assert out.shape == (5, 4)
    same_values_and_grads(ours, theirs, x, batch, size=5)
    torch.testing.assert_close(ours(x, batch, num_graphs=5), out)   # the alias
    torch.testing.assert_close(ours(x, batch, 5, num_graphs=5), out)
    with pytest.raises(gp.GraphpoolError, match=r"invalid 'size'.*num_graphs=4"):
        ours(x, batch, size=5, num_graphs=4)
    with pytest.raises((ValueError, RuntimeError, IndexError)):  # PyG: a raw torch error
        theirs(x, batch, 1)
    with pytest.raises(gp.GraphpoolError, match=rf"{ours.__name__}: invalid 'size'"):
        ours(x, batch, 1)


@pytest.mark.parametrize("op,ours,theirs", POOLS, ids=[p[0] for p in POOLS])
def test_global_pool_of_1d_x(op, ours, theirs):
    x, batch = two_graphs(features=1)
    x = x.squeeze(-1)  # one value per node: PyG pools it on dim -1
    assert same_values_and_grads(ours, theirs, x, batch).shape == (2,)
    assert same_values_and_grads(ours, theirs, x, None).shape == (1,)
    assert same_values_and_grads(ours, theirs, x, batch, 3).shape == (3,)


@pytest.mark.parametrize("op,ours,theirs", POOLS, ids=[p[0] for p in POOLS])
def test_global_pool_of_3d_x(op, ours, theirs):
    x = torch.randn(3, 16, 32, generator=torch.Generator().manual_seed(5))
    out = same_values_and_grads(ours, theirs, x, None)  # PyG drops the set axis here
    assert out.shape == (3, 32)
    by_hand = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax}[op]
    torch.testing.assert_close(out, by_hand(x, 1))
    batch = torch.tensor([0] * 5 + [1] * 11)
    assert same_values_and_grads(ours, theirs, x, batch).shape == (3, 2, 32)
    assert same_values_and_grads(ours, theirs, x, batch, 4).shape == (3, 4, 32)


# ------------------------------------------------------------------ message passing
def random_graph(num_nodes=9, num_edges=40, features=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, num_nodes, (2, num_edges), generator=g)
    # no self loops (GATConv adds them) and no duplicate edges (ties of max/min)
    edge_index = coalesce(remove_self_loops(edge_index)[0], num_nodes=num_nodes)
    return torch.randn(num_nodes, features, generator=g), edge_index


CONVS = {
    "GATConv": lambda aggr: GATConv(4, 3, heads=2, aggr=aggr),
    "GATConv-noloops": lambda aggr: GATConv(4, 3, heads=2, aggr=aggr, add_self_loops=False),
    "GATConv-concat=False": lambda aggr: GATConv(4, 3, heads=2, concat=False, aggr=aggr),
    "GINConv": lambda aggr: GINConv(torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(),
                                                        torch.nn.Linear(8, 5)), aggr=aggr),
    "SAGEConv": lambda aggr: SAGEConv(4, 5, aggr=aggr),
    "GraphConv": lambda aggr: GraphConv(4, 5, aggr=aggr),
}


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("name", list(CONVS))
@pytest.mark.parametrize("sorted_by_col", [False, True], ids=["edge_index", "EdgeIndex-col"])
def test_conv_with_a_graphpool_aggr_matches_pyg(op, name, sorted_by_col):
    x, edge_index = random_graph()
    if sorted_by_col:
        edge_index = EdgeIndex(edge_index, sparse_size=(9, 9)).sort_by("col")[0]
    torch.manual_seed(0)
    ours = CONVS[name](OURS[op]())
    theirs = CONVS[name](PYG_AGGR[op])
    theirs.load_state_dict(ours.state_dict())
    # PyG's own aggregation module on the same (index, ptr) it hands ours, not its fused
    # sparse matmul: PyG 2.8 generates one propagate per conv class, and when an instance
    # with an Aggregation object (fuse=False) comes first, a later aggr="add" instance
    # raises NotImplementedError on an EdgeIndex (PyG's MeanAggregation() triggers it too).
    theirs.fuse = False
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_a, out_b = ours(xa, edge_index), theirs(xb, edge_index)
    assert out_a.shape == out_b.shape
    torch.testing.assert_close(out_a, out_b)
    weight = torch.randn(out_a.shape, generator=torch.Generator().manual_seed(1))
    (out_a * weight).sum().backward()
    (out_b * weight).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad)
    for (key, p), q in zip(ours.named_parameters(), theirs.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=lambda m: f"{key}: {m}")


@pytest.mark.parametrize("name", ["GATConv-noloops", "GINConv", "SAGEConv", "GraphConv"])
def test_pyg_passes_index_and_ptr_for_a_column_sorted_edge_index(name):
    x, edge_index = random_graph()
    edge_index = EdgeIndex(edge_index, sparse_size=(9, 9)).sort_by("col")[0]
    seen = []

    class Spy(gp.MaxReadout):
        def __call__(self, *args, **kwargs):
            seen.append((args[1] is not None, kwargs.get("ptr") is not None, kwargs.get("dim")))
            return super().__call__(*args, **kwargs)

    out = CONVS[name](Spy())(x, edge_index)
    assert seen and all(has_index and has_ptr for has_index, has_ptr, _ in seen)
    if name.startswith("GAT"):
        assert seen[0][2] == 0 and out.shape == (9, 6)  # [E, heads, C] reduced on dim 0
