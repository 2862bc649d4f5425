"""Readout expressiveness against theory: what each column keeps of a multiset.

Every expectation here comes from the multiset of node types (a ``Counter``), never from
the code under test, so a readout that kept more or less than theory says would fail.
:data:`THEORY` is the reference: one entry per column of the matrix, the same sentence
as docs/expressiveness.md ("The columns"), and what the readout keeps as a key computed
with exact fractions — two multisets collide for *every* encoding exactly when their
keys are equal, and separate for almost every encoding otherwise.
"""
import itertools
import json
import math
import re
import sys
from collections import Counter
from fractions import Fraction
from pathlib import Path

import mpmath
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn
from torch_geometric.data import Batch, Data

from graphpool import GraphpoolError, Readout, readout, segment_reduce
from graphpool.analysis import expressiveness
from graphpool.analysis.expressiveness import (FLOOR_SAFETY, MODEL_TOLERANCE, UNIT_ROUNDOFF,
                                               GraphReadout, ReadoutClassifier, _differ,
                                               distinguishability, has_error_bound,
                                               is_learnable, learned_accuracy,
                                               node_states_with_error, random_node_states,
                                               readout_names, resolve_readout_names,
                                               rounding_floor, train_and_test)
from graphpool.analysis.families import (FAMILY_NAMES, Family, Pair, grid_image,
                                         resolve_families, to_pyg, typed_graph)
from graphpool.analysis.matrix import Matrix, plot_matrices
from graphpool.apps.cli import main
from graphpool.composite import segment_softmax
from graphpool.readouts import (READOUTS, GeMReadout, PowerMeanReadout, QuantileReadout,
                                SoftmaxReadout, StdReadout, VarReadout)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "expressiveness.md"
EDGE = ("edge", "edge-dir")
NODE = ("sum", "mean", "max", "min")


def multiset(data):
    return Counter(data.x.argmax(-1).tolist())


# ------------------------------------------------------------------ the reference
def proportions(c):
    total = sum(c.values())
    return {t: Fraction(n, total) for t, n in c.items() if n}


def spread(c):
    r"""var as a polynomial in the encodings: :math:`\sum_t p_t e_t^2 - (\sum_t p_t e_t)^2`,
    coefficients by monomial (zeros dropped)."""
    p = proportions(c)
    terms = {(t, t): q - q * q for t, q in p.items()}
    terms.update({(s, t): -2 * p[s] * p[t] for s, t in itertools.combinations(sorted(p), 2)})
    return {k: v for k, v in terms.items() if v}


def order_statistic(c, ordering, q, interpolation):
    """The q-quantile of the multiset, for one order of the types in a coordinate, as a
    formal combination of type encodings ({type: weight})."""
    ranked = [t for t in ordering for _ in range(c.get(t, 0))]
    h = Fraction(q) * (len(ranked) - 1)
    lo, hi = math.floor(h), math.ceil(h)
    if interpolation == "lower":
        weights = [(ranked[lo], 1)]
    else:  # linear
        weights = [(ranked[lo], 1 - (h - lo)), (ranked[hi], h - lo)]
    out = Counter()
    for t, w in weights:
        out[t] += w
    return {t: w for t, w in out.items() if w}


def sum_like(c):
    return {t: n for t, n in c.items() if n}


def _orderings(left, right):
    return list(itertools.permutations(sorted(set(left) | set(right))))


#: Column -> (what it keeps of a multiset, as a key; None for the order statistics, which
#: depend on the order of the types in each coordinate: see ordered_theory).
THEORY = {
    "sum": sum_like,                                     # the counts
    "mean": proportions,
    "max": lambda c: frozenset(t for t, n in c.items() if n),
    "min": lambda c: frozenset(t for t, n in c.items() if n),
    "var": spread,
    "std": spread,
    "logsumexp": sum_like,
    "softmax": proportions,
    "powermean": proportions,
    "gem": proportions,
    "median": None,
    "quantile": None,
    "prod": sum_like,
    "vpa": sum_like,
    "count": lambda c: sum(c.values()),
}
ORDERED = {"median": (0.5, "lower"), "quantile": (0.5, "linear")}
#: Columns that cannot tell X from kX, and those that can.
COPY_BLIND = ("mean", "max", "min", "var", "std", "softmax", "powermean", "gem", "median",
              "quantile")
COPY_SEEING = ("sum", "logsumexp", "prod", "vpa", "count")


def ordered_theory(name, left, right):
    """For median and quantile: False if they collide for every order of the types, True if
    they differ for at least a quarter of the orders (so 32 coordinates x 3 draws miss
    with probability < 1e-11), None in between (not asserted)."""
    q, mode = ORDERED[name]
    orders = _orderings(left, right)
    differ = sum(order_statistic(left, o, q, mode) != order_statistic(right, o, q, mode)
                 for o in orders)
    if differ == 0:
        return False
    return True if 4 * differ >= len(orders) else None


def theory(name, left, right):
    """Whether column ``name`` separates multisets ``left`` and ``right`` (Counters)."""
    if name in ORDERED:
        return ordered_theory(name, left, right)
    keep = THEORY[name]
    return keep(left) != keep(right)


def node_columns():
    return [n for n in readout_names() if n not in EDGE]


def statistic_columns():
    return [n for n in node_columns() if not is_learnable(n)]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Run on one thread (the tests of thread counts set their own): the tensors are tiny,
    and on a busy machine a second thread mostly waits for a core."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def exact():
    return distinguishability()


# ------------------------------------------------------- the theory covers every column
def test_every_column_has_a_theory_and_a_sentence_in_the_docs():
    """A readout added to READOUTS must come with its theory here (THEORY for a statistic
    readout, LEARNABLE for a learnable one) and its sentence in the docs."""
    assert set(statistic_columns()) == set(THEORY), "add the new readout to THEORY"
    learnable = {n for n in node_columns() if is_learnable(n)}
    assert learnable <= set(LEARNABLE), "add the new learnable readout to LEARNABLE"
    text = DOCS.read_text()
    columns = text[text.index("## The columns"):]
    columns = columns[:columns.index("\n## ", 1)]
    documented = re.findall(r"^- \*\*([\w-]+)\*\*", columns, flags=re.M)
    assert set(readout_names()) <= set(documented)
    for name in documented:           # every sentence is backed by THEORY or an edge test
        assert name in THEORY or name in EDGE or name in LEARNABLE, name
    assert set(COPY_BLIND) | set(COPY_SEEING) == set(THEORY)
    assert not set(COPY_BLIND) & set(COPY_SEEING)


