"""Bundled TU datasets: offline loading with PyG's TUDataset, raw-file checks, bad roots."""
import shutil

import pytest
import torch
from torch_geometric.datasets import TUDataset

from graphpool import GraphpoolError
from graphpool.datasets import (BUNDLED_TU_DATASETS, check_tu_raw_files, default_root,
                                load_tu_dataset)
from graphpool.datasets.tu import BUNDLED_ROOT

# name, graphs, directed edges, nodes, classes and their sizes, features (one-hot labels)
# -- the counts of SOURCES.md.
DATASETS = [
    ("MUTAG", 188, 3371, 7442, [63, 125], 7),
    ("PROTEINS", 1113, 43471, 162088, [663, 450], 3),
    ("NCI1", 4110, 122747, 265506, [2053, 2057], 37),
    ("PTC_MR", 344, 4915, 10108, [192, 152], 18),
]


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """Every test: data under tmp_path, and any download attempt fails loudly."""
    monkeypatch.setenv("GRAPHPOOL_DATA", str(tmp_path / "data"))

    def no_download(self):
        raise OSError("network access attempted in a test")

    monkeypatch.setattr(TUDataset, "download", no_download)


def raw_copy(tmp_path, name="MUTAG", prefix=None):
    """A writable copy of a bundled raw folder, optionally renamed to ``prefix``."""
    prefix = prefix or name
    raw = tmp_path / "root" / prefix / "raw"
    raw.mkdir(parents=True)
    for file in (BUNDLED_ROOT / name / "raw").glob(f"{name}_*.txt"):
        shutil.copyfile(file, raw / file.name.replace(name, prefix, 1))
    return raw


@pytest.mark.parametrize("name,graphs,nodes,edges,class_sizes,features", DATASETS)
def test_bundled_dataset_loads_offline(tmp_path, name, graphs, nodes, edges, class_sizes,
                                       features):
    ds = load_tu_dataset(name)
    assert len(ds) == graphs
    assert ds.num_features == features
    assert torch.bincount(ds.y).tolist() == class_sizes
    assert ds.x.size(0) == nodes
    assert ds.edge_index.size(1) == edges
    assert (tmp_path / "data" / "TUDataset" / name / "processed").is_dir()


@pytest.mark.parametrize("name,graphs,nodes,edges,class_sizes,features", DATASETS)
def test_check_tu_raw_files_counts_the_bundled_files(name, graphs, nodes, edges, class_sizes,
                                                     features):
    counts = check_tu_raw_files(BUNDLED_ROOT / name / "raw", name)
    assert counts == {"graphs": graphs, "nodes": nodes, "edges": edges}


def test_bundled_list_and_provenance_ship_with_the_package():
    assert BUNDLED_TU_DATASETS == ("MUTAG", "PROTEINS", "NCI1", "PTC_MR")
    assert (BUNDLED_ROOT / "SOURCES.md").is_file()
    for name in BUNDLED_TU_DATASETS:
        assert (BUNDLED_ROOT / name / "raw" / "README.txt").is_file()


def test_default_root_follows_graphpool_data(tmp_path):
    assert default_root() == tmp_path / "data" / "TUDataset"


def test_second_load_reuses_the_processed_files(tmp_path):
    first = load_tu_dataset("MUTAG", tmp_path / "root")
    processed = tmp_path / "root" / "MUTAG" / "processed" / "data.pt"
    stamp = processed.stat().st_mtime_ns
    second = load_tu_dataset("MUTAG", tmp_path / "root")
    assert processed.stat().st_mtime_ns == stamp
    assert torch.equal(first.x, second.x)


def test_root_with_incomplete_raw_folder_says_what_is_missing_and_where(tmp_path):
    raw = raw_copy(tmp_path)
    (raw / "MUTAG_graph_labels.txt").unlink()
    (raw / "MUTAG_node_labels.txt").unlink()
    with pytest.raises(GraphpoolError, match=r"MUTAG_graph_labels\.txt, MUTAG_node_labels\.txt "
                                             rf"in {raw}") as err:
        load_tu_dataset("MUTAG", tmp_path / "root")
    assert "delete" in str(err.value)


def test_non_bundled_root_without_raw_files_says_what_is_missing(tmp_path):
    raw = tmp_path / "root" / "MINE" / "raw"
    raw.mkdir(parents=True)
    (raw / "MINE_A.txt").write_text("1, 2\n2, 1\n")
    with pytest.raises(GraphpoolError, match=rf"MINE_graph_indicator\.txt in {raw}"):
        load_tu_dataset("MINE", tmp_path / "root")


def _drop_last_line(path):
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))


def _add_line(path):
    path.write_text(path.read_text() + "1\n")


