"""Argument types and checks shared by every ``graphpool`` subcommand.

Each helper is an argparse ``type`` (or adds options to a parser): a bad value raises
:class:`argparse.ArgumentTypeError`, which argparse prints as the standard
``usage: ... error: argument --name: ...`` line and exit status 2, before any work starts.
Messages say what was expected, what was given and how to fix it.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="demo")
    >>> _ = parser.add_argument("--epochs", type=positive_int)
    >>> parser.parse_args(["--epochs", "3"]).epochs
    3
    >>> positive_int("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected an integer >= 1, got 0; pass 1 or more
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

__all__ = ["integer", "positive_int", "finite_positive_float", "fraction",
           "name_in", "comma_list", "writable_dir", "writable_file", "plot_path",
           "PLOT_FORMATS", "add_progress_flags", "progress_default", "make_parent"]

# What matplotlib writes with its own backends (Agg, pdf, svg, ps) and Pillow, which it
# requires; no TeX (pgf) nor optional Pillow plugins (avif).
PLOT_FORMATS = ("png", "pdf", "svg", "svgz", "eps", "ps", "jpg", "jpeg", "tif", "tiff", "webp")


def _bad(expected: str, got: object, fix: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(f"expected {expected}, got {got}; {fix}")


def integer(minimum: int, maximum: Optional[int] = None) -> Callable[[str], int]:
    """An argparse type: an integer from ``minimum`` to ``maximum`` (inclusive)."""
    expected = (f"an integer >= {minimum}" if maximum is None
                else f"an integer from {minimum} to {maximum}")
    fix = f"pass {minimum} or more" if maximum is None else f"pass {minimum} to {maximum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise _bad(expected, repr(text), fix) from None
        if value < minimum or (maximum is not None and value > maximum):
            raise _bad(expected, value, fix)
        return value

    parse.__name__ = "integer"
    return parse


positive_int = integer(1)


def finite_positive_float(text: str) -> float:
    """An argparse type: a finite number > 0 (no ``inf``, ``nan``, 0 or negatives)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0.0):
        raise _bad("a finite number > 0", repr(text), "pass e.g. 0.01")
    return value


def fraction(*, zero: bool) -> Callable[[str], float]:
    """An argparse type: a number in ``[0, 1)`` with ``zero``, else in ``(0, 1)``."""
    expected = "a number in [0, 1)" if zero else "a number in (0, 1)"
    fix = "pass e.g. 0.5" if zero else "pass e.g. 0.1"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (0.0 <= value < 1.0) or (value == 0.0 and not zero):
            raise _bad(expected, repr(text), fix)
        return value

    parse.__name__ = "fraction"
    return parse


def name_in(kind: str, choices: Union[Sequence[str], Callable[[], Sequence[str]]],
            normalise: Optional[Callable[[str], Optional[str]]] = None) -> Callable[[str], str]:
    """An argparse type: one of ``choices`` (a sequence, or a function returning one, to
    import it only when parsing). ``normalise`` maps a text to its name, or to ``None``
    when unknown (for aliases); by default a text must be one of the choices as is."""

    def parse(text: str) -> str:
        names = choices() if callable(choices) else choices
        name = normalise(text) if normalise is not None else (text if text in names else None)
        if name is None:
            raise argparse.ArgumentTypeError(
                f"unknown {kind} {text!r}; choose from {', '.join(repr(n) for n in names)}")
        return name

    parse.__name__ = kind
    return parse


def comma_list(convert: Callable[[str], object]) -> Callable[[str], list]:
    """An argparse type: a non-empty comma-separated list, each item checked by ``convert``."""

    def parse(text: str) -> list:
        values = [convert(item.strip()) for item in text.split(",") if item.strip()]
        if not values:
            raise _bad("a comma-separated list", repr(text), "pass at least one value")
        return values

    parse.__name__ = "list"
    return parse


def _cannot_create(path: Path) -> Optional[str]:
    """Why ``path`` (which does not exist) could not be created, or ``None`` if it can."""
    ancestor = path.parent
    while not os.path.lexists(ancestor) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{str(ancestor)!r} is a file, not a folder"
    return _cannot_write_in(ancestor)


def _cannot_write_in(folder: Path) -> Optional[str]:
    """Why nothing can be created in the existing ``folder``, or ``None``. Asks the file
    system itself (root passes ``os.access`` everywhere, also on ``/proc``): it makes an
    empty folder there and removes it at once, so nothing is left behind."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{str(folder)!r} is not writable"
    try:
        probe = tempfile.mkdtemp(prefix=".graphpool-write-check-", dir=folder)
    except OSError as err:
        return f"nothing can be created in {str(folder)!r} ({err.strerror})"
    os.rmdir(probe)
    return None


def _empty(text: str, what: str) -> None:
    if not text.strip():
        raise _bad(what, "an empty path", "pass a path")


def writable_dir(text: str) -> str:
    """An argparse type: a folder that exists, or can be created, and is writable. Nothing
    is created: the command makes the folder when it writes its results."""
    expected = "a folder that exists or can be created, and is writable"
    _empty(text, expected)
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise _bad(expected, f"{text!r}, an existing file",
                   "pass a folder path (or remove the file)")
    problem = _cannot_write_in(path) if path.is_dir() else _cannot_create(path)
    if problem:
        raise _bad(expected, f"{text!r}: {problem}", "choose a folder you can write to")
    return text


def writable_file(text: str) -> str:
    """An argparse type: a file path that can be written (its folder exists, or can be
    created, and is writable). Nothing is created here: see :func:`make_parent`."""
    expected = "a file path that can be written"
    _empty(text, expected)
    path = Path(text)
    if path.is_dir() or text.endswith(("/", os.sep)):
        raise _bad(expected, f"{text!r}, a folder", "add a file name, e.g. "
                   f"{os.path.join(text, 'results' + (path.suffix or '.json'))!r}")
    if path.exists():
        problem = None if os.access(path, os.W_OK) else f"{text!r} is read-only"
    elif os.path.lexists(path):
        problem = f"{text!r} is a broken link"
    else:
        problem = _cannot_create(path)
    if problem:
        raise _bad(expected, f"{text!r}: {problem}", "choose a path you can write to")
    return text


def plot_path(text: str) -> str:
    """An argparse type: a writable file path whose extension matplotlib can write
    (:data:`PLOT_FORMATS`)."""
    suffix = Path(text).suffix.lower().lstrip(".")
    if suffix not in PLOT_FORMATS:
        raise _bad("a file name ending in " + ", ".join(f".{f}" for f in PLOT_FORMATS),
                   repr(text), "use e.g. .png, .pdf or .svg")
    return writable_file(text)


def make_parent(path: Union[str, Path]) -> Path:
    """Create the folder of ``path`` (checked by :func:`writable_file`) just before writing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def progress_default() -> bool:
    """Progress bars by default only when both stdout and stderr (where tqdm draws) are
    terminals: redirected or captured output gets no bar."""
    return all(stream is not None and hasattr(stream, "isatty") and stream.isatty()
               for stream in (sys.stdout, sys.stderr))


def add_progress_flags(parser: argparse.ArgumentParser) -> None:
    """``--progress`` / ``--no-progress``, stored as ``args.no_progress``; the default is
    :func:`progress_default` when the parser is built."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--progress", dest="no_progress", action="store_false",
                       help="show tqdm progress bars (default: only when stdout and "
                            "stderr are terminals)")
    group.add_argument("--no-progress", dest="no_progress", action="store_true",
                       help="no tqdm progress bars")
    parser.set_defaults(no_progress=not progress_default())
