"""Compiled CPU kernels for sorted (CSR) groupings.

``csrc/segment_csr.cpp`` is plain C++ with OpenMP and a C ABI, compiled on first use
with the system compiler (``$CXX`` or ``c++``, about a second of work) into a cache
folder (``$GRAPHPOOL_CACHE`` or ``~/.cache/graphpool``) and loaded with :mod:`ctypes`.
It reads each input element once, in parallel over sets (or over the rows of a set when
there are fewer sets than threads), accumulating half types in float32.

It is used for floating point ``x`` on the CPU with a ``csr`` grouping, in eager mode.
Without a compiler, with ``GRAPHPOOL_COMPILED=0`` or with ``set_backend("native")``,
the native torch paths give the same values and gradients.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import math
import os
import platform
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Tuple

import torch
from torch import Tensor

from ..errors import GraphpoolError

if TYPE_CHECKING:  # segments.py uses the index helpers below
    from ..segments import Segments

SOURCE = Path(__file__).with_name("csrc") / "segment_csr.cpp"
DTYPE_CODES = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}
OP_CODES = {"sum": 0, "max": 1, "min": 2}
FLAGS = ["-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=c++17"]
# Below this many elements (1 MiB of float32) one thread beats waking the pool; on a
# busy machine a parallel region on a small input can cost milliseconds.
PARALLEL_THRESHOLD = 1 << 18

_i64, _int, _vp = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p


def cache_dir() -> Path:
    base = os.environ.get("GRAPHPOOL_CACHE") or Path.home() / ".cache" / "graphpool"
    return Path(base) / "kernels"


def _cpu_signature() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return platform.processor()


def _build(target: Path) -> None:
    cxx = os.environ.get("CXX", "c++")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        out = Path(tmp) / target.name
        subprocess.run([cxx, *FLAGS, str(SOURCE), "-o", str(out)], check=True,
                       capture_output=True, text=True, timeout=600)
        os.replace(out, target)  # atomic: concurrent builders never see half a file


@functools.lru_cache(maxsize=None)
def library() -> Optional[ctypes.CDLL]:
    """The loaded kernels, building them on first use; ``None`` when they cannot be had."""
    if os.environ.get("GRAPHPOOL_COMPILED", "1") == "0" or not sys.platform.startswith("linux"):
        return None
    key = hashlib.sha256(b"\0".join([SOURCE.read_bytes(), " ".join(FLAGS).encode(),
                                     _cpu_signature().encode()])).hexdigest()[:16]
    target = cache_dir() / f"segment_csr_{key}.so"
    try:
        if not target.exists():
            _build(target)
        lib = ctypes.CDLL(str(target))
    except (OSError, subprocess.SubprocessError) as err:
        detail = getattr(err, "stderr", "") or err
        warnings.warn(f"graphpool: compiled CSR kernels unavailable ({detail}); using the "
                      "native torch kernels, which give the same results", RuntimeWarning)
        return None
    lib.gp_csr_reduce.argtypes = [_int, _int, _vp, _i64, _i64, _i64, _i64, _i64, _i64, _vp,
                                  _i64, _vp, _int]
    lib.gp_csr_extremum_backward.argtypes = [_int, _vp, _i64, _i64, _i64, _i64, _i64, _i64,
                                             _vp, _i64, _vp, _vp, _vp, _int]
    lib.gp_csr_broadcast.argtypes = [_int, _vp, _i64, _i64, _i64, _vp, _i64, _vp, _int]
    lib.gp_index_stats.argtypes = [_vp, _i64, _vp]
    lib.gp_sorted_index_to_ptr.argtypes = [_vp, _i64, _i64, _vp, _vp]
    lib.gp_sorted_index_to_ptr.restype = _i64
    return lib


def cpu_index(index: Tensor) -> bool:
    """Whether the index helpers below take ``index`` (a contiguous int64 CPU tensor)."""
    return (index.device.type == "cpu" and index.dtype == torch.int64
            and index.is_contiguous() and library() is not None)


def index_stats(index: Tensor) -> Tuple[int, int, bool]:
    """``(min, max, non-decreasing)`` of a set index in one pass, without torch ops."""
    stats = (ctypes.c_int64 * 3)()
    library().gp_index_stats(index.data_ptr(), index.numel(), stats)
    return stats[0], stats[1], bool(stats[2])


def sorted_index_to_ptr(index: Tensor, num_segments: int) -> Tuple[Tensor, Tensor, int]:
    """``(ptr, counts, number of empty sets)`` of a non-decreasing index with values in
    ``[0, num_segments)``, in one pass."""
    ptr = torch.empty(num_segments + 1, dtype=torch.int64)
    counts = torch.empty(num_segments, dtype=torch.int64)
    empty = library().gp_sorted_index_to_ptr(index.data_ptr(), index.numel(), num_segments,
                                             ptr.data_ptr(), counts.data_ptr())
    return ptr, counts, empty


def supports(x: Tensor, seg: Segments) -> bool:
    """Whether this path takes ``x``: CPU floats, a CSR grouping, leading dims flattenable."""
    return (seg.kind == "csr" and x.device.type == "cpu" and x.dtype in DTYPE_CODES
            and (x.dim() <= 3 or _as_3d(x) is not None) and library() is not None)


def _as_3d(x: Tensor) -> Optional[Tensor]:
    if x.dim() == 3:
        return x
    if x.dim() == 2:
        return x.unsqueeze(0)
    try:
        return x.view(-1, x.size(-2), x.size(-1))
    except RuntimeError:  # leading dims that cannot be merged without a copy
        return None


def _threads(numel: int) -> int:
    return torch.get_num_threads() if numel >= PARALLEL_THRESHOLD else 1


def _check_status(status: int, seg: Segments) -> None:
    if status == 2:  # only reachable with validate=False and a malformed grouping
        raise GraphpoolError("segment_reduce", "segments", "a CSR pointer that starts at 0, "
                             "never decreases and ends at the number of rows",
                             f"{seg} with an out-of-range or decreasing ptr",
                             "build the Segments with validate=True to find the bad entry")
    assert status == 0, status


def combine(x: Tensor, seg: Segments, how: str, acc_dtype: torch.dtype) -> Tensor:
    x3 = _as_3d(x)
    ptr = seg.ptr
    # sums come back in the accumulation dtype (float32 for half types), max/min in x's
    out = torch.empty((*x.shape[:-2], seg.num_segments, x.size(-1)),
                      dtype=acc_dtype if how == "sum" else x.dtype)
    status = library().gp_csr_reduce(
        DTYPE_CODES[x.dtype], OP_CODES[how], x3.data_ptr(), x3.size(0), x3.size(1),
        x3.size(2), x3.stride(0), x3.stride(1), x3.stride(2), ptr.data_ptr(),
        seg.num_segments, out.data_ptr(), _threads(x3.numel()))
    _check_status(status, seg)
    return out


def extremum_backward(x: Tensor, seg: Segments, out: Tensor, grad_out: Tensor) -> Tensor:
    """``grad_x`` of max/min with the even tie split, in one pass over ``x``."""
    x3 = _as_3d(x)
    ptr = seg.ptr
    y = out.to(x.dtype).contiguous()
    grad = grad_out.to(x.dtype).contiguous()
    grad_x = torch.empty(x3.shape, dtype=x.dtype)
    status = library().gp_csr_extremum_backward(
        DTYPE_CODES[x.dtype], x3.data_ptr(), x3.size(0), x3.size(1), x3.size(2),
        x3.stride(0), x3.stride(1), x3.stride(2), ptr.data_ptr(), seg.num_segments,
        y.data_ptr(), grad.data_ptr(), grad_x.data_ptr(), _threads(x3.numel()))
    _check_status(status, seg)
    return grad_x.view(x.shape)


def broadcast(values: Tensor, seg: Segments) -> Tensor:
    """``seg.broadcast(values)`` for a CSR grouping, written once, in parallel."""
    values = values.contiguous()
    lead, feats = values.shape[:-2], values.size(-1)
    out = torch.empty((*lead, seg.num_nodes, feats), dtype=values.dtype)
    if out.numel() == 0:
        return out
    ptr = seg.ptr
    status = library().gp_csr_broadcast(
        values.element_size(), values.data_ptr(), math.prod(lead), seg.num_nodes, feats,
        ptr.data_ptr(), seg.num_segments, out.data_ptr(), _threads(out.numel()))
    _check_status(status, seg)
    return out