def test_gin_pairs_follow_xu_et_al(exact):
    """Xu et al. (2019), Fig. 3: sum always separates; mean/max fail where shown."""
    expected = {"{a,a} vs {a,a,a}": dict(sum=True, mean=False, max=False),
                "{g,r} vs {g,r,r}": dict(sum=True, mean=True, max=False),
                "{g,r} vs {g,g,r,r}": dict(sum=True, mean=False, max=False)}
    for pair, cells in expected.items():
        for name, separates in cells.items():
            assert exact.value(f"gin: {pair}", name) is separates, (pair, name)


def test_statistic_readouts_follow_multiset_theory_on_every_pair_without_message_passing(
        exact):
    pairs = [(f"{f.name}: {p.name}", p) for f in resolve_families() for p in f.pairs
             if p.rounds == 0]
    assert len(pairs) >= 9
    checked = Counter()
    for row, pair in pairs:
        left, right = multiset(pair.left), multiset(pair.right)
        for name in statistic_columns():
            want = theory(name, left, right)
            if want is not None:
                assert exact.value(row, name) is want, (row, name)
                checked[name, want] += 1
    for name in statistic_columns():       # every column is checked on both outcomes
        assert checked[name, False] and checked[name, True], name


@pytest.mark.parametrize("row, separating", [
    # a disjoint copy doubles every count and the energy, keeps the proportions and the set
    ("copies: house G vs G+G", {"sum", "logsumexp", "prod", "vpa", "count", *EDGE}),
    # the same histogram: every node readout collides, the energy does not
    ("grid: 4x4 stripes vs checkerboard", set(EDGE)),
    # equal total energy: only the directions tell
    ("grid: 4x4 vertical vs horizontal stripes", {"edge-dir"}),
    # one round puts neighbourhoods into the states: all but the size separate
    ("grid: 4x4 stripes vs checkerboard (1 round)",
     set(THEORY) - {"count"} | set(EDGE)),
    # a single outlier among six: the median and the middle quantile keep the majority
    ("presence: cycle aaaaaa vs aaaaac", set(THEORY) - {"median", "quantile", "count"}
     | set(EDGE)),
])
def test_rows_separated_by_exactly_the_columns_theory_names(exact, row, separating):
    columns = set(THEORY) | set(EDGE)
    assert {n for n in columns if exact.value(row, n)} == separating


def test_no_readout_separates_1wl_equivalent_graphs_after_message_passing(exact):
    rows = [row for row in exact.rows if row.startswith("wl: ")]
    assert len(rows) == 2
    for row in rows:
        assert not any(exact.value(row, n) for n in readout_names()), row


def test_count_separates_exactly_the_pairs_of_different_sizes(exact):
    sizes = {f"{f.name}: {p.name}": (p.left.num_nodes, p.right.num_nodes)
             for f in resolve_families() for p in f.pairs}
    for row, (left, right) in sizes.items():
        assert exact.value(row, "count") is (left != right), row


# ------------------------------------------------- rounding: the same answer everywhere
def relabel(data, perm):
    """The same graph with node ``perm[i]`` renamed ``i`` (x permuted, edges renamed)."""
    new_id = torch.empty_like(perm)
    new_id[perm] = torch.arange(len(perm))
    return Data(x=data.x[perm], edge_index=new_id[data.edge_index],
                edge_type=data.edge_type, num_nodes=data.num_nodes)


def relabelled_families(seed, names=None):
    gen = torch.Generator().manual_seed(seed)
    return [Family(f.name, tuple(
        Pair(p.name, relabel(p.left, torch.randperm(p.left.num_nodes, generator=gen)),
             relabel(p.right, torch.randperm(p.right.num_nodes, generator=gen)), p.rounds)
        for p in f.pairs)) for f in resolve_families(names)]


def two_cycles():
    """Two triangles and a hexagon, one node type (the wl family's first pair)."""
    pair = resolve_families(["wl"])[0].pairs[0]
    return Batch.from_data_list([pair.left, pair.right])


def test_rounding_noise_far_below_the_floor_is_not_a_separation():
    """The bug of issue #10: an edge energy of 2.6e-29 against exactly 0, from node
    states of order 1 that rounded differently, counted as "separates" because the old
    tolerance was relative to the readout output (itself ~1e-29)."""
    batch = two_cycles()
    h = torch.ones(12, 32, dtype=torch.float64)
    out = torch.zeros(2, 32, dtype=torch.float64)
    out[0, 5] = 2.6e-29
    floor = rounding_floor("edge", h, batch)
    assert 1e-15 < floor < 1e-12          # a few hundred ulps of H^2 = 1, not of the output
    assert not _differ(out, floor)
    # A genuine difference just above the floor separates; the floor itself does not.
    assert _differ(torch.tensor([[0.0], [floor * (1 + 2 ** -40)]], dtype=torch.float64),
                   floor)
    assert not _differ(torch.tensor([[0.0], [floor]], dtype=torch.float64), floor)


#: How each floor scales when h and its error scale by c: c^degree (None: not homogeneous,
#: exp, log and the softmax weights are not; prod has degree n, here 6 per graph).
DEGREE = {"sum": 1, "mean": 1, "max": 1, "min": 1, "var": 2, "std": 1, "logsumexp": None,
          "softmax": None, "powermean": 1, "gem": 1, "median": 1, "quantile": 1, "prod": 6,
          "vpa": 1, "count": 0, "edge": 2, "edge-dir": 2}


