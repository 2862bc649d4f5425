"""Readout expressiveness against theory: sum keeps counts, mean proportions, max/min the set.

Every expectation here comes from the multiset of node types (a ``Counter``), never from
the code under test, so a readout that kept more or less than theory says would fail.
"""
import json
import math
import sys
from collections import Counter
from fractions import Fraction

import mpmath
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.data import Batch, Data

from graphpool import GraphpoolError, readout
from graphpool.analysis import expressiveness
from graphpool.analysis.expressiveness import (UNIT_ROUNDOFF, GraphReadout,
                                               ReadoutClassifier, _differ,
                                               distinguishability, learned_accuracy,
                                               node_states_with_error, random_node_states,
                                               readout_names, resolve_readout_names,
                                               rounding_floor, train_and_test)
from graphpool.analysis.families import (FAMILY_NAMES, Family, Pair, grid_image,
                                         resolve_families, to_pyg, typed_graph)
from graphpool.analysis.matrix import Matrix, plot_matrices
from graphpool.apps.cli import main

NODE = ("sum", "mean", "max", "min")


def multiset(data):
    return Counter(data.x.argmax(-1).tolist())


def theory(left, right):
    """What each node readout keeps of a multiset: counts, proportions, support."""
    def proportions(c):
        return {t: Fraction(n, sum(c.values())) for t, n in c.items()}
    return {"sum": left != right, "mean": proportions(left) != proportions(right),
            "max": set(left) != set(right), "min": set(left) != set(right)}


@pytest.fixture(scope="module")
def exact():
    return distinguishability()


def test_gin_pairs_follow_xu_et_al(exact):
    """Xu et al. (2019), Fig. 3: sum always separates; mean/max fail where shown."""
    expected = {"{a,a} vs {a,a,a}": dict(sum=True, mean=False, max=False),
                "{g,r} vs {g,r,r}": dict(sum=True, mean=True, max=False),
                "{g,r} vs {g,g,r,r}": dict(sum=True, mean=False, max=False)}
    for pair, cells in expected.items():
        for name, separates in cells.items():
            assert exact.value(f"gin: {pair}", name) is separates, (pair, name)


def test_node_readouts_follow_multiset_theory_on_every_pair_without_message_passing(exact):
    pairs = [(f"{f.name}: {p.name}", p) for f in resolve_families() for p in f.pairs
             if p.rounds == 0]
    assert len(pairs) >= 9
    for row, pair in pairs:
        want = theory(multiset(pair.left), multiset(pair.right))
        for name in NODE:
            assert exact.value(row, name) is want[name], (row, name)


def test_copies_only_sum_like_readouts_see_the_second_copy(exact):
    row = "copies: house G vs G+G"
    assert [exact.value(row, n) for n in readout_names()] == [True, False, False, False,
                                                              True, True]


def test_stripes_vs_checkerboard_only_the_edge_readout_separates(exact):
    row = "grid: 4x4 stripes vs checkerboard"
    assert [exact.value(row, n) for n in NODE] == [False] * 4
    assert exact.value(row, "edge") and exact.value(row, "edge-dir")
    # Vertical and horizontal stripes have equal total energy: only directions tell.
    row = "grid: 4x4 vertical vs horizontal stripes"
    assert not exact.value(row, "edge") and exact.value(row, "edge-dir")
    # One round of message passing lets every readout see neighbourhoods.
    assert all(exact.value("grid: 4x4 stripes vs checkerboard (1 round)", n)
               for n in readout_names())


def test_no_readout_separates_1wl_equivalent_graphs_after_message_passing(exact):
    rows = [row for row in exact.rows if row.startswith("wl: ")]
    assert len(rows) == 2
    for row in rows:
        assert not any(exact.value(row, n) for n in readout_names()), row


# ------------------------------------------------- rounding: the same answer everywhere
def relabel(data, perm):
    """The same graph with node ``perm[i]`` renamed ``i`` (x permuted, edges renamed)."""
    new_id = torch.empty_like(perm)
    new_id[perm] = torch.arange(len(perm))
    return Data(x=data.x[perm], edge_index=new_id[data.edge_index],
                edge_type=data.edge_type, num_nodes=data.num_nodes)


def relabelled_families(seed):
    gen = torch.Generator().manual_seed(seed)
    return [Family(f.name, tuple(
        Pair(p.name, relabel(p.left, torch.randperm(p.left.num_nodes, generator=gen)),
             relabel(p.right, torch.randperm(p.right.num_nodes, generator=gen)), p.rounds)
        for p in f.pairs)) for f in resolve_families()]


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


