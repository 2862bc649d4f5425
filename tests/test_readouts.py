"""Readout functions and modules: one code path, PyG interop, torch.compile."""
from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.nn import GINConv, MessagePassing, SAGEConv
from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool
from torch_geometric.nn.aggr import Aggregation

import graphpool as gp

MODULES = {"sum": gp.SumReadout, "mean": gp.MeanReadout, "max": gp.MaxReadout,
           "min": gp.MinReadout}
FUNCTIONS = {"sum": gp.sum_readout, "mean": gp.mean_readout, "max": gp.max_readout,
             "min": gp.min_readout}
PYG_POOLS = {"sum": global_add_pool, "mean": global_mean_pool, "max": global_max_pool,
             "min": lambda x, b: -global_max_pool(-x, b)}


def random_batch(sizes=(3, 1, 4, 2), features=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    graphs = []
    for n in sizes:
        edges = torch.randint(0, n, (2, 2 * n), generator=g)
        graphs.append(Data(x=torch.randn(n, features, generator=g), edge_index=edges))
    return Batch.from_data_list(graphs)


@pytest.mark.parametrize("op", list(MODULES))
def test_function_module_and_pyg_pool_agree(op):
    batch = random_batch()
    expected = PYG_POOLS[op](batch.x, batch.batch)
    outputs = {
        "readout(batch vector)": gp.readout(batch.x, batch.batch, op),
        "readout(Batch)": gp.readout(batch.x, batch, op),
        "readout(ptr)": gp.readout(batch.x, ptr=batch.ptr, reduce=op),
        "function": FUNCTIONS[op](batch.x, batch.batch),
        "module(batch vector)": MODULES[op]()(batch.x, batch.batch),
        "module(Batch)": MODULES[op]()(batch.x, batch),
        "module(ptr=)": MODULES[op]()(batch.x, ptr=batch.ptr),
        "resolved by name": gp.resolve_readout(op)(batch.x, batch.batch),
    }
    for name, out in outputs.items():
        torch.testing.assert_close(out, expected, msg=lambda m: f"{name}: {m}")


def test_modules_are_pyg_aggregations_with_stable_repr():
    for op, cls in MODULES.items():
        module = cls()
        assert isinstance(module, Aggregation)
        assert repr(module) == f"{cls.__name__}()"
    assert isinstance(gp.resolve_readout("add"), gp.SumReadout)
    module = gp.MaxReadout()
    assert gp.resolve_readout(module) is module


def test_forward_hooks_see_the_call():
    seen = []
    module = gp.MeanReadout()
    module.register_forward_hook(lambda mod, args, out: seen.append(out.shape))
    module(torch.randn(5, 2), torch.tensor([0, 0, 1, 1, 1]))
    assert seen == [torch.Size([2, 2])]


def test_single_graph_without_batch_and_num_graphs():
    x = torch.randn(6, 3)
    torch.testing.assert_close(gp.MeanReadout()(x), x.mean(0, keepdim=True))
    out = gp.MaxReadout(fill_value=-1.0)(x, torch.zeros(6, dtype=torch.long), num_graphs=3)
    assert out[1:].eq(-1).all() and torch.equal(out[0], x.amax(0))


@pytest.mark.parametrize("op", list(MODULES))
def test_as_message_passing_aggregation_matches_pyg(op):
    torch.manual_seed(0)
    batch = random_batch(features=4)
    mlp = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8))
    ours = GINConv(mlp, aggr=MODULES[op]())
    theirs = GINConv(mlp, aggr="add" if op == "sum" else op)
    torch.testing.assert_close(ours(batch.x, batch.edge_index), theirs(batch.x, batch.edge_index))
    sage_ours = SAGEConv(4, 6, aggr=MODULES[op]())
    sage_theirs = SAGEConv(4, 6, aggr="add" if op == "sum" else op)
    sage_theirs.load_state_dict(sage_ours.state_dict())
    torch.testing.assert_close(sage_ours(batch.x, batch.edge_index),
                               sage_theirs(batch.x, batch.edge_index))


