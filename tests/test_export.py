"""Export: torch.export and the dynamo ONNX exporter for every readout on every grouping,
checked in onnxruntime on new inputs of other sizes (numbers of nodes and of sets)
against eager and, for the basic readouts, a per-set loop; the legacy exporter's refusal;
PyG's legacy global_max_pool beside graphpool's model."""
from __future__ import annotations

import contextlib
import io
import math
import re
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
pytest.importorskip("onnxruntime")

import graphpool as gp  # noqa: E402
from graphpool import GraphpoolError, Segments  # noqa: E402
from graphpool.export import (GROUPINGS, SUPPORT, max_difference, run_onnx,  # noqa: E402
                              support_table)
from graphpool.grid import GlobalPool2d  # noqa: E402
from graphpool.readouts import READOUTS, MultiReadout, resolve_readout  # noqa: E402

DYN = torch.export.Dim.DYNAMIC
F = 4          # features (a multiple of every head count used)
FILL = -2.5    # the fill value of empty sets, for every readout
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def onnx_export(model, args, dynamic_shapes):
    """The user's call: plain torch.onnx.export(dynamo=True) (its progress lines muted)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return torch.onnx.export(model, args, dynamic_shapes=dynamic_shapes, dynamo=True)


# ------------------------------------------------------------------- the readouts
def build(name, grouping):
    """Readout ``name`` as a user builds it; settransformer needs max_num_nodes on index
    and ptr (the SUPPORT table says so, and a test checks the refusal without it)."""
    kwargs = {"fill_value": FILL}
    if SUPPORT[name][grouping] == "max_num_nodes":
        kwargs["max_num_nodes"] = 8
    if name == "sort":
        return resolve_readout(name, k=3, in_channels=F, **kwargs)
    if name == "set2set":
        return resolve_readout(name, processing_steps=1, in_channels=F, **kwargs)
    if name == "quantile":
        return resolve_readout(name, q=[0.0, 0.3, 1.0], **kwargs)
    return resolve_readout(name, in_channels=F, **kwargs)


def all_readouts(grouping):
    torch.manual_seed(0)
    mods = {name: build(name, grouping) for name in READOUTS}
    mods["multi-cat"] = MultiReadout(["mean", "max", "std", "median"],
                                     fill_value=FILL)
    mods["multi-max"] = MultiReadout(["mean", "max", "logsumexp"], mode="max", fill_value=FILL)
    mods["multi-proj"] = MultiReadout(["mean", "max"], mode="proj", fill_value=FILL,
                                      mode_kwargs=dict(in_channels=F, out_channels=3))
    mods["multi-attn"] = MultiReadout(["sum", "min"], mode="attn", fill_value=FILL,
                                      mode_kwargs=dict(in_channels=F, out_channels=4))
    return torch.nn.ModuleDict(mods).eval()


EXACT = {"max", "min", "median", "sort", "count"}


class Grouped(torch.nn.Module):
    """Every readout of ``readouts`` over one grouping, as a user's model would call it."""

    def __init__(self, readouts, grouping):
        super().__init__()
        self.readouts, self.grouping = readouts, grouping

    def forward(self, x, g=None):
        if self.grouping == "index":
            call = lambda r: r(x, g)                                   # noqa: E731
        elif self.grouping == "ptr":
            call = lambda r: r(x, ptr=g)                               # noqa: E731
        elif self.grouping == "mask":
            seg = Segments.from_mask(g)
            call = lambda r: r(x, seg)                                 # noqa: E731
        else:  # x is [B, S, F]: B sets of S rows
            seg = Segments.uniform(x.size(0), x.size(1))
            call = lambda r: r(x.flatten(0, 1), seg)                   # noqa: E731
        return tuple(call(r) for r in self.readouts.values())


