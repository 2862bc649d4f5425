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
KNOWN = {"graphpool", *MODULES}

# lower layers first; a module may import only from its own layer or those before it
LAYERS = [
    ["graphpool.errors"],
    ["graphpool._native"],
    ["graphpool.segments", "graphpool.segments_cache", "graphpool.resolve"],
    ["graphpool.kernels"],
    ["graphpool.composite"],
    ["graphpool.functional", "graphpool.readouts"],
    ["graphpool.grid", "graphpool.excitation", "graphpool.distributed", "graphpool.export"],
    ["graphpool.analysis", "graphpool.datasets"],
    ["graphpool.apps"],  # the command line, experiments and model zoo: applications
]


def _layer(module: str) -> int:
    if module == "graphpool":  # the package exports every core layer: only apps use it
        return len(LAYERS) - 1
    for i, names in enumerate(LAYERS):
        if any(module == n or module.startswith(n + ".") for n in names):
            return i
    return len(LAYERS)  # not in the table: a new module must be given its layer


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


@pytest.mark.parametrize("module", ["graphpool", *MODULES])
def test_every_module_imports_only_from_its_layer_or_below(module):
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
        elif isinstance(node, ast.ImportFrom) and node.module.split(".")[0] == "graphpool":
            targets = [node.module] if node.module != "graphpool" else [
                f"graphpool.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names if a.name.split(".")[0] == "graphpool"]
        else:
            continue
        for target in targets:
            while target not in KNOWN:  # a name inside a module: the module itself
                target = target.rsplit(".", 1)[0]
            assert _layer(target) <= _layer(module), f"{module} imports {target}"
