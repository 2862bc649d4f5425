"""The README's code runs, and its test command is the one CI runs."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _blocks(text: str, lang: str):
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def test_readme_python_examples_run():
    blocks = _blocks((ROOT / "README.md").read_text(), "python")
    assert blocks
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})


def test_quick_start_is_two_commands_and_ci_runs_the_second():
    commands = [b.strip() for b in _blocks((ROOT / "README.md").read_text(), "bash")][:2]
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    assert "graphpool demo" in commands[0] and "pytest" in commands[1]
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[1] in ci_lines


def _table_rows(text: str):
    return [line.strip() for line in text.splitlines() if line.strip().startswith("| ")]


def test_performance_numbers_are_the_ones_the_suite_printed():
    """A row of docs/performance.md that names a row of the published run
    (benchmarks/results/cpu.md: the regimes, the training epochs, the targets) repeats it
    word for word: no number in the docs that the script did not print."""
    printed = _table_rows((ROOT / "benchmarks" / "results" / "cpu.md").read_text())
    first_cells = {row.split("|")[1].strip() for row in printed}
    quoted = [row for row in _table_rows((ROOT / "docs" / "performance.md").read_text())
              if row.split("|")[1].strip() in first_cells and not row.startswith("| regime")
              and not row.startswith("| target")]
    assert quoted, "performance.md quotes no row of the published run"
    stale = [row for row in quoted if row not in printed]
    assert not stale, f"rows not in benchmarks/results/cpu.md: {stale[:3]}"
