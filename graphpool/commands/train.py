"""``graphpool train``: cross-validate a GIN on bundled TU molecules, one row per readout.

Prints a ``readout x dataset`` table of test accuracy (mean ± std over folds) next to the GIN
paper's, and writes ``accuracy.csv``, ``accuracy.json`` and ``accuracy.png`` to ``--out``.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence

__all__ = ["add_parser", "add_train_arguments", "train", "report"]


def _listed(convert: Callable[[str], object]) -> Callable[[str], list]:
    def parse(text: str) -> list:
        values = [convert(item.strip()) for item in text.split(",") if item.strip()]
        if not values:
            raise argparse.ArgumentTypeError("expected a comma-separated list, got nothing")
        return values
    return parse


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value
    return parse


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def _share(text: str) -> float:
    value = _probability(text)
    if value == 0.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0.0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _dataset(text: str) -> str:
    from ..datasets import BUNDLED_TU_DATASETS

    if text not in BUNDLED_TU_DATASETS:
        raise argparse.ArgumentTypeError(
            f"unknown dataset {text!r}; choose from {', '.join(BUNDLED_TU_DATASETS)}")
    return text


def _readout(text: str) -> str:
    """A readout name, normalised to its key in ``READOUTS`` (``"add"`` becomes ``"sum"``)."""
    from ..errors import GraphpoolError
    from ..readouts import READOUTS, resolve_readout

    try:
        kind = type(resolve_readout(text))
    except GraphpoolError:
        raise argparse.ArgumentTypeError(
            f"unknown readout {text!r}; choose from {', '.join(READOUTS)}") from None
    return next(name for name, cls in READOUTS.items() if cls is kind)


def _aggr(text: str) -> str:
    return "same" if text == "same" else _readout(text)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``graphpool train`` (shared with ``examples/molecule_classification.py``).

    Example:
        >>> import argparse
        >>> parser = argparse.ArgumentParser()
        >>> add_train_arguments(parser)
        >>> args = parser.parse_args(["--dataset", "MUTAG,NCI1", "--readout", "add,max"])
        >>> args.dataset, args.readout, args.folds, args.protocol
        (['MUTAG', 'NCI1'], ['sum', 'max'], 10, 'paper')
    """
    from ..datasets import BUNDLED_TU_DATASETS
    from ..experiments.protocols import PROTOCOLS

    add = parser.add_argument
    add("--dataset", type=_listed(_dataset), default=["MUTAG"],
        help=f"comma-separated, from {', '.join(BUNDLED_TU_DATASETS)} (default: MUTAG)")
    add("--readout", type=_listed(_readout), default=["sum", "mean", "max"],
        help="comma-separated graph readouts (default: sum,mean,max)")
    add("--protocol", choices=PROTOCOLS, default="paper",
        help="paper: epoch and setting chosen on the fold-averaged test curve (the GIN "
             "paper's, optimistic); heldout: chosen per fold on an inner validation split")
    add("--folds", type=_at_least(2), default=10, help="outer folds, >= 2 (default: 10)")
    add("--max-folds", type=_at_least(1), default=None,
        help="run only the first N folds, to save time (default: all)")
    add("--epochs", type=_at_least(1), default=350, help="epochs (default: 350, the paper's)")
    add("--iters-per-epoch", type=_at_least(1), default=None,
        help="batches per epoch drawn at random, as the paper's code (50); default: one "
             "shuffled pass over the training graphs")
    add("--hidden", type=_listed(_at_least(1)), default=[32],
        help="hidden width(s), comma-separated; a list is a grid (paper: 16,32)")
    add("--batch-size", type=_listed(_at_least(1)), default=[32],
        help="batch size(s), comma-separated (paper: 32,128)")
    add("--dropout", type=_listed(_probability), default=[0.5],
        help="dropout(s), comma-separated (paper: 0,0.5)")
    add("--lr", type=_positive_float, default=0.01, help="Adam learning rate, halved every 50 "
        "epochs (default: 0.01)")
    add("--model", choices=("gin0", "gin-eps"), default="gin0",
        help="GIN-0 (epsilon = 0) or GIN-eps (learned epsilon)")
    add("--aggr", type=_aggr, default="sum",
        help="neighbourhood aggregation: a readout name, or 'same' as the graph readout "
             "(default: sum, which is GIN)")
    add("--val-fraction", type=_share, default=0.1,
        help="share of each training split held out for validation (heldout protocol)")
    add("--seed", type=int, default=0, help="seeds the folds and every run (default: 0)")
    add("--threads", type=_at_least(1), default=1,
        help="torch CPU threads (default: 1; these small graphs gain nothing from more, and "
             "threads contending with other processes slow it down many times)")
    add("--data-root", default=None,
        help="root for TUDataset (default: $GRAPHPOOL_DATA/TUDataset or "
             "~/.cache/graphpool/TUDataset)")
    add("--no-progress", action="store_true", help="no tqdm progress bars")


