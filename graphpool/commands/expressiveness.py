"""``graphpool expressiveness``: what each readout can tell apart, on synthetic families."""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from typing import Callable, List

__all__ = ["add_parser"]


def _names(check: Callable[[List[str]], None]) -> Callable[[str], List[str]]:
    """An argparse type: a comma-separated list of names, checked by ``check``."""

    def parse(text: str) -> List[str]:
        from graphpool.errors import GraphpoolError

        names = [n.strip() for n in text.split(",") if n.strip()]
        try:
            check(names)
        except GraphpoolError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        return names

    return parse


def _check_families(names: List[str]) -> None:
    from graphpool.analysis.families import resolve_families

    resolve_families(names, "graphpool expressiveness")


def _check_readouts(names: List[str]) -> None:
    from graphpool.analysis.expressiveness import resolve_readout_names

    resolve_readout_names(names, "graphpool expressiveness")


def _expressiveness(args: argparse.Namespace) -> int:
    from graphpool.analysis.expressiveness import distinguishability, learned_accuracy
    from graphpool.analysis.matrix import plot_matrices

    if args.plot and importlib.util.find_spec("matplotlib") is None:
        print("graphpool expressiveness: error: --plot needs matplotlib; "
              "pip install 'graphpool[plot]' or drop --plot", file=sys.stderr)
        return 2
    start = time.perf_counter()
    matrices = [distinguishability(args.families, args.readouts, trials=args.trials)]
    if not args.exact_only:
        matrices.append(learned_accuracy(args.families, args.readouts, seeds=args.seeds,
                                         epochs=args.epochs))
    if args.plot:
        plot_matrices(matrices, args.plot)
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
    parser.add_argument("--families", type=_names(_check_families), default=None,
                        help="comma-separated family names, e.g. gin,count,grid (default: "
                        "all; an unknown name lists the choices)")
    parser.add_argument("--readouts", type=_names(_check_readouts), default=None,
                        help="comma-separated readout names, e.g. sum,mean,edge-dir "
                        "(default: all; an unknown name lists the choices)")
    parser.add_argument("--exact-only", action="store_true",
                        help="skip training: print only the exact distinguishability matrix")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds (default 3)")
    parser.add_argument("--epochs", type=int, default=60,
                        help="full-batch training steps per model (default 60)")
    parser.add_argument("--trials", type=int, default=3,
                        help="random encodings tried per pair (default 3)")
    parser.add_argument("--plot", metavar="PATH", help="save the matrices as a heatmap "
                        "(PNG/PDF/SVG by extension; needs matplotlib)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.set_defaults(run=_expressiveness)
