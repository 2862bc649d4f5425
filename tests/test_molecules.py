"""GIN with pluggable readouts, packed minibatches, folds, protocols and a short MUTAG run."""
import numpy as np
import pytest
import torch
from torch_geometric.data import Batch
from torch_geometric.datasets import TUDataset

from graphpool import GraphpoolError, MaxReadout, MeanReadout, Readout, SumReadout, readout
from graphpool.datasets import load_tu_dataset
from graphpool.apps.experiments.config import TrainConfig, config_grid
from graphpool.apps.experiments.folds import holdout_split, stratified_folds
from graphpool.apps.experiments.packing import PackedGraphs
from graphpool.apps.experiments.protocols import cross_validate, run_seed, select_heldout, select_paper
from graphpool.apps.experiments.training import train_gin
from graphpool.apps.models import GIN


@pytest.fixture(scope="module")
def mutag(tmp_path_factory):
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(TUDataset, "download", lambda self: pytest.fail("download attempted"))
    dataset = load_tu_dataset("MUTAG", tmp_path_factory.mktemp("data"))
    monkeypatch.undo()
    return dataset


@pytest.fixture(scope="module")
def graphs(mutag):
    return PackedGraphs(mutag)


class MeanMaxReadout(Readout):
    """A readout that widens its input: [mean, max] (like timm's catavgmax)."""

    def forward(self, x, segments):
        return torch.cat([readout(x, segments, "mean"), readout(x, segments, "max")], dim=-1)

    def out_features(self, in_features):
        return 2 * in_features


# ----------------------------------------------------------------------------- model
@pytest.mark.parametrize("name,cls", [("sum", SumReadout), ("mean", MeanReadout),
                                      ("max", MaxReadout), ("add", SumReadout)])
def test_gin_resolves_readout_names_one_module_per_layer(name, cls):
    model = GIN(7, 2, hidden_channels=8, num_layers=5, readout=name)
    assert len(model.convs) == 4 and len(model.readouts) == 5
    assert all(type(r) is cls for r in model.readouts)
    assert len({id(r) for r in model.readouts}) == 5
    assert [h.in_features for h in model.heads] == [7, 8, 8, 8, 8]


def test_gin_shares_a_readout_instance_and_sizes_heads_to_its_width():
    shared = MeanMaxReadout()
    model = GIN(7, 3, hidden_channels=8, readout=shared)
    assert all(r is shared for r in model.readouts)
    assert [h.in_features for h in model.heads] == [14, 16, 16, 16, 16]
    batch = torch.tensor([0, 0, 1])
    edge_index = torch.tensor([[0, 1], [1, 0]])
    assert model(torch.randn(3, 7), edge_index, batch).shape == (2, 3)


@pytest.mark.parametrize("readout_spec", ["catavgmax", ["mean", "std", "max"],
                                          "quantile"])
def test_gin_sizes_heads_from_the_readouts_output_width(readout_spec):
    model = GIN(7, 3, hidden_channels=8, readout=readout_spec)
    batch, edge_index = torch.tensor([0, 0, 1]), torch.tensor([[0, 1], [1, 0]])
    widths = [r(torch.randn(3, w), batch).size(-1) for r, w in zip(model.readouts,
                                                                    [7, 8, 8, 8, 8])]
    assert [h.in_features for h in model.heads] == widths
    assert model(torch.randn(3, 7), edge_index, batch).shape == (2, 3)


@pytest.mark.parametrize("aggr,cls", [("sum", SumReadout), ("mean", MeanReadout),
                                      ("max", MaxReadout)])
def test_gin_neighbourhood_aggregation_is_a_graphpool_readout(aggr, cls):
    model = GIN(7, 2, hidden_channels=8, aggr=aggr)
    assert all(type(conv.aggr_module) is cls for conv in model.convs)


@pytest.mark.parametrize("train_eps,is_parameter", [(False, False), (True, True)])
def test_gin0_fixes_eps_and_gin_eps_learns_it(train_eps, is_parameter):
    model = GIN(7, 2, hidden_channels=8, train_eps=train_eps)
    names = dict(model.named_parameters())
    assert ("convs.0.eps" in names) is is_parameter
    assert all(float(conv.eps.detach()) == 0.0 for conv in model.convs)


def test_gin_layer_matches_the_formula(mutag):
    """Layer 1 == MLP((1 + eps) x_v + sum of neighbours), computed by hand."""
    model = GIN(7, 2, hidden_channels=8, train_eps=True).eval()
    with torch.no_grad():
        model.convs[0].eps.fill_(0.25)
    data = mutag[0]
    neighbours = torch.zeros_like(data.x).index_add_(0, data.edge_index[1],
                                                      data.x[data.edge_index[0]])
    expected = model.convs[0].nn(1.25 * data.x + neighbours)
    assert torch.allclose(model.convs[0](data.x, data.edge_index), expected, atol=1e-6)