_NOT_IN_COMMAND = ("command", "run", "no_progress", "no_plot", "data_root", "out")


def command_line(args: argparse.Namespace) -> str:
    """The ``graphpool train`` command that reproduces ``args`` (every option spelled out).

    Example:
        >>> import argparse
        >>> parser = argparse.ArgumentParser()
        >>> add_train_arguments(parser)
        >>> args = parser.parse_args(["--readout", "max", "--epochs", "5"])
        >>> command_line(args).split(" --")[1:6]
        ['dataset MUTAG', 'readout max', 'protocol paper', 'folds 10', 'epochs 5']
    """
    words = ["graphpool", "train"]
    for key, value in vars(args).items():
        if key in _NOT_IN_COMMAND or value is None:
            continue
        value = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) \
            if isinstance(value, list) else f"{value:g}" if isinstance(value, float) else value
        words += [f"--{key.replace('_', '-')}", str(value)]
    return " ".join(words)


def report(rows: Sequence, out: Optional[Path] = None, metadata: Optional[dict] = None,
           plot: bool = True) -> List[Path]:
    """Print the results table; with ``out``, write ``accuracy.csv``/``.json`` (and the
    ``.png`` chart when ``plot`` and matplotlib is installed). Returns the files written."""
    from ..experiments.plots import plot_against_paper
    from ..experiments.results import format_table, write_csv, write_json

    print("\n" + format_table(rows))
    if out is None:
        return []
    files = [write_csv(rows, out / "accuracy.csv"), write_json(rows, out / "accuracy.json",
                                                                  metadata)]
    if plot:
        try:
            files.append(plot_against_paper(rows, out / "accuracy.png"))
        except ImportError as err:
            print(f"note: no chart written: {err}", file=sys.stderr)
    print("\nwrote " + ", ".join(str(f) for f in files))
    return files


def train(args: argparse.Namespace) -> int:
    """Run the experiment described by the parsed ``args`` and report it."""
    import torch
    import torch_geometric

    from .. import __version__
    from ..experiments.config import config_grid
    from ..experiments.runner import run_experiments

    if args.max_folds is not None and args.max_folds > args.folds:
        raise SystemExit(f"graphpool train: error: --max-folds {args.max_folds} is more than "
                         f"--folds {args.folds}; use at most {args.folds}")
    torch.set_num_threads(args.threads)
    configs = config_grid(args.hidden, args.batch_size, args.dropout, epochs=args.epochs,
                          lr=args.lr, train_eps=args.model == "gin-eps", aggr=args.aggr,
                          iters_per_epoch=args.iters_per_epoch)
    folds_run = args.max_folds or args.folds
    print(f"GIN ({args.model}, aggr={args.aggr}) on {', '.join(args.dataset)}; readouts "
          f"{', '.join(args.readout)}; protocol '{args.protocol}'; {folds_run} of "
          f"{args.folds} folds; {args.epochs} epochs; {len(configs)} setting(s); seed {args.seed}")
    start, cpu_start = time.perf_counter(), time.process_time()
    rows = run_experiments(args.dataset, args.readout, configs, protocol=args.protocol,
                           folds=args.folds, max_folds=args.max_folds, seed=args.seed,
                           val_fraction=args.val_fraction, data_root=args.data_root,
                           progress=not args.no_progress)
    wall = time.perf_counter() - start
    settings = {k: v for k, v in vars(args).items() if k not in ("command", "run", "data_root")}
    metadata = {"command": command_line(args), "settings": settings,
                "wall_s": round(wall, 1), "cpu_s": round(time.process_time() - cpu_start, 1),
                "torch_threads": torch.get_num_threads(),
                "cpu_count": os.cpu_count(), "machine": platform.machine(),
                "versions": {"graphpool": __version__, "torch": torch.__version__,
                             "torch_geometric": torch_geometric.__version__}}
    report(rows, Path(args.out), metadata, plot=not args.no_plot)
    print(f"wall time {wall:.0f} s, CPU time {metadata['cpu_s']:.0f} s, "
          f"{torch.get_num_threads()} torch thread(s)")
    return 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="10-fold CV of a GIN with each readout on TU molecules, vs the GIN paper",
        description="Cross-validate a GIN on bundled TU molecules, one row per readout. Prints "
        "a readout x dataset table of test accuracy (mean ± std over folds) next to the GIN "
        "paper's and writes accuracy.csv, accuracy.json and accuracy.png to --out.")
    add_train_arguments(parser)
    parser.add_argument("--out", default="graphpool-results",
                        help="folder for accuracy.csv/.json/.png (default: graphpool-results)")
    parser.add_argument("--no-plot", action="store_true", help="skip the bar chart")
    parser.set_defaults(run=train)
