"""Draw the combined charts of docs/molecules.md from the JSON files `graphpool train` wrote.

Run from the repository root:  python docs/results/make_figures.py
No training; it reads the runs listed below and writes docs/results/paper.png and
docs/results/heldout.png. For NCI1 the paper chart uses the 10-fold, 100-epoch runs
(sum, and mean/max) when both are there, else the 3-fold, 50-epoch run.
"""
from pathlib import Path

from graphpool.apps.experiments.plots import plot_against_paper
from graphpool.apps.experiments.results import read_json

HERE = Path(__file__).parent
NCI1_LONG = ["nci1-paper-100ep-sum", "nci1-paper-100ep-mean-max"]
CHARTS = {
    "paper": ["mutag-paper", "proteins-paper",
              *(NCI1_LONG if all((HERE / r / "accuracy.json").is_file() for r in NCI1_LONG)
                else ["nci1-paper"])],
    "heldout": ["mutag-heldout", "proteins-heldout", "nci1-heldout"],
}

for protocol, runs in CHARTS.items():
    rows = [row for run in runs for row in read_json(HERE / run / "accuracy.json")]
    print("wrote", plot_against_paper(rows, HERE / f"{protocol}.png"))
