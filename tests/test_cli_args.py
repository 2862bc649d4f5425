"""Every `graphpool` subcommand checks its arguments before any work: argparse's usage and
`error: argument --name: ...` on stderr, exit status 2, no traceback, no file left behind."""
import io
import os
import subprocess
import sys

import pytest

import graphpool.analysis.expressiveness as expressiveness
import benchmarks.suite as benchmark
import graphpool.apps.commands.demo as demo
import graphpool.apps.experiments.runner as runner
from graphpool.apps.cli import main
from graphpool.apps.commands._args import (PLOT_FORMATS, plot_path, progress_default, writable_dir,
                                      writable_file)

ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0


class WorkStarted(Exception):
    """Raised by the stand-ins of the training, analysis and benchmark functions."""


@pytest.fixture
def no_work(monkeypatch):
    """Replace every function that does a command's work; each records its call and stops."""
    calls = []

    def stand_in(name):
        def call(*args, **kwargs):
            calls.append((name, kwargs))
            raise WorkStarted(name)
        return call

    monkeypatch.setattr(runner, "run_experiments", stand_in("run_experiments"))
    monkeypatch.setattr(demo, "_readout_checks", stand_in("demo._readout_checks"))
    monkeypatch.setattr(expressiveness, "distinguishability", stand_in("distinguishability"))
    monkeypatch.setattr(expressiveness, "learned_accuracy", stand_in("learned_accuracy"))
    monkeypatch.setattr(benchmark, "make_cases", stand_in("benchmark.make_cases"))
    monkeypatch.setattr(benchmark, "run", stand_in("benchmark.run"))
    return calls


@pytest.fixture
def paths(tmp_path):
    """``{tmp}``: an empty folder; ``{file}``: a regular file in another folder."""
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "regular").write_text("not a folder")
    (tmp_path / "empty").mkdir()
    return {"tmp": str(tmp_path / "empty"), "file": str(tmp_path / "files" / "regular")}