# --------------------------------------------------------------------- the inputs
def features(counts, seed):
    """Rows of sets of ``counts`` sizes: the first non-empty set all negative (a max below
    0), the second one holding +inf and -inf, the third -inf on all rows of a feature,
    values of order 10."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(sum(counts), F, generator=g) * 10
    starts = [sum(counts[:i]) for i in range(len(counts))]
    nonempty = [i for i, c in enumerate(counts) if c]
    first, second = nonempty[:2]
    rows = slice(starts[first], starts[first] + counts[first])
    x[rows] = -x[rows].abs() - 1
    x[starts[second], 1], x[starts[second] + counts[second] - 1, 2] = math.inf, -math.inf
    if len(nonempty) > 2:  # a feature that is -inf on every row of the third set
        third = nonempty[2]
        x[starts[third]:starts[third] + counts[third], 3] = -math.inf
    return x


def inputs(grouping, counts, seed, unsorted=False):
    """The model's inputs for sets of ``counts`` sizes (uniform: equal sizes)."""
    x = features(counts, seed)
    if grouping == "uniform":
        return (x.view(len(counts), counts[0], F),)
    if grouping == "ptr":
        return x, torch.tensor([0, *torch.tensor(counts).cumsum(0).tolist()])
    batch = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    if grouping == "index":
        if unsorted:
            perm = torch.randperm(len(batch), generator=torch.Generator().manual_seed(seed))
            x, batch = x[perm], batch[perm]
        return x, batch
    nmax = max(counts) + 1                     # one padding row at least, holding nan
    padded = torch.full((len(counts), nmax, F), math.nan)
    mask = torch.arange(nmax) < torch.tensor(counts).unsqueeze(-1)
    padded[mask] = x
    return padded, mask


EXAMPLE = {"index": [2, 3, 1], "ptr": [2, 3, 1], "mask": [2, 3, 1], "uniform": [3, 3]}
# two new sizes each: other numbers of nodes and of sets, empty sets (index: inside)
NEW = {"index": [[3, 0, 4, 1, 2], [5, 2, 0, 3]], "ptr": [[3, 0, 4, 1, 0], [0, 5, 2, 3]],
       "mask": [[3, 0, 4, 1, 2], [5, 2, 0, 3]], "uniform": [[2] * 5, [4] * 2]}


def dynamic(grouping):
    return ({0: DYN, 1: DYN},) if grouping == "uniform" else (
        ({0: DYN, 1: DYN}, {0: DYN, 1: DYN}) if grouping == "mask" else ({0: DYN}, {0: DYN}))


def tolerance(name, x, want):
    """An absolute floor scaled to the inputs and outputs (0 for the exact readouts)."""
    if name in EXACT:
        return 0.0
    finite = [t[torch.isfinite(t)].abs().max() for t in (x, want) if torch.isfinite(t).any()]
    scale = 1.0 + max((float(v) for v in finite), default=0.0)
    return (1e-4 if name not in READOUTS or name in _LEARNABLE else 2e-5) * scale


_LEARNABLE = {"attention", "set2set", "deepsets", "settransformer", "gmt", "latentattention",
              "gem", "powermean"}


@pytest.fixture(scope="module", params=GROUPINGS)
def exported(request):
    grouping = request.param
    model = Grouped(all_readouts(grouping), grouping)
    args = inputs(grouping, EXAMPLE[grouping], seed=0)
    return grouping, model, onnx_export(model, args, dynamic(grouping))


def cases(grouping):
    out = [inputs(grouping, c, seed=i + 1) for i, c in enumerate(NEW[grouping])]
    if grouping == "index":  # the same program reads unsorted batch vectors
        out += [inputs(grouping, c, seed=i + 7, unsorted=True) for i, c in
                enumerate(NEW[grouping])]
    return out


def test_onnx_equals_eager_for_every_readout_on_new_sizes(exported):
    grouping, model, program = exported
    names = list(model.readouts)
    for args in cases(grouping):
        got = run_onnx(program, *args)
        with torch.no_grad():
            want = model(*args)
        assert len(got) == len(want) == len(names)
        for name, g, w in zip(names, got, want):
            tol = tolerance(name, args[0], w)
            d = max_difference([g], [w])
            assert d <= tol, f"{grouping} {name}: |onnx - eager| = {d} > {tol}"


