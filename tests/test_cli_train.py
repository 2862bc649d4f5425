"""`graphpool train`, `graphpool demo` and the molecule example: arguments, outputs, files."""
import csv
import json
import runpy
import sys
from pathlib import Path

import pytest
from torch_geometric.datasets import TUDataset

from graphpool.apps.cli import main
from graphpool.apps.experiments.results import CSV_COLUMNS

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "molecule_classification.py"
TINY = ["--dataset", "MUTAG", "--readout", "sum,max", "--epochs", "2", "--max-folds", "2",
        "--no-progress"]


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHPOOL_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(TUDataset, "download",
                        lambda self: pytest.fail("network access attempted in a test"))


# arguments, words the error message must contain
BAD_ARGUMENTS = [
    (["--folds", "1"], ["--folds", "expected an integer >= 2, got 1"]),
    (["--folds", "ten"], ["--folds", "expected an integer >= 2, got 'ten'"]),
    (["--dataset", "MUTAG,FOO"], ["--dataset", "unknown dataset 'FOO'",
                                  "choose from 'MUTAG', 'PROTEINS', 'NCI1', 'PTC_MR'"]),
    (["--readout", "sum,medoid"], ["--readout", "unknown readout 'medoid'",
                                   "choose from 'sum', 'mean', 'max', 'min'"]),
    (["--aggr", "medoid"], ["--aggr", "unknown readout 'medoid'"]),
    (["--aggr", "catavgmax"], ["--aggr", "width-preserving", "'catavgmax' (8 -> 16"]),
    (["--aggr", "same", "--readout", "mean,quantile,count"],
     ["--aggr same", "width-preserving", "'count' (8 -> 1"]),
    (["--protocol", "nested"], ["--protocol", "invalid choice: 'nested'", "'paper', 'heldout'"]),
    (["--dropout", "1.5"], ["--dropout", "expected a number in [0, 1), got '1.5'"]),
    (["--val-fraction", "0"], ["--val-fraction", "expected a number in (0, 1), got '0'"]),
    (["--epochs", "0"], ["--epochs", "expected an integer >= 1, got 0"]),
    (["--hidden", ","], ["--hidden", "expected a comma-separated list"]),
    (["--lr", "0"], ["--lr", "expected a finite number > 0"]),
    (["--lr", "inf"], ["--lr", "expected a finite number > 0, got 'inf'"]),
    (["--seed", "-1"], ["--seed", "expected an integer from 0 to"]),
    (["--model", "gcn"], ["--model", "invalid choice: 'gcn'"]),
]


@pytest.mark.parametrize("argv,words", BAD_ARGUMENTS)
def test_bad_arguments_exit_with_a_message_that_names_the_option(capsys, tmp_path, argv, words):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", *argv, "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    for word in words:
        assert word in err
    assert not (tmp_path / "out").exists()