# subcommand, arguments, the option the error names, words the message must contain
BAD = [
    # numbers out of range
    ("train", ["--lr", "inf"], "--lr", "expected a finite number > 0, got 'inf'"),
    ("train", ["--lr", "nan"], "--lr", "expected a finite number > 0, got 'nan'"),
    ("train", ["--lr", "0"], "--lr", "expected a finite number > 0, got '0'"),
    ("train", ["--lr", "-0.1"], "--lr", "pass e.g. 0.01"),
    ("train", ["--lr", "fast"], "--lr", "got 'fast'"),
    ("train", ["--epochs", "0"], "--epochs", "expected an integer >= 1, got 0; pass 1 or more"),
    ("train", ["--epochs", "-3"], "--epochs", "expected an integer >= 1, got -3"),
    ("train", ["--seed", "-1"], "--seed", "expected an integer from 0 to 2147483647, got -1"),
    ("train", ["--seed", "4294967296"], "--seed", "got 4294967296"),
    ("train", ["--folds", "1"], "--folds", "expected an integer >= 2, got 1"),
    ("train", ["--folds", "100"], "--folds", "expected at most 63 for MUTAG"),
    ("train", ["--max-folds", "0"], "--max-folds", "expected an integer >= 1, got 0"),
    ("train", ["--max-folds", "11"], "--max-folds", "expected at most --folds (10), got 11"),
    ("train", ["--iters-per-epoch", "0"], "--iters-per-epoch", "expected an integer >= 1"),
    ("train", ["--hidden", "32,0"], "--hidden", "expected an integer >= 1, got 0"),
    ("train", ["--hidden", ","], "--hidden", "expected a comma-separated list, got ','"),
    ("train", ["--batch-size", "0"], "--batch-size", "expected an integer >= 1, got 0"),
    ("train", ["--batch-size", "1.5"], "--batch-size", "got '1.5'"),
    ("train", ["--dropout", "1"], "--dropout", "expected a number in [0, 1), got '1'"),
    ("train", ["--dropout", "nan"], "--dropout", "expected a number in [0, 1), got 'nan'"),
    ("train", ["--val-fraction", "0"], "--val-fraction", "expected a number in (0, 1)"),
    ("train", ["--protocol", "heldout", "--val-fraction", "0.001"], "--val-fraction",
     "at least one graph per class"),
    ("train", ["--threads", "0"], "--threads", "expected an integer >= 1, got 0"),
    ("train", ["--nproc", "0"], "--nproc", "expected an integer from 1 to 64, got 0"),
    ("train", ["--nproc", "4", "--batch-size", "8,2"], "--nproc",
     "expected at most the smallest --batch-size (2"),
    # names: an unknown one lists the choices
    ("train", ["--dataset", "DD"], "--dataset",
     "unknown dataset 'DD'; choose from 'MUTAG', 'PROTEINS', 'NCI1', 'PTC_MR'"),
    ("train", ["--readout", "medoid"], "--readout",
     "unknown readout 'medoid'; choose from 'sum', 'mean', 'max', 'min'"),
    ("train", ["--aggr", "medoid"], "--aggr", "choose from 'same', 'sum'"),
    ("train", ["--model", "gcn"], "--model", "invalid choice: 'gcn'"),
    ("train", ["--protocol", "nested"], "--protocol", "invalid choice: 'nested'"),
    ("train", ["--progress", "--no-progress"], "--no-progress", "not allowed with"),
    # paths
    ("train", ["--out", "{file}"], "--out", "an existing file; pass a folder path"),
    ("train", ["--out", "{file}/results"], "--out", "is a file, not a folder"),
    ("train", ["--out", "/proc/graphpool-results"], "--out", "nothing can be created in '/proc'"),
    ("train", ["--out", ""], "--out", "got an empty path"),
    ("train", ["--data-root", "{file}"], "--data-root", "an existing file"),
    ("demo", ["--epochs", "0"], "--epochs", "expected an integer >= 1, got 0"),
    ("demo", ["--epochs", "many"], "--epochs", "got 'many'"),
    ("expressiveness", ["--trials", "0"], "--trials", "expected an integer >= 1, got 0"),
    ("expressiveness", ["--seeds", "0"], "--seeds", "expected an integer >= 1, got 0"),
    ("expressiveness", ["--epochs", "-1"], "--epochs", "expected an integer >= 1, got -1"),
    ("expressiveness", ["--families", "gin,wheel"], "--families",
     "unknown family 'wheel'; choose from 'gin', 'count'"),
    ("expressiveness", ["--families", ","], "--families", "expected a comma-separated list"),
    ("expressiveness", ["--readouts", "medoid"], "--readouts",
     "choose from 'sum', 'mean', 'max', 'min', 'var', 'std'"),
    ("expressiveness", ["--plot", "{tmp}/m.bmp"], "--plot",
     "expected a file name ending in .png, .pdf, .svg"),
    ("expressiveness", ["--plot", "{tmp}/m"], "--plot", "use e.g. .png, .pdf or .svg"),
    ("expressiveness", ["--plot", "{file}/m.png"], "--plot", "is a file, not a folder"),
    ("expressiveness", ["--plot", "/proc/graphpool/m.svg"], "--plot",
     "nothing can be created in '/proc'"),
    ("bench", ["--rounds", "0"], "--rounds", "expected an integer >= 1, got 0"),
    ("bench", ["--device", "tpu"], "--device", "invalid choice: 'tpu'"),
    ("bench", ["--json", "/proc/nonexistent_dir/a.json"], "--json",
     "nothing can be created in '/proc'"),
    ("bench", ["--json", "{file}/a.json"], "--json", "is a file, not a folder"),
    ("bench", ["--json", "{tmp}"], "--json", "a folder; add a file name"),
    pytest.param("train", ["--out", "{tmp}/ro/results"], "--out", "is not writable",
                 marks=pytest.mark.skipif(ROOT_USER, reason="root writes in read-only folders"),
                 id="read-only-parent"),
]


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, dirs, files in os.walk(root) for f in files + dirs)