def test_the_exported_program_equals_eager(exported):
    """torch.export with dynamic shapes (what the ONNX exporter traced): module() == eager,
    with no graphpool operator left in the graph."""
    grouping, model, program = exported
    ep = program.exported_program
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert not [t for t in targets if "graphpool" in t], targets
    for args in cases(grouping):
        with torch.no_grad():
            got, want = ep.module()(*args), model(*args)
        for name, g, w in zip(model.readouts, got, want):
            if name == "sort":  # traced for ONNX, whose TopK is stable (torch's is not):
                continue        # test_torch_export_without_onnx runs its own trace
            d = max_difference([g], [w])
            assert d <= tolerance(name, args[0], w), f"{grouping} {name}: {d}"


def per_set(x, counts, op):
    rows = x.split(counts)
    out = [getattr(r, op)(0) if op in ("sum", "mean") else getattr(r, "a" + op)(0)
           if len(r) else torch.full((F,), FILL) for r in rows]
    return torch.stack(out)


def test_basic_readouts_in_onnxruntime_against_a_per_set_loop(exported):
    """Independent of eager: all-negative sets keep their maximum, empty sets get the
    fill value, +-inf propagate."""
    grouping, model, program = exported
    names = list(model.readouts)
    for i, counts in enumerate(NEW[grouping]):
        args = inputs(grouping, counts, seed=i + 1)
        got = dict(zip(names, run_onnx(program, *args)))
        x = features(counts, seed=i + 1)
        floor = 1e-5 * (1 + float(x[x.isfinite()].abs().max()))
        for op in ("max", "min", "sum", "mean"):
            want = per_set(x, counts, op)
            if op in ("sum", "mean"):
                want[torch.tensor(counts) == 0] = FILL
            assert max_difference([got[op]], [want]) <= (0 if op in ("max", "min") else floor), op
        first = [i for i, c in enumerate(counts) if c][0]
        assert (got["max"][first] < 0).all()  # the first non-empty set is all negative
        empty = torch.tensor(counts) == 0
        for name in names:  # (count is 0 there; a combination's own weights)
            if name not in ("count", "multi-proj", "multi-attn", "multi-max"):
                assert (got[name][empty] == FILL).all(), name


@pytest.mark.parametrize("grouping", GROUPINGS)
def test_nan_propagates_in_onnxruntime_as_in_eager(grouping):
    """A set holding nan: max and min are nan there (onnxruntime's scatters and ReduceMax
    alone would keep a later number), sums too; the median and sort-k order nan as torch."""
    names = ("max", "min", "sum", "median", "sort")
    model = Grouped(torch.nn.ModuleDict({n: build(n, grouping) for n in names}), grouping)
    program = onnx_export(model.eval(), inputs(grouping, EXAMPLE[grouping], 0),
                          dynamic(grouping))
    for i, counts in enumerate(NEW[grouping]):
        args = list(inputs(grouping, counts, seed=i + 1))
        x = args[0].clone()
        rows = x.view(-1, F) if grouping != "mask" else x[args[1]]
        rows[:: 3, 0] = math.nan                       # nan in every third row, feature 0
        if grouping == "mask":
            x[args[1]] = rows
        args[0] = x
        got, want = run_onnx(program, *args), model(*args)
        assert want[0][:, 0].isnan().any()
        for name, g, w in zip(names, got, want):
            assert max_difference([g], [w]) == 0, name


PROPERTY_READOUTS = ("max", "min", "median", "sum", "mean", "std")


@pytest.fixture(scope="module")
def property_programs():
    """One program per grouping kind that hypothesis feeds: batch vectors and ptrs."""
    out = {}
    for grouping in ("index", "ptr"):
        mods = torch.nn.ModuleDict({n: build(n, grouping) for n in PROPERTY_READOUTS})
        model = Grouped(mods, grouping).eval()
        out[grouping] = model, onnx_export(model, inputs(grouping, EXAMPLE[grouping], 0),
                                           dynamic(grouping))
    return out


SPECIAL = st.sampled_from([math.inf, -math.inf, math.nan, -0.0, 0.0, -1e30, 1e30])


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(counts=st.lists(st.integers(0, 5), min_size=1, max_size=7),
       specials=st.lists(st.tuples(st.integers(0, 10 ** 6), SPECIAL), max_size=4),
       grouping=st.sampled_from(["index", "ptr"]), shuffle=st.booleans(), seed=st.integers(0, 99))