def test_plain_message_passing_with_a_readout_instance():
    class Propagate(MessagePassing):
        def forward(self, x, edge_index):
            return self.propagate(edge_index, x=x)

    x = torch.tensor([[1.0], [5.0], [3.0]])
    edge_index = torch.tensor([[0, 1, 2, 0], [2, 2, 1, 1]])  # 2 <- {0, 1}; 1 <- {2, 0}
    out = Propagate(aggr=gp.MinReadout())(x, edge_index)
    assert out.flatten().tolist() == [0.0, 1.0, 1.0]  # node 0 has no incoming edge


@pytest.mark.parametrize("op", list(MODULES))
def test_small_gin_trains_on_a_pyg_batch_with_each_readout(op):
    torch.manual_seed(0)
    batch = random_batch(sizes=(4, 6, 5, 3, 7, 2), features=4)
    y = torch.tensor([0, 1, 0, 1, 1, 0])

    class GIN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = GINConv(torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU()))
            self.readout = gp.resolve_readout(op)
            self.head = torch.nn.Linear(16, 2)

        def forward(self, data):
            return self.head(self.readout(self.conv(data.x, data.edge_index), data))

    model = GIN()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    first = None
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(batch), y)
        loss.backward()
        first = loss.item() if first is None else first
        opt.step()
    assert all(p.grad is not None for p in model.parameters())
    assert loss.item() < first


@pytest.mark.parametrize("op", list(MODULES))
def test_torch_compile_fullgraph_with_known_number_of_sets(op):
    torch._dynamo.reset()
    batch = random_batch()
    module = MODULES[op]()
    compiled = torch.compile(lambda x, b: module(x, b, num_graphs=4), fullgraph=True)
    x = batch.x.clone().requires_grad_()
    out = compiled(x, batch.batch)
    out.sum().backward()
    eager_x = batch.x.clone().requires_grad_()
    expected = module(eager_x, batch.batch, num_graphs=4)
    expected.sum().backward()
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(x.grad, eager_x.grad)


# ------------------------------------------- errors name the public call and argument
X4 = torch.randn(4, 3)
IDX = torch.tensor([0, 0, 1, 1])

CONTEXT_CASES = [
    # (call, where, argument the user passed)
    (lambda: gp.MeanReadout()(X4, IDX, dim_size=1), "MeanReadout", "dim_size"),
    (lambda: gp.MeanReadout()(X4, IDX, num_graphs=1), "MeanReadout", "num_graphs"),
    (lambda: gp.MaxReadout()(X4, torch.tensor([0, -1, 1, 1])), "MaxReadout", "index"),
    (lambda: gp.SumReadout()(X4, IDX.float()), "SumReadout", "index"),
    (lambda: gp.SumReadout()(X4, ptr=torch.tensor([0, 3, 2, 4])), "SumReadout", "ptr"),
    (lambda: gp.SumReadout()(X4, ptr=torch.tensor([0, 2, 4]), dim_size=3), "SumReadout",
     "dim_size"),
    (lambda: gp.readout(X4, IDX, num_graphs=1), "readout", "num_graphs"),
    (lambda: gp.readout(X4, IDX, size=1), "readout", "size"),
    (lambda: gp.readout(X4, torch.tensor([0, -1, 1, 1])), "readout", "batch"),
    (lambda: gp.sum_readout(X4, IDX, 1), "sum_readout", "size"),
    (lambda: gp.mean_readout(X4, IDX, num_graphs=1), "mean_readout", "num_graphs"),
    (lambda: gp.max_readout(X4, IDX.view(2, 2)), "max_readout", "batch"),
    (lambda: gp.min_readout(X4, ptr=torch.tensor([1, 4])), "min_readout", "ptr"),
    (lambda: gp.sum_readout(X4, IDX, size=2, num_graphs=3), "sum_readout", "size"),
    (lambda: gp.MeanReadout()(X4, IDX, dim_size=2, num_graphs=3), "MeanReadout", "num_graphs"),
    (lambda: gp.MeanReadout()(X4, torch.tensor([0, 1, 1, 1]), torch.tensor([0, 2, 4])),
     "MeanReadout", "ptr"),
    (lambda: gp.SumReadout()(X4, IDX, dim=5), "SumReadout", "dim"),
    (lambda: gp.SumReadout()(torch.randn(2, 4, 3), IDX, dim=0), "SumReadout", "dim"),
    (lambda: gp.sum_readout(torch.randn(3), IDX), "sum_readout", "x"),
]


