"""Learnable readouts (graphpool/readouts/learnable.py): AttentionalReadout, Set2SetReadout,
SortReadout and DeepSetsReadout.

References, each independent of graphpool's kernels: PyG's own classes with the same
weights (values and gradients), and plain per-set Python loops with torch's own softmax,
sort and sum. Tolerances come from the dtype's eps and the problem size (:func:`tol`);
sort-k moves values without arithmetic and is compared exactly.
"""
from __future__ import annotations

import copy
from typing import List, Sequence

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.data import Batch, Data
from torch_geometric.nn import MLP, GraphConv, SimpleConv
from torch_geometric.nn import aggr as pyg

import graphpool as gp
from graphpool import GraphpoolError, Segments
from graphpool.readouts import READOUTS, MultiReadout, Readout, resolve_readout
from graphpool.readouts.learnable import (AttentionalReadout, DeepSetsReadout, Set2SetReadout,
                                          SortReadout)

from .groupings import groupings, groups_from_counts

settings.register_profile("learnable", max_examples=25, deadline=None)

C = 4  # input width of the tables' cases
KINDS = ("attention", "attention-feature", "attention-nn", "set2set", "sort", "deepsets",
         "deepsets-rho")
CLASSES = (AttentionalReadout, Set2SetReadout, SortReadout, DeepSetsReadout)


def build(kind: str, dtype: torch.dtype = torch.float32, seed: int = 0, **kwargs) -> Readout:
    """One readout of each configuration, with seeded weights."""
    torch.manual_seed(seed)
    if kind == "attention":
        module = AttentionalReadout(in_channels=C, **kwargs)
    elif kind == "attention-feature":
        module = AttentionalReadout(C, nn=torch.nn.Sequential(torch.nn.Linear(C, 6),
                                                              torch.nn.Tanh()),
                                    gate="feature", **kwargs)
    elif kind == "attention-nn":
        module = AttentionalReadout(gate_nn=torch.nn.Sequential(
            torch.nn.Linear(C, 5), torch.nn.ReLU(), torch.nn.Linear(5, 1)),
            nn=torch.nn.Linear(C, 3), **kwargs)
    elif kind == "set2set":
        module = Set2SetReadout(C, processing_steps=3, **kwargs)
    elif kind == "sort":
        module = SortReadout(3, in_channels=C, **kwargs)
    elif kind == "deepsets":
        module = DeepSetsReadout(in_channels=C, **kwargs)
    elif kind == "deepsets-rho":
        module = DeepSetsReadout(C, global_nn=torch.nn.Sequential(
            torch.nn.Linear(C, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2)), **kwargs)
    else:
        raise AssertionError(kind)
    return module.to(dtype)


def pyg_twin(kind: str, module: Readout) -> torch.nn.Module:
    """PyG's class for ``module``, holding copies of its weights."""
    if kind.startswith("attention"):
        return pyg.AttentionalAggregation(copy.deepcopy(module.gate_nn), copy.deepcopy(module.nn))
    if kind == "set2set":
        twin = pyg.Set2Set(C, module.processing_steps).to(module.lstm.weight_ih_l0.dtype)
        twin.load_state_dict(module.state_dict())
        return twin
    if kind == "sort":
        return pyg.SortAggregation(module.k)
    return pyg.DeepSetsAggregation(copy.deepcopy(module.local_nn),
                                   copy.deepcopy(module.global_nn))


def depth(kind: str) -> int:
    """Reductions chained one after another (each adds its rounding to the next)."""
    return {"set2set": 6, "sort": 1}.get(kind, 2)


def tol(dtype: torch.dtype, terms: int) -> dict:
    """Rounding of ``terms`` chained O(1) operations in ``dtype``, with a factor 8 for
    the growth through the networks' layers."""
    eps = torch.finfo(dtype).eps
    return dict(rtol=8 * terms * eps, atol=8 * terms * eps)


def index_of(counts: Sequence[int]) -> torch.Tensor:
    return torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(list(counts)))