@pytest.mark.parametrize("command, argv, option, words", BAD)
def test_bad_argument_is_refused_before_any_work(no_work, paths, tmp_path, capsys,
                                                 command, argv, option, words):
    if "{tmp}/ro" in " ".join(argv):
        os.mkdir(os.path.join(paths["tmp"], "ro"), 0o500)
    argv = [a.format(**paths) for a in argv]
    before = _files(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main([command, *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: graphpool {command}")
    assert f"graphpool {command}: error: argument {option}" in err
    assert words in err
    assert "Traceback" not in err
    assert no_work == []
    assert _files(tmp_path) == before  # nothing created, not even the output folder


@pytest.mark.parametrize("command, argv, words", [
    ("train", ["--lr", "inf"], "argument --lr: expected a finite number > 0"),
    ("bench", ["--json", "/proc/nonexistent_dir/a.json"], "argument --json:"),
    ("expressiveness", ["--plot", "m.gif.txt"], "argument --plot:"),
])
def test_the_installed_command_exits_with_2_and_no_traceback(command, argv, words):
    done = subprocess.run([sys.executable, "-m", "graphpool", command, *argv],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert f"graphpool {command}: error: {words}" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_good_arguments_reach_the_work(no_work, tmp_path):
    out = tmp_path / "new" / "deeper"
    with pytest.raises(WorkStarted):
        main(["train", "--readout", "add", "--lr", "1e-3", "--seed", "0", "--out", str(out)])
    assert [name for name, _ in no_work] == ["run_experiments"]
    assert not (tmp_path / "new").exists()  # the folder is made when results are written


def test_writable_checks_leave_nothing_behind(tmp_path):
    assert writable_dir(str(tmp_path)) == str(tmp_path)
    assert writable_dir(str(tmp_path / "a" / "b")) == str(tmp_path / "a" / "b")
    assert writable_file(str(tmp_path / "a" / "r.json")) == str(tmp_path / "a" / "r.json")
    (tmp_path / "old.json").write_text("{}")
    assert writable_file(str(tmp_path / "old.json")) == str(tmp_path / "old.json")
    for suffix in (".png", ".PDF", ".svg"):
        assert plot_path(str(tmp_path / f"m{suffix}")) == str(tmp_path / f"m{suffix}")
    assert os.listdir(tmp_path) == ["old.json"] and (tmp_path / "old.json").read_text() == "{}"
    assert {"png", "pdf", "svg"} <= set(PLOT_FORMATS)


def test_plot_into_a_new_folder_is_written_after_the_work(tmp_path, capsys):
    path = tmp_path / "figures" / "m.svg"
    assert main(["expressiveness", "--exact-only", "--families", "gin", "--readouts", "sum",
                 "--trials", "1", "--plot", str(path)]) == 0
    assert path.read_text().lstrip().startswith(("<?xml", "<svg"))


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("tty, argv, shown", [
    (False, [], False),
    (False, ["--progress"], True),
    (True, [], True),
    (True, ["--no-progress"], False),
])
@pytest.mark.parametrize("command", ["train", "demo"])
def test_progress_bars_only_on_a_terminal_unless_asked(no_work, monkeypatch, tmp_path, tty,
                                                       argv, shown, command):
    if tty:
        monkeypatch.setattr(sys, "stdout", _Terminal())
        monkeypatch.setattr(sys, "stderr", _Terminal())
    assert progress_default() is tty
    if command == "demo":
        monkeypatch.setattr(demo, "_readout_checks", lambda: None)
    extra = ["--out", str(tmp_path / "out")] if command == "train" else []
    with pytest.raises(WorkStarted):
        main([command, *argv, *extra])
    (name, kwargs), = no_work
    assert name == "run_experiments" and kwargs["progress"] is shown


def test_progress_stays_off_when_stdout_is_a_pipe(tmp_path):
    code = ("import sys, graphpool.apps.experiments.runner as r\n"
            "def fake(*a, **k): print('progress', k['progress']); raise SystemExit(0)\n"
            "r.run_experiments = fake\n"
            "from graphpool.apps.cli import main\n"
            "main(['train', '--out', sys.argv[1]])\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "progress False" in done.stdout, done.stderr
