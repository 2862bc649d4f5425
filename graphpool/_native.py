"""The compiled helper library: built on first use, loaded with :mod:`ctypes`.

``kernels/csrc/segment_csr.cpp`` is plain C++ with OpenMP and a C ABI (no torch headers),
compiled on first use by the system compiler (``$CXX`` or ``c++``, about a second) into a
cache folder (``$GRAPHPOOL_CACHE`` or ``~/.cache/graphpool``). This module knows nothing
of groupings or readouts: it builds and loads the library, checks every buffer handed to
C (:func:`check_buffer`), and offers the index helpers that :mod:`graphpool.segments`
and the cache use. The kernels themselves are wrapped in :mod:`graphpool.kernels.compiled`.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Optional, Tuple

import torch
from torch import Tensor
from torch._ops import _len_torch_dispatch_stack_pre_dispatch
from torch.utils._python_dispatch import _get_current_dispatch_mode

from .errors import GraphpoolError, env_choice

SOURCE = Path(__file__).with_name("kernels") / "csrc" / "segment_csr.cpp"
# -ffp-contract=off: a product and a sum stay two roundings (no fused multiply-add), as
# in torch's elementwise ops, so that the moments kernel gives the bits of `d * d` summed
FLAGS = ["-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=c++17",
         "-ffp-contract=off"]
# GRAPHPOOL_SANITIZE=1 builds the kernels with AddressSanitizer and UBSan (a library of
# its own in the cache); python must then run with the ASan runtime preloaded, as
# `.ci/sanitize` does: any out-of-bounds access or undefined behaviour aborts the run.
SANITIZE = env_choice("GRAPHPOOL_SANITIZE", ("0", "1"), "0") == "1"
if SANITIZE:
    FLAGS = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
             "-fno-sanitize-recover=all", *FLAGS[1:]]
env_choice("GRAPHPOOL_COMPILED", ("0", "1"), "1")  # a bad value fails at import, named

_i64, _int, _vp = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p
_Stats = ctypes.c_int64 * 4


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
    if env_choice("GRAPHPOOL_COMPILED", ("0", "1"), "1") == "0" or \
            not sys.platform.startswith("linux"):
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
        where = (f" in GRAPHPOOL_CACHE={os.environ['GRAPHPOOL_CACHE']!r}"
                 if os.environ.get("GRAPHPOOL_CACHE") else "")
        warnings.warn(f"graphpool: compiled CSR kernels unavailable{where} ({detail}); using "
                      "the native torch kernels, which give the same results; set "
                      "GRAPHPOOL_CACHE to a writable folder or GRAPHPOOL_COMPILED=0",
                      RuntimeWarning)
        return None
    lib.gp_csr_reduce.argtypes = [_int, _int, _vp, _i64, _i64, _i64, _i64, _i64, _i64, _vp,
                                  _i64, _vp, _int]
    lib.gp_csr_extremum_backward.argtypes = [_int, _vp, _i64, _i64, _i64, _i64, _i64, _i64,
                                             _vp, _i64, _vp, _vp, _vp, _int]
    lib.gp_csr_broadcast.argtypes = [_int, _vp, _i64, _i64, _i64, _vp, _i64, _vp, _int]
    lib.gp_csr_broadcast_mean.argtypes = [_int, _vp, _i64, _i64, _i64, _vp, _i64, _vp, _int]
    lib.gp_scatter_reduce.argtypes = [_int, _int, _vp, _i64, _i64, _i64, _i64, _i64, _i64,
                                      _vp, _i64, _vp, _int]
    lib.gp_scatter_extremum_backward.argtypes = [_int, _vp, _i64, _i64, _i64, _i64, _i64,
                                                 _i64, _vp, _i64, _vp, _vp, _vp, _int]
    lib.gp_order_reduce.argtypes = [_int, _int, _vp, _i64, _i64, _i64, _i64, _i64, _i64,
                                    _vp, _vp, _i64, _vp, _int]
    lib.gp_order_extremum_backward.argtypes = [_int, _vp, _i64, _i64, _i64, _i64, _i64,
                                               _i64, _vp, _vp, _i64, _vp, _vp, _vp, _int]
    lib.gp_csr_moments.argtypes = [_int, _vp, _i64, _i64, _i64, _i64, _i64, _i64, _vp, _i64,
                                   _vp, _vp, _vp, _vp, _int]
    lib.gp_csr_moments_backward.argtypes = [_int, _vp, _i64, _i64, _i64, _i64, _i64, _i64,
                                            _vp, _i64, _vp, _vp, _vp, _vp, _int]
    lib.gp_csr_power_mean.argtypes = [_int, _int, _vp, _i64, _i64, _i64, _i64, _i64, _i64,
                                      _vp, _i64, _vp, _vp, _int]
    lib.gp_csr_power_mean_backward.argtypes = [_int, _int, _vp, _i64, _i64, _i64, _i64, _i64,
                                               _i64, _vp, _i64, _vp, _vp, _vp, _int]
    lib.gp_index_broadcast.argtypes = [_int, _vp, _i64, _i64, _i64, _vp, _i64, _vp, _int]
    lib.gp_index_order.argtypes = [_vp, _i64, _i64, _vp, _vp]
    lib.gp_index_counts.argtypes = [_vp, _i64, _i64, _vp]
    lib.gp_run_extremum_backward.argtypes = [_int, _vp, _i64, _i64, _vp, _vp, _vp, _int]
    lib.gp_index_to_ptr.argtypes = [_vp, _i64, _i64, _vp, _vp]
    lib.gp_index_to_ptr.restype = _i64
    lib.gp_ptr_stats.argtypes = [_vp, _i64, _vp]
    lib.gp_equal_bytes.argtypes = [_vp, _vp, _i64]
    return lib


@functools.lru_cache(maxsize=None)
def _equal_bytes() -> Any:
    """The memcmp helper, looked up once (a ctypes attribute lookup costs a dict probe)."""
    lib = library()
    return None if lib is None else lib.gp_equal_bytes


@torch.compiler.assume_constant_result  # torch.compile asks once, never traces the build
def available() -> bool:
    """Whether the kernels are built and loaded (building them on first use)."""
    return library() is not None


def dispatch_mode() -> bool:
    """Whether a ``TorchDispatchMode`` is active (``make_fx``, its ``pre_dispatch=True``
    form, FlopCounterMode, ...): it sees torch ops only, so neither the C helpers nor a
    cache outside its trace may stand in for them."""
    return (_get_current_dispatch_mode() is not None
            or _len_torch_dispatch_stack_pre_dispatch() > 0)


#: Whether a tensor is batched by PyTorch's legacy vmap (``is_grads_batched``,
#: ``jacobian(..., vectorize=True)``): a plain-looking tensor with no storage to read.
legacy_batched = torch._C._functorch.is_legacy_batchedtensor


def cpu_index(index: Tensor) -> bool:
    """Whether the index helpers below take ``index`` (a contiguous int64 CPU tensor)."""
    return (type(index) is Tensor and index.is_cpu and index.dtype == torch.int64
            and index.is_contiguous() and not index.is_neg() and library() is not None)


def index_to_ptr(index: Tensor, ptr: Optional[Tensor]
                 ) -> Tuple[int, int, bool, Optional[Tensor], int]:
    """``(min, max, non-decreasing, ptr, number of empty sets)`` of a set index, in one
    pass. ``ptr`` is an ``int64 [B + 1]`` buffer to fill, or ``None`` for the statistics
    only; it is returned filled if the index is non-decreasing, else ``None``. Values
    outside ``[0, B)`` give a ``ptr`` the kernels reject."""
    check_buffer("graphpool index_to_ptr", "index", index, torch.int64)
    if ptr is not None:
        check_buffer("graphpool index_to_ptr", "ptr", ptr, torch.int64)
    stats = _Stats()
    empty = library().gp_index_to_ptr(index.data_ptr(), index.numel(),
                                      -1 if ptr is None else ptr.numel() - 1, stats,
                                      0 if ptr is None else ptr.data_ptr())
    lo, hi, is_sorted, _ = stats
    return lo, hi, bool(is_sorted), (ptr if empty >= 0 else None), empty


def index_counts(index: Tensor, counts: Tensor) -> bool:
    """Fill ``counts`` (``int64 [B]``) with the rows per set of ``index``, in one pass;
    ``False`` (``counts`` then meaningless) when an id is outside ``[0, B)``."""
    check_buffer("graphpool index_counts", "index", index, torch.int64)
    check_buffer("graphpool index_counts", "counts", counts, torch.int64)
    return library().gp_index_counts(index.data_ptr(), index.numel(), counts.numel(),
                                     counts.data_ptr()) == 0


def index_order(index: Tensor, num_segments: int) -> Optional[Tuple[Tensor, Tensor]]:
    """``(ptr, perm)``: the sorted order of a set index in ``O(N + B)`` (a stable counting
    sort): ``perm`` lists the rows of set 0, then set 1, ..., each set's rows in row order,
    and ``ptr [B + 1]`` delimits them. ``None`` when an id is outside ``[0, B)``."""
    check_buffer("graphpool index_order", "index", index, torch.int64)
    ptr = torch.empty(num_segments + 1, dtype=torch.int64, device="cpu")
    perm = torch.empty(index.numel(), dtype=torch.int64, device="cpu")
    status = library().gp_index_order(index.data_ptr(), index.numel(), num_segments,
                                      ptr.data_ptr(), perm.data_ptr())
    return (ptr, perm) if status == 0 else None


def same_values(copy: Tensor, t: Tensor) -> bool:
    """``torch.equal(copy, t)`` for ``copy``, a contiguous CPU tensor that graphpool made,
    and a plain tensor ``t`` of the same dtype and shape: one ``memcmp`` (integers: equal
    bytes are equal values) when ``t`` is contiguous on the CPU and the helpers are built."""
    equal = _equal_bytes()
    if equal is not None and t.is_cpu and t.is_contiguous() and not t.dtype.is_floating_point:
        return bool(equal(copy.data_ptr(), t.data_ptr(), t.nbytes))
    return torch.equal(copy, t)


def ptr_stats(ptr: Tensor) -> Tuple[int, int, bool, int]:
    """``(ptr[0], ptr[-1], non-decreasing, number of empty sets)`` of a non-empty CSR
    pointer, in one pass."""
    check_ptr("graphpool ptr_stats", ptr)
    stats = _Stats()
    library().gp_ptr_stats(ptr.data_ptr(), ptr.numel(), stats)
    first, last, monotone, empty = stats
    return first, last, bool(monotone), empty


_PLAIN = (Tensor, torch.nn.Parameter)


def check_buffer(op: str, name: str, t: Any, dtype: Optional[torch.dtype],
                  numel: Optional[int] = None, contiguous: bool = True, dims: int = 0) -> None:
    """Every buffer handed to C is checked here: a CPU tensor with storage, of the dtype,
    size and layout the kernel assumes, so that no call can read or write out of bounds,
    and whose bytes are its values: no negation or conjugate bit (a view such as
    ``z.conj().imag`` holds the values negated lazily; C would read them un-negated).
    (Torch has no negative strides; a tensor without storage fails ``data_ptr()``.)"""
    if (type(t) in _PLAIN and t.is_cpu and (dtype is None or t.dtype == dtype)
            and (not dims or t.dim() >= dims) and (numel is None or t.numel() == numel)
            and (not contiguous or t.is_contiguous()) and not t.is_neg() and not t.is_conj()
            and not torch._C._functorch.is_functorch_wrapped_tensor(t)
            and not legacy_batched(t)):
        return  # the common case, in one expression
    problem = None
    if not isinstance(t, Tensor):
        problem = "a tensor"
    elif (t.device.type != "cpu" or type(t) not in (Tensor, torch.nn.Parameter)
          or torch._C._functorch.is_functorch_wrapped_tensor(t)
          or legacy_batched(t)):
        problem = "a plain CPU tensor (no subclass, no torch.func wrapper)"
    elif dtype is not None and t.dtype != dtype:
        problem = f"dtype {dtype}"
    elif dims and t.dim() < dims:
        problem = f"at least {dims} dims"
    elif numel is not None and t.numel() != numel:
        problem = f"{numel} elements"
    elif contiguous and not t.is_contiguous():
        problem = "a contiguous tensor"
    elif t.is_neg() or t.is_conj():
        problem = "a tensor without a negation or conjugate bit (resolve_neg(), resolve_conj())"
    if problem is not None:
        got = f"a {t.dtype} tensor of shape {tuple(t.shape)} on {t.device}" \
            if isinstance(t, Tensor) else repr(t)
        raise GraphpoolError(op, name, problem, got,
                             "call the readout functions, which prepare these buffers")


def check_ptr(op: str, ptr: Tensor) -> int:
    if type(ptr) is Tensor and ptr.dtype == torch.int64 and ptr.is_cpu and ptr.dim() == 1 \
            and ptr.is_contiguous() and ptr.numel() >= 1:
        return ptr.numel() - 1  # the common case (a wrapped tensor fails data_ptr())
    check_buffer(op, "ptr", ptr, torch.int64)
    if ptr.dim() != 1 or ptr.numel() < 1:
        raise GraphpoolError(op, "ptr", "a [B + 1] pointer", f"shape {tuple(ptr.shape)}",
                             "pass Segments.ptr")
    return ptr.numel() - 1
