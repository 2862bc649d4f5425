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
from typing import List, Optional, Sequence

from ._args import (add_progress_flags, comma_list, finite_positive_float, fraction, integer,
                    name_in, positive_int, writable_dir)

__all__ = ["add_parser", "add_train_arguments", "train", "report"]


# sklearn's random_state (the folds and inner splits) takes seeds below 2**32, and the inner
# splits add the fold number: int32 leaves room.
MAX_SEED = 2 ** 31 - 1


def _datasets():
    from ...datasets import BUNDLED_TU_DATASETS

    return BUNDLED_TU_DATASETS


def _readouts():
    from ...readouts import READOUTS

    return list(READOUTS)


def _readout_name(text: str) -> Optional[str]:
    """A readout name as the one resolver reads it (``"add"`` becomes ``"sum"``), or
    ``None``."""
    from ...readouts import readout_key

    return readout_key(text)


_dataset = name_in("dataset", _datasets)
_readout = name_in("readout", _readouts, _readout_name)
_aggr = name_in("readout", lambda: ["same", *_readouts()],
                lambda text: "same" if text == "same" else _readout_name(text))


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
    from ...datasets import BUNDLED_TU_DATASETS
    from ..experiments.protocols import PROTOCOLS

    add = parser.add_argument
    add("--dataset", type=comma_list(_dataset), default=["MUTAG"],
        help=f"comma-separated, from {', '.join(BUNDLED_TU_DATASETS)} (default: MUTAG)")
    add("--readout", type=comma_list(_readout), default=["sum", "mean", "max"],
        help="comma-separated graph readouts (default: sum,mean,max)")
    add("--protocol", choices=PROTOCOLS, default="paper",
        help="paper: epoch and setting chosen on the fold-averaged test curve (the GIN "
             "paper's, optimistic); heldout: chosen per fold on an inner validation split")
    add("--folds", type=integer(2), default=10, help="outer folds, >= 2 (default: 10)")
    add("--max-folds", type=positive_int, default=None,
        help="run only the first N folds, to save time (default: all)")
    add("--epochs", type=positive_int, default=350, help="epochs (default: 350, the paper's)")
    add("--iters-per-epoch", type=positive_int, default=None,
        help="batches per epoch drawn at random, as the paper's code (50); default: one "
             "shuffled pass over the training graphs")
    add("--hidden", type=comma_list(positive_int), default=[32],
        help="hidden width(s), comma-separated; a list is a grid (paper: 16,32)")
    add("--batch-size", type=comma_list(positive_int), default=[32],
        help="batch size(s), comma-separated (paper: 32,128)")
    add("--dropout", type=comma_list(fraction(zero=True)), default=[0.5],
        help="dropout(s), comma-separated (paper: 0,0.5)")
    add("--lr", type=finite_positive_float, default=0.01,
        help="Adam learning rate, finite and > 0, halved every 50 epochs (default: 0.01)")
    add("--model", choices=("gin0", "gin-eps"), default="gin0",
        help="GIN-0 (epsilon = 0) or GIN-eps (learned epsilon)")
    add("--aggr", type=_aggr, default="sum",
        help="neighbourhood aggregation: a readout name, or 'same' as the graph readout "
             "(default: sum, which is GIN)")
    add("--val-fraction", type=fraction(zero=False), default=0.1,
        help="share of each training split held out for validation (heldout protocol)")
    add("--seed", type=integer(0, MAX_SEED), default=0,
        help="seeds the folds and every run, >= 0 (default: 0)")
    add("--threads", type=positive_int, default=1,
        help="torch CPU threads (default: 1; these small graphs gain nothing from more, and "
             "threads contending with other processes slow it down many times)")
    add("--data-root", type=writable_dir, default=None,
        help="root for TUDataset (default: $GRAPHPOOL_DATA/TUDataset or "
             "~/.cache/graphpool/TUDataset)")
    add_progress_flags(parser)


# Namespace entries that are not settings of the run (the parser's own, where files go).
_NOT_SETTINGS = ("command", "run", "check")
_NOT_IN_COMMAND = (*_NOT_SETTINGS, "no_progress", "no_plot", "data_root", "out")


def _class_sizes(dataset: str) -> List[int]:
    """Graphs per class of a bundled dataset, read from its label file (no loading)."""
    from collections import Counter

    from ...datasets.tu import BUNDLED_ROOT

    labels = (BUNDLED_ROOT / dataset / "raw" / f"{dataset}_graph_labels.txt").read_text()
    return sorted(Counter(labels.split()).values())


