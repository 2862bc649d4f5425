"""The ``graphpool`` command. Each subcommand lives in ``graphpool/apps/commands/<name>.py``
and exposes ``add_parser(subparsers)``, which registers it and sets ``run`` (and optionally
``check``, for combinations of options).

Every argument is checked before any work starts (types in ``graphpool/apps/commands/_args.py``):
a bad one prints argparse's ``usage: ... error: argument --name: ...`` and exits with 2."""
from __future__ import annotations

import argparse
import importlib
from typing import List, Optional

__all__ = ["main", "COMMANDS"]

# One line per subcommand module.
COMMANDS = [
    "graphpool.apps.commands.demo",
    "graphpool.apps.commands.expressiveness",
    "graphpool.apps.commands.train",
    "graphpool.apps.commands.bench",
]


def build_parser() -> argparse.ArgumentParser:
    """The ``graphpool`` parser; ``parser.commands`` maps each subcommand to its parser."""
    parser = argparse.ArgumentParser(prog="graphpool", description=(
        "Graph readouts on segment kernels: CNN global pooling is a graph readout."))
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        importlib.import_module(module).add_parser(subparsers)
    parser.commands = subparsers.choices
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check = getattr(args, "check", None)
    problem = check(args) if check is not None else None
    if problem:
        parser.commands[args.command].error(problem)
    return int(args.run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
