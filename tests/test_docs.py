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
