"""Draw the combined charts of docs/molecules.md from the JSON files `graphpool train` wrote.

Run from the repository root:  python docs/results/make_figures.py
It reads docs/results/<dataset>-<protocol>/accuracy.json and writes
docs/results/paper.png and docs/results/heldout.png (no training, a few seconds).
"""
from pathlib import Path

from graphpool.experiments.plots import plot_against_paper
from graphpool.experiments.results import read_json

HERE = Path(__file__).parent

for protocol in ("paper", "heldout"):
    rows = [row for dataset in ("mutag", "proteins", "nci1")
            if (HERE / f"{dataset}-{protocol}" / "accuracy.json").is_file()
            for row in read_json(HERE / f"{dataset}-{protocol}" / "accuracy.json")]
    if rows:
        print("wrote", plot_against_paper(rows, HERE / f"{protocol}.png"))
