r"""A families x readouts table of results: printed, turned into JSON, drawn as a heatmap."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import GraphpoolError

__all__ = ["Matrix", "plot_matrices"]


@dataclass(frozen=True)
class Matrix:
    r"""Results of one measurement, one row per input (a pair or a task), one column per
    readout.

    Args:
        title: what was measured.
        kind: ``"separates"`` (``values`` are bools: do the two inputs read out
            differently?) or ``"accuracy"`` (``values`` are mean held-out accuracies in
            :math:`[0, 1]` and ``spread`` their standard deviations over seeds).
        rows, columns: labels.
        values: ``values[i][j]`` for row ``i`` and column ``j``.
        spread: standard deviations, for ``"accuracy"``.
        chance: per-row chance accuracy, for ``"accuracy"``; the heatmap colours
            :math:`(a - \text{chance}) / (1 - \text{chance})` so that chance is red
            whatever the number of classes.

    Example:
        >>> m = Matrix("exact", "separates", ("p",), ("sum", "mean"), ((True, False),))
        >>> print(m.format())
        exact
           sum   mean
        p  yes   no
        >>> m.value("p", "mean")
        False
    """

    title: str
    kind: str
    rows: Tuple[str, ...]
    columns: Tuple[str, ...]
    values: Tuple[Tuple[Any, ...], ...]
    spread: Optional[Tuple[Tuple[float, ...], ...]] = None
    chance: Optional[Tuple[float, ...]] = None

    def value(self, row: str, column: str) -> Any:
        """The cell of ``row`` and ``column`` (by label)."""
        return self.values[self.rows.index(row)][self.columns.index(column)]

    def cell_text(self, i: int, j: int) -> str:
        """Cell ``(i, j)`` as printed: ``yes``/``no``, or ``accuracy±std``."""
        if self.kind == "separates":
            return "yes" if self.values[i][j] else "no"
        std = f"±{self.spread[i][j]:.2f}" if self.spread is not None else ""
        return f"{self.values[i][j]:.2f}{std}"

    def format(self) -> str:
        """The table as aligned text, title first."""
        cells = [[self.cell_text(i, j) for j in range(len(self.columns))]
                 for i in range(len(self.rows))]
        label = max([len(r) for r in self.rows] + [0])
        width = max([len(c) for c in self.columns] + [len(t) for row in cells for t in row])
        lines = [self.title, " " * label + "".join(f"  {c:<{width}}" for c in self.columns)]
        for row, texts in zip(self.rows, cells):
            lines.append(f"{row:<{label}}" + "".join(f"  {t:<{width}}" for t in texts))
        return "\n".join(line.rstrip() for line in lines)

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict with the fields of the matrix.

        Example:
            >>> Matrix("t", "separates", ("p",), ("sum",), ((True,),)).to_dict()["values"]
            [[True]]
        """
        out = {"title": self.title, "kind": self.kind, "rows": list(self.rows),
               "columns": list(self.columns), "values": [list(r) for r in self.values]}
        if self.spread is not None:
            out["spread"] = [list(r) for r in self.spread]
        if self.chance is not None:
            out["chance"] = list(self.chance)
        return out

    def colour_values(self) -> List[List[float]]:
        """Cells on the heatmap's ``[0, 1]`` scale: separates = 1; accuracy above chance.

        Example:
            >>> Matrix("t", "accuracy", ("r",), ("sum", "mean"), ((1.0, 0.5),),
            ...        chance=(0.5,)).colour_values()
            [[1.0, 0.0]]
        """
        floors = self.chance or (0.0,) * len(self.rows)
        return [[min(1.0, max(0.0, (float(v) - c) / (1.0 - c))) for v in row]
                for row, c in zip(self.values, floors)]


def plot_matrices(matrices: Sequence[Matrix], path: str) -> None:
    r"""Draw each matrix as an annotated heatmap (green = separates / accurate, red =
    collides / chance; see :meth:`Matrix.colour_values`) and save
    the figure to ``path`` (PNG, PDF, SVG: by extension). Needs matplotlib
    (``pip install graphpool[plot]``); pyplot is not used, so no display is needed.

    Example:
        >>> import os, tempfile
        >>> m = Matrix("exact", "separates", ("p",), ("sum", "mean"), ((True, False),))
        >>> path = os.path.join(tempfile.mkdtemp(), "m.png")
        >>> plot_matrices([m], path); os.path.getsize(path) > 0
        True
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise GraphpoolError("plot_matrices", "path", "matplotlib to be installed to draw "
                             "a plot", repr(path), "pip install 'graphpool[plot]', or drop "
                             "--plot") from None
    heights = [len(m.rows) + 2 for m in matrices]
    figure = Figure(figsize=(2 + 1.1 * max(len(m.columns) for m in matrices),
                             0.42 * sum(heights)), layout="constrained")
    axes = figure.subplots(len(matrices), 1, squeeze=False,
                           gridspec_kw={"height_ratios": heights})[:, 0]
    for ax, m in zip(axes, matrices):
        grid = m.colour_values()
        ax.imshow(grid, cmap="RdYlGn", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(m.columns)), m.columns)
        ax.set_yticks(range(len(m.rows)), m.rows)
        ax.xaxis.tick_top()
        ax.set_title(m.title, fontsize=10)
        for i in range(len(m.rows)):
            for j in range(len(m.columns)):
                dark = not 0.15 < grid[i][j] < 0.85
                ax.text(j, i, m.cell_text(i, j), ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")
    figure.savefig(path, dpi=150)