def test_property_onnx_equals_eager_on_any_grouping(property_programs, counts, specials,
                                                    grouping, shuffle, seed):
    """Any set sizes (empty sets, one-row sets), any number of sets, special values
    anywhere: onnxruntime gives eager's values (max, min, median exactly)."""
    if grouping == "index":
        counts = counts[:-1] + [max(counts[-1], 1)]  # B = batch.max() + 1: the last set has a row
    n = sum(counts)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, F, generator=g) * 10
    for at, value in specials:
        if n:
            x.view(-1)[at % x.numel()] = value
    if grouping == "ptr":
        args = (x, torch.tensor([0, *torch.tensor(counts).cumsum(0).tolist()]))
    else:
        batch = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
        perm = torch.randperm(n, generator=g) if shuffle else torch.arange(n)
        args = (x[perm], batch[perm])
    model, program = property_programs[grouping]
    got, want = run_onnx(program, *args), model(*args)
    for name, gv, wv in zip(PROPERTY_READOUTS, got, want):
        assert max_difference([gv], [wv]) <= tolerance(name, x, wv), (name, counts)


# ---------------------------------------------------------------------- GlobalPool2d
POOLS = ["avg", "max", "avgmax", "catavgmax", "sum", "min", "gem", ("mean", "max", "std")]


class Pools(torch.nn.Module):
    def __init__(self, layout):
        super().__init__()
        torch.manual_seed(0)
        self.pools = torch.nn.ModuleList(GlobalPool2d(p, layout=layout) for p in POOLS)

    def forward(self, fmap, mask=None):
        return tuple(p(fmap, mask) if mask is not None else p(fmap) for p in self.pools)


def fmap(b, c, h, w, seed, layout="NCHW"):
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(b, c, h, w, generator=g) * 10
    m[0] = -m[0].abs() - 1                      # an all-negative image
    m[-1, 0, 0, 0], m[-1, 1, -1, -1] = math.inf, -math.inf
    return m if layout == "NCHW" else m.permute(0, 2, 3, 1).contiguous()


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_global_pool2d_every_pool_type(layout):
    model = Pools(layout).eval()
    dims = {0: DYN, 2: DYN, 3: DYN} if layout == "NCHW" else {0: DYN, 1: DYN, 2: DYN}
    program = onnx_export(model, (fmap(2, F, 5, 6, 0, layout),), (dims,))
    for b, h, w in [(3, 4, 7), (5, 2, 3)]:
        m = fmap(b, F, h, w, b, layout)
        got, want = run_onnx(program, m), model(m)
        for p, g, wnt in zip(POOLS, got, want):
            tol = 0 if p in ("max", "min") else 1e-4 * (1 + m[m.isfinite()].abs().max())
            assert max_difference([g], [wnt]) <= tol, p
        assert max_difference([got[1]], [m.amax((1, 2) if layout == "NHWC" else (2, 3))]) == 0
        assert max_difference([program.exported_program.module()(m)[0]], [want[0]]) <= 1e-5 * (
            1 + m[m.isfinite()].abs().max())
    # maps without pixels: every pool gives eager's fill (0), never nan or an error
    for b, h, w in [(3, 0, 4), (2, 5, 0)]:
        m = torch.randn((b, F, h, w) if layout == "NCHW" else (b, h, w, F))
        want = model(m)
        assert all(not t.isnan().any() for t in want)
        for got in (run_onnx(program, m), program.exported_program.module()(m)):
            assert max_difference(list(got), list(want)) == 0


