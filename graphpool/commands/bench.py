"""``graphpool bench``: a quick run of the benchmark suite (``benchmarks/run.py`` is the full one)."""
from __future__ import annotations

import argparse
import sys

from ._args import make_parent, positive_int, writable_file

__all__ = ["add_parser"]


def _bench(args: argparse.Namespace) -> int:
    import torch

    from graphpool import benchmark as bench

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("graphpool bench: no CUDA device here, nothing to benchmark on the GPU; "
              "run with --device cpu", file=sys.stderr)
        return 0

    cases = bench.make_cases(quick=True)
    results = bench.run(cases, args.rounds, args.device,
                        progress=lambda s: print(f"  {s}", file=sys.stderr, flush=True))
    print(bench.markdown(results))
    if args.json:
        bench.to_json(results, bench.check_targets(results), str(make_parent(args.json)))
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("bench", help="quick benchmark against PyG, torch and torch_scatter")
    p.add_argument("--rounds", type=positive_int, default=3,
                   help="timed rounds per candidate (at least 1)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="cpu or cuda (exits cleanly when there is no GPU)")
    p.add_argument("--json", type=writable_file, default=None, metavar="PATH",
                   help="also write the results to this JSON file (checked before the run)")
    p.set_defaults(run=_bench)
