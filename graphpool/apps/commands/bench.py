"""``graphpool bench``: a quick run of the benchmark suite (``benchmarks/run.py`` is the full one).

The suite (regimes, peers, targets) lives in ``benchmarks/suite.py`` of the source tree, not
in the library package: this command runs it from the checkout graphpool is installed from
(``pip install -e .``) and says so when there is none.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Optional

from ._args import make_parent, positive_int, writable_file

__all__ = ["add_parser"]


SUITE = Path(__file__).resolve().parents[3] / "benchmarks" / "suite.py"


def load_suite() -> Optional[ModuleType]:
    """``benchmarks/suite.py`` of the checkout beside the package (``None`` without one)."""
    if "benchmarks.suite" in sys.modules:
        return sys.modules["benchmarks.suite"]
    if not SUITE.is_file():
        return None
    spec = importlib.util.spec_from_file_location("benchmarks.suite", SUITE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["benchmarks.suite"] = module
    spec.loader.exec_module(module)
    return module


def _bench(args: argparse.Namespace) -> int:
    import torch

    bench = load_suite()
    if bench is None:
        print(f"graphpool bench: the benchmark suite is not installed with the package; it "
              f"runs from a source checkout ({SUITE} is missing): git clone the repository "
              f"and pip install -e . there", file=sys.stderr)
        return 2

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