@pytest.mark.parametrize("call,where,argument", CONTEXT_CASES,
                         ids=[f"{w}-{a}-{i}" for i, (_, w, a) in enumerate(CONTEXT_CASES)])
def test_errors_name_the_call_and_the_argument_the_user_used(call, where, argument):
    with pytest.raises(gp.GraphpoolError) as info:
        call()
    err = info.value
    assert (err.where, err.argument) == (where, argument), str(err)
    assert str(err).startswith(f"{where}: invalid '{argument}'")
    lower_names = {"num_segments", "Segments.from_index", "Segments.from_ptr"}
    assert not any(name in str(err) for name in lower_names), str(err)
    assert err.expected and err.fix


def test_renamed_error_says_how_to_fix_it_with_the_users_name():
    with pytest.raises(gp.GraphpoolError) as info:
        gp.MeanReadout()(X4, torch.tensor([0, 0, 2, 2]), dim_size=1)
    assert "dim_size >= 3" in info.value.fix and "index.max() + 1" in info.value.expected
    with pytest.raises(gp.GraphpoolError) as info:
        gp.sum_readout(X4, IDX.float())
    assert "batch.long()" in info.value.fix


def test_index_with_a_matching_ptr_is_accepted_and_checked():
    x = torch.randn(5, 2)
    index, ptr = torch.tensor([0, 0, 2, 2, 2]), torch.tensor([0, 2, 2, 5])
    for reduce, module in MODULES.items():
        expected = module()(x, ptr=ptr)
        torch.testing.assert_close(module()(x, index, ptr), expected)
        torch.testing.assert_close(gp.readout(x, index, reduce, ptr=ptr), expected)
    with pytest.raises(gp.GraphpoolError, match=r"'ptr'.*row 2 in set 2.*in set 1"):
        gp.SumReadout()(x, torch.tensor([0, 0, 1, 2, 2]), ptr)
    with pytest.raises(gp.GraphpoolError, match=r"'ptr'.*None when index is a Segments"):
        gp.SumReadout()(x, gp.Segments.from_ptr(ptr), ptr)


def test_multi_dim_features_and_1d_x_in_modules():
    x = torch.randn(5, 2, 3)   # [N, heads, C], nodes on dim 0
    index = torch.tensor([0, 1, 1, 2, 2])
    out = gp.MaxReadout()(x, index, dim=0)
    assert out.shape == (3, 2, 3)
    torch.testing.assert_close(out[1], x[1:3].amax(0))
    values = torch.tensor([1.0, 2.0, 4.0])
    assert gp.SumReadout()(values, torch.tensor([0, 1, 1])).tolist() == [1.0, 6.0]
    assert gp.SumReadout()(values, dim=0).tolist() == [7.0]


def test_a_widening_readout_gets_several_feature_dims_back_with_its_results_side_by_side():
    class MeanMax(gp.Readout):
        def forward(self, x, segments):
            return torch.cat([gp.readout(x, segments, "mean"), gp.readout(x, segments, "max")],
                             -1)

    x = torch.randn(4, 2, 3)
    out = MeanMax()(x, IDX, dim=0)  # [2, 3] flattened to 6, widened to 2 * 6, restored
    assert out.shape == (2, 2, 6)   # as the same forward on [N, 2, 3] would concatenate
    torch.testing.assert_close(out, torch.cat([gp.MeanReadout()(x, IDX, dim=0),
                                               gp.MaxReadout()(x, IDX, dim=0)], -1))

    class Odd(gp.Readout):  # a width that is no multiple of the features: left flat
        def forward(self, x, segments):
            return gp.readout(x, segments, "sum")[..., :5]

    assert Odd()(x, IDX, dim=0).shape == (2, 5)