def test_global_pool2d_with_a_mask():
    model = Pools("NCHW").eval()
    m = fmap(2, F, 5, 6, 0)
    mask = torch.rand(2, 5, 6, generator=torch.Generator().manual_seed(0)) < 0.7
    program = onnx_export(model, (m, mask), ({0: DYN, 2: DYN, 3: DYN}, {0: DYN, 1: DYN, 2: DYN}))
    for b, h, w in [(3, 4, 7), (4, 3, 3)]:
        m = fmap(b, F, h, w, b)
        mask = torch.rand(b, h, w, generator=torch.Generator().manual_seed(b)) < 0.6
        mask[0, 0, 0] = True
        got, want = run_onnx(program, m, mask), model(m, mask)
        for p, g, wnt in zip(POOLS, got, want):
            tol = 0 if p in ("max", "min") else 1e-4 * (1 + m[m.isfinite()].abs().max())
            assert max_difference([g], [wnt]) <= tol, p


def no_rows(grouping):
    """Inputs of 3 sets without a row: nothing to test a size of 0 against when run."""
    if grouping == "uniform":
        return [(torch.empty(3, 0, F),)]
    if grouping == "mask":
        return [(torch.empty(3, 0, F), torch.zeros(3, 0, dtype=torch.bool)),
                (torch.full((3, 2, F), math.nan), torch.zeros(3, 2, dtype=torch.bool))]
    return [(torch.empty(0, F), torch.tensor([0, 0, 0, 0]))] if grouping == "ptr" else []


def test_sets_without_rows_export_like_eager(exported):
    """Every readout over sets without rows (uniform of size 0, a mask with no row or
    none true, a ptr of empty sets): eager's fill value in onnxruntime and in the exported
    program, where torch's reductions over an empty axis would give nan or fail."""
    grouping, model, program = exported
    for args in no_rows(grouping):
        with torch.no_grad():
            want = model(*args)
        for got in (run_onnx(program, *args), program.exported_program.module()(*args)):
            for name, g, w in zip(model.readouts, got, want):
                assert max_difference([g], [w]) <= tolerance(name, args[0], w), name


def test_one_graph_or_none_over_a_ptr_with_size_oblivious_tracing():
    """torch.export assumes a dynamic size of at least 2 while tracing, so a ptr program
    guards ptr.size(0) >= 3 (two sets) and refuses one graph with torch's guard error;
    traced with backed_size_oblivious (docs/export.md), it takes one graph and none."""
    from torch.fx.experimental import _config as fx_config

    class Pool(torch.nn.Module):
        def forward(self, x, ptr):
            return tuple(gp.readout(x, ptr=ptr, reduce=r, fill_value=FILL)
                         for r in ("sum", "max", "var"))

    example = (torch.randn(6, F), torch.tensor([0, 2, 4, 6]))
    plain = torch.export.export(Pool(), example, dynamic_shapes=({0: DYN}, {0: DYN}))
    one = (torch.randn(5, F), torch.tensor([0, 5]))
    with pytest.raises(Exception, match=r"ptr.size\(\)\[0\] >= 3"):
        plain.module()(*one)
    with fx_config.patch(backed_size_oblivious=True):
        program = onnx_export(Pool(), example, ({0: DYN}, {0: DYN}))
    for args in (one, (torch.randn(0, F), torch.tensor([0])),
                 (torch.empty(0, F), torch.tensor([0, 0])),
                 (torch.randn(7, F), torch.tensor([0, 3, 3, 7]))):
        want = Pool()(*args)
        for got in (run_onnx(program, *args), program.exported_program.module()(*args)):
            assert [g.shape for g in got] == [w.shape for w in want]
            assert max_difference(got, want) <= 1e-5


def test_an_empty_batch_vector_in_an_exported_program():
    """B = batch.max() + 1 is read when the program runs, traced for at least one set:
    an empty batch fails the program's assertion with graphpool's message (not torch's
    max() of an empty tensor); onnxruntime, where assertions do not reach, reads no set,
    as eager does."""
    class Pool(torch.nn.Module):
        def forward(self, x, batch):
            return gp.readout(x, batch, "sum"), gp.readout(x, batch, "max")

    example = (torch.randn(6, F), torch.tensor([0, 0, 1, 1, 2, 2]))
    program = onnx_export(Pool(), example, ({0: DYN}, {0: DYN}))
    plain = torch.export.export(Pool(), example, dynamic_shapes=({0: DYN}, {0: DYN}))
    empty = (torch.empty(0, F), torch.empty(0, dtype=torch.long))
    with pytest.raises(RuntimeError, match=r"invalid 'index': expected at least one row.*"
                       r"got an empty index. Fix: pass a ptr"):
        plain.module()(*empty)
    want = Pool()(*empty)
    got = run_onnx(program, *empty)
    assert [g.shape for g in got] == [w.shape for w in want] == [(0, F)] * 2


