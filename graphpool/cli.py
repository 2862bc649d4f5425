"""The ``graphpool`` command. Each subcommand lives in ``graphpool/commands/<name>.py``
and exposes ``add_parser(subparsers)``, which registers it and sets ``run``."""
from __future__ import annotations

import argparse
import importlib
from typing import List, Optional

__all__ = ["main", "COMMANDS"]

# One line per subcommand module.
COMMANDS = [
    "graphpool.commands.demo",
    "graphpool.commands.expressiveness",
    "graphpool.commands.train",
    "graphpool.commands.bench",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="graphpool", description=(
        "Graph readouts on segment kernels: CNN global pooling is a graph readout."))
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        importlib.import_module(module).add_parser(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
