"""Readout expressiveness against theory: sum keeps counts, mean proportions, max/min the set.

Every expectation here comes from the multiset of node types (a ``Counter``), never from
the code under test, so a readout that kept more or less than theory says would fail.
"""
import json
import sys
from collections import Counter
from fractions import Fraction

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.data import Batch, Data

from graphpool import GraphpoolError, readout
from graphpool.analysis.expressiveness import (GraphReadout, ReadoutClassifier,
                                               distinguishability, learned_accuracy,
                                               random_node_states, readout_names,
                                               resolve_readout_names)
from graphpool.analysis.families import (FAMILY_NAMES, Family, Pair, grid_image,
                                         resolve_families, to_pyg, typed_graph)
from graphpool.analysis.matrix import Matrix, plot_matrices
from graphpool.cli import main

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
    for row in exact.rows:
        if row.startswith("wl: "):
            assert not any(exact.value(row, n) for n in readout_names()), row


@pytest.mark.parametrize("size", [(2, 2), (4, 4), (4, 6), (6, 8)])
def test_every_first_and_second_moment_collides_on_stripes_vs_checkerboard(size):
    b = Batch.from_data_list([to_pyg(grid_image(p, *size), "ab")
                              for p in ("vertical", "checkerboard")])
    h = random_node_states(b, generator=torch.Generator().manual_seed(0))
    outer = (h.unsqueeze(-1) * h.unsqueeze(-2)).flatten(-2)  # second moments h h^T
    for reduce in NODE:
        first = readout(h, b, reduce)
        torch.testing.assert_close(first[0], first[1], rtol=1e-12, atol=1e-12)
    for reduce in ("sum", "mean"):
        second = readout(outer, b, reduce)
        torch.testing.assert_close(second[0], second[1], rtol=1e-12, atol=1e-12)
    variance = readout(outer, b, "mean") - (
        readout(h, b, "mean").unsqueeze(-1) * readout(h, b, "mean").unsqueeze(-2)).flatten(-2)
    torch.testing.assert_close(variance[0], variance[1], rtol=1e-12, atol=1e-12)
    energy = GraphReadout("edge")(h, b)
    assert not torch.allclose(energy[0], energy[1])


types = st.lists(st.integers(0, 3), min_size=1, max_size=6)


@settings(max_examples=40, deadline=None)
@given(types, st.integers(2, 5), st.integers(0, 1000))
def test_mean_of_k_copies_equals_mean_and_max_ignores_multiplicity(xs, k, seed):
    encoding = torch.randn(4, 8, generator=torch.Generator().manual_seed(seed),
                           dtype=torch.float64)
    h = encoding[torch.tensor(xs + xs * k)]                     # X, then k copies of X
    batch = torch.tensor([0] * len(xs) + [1] * (k * len(xs)))
    for reduce in ("mean", "max", "min"):
        out = readout(h, batch, reduce)
        torch.testing.assert_close(out[0], out[1], rtol=1e-12, atol=1e-12)
    total = readout(h, batch, "sum")
    torch.testing.assert_close(k * total[0], total[1])


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
    ("--readouts", "median", "'sum', 'mean', 'max', 'min', 'edge', 'edge-dir'"),
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
    (lambda: distinguishability(["gin"], ["median"]),
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
    (lambda: GraphReadout("median"), r"^GraphReadout: invalid 'readouts'"),
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