MALFORMED = [("ptr", [0, 3, 1, 5]), ("ptr", [2, 3, 5]), ("ptr", [0, 2, 4]), ("ptr", [0, 2, 7]),
             ("ptr", [0, -1, 5]), ("index", [0, -1, 1, 1, 0]), ("index", [0, 3, 1, 1, 0])]


@pytest.mark.parametrize("grouping", ["index", "ptr"])
def test_a_malformed_grouping_fails_when_the_exported_program_runs(grouping):
    """What eager refuses (a ptr not from 0 to N or decreasing, a negative id or one past
    the sets) gives no result when exported: torch.export's program fails its assertion
    with graphpool's message, onnxruntime fails (a negative index, which it would count
    from the end, is sent out of range)."""
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.readouts = torch.nn.ModuleList(
                [build(n, grouping) for n in ("sum", "max", "mean", "median", "count")])

        def forward(self, x, g):
            if grouping == "ptr":
                return tuple(r(x, ptr=g) for r in self.readouts)
            return tuple(r(x, g, dim_size=3) for r in self.readouts)

    model, x = Model().eval(), torch.randn(5, F)
    example = torch.tensor([0, 2, 5] if grouping == "ptr" else [0, 0, 2, 1, 1])
    dims = ({0: DYN}, {0: DYN})
    program = onnx_export(model, (x, example), dims)
    ep = torch.export.export(model, (x, example), dynamic_shapes=dims)
    assert max_difference(run_onnx(program, x, example), list(model(x, example))) <= 1e-5
    for kind, bad in MALFORMED:
        if kind != grouping:
            continue
        bad = torch.tensor(bad)
        with pytest.raises(GraphpoolError):
            model(x, bad)
        with pytest.raises(RuntimeError, match=rf"invalid '{grouping}': expected"):
            ep.module()(x, bad)
        with pytest.raises(GraphpoolError, match=r"^run_onnx: invalid 'inputs'.*onnxruntime "
                                                    r"failed: .*(out of|indice)"):
            run_onnx(program, x, bad)


# ------------------------------------------------------------------------ refusals
def graphpool_error(err):
    """The GraphpoolError behind ``err`` (torch.onnx.export wraps what it raises)."""
    while err is not None and not isinstance(err, GraphpoolError):
        err = err.__cause__ or err.__context__
    return err


@pytest.mark.parametrize("grouping", ["index", "ptr"])
def test_settransformer_over_index_or_ptr_needs_max_num_nodes(grouping):
    torch.manual_seed(0)
    model = Grouped(torch.nn.ModuleDict({"st": gp.SetTransformerReadout(F, heads=2)}),
                    grouping)
    args = inputs(grouping, [2, 3, 1], 0)
    pattern = r"SetTransformerReadout: invalid 'max_num_nodes'.*mask grouping"
    with pytest.raises(GraphpoolError, match=pattern):
        torch.export.export(model, args, dynamic_shapes=dynamic(grouping))
    with pytest.raises(Exception) as info:
        onnx_export(model, args, dynamic(grouping))
    assert re.search(pattern, str(graphpool_error(info.value))), info.value


def test_a_set_larger_than_max_num_nodes_is_an_error_in_onnxruntime():
    torch.manual_seed(0)
    model = Grouped(torch.nn.ModuleDict({"st": gp.SetTransformerReadout(F, heads=2,
                                                                        max_num_nodes=4)}),
                    "ptr").eval()
    program = onnx_export(model, inputs("ptr", [2, 3, 1], 0), dynamic("ptr"))
    fits = inputs("ptr", [4, 1, 3], 1)
    assert max_difference(run_onnx(program, *fits), model(*fits)) <= 1e-4 * 50
    with pytest.raises(Exception) as info:      # 6 > 4 rows: never the next set's slots
        run_onnx(program, *inputs("ptr", [2, 6, 1], 2))
    assert not isinstance(info.value, AssertionError)


