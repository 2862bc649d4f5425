"""The edge energy readout against a per-edge Python loop, its properties and its errors."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.data import Batch, Data

from graphpool import GraphpoolError, Segments
from graphpool.readouts.edge import EdgeEnergyReadout, edge_energy_readout

REDUCES = ["sum", "mean", "max", "min"]


def reference(x, edge_index, batch, edge_type, num_types, num_graphs, reduce):
    """A loop over graphs and types that shares no code with the implementation."""
    ops = {"sum": lambda v: v.sum(0), "mean": lambda v: v.mean(0),
           "max": lambda v: v.max(0).values, "min": lambda v: v.min(0).values}
    out = torch.zeros(num_graphs, num_types * x.size(1), dtype=x.dtype)
    for b in range(num_graphs):
        for t in range(num_types):
            rows = [(x[u] - x[v]) ** 2 for e, (u, v) in enumerate(edge_index.t().tolist())
                    if batch[u] == b and (edge_type is None or edge_type[e] == t)]
            if rows:
                out[b, t * x.size(1):(t + 1) * x.size(1)] = ops[reduce](torch.stack(rows))
    return out


def random_batch(seed, num_graphs=4, features=3, num_types=2, dtype=torch.float64):
    """Graphs of 0..5 nodes with random edges (the last graph has no edges)."""
    gen = torch.Generator().manual_seed(seed)
    graphs = []
    for b in range(num_graphs):
        n = int(torch.randint(0, 6, (1,), generator=gen))
        e = 0 if b == num_graphs - 1 or n == 0 else int(torch.randint(1, 8, (1,), generator=gen))
        graphs.append(Data(x=torch.randn(n, features, generator=gen, dtype=dtype),
                           edge_index=torch.randint(0, max(n, 1), (2, e), generator=gen),
                           edge_type=torch.randint(0, num_types, (e,), generator=gen),
                           num_nodes=n))
    return Batch.from_data_list(graphs)


@pytest.mark.parametrize("reduce", REDUCES)
@pytest.mark.parametrize("typed", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_loop(reduce, typed, seed):
    b = random_batch(seed)
    types = 2 if typed else 1
    edge_type = b.edge_type if typed else None
    got = edge_energy_readout(b.x, b.edge_index, b.batch, edge_type=edge_type,
                              num_edge_types=types if typed else None, reduce=reduce,
                              num_graphs=b.num_graphs)
    want = reference(b.x, b.edge_index, b.batch, edge_type, types, b.num_graphs, reduce)
    torch.testing.assert_close(got, want)


def test_groupings_agree():
    b = random_batch(3)
    by_index = edge_energy_readout(b.x, b.edge_index, b.batch, num_graphs=b.num_graphs)
    torch.testing.assert_close(edge_energy_readout(b.x, b.edge_index, b), by_index)
    torch.testing.assert_close(
        edge_energy_readout(b.x, b.edge_index, Segments.from_ptr(b.ptr)), by_index)


def test_no_edges_and_trailing_empty_graphs_read_zero():
    x = torch.randn(3, 2)
    out = edge_energy_readout(x, torch.zeros(2, 0, dtype=torch.long), torch.tensor([0, 0, 1]),
                              num_graphs=4, reduce="max")
    assert out.shape == (4, 2) and out.eq(0).all()
    one_edge = edge_energy_readout(x, torch.tensor([[0], [1]]), torch.tensor([0, 0, 1]),
                                   num_graphs=4)
    torch.testing.assert_close(one_edge[0], (x[0] - x[1]) ** 2)
    assert one_edge[1:].eq(0).all()


def test_zero_graphs():
    out = edge_energy_readout(torch.zeros(0, 3), torch.zeros(2, 0, dtype=torch.long),
                              torch.zeros(0, dtype=torch.long), num_graphs=0)
    assert out.shape == (0, 3)


def test_leading_dims_are_independent():
    b = random_batch(4)
    stacked = torch.stack([b.x, 2 * b.x, -b.x])
    out = edge_energy_readout(stacked, b.edge_index, b, edge_type=b.edge_type,
                              num_edge_types=2)
    for i, scale in enumerate([1, 2, -1]):
        torch.testing.assert_close(out[i], edge_energy_readout(
            scale * b.x, b.edge_index, b, edge_type=b.edge_type, num_edge_types=2))


def test_stripes_and_checkerboard():
    """The seed example: same histogram, different gradient energy per direction."""
    from graphpool.analysis.families import grid_image, to_pyg

    b = Batch.from_data_list([to_pyg(grid_image(p, 4, 4), "ab")
                              for p in ("vertical", "horizontal", "checkerboard")])
    x = b.x[:, :1]  # colour a = 1, colour b = 0
    untyped = edge_energy_readout(x, b.edge_index, b)
    typed = edge_energy_readout(x, b.edge_index, b, edge_type=b.edge_type, num_edge_types=2)
    # 4 rows x 3 row-edges = 12 undirected row edges, stored twice (both directions).
    assert untyped.flatten().tolist() == [24.0, 24.0, 48.0]
    assert typed.tolist() == [[24.0, 0.0], [0.0, 24.0], [24.0, 24.0]]


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000))
def test_node_relabelling_and_edge_order_do_not_matter(seed):
    b = random_batch(seed)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(b.num_nodes, generator=gen)          # new row i is old perm[i]
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(b.num_nodes)
    edges = torch.randperm(b.edge_index.size(1), generator=gen)
    args = dict(edge_type=b.edge_type, num_edge_types=2, num_graphs=b.num_graphs)
    want = edge_energy_readout(b.x, b.edge_index, b.batch, **args)
    args["edge_type"] = b.edge_type[edges]
    got = edge_energy_readout(b.x[perm], inverse[b.edge_index[:, edges]], b.batch[perm],
                              **args)
    torch.testing.assert_close(got, want)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 4))
def test_types_partition_the_sum(seed, num_types):
    b = random_batch(seed, num_types=num_types)
    typed = edge_energy_readout(b.x, b.edge_index, b, edge_type=b.edge_type,
                                num_edge_types=num_types)
    total = typed.unflatten(-1, (num_types, b.x.size(1))).sum(-2)
    torch.testing.assert_close(total, edge_energy_readout(b.x, b.edge_index, b))


@pytest.mark.parametrize("reduce", ["sum", "mean", "max"])
def test_gradcheck(reduce):
    b = random_batch(5)
    x = b.x.clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x: edge_energy_readout(x, b.edge_index, b, edge_type=b.edge_type,
                                      num_edge_types=2, reduce=reduce), (x,))


def test_module_equals_function_and_repr():
    b = random_batch(6)
    module = EdgeEnergyReadout("mean", num_edge_types=2)
    torch.testing.assert_close(
        module(b.x, b.edge_index, b, b.edge_type),
        edge_energy_readout(b.x, b.edge_index, b, edge_type=b.edge_type, num_edge_types=2,
                            reduce="mean"))
    assert repr(module) == "EdgeEnergyReadout(reduce='mean', num_edge_types=2)"
    assert repr(EdgeEnergyReadout("add")) == "EdgeEnergyReadout(reduce='sum', num_edge_types=None)"


X = torch.zeros(3, 2)
EI = torch.tensor([[0, 1], [1, 2]])


@pytest.mark.parametrize("call, match", [
    (lambda: edge_energy_readout(torch.zeros(3), EI), r"invalid 'x'.*\[\*, N, F\]"),
    (lambda: edge_energy_readout(X, torch.zeros(3, 2, dtype=torch.long)),
     r"invalid 'edge_index'.*shape \[2, E\]"),
    (lambda: edge_energy_readout(X, EI.float()), r"invalid 'edge_index'.*integer"),
    (lambda: edge_energy_readout(X, EI + 2), r"node ids in \[0, 3\), got ids in \[2, 4\]"),
    (lambda: edge_energy_readout(X, EI, torch.tensor([0, 0, 1])),
     r"edges inside one graph, got an edge between two graphs"),
    (lambda: edge_energy_readout(X, EI, torch.tensor([0, 0])), r"invalid 'x'.*2 rows"),
    (lambda: edge_energy_readout(X, EI, edge_type=torch.tensor([0, 1])),
     r"invalid 'num_edge_types'.*Fix: pass the number of edge types"),
    (lambda: edge_energy_readout(X, EI, edge_type=torch.tensor([0, 2]), num_edge_types=2),
     r"type ids in \[0, 2\), got ids in \[0, 2\]"),
    (lambda: edge_energy_readout(X, EI, edge_type=torch.tensor([0]), num_edge_types=2),
     r"invalid 'edge_type'.*shape \[2\]"),
    (lambda: edge_energy_readout(X, EI, num_edge_types=3), r"invalid 'edge_type'"),
    (lambda: edge_energy_readout(X, EI, reduce="median"),
     r"invalid 'reduce': expected one of 'sum', 'mean', 'max', 'min'"),
    (lambda: edge_energy_readout(torch.zeros(1, 3, 2), EI,
                                 Segments.from_mask(torch.ones(1, 3, dtype=torch.bool))),
     r"invalid 'batch'.*mask"),
    (lambda: EdgeEnergyReadout("median"), r"^EdgeEnergyReadout: invalid 'reduce'"),
    (lambda: EdgeEnergyReadout(num_edge_types=0), r"invalid 'num_edge_types'"),
])
def test_errors(call, match):
    with pytest.raises(GraphpoolError, match=match):
        call()
