"""Result rows of the molecule experiments, the paper's numbers, and their table/CSV/JSON forms."""
from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple, Union

if TYPE_CHECKING:  # pragma: no cover
    from .protocols import CVResult

__all__ = ["PAPER_ACCURACY", "ResultRow", "CSV_COLUMNS", "format_table", "write_csv",
           "write_json", "read_json"]

#: Test accuracy (%) of Xu et al., "How Powerful are Graph Neural Networks?" (ICLR 2019),
#: Table 1, as ``(mean, std)``; ``std`` is ``None`` where the issue quotes only the mean.
#: The paper's MEAN-MLP and MAX-MLP rows replace the *neighbourhood* sum of GIN-0 by a mean
#: or a max; its graph readout on these datasets is a sum.
PAPER_ACCURACY: Dict[str, Dict[str, Tuple[float, Optional[float]]]] = {
    "MUTAG": {"sum": (89.4, 5.6), "mean": (83.5, None), "max": (84.0, None)},
    "PROTEINS": {"sum": (76.2, 2.8), "mean": (75.5, None), "max": (76.0, None)},
    "NCI1": {"sum": (82.7, 1.7), "mean": (80.9, None), "max": (77.8, None)},
}

CSV_COLUMNS = ("dataset", "readout", "protocol", "accuracy_mean", "accuracy_std", "folds",
               "folds_run", "epochs", "selected_epoch", "selected_config", "fold_accuracies",
               "paper_mean", "paper_std", "wall_s")


@dataclass
class ResultRow:
    """One cell of the results table: a readout on a dataset under a protocol.

    Accuracies are in %, over the folds that ran; ``selected_epoch`` and
    ``selected_config`` list the choice of every fold (1-based epochs).

    Example:
        >>> row = ResultRow("MUTAG", "sum", "paper", 88.0, 5.0, 10, 10, 350, [40] * 10,
        ...                 ["hidden=32 batch=32 dropout=0.5"] * 10, [88.0] * 10, 12.5)
        >>> row.paper
        (89.4, 5.6)
    """

    dataset: str
    readout: str
    protocol: str
    accuracy_mean: float
    accuracy_std: float
    folds: int
    folds_run: int
    epochs: int
    selected_epoch: List[int]
    selected_config: List[str]
    fold_accuracies: List[float]
    wall_s: float

    @classmethod
    def from_result(cls, dataset: str, readout: str, result: "CVResult", folds: int) -> "ResultRow":
        """The row of one :func:`~graphpool.apps.experiments.protocols.cross_validate` result."""
        return cls(dataset, readout, result.protocol, result.mean, result.std, folds,
                   len(result.fold_accuracy), result.selected_config[0].epochs,
                   result.selected_epoch, [c.label() for c in result.selected_config],
                   result.fold_accuracy, result.wall_s)

    @property
    def paper(self) -> Tuple[Optional[float], Optional[float]]:
        """The paper's ``(mean, std)`` for this readout and dataset, or ``(None, None)``."""
        return PAPER_ACCURACY.get(self.dataset, {}).get(self.readout, (None, None))

    def csv_record(self) -> Dict[str, Any]:
        """The row as the CSV columns (lists joined with ``;``)."""
        record = asdict(self)
        record["accuracy_mean"] = round(self.accuracy_mean, 2)
        record["accuracy_std"] = round(self.accuracy_std, 2)
        record["wall_s"] = round(self.wall_s, 1)
        record["selected_epoch"] = ";".join(map(str, self.selected_epoch))
        record["selected_config"] = ";".join(dict.fromkeys(self.selected_config))
        record["fold_accuracies"] = ";".join(f"{a:.2f}" for a in self.fold_accuracies)
        record["paper_mean"], record["paper_std"] = ("" if v is None else v for v in self.paper)
        return {column: record[column] for column in CSV_COLUMNS}


def _cell(mean: Optional[float], std: Optional[float]) -> str:
    if mean is None:
        return "-"
    return f"{mean:.1f}" if std is None else f"{mean:.1f} ± {std:.1f}"