LEGACY = [("max", "index"), ("mean", "ptr"), ("std", "mask"), ("median", "index"),
          ("attention", "ptr"), ("sum", "uniform")]


@pytest.mark.parametrize("name,grouping", LEGACY)
def test_the_legacy_exporter_is_refused(name, grouping):
    model = Grouped(torch.nn.ModuleDict({name: build(name, grouping)}), grouping).eval()
    with pytest.raises(GraphpoolError, match=r"invalid '(x|dim_size)'.*dynamo=True"):
        torch.onnx.export(model, inputs(grouping, EXAMPLE[grouping], 0), io.BytesIO(),
                          dynamo=False)


# ------------------------------------------------------------------ torch.export alone
@pytest.mark.parametrize("grouping", GROUPINGS)
def test_torch_export_without_onnx(grouping):
    """Plain torch.export.export: standard ops, dynamic sizes, module() == eager."""
    names = ("max", "mean", "std", "median", "quantile", "sort", "set2set", "settransformer",
             "gmt")
    torch.manual_seed(0)
    mods = torch.nn.ModuleDict({n: build(n, grouping) for n in names})
    model = Grouped(mods, grouping).eval()
    ep = torch.export.export(model, inputs(grouping, EXAMPLE[grouping], 0),
                             dynamic_shapes=dynamic(grouping))
    assert not [n for n in ep.graph.nodes if "graphpool" in str(n.target)]
    for args in cases(grouping):
        for name, g, w in zip(mods, ep.module()(*args), model(*args)):
            assert max_difference([g], [w]) <= tolerance(name, args[0], w), name