@pytest.mark.parametrize("name", ["sum", "mean", "max"])
def test_gin_is_invariant_to_node_order_within_graphs(mutag, name):
    torch.manual_seed(0)
    model = GIN(7, 2, hidden_channels=16, readout=name).eval()
    batch = Batch.from_data_list([mutag[i] for i in range(6)])
    perm = torch.cat([torch.randperm(int(n)) + int(s) for s, n in
                      zip(batch.ptr[:-1], batch.ptr[1:] - batch.ptr[:-1])])
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(perm.numel())
    with torch.no_grad():
        out = model(batch.x, batch.edge_index, batch)
        permuted = model(batch.x[perm], inverse[batch.edge_index], batch.batch[perm])
    assert torch.allclose(out, permuted, atol=1e-5)


@pytest.mark.parametrize("kwargs,match", [
    ({"num_layers": 1}, r"'num_layers': expected an int >= 2"),
    ({"num_layers": 2.5}, r"'num_layers'"),
    ({"dropout": 1.0}, r"'dropout': expected a probability in \[0, 1\)"),
    ({"readout": "medoid"}, r"^GIN: invalid 'readout': expected a Readout, a list of readouts or one of 'sum', 'mean'"),
    ({"aggr": "medoid"}, r"^GIN: invalid 'aggr': expected a Readout"),
])
def test_gin_rejects_bad_arguments(kwargs, match):
    with pytest.raises(GraphpoolError, match=match):
        GIN(7, 2, **kwargs)


# ----------------------------------------------------------------------------- packing
@pytest.mark.parametrize("ids", [[0], [5, 3, 187], list(range(0, 188, 7)), [4, 4, 2]])
def test_packed_batch_equals_pyg_collation(mutag, graphs, ids):
    ours = graphs.batch(torch.tensor(ids))
    ref = Batch.from_data_list([mutag[i] for i in ids])
    assert torch.equal(ours.x, ref.x)
    assert torch.equal(ours.edge_index, ref.edge_index)
    assert torch.equal(ours.y, ref.y)
    assert torch.equal(ours.segments.ptr, ref.ptr)


def test_packed_graphs_keep_labels_in_file_order(mutag, graphs):
    assert len(graphs) == 188
    assert torch.equal(graphs.labels, mutag.y)


# ----------------------------------------------------------------------------- folds
@pytest.mark.parametrize("folds", [2, 5, 10])
def test_folds_are_stratified_disjoint_and_cover_everything(graphs, folds):
    labels = graphs.labels
    splits = stratified_folds(labels, folds, seed=0)
    assert len(splits) == folds
    tests = torch.cat([test for _, test in splits])
    assert sorted(tests.tolist()) == list(range(len(labels)))
    share = torch.bincount(labels).double() / len(labels)
    for train, test in splits:
        assert set(train.tolist()).isdisjoint(test.tolist())
        assert len(train) + len(test) == len(labels)
        expected = share * len(test)
        assert (torch.bincount(labels[test], minlength=2) - expected).abs().max() <= 1


def test_folds_depend_on_the_seed_only(graphs):
    a, b = stratified_folds(graphs.labels, 10, 0), stratified_folds(graphs.labels, 10, 0)
    c = stratified_folds(graphs.labels, 10, 1)
    assert all(torch.equal(x[1], y[1]) for x, y in zip(a, b))
    assert not all(torch.equal(x[1], y[1]) for x, y in zip(a, c))


@pytest.mark.parametrize("folds", [1, 0, 64, 2.0, True])
def test_bad_fold_counts_are_rejected(graphs, folds):
    with pytest.raises(GraphpoolError, match=r"'folds': expected an int from 2 to 63"):
        stratified_folds(graphs.labels, folds)


def test_holdout_split_is_stratified_and_inside_the_training_split(graphs):
    train, _ = stratified_folds(graphs.labels, 10)[0]
    fit, val = holdout_split(graphs.labels, train, 0.1, seed=3)
    assert sorted(torch.cat([fit, val]).tolist()) == train.tolist()
    assert set(fit.tolist()).isdisjoint(val.tolist())
    assert len(val) == 17
    assert torch.bincount(graphs.labels[val]).tolist() in ([6, 11], [5, 12])


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_holdout_fraction_must_be_a_share(graphs, fraction):
    with pytest.raises(GraphpoolError, match="'fraction'"):
        holdout_split(graphs.labels, torch.arange(188), fraction)


# ----------------------------------------------------------------------------- selection
PAPER_CASES = [
    # [settings, folds, epochs] test accuracy -> (setting, epoch)
    ([[[50, 70], [60, 70]]], (0, 1)),
    ([[[90, 10], [10, 10]], [[60, 60], [60, 60]]], (1, 0)),   # best mean, not best single
    ([[[70, 70, 70]]], (0, 0)),                                # ties: the first
]