def random_counts(seed: int, num_sets: int = 7, most: int = 6) -> List[int]:
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(0, most + 1, (num_sets,), generator=g).tolist()
    counts[1] = 0  # an empty set inside
    counts[-1] = 0  # and a trailing one
    counts[0] = max(counts[0], 2)
    return counts


def features(n: int, dtype: torch.dtype, seed: int, width: int = C) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, width, generator=g, dtype=torch.float64).to(dtype)


def params(module: torch.nn.Module) -> List[torch.Tensor]:
    return [p for p in module.parameters()]


# ------------------------------------------------------------------ PyG, shared weights
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_values_and_gradients_match_pyg_with_shared_weights(kind, dtype, seed):
    counts = random_counts(seed)
    index, num = index_of(counts), len(counts)
    ours = build(kind, dtype, seed)
    theirs = pyg_twin(kind, ours)
    x = features(sum(counts), dtype, seed).requires_grad_()
    x_pyg = x.detach().clone().requires_grad_()
    out = ours(x, index, dim_size=num)
    expected = theirs(x_pyg, index, dim_size=num)
    nonempty = torch.tensor(counts) > 0
    terms = (max(counts) + ours.out_features(C)) * depth(kind)
    assert out.shape == (num, ours.out_features(C))
    torch.testing.assert_close(out[nonempty], expected[nonempty], **tol(dtype, terms))
    assert out[~nonempty].eq(0).all()  # fill_value; PyG's value of an empty set may differ
    # an upstream gradient that ignores empty sets (PyG's depend on the weights)
    w = features(num, dtype, seed + 100, out.size(-1)) * nonempty.unsqueeze(-1).to(dtype)
    (out * w).sum().backward()
    (expected * w).sum().backward()
    torch.testing.assert_close(x.grad, x_pyg.grad, **tol(dtype, 4 * terms))
    for mine, pygs in zip(params(ours), params(theirs), strict=True):
        torch.testing.assert_close(mine.grad, pygs.grad, **tol(dtype, 4 * terms * sum(counts)))


def test_empty_sets_pyg_gives_formula_values_graphpool_gives_fill_value():
    counts = [3, 0, 2]
    index, x = index_of(counts), features(5, torch.float64, 0)
    s2s = build("set2set", torch.float64)
    theirs = pyg_twin("set2set", s2s)(x, index, dim_size=3)
    assert theirs[1, :C].abs().sum() > 0 and theirs[1, C:].eq(0).all()  # PyG: [q_T, 0]
    assert s2s(x, index, dim_size=3)[1].eq(0).all()
    rho = build("deepsets-rho", torch.float64)
    expected_rho0 = rho.global_nn(torch.zeros(1, C, dtype=torch.float64))[0]
    torch.testing.assert_close(pyg_twin("deepsets-rho", rho)(x, index, dim_size=3)[1],
                               expected_rho0)  # PyG: rho(0)
    filled = build("deepsets-rho", torch.float64, fill_value=-1.5)(x, index, dim_size=3)
    assert filled[1].eq(-1.5).all()