def test_no_index_with_dim_size_pads_like_pyg():
    x = torch.randn(4, 3)
    out = gp.SumReadout()(x, dim_size=3)
    torch.testing.assert_close(out[0], x.sum(0))
    assert out[1:].eq(0).all()


def test_functions_without_a_batch_follow_pyg_pools_but_honour_size():
    x = torch.randn(2, 5, 3)
    torch.testing.assert_close(gp.sum_readout(x), x.sum(-2))                # [*, F], as PyG
    torch.testing.assert_close(gp.readout(x, None, "max"), x.amax(-2))
    padded = gp.sum_readout(x, None, 3)   # PyG's pool ignores size here; graphpool pads
    assert padded.shape == (2, 3, 3) and padded[:, 1:].eq(0).all()
    torch.testing.assert_close(padded[:, 0], x.sum(-2))
    assert gp.MeanReadout()(x).shape == (2, 1, 3)                             # modules keep it


def test_named_readout_modules_are_reused_only_for_constant_arguments():
    """readout(x, batch, name, **options) builds the named module once per name and
    constant options (numbers, strings, tuples of them); others (a list, a tensor) build
    a fresh one each call, with the constructor's own checks."""
    from graphpool import functional

    x, batch = torch.rand(5, 3) + 0.1, torch.tensor([0, 0, 1, 1, 1])
    functional._cached.cache_clear()
    first = gp.readout(x, batch, "powermean", p=2.0)
    assert torch.equal(gp.readout(x, batch, "powermean", p=2.0), first)
    assert functional._cached.cache_info().hits == 1
    assert not torch.equal(gp.readout(x, batch, "powermean", p=3.0), first)
    q = [0.25, 0.75]
    by_list = gp.readout(x, batch, "quantile", q=q)
    torch.testing.assert_close(by_list, gp.readout(x, batch, "quantile", q=tuple(q)))
    q[1] = 0.5  # the cached module was built from a copy: changing the list changes nothing
    assert torch.equal(gp.readout(x, batch, "quantile", q=[0.25, 0.75]), by_list)
    assert not torch.equal(gp.readout(x, batch, "quantile", q=q), by_list)
    with pytest.raises(gp.GraphpoolError, match="'p'"):
        gp.readout(x, batch, "powermean", p=torch.tensor(2.0))
    # p=2.0, p=3.0, q as a list, as a tuple, the changed list; a tensor p is never cached
    assert functional._cached.cache_info().currsize == 5


# Arguments that compare equal in Python but build different modules: a cached module
# must never answer for the other one.
EQUAL_BUT_DIFFERENT = [
    ("sign-of-zero", dict(reduce="var", fill_value=0.0), dict(reduce="var", fill_value=-0.0)),
    ("int-and-float-option", dict(reduce="quantile", q=1), dict(reduce="quantile", q=1.0)),
    ("bool-and-int-option", dict(reduce="softmax", t=1), dict(reduce="softmax", t=True)),
    ("tuple-members", dict(reduce="quantile", q=(0, 1)), dict(reduce="quantile", q=(0.0, True))),
    ("list-members", dict(reduce="quantile", q=[0, 1]), dict(reduce="quantile", q=[0.0, True])),
]


@pytest.mark.parametrize("first,second", [c[1:] for c in EQUAL_BUT_DIFFERENT],
                         ids=[c[0] for c in EQUAL_BUT_DIFFERENT])