@pytest.mark.parametrize("acc,expected", PAPER_CASES)
def test_select_paper_maximises_the_fold_averaged_curve(acc, expected):
    assert select_paper(np.array(acc, dtype=float)) == expected


HELDOUT_CASES = [
    # val accuracy [settings, epochs], val loss, expected
    ([[80, 90, 85]], [[0.3, 0.4, 0.2]], (0, 1)),
    ([[80, 90, 90]], [[0.3, 0.4, 0.2]], (0, 2)),                 # tie -> lower loss
    ([[90, 80], [90, 70]], [[0.5, 0.1], [0.5, 0.1]], (0, 0)),    # full tie -> earliest
    ([[70, 80], [85, 60]], [[0.1, 0.1], [0.9, 0.9]], (1, 0)),
]


@pytest.mark.parametrize("acc,loss,expected", HELDOUT_CASES)
def test_select_heldout_uses_validation_then_loss_then_order(acc, loss, expected):
    assert select_heldout(np.array(acc, dtype=float), np.array(loss, dtype=float)) == expected


def test_run_seeds_differ_by_fold_and_setting():
    seeds = {run_seed(0, f, c) for f in range(10) for c in range(8)}
    assert len(seeds) == 80


def test_config_grid_is_the_product_of_the_tuned_settings():
    grid = config_grid(hidden=(16, 32), batch_size=(32, 128), dropout=(0.0, 0.5), epochs=7)
    assert len(grid) == 8 and {c.epochs for c in grid} == {7}
    assert grid[0] == TrainConfig(hidden=16, batch_size=32, dropout=0.0, epochs=7)


# ----------------------------------------------------------------------------- training
def test_training_is_deterministic_for_a_seed(graphs):
    train, test = stratified_folds(graphs.labels, 10)[0]
    config = TrainConfig(hidden=16, epochs=3, iters_per_epoch=4)
    a = train_gin(graphs, train, {"test": test}, "mean", config, seed=7)
    b = train_gin(graphs, train, {"test": test}, "mean", config, seed=7)
    c = train_gin(graphs, train, {"test": test}, "mean", config, seed=8)
    assert np.array_equal(a.train_loss, b.train_loss)
    assert np.array_equal(a.loss["test"], b.loss["test"])
    assert not np.array_equal(a.train_loss, c.train_loss)


def test_training_copies_a_readout_instance(graphs):
    train, test = stratified_folds(graphs.labels, 10)[0]
    instance = MeanMaxReadout()
    curves = train_gin(graphs, train, {"test": test}, instance, TrainConfig(epochs=1))
    assert curves.accuracy["test"].shape == (1,)


def test_short_mutag_run_beats_the_majority_class_on_held_out_folds(graphs):
    """Heldout protocol: the epoch is chosen on an inner validation split; test folds are
    only read at that epoch."""
    majority = 100 * torch.bincount(graphs.labels).max().item() / len(graphs)   # 66.5 %
    result = cross_validate(graphs, "sum", [TrainConfig(epochs=15)], protocol="heldout",
                            folds=10, max_folds=5, seed=0, progress=False)
    assert len(result.fold_accuracy) == 5
    assert result.mean >= majority + 10
    assert min(result.fold_accuracy) > majority
    assert all(1 <= e <= 15 for e in result.selected_epoch)


def test_paper_protocol_uses_one_epoch_for_all_folds(graphs):
    result = cross_validate(graphs, "max", config_grid(hidden=(8, 16), epochs=2),
                            protocol="paper", max_folds=2, progress=False)
    assert len(set(result.selected_epoch)) == 1 and len(set(result.selected_config)) == 1
    assert result.mean == pytest.approx(np.mean(result.fold_accuracy))


@pytest.mark.parametrize("kwargs,match", [
    ({"protocol": "nested"}, r"'protocol': expected one of \('paper', 'heldout'\)"),
    ({"max_folds": 0}, r"'max_folds': expected None or an int from 1 to 10"),
    ({"max_folds": 11}, r"'max_folds'"),
    ({"folds": 1}, r"'folds': expected an int from 2"),
    ({"configs": []}, r"'configs': expected a non-empty list"),
    ({"configs": [TrainConfig(epochs=1), TrainConfig(epochs=2)]}, r"same number of epochs"),
])
def test_cross_validate_rejects_bad_arguments(graphs, kwargs, match):
    kwargs = {"configs": [TrainConfig(epochs=1)], **kwargs}
    with pytest.raises(GraphpoolError, match=match):
        cross_validate(graphs, "sum", progress=False, **kwargs)


def test_packing_graphs_without_features_says_how_to_add_them():
    from torch_geometric.data import Data

    graphs = [Data(edge_index=torch.tensor([[0], [1]]), y=torch.tensor([0]), num_nodes=2)]
    with pytest.raises(GraphpoolError, match=r"'dataset': expected graphs with node features.*"
                                             r"OneHotDegree"):
        PackedGraphs(graphs)
