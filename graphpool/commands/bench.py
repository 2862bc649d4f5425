"""``graphpool bench``: a quick run of the benchmark suite (``benchmarks/run.py`` is the full one)."""
from __future__ import annotations

import argparse
import sys

__all__ = ["add_parser"]


def _bench(args: argparse.Namespace) -> int:
    from graphpool import benchmark as bench

    cases = bench.make_cases(quick=True)
    results = bench.run(cases, args.rounds, args.device,
                        progress=lambda s: print(f"  {s}", file=sys.stderr, flush=True))
    print(bench.markdown(results))
    if args.json:
        bench.to_json(results, bench.check_targets(results), args.json)
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("bench", help="quick benchmark against PyG, torch and torch_scatter")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds per candidate")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.set_defaults(run=_bench)