def format_table(rows: Sequence[ResultRow]) -> str:
    """``readout x dataset`` tables of ``mean ± std`` test accuracy (%), then the paper's.

    Example:
        >>> row = ResultRow("MUTAG", "sum", "paper", 88.04, 5.01, 10, 10, 350, [40] * 10,
        ...                 ["hidden=32 batch=32 dropout=0.5"] * 10, [88.0] * 10, 12.5)
        >>> print(format_table([row]))
        test accuracy %, protocol 'paper', 10-fold CV (10 folds run, 350 epochs)
        readout  MUTAG
        sum      88.0 ± 5.0
        <BLANKLINE>
        Xu et al. (ICLR 2019), Table 1
        readout  MUTAG
        sum      89.4 ± 5.6
    """
    datasets = list(dict.fromkeys(r.dataset for r in rows))
    readouts = list(dict.fromkeys(r.readout for r in rows))
    cells = {(r.readout, r.dataset): r for r in rows}

    def table(cell) -> List[str]:
        grid = [["readout", *datasets]] + [[name, *(cell(name, d) for d in datasets)]
                                           for name in readouts]
        widths = [max(len(line[i]) for line in grid) for i in range(len(grid[0]))]
        return ["  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in grid]

    first = rows[0]
    title = (f"test accuracy %, protocol '{first.protocol}', {first.folds}-fold CV "
             f"({first.folds_run} folds run, {first.epochs} epochs)")
    ours = table(lambda n, d: _cell(cells[n, d].accuracy_mean, cells[n, d].accuracy_std)
                 if (n, d) in cells else "-")
    paper = table(lambda n, d: _cell(*PAPER_ACCURACY.get(d, {}).get(n, (None, None))))
    return "\n".join([title, *ours, "", "Xu et al. (ICLR 2019), Table 1", *paper])


def write_csv(rows: Sequence[ResultRow], path: Union[str, Path]) -> Path:
    """Write one line per row with :data:`CSV_COLUMNS`; returns the path.

    Example:
        >>> import csv, tempfile, pathlib
        >>> row = ResultRow("MUTAG", "max", "heldout", 85.0, 7.0, 10, 2, 50, [9, 12],
        ...                 ["hidden=32 batch=32 dropout=0.5"] * 2, [80.0, 90.0], 3.0)
        >>> path = write_csv([row], pathlib.Path(tempfile.mkdtemp()) / "acc.csv")
        >>> next(csv.DictReader(open(path)))["fold_accuracies"]
        '80.00;90.00'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(row.csv_record() for row in rows)
    return path


def write_json(rows: Sequence[ResultRow], path: Union[str, Path],
               metadata: Optional[Dict[str, Any]] = None) -> Path:
    """Write ``{**metadata, "results": [rows with the paper's numbers]}``; returns the path.

    Example:
        >>> import json, tempfile, pathlib
        >>> row = ResultRow("NCI1", "mean", "paper", 80.0, 2.0, 10, 10, 350, [100] * 10,
        ...                 ["hidden=32 batch=32 dropout=0.5"] * 10, [80.0] * 10, 60.0)
        >>> path = write_json([row], pathlib.Path(tempfile.mkdtemp()) / "acc.json",
        ...                   {"command": "graphpool train --dataset NCI1"})
        >>> json.load(open(path))["results"][0]["paper_mean"]
        80.9
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    results = [{**asdict(r), "paper_mean": r.paper[0], "paper_std": r.paper[1]} for r in rows]
    path.write_text(json.dumps({**(metadata or {}), "results": results}, indent=2) + "\n")
    return path


def read_json(path: Union[str, Path]) -> List[ResultRow]:
    """The rows of a file written by :func:`write_json` (to re-plot or combine results).

    Example:
        >>> import tempfile, pathlib
        >>> row = ResultRow("MUTAG", "sum", "heldout", 85.0, 7.0, 10, 2, 50, [9, 12],
        ...                 ["hidden=32 batch=32 dropout=0.5"] * 2, [80.0, 90.0], 3.0)
        >>> path = write_json([row], pathlib.Path(tempfile.mkdtemp()) / "acc.json")
        >>> read_json(path) == [row]
        True
    """
    names = set(ResultRow.__dataclass_fields__)
    results = json.loads(Path(path).read_text())["results"]
    return [ResultRow(**{k: v for k, v in r.items() if k in names}) for r in results]