@pytest.mark.parametrize("name", [n for n in readout_names() if not is_learnable(n)])
def test_the_floor_scales_with_the_node_states_not_the_output(name):
    batch = two_cycles()
    h = torch.rand(12, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    degree = DEGREE[name]
    for error in (0.0, 1e-12):
        base = rounding_floor(name, h, batch, error)
        scaled = rounding_floor(name, 1e3 * h, batch, 1e3 * error)
        if degree is not None:
            assert scaled == pytest.approx(1e3 ** degree * base, rel=1e-9)
        else:
            assert scaled > base
    exact_floor, noisy = rounding_floor(name, h, batch), rounding_floor(name, h, batch, 1e-12)
    if name == "count":                                   # integers: exact
        assert exact_floor == noisy == 0.0
    elif name in ("max", "min", "median"):                # a selection of an input
        assert exact_floor == 0.0 and noisy == pytest.approx(2 * FLOOR_SAFETY * 1e-12)
    elif name == "prod":           # values below 1 here: the product moves by less
        assert 0 < exact_floor < noisy
    else:                          # rounding, then at least Delta per graph for the input
        assert 0 < exact_floor and noisy - exact_floor >= 2 * FLOOR_SAFETY * 1e-12


def test_floors_for_learnable_and_unknown_readouts_are_the_model():
    """No error analysis: sqrt(eps) per node and per unit of max(1, H), for each graph."""
    batch = two_cycles()
    h = 3 * torch.ones(12, 4, dtype=torch.float64)
    want = FLOOR_SAFETY * MODEL_TOLERANCE * 12 * 3
    assert MODEL_TOLERANCE == math.sqrt(torch.finfo(torch.float64).eps)

    class Renamed(QuantileReadout):             # a subclass may compute something else
        pass

    module = GraphReadout("quantile")
    module.inner = Renamed()
    assert not has_error_bound(module) and has_error_bound("quantile")
    assert rounding_floor(module, h, batch) == pytest.approx(want)
    assert rounding_floor(module, h / 30, batch) == pytest.approx(want / 3)  # max(1, H)


def exact_node_states(batch, rounds, dim, seed):
    """random_node_states in 60-digit arithmetic, on the same float64 parameters (drawn in
    the documented order: E, then W_r, c_r, eps_r per round)."""
    mpmath.mp.dps = 60
    gen = torch.Generator().manual_seed(seed)
    x = batch.x.double().tolist()
    embedding = torch.randn(len(x[0]), dim, generator=gen, dtype=torch.float64).tolist()
    h = [[mpmath.fsum(mpmath.mpf(xv[t]) * embedding[t][k] for t in range(len(xv)))
          for k in range(dim)] for xv in x]
    src, dst = batch.edge_index.tolist()
    scale = mpmath.mpf(math.sqrt(dim))
    for _ in range(rounds):
        weight = torch.randn(dim, dim, generator=gen, dtype=torch.float64).tolist()
        bias = torch.randn(dim, generator=gen, dtype=torch.float64).tolist()
        coefficient = mpmath.mpf(float(1 + torch.rand((), generator=gen, dtype=torch.float64)))
        pre = [[coefficient * value for value in row] for row in h]
        for s, t in zip(src, dst):
            pre[t] = [a + b for a, b in zip(pre[t], h[s])]
        h = [[mpmath.tanh(mpmath.fsum(row[i] * weight[i][j] for i in range(dim)) / scale
                          + bias[j]) for j in range(dim)] for row in pre]
    return h


@pytest.mark.parametrize("family, index, seed", [("wl", 0, 0), ("wl", 1, 2), ("grid", 2, 1),
                                                 ("copies", 0, 0)])
def test_node_state_error_bound_holds_against_exact_arithmetic(family, index, seed):
    pair = resolve_families([family])[0].pairs[index]
    batch = Batch.from_data_list([pair.left, pair.right])
    dim = 32
    h, err = node_states_with_error(batch, pair.rounds, dim=dim,
                                    generator=torch.Generator().manual_seed(seed))
    reference = exact_node_states(batch, pair.rounds, dim, seed)
    actual = torch.tensor([[float(abs(mpmath.mpf(float(a)) - b)) for a, b in zip(row, ref)]
                           for row, ref in zip(h.tolist(), reference)], dtype=torch.float64)
    assert actual.max() < 1e-3                   # the same function: not a wrong reference
    assert bool((actual <= err).all()), float((actual - err).max())
    assert err.max() < 1e-9                      # and the bound is not vacuous


def test_every_cell_is_far_from_its_floor():
    """The decisions do not hinge on the floors' constants: every separation in the matrix
    is at least 50 times its floor (10^4 times for the statistic columns but gem, whose
    floor has a cube root) and every collision below 1/20 of it (the docs quote these
    margins)."""
    names = readout_names()
    ratios = {True: [], False: []}
    for trial in range(3):
        modules = expressiveness._columns(names, 32, trial)
        for family in resolve_families():
            for pair in family.pairs:
                batch = Batch.from_data_list([pair.left, pair.right])
                h, err = node_states_with_error(batch, pair.rounds,
                                                generator=torch.Generator().manual_seed(trial))
                for module in modules:
                    with torch.no_grad():
                        out = module(h, batch)
                    floor = rounding_floor(module, h, batch, err)
                    gap = float((out[0] - out[1]).abs().max())
                    if floor == 0:                                    # count: exact
                        assert gap == 0 or gap >= 1, module.name
                        continue
                    ratios[gap > floor].append((gap / floor, module.name, pair.name))
    assert min(ratios[True])[0] >= 50, min(ratios[True])
    assert min(r for r in ratios[True] if r[1] != "gem" and not is_learnable(r[1]))[0] >= 1e4
    assert max(ratios[False])[0] <= 1 / 20, max(ratios[False])


# ------------------------------------- the readout bounds hold against exact arithmetic
def _signed_power(a, e):
    return mpmath.sign(a) * abs(a) ** e if a else mpmath.mpf(0)


def exact_readout(module, rows):
    """The readout of one set (``rows``: float64 values, taken as exact) in 60-digit
    arithmetic, with the module's own float64 parameters."""
    mpmath.mp.dps = 60
    inner, n = module.inner, len(rows)
    name = module.name
    outs = []
    for column in zip(*rows):
        v = [mpmath.mpf(c) for c in column]
        if name in ("sum", "vpa"):
            outs.append([mpmath.fsum(v) / (mpmath.sqrt(n) if name == "vpa" else 1)])
        elif name == "mean":
            outs.append([mpmath.fsum(v) / n])
        elif name in ("max", "min"):
            outs.append([max(v) if name == "max" else min(v)])
        elif name == "prod":
            outs.append([mpmath.fprod(v)])
        elif name == "count":
            outs.append([mpmath.mpf(n)])
        elif name in ("var", "std"):
            mu = mpmath.fsum(v) / n
            var = mpmath.fsum((a - mu) ** 2 for a in v) / (n - inner.correction)
            outs.append([var if name == "var" else mpmath.sqrt(var)])
        elif name == "logsumexp":
            outs.append([mpmath.log(mpmath.fsum(mpmath.exp(a) for a in v))])
        elif name == "softmax":
            t = mpmath.mpf(float(inner.t))
            w = [mpmath.exp(t * a) for a in v]
            outs.append([mpmath.fsum(wi * a for wi, a in zip(w, v)) / mpmath.fsum(w)])
        elif name in ("powermean", "gem"):
            p = inner.p
            p = mpmath.mpf(float(p.detach().clamp(min=0.01)) if isinstance(p, torch.Tensor)
                           else float(p))
            outs.append([_signed_power(mpmath.fsum(_signed_power(a, p) for a in v) / n,
                                       1 / p)])
        else:                                             # median, quantile
            s, picks = sorted(v), []
            for q in inner._qs:
                h = Fraction(q) * (n - 1)                 # the float64 q, exactly
                lo, hi = math.floor(h), math.ceil(h)
                picks.append({"lower": lambda: s[lo], "higher": lambda: s[hi],
                              "nearest": lambda: s[round(h)],
                              "midpoint": lambda: (s[lo] + s[hi]) / 2,
                              "linear": lambda: s[lo] + mpmath.mpf((h - lo).numerator)
                              / (h - lo).denominator * (s[hi] - s[lo])
                              }[inner.interpolation]())
            outs.append(picks)
    return [outs[f][j] for j in range(len(outs[0])) for f in range(len(outs))]


def _inputs(kind, n, gen):
    """Sets that stress each analysis: spread, nearly constant, signs that cancel, large,
    tiny (products underflow towards 0)."""
    g = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    if kind == "constant":
        return 1.7 + 1e-9 * g * (g > 0)
    if kind == "cancel":
        return torch.sign(g) * (1 + 0.05 * torch.rand(n, 3, generator=gen, dtype=torch.float64))
    return {"spread": 1.5, "large": 30.0, "tiny": 1e-3}[kind] * g


def module_for(name, inner=None):
    module = GraphReadout(name)
    if inner is not None:
        module.inner = inner
    return module.to(torch.float64)


BOUNDED = [(n, None) for n in THEORY] + [
    ("powermean", PowerMeanReadout(p=0.5)), ("powermean", PowerMeanReadout(p=2.5)),
    ("gem", GeMReadout(p=1.7)), ("softmax", SoftmaxReadout(t=-2.0)),
    ("softmax", SoftmaxReadout(t=5.0)), ("var", VarReadout(correction=1)),
    ("std", StdReadout(correction=1)),
    ("quantile", QuantileReadout([0.1, 0.25, 0.9], "nearest")),
    ("quantile", QuantileReadout([0.1, 0.3, 0.7], "linear")),
    ("quantile", QuantileReadout([0.1, 0.3], "midpoint")),
    ("quantile", QuantileReadout([0.3, 0.6], "higher"))]


@pytest.mark.parametrize("name, inner", BOUNDED, ids=lambda v: repr(v) if v else "")
def test_readout_error_bound_holds_against_exact_arithmetic(name, inner):
    """For one graph, |computed R(x~) - exact R(x)| <= the bound when every input is within
    Delta of x: in the worst corner x~ = x +- Delta, for sets that stress each term."""
    module = module_for(name, inner)
    gen = torch.Generator().manual_seed(7)
    worst = 0.0
    for kind, n, delta in itertools.product(("spread", "constant", "cancel", "large", "tiny"),
                                            (1, 5, 16), (0.0, 1e-12, 1e-6)):
        x = _inputs(kind, n, gen)
        if n <= getattr(module.inner, "correction", 0):
            continue                           # nan: no variance of one sample
        signs = torch.randint(0, 2, x.shape, generator=gen, dtype=torch.float64) * 2 - 1
        moved = x + signs * delta
        # the true |x~ - x|, exactly (x + delta rounds)
        error = max(abs(mpmath.mpf(a) - mpmath.mpf(b)) for a, b in
                    zip(moved.flatten().tolist(), x.flatten().tolist()))
        batch = Batch.from_data_list([Data(x=moved)])
        computed = module(moved, batch)[0].tolist()
        reference = exact_readout(module, x.tolist())
        actual = max(abs(mpmath.mpf(c) - r) for c, r in zip(computed, reference))
        bound = rounding_floor(module, moved, batch, float(error) * (1 + 2 ** -50))
        bound /= FLOOR_SAFETY                  # one graph, without the safety factor
        assert actual <= bound, (kind, n, delta, float(actual), bound)
        worst = max(worst, float(actual / bound) if bound else 0.0)
    if name != "count":
        assert worst > 1e-6                    # the bound is not vacuous


def test_the_input_terms_are_attained():
    """Moving every input by +Delta moves the sum by n Delta, the mean, max, min and median
    by Delta and the product of values 2 by n 2^(n-1) Delta: the bound cannot drop them."""
    x = torch.full((6, 1), 2.0, dtype=torch.float64)
    batch = Batch.from_data_list([Data(x=x)])
    delta = 2.0 ** -30
    for name, moved_by in [("sum", 6 * delta), ("mean", delta), ("max", delta),
                           ("median", delta), ("prod", None)]:
        module = module_for(name)
        change = float((module(x + delta, batch) - module(x, batch)).abs().max())
        if moved_by is None:
            moved_by = (2 + delta) ** 6 - 2 ** 6
        assert change == pytest.approx(moved_by, rel=1e-6)
        assert change <= rounding_floor(module, x + delta, batch, delta) / FLOOR_SAFETY


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_exact_matrix_is_the_same_for_any_thread_count_and_node_order(exact, threads):
    """Relabelling nodes and changing the thread count change summation orders and SIMD
    lanes (the rounding of another CPU); the matrix must not move."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for seed in range(2):
            m = distinguishability(relabelled_families(seed + 10 * threads))
            assert m.values == exact.values, seed
            for row in m.rows:
                if row.startswith("wl: "):
                    assert not any(m.value(row, n) for n in readout_names()), row
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("seed", [0, 1])
def test_exact_matrix_is_the_same_for_any_rounding_within_the_error_bound(exact, monkeypatch,
                                                                          seed):
    """Another machine's node states: within err of the exact ones, like ours, so within
    2 err of ours. Push every entry to a random corner of that box (the worst case for
    energies and sums) and recompute the floor from 2 err: no cell may change."""
    compute = expressiveness.node_states_with_error
    gen = torch.Generator().manual_seed(seed)

    def elsewhere(*args, **kwargs):
        h, err = compute(*args, **kwargs)
        signs = torch.randint(0, 2, h.shape, generator=gen, dtype=torch.float64) * 2 - 1
        return h + signs * err, 2 * err

    monkeypatch.setattr(expressiveness, "node_states_with_error", elsewhere)
    assert distinguishability().values == exact.values


@pytest.mark.parametrize("size", [(2, 2), (4, 4), (4, 6), (6, 8)])
def test_every_node_readout_and_moment_collides_on_stripes_vs_checkerboard(size):
    """The same colour histogram: every node readout is a function of the multiset of node
    states, learnable ones (random weights) included. Tolerances are the rounding floors
    of the inputs (exact h; each entry of h h^T rounded once), never fixed numbers, so
    they hold for any summation order."""
    b = Batch.from_data_list([to_pyg(grid_image(p, *size), "ab")
                              for p in ("vertical", "checkerboard")])
    h = random_node_states(b, generator=torch.Generator().manual_seed(0))
    for name in node_columns():
        torch.manual_seed(0)
        module = GraphReadout(name, in_channels=h.size(-1)).to(torch.float64).eval()
        with torch.no_grad():
            assert not _differ(module(h, b), rounding_floor(module, h, b)), name
    outer = (h.unsqueeze(-1) * h.unsqueeze(-2)).flatten(-2)  # second moments h h^T
    outer_error = UNIT_ROUNDOFF * outer.abs()
    for reduce in ("sum", "mean"):
        second = readout(outer, b, reduce)
        assert not _differ(second, rounding_floor(reduce, outer, b, outer_error)), reduce
    mean = readout(h, b, "mean")
    variance = readout(outer, b, "mean") - (mean.unsqueeze(-1) * mean.unsqueeze(-2)).flatten(-2)
    # |m_i m_j| <= H^2: its error is 2 H e_m + e_m^2, plus one rounding for the product
    # and one for the subtraction (|variance| <= 2 H^2), in each of the two graphs.
    big_h, mean_floor = float(h.abs().max()), rounding_floor("mean", h, b)
    tol = (rounding_floor("mean", outer, b, outer_error) + 2 * big_h * mean_floor
           + mean_floor ** 2 + 2 * 3 * UNIT_ROUNDOFF * big_h ** 2)
    assert not _differ(variance, tol)
    assert _differ(GraphReadout("edge")(h, b), rounding_floor("edge", h, b))


# ------------------------------------------------------ theory as properties of readouts
types = st.lists(st.integers(0, 3), min_size=1, max_size=6)


def _pair_batch(left, right):
    return Batch.from_data_list([Data(x=left), Data(x=right)])


def _one(h):
    return Batch.from_data_list([Data(x=h)])


def _bound(name, h, error=0.0):
    """The per-graph bound of one set (the floor of a one-graph batch, without safety)."""
    return rounding_floor(name, h, _one(h), error) / FLOOR_SAFETY


@settings(max_examples=40, deadline=None)
@given(types, st.integers(2, 5), st.integers(0, 1000))
def test_k_copies_collide_exactly_for_the_copy_blind_columns(xs, k, seed):
    """mean, softmax, power mean, var, std, median and quantile depend on the proportions
    only (the lower median and the middle quantile of kX pick the same elements as those
    of X), max and min on the support: X and kX collide."""
    encoding = torch.randn(4, 8, generator=torch.Generator().manual_seed(seed),
                           dtype=torch.float64)
    h = encoding[torch.tensor(xs + xs * k)]                     # X, then k copies of X
    batch = _pair_batch(h[:len(xs)], h[len(xs):])
    for name in COPY_BLIND:
        out = GraphReadout(name)(h, batch)
        assert not _differ(out, rounding_floor(name, h, batch)), name


#: How each copy-seeing readout of kX follows from that of X, and the derivative of that
#: map (it scales the first readout's error).
COPY_LAW = {"sum": (lambda r, k: k * r, lambda r, k: k),
            "vpa": (lambda r, k: math.sqrt(k) * r, lambda r, k: math.sqrt(k)),
            "count": (lambda r, k: k * r, lambda r, k: k),
            "logsumexp": (lambda r, k: r + math.log(k), lambda r, k: 1),
            "prod": (lambda r, k: r ** k, lambda r, k: k * (abs(r) + 1e-300) ** (k - 1))}


@settings(max_examples=40, deadline=None)
@given(types, st.integers(2, 5), st.integers(0, 1000))
def test_k_copies_follow_the_copy_law_and_separate_for_the_copy_seeing_columns(xs, k, seed):
    """sum(kX) = k sum(X), vpa(kX) = sqrt(k) vpa(X), count(kX) = k count(X),
    lse(kX) = lse(X) + log k and prod(kX) = prod(X)^k: each differs from X's own
    (for prod, where |prod(X)| is not 0 or 1)."""
    encoding = torch.randn(4, 8, generator=torch.Generator().manual_seed(seed),
                           dtype=torch.float64)
    once, copies = encoding[torch.tensor(xs)], encoding[torch.tensor(xs * k)]
    for name, (law, slope) in COPY_LAW.items():
        module = GraphReadout(name)
        r1, rk = module(once, _one(once))[0], module(copies, _one(copies))[0]
        predicted = torch.tensor([law(float(v), k) for v in r1], dtype=torch.float64)
        slopes = torch.tensor([slope(float(v) + _bound(name, once), k) for v in r1],
                              dtype=torch.float64)
        # error of the law applied to a computed r1 (to first order, its slope times
        # r1's bound), of rk, and of evaluating the law (a few roundings of the result)
        tol = (slopes * _bound(name, once) + _bound(name, copies)
               + 8 * UNIT_ROUNDOFF * predicted.abs())
        assert bool(((predicted - rk).abs() <= FLOOR_SAFETY * tol).all()), name
        batch = _pair_batch(once, copies)
        if name == "prod" and not bool(((r1.abs() - 1).abs() > 1e-3).any()):
            continue                                 # |prod| = 1 in every coordinate
        h = torch.cat([once, copies])
        assert _differ(module(h, batch), rounding_floor(name, h, batch)), name


@settings(max_examples=30, deadline=None)
@given(types, st.integers(0, 1000), st.floats(-5, 5))
def test_var_and_std_are_blind_to_a_constant_shift_and_to_negation(xs, seed, shift):
    """var(X + c) = var(X) = var(-X); the shift-equivariant readouts move with c:
    mean(X + c) = mean(X) + c, logsumexp(X + c) = logsumexp(X) + c."""
    assume(abs(shift) > 1e-3)
    encoding = torch.randn(4, 8, generator=torch.Generator().manual_seed(seed),
                           dtype=torch.float64)
    x = encoding[torch.tensor(xs)]
    for moved in (x + shift, -x):
        h = torch.cat([x, moved])
        batch = _pair_batch(x, moved)
        error = torch.cat([torch.zeros_like(x), UNIT_ROUNDOFF * moved.abs()])  # x + c rounds
        for name in ("var", "std"):
            out = GraphReadout(name)(h, batch)
            assert not _differ(out, rounding_floor(name, h, batch, error)), name
    h = torch.cat([x, x + shift])
    batch = _pair_batch(x, x + shift)
    error = torch.cat([torch.zeros_like(x), UNIT_ROUNDOFF * (x + shift).abs()])
    for name in ("mean", "logsumexp", "max", "median"):
        out = GraphReadout(name)(h, batch)
        back = torch.stack([out[0], out[1] - shift])
        tol = rounding_floor(name, h, batch, error) + 2 * UNIT_ROUNDOFF * float(out.abs().max())
        assert not _differ(back, tol), name
        assert _differ(out, rounding_floor(name, h, batch, error)), name


@settings(max_examples=30, deadline=None)
@given(types, st.lists(st.integers(1, 4), min_size=4, max_size=4))
def test_max_and_min_are_blind_to_multiplicities_median_to_those_keeping_the_middle(xs, times):
    """Repeat each type of X any number of times (>= 1): the support is the same, so max
    and min collide; the median collides exactly when the middle type is the same for
    every order of the types (the reference), else it separates."""
    ys = [t for t in sorted(set(xs)) for _ in range(times[t] * xs.count(t))]
    letters = "abcd"
    pair = Pair("p", to_pyg(typed_graph("".join(letters[t] for t in xs)), letters),
                to_pyg(typed_graph("".join(letters[t] for t in ys)), letters))
    m = distinguishability([Family("multiplicities", (pair,))],
                           ["max", "min", "median", "quantile"])
    assert not m.value("multiplicities: p", "max") and not m.value("multiplicities: p", "min")
    for name in ("median", "quantile"):
        want = theory(name, Counter(xs), Counter(ys))
        if want is not None:
            assert m.value("multiplicities: p", name) is want, name


@settings(max_examples=25, deadline=None)
@given(types, types)
def test_harness_matches_theory_on_random_multisets(xs, ys):
    letters = "abcd"
    left = "".join(letters[t] for t in xs)
    right = "".join(letters[t] for t in ys)
    family = Family("random", (Pair("p", to_pyg(typed_graph(left), letters),
                                    to_pyg(typed_graph(right), letters)),))
    names = statistic_columns()
    m = distinguishability([family], names)
    for name in names:
        want = theory(name, Counter(xs), Counter(ys))
        if want is not None:
            assert m.value("random: p", name) is want, name


def test_quantile_of_other_q_is_not_copy_blind():
    """Only the middle is: h = q (n - 1) does not scale with k. For X = {a, b} and q = 1/4,
    the linear quantile is (3a + b) / 4, and of 2X = {a, a, b, b} it is a."""
    a_b = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    module = module_for("quantile", QuantileReadout(0.25))
    h = torch.cat([a_b, a_b.repeat_interleave(2, 0)])
    batch = _pair_batch(a_b, a_b.repeat_interleave(2, 0))
    assert module(h, batch).flatten().tolist() == [0.25, 0.0]
    assert order_statistic(Counter("ab"), "ab", 0.25, "linear") == {"a": Fraction(3, 4),
                                                                    "b": Fraction(1, 4)}


def test_random_node_states_are_injective_and_shared_across_the_batch():
    b = Batch.from_data_list([to_pyg(typed_graph("abc"), "abc"),
                              to_pyg(typed_graph("cba"), "abc")])
    h = random_node_states(b, dim=4, generator=torch.Generator().manual_seed(1))
    assert len({tuple(r) for r in h[:3].tolist()}) == 3
    torch.testing.assert_close(h[:3], h[3:].flip(0))


# ---------------------------------------------------------------- learnable readouts
class DeepSetsStub(Readout):
    """rho(sum_v phi(x_v)): learnable and sum-like (a stand-in for a learnable readout of
    READOUTS, registered by the ``stubs`` fixture)."""

    needs_in_channels = True
    functional = False

    def __init__(self, in_channels, **kwargs):
        super().__init__(**kwargs)
        self.phi, self.rho = nn.Linear(in_channels, in_channels), nn.Linear(in_channels, 3)

    def forward(self, x, segments):
        return self.rho(segment_reduce(torch.tanh(self.phi(x)), segments, "sum"))

    def out_features(self, in_features):
        return 3


class AttentionStub(Readout):
    """[sum_v softmax(gate(x))_v value(x_v) || max_v x_v]: attention normalised over the
    nodes, so copy-blind for every weight; twice the input width (as set2set)."""

    needs_in_channels = True
    functional = False

    def __init__(self, in_channels, **kwargs):
        super().__init__(**kwargs)
        self.gate, self.value = nn.Linear(in_channels, 1), nn.Linear(in_channels, in_channels)

    def forward(self, x, segments):
        alpha = segment_softmax(self.gate(x), segments)
        attended = segment_reduce(alpha * self.value(x), segments, "sum")
        return torch.cat([attended, segment_reduce(x, segments, "max")], -1)

    def out_features(self, in_features):
        return 2 * in_features


STUBS = {"deepsets-stub": DeepSetsStub, "attention-stub": AttentionStub}


@pytest.fixture
def stubs(monkeypatch):
    for name, cls in STUBS.items():
        monkeypatch.setitem(READOUTS, name, cls)
    return list(STUBS)


def test_learnable_readouts_are_columns_built_with_the_state_width(stubs):
    assert readout_names()[-4:] == (*stubs, *EDGE) and all(is_learnable(n) for n in stubs)
    assert not has_error_bound("deepsets-stub")
    module = GraphReadout("attention-stub", in_channels=5)
    assert module.out_features(5) == 10 and GraphReadout("count").out_features(5) == 1
    assert GraphReadout("edge-dir").out_features(5) == 10
    with pytest.raises(GraphpoolError, match=r"GraphReadout: invalid 'name'.*needs the input "
                                             r"width.*in_channels="):
        GraphReadout("deepsets-stub")


def test_learnable_columns_follow_their_theory_for_random_weights(stubs):
    """The sum inside DeepSets sees counts; attention normalised over the nodes sees
    proportions only, whatever the weights; both collide where every node readout must."""
    state = torch.random.get_rng_state()
    m = distinguishability(["gin", "copies", "grid", "wl"], stubs)
    assert torch.equal(torch.random.get_rng_state(), state)     # weights from their own seed
    copies = ["gin: {a,a} vs {a,a,a}", "gin: {g,r} vs {g,g,r,r}", "copies: house G vs G+G"]
    for row in copies:
        assert m.value(row, "deepsets-stub") and not m.value(row, "attention-stub"), row
    for name in stubs:
        assert m.value("gin: {g,r} vs {g,r,r}", name)
        assert m.value("grid: 4x4 stripes vs checkerboard (1 round)", name)
        for row in m.rows:
            if row.startswith("wl: ") or row.startswith("grid: 4x4 vertical vs"):
                assert not m.value(row, name), (row, name)
        assert not m.value("grid: 4x4 stripes vs checkerboard", name)
    assert distinguishability(["gin", "copies", "grid", "wl"], stubs).values == m.values


@pytest.mark.parametrize("threads", [1, 3])
def test_learnable_columns_are_the_same_for_any_thread_count_and_node_order(stubs, threads):
    names = ["gin", "copies", "wl", "grid"]
    base = distinguishability(names, stubs)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        assert distinguishability(relabelled_families(threads, names), stubs).values == \
            base.values
    finally:
        torch.set_num_threads(previous)


#: The learnable readouts and the theory each must show (a test is skipped while its
#: readout is not in READOUTS): attention normalised over the nodes (softmax weights, as
#: in every one of these) is blind to k-fold copies for every weight; DeepSets' inner
#: sum sees them; sort keeps the k top rows in order (zero rows padding smaller sets), so
#: on sets of at most k nodes it keeps the whole multiset.
LEARNABLE = {"attention": "copy-blind", "set2set": "copy-blind",
             "settransformer": "copy-blind", "gmt": "copy-blind",
             "latentattention": "copy-blind", "deepsets": "sum-like", "sort": "top-k"}


@pytest.mark.parametrize("name", sorted(LEARNABLE))
def test_learnable_readouts_follow_their_theory(name):
    if name not in READOUTS:
        pytest.skip(f"{name!r} is not in READOUTS yet")
    m = distinguishability(None, [name])
    row = "gin: {a,a} vs {a,a,a}"
    if LEARNABLE[name] == "top-k":
        k = GraphReadout(name, in_channels=32).out_features(32) // 32
        assert m.value(row, name) is (k > 2)
        for f in resolve_families():
            for p in f.pairs:
                if p.rounds == 0 and max(p.left.num_nodes, p.right.num_nodes) <= k:
                    want = multiset(p.left) != multiset(p.right)
                    assert m.value(f"{f.name}: {p.name}", name) is want, p.name
    else:
        blind = LEARNABLE[name] == "copy-blind"
        for row in (row, "gin: {g,r} vs {g,g,r,r}", "copies: house G vs G+G"):
            assert m.value(row, name) is not blind, row
        assert m.value("gin: {g,r} vs {g,r,r}", name)
    assert not any(m.value(r, name) for r in m.rows if r.startswith("wl: "))


# ------------------------------------------------------------------ learned accuracy
def test_learned_count_task_sum_like_near_perfect_mean_like_at_chance():
    """Every count graph is half a, half b: the copy-blind readouts see the same vector
    for every class.

    Tolerances: such a model gets one identical input for all 48 test graphs (up to
    float rounding of sums of 4 to 10 equal rows), so it predicts one class of a
    balanced 4-class test set: exactly 0.25; 0.05 leaves room only for a rounding tie
    flip. The copy-seeing readouts give four distinct inputs for k = 2..5 (k (f(a) +
    f(b)), sqrt(k) (...), 2k, log k + ..., products to the power k) that a ReLU head
    separates; with this fixed seed training reaches 1.0, and 0.95 tolerates two
    misclassified test graphs so the test does not hinge on the last optimiser step.
    """
    m = learned_accuracy(["count"], [*COPY_SEEING, *COPY_BLIND], encoders=["mlp"],
                         seeds=1, train_size=48, test_size=48)
    row = "count / mlp (chance 0.25)"
    for name in COPY_SEEING:
        assert m.value(row, name) >= 0.95, name
    for name in COPY_BLIND:
        assert abs(m.value(row, name) - 0.25) <= 0.05, name


def test_training_does_not_depend_on_the_callers_thread_count():
    """train_and_test runs on one thread whatever the caller set, and restores it."""
    task = resolve_families(["count"])[0].task
    train, test = task.sample(32, seed=0), task.sample(32, seed=1)
    previous = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append([train_and_test(train, test, name, num_classes=4, encoder="gin",
                                           epochs=10) for name in ("mean", "edge")])
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(previous)
    assert results[0] == results[1]


def test_tasks_have_their_advertised_structure():
    count, proportion, presence, grid = (f.task for f in resolve_families(
        ["count", "proportion", "presence", "grid"]))
    for g in count.sample(8, seed=3):
        c = multiset(g)
        assert c[0] == c[1] == int(g.y) + 2 and g.edge_index.size(1) == 2 * g.num_nodes
    for g in proportion.sample(20, seed=3):
        c = multiset(g)
        assert (c[0] < c[1]) == bool(g.y)
    for g in presence.sample(20, seed=3):
        assert (multiset(g)[2] == 1) == bool(g.y)
    sizes = [g.num_nodes for g in proportion.sample(40, seed=0)]
    assert max(sizes) >= 3 * min(sizes)
    for g in grid.sample(10, seed=3):
        counts = sorted(multiset(g).values())
        assert len(counts) == 2 and counts[0] == counts[1]
    labels = [int(g.y) for g in grid.sample(10, seed=3)]
    assert labels.count(0) == labels.count(1)


def test_grid_edge_types_are_directions():
    g = grid_image("vertical", 3, 4)
    data = to_pyg(g, "ab")
    coords = list(g.nodes)
    for (u, v), t in zip(data.edge_index.t().tolist(), data.edge_type.tolist()):
        assert t == int(coords[u][0] != coords[v][0])


def test_classifier_shapes_for_every_readout_and_encoder(stubs):
    """Every width works: count (1), edge-dir (2F), the stubs (3 and 2F)."""
    b = Batch.from_data_list(resolve_families(["grid"])[0].task.sample(4, seed=0))
    for name in readout_names():
        for encoder in ("mlp", "gin"):
            model = ReadoutClassifier(3, 2, name, encoder=encoder)
            assert model(b).shape == (4, 2), (name, encoder)
            width = 16 * (3 if encoder == "gin" else 1)
            assert model.head[0].num_features == model.readout.out_features(width)


def test_learnable_readouts_train_through_the_classifier(stubs):
    task = resolve_families(["count"])[0].task
    train, test = task.sample(48, seed=0), task.sample(48, seed=1)
    for name in stubs:
        accuracy = train_and_test(train, test, name, num_classes=4, epochs=60)
        assert accuracy >= 0.95 if name == "deepsets-stub" else 0 <= accuracy <= 1


def run_cli(capsys, *args):
    assert main(["expressiveness", *args]) == 0
    return capsys.readouterr().out


def test_cli_matrix_equals_exact_distinguishability(capsys, exact):
    printed = json.loads(run_cli(capsys, "--exact-only", "--json"))
    assert printed == {"exact": exact.to_dict()}
    want = distinguishability(["gin", "grid"])
    assert run_cli(capsys, "--exact-only", "--families", "gin,grid").strip() == want.format()


def test_cli_takes_every_new_readout_name(capsys, stubs):
    names = ["var", "quantile", "count", "deepsets-stub", "edge-dir"]
    printed = json.loads(run_cli(capsys, "--exact-only", "--json", "--families", "gin",
                                 "--readouts", ",".join(names)))
    assert printed["exact"] == distinguishability(["gin"], names).to_dict()
    assert printed["exact"]["columns"] == names


def test_cli_learned_matrix_equals_the_library(capsys):
    args = ["--families", "count", "--readouts", "sum,mean", "--seeds", "1", "--epochs", "30"]
    printed = json.loads(run_cli(capsys, *args, "--json"))
    want = learned_accuracy(["count"], ["sum", "mean"], seeds=1, epochs=30)
    assert printed["learned"] == json.loads(json.dumps(want.to_dict()))
    assert printed["exact"] == distinguishability(["count"], ["sum", "mean"]).to_dict()


def test_cli_plot_writes_a_png(capsys, tmp_path):
    path = tmp_path / "matrix.png"
    out = run_cli(capsys, "--exact-only", "--families", "gin,grid", "--plot", str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and str(path) in out


def test_cli_without_matplotlib_says_how_to_fix(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert main(["expressiveness", "--exact-only", "--plot", str(tmp_path / "m.png")]) == 2
    assert "pip install 'graphpool[plot]'" in capsys.readouterr().err
    with pytest.raises(GraphpoolError, match=r"pip install 'graphpool\[plot\]'"):
        plot_matrices([Matrix("t", "separates", ("r",), ("sum",), ((True,),))], "m.png")


@pytest.mark.parametrize("option, value, choices", [
    ("--families", "gin,wheel", "'gin', 'count', 'proportion'"),
    ("--readouts", "medoid", "'sum', 'mean', 'max', 'min', 'var', 'std'"),
])
def test_cli_unknown_names_list_the_choices(capsys, option, value, choices):
    with pytest.raises(SystemExit) as exit_info:
        main(["expressiveness", option, value])
    assert exit_info.value.code == 2
    assert choices in capsys.readouterr().err


@pytest.mark.parametrize("call, match", [
    (lambda: resolve_families(["gin", "wheel"]),
     r"invalid 'families': expected names from 'gin', 'count', 'proportion', 'presence', "
     r"'copies', 'wl', 'grid', got 'wheel'"),
    (lambda: distinguishability(["gin"], ["medoid"]),
     r"^distinguishability: invalid 'readouts': expected names from 'sum', 'mean'"),
    (lambda: learned_accuracy(["wheel"]), r"^learned_accuracy: invalid 'families'"),
    (lambda: learned_accuracy(["count"], encoders=["gcn"]),
     r"invalid 'encoders': expected names from \('mlp', 'gin'\), got 'gcn'"),
    (lambda: resolve_readout_names(["edges"]), r"got 'edges'. Fix: pick from the listed"),
    (lambda: distinguishability(["gin"], trials=0), r"invalid 'trials': expected an int >= 1"),
    (lambda: distinguishability(["gin"], dim=0), r"invalid 'dim': expected an int >= 1"),
    (lambda: learned_accuracy(["count"], seeds=0), r"invalid 'seeds': expected an int >= 1"),
    (lambda: GraphReadout("edge-dir")(torch.zeros(2, 1), Batch.from_data_list(
        [Data(x=torch.zeros(2, 1), edge_index=torch.tensor([[0], [1]]))])),
     r"invalid 'batch'.*edge_type"),
    (lambda: GraphReadout("medoid"), r"^GraphReadout: invalid 'readouts'"),
    (lambda: rounding_floor("medoid", torch.zeros(1, 1), None), r"^rounding_floor: invalid"),
    (lambda: has_error_bound("medoid"), r"^has_error_bound: invalid 'readouts'"),
    (lambda: ReadoutClassifier(3, 2, "sum", encoder="gcn"), r"invalid 'encoder'"),
    (lambda: resolve_families(["count"])[0].task.sample(6, seed=0),
     r"invalid 'num_graphs': expected a multiple of 4"),
    (lambda: typed_graph("ab", "path"), r"invalid 'edges': expected 'none', 'cycle'"),
    (lambda: typed_graph("abc", typed_graph("ab")), r"a graph on nodes 0..2"),
    (lambda: grid_image("spiral", 2, 2), r"invalid 'pattern'.*'checkerboard'"),
    (lambda: to_pyg(typed_graph("abz"), "ab"), r"invalid 'types'.*\['z'\]"),
])
def test_bad_input(call, match):
    with pytest.raises(GraphpoolError, match=match):
        call()


def test_family_names_are_resolved_in_order():
    assert [f.name for f in resolve_families()] == list(FAMILY_NAMES)
    assert [f.name for f in resolve_families(["grid", "gin"])] == ["grid", "gin"]


def test_matrix_format_and_dict():
    m = Matrix("acc", "accuracy", ("a", "bb"), ("sum",), ((1.0,), (0.5,)), ((0.0,), (0.25,)))
    assert m.format().splitlines() == ["acc", "    sum", "a   1.00±0.00", "bb  0.50±0.25"]
    assert m.to_dict() == {"title": "acc", "kind": "accuracy", "rows": ["a", "bb"],
                           "columns": ["sum"], "values": [[1.0], [0.5]],
                           "spread": [[0.0], [0.25]]}
