"""Deploy graphpool models with ONNX: a GIN molecule classifier and a small CNN with
``GlobalPool2d``, exported by the plain ``torch.onnx.export(..., dynamo=True)`` and run in
onnxruntime on held-out data (offline).

1. A GIN (max readout) learns MUTAG (bundled with graphpool) for a few epochs; it is
   exported with dynamic numbers of nodes, edges and graphs, and onnxruntime classifies
   the held-out molecules in batches of sizes the export never saw.
2. A CNN (conv -> conv -> ``GlobalPool2d("catavgmax")`` -> linear) learns scikit-learn's
   8 x 8 digits; it is exported with dynamic batch size and image size, and onnxruntime
   classifies the held-out digits (and the same digits upscaled to 12 x 12).

For both the script prints the largest difference between onnxruntime's and PyTorch's
logits, and the accuracy of each.

Run:  python examples/export_onnx.py [--out DIR] [--epochs N]
(about half a minute on two CPU cores).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch import nn
from torch_geometric.loader import DataLoader

from graphpool.apps.models import GIN
from graphpool.datasets import load_tu_dataset
from graphpool.export import max_difference, run_onnx
from graphpool.grid import GlobalPool2d

DYNAMIC = torch.export.Dim.DYNAMIC


def export(model: nn.Module, args: tuple, dynamic_shapes: tuple, path: Path):
    """The user's call: plain ``torch.onnx.export`` (its progress lines muted), saved."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model.eval(), args, dynamic_shapes=dynamic_shapes,
                                    dynamo=True)
    program.save(str(path))
    return program


def train(model: nn.Module, batches, step, epochs: int) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    for _ in range(epochs):
        for batch in batches:
            optimizer.zero_grad()
            step(model, batch).backward()
            optimizer.step()
    model.eval()


def molecules(out: Path, epochs: int, root: str) -> dict:
    torch.manual_seed(0)
    dataset = load_tu_dataset("MUTAG", root).shuffle()
    train_set, held_out = dataset[:150], dataset[150:]
    model = GIN(dataset.num_features, dataset.num_classes, hidden_channels=32, num_layers=4,
                readout="max", dropout=0.0)
    train(model, DataLoader(train_set, batch_size=32, shuffle=True),
          lambda m, b: nn.functional.cross_entropy(m(b.x, b.edge_index, b.batch), b.y), epochs)
    first = next(iter(DataLoader(train_set, batch_size=8)))
    program = export(model, (first.x, first.edge_index, first.batch),
                     ({0: DYNAMIC}, {1: DYNAMIC}, {0: DYNAMIC}), out / "gin_mutag.onnx")
    worst, correct, total = 0.0, 0, 0
    for batch in DataLoader(held_out, batch_size=13):   # 13, 13, 12: sizes never exported
        got = run_onnx(program, batch.x, batch.edge_index, batch.batch)[0]
        with torch.no_grad():
            want = model(batch.x, batch.edge_index, batch.batch)
        worst = max(worst, max_difference([got], [want]))
        correct += int((got.argmax(-1) == batch.y).sum())
        total += batch.num_graphs
    print(f"GIN on MUTAG: max |onnxruntime - PyTorch| = {worst:.3g} over {total} held-out "
          f"molecules; onnxruntime accuracy {correct / total:.3f}")
    return {"gin_max_difference": worst, "gin_accuracy": correct / total}


class DigitCNN(nn.Module):
    """conv(1->16) -> conv(16->32), ReLUs, ``GlobalPool2d("catavgmax")``, linear."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(16, 32, 3, padding=1), nn.ReLU())
        self.pool = GlobalPool2d("catavgmax")
        self.head = nn.Linear(32 * self.pool.feat_mult(), classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(images)))


def digits(out: Path, epochs: int) -> dict:
    from sklearn.datasets import load_digits

    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(data.target)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    train_idx, test_idx = order[:1400], order[1400:]
    torch.manual_seed(0)
    model = DigitCNN()
    batches = [(images[i], labels[i]) for i in train_idx.split(64)]
    train(model, batches, lambda m, b: nn.functional.cross_entropy(m(b[0]), b[1]), epochs)
    program = export(model, (images[:4],), ({0: DYNAMIC, 2: DYNAMIC, 3: DYNAMIC},),
                     out / "cnn_digits.onnx")
    test = images[test_idx]
    bigger = nn.functional.interpolate(test, size=(12, 12), mode="bilinear")
    result = {}
    for name, batch in (("8x8", test), ("12x12", bigger)):
        got = run_onnx(program, batch)[0]
        with torch.no_grad():
            want = model(batch)
        worst = max_difference([got], [want])
        accuracy = float((got.argmax(-1) == labels[test_idx]).float().mean())
        print(f"CNN on {len(test_idx)} held-out {name} digits: max |onnxruntime - PyTorch| = "
              f"{worst:.3g}; onnxruntime accuracy {accuracy:.3f}")
        result[f"cnn_{name}_max_difference"], result[f"cnn_{name}_accuracy"] = worst, accuracy
    return result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None, help="folder for the .onnx files "
                        "(default: a temporary one)")
    parser.add_argument("--epochs", type=int, default=5, help="training epochs of each model")
    parser.add_argument("--data-root", default=None, help="where MUTAG is unpacked")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        result = {**molecules(out, args.epochs, args.data_root or str(Path(tmp) / "data")),
                  **digits(out, args.epochs)}
        result["files"] = sorted(p.name for p in out.glob("*.onnx"))
    print(f"done in {time.perf_counter() - start:.0f} s")
    return result


if __name__ == "__main__":
    main()