def check(args: argparse.Namespace) -> Optional[str]:
    """What is wrong with a combination of options (``None`` when nothing): run after
    parsing, before any work, by :func:`graphpool.apps.cli.main`, which reports it as a usage
    error. Each option alone was checked by its argparse type."""
    import math

    nproc = getattr(args, "nproc", 1)
    if nproc > min(args.batch_size):
        return (f"argument --nproc: expected at most the smallest --batch-size "
                f"({min(args.batch_size)}: each process takes its share of every global "
                f"batch), got {nproc}; use --nproc {min(args.batch_size)} or less")
    if args.max_folds is not None and args.max_folds > args.folds:
        return (f"argument --max-folds: expected at most --folds ({args.folds}), got "
                f"{args.max_folds}; use --max-folds {args.folds} or less, or raise --folds")
    for dataset in args.dataset:
        sizes = _class_sizes(dataset)
        if args.folds > sizes[0]:
            return (f"argument --folds: expected at most {sizes[0]} for {dataset} (each "
                    f"stratified fold needs a graph of every class, and its smallest class "
                    f"has {sizes[0]}), got {args.folds}; use --folds {sizes[0]} or less")
        if args.protocol == "heldout":
            train = sum(sizes) - math.ceil(sum(sizes) / args.folds)
            val = math.ceil(args.val_fraction * train)
            if not len(sizes) <= val <= train - len(sizes):
                return (f"argument --val-fraction: expected a share that holds out at least "
                        f"one graph per class ({len(sizes)}) of the {train} training graphs "
                        f"of {dataset} and keeps as many, got {args.val_fraction:g} "
                        f"({val} graphs); use e.g. --val-fraction 0.1")
    from ...readouts import resolve_readout

    for name in (args.readout if args.aggr == "same" else [args.aggr]):
        module = resolve_readout(name, in_channels=8)
        if module.out_features(8) != 8:
            option = "--aggr" + (" same (each --readout)" if args.aggr == "same" else "")
            return (f"argument {option}: expected a width-preserving neighbourhood "
                    f"aggregation (GIN adds it to each node's own features), got {name!r} "
                    f"(8 -> {module.out_features(8)} features); use e.g. --aggr sum")
    return None


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

    from ... import __version__
    from ..experiments.config import config_grid

    torch.set_num_threads(args.threads)
    configs = config_grid(args.hidden, args.batch_size, args.dropout, epochs=args.epochs,
                          lr=args.lr, train_eps=args.model == "gin-eps", aggr=args.aggr,
                          iters_per_epoch=args.iters_per_epoch)
    folds_run = args.max_folds or args.folds
    print(f"GIN ({args.model}, aggr={args.aggr}) on {', '.join(args.dataset)}; readouts "
          f"{', '.join(args.readout)}; protocol '{args.protocol}'; {folds_run} of "
          f"{args.folds} folds; {args.epochs} epochs; {len(configs)} setting(s); seed {args.seed}")
    start, cpu_start = time.perf_counter(), time.process_time()
    children_start = os.times().children_user + os.times().children_system
    nproc = getattr(args, "nproc", 1)
    if nproc == 1:
        rows = _experiments(args, configs, progress=not args.no_progress)
    else:
        print(f"data-parallel: {nproc} processes (DistributedDataParallel, gloo), global "
              f"batch size {', '.join(map(str, args.batch_size))}")
        rows = _data_parallel(args, configs)
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    if nproc > 1:  # the processes' CPU time too (they have been joined)
        cpu += os.times().children_user + os.times().children_system - children_start
    settings = {k: v for k, v in vars(args).items() if k not in (*_NOT_SETTINGS, "data_root")}
    metadata = {"command": command_line(args), "settings": settings,
                "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
                "torch_threads": torch.get_num_threads(),
                "cpu_count": os.cpu_count(), "machine": platform.machine(),
                "versions": {"graphpool": __version__, "torch": torch.__version__,
                             "torch_geometric": torch_geometric.__version__}}
    report(rows, Path(args.out), metadata, plot=not args.no_plot)
    print(f"wall time {wall:.0f} s, CPU time {metadata['cpu_s']:.0f} s, "
          f"{torch.get_num_threads()} torch thread(s)")
    return 0


def _experiments(args: argparse.Namespace, configs: list, progress: bool) -> list:
    from ..experiments.runner import run_experiments

    return run_experiments(args.dataset, args.readout, configs, protocol=args.protocol,
                           folds=args.folds, max_folds=args.max_folds, seed=args.seed,
                           val_fraction=args.val_fraction, data_root=args.data_root,
                           progress=progress)


#: Seconds a collective may wait for another process before the run fails (instead of
#: hanging when one process dies).
DDP_TIMEOUT_S = 600


def _rank_main(rank: int, args: argparse.Namespace, configs: list, port: int,
               result: str) -> None:
    """One process of ``--nproc``: join the gloo group and run the experiments; rank 0
    writes the result rows to ``result``."""
    import datetime
    import pickle

    import torch
    import torch.distributed as dist

    torch.set_num_threads(args.threads)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=args.nproc,
                            timeout=datetime.timedelta(seconds=DDP_TIMEOUT_S))
    try:
        rows = _experiments(args, configs, progress=not args.no_progress and rank == 0)
        if rank == 0:
            Path(result).write_bytes(pickle.dumps(rows))
    finally:
        dist.destroy_process_group()


def _data_parallel(args: argparse.Namespace, configs: list) -> list:
    """Run the experiments in ``args.nproc`` spawned processes on 127.0.0.1 (one
    DistributedDataParallel group); the rows of rank 0."""
    import pickle
    import socket
    import tempfile

    import torch.multiprocessing as mp

    from ...datasets import load_tu_dataset

    for dataset in args.dataset:  # processed once here, not by every process at once
        load_tu_dataset(dataset, args.data_root)
    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        result = str(Path(tmp) / "rows.pickle")
        mp.start_processes(_rank_main, args=(args, configs, port, result), nprocs=args.nproc,
                           start_method="spawn")
        return pickle.loads(Path(result).read_bytes())


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="10-fold CV of a GIN with each readout on TU molecules, vs the GIN paper",
        description="Cross-validate a GIN on bundled TU molecules, one row per readout. Prints "
        "a readout x dataset table of test accuracy (mean ± std over folds) next to the GIN "
        "paper's and writes accuracy.csv, accuracy.json and accuracy.png to --out.")
    add_train_arguments(parser)
    parser.add_argument("--out", type=writable_dir, default="graphpool-results",
                        help="folder for accuracy.csv/.json/.png, checked for writing before "
                             "training starts (default: graphpool-results)")
    parser.add_argument("--no-plot", action="store_true", help="skip the bar chart")
    parser.add_argument("--nproc", type=integer(1, 64), default=1,
                        help="train data-parallel in N processes on this machine "
                             "(DistributedDataParallel over gloo, a DistributedSampler; "
                             "--batch-size stays the global batch size; default: 1)")
    parser.set_defaults(run=train, check=check)