def test_named_readout_cache_tells_equal_but_different_arguments_apart(first, second):
    """Each call gives what a module built for its own arguments gives (bits, including
    the sign of an empty set's zero), or that module's error, whichever call came first."""
    x, batch = torch.rand(5, 2) + 0.1, torch.tensor([0, 0, 2, 2, 2])

    def fresh(kwargs):
        kwargs = dict(kwargs)
        reduce, fill = kwargs.pop("reduce"), kwargs.pop("fill_value", 0.0)
        try:
            module = gp.resolve_readout(reduce, fill_value=fill, **kwargs)
        except gp.GraphpoolError as e:
            return type(e)
        return module(x, batch)

    for order in ([first, second], [second, first]):
        from graphpool import functional
        functional._cached.cache_clear()
        for kwargs in order:
            expected = fresh(kwargs)
            if isinstance(expected, type):
                with pytest.raises(expected):
                    gp.readout(x, batch, **kwargs)
                continue
            out = gp.readout(x, batch, **kwargs)
            assert torch.equal(out, expected) and torch.equal(out.signbit(), expected.signbit())
    assert gp.readout(x, batch, "var", fill_value=-0.0)[1].signbit().all()
    nan = gp.readout(x, batch, "var", fill_value=float("nan"))
    assert nan[1].isnan().all() and gp.readout(x, batch, "var", fill_value=float("nan"))[1].isnan().all()


@pytest.mark.parametrize("name,learns", [("gem", "p"), ("powermean", "p"), ("softmax", "t")])
def test_named_readout_refuses_weights_it_could_never_train(name, learns):
    x, batch = torch.rand(5, 2) + 0.1, torch.tensor([0, 0, 1, 1, 1])
    with pytest.raises(gp.GraphpoolError, match=rf"^readout: invalid 'reduce'.*which learns "
                                                rf"{learns}\. Fix: pass learn=False.*keep it "
                                                rf"in your model"):
        gp.readout(x, batch, name, learn=True)
    with pytest.raises(gp.GraphpoolError, match=r"which learns readouts\.1\.p\. Fix: build"):
        gp.readout(x, batch, ["mean", "gem"])  # learnable by default, in a list
    module = gp.resolve_readout(name, learn=True)  # the module is how to learn it
    module(x, batch).sum().backward()
    assert all(p.grad is not None for p in module.parameters())


@pytest.mark.parametrize("p", [None, 2.0])
def test_gem_by_name_is_the_power_mean_with_its_p_fixed(p):
    """GeMReadout learns p by default; by name (nothing could train it) p stays fixed: the
    power mean with that p, no parameter, no gradient but the input's."""
    x = (torch.rand(5, 2, generator=torch.Generator().manual_seed(0)) + 0.1).requires_grad_()
    batch = torch.tensor([0, 0, 1, 1, 1])
    options = {} if p is None else {"p": p}
    got = gp.readout(x, batch, "gem", **options)
    want = gp.readout(x, batch, "powermean", p=3.0 if p is None else p)
    assert torch.equal(got, want)
    module = gp.functional._named("gem", 0.0, options)
    assert not list(module.parameters()) and module.learn is False


@pytest.mark.parametrize("name,option,takes", [
    ("mean", "bogus", ["fill_value", "validate"]),  # a table reduction's module
    ("prod", "t", ["fill_value", "validate"]),
    ("softmax", "tt", ["channels", "fill_value", "learn", "t", "validate"]),
    ("quantile", "interp", ["fill_value", "interpolation", "max_num_nodes", "q",
                            "validate"]),
    ("var", "ddof", ["correction", "fill_value", "validate"]),
])
def test_named_readout_names_an_option_its_module_does_not_take(name, option, takes):
    """A misspelt option is an error naming it and listing the module's options, from
    every entry point that resolves a name (not Python's TypeError from a constructor)."""
    x, batch = torch.rand(5, 2) + 0.1, torch.tensor([0, 0, 1, 1, 1])
    listed = ", ".join(takes)
    for where, call in [("readout", lambda: gp.readout(x, batch, name, **{option: 1})),
                        ("resolve_readout", lambda: gp.resolve_readout(name, **{option: 1}))]:
        with pytest.raises(gp.GraphpoolError, match=rf"^{where}: invalid '{option}': expected "
                                                    rf"an option of '{name}' \(\w+\): one "
                                                    rf"of {listed}, got {option}=1\."):
            call()
    for good in takes:  # every listed option is taken (values each module accepts)
        value = {"fill_value": 0.0, "validate": True, "channels": 1, "learn": False, "t": 1.0,
                 "q": 0.5, "interpolation": "linear", "correction": 0,
                 "max_num_nodes": 3}[good]
        assert gp.readout(x, batch, name, **{good: value}).shape[0] == 2


