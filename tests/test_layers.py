"""The package's dependency graph has no cycles: every module imports first, alone, in a
fresh interpreter, and the core never imports what stands above it."""
from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import graphpool

ROOT = Path(graphpool.__file__).parent
MODULES = sorted(m.name for m in pkgutil.walk_packages([str(ROOT)], "graphpool.")
                 if m.name != "graphpool.__main__")  # that one runs the CLI

# lower layers first; a module may import only from its own layer or those before it
LAYERS = [
    ["graphpool.errors"],
    ["graphpool._native"],
    ["graphpool.segments", "graphpool.segments_cache", "graphpool.resolve"],
    ["graphpool.kernels"],
    ["graphpool.functional", "graphpool.readouts"],
]


def _layer(module: str) -> int:
    for i, names in enumerate(LAYERS):
        if any(module == n or module.startswith(n + ".") for n in names):
            return i
    return len(LAYERS)  # grid, analysis, commands, ...: above the core


_FIRST_IMPORTS = """
import os, sys, importlib, traceback
import torch, torch_geometric  # third-party imports are not under test; load them once
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:  # a child with no graphpool module loaded imports this one first
        try:
            importlib.import_module(name)
        except BaseException:
            print("FAILED", name, traceback.format_exc().strip().splitlines()[-1], flush=True)
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    print(name, status, flush=True)
"""


def test_every_module_imports_first_in_a_fresh_interpreter():
    done = subprocess.run([sys.executable, "-c", _FIRST_IMPORTS, *MODULES],
                          capture_output=True, text=True, timeout=600)
    failed = [line for line in done.stdout.splitlines() if not line.endswith(" 0")]
    assert done.returncode == 0 and not failed and len(done.stdout.splitlines()) >= len(
        MODULES), (failed, done.stderr[-2000:])


@pytest.mark.parametrize("module", [m for m in MODULES if _layer(m) < len(LAYERS)])
def test_the_core_imports_only_from_below(module):
    path = ROOT.joinpath(*module.split(".")[1:])
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            targets = [f"{base}.{node.module}" if node.module else base]
            if not node.module:
                targets = [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                assert _layer(target) <= _layer(module), f"{module} imports {target}"