@pytest.mark.parametrize("mode", ["sum", "cat", "proj"])
def test_multi_readout_over_several_feature_dims_exports(mode):
    """[N, H, C] on dim 0 (GATConv's layout), the nodes and the channels dynamic: the
    MultiReadout's combination along the last axis compares no symbolic size."""
    torch.manual_seed(0)
    kwargs = dict(in_channels=3, out_channels=4) if mode == "proj" else None

    class Heads(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.r = MultiReadout(["mean", "max"], mode=mode, mode_kwargs=kwargs,
                                  validate=False)

        def forward(self, x, index):
            return self.r(x, index, dim=0, dim_size=4)

    model = Heads().eval()
    nodes = torch.export.Dim("nodes", min=2)
    dims = {0: nodes} if mode == "proj" else {0: nodes, 2: torch.export.Dim("C", min=2)}
    ep = torch.export.export(model, (torch.randn(6, 2, 3), torch.tensor([0, 0, 1, 1, 1, 3])),
                             dynamic_shapes=(dims, {0: nodes}))
    x = torch.randn(9, 2, 3 if mode == "proj" else 5)
    index = torch.tensor([0, 0, 0, 1, 1, 1, 1, 3, 3])  # set 2 empty
    torch.testing.assert_close(ep.module()(x, index), model(x, index))


def test_eager_still_takes_the_compiled_kernels():
    from graphpool.kernels import compiled, dispatch
    x, seg = torch.randn(5, 2), Segments.from_ptr(torch.tensor([0, 2, 5]))
    if compiled.supports(x, seg):
        assert dispatch._pick_path(seg, x, gp.kernels.reductions.MAX) is compiled.combine


# --------------------------------------------------------------------- PyG's legacy path
def test_pyg_global_max_pool_legacy_export_beside_graphpool():
    """graphpool's ONNX model keeps the maximum of all-negative graphs; PyG's
    global_max_pool through the legacy exporter is recorded (0 there: PyG #8415)."""
    from torch_geometric.nn import global_max_pool

    class PyG(torch.nn.Module):
        def forward(self, x, batch):
            return global_max_pool(x, batch)

    class Ours(torch.nn.Module):
        def forward(self, x, batch):
            return gp.readout(x, batch, "max")

    g = torch.Generator().manual_seed(0)
    x = -torch.rand(6, 3, generator=g) - 1            # every value negative
    batch = torch.tensor([0, 0, 1, 1, 1, 2])
    want = torch.stack([x[batch == b].amax(0) for b in range(3)])
    ours = onnx_export(Ours(), (x, batch), ({0: DYN}, {0: DYN}))
    x2, b2 = -torch.rand(9, 3, generator=g) - 1, torch.tensor([0, 1, 1, 2, 2, 2, 3, 3, 3])
    want2 = torch.stack([x2[b2 == b].amax(0) for b in range(4)])
    assert max_difference(run_onnx(ours, x, batch), [want]) == 0
    assert max_difference(run_onnx(ours, x2, b2), [want2]) == 0
    buf = io.BytesIO()
    try:
        torch.onnx.export(PyG(), (x, batch), buf, dynamo=False, input_names=["x", "batch"],
                          dynamic_axes={"x": {0: "n"}, "batch": {0: "n"}})
        pyg = run_onnx(buf.getvalue(), x, batch)[0]
    except Exception as err:  # noqa: BLE001 - what PyG's legacy path does is recorded
        pytest.skip(f"PyG's global_max_pool does not export with dynamo=False here: "
                    f"{type(err).__name__}: {str(err)[:120]}")
    wrong = max_difference([pyg], [want])
    print(f"PyG legacy ONNX global_max_pool on all-negative graphs: max error {wrong:.3g}, "
          f"zeros: {bool((pyg == 0).all())} (graphpool: error 0)")


# ------------------------------------------------------------------------ the table
def test_support_covers_every_readout_and_the_docs_show_it():
    assert set(READOUTS) | {"multi", "GlobalPool2d"} == set(SUPPORT)
    assert all(set(row) == {"how", *GROUPINGS} for row in SUPPORT.values())
    assert support_table() in (ROOT / "docs" / "export.md").read_text()


def test_run_onnx_refuses_the_wrong_inputs(exported):
    grouping, model, program = exported
    with pytest.raises(GraphpoolError, match=r"run_onnx: invalid 'inputs'"):
        run_onnx(program)
    with pytest.raises(GraphpoolError, match=r"run_onnx: invalid 'program'"):
        run_onnx(42, torch.zeros(1))
    with pytest.raises(GraphpoolError, match=r"run_onnx: invalid 'program': expected an ONNX "
                                             r"model onnxruntime can load"):
        run_onnx(str(ROOT / "no-such-model.onnx"), torch.zeros(1))
    with pytest.raises(GraphpoolError, match=r"got a bytes: ") as info:  # not its repr
        run_onnx(b"not a model" * 10000, torch.zeros(1))
    assert len(str(info.value)) < 1000
    args = inputs(grouping, EXAMPLE[grouping], seed=0)
    for i, bad in enumerate((args[0].double(), args[0][..., 0], args[0][..., :1])):
        with pytest.raises(GraphpoolError, match=r"run_onnx: invalid 'inputs\[0\]': expected "
                                                 r"a torch.float32 tensor of shape \("):
            run_onnx(program, bad, *args[1:])  # its dtype, its number of dims, F = 4


# ----------------------------------------------------------------------- the example
def test_the_example_exports_gin_and_cnn_and_onnxruntime_agrees(tmp_path, capsys):
    import importlib.util

    path = ROOT / "examples" / "export_onnx.py"
    spec = importlib.util.spec_from_file_location("export_onnx_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    result = example.main(["--out", str(tmp_path), "--epochs", "1",
                           "--data-root", str(tmp_path / "data")])
    scale = 1e-4  # logits of order 1-10: float32 rounding, nothing more
    assert result["gin_max_difference"] <= scale * 10
    assert result["cnn_8x8_max_difference"] <= scale * 10
    assert result["cnn_12x12_max_difference"] <= scale * 10
    assert 0.0 <= result["gin_accuracy"] <= 1.0 and 0.0 <= result["cnn_8x8_accuracy"] <= 1.0
    assert result["files"] == ["cnn_digits.onnx", "gin_mutag.onnx"]
    printed = capsys.readouterr().out
    assert "GIN on MUTAG: max |onnxruntime - PyTorch|" in printed
    assert "CNN on" in printed
