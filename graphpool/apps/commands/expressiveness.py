"""``graphpool expressiveness``: what each readout can tell apart, on synthetic families."""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from typing import List, Optional

from ._args import comma_list, make_parent, name_in, plot_path, positive_int

__all__ = ["add_parser"]


def _families() -> List[str]:
    from graphpool.analysis.families import FAMILY_NAMES

    return list(FAMILY_NAMES)


def _readouts() -> List[str]:
    from graphpool.analysis.expressiveness import readout_names

    return list(readout_names())


def _readout_column(text: str) -> Optional[str]:
    """The column of a readout name (``"add"`` is ``sum``), or ``None`` if there is none."""
    from graphpool.analysis.expressiveness import resolve_readout_names
    from graphpool.errors import GraphpoolError

    try:
        return resolve_readout_names([text])[0]
    except GraphpoolError:
        return None


def _expressiveness(args: argparse.Namespace) -> int:
    from graphpool.analysis.expressiveness import distinguishability, learned_accuracy
    from graphpool.analysis.matrix import plot_matrices

    if args.plot and importlib.util.find_spec("matplotlib") is None:
        # Here rather than in plot_path: the other checks exit, this one returns 2 to main.
        print("graphpool expressiveness: error: argument --plot: needs matplotlib, which is "
              "not installed; pip install 'graphpool[plot]' or drop --plot", file=sys.stderr)
        return 2
    start = time.perf_counter()
    matrices = [distinguishability(args.families, args.readouts, trials=args.trials)]
    if not args.exact_only:
        matrices.append(learned_accuracy(args.families, args.readouts, seeds=args.seeds,
                                         epochs=args.epochs))
    if args.plot:
        plot_matrices(matrices, make_parent(args.plot))
    if args.json:
        print(json.dumps(dict(zip(("exact", "learned"), (m.to_dict() for m in matrices))),
                         indent=1))
    else:
        print("\n\n".join(m.format() for m in matrices))
        if args.plot:
            print(f"\nheatmap saved to {args.plot}")
    print(f"took {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "expressiveness", help="families x readouts matrix: what each readout tells apart",
        description="Exact distinguishability of synthetic graph pairs under random "
        "injective node encodings (no training), and held-out accuracy of small models "
        "(node MLP or GIN -> readout -> MLP) trained on synthetic tasks.")
    parser.add_argument("--families", type=comma_list(name_in("family", _families)),
                        help="comma-separated family names, e.g. gin,count,grid (default: "
                        "all; an unknown name lists the choices)")
    parser.add_argument("--readouts", type=comma_list(name_in("readout", _readouts,
                                                              _readout_column)),
                        help="comma-separated readout names, e.g. sum,var,quantile,"
                        "attention,edge-dir: every readout of graphpool.READOUTS (learnable "
                        "ones with random weights in the exact matrix) and the edge "
                        "readouts; the readout resolver's aliases work too (add = sum) "
                        "(default: all; an unknown name lists the choices)")
    parser.add_argument("--exact-only", action="store_true",
                        help="skip training: print only the exact distinguishability matrix")
    parser.add_argument("--seeds", type=positive_int, default=3,
                        help="training seeds, >= 1 (default 3)")
    parser.add_argument("--epochs", type=positive_int, default=60,
                        help="full-batch training steps per model, >= 1 (default 60)")
    parser.add_argument("--trials", type=positive_int, default=3,
                        help="random encodings tried per pair, >= 1 (default 3)")
    parser.add_argument("--plot", metavar="PATH", type=plot_path,
                        help="save the matrices as a heatmap, format by extension: "
                        ".png, .pdf, .svg, ... (needs matplotlib)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.set_defaults(run=_expressiveness)