# ----------------------------------------------------------------- naive per-set loops
def naive(kind: str, module: Readout, x: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
    """A Python loop over the sets, with torch's softmax, sort and sum on each set."""
    rows = []
    width = module.out_features(x.size(-1))
    for members in groups_from_counts(counts):
        xs = x[members]
        if not members:
            rows.append(x.new_full((width,), float(module.fill_value)))
            continue
        if kind.startswith("attention"):
            alpha = torch.softmax(module.gate_nn(xs), dim=0)
            h = xs if module.nn is None else module.nn(xs)
            rows.append((alpha * h).sum(0))
        elif kind.startswith("deepsets"):
            s = module.local_nn(xs).sum(0)
            rows.append(s if module.global_nn is None else module.global_nn(s))
        elif kind == "set2set":
            c = module.in_channels
            state = (x.new_zeros(module.lstm.num_layers, 1, c),) * 2
            q_star = x.new_zeros(1, 2 * c)
            for _ in range(module.processing_steps):
                q, state = module.lstm(q_star.unsqueeze(0), state)
                q = q.view(1, c)
                a = torch.softmax((xs * q).sum(-1), dim=0).unsqueeze(-1)
                q_star = torch.cat([q, (a * xs).sum(0, keepdim=True)], -1)
            rows.append(q_star[0])
        else:  # sort: lexicographic, last feature most significant, descending
            order = sorted(range(len(members)), key=lambda i: tuple(xs[i].tolist()[::-1]),
                           reverse=True)[:module.k]
            picked = xs[order]
            pad = x.new_zeros(module.k - picked.size(0), x.size(-1))
            rows.append(torch.cat([picked, pad]).flatten())
    return torch.stack(rows) if rows else x.new_zeros(0, width)


@pytest.mark.parametrize("kind", KINDS)
def test_matches_a_naive_loop_over_sets(kind):
    counts = [4, 0, 1, 6, 2]
    x = features(sum(counts), torch.float64, 3)
    module = build(kind, torch.float64, fill_value=0.5)
    out = module(x, index_of(counts), num_graphs=len(counts))
    torch.testing.assert_close(out, naive(kind, module, x, counts),
                               **tol(torch.float64, 8 * depth(kind)))


def test_sort_breaks_ties_lexicographically_where_pyg_follows_the_node_order():
    # every row ties in the last feature: PyG's order can only come from the positions
    rows = torch.tensor([[1., 0., 5.], [3., 2., 5.], [2., 2., 5.], [3., 1., 5.]])
    index = torch.zeros(4, dtype=torch.long)
    ours, theirs = SortReadout(k=4), pyg.SortAggregation(4)
    expected = rows[[1, 2, 3, 0]].flatten()  # by feature 1, then feature 0, descending
    pyg_outputs = set()
    for perm in ([0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1], [1, 3, 0, 2]):
        assert torch.equal(ours(rows[perm], index)[0], expected)
        pyg_outputs.add(tuple(theirs(rows[perm], index)[0].tolist()))
    assert len(pyg_outputs) > 1  # PyG's result depends on the order of the nodes
    # without ties PyG and graphpool agree exactly, in any node order
    distinct = torch.tensor([[1., 0., 5.], [3., 2., 7.], [2., 9., 6.], [3., 1., 4.]])
    for perm in ([0, 1, 2, 3], [3, 2, 1, 0]):
        assert torch.equal(ours(distinct[perm], index), theirs(distinct[perm], index))


def test_sort_is_not_dgl_sortpooling():
    # DGL sorts each node's features first; graphpool (like PyG) keeps each node's row
    x = torch.tensor([[9., 1.], [0., 5.]])
    out = SortReadout(k=1)(x, torch.zeros(2, dtype=torch.long))
    assert out.tolist() == [[0.0, 5.0]]  # the node with the largest last feature, as is
    # DGL would pick the node whose largest feature is largest (9) and give [1, 9]


# -------------------------------------------------------------------- every grouping
def _rows_of(x_g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """For each row of x_g, its row number in x (rows are distinct)."""
    return (x_g.unsqueeze(1) == x.unsqueeze(0)).all(-1).to(torch.int8).argmax(1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("counts", [[3, 0, 5, 1, 0], [2, 2, 2], [0, 0], [1]])
def test_every_grouping_agrees_values_and_gradients(kind, dtype, counts):
    module = build(kind, dtype)
    x = features(sum(counts), dtype, 7)
    exact = kind == "sort"
    terms = (max(counts) + module.out_features(C)) * depth(kind)
    reference = None
    for name, x_g, seg in groupings(x, counts):
        x_g = x_g.clone().requires_grad_()
        module.zero_grad()
        out = module(x_g, seg)
        w = features(len(counts), dtype, 11, out.size(-1))
        (out * w).sum().backward()
        if seg.kind == "mask":
            assert x_g.grad[~seg.mask].eq(0).all(), name  # padding gets no gradient
            x_grad = x_g.grad[seg.mask]
        elif name == "index-unsorted" and x.size(0):
            x_grad = torch.empty_like(x).index_copy(0, _rows_of(x_g.detach(), x), x_g.grad)
        else:
            x_grad = x_g.grad
        p_grads = [p.grad.clone() for p in params(module)]
        if reference is None:
            reference = (out.detach(), x_grad, p_grads)
            continue
        if exact:
            assert torch.equal(out, reference[0]), name
            assert torch.equal(x_grad, reference[1]), name
        else:
            torch.testing.assert_close(out, reference[0], **tol(dtype, terms),
                                       msg=lambda m: f"{name}: {m}")
            torch.testing.assert_close(x_grad, reference[1], **tol(dtype, 4 * terms),
                                       msg=lambda m: f"{name}: {m}")
        for mine, ref in zip(p_grads, reference[2], strict=True):
            torch.testing.assert_close(mine, ref, **tol(dtype, 4 * terms * max(sum(counts), 1)))


@pytest.mark.parametrize("kind", KINDS)
def test_padding_rows_change_nothing(kind):
    counts = [3, 0, 2, 4]
    module = build(kind, torch.float64)
    mask = torch.arange(5).unsqueeze(0) < torch.tensor(counts).unsqueeze(1)
    x = features(sum(counts), torch.float64, 5)
    outs = []
    for garbage in (float("nan"), 0.0, 1e300, -float("inf")):
        padded = torch.full((4, 5, C), garbage, dtype=torch.float64)
        padded[mask] = x
        padded.requires_grad_()
        out = module(padded, Segments.from_mask(mask))
        out.sum().backward()
        assert torch.isfinite(padded.grad).all() and padded.grad[~mask].eq(0).all()
        outs.append(out)
    for out in outs[1:]:
        assert torch.equal(out, outs[0])  # the same real rows, the same computation


def test_node_networks_see_only_real_rows_of_a_padded_batch():
    # batch norm in training mode mixes rows: a padded batch must give its real rows only
    torch.manual_seed(0)
    counts = [3, 1, 0, 4]
    x = features(8, torch.float64, 2)
    gate = MLP([C, 6, 1], norm="graph_norm").double()  # PyG passes batch= to its norms
    values = MLP([C, 6, 5], norm="batch_norm").double()
    module = AttentionalReadout(gate_nn=gate, nn=values).train()
    twin = pyg_twin("attention", module).train()
    outs = {name: module(x_g, seg) for name, x_g, seg in groupings(x, counts)}
    expected = twin(x, index_of(counts), dim_size=len(counts))
    for name, out in outs.items():
        torch.testing.assert_close(out, expected, **tol(torch.float64, 64),
                                   msg=lambda m: f"{name}: {m}")
    deep = DeepSetsReadout(local_nn=MLP([C, 6, 3], norm="batch_norm").double()).train()
    ref = deep(x, index_of(counts), dim_size=len(counts))
    for name, x_g, seg in groupings(x, counts):
        torch.testing.assert_close(deep(x_g, seg), ref, **tol(torch.float64, 64),
                                   msg=lambda m: f"{name}: {m}")


# ----------------------------------------------------------------- permutation properties
@st.composite
def problems(draw):
    counts = draw(st.lists(st.integers(0, 6), min_size=1, max_size=5))
    return counts, draw(st.integers(0, 2 ** 16)), draw(st.sampled_from(KINDS))


def _within_set_permutation(counts: Sequence[int], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.cat([torch.tensor(m)[torch.randperm(len(m), generator=g)] if m else
                      torch.zeros(0, dtype=torch.long) for m in groups_from_counts(counts)])


@settings(settings.get_profile("learnable"))
@given(problems())
def test_permuting_nodes_never_changes_the_output(problem):
    counts, seed, kind = problem
    module = build(kind, torch.float64, seed % 3)
    x, index = features(sum(counts), torch.float64, seed), index_of(counts)
    out = module(x, index, num_graphs=len(counts))
    inside = _within_set_permutation(counts, seed)  # rows move inside their sets
    shuffle = torch.randperm(x.size(0), generator=torch.Generator().manual_seed(seed + 1))
    moved = [module(x[inside], index, num_graphs=len(counts)),
             module(x[shuffle], index[shuffle], num_graphs=len(counts))]
    for other in moved:
        if kind == "sort":
            assert torch.equal(other, out)
        else:
            torch.testing.assert_close(other, out, **tol(torch.float64, (max(
                counts, default=0) + module.out_features(C)) * depth(kind)))


@settings(settings.get_profile("learnable"))
@given(problems())
def test_relabelling_sets_permutes_the_outputs(problem):
    counts, seed, kind = problem
    module = build(kind, torch.float64, seed % 3)
    x, index = features(sum(counts), torch.float64, seed), index_of(counts)
    num = len(counts)
    out = module(x, index, num_graphs=num)
    sigma = torch.randperm(num, generator=torch.Generator().manual_seed(seed))
    relabelled = module(x, sigma[index], num_graphs=num)
    if kind == "sort":
        assert torch.equal(relabelled[sigma], out)
    else:
        torch.testing.assert_close(relabelled[sigma], out, **tol(torch.float64, (max(
            counts, default=0) + module.out_features(C)) * depth(kind)))


# ------------------------------------------------------------------ gradients, empty sets
@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck_float64(kind):
    module = build(kind, torch.float64)
    counts = [3, 0, 2]
    x = features(5, torch.float64, 9).requires_grad_()
    index = index_of(counts)
    assert torch.autograd.gradcheck(lambda t: module(t, index, num_graphs=3), (x,))
    mask = torch.tensor([[True, True, True], [False, False, False], [True, True, False]])
    padded = torch.zeros(3, 3, C, dtype=torch.float64)
    padded[mask] = x.detach()
    padded.requires_grad_()
    assert torch.autograd.gradcheck(lambda t: module(t, Segments.from_mask(mask)), (padded,))


@pytest.mark.parametrize("kind", KINDS)
def test_empty_sets_get_fill_value(kind):
    module = build(kind, fill_value=-2.5)
    x = features(4, torch.float32, 1)
    out = module(x, torch.tensor([0, 0, 2, 2]), num_graphs=4)
    assert out[[1, 3]].eq(-2.5).all() and not out[[0, 2]].eq(-2.5).any()
    nothing = module(x[:0], torch.zeros(0, dtype=torch.long), num_graphs=2)
    assert nothing.shape == (2, module.out_features(C)) and nothing.eq(-2.5).all()
    with pytest.raises(GraphpoolError, match="'fill_value'"):
        build(kind, fill_value="none")(x, torch.tensor([0, 0, 2, 2]))


@pytest.mark.parametrize("kind", ["attention", "set2set", "sort", "deepsets"])
def test_leading_batch_dims_are_read_out_independently(kind):
    module = build(kind, torch.float64)
    counts = [2, 0, 3]
    x = torch.stack([features(5, torch.float64, s) for s in range(3)])  # [3, N, C]
    out = module(x, index_of(counts), num_graphs=3)
    for s in range(3):
        torch.testing.assert_close(out[s], module(x[s], index_of(counts), num_graphs=3),
                                   **tol(torch.float64, 8 * depth(kind)))
    for name, x_g, seg in groupings(x, counts):  # [3, B, Nmax, C] for the mask
        torch.testing.assert_close(module(x_g, seg), out, **tol(torch.float64, 8 * depth(kind)),
                                   msg=lambda m: f"{name}: {m}")


# ------------------------------------------------------------------------- torch.compile
@pytest.mark.parametrize("kind", ["attention", "attention-feature", "deepsets", "set2set",
                                  "sort"])
def test_torch_compile_matches_eager(kind):
    torch._dynamo.reset()
    module = build(kind)
    # AttentionalReadout and DeepSetsReadout compile to one graph on an index grouping;
    # Set2Set (the LSTM) and sort-k (the padded batch sized by the largest set) break it
    fullgraph = kind.startswith(("attention", "deepsets"))
    compiled = torch.compile(lambda x, b: module(x, b, num_graphs=5), fullgraph=fullgraph)
    index = torch.tensor([0, 0, 3, 3, 3, 1, 4, 0])  # unsorted, set 2 empty
    x = features(8, torch.float32, 4).requires_grad_()
    out = compiled(x, index)
    out.sum().backward()
    eager_x = x.detach().clone().requires_grad_()
    expected = module(eager_x, index, num_graphs=5)
    expected.sum().backward()
    terms = 8 * depth(kind)
    torch.testing.assert_close(out, expected, **tol(torch.float32, terms))
    torch.testing.assert_close(x.grad, eager_x.grad, **tol(torch.float32, 4 * terms))
    if fullgraph:  # a ptr grouping compiles to one graph too
        on_ptr = torch.compile(lambda x, p: module(x, ptr=p), fullgraph=True)
        ptr = torch.tensor([0, 3, 3, 8])
        torch.testing.assert_close(on_ptr(x.detach(), ptr), module(x.detach(), ptr=ptr),
                                   **tol(torch.float32, terms))


# ------------------------------------------------------------------ PyG interop, resolver
def random_batch(sizes=(3, 1, 4, 2), width=8, seed=0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    graphs = [Data(x=torch.randn(n, width, generator=g),
                   edge_index=torch.randint(0, n, (2, 2 * n), generator=g)) for n in sizes]
    return Batch.from_data_list(graphs)


def test_as_message_passing_aggregation_matches_pyg():
    torch.manual_seed(0)
    batch = random_batch()
    x, edges = batch.x, batch.edge_index
    order = torch.argsort(edges[1] * x.size(0) + edges[0])  # PyG's sort-k needs sorted dst
    sorted_edges = edges[:, order]
    cases = [
        (GraphConv(8, 8, aggr=AttentionalReadout(in_channels=8)),
         lambda ours: GraphConv(8, 8, aggr=pyg.AttentionalAggregation(torch.nn.Linear(8, 1))),
         edges),
        (GraphConv(8, 8, aggr=DeepSetsReadout(in_channels=8)),
         lambda ours: GraphConv(8, 8, aggr=pyg.DeepSetsAggregation(
             copy.deepcopy(ours.aggr_module.local_nn))), edges),
        (SimpleConv(aggr=Set2SetReadout(8)), lambda ours: SimpleConv(aggr=pyg.Set2Set(8, 3)),
         edges),
        (SimpleConv(aggr=SortReadout(2, in_channels=8)), lambda ours: SimpleConv(
            aggr=pyg.SortAggregation(2)), sorted_edges),
    ]
    for ours, make, e in cases:
        theirs = make(ours)
        theirs.load_state_dict(ours.state_dict())
        out, expected = ours(x, e), theirs(x, e)
        assert out.shape == (x.size(0), ours.aggr_module.out_features(8))
        reached = torch.bincount(e[1], minlength=x.size(0)) > 0
        assert not reached.all()  # nodes without incoming edges: empty sets
        torch.testing.assert_close(out[reached], expected[reached], **tol(torch.float32, 64),
                                   msg=lambda m: f"{type(ours.aggr_module).__name__}: {m}")
        if isinstance(ours, SimpleConv):  # the aggregation alone: fill_value 0
            assert out[~reached].eq(0).all()
    # graphpool's sort-k does not need sorted edges
    sort_conv = SimpleConv(aggr=SortReadout(k=2))
    assert torch.equal(sort_conv(x, edges), sort_conv(x, sorted_edges))


@pytest.mark.parametrize("kind", KINDS)
def test_graph_readout_of_a_pyg_batch(kind):
    module = build(kind)
    batch = random_batch(width=C)
    out = module(batch.x, batch)
    assert out.shape == (batch.num_graphs, module.out_features(C))
    torch.testing.assert_close(out, module(batch.x, batch.batch))
    torch.testing.assert_close(out, module(batch.x, ptr=batch.ptr))


@pytest.mark.parametrize("cls", CLASSES)
def test_the_resolver_builds_them_from_in_channels(cls, monkeypatch):
    assert cls.needs_in_channels is True and cls.functional is False
    module = cls(in_channels=C)  # the resolver's call: a working default module
    assert isinstance(module, Readout) and isinstance(module, pyg.Aggregation)
    out = module(features(5, torch.float32, 0), torch.tensor([0, 0, 1, 1, 1]))
    assert out.shape == (2, module.out_features(C))
    monkeypatch.setitem(READOUTS, "learnable_under_test", cls)
    resolved = resolve_readout("learnable_under_test", in_channels=C)
    assert type(resolved) is cls and repr(resolved) == repr(module)
    with pytest.raises(GraphpoolError, match="in_channels"):
        resolve_readout("learnable_under_test")
    assert resolve_readout(module) is module
    with pytest.raises(GraphpoolError, match="in_channels"):
        gp.readout(features(2, torch.float32, 0), torch.tensor([0, 0]), "learnable_under_test")
    with pytest.raises(GraphpoolError, match="'reduce'"):  # no use in the functional readout
        gp.readout(features(2, torch.float32, 0), torch.tensor([0, 0]), module)
    multi = MultiReadout([module, "mean"])
    assert multi(features(3, torch.float32, 0), torch.tensor([0, 1, 1])).shape == (
        2, module.out_features(C) + C)


def test_defaults_out_features_and_repr():
    attn = AttentionalReadout(in_channels=8)
    assert (attn.gate_nn.in_features, attn.gate_nn.out_features, attn.nn) == (8, 1, None)
    feat = AttentionalReadout(8, nn=torch.nn.Linear(8, 3), gate="feature")
    assert feat.gate_nn.out_features == 3 and feat.out_features(8) == 3
    assert repr(attn) == ("AttentionalReadout(gate_nn=Linear(in_features=8, out_features=1, "
                          "bias=True), nn=None, gate='node')")
    s2s = Set2SetReadout(in_channels=8)
    assert (s2s.processing_steps, s2s.lstm.input_size, s2s.lstm.hidden_size) == (3, 16, 8)
    assert s2s.out_features(8) == 16 and repr(s2s) == \
        "Set2SetReadout(in_channels=8, processing_steps=3)"
    assert Set2SetReadout(8, num_layers=2).lstm.num_layers == 2
    sort = SortReadout(in_channels=8)
    assert sort.k == 30 and sort.out_features(8) == 240 and repr(sort) == "SortReadout(k=30)"
    deep = DeepSetsReadout(in_channels=8)
    assert [type(m).__name__ for m in deep.local_nn] == ["Linear", "ReLU", "Linear"]
    assert deep.global_nn is None and deep.out_features(8) == 8
    assert DeepSetsReadout(8, global_nn=MLP([8, 16, 2])).out_features(8) == 2
    assert repr(deep).startswith("DeepSetsReadout(local_nn=Sequential(")


@pytest.mark.parametrize("kind", KINDS)
def test_reset_parameters_redraws_the_weights(kind):
    module = build(kind)
    before = [p.detach().clone() for p in params(module)]
    module.reset_parameters()
    after = params(module)
    assert all(not torch.equal(b, a) for b, a in zip(before, after, strict=True))


# ------------------------------------------------------------------------- bad arguments
class Opaque(torch.nn.Module):  # a network whose output width cannot be known statically
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        return x * self.w


X = torch.randn(4, C)
IDX = torch.tensor([0, 0, 1, 1])

BAD = [
    # (call, where, argument)
    (lambda: AttentionalReadout(), "AttentionalReadout", "in_channels"),
    (lambda: AttentionalReadout(in_channels=0), "AttentionalReadout", "in_channels"),
    (lambda: AttentionalReadout(in_channels=True), "AttentionalReadout", "in_channels"),
    (lambda: AttentionalReadout(in_channels=4.0), "AttentionalReadout", "in_channels"),
    (lambda: AttentionalReadout(C, gate="graph"), "AttentionalReadout", "gate"),
    (lambda: AttentionalReadout(C, gate_nn="linear"), "AttentionalReadout", "gate_nn"),
    (lambda: AttentionalReadout(C, nn=lambda x: x), "AttentionalReadout", "nn"),
    (lambda: AttentionalReadout(C, nn=Opaque(), gate="feature"), "AttentionalReadout",
     "gate_nn"),
    (lambda: AttentionalReadout(gate_nn=torch.nn.Linear(C, 2))(X, IDX), "AttentionalReadout",
     "gate_nn"),
    (lambda: AttentionalReadout(gate_nn=torch.nn.Linear(C, 1), gate="feature")(X, IDX),
     "AttentionalReadout", "gate_nn"),
    (lambda: AttentionalReadout(C + 1)(X, IDX), "AttentionalReadout", "x"),
    (lambda: AttentionalReadout(C)(X.long(), IDX), "AttentionalReadout", "x"),
    (lambda: AttentionalReadout(C)(X, IDX[:3]), "AttentionalReadout", "x"),
    (lambda: AttentionalReadout(C)(X.double(), IDX), "AttentionalReadout", "x"),
    (lambda: AttentionalReadout(C, gate="feature")(X.half(), IDX), "AttentionalReadout", "x"),
    (lambda: AttentionalReadout(C)(X, IDX.float()), "AttentionalReadout", "index"),
    (lambda: AttentionalReadout(C, nn=Opaque()).out_features(C),
     "AttentionalReadout.out_features", "nn"),
    (lambda: Set2SetReadout(None), "Set2SetReadout", "in_channels"),
    (lambda: Set2SetReadout(C, 0), "Set2SetReadout", "processing_steps"),
    (lambda: Set2SetReadout(C, 2.5), "Set2SetReadout", "processing_steps"),
    (lambda: Set2SetReadout(C, batch_first=True), "Set2SetReadout", "batch_first"),
    (lambda: Set2SetReadout(C, bidirectional=True), "Set2SetReadout", "bidirectional"),
    (lambda: Set2SetReadout(C, not_an_lstm_argument=1), "Set2SetReadout", "kwargs"),
    (lambda: Set2SetReadout(C)(X.double(), IDX), "Set2SetReadout", "x"),
    (lambda: Set2SetReadout(C + 1)(X, IDX), "Set2SetReadout", "x"),
    (lambda: SortReadout(k=0), "SortReadout", "k"),
    (lambda: SortReadout(k=2.0), "SortReadout", "k"),
    (lambda: SortReadout(k=True), "SortReadout", "k"),
    (lambda: SortReadout(in_channels=-1), "SortReadout", "in_channels"),
    (lambda: SortReadout(2, in_channels=C + 1)(X, IDX), "SortReadout", "x"),
    (lambda: DeepSetsReadout(), "DeepSetsReadout", "in_channels"),
    (lambda: DeepSetsReadout(local_nn=3), "DeepSetsReadout", "local_nn"),
    (lambda: DeepSetsReadout(C)(X.double(), IDX), "DeepSetsReadout", "x"),
    (lambda: DeepSetsReadout(C, global_nn="mlp"), "DeepSetsReadout", "global_nn"),
    (lambda: DeepSetsReadout(local_nn=Opaque()).out_features(C),
     "DeepSetsReadout.out_features", "local_nn"),
]


@pytest.mark.parametrize("kind", KINDS)
def test_under_autocast_half_rows_meet_float_weights(kind):
    """torch.autocast casts for the layers: rows in bfloat16 with float32 weights are read
    out (no dtype error), as by the same module on the float32 rows, to the rounding of
    bfloat16 (eps 2**-8) through its two or three layers."""
    module = build(kind)
    x = features(6, torch.float32, seed=1)
    index = torch.tensor([0, 0, 1, 1, 1, 2])
    want = module(x, index)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = module(x.bfloat16(), index)
        if any(p.is_floating_point() for p in module.parameters()):  # not cast by autocast:
            with pytest.raises(GraphpoolError, match=r"invalid 'x'.*torch.float32"):
                module(x.double(), index)
    torch.testing.assert_close(got.float(), want, rtol=2 ** -4, atol=2 ** -4)


@pytest.mark.parametrize("call, where, argument", BAD,
                         ids=[f"{w}-{a}-{i}" for i, (_, w, a) in enumerate(BAD)])
def test_bad_arguments_name_the_argument(call, where, argument):
    with pytest.raises(GraphpoolError, match=rf"^{where}: invalid '{argument}': expected"
                       ) as info:
        call()
    assert (info.value.where, info.value.argument) == (where, argument)
    assert info.value.fix