INSTANCE_ARGUMENTS = [  # (module, arguments given along with it, accepted)
    (gp.MeanReadout(), {"fill_value": 0}, True),  # its own value, as an int
    (gp.MeanReadout(fill_value=-1), {"fill_value": -1.0}, True),
    (gp.MeanReadout(fill_value=-1.0), {"fill_value": torch.tensor(-1.0)}, True),
    (gp.MeanReadout(fill_value=float("nan")), {"fill_value": float("nan")}, True),
    (gp.VarReadout(correction=1), {"correction": 1, "validate": True}, True),
    (gp.MeanReadout(fill_value=-1.0), {"fill_value": 0.0}, False),  # explicit, not its own
    (gp.MeanReadout(), {"fill_value": -0.0}, False),
    (gp.VarReadout(), {"correction": 1}, False),
    (gp.MeanReadout(), {"q": 0.5}, False),  # not an argument it has
    (gp.MultiReadout(["mean", "max"]), {"fill_value": 1.0}, False),
    (gp.QuantileReadout(q=[0.25, 0.75]), {"q": [0.25, 0.75]}, True),  # a list, as held
    (gp.QuantileReadout(q=[0.25, 0.75]), {"q": (0.25, 0.75)}, True),
    (gp.QuantileReadout(q=[0.25, 0.75]), {"q": [0.25, 0.7]}, False),
    (gp.QuantileReadout(q=[0.25, 0.75]), {"q": [0.25]}, False),
    (gp.QuantileReadout(q=[0.25, 0.75]), {"q": 0.25}, False),
    (gp.QuantileReadout(q=0.5), {"q": [0.5]}, False),
]


@pytest.mark.parametrize("module,given,accepted", INSTANCE_ARGUMENTS,
                         ids=[f"{type(m).__name__}-{sorted(g)}-{a}" for m, g, a in INSTANCE_ARGUMENTS])
def test_a_readout_instance_refuses_arguments_it_would_ignore(module, given, accepted):
    """A built module keeps its own arguments: what is given along with it must be what
    it holds (same value and sign), else it would be silently ignored; it is an error
    naming the argument instead (distributed_readout: tests/test_distributed.py)."""
    x, batch = torch.tensor([[1.0], [3.0], [5.0]]), torch.tensor([0, 0, 2])
    if accepted:
        torch.testing.assert_close(gp.readout(x, batch, module, num_graphs=3, **given),
                                   module(x, batch, dim_size=3), rtol=0, atol=0, equal_nan=True)
    else:
        (key,) = given
        with pytest.raises(gp.GraphpoolError, match=rf"^readout: invalid '{key}': expected "
                                                    rf"(no {key} with a built Readout|"
                                                    rf"{key}=.*what the {type(module).__name__})"):
            gp.readout(x, batch, module, num_graphs=3, **given)


def test_median_readout_refuses_a_quantile():
    with pytest.raises(gp.GraphpoolError, match=r"^MedianReadout: invalid 'q'.*QuantileReadout"):
        gp.readout(torch.rand(3, 2), torch.tensor([0, 0, 1]), "median", q=0.3)


def test_named_readout_under_torch_compile_is_looked_up_outside_the_trace():
    """A name with options inside a compiled function: the eager result, the cached module
    (built outside the trace, not by Dynamo: no lru_cache warning, no module construction
    traced), the same module eager calls use."""
    import warnings
    from graphpool import functional

    x, seg = torch.randn(12, 3), gp.Segments.from_index(torch.tensor([0] * 5 + [2] * 7))
    functional._cached.cache_clear()
    torch._dynamo.reset()
    compiled = torch.compile(lambda t: gp.readout(t, seg, "softmax", t=0.5), backend="eager")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = compiled(x)
    assert not [w for w in caught if "lru_cache" in str(w.message)]
    assert torch.equal(out, gp.readout(x, seg, "softmax", t=0.5))
    info = functional._cached.cache_info()
    assert (info.currsize, info.hits >= 1) == (1, True)
