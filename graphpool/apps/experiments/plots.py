"""Bar chart of the cross-validated accuracies against the GIN paper's (matplotlib, optional)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence, Union

from .results import ResultRow

__all__ = ["plot_against_paper"]


def _pyplot():
    try:
        import matplotlib
    except ImportError as err:
        raise ImportError("the bar chart needs matplotlib: pip install 'graphpool[plot]' "
                          "(or pass --no-plot)") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_against_paper(rows: Sequence[ResultRow], path: Union[str, Path]) -> Path:
    """Save grouped bars, one group per dataset: each readout's mean test accuracy with its
    std over folds as error bar, next to the paper's number (hatched; error bar where known).

    Raises:
        ImportError: matplotlib is not installed.

    Example:
        >>> import tempfile, pathlib
        >>> row = ResultRow("MUTAG", "sum", "paper", 88.0, 5.0, 10, 10, 350, [40] * 10,
        ...                 ["hidden=32 batch=32 dropout=0.5"] * 10, [88.0] * 10, 12.5)
        >>> plot_against_paper([row], pathlib.Path(tempfile.mkdtemp()) / "acc.png").suffix
        '.png'
    """
    plt = _pyplot()
    datasets = list(dict.fromkeys(r.dataset for r in rows))
    readouts = list(dict.fromkeys(r.readout for r in rows))
    cells = {(r.readout, r.dataset): r for r in rows}
    width = 0.8 / (2 * len(readouts))
    colors = plt.get_cmap("tab10").colors
    fig, ax = plt.subplots(figsize=(3.6 + 1.8 * len(datasets), 3.6), dpi=120)
    for i, name in enumerate(readouts):
        color = colors[i % len(colors)]
        for d, dataset in enumerate(datasets):
            row = cells.get((name, dataset))
            left = d - 0.4 + 2 * i * width + width / 2
            if row is not None:
                ax.bar(left, row.accuracy_mean, width, yerr=row.accuracy_std, capsize=2,
                       color=color, label=f"{name} (ours)" if d == 0 else None)
            paper_mean, paper_std = (row.paper if row is not None else (None, None))
            if paper_mean is not None:
                ax.bar(left + width, paper_mean, width, yerr=paper_std, capsize=2,
                       color="white", edgecolor=color, hatch="///",
                       label=f"{name} (paper)" if d == 0 else None)
    runs = {r.dataset: f"{r.dataset}\n{r.folds_run} of {r.folds} folds, {r.epochs} epochs"
            for r in rows}
    ax.set_xticks(range(len(datasets)), [runs[d] for d in datasets], fontsize=8)
    ax.set_ylabel("test accuracy %")
    ax.set_ylim(40, 100)
    ax.set_title(f"GIN, protocol '{rows[0].protocol}', mean ± std over folds, "
                 "vs Xu et al. 2019 (hatched)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