# corruption, file it hits, the message it must give
CORRUPTIONS = [
    (lambda raw: _drop_last_line(raw / "MUTAG_node_labels.txt"),
     r"MUTAG_node_labels\.txt': expected 3371 lines \(one per node\), got 3370 lines"),
    (lambda raw: _drop_last_line(raw / "MUTAG_edge_labels.txt"),
     r"MUTAG_edge_labels\.txt': expected 7442 lines \(one per edge\), got 7441 lines"),
    (lambda raw: _drop_last_line(raw / "MUTAG_A.txt"),
     r"MUTAG_edge_labels\.txt': expected 7441 lines \(one per edge\), got 7442 lines"),
    (lambda raw: _add_line(raw / "MUTAG_graph_labels.txt"),
     r"MUTAG_graph_labels\.txt': expected 188 lines \(one per graph\), got 189 lines"),
    (lambda raw: (raw / "MUTAG_graph_indicator.txt").write_text("1\n1\nx\n"),
     r"MUTAG_graph_indicator\.txt': expected comma-separated integers, got line 3: 'x'"),
    (lambda raw: _edit(raw / "MUTAG_graph_indicator.txt", 0, "0"),
     r"MUTAG_graph_indicator\.txt': expected graph ids from 1, got 0 on line 1"),
    (lambda raw: _swap_ends(raw / "MUTAG_graph_indicator.txt"),  # its last line is 1 now
     r"MUTAG_graph_indicator\.txt': expected non-decreasing graph ids.*got 1 after 188 on "
     r"line 2"),
    (lambda raw: _edit(raw / "MUTAG_A.txt", 4, "99999, 2"),
     r"MUTAG_A\.txt': expected node ids in \[1, 3371\].*got \[99999, 2\] on line 5"),
    (lambda raw: _edit(raw / "MUTAG_A.txt", 0, "x, 2"),
     r"MUTAG_A\.txt': expected comma-separated integers, got line 1: 'x, 2'"),
    (lambda raw: _edit(raw / "MUTAG_A.txt", 2, "1"),
     r"MUTAG_A\.txt': expected 2 values per line, as on line 1, got line 3: '1'"),
    (lambda raw: _edit(raw / "MUTAG_graph_labels.txt", 1, "# a note"),  # PyG reads comments
     r"MUTAG_graph_labels\.txt': expected comma-separated integers, got line 2: '# a note'"),
    (lambda raw: _edit(raw / "MUTAG_graph_labels.txt", 1, ""),
     r"MUTAG_graph_labels\.txt': expected comma-separated integers on every line, got line "
     r"2: ''"),
    (lambda raw: (raw / "MUTAG_graph_labels.txt").write_text(
        (raw / "MUTAG_graph_labels.txt").read_text().rstrip("\n")),  # PyG drops that line
     r"MUTAG_graph_labels\.txt': expected a newline after the last line.*got line 188"),
    (lambda raw: _edit(raw / "MUTAG_node_labels.txt", 3, "a"),
     r"MUTAG_node_labels\.txt': expected comma-separated integers.*'a'"),
]


def _edit(path, line, text):
    lines = path.read_text().splitlines()
    lines[line] = text
    path.write_text("\n".join(lines) + "\n")


def _swap_ends(path):
    lines = path.read_text().splitlines()
    lines[0], lines[-1] = lines[-1], lines[0]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("corrupt,message", CORRUPTIONS)
def test_corrupt_raw_files_give_a_clear_error(tmp_path, corrupt, message):
    raw = raw_copy(tmp_path)
    corrupt(raw)
    with pytest.raises(GraphpoolError, match=message) as err:
        load_tu_dataset("MUTAG", tmp_path / "root")
    assert str(raw) in str(err.value)
    assert not (tmp_path / "root" / "MUTAG" / "processed").exists()


def test_non_bundled_name_with_local_raw_files_goes_through_tudataset(tmp_path):
    raw_copy(tmp_path, "MUTAG", prefix="MYMOLS")
    ds = load_tu_dataset("MYMOLS", tmp_path / "root")
    assert len(ds) == 188 and repr(ds) == "MYMOLS(188)"


def test_non_bundled_name_whose_download_fails_lists_the_bundled_choices(tmp_path):
    with pytest.raises(GraphpoolError, match=r"MUTAG, PROTEINS, NCI1, PTC_MR.*'DD', whose "
                                             r"download failed: network access attempted"):
        load_tu_dataset("DD", tmp_path / "root")


@pytest.mark.parametrize("name,fix", [("mutag", "'MUTAG'"), ("Proteins", "'PROTEINS'"),
                                      ("ptc_mr", "'PTC_MR'")])
def test_bundled_name_in_the_wrong_case_is_corrected(name, fix):
    with pytest.raises(GraphpoolError, match=rf"names are case-sensitive.*Fix: use {fix}"):
        load_tu_dataset(name)
