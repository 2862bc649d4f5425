"""The example runs offline, and its CNN and graph-readout logits agree."""
import importlib.util
from pathlib import Path

import torch

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "cnn_gap_is_a_graph_readout.py"


def load_example():
    spec = importlib.util.spec_from_file_location("cnn_gap_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_runs_and_both_paths_give_the_same_logits(tmp_path, capsys):
    threads = torch.get_num_threads()
    result = load_example().main(["--out", str(tmp_path), "--epochs", "1", "--gnn-epochs", "1",
                                  "--limit", "240"])
    assert torch.get_num_threads() == threads
    torch.testing.assert_close(result["graph_logits"], result["cnn_logits"])
    assert 0.0 <= result["cnn_accuracy"] <= 1.0 and 0.0 <= result["gnn_accuracy"] <= 1.0
    assert [p.name for p in result["saved"]] == [f"cnn_cam_{i}.png" for i in range(4)] + \
        ["gnn_cam_0.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in result["saved"])
    printed = capsys.readouterr().out
    assert "max |CNN logits - graph readout logits|" in printed


def test_rgcn_relations_are_the_eight_directions():
    example = load_example()
    from graphpool.grid import image_to_batch

    batch = image_to_batch(torch.zeros(1, 1, 3, 3), connectivity=8)
    relation = example.direction(batch)
    centre = 4                                   # pixel (1, 1) of the 3 x 3 image
    into_centre = batch.edge_index[1] == centre
    assert sorted(relation[into_centre].tolist()) == list(range(8))
    assert relation.min() >= 0 and relation.max() <= 7
