"""Which kernels run: the backend, global (:func:`set_backend`) or for one block of one
thread (:func:`use_backend`)."""
from __future__ import annotations

import contextlib
import contextvars
import os
from typing import Iterator

import torch

from ..errors import GraphpoolError
from .. import _native
from . import ext

__all__ = ["set_backend", "get_backend", "use_backend", "BACKENDS"]

BACKENDS = ("auto", "native", "compiled", "torch_scatter")


def _check_backend(name: str, where: str = "set_backend", argument: str = "name") -> str:
    if name not in BACKENDS:
        raise GraphpoolError(where, argument, f"one of {BACKENDS}", repr(name),
                             "pick one of the listed backends")
    if name == "torch_scatter" and not ext.AVAILABLE:
        raise GraphpoolError(where, argument, "a backend that is installed",
                             "'torch_scatter', which cannot be imported",
                             "pip install --no-build-isolation torch-scatter, or use 'auto'")
    if name == "compiled" and _native.library() is None:
        raise GraphpoolError(where, argument, "a backend that can be built",
                             "'compiled', which could not be compiled or loaded",
                             "install a C++ compiler with OpenMP (g++), unset "
                             "GRAPHPOOL_COMPILED=0, or use 'auto'")
    return name


_default = _check_backend(os.environ.get("GRAPHPOOL_BACKEND", "auto"), "environment",
                          "GRAPHPOOL_BACKEND")
# use_backend overrides the default in its own context only (a thread, an asyncio task)
_override: contextvars.ContextVar = contextvars.ContextVar("graphpool_backend", default=None)


def set_backend(name: str) -> None:
    r"""Choose the kernels for index/ptr groupings, for every thread.

    * ``"auto"`` (default): the compiled CSR kernels for floating point ``x`` on the CPU
      (see :mod:`graphpool.kernels.compiled`), torch_scatter for other sums when it is
      installed, native torch otherwise;
    * ``"native"``: native torch only (disables both the compiled kernels and torch_scatter);
    * ``"compiled"``: like ``"auto"`` without torch_scatter; fails if the kernels cannot be built;
    * ``"torch_scatter"``: torch_scatter for sums, native torch otherwise.

    The environment variable ``GRAPHPOOL_BACKEND`` sets the initial value. Uniform and
    masked groupings always take the dense path; under ``torch.compile``, torch_scatter
    is not used. :func:`use_backend` changes the backend for one block of one thread.

    Example:
        >>> import graphpool
        >>> graphpool.set_backend("native"); graphpool.get_backend()
        'native'
        >>> graphpool.set_backend("auto")
    """
    global _default
    _default = _check_backend(name)


@torch.compiler.assume_constant_result  # a compiled graph keeps the backend it was traced with
def get_backend() -> str:
    """The backend in force here: the innermost :func:`use_backend` of this thread or
    task, else the one of :func:`set_backend`."""
    override = _override.get()
    return _default if override is None else override


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Use backend ``name`` inside the block, in this thread (or asyncio task) only: other
    threads keep theirs, and the previous backend is back when the block ends.

    Example:
        >>> import graphpool
        >>> with graphpool.use_backend("native"):
        ...     graphpool.get_backend()
        'native'
    """
    token = _override.set(_check_backend(name, "use_backend"))
    try:
        yield
    finally:
        _override.reset(token)