def test_max_folds_above_folds_is_refused(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--folds", "5", "--max-folds", "6", "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert ("graphpool train: error: argument --max-folds: expected at most --folds (5), "
            "got 6" in capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One tiny `graphpool train` run shared by the file checks."""
    tmp = tmp_path_factory.mktemp("train")
    patch = pytest.MonkeyPatch()
    patch.setenv("GRAPHPOOL_DATA", str(tmp / "data"))
    patch.setattr(TUDataset, "download", lambda self: pytest.fail("download attempted"))
    code = main(["train", *TINY, "--out", str(tmp / "out")])
    patch.undo()
    return code, tmp / "out"


def test_train_writes_csv_with_the_promised_columns(tiny_run):
    code, out = tiny_run
    assert code == 0
    with open(out / "accuracy.csv") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == CSV_COLUMNS
        rows = list(reader)
    assert [(r["dataset"], r["readout"], r["protocol"]) for r in rows] == [
        ("MUTAG", "sum", "paper"), ("MUTAG", "max", "paper")]
    for row in rows:
        folds = [float(a) for a in row["fold_accuracies"].split(";")]
        assert len(folds) == int(row["folds_run"]) == 2 and row["folds"] == "10"
        assert 0 <= float(row["accuracy_mean"]) <= 100 and row["epochs"] == "2"
    assert rows[0]["paper_mean"] == "89.4" and rows[0]["paper_std"] == "5.6"
    assert rows[1]["paper_mean"] == "84.0" and rows[1]["paper_std"] == ""


def test_train_writes_json_with_the_command_and_settings(tiny_run):
    _, out = tiny_run
    doc = json.loads((out / "accuracy.json").read_text())
    assert doc["command"].startswith("graphpool train --dataset MUTAG --readout sum,max "
                                     "--protocol paper --folds 10 --max-folds 2 --epochs 2")
    assert doc["settings"]["readout"] == ["sum", "max"]
    assert doc["torch_threads"] == 1 and doc["wall_s"] > 0
    assert {"fold_accuracies", "selected_epoch", "paper_mean"} <= set(doc["results"][0])


def test_train_writes_a_png_chart(tiny_run):
    _, out = tiny_run
    assert (out / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_is_deterministic_for_a_seed(tiny_run, tmp_path):
    _, first = tiny_run
    assert main(["train", *TINY, "--out", str(tmp_path / "again"), "--no-plot"]) == 0

    def without_time(path):
        return [{k: v for k, v in row.items() if k != "wall_s"}
                for row in csv.DictReader(open(path))]

    assert without_time(first / "accuracy.csv") == without_time(tmp_path / "again" /
                                                                 "accuracy.csv")
    assert not (tmp_path / "again" / "accuracy.png").exists()


def test_train_prints_the_table_next_to_the_paper(capsys, tmp_path):
    main(["train", *TINY, "--readout", "mean", "--protocol", "heldout", "--out",
          str(tmp_path / "out"), "--no-plot"])
    out = capsys.readouterr().out
    assert "test accuracy %, protocol 'heldout', 10-fold CV (2 folds run, 2 epochs)" in out
    assert "Xu et al. (ICLR 2019), Table 1" in out and "mean     83.5" in out


def test_train_without_matplotlib_still_writes_csv_and_json(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["train", *TINY, "--readout", "sum", "--out", str(tmp_path / "out")]) == 0
    assert "pip install 'graphpool[plot]'" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["accuracy.csv",
                                                                    "accuracy.json"]


def test_demo_runs_the_readout_checks_and_a_quick_mutag_cv(capsys):
    assert main(["demo", "--epochs", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "max |graphpool - PyG pool|: sum 0.0e+00, mean 0.0e+00, max 0.0e+00" in out
    assert "test accuracy %, protocol 'paper', 10-fold CV (10 folds run, 1 epochs)" in out
    for name in ("sum", "mean", "max"):
        assert f"\n{name} " in out


def test_example_script_uses_the_same_options(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(sys, "argv", [str(EXAMPLE), *TINY, "--readout", "max",
                                      "--out", str(tmp_path / "out")])
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    assert "max      " in capsys.readouterr().out
    doc = json.loads((tmp_path / "out" / "accuracy.json").read_text())
    assert doc["equivalent_command"].startswith("graphpool train --dataset MUTAG --readout max")
    assert (tmp_path / "out" / "accuracy.png").is_file()


def test_gin_eps_with_the_readout_as_neighbourhood_aggregation_runs(tmp_path):
    out = tmp_path / "out"
    assert main(["train", *TINY, "--readout", "max", "--model", "gin-eps", "--aggr", "same",
                 "--protocol", "heldout", "--out", str(out), "--no-plot"]) == 0
    doc = json.loads((out / "accuracy.json").read_text())
    assert "--model gin-eps --aggr same" in doc["command"]
    assert doc["results"][0]["protocol"] == "heldout"


def test_train_nproc_2_runs_data_parallel_and_reports_one_table(capsys, tmp_path):
    out = tmp_path / "out"
    assert main(["train", *TINY, "--readout", "sum", "--nproc", "2", "--out", str(out),
                 "--no-plot"]) == 0
    printed = capsys.readouterr().out
    assert "data-parallel: 2 processes" in printed
    assert printed.count("test accuracy %, protocol 'paper'") == 1
    doc = json.loads((out / "accuracy.json").read_text())
    assert "--nproc 2" in doc["command"] and doc["settings"]["nproc"] == 2
    (row,) = list(csv.DictReader(open(out / "accuracy.csv")))
    folds = [float(a) for a in row["fold_accuracies"].split(";")]
    assert len(folds) == 2 and all(0 <= a <= 100 for a in folds)
    # rank 0 evaluates whole MUTAG test folds (18 or 19 graphs; the CSV rounds to 0.01)
    assert all(any(abs(a * k / 100 - round(a * k / 100)) < 0.01 for k in (18, 19))
               for a in folds)


@pytest.mark.parametrize("world, batch_size, n", [(2, 32, 169), (3, 10, 50), (2, 5, 7)])
def test_rank_batches_deal_every_training_graph_to_one_rank(world, batch_size, n):
    import torch

    from graphpool.apps.experiments.config import TrainConfig
    from graphpool.apps.experiments.training import _rank_batches

    train_idx = torch.arange(1000, 1000 + n)
    config = TrainConfig(batch_size=batch_size)
    shares = [list(_rank_batches(train_idx, config, torch.Generator(), 7, 3, r, world))
              for r in range(world)]
    assert len({len(s) for s in shares}) == 1  # the same number of steps on every rank
    assert all(b.numel() <= -(-batch_size // world) for s in shares for b in s)
    dealt = torch.cat([b for s in shares for b in s]).tolist()
    assert sorted(set(dealt)) == train_idx.tolist()  # every graph, on some rank
    assert len(dealt) == world * -(-n // world)  # padded by DistributedSampler, no more
