"""Errors raised by graphpool.

Every error a user can trigger with bad input is a :class:`GraphpoolError`, a
subclass of :class:`ValueError`, whose message names the argument, what was
expected, what was given and how to fix it.
"""
from __future__ import annotations

from typing import Any, Optional

__all__ = ["GraphpoolError"]


class GraphpoolError(ValueError):
    r"""Invalid input to a graphpool function or module.

    The fields are kept on the exception so that callers can react to them:

    Args:
        where: the public function or class that rejected the input.
        argument: the argument at fault.
        expected: what the argument should have been.
        got: what it was.
        fix: how to repair the call.

    Example:
        >>> import graphpool
        >>> err = GraphpoolError("readout", "reduce", "one of 'sum', 'mean'", "'median'",
        ...                      "pick one of the listed names")
        >>> print(err)
        readout: invalid 'reduce': expected one of 'sum', 'mean', got 'median'. Fix: pick one of the listed names.
        >>> isinstance(err, ValueError)
        True
    """

    def __init__(self, where: str, argument: str, expected: str, got: Any,
                 fix: Optional[str] = None) -> None:
        self.where = where
        self.argument = argument
        self.expected = expected
        self.got = got
        self.fix = fix
        message = f"{where}: invalid '{argument}': expected {expected}, got {got}."
        if fix:
            message += f" Fix: {fix}"
            if not fix.endswith("."):
                message += "."
        super().__init__(message)


def describe(t: Any) -> str:
    """A short description of a value for error messages (shape/dtype/device of tensors)."""
    import torch

    if isinstance(t, torch.Tensor):
        return f"a {t.dtype} tensor of shape {tuple(t.shape)} on {t.device}"
    if isinstance(t, (list, tuple)) and any(isinstance(v, torch.Tensor) for v in t):
        items = "; ".join(describe(v) for v in t[:2]) + ("; ..." if len(t) > 2 else "")
        return f"a {type(t).__name__} of {len(t)} ({items})"  # never the tensors' values
    text = repr(t)
    return f"{type(t).__name__} {text if len(text) <= 120 else text[:117] + '...'}"


def env_choice(name: str, choices: tuple, default: str) -> str:
    """The value of environment variable ``name``, which must be one of ``choices``."""
    import os

    value = os.environ.get(name, default)
    if value not in choices:
        raise GraphpoolError("environment", name, f"one of {', '.join(map(repr, choices))}",
                             repr(value), f"set {name} to one of those, or unset it")
    return value


def refuse_fx(where: str, *values: Any) -> None:
    """A clear refusal of ``torch.fx.symbolic_trace`` Proxies: a readout's kernels depend on
    the grouping's values, which a symbolic trace does not have."""
    for v in values:
        if type(v).__name__ == "Proxy":
            break
    else:
        return  # the common case, without touching torch.fx
    import torch.fx

    if any(isinstance(v, torch.fx.Proxy) for v in values):
        raise GraphpoolError(where, "x", "a tensor (torch.fx.symbolic_trace passes a Proxy)",
                             "a torch.fx Proxy",
                             "trace with torch.export.export or torch.compile, which support "
                             "graphpool, or keep graphpool modules as leaves of your "
                             "fx.Tracer (override is_leaf_module)")