@pytest.mark.parametrize("name", readout_names())
def test_the_floor_scales_with_the_node_states_not_the_output(name):
    batch = two_cycles()
    h = torch.rand(12, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    power = 2 if name.startswith("edge") else 1           # energies are quadratic in h
    for error in (0.0, 1e-12):
        base = rounding_floor(name, h, batch, error)
        scaled = rounding_floor(name, 1e3 * h, batch, 1e3 * error)
        assert scaled == pytest.approx(1e3 ** power * base, rel=1e-9)
    if name in ("max", "min"):                            # a selection of exact inputs
        assert rounding_floor(name, h, batch) == 0.0
        assert rounding_floor(name, h, batch, 1e-12) == pytest.approx(4e-12)
    else:
        assert 0 < rounding_floor(name, h, batch) < 1e-12
        assert rounding_floor(name, h, batch, 1e-12) > 4e-12


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


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_exact_matrix_is_the_same_for_any_thread_count_and_node_order(exact, threads):
    """Relabelling nodes and changing the thread count change summation orders and SIMD
    lanes (the rounding of another CPU); the matrix must not move."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for seed in range(3):
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
def test_every_first_and_second_moment_collides_on_stripes_vs_checkerboard(size):
    """Tolerances are the rounding floors of the inputs (exact h; each entry of h h^T
    rounded once), never fixed numbers, so they hold for any summation order."""
    b = Batch.from_data_list([to_pyg(grid_image(p, *size), "ab")
                              for p in ("vertical", "checkerboard")])
    h = random_node_states(b, generator=torch.Generator().manual_seed(0))
    outer = (h.unsqueeze(-1) * h.unsqueeze(-2)).flatten(-2)  # second moments h h^T
    outer_error = UNIT_ROUNDOFF * outer.abs()
    for reduce in NODE:
        assert not _differ(readout(h, b, reduce), rounding_floor(reduce, h, b)), reduce
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


types = st.lists(st.integers(0, 3), min_size=1, max_size=6)


@settings(max_examples=40, deadline=None)
@given(types, st.integers(2, 5), st.integers(0, 1000))
def test_mean_of_k_copies_equals_mean_and_max_ignores_multiplicity(xs, k, seed):
    encoding = torch.randn(4, 8, generator=torch.Generator().manual_seed(seed),
                           dtype=torch.float64)
    h = encoding[torch.tensor(xs + xs * k)]                     # X, then k copies of X
    batch = Batch.from_data_list([Data(x=h[:len(xs)]), Data(x=h[len(xs):])])
    for reduce in ("mean", "max", "min"):
        out = readout(h, batch, reduce)
        assert not _differ(out, rounding_floor(reduce, h, batch)), reduce
    total = readout(h, batch, "sum")
    scaled = torch.stack([k * total[0], total[1]])
    # k * (sum of X) rounds the first sum's error up k times, then once more.
    tol = k * rounding_floor("sum", h, batch) + UNIT_ROUNDOFF * float(scaled.abs().max())
    assert not _differ(scaled, tol)


@settings(max_examples=25, deadline=None)
@given(types, types)
def test_harness_matches_theory_on_random_multisets(xs, ys):
    letters = "abcd"
    left = "".join(letters[t] for t in xs)
    right = "".join(letters[t] for t in ys)
    family = Family("random", (Pair("p", to_pyg(typed_graph(left), letters),
                                    to_pyg(typed_graph(right), letters)),))
    m = distinguishability([family], list(NODE))
    want = theory(Counter(xs), Counter(ys))
    assert {n: m.value("random: p", n) for n in NODE} == want


def test_random_node_states_are_injective_and_shared_across_the_batch():
    b = Batch.from_data_list([to_pyg(typed_graph("abc"), "abc"),
                              to_pyg(typed_graph("cba"), "abc")])
    h = random_node_states(b, dim=4, generator=torch.Generator().manual_seed(1))
    assert len({tuple(r) for r in h[:3].tolist()}) == 3
    torch.testing.assert_close(h[:3], h[3:].flip(0))


def test_learned_count_task_sum_near_perfect_mean_at_chance():
    """Every count graph is half a, half b: mean sees the same vector for every class.

    Tolerances: the mean model gets one identical input for all 48 test graphs (up to
    float rounding of sums of 4 to 10 equal rows), so it predicts one class of a
    balanced 4-class test set: exactly 0.25; 0.05 leaves room only for a rounding tie
    flip. Sum gives four distinct inputs k*(f(a)+f(b)) for k = 2..5 that a ReLU head
    separates; with this fixed seed training reaches 1.0, and 0.95 tolerates two
    misclassified test graphs so the test does not hinge on the last optimiser step.
    """
    m = learned_accuracy(["count"], ["sum", "mean"], encoders=["mlp"], seeds=1,
                         train_size=48, test_size=48)
    row = "count / mlp (chance 0.25)"
    assert m.value(row, "sum") >= 0.95
    assert abs(m.value(row, "mean") - 0.25) <= 0.05


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


def test_classifier_shapes_for_every_readout_and_encoder():
    b = Batch.from_data_list(resolve_families(["grid"])[0].task.sample(4, seed=0))
    for name in readout_names():
        for encoder in ("mlp", "gin"):
            assert ReadoutClassifier(3, 2, name, encoder=encoder)(b).shape == (4, 2)


def run_cli(capsys, *args):
    assert main(["expressiveness", *args]) == 0
    return capsys.readouterr().out


def test_cli_matrix_equals_exact_distinguishability(capsys, exact):
    printed = json.loads(run_cli(capsys, "--exact-only", "--json"))
    assert printed == {"exact": exact.to_dict()}
    assert run_cli(capsys, "--exact-only").strip() == exact.format()


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
    (lambda: learned_accuracy(["count"], seeds=0), r"invalid 'seeds': expected an int >= 1"),
    (lambda: GraphReadout("edge-dir")(torch.zeros(2, 1), Batch.from_data_list(
        [Data(x=torch.zeros(2, 1), edge_index=torch.tensor([[0], [1]]))])),
     r"invalid 'batch'.*edge_type"),
    (lambda: GraphReadout("medoid"), r"^GraphReadout: invalid 'readouts'"),
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
