r"""How rows of ``x`` are grouped into sets, described once.

A :class:`Segments` says which rows of a node tensor ``x`` (nodes on dim ``-2``,
features last) belong to which of ``B`` sets. It is built from any of the
usual descriptions and validated once, when it is built:

=====================  ===============================================  ================
constructor            input                                            kernel path
=====================  ===============================================  ================
``from_index``         batch/index vector (PyG's ``batch``), any order  CSR if sorted,
                                                                        else scatter
``from_ptr``           CSR pointer ``[0, n_0, n_0 + n_1, ..., N]``      CSR
``uniform``            ``B`` sets of ``size`` consecutive rows (grids)  dense
``from_mask``          padded batch ``[B, Nmax, F]`` + bool mask        dense (masked)
``from_pyg``           a PyG ``Batch`` or ``Data``                      CSR
=====================  ===============================================  ================

Counts and sortedness are always known; ``index`` and ``ptr`` convert into each
other on demand. Empty sets are legal anywhere, including trailing ones when
``num_segments`` is given.

Checks that must read index *values* (range, sortedness, monotone ``ptr``) run
when ``validate=True`` (the default). They cost one host-device synchronisation;
pass ``validate=False`` to skip them when the input is known to be well formed.
They are also skipped while ``torch.compile`` traces, where reading values would
break the graph. Shape, dtype and device checks always run.
"""
from __future__ import annotations

import enum
import functools
import math
from typing import Any, Optional, Tuple

import torch
from torch import Tensor
from torch._subclasses.fake_tensor import is_fake as _is_fake
from torch.fx.experimental.proxy_tensor import get_proxy_mode

from .errors import GraphpoolError, describe
from . import _native as compiled  # the index helpers of the compiled library

__all__ = ["Kind", "Segments"]


class Kind(str, enum.Enum):
    r"""How a :class:`Segments` stores its grouping; it decides the kernel path.

    Example:
        >>> Kind.CSR, Kind("scatter").sorted
        (<Kind.CSR: 'csr'>, False)
    """

    UNIFORM = "uniform"  #: ``B`` sets of ``size`` consecutive rows (image grids)
    MASK = "mask"  #: a padded ``[B, Nmax]`` batch and its bool mask
    CSR = "csr"  #: sorted rows: a CSR pointer (and, on demand, a sorted index)
    SCATTER = "scatter"  #: an unsorted index

    @property
    def sorted(self) -> bool:
        """Whether each set's rows are consecutive (every kind but ``SCATTER``)."""
        return self is not Kind.SCATTER

    def __str__(self) -> str:
        return self.value
_CPU = torch.device("cpu")  # the C helpers' buffers, whatever the default device
_INTEGER = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def _check_tensor(where: str, name: str, t: Any, fix: str) -> None:
    """Tensors that graphpool can read: real storage, not a meta or transform-wrapped one."""
    if t.device.type == "meta":
        raise GraphpoolError(where, name, "a tensor with data (cpu or cuda)", describe(t),
                             "meta tensors have no values to group by; for shape-only tracing "
                             "use FakeTensorMode, torch.export or torch.compile")
    if not torch.compiler.is_compiling() and torch._C._functorch.is_functorch_wrapped_tensor(t):
        raise GraphpoolError(where, name, "a plain tensor (not transformed by torch.func)",
                             "a tensor wrapped by vmap/grad/jvp",
                             "build the grouping outside the torch.func transform (only x "
                             "may be transformed)")


def _check_integer_vector(where: str, name: str, t: Any, fix: str) -> Tensor:
    if not isinstance(t, Tensor):
        raise GraphpoolError(where, name, "a 1-D integer torch.Tensor", describe(t), fix)
    if t.dtype not in _INTEGER:
        raise GraphpoolError(where, name, "an integer tensor (torch.long)", describe(t),
                             f"convert it with {name}.long()")
    if t.dim() != 1 or t.layout != torch.strided:
        raise GraphpoolError(where, name, "a dense 1-D tensor", describe(t) + (
            f" ({t.layout})" if t.layout != torch.strided else ""), fix)
    _check_tensor(where, name, t, fix)
    if t.dtype == torch.int64 and t.is_contiguous() and (torch.compiler.is_compiling()
                                                         or not t.is_neg()):
        return t  # (dynamo traces no is_neg; the graph's ops resolve the bit)
    return t.resolve_neg().long().contiguous()  # (a negation bit: the C helpers read bytes)


def is_fake(t: Tensor) -> bool:
    """Whether ``t`` is a FakeTensor (``make_fx``'s fake and symbolic modes,
    ``FakeTensorMode``): a tensor without values to read. A plain tensor is not (checked
    first: the test costs about a microsecond)."""
    return type(t) is not Tensor and _is_fake(t)


def _without_values(t: Tensor) -> bool:
    """Whether ``t`` is a FakeTensor outside torch.compile and torch.export (which trace
    with fake tensors of their own and keep sizes symbolic): its values cannot be read."""
    return (not torch.compiler.is_compiling() and not torch.compiler.is_exporting()
            and is_fake(t))


def _private(t: Tensor, source: Any) -> Tensor:
    """``t``, copied if it shares memory with the user's ``source`` tensor: a Segments owns
    its tensors, so no write the user makes later can change a grouping in use."""
    if torch.compiler.is_compiling() or is_fake(t):  # a graph reads its inputs when it runs
        return t
    if isinstance(source, Tensor) and t.untyped_storage().data_ptr() == \
            source.untyped_storage().data_ptr():
        return t.clone()
    return t


def _as_device(device: Any, where: str = "Segments") -> torch.device:
    """``device`` as tensors report it (``"cuda"`` -> ``cuda:0``), so comparisons hold."""
    try:
        if not isinstance(device, torch.device):
            device = torch.device(device)
        if device.type == "cpu":
            return torch.device("cpu")  # tensors report 'cpu' whatever index was asked
        return torch.empty(0, device=device).device  # an unavailable device fails here
    except (RuntimeError, TypeError, AssertionError) as err:
        raise GraphpoolError(where, "device", "a device torch can use ('cpu', 'cuda:0', ...)",
                             repr(device), f"pass an available device ({err})") from None


def check_count(where: str, name: str, value: Any, minimum: int = 0) -> int:
    """``value`` as an int >= ``minimum``: Python ints, 0-d integer tensors and symbolic
    ints; bools, floats, numpy scalars and sequences are refused."""
    if isinstance(value, Tensor) and value.dim() == 0 and value.dtype in _INTEGER:
        value = int(value)
    if isinstance(value, torch.SymInt):
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        fix = (f"pass int({name})" if type(value).__module__ == "numpy"
               else f"pass a Python int >= {minimum}")
        raise GraphpoolError(where, name, f"an int >= {minimum}",
                             f"{type(value).__name__} {value!r}", fix)
    if value < minimum:
        raise GraphpoolError(where, name, f"an int >= {minimum}", repr(value),
                             f"pass a Python int >= {minimum}")
    return value


def check_flag(where: str, name: str, value: Any, allow_none: bool = False) -> Optional[bool]:
    """A promise or switch must be exactly ``True`` or ``False`` (or ``None`` if allowed):
    truthy stand-ins (``1``, ``np.bool_``, a tensor) are refused, never trusted."""
    if value is None and allow_none:
        return None
    if value is True or value is False:
        return value
    choices = "True, False or None" if allow_none else "True or False"
    raise GraphpoolError(where, name, choices, f"{type(value).__name__} {value!r}",
                         f"pass a Python bool, e.g. {name}=bool(...)")


def alloc(where: str, name: str, shape: Any, **kwargs: Any) -> Tensor:
    """``torch.empty(shape)``, or a GraphpoolError blaming ``name`` when it cannot be had."""
    try:
        return torch.empty(shape, **kwargs)
    except (RuntimeError, OverflowError, MemoryError, TypeError) as err:
        raise GraphpoolError(where, name, "a size whose tensors fit in memory",
                             f"{name} giving a tensor of shape {tuple(shape)}",
                             f"pass a smaller {name} ({str(err).splitlines()[0][:80]})"
                             ) from None


def check_nodes_tensor(where: str, x: Tensor) -> None:
    """``x`` can be read out: a dense (strided, not nested) tensor with data."""
    if x.is_nested:
        raise GraphpoolError(where, "x", "a dense tensor (not nested)", "a nested tensor",
                             "pass torch.cat(list_of_sets) with a batch vector, or "
                             "x.to_padded_tensor(0) with a mask grouping")
    if x.layout != torch.strided:
        raise GraphpoolError(where, "x", "a dense (strided) tensor", f"a {x.layout} tensor",
                             "convert it with x.to_dense()")
    if x.device.type == "meta":
        raise GraphpoolError(where, "x", "a tensor with data (cpu or cuda)", describe(x),
                             "for shape-only tracing use FakeTensorMode, torch.export or "
                             "torch.compile, which graphpool supports")


#: Up to this many sets, a ``[*, B, F]`` output holds at most as many rows as ``x`` could
#: have: :func:`probe_output` does not probe it.
UNPROBED_SETS = 1 << 20


def probe_output(where: str, name: str, x: Tensor, num_segments: int) -> None:
    """Fail with a GraphpoolError naming ``name`` when a ``[*, B, F]`` output for ``x``
    cannot be allocated, before anything of size ``B`` is. Outputs under 1 GiB are not
    probed; larger ones are allocated once and freed (untouched memory costs nothing)."""
    if isinstance(num_segments, torch.SymInt) or torch.compiler.is_compiling() or \
            num_segments <= UNPROBED_SETS:  # a symbolic count first: comparing adds a guard
        return  # [*, B, F] for B <= 2**20 is at most 2**20 rows of x: nothing to probe
    rows = math.prod(x.shape[:-2]) if x.dim() > 2 else 1
    numel = rows * num_segments * (x.size(-1) if x.dim() >= 2 else 1)
    if numel * x.element_size() >= 1 << 30:
        alloc(where, name, (numel,), dtype=x.dtype, device=x.device)


def _is_pyg_data(obj: Any) -> bool:
    try:
        from torch_geometric.data import Data
    except ImportError:  # pragma: no cover - torch_geometric is a runtime dependency
        return False
    return isinstance(obj, Data)


def _plain_tensors(fn):
    """Build grouping tensors with torch.func transforms and inference mode switched off:
    they depend on the grouping only (never on ``x``), so they are plain tensors, valid at
    every transform level (vmap, grad, jvp, hessian nest levels) and outside the
    ``torch.inference_mode`` block that built them (a grouping built or first read in an
    evaluation pass serves training steps after it, whose backward saves its tensors)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if torch.compiler.is_compiling():
            return fn(*args, **kwargs)
        if torch.is_inference_mode_enabled():
            with torch.inference_mode(False):
                return wrapper(*args, **kwargs)
        if not torch._C._are_functorch_transforms_active():
            return fn(*args, **kwargs)
        with torch._C._DisableFuncTorch():
            return fn(*args, **kwargs)
    return wrapper


def _jit_tracing() -> bool:
    return torch._C._get_tracing_state() is not None  # torch.jit.is_tracing, minus Python


def _recording() -> bool:
    """Whether a tracer records the ops for other inputs: ``torch.jit.trace`` or
    ``make_fx`` (its proxy mode). Neither sees data-dependent choices, so what the example
    index says (its order, its number of sets) would be replayed for every input.
    ``torch.export`` keeps such sizes symbolic instead (see :func:`_symbolic_count`)."""
    return _jit_tracing() or (not torch.compiler.is_compiling()  # (dynamo keeps sizes too)
                              and compiled.dispatch_mode() and get_proxy_mode() is not None
                              and not torch.compiler.is_exporting())


#: Up to this many sets, :meth:`Segments.from_index` allocates the ``ptr`` of its common case
#: without :func:`alloc`'s error handling (``8 MiB``: no allocation of it can fail).
_FAST_SETS = 1 << 20


def _plain_eager() -> bool:
    """Whether no tracer, compiler, exporter, ``torch.func`` transform or dispatch mode
    is running: eager code, where the C helpers may read an index."""
    return (not torch.compiler.is_compiling() and not torch.compiler.is_exporting()
            and torch._C._get_tracing_state() is None
            and not torch._C._are_functorch_transforms_active()
            and not compiled.dispatch_mode())


def _helpers_usable(t: Tensor) -> bool:
    """Whether the C index helpers may read ``t``: not while torch.compile, jit.trace, a
    torch.func transform or a dispatch mode (``make_fx``, ...) is running: they see
    through none of them, and a recorded graph would keep the buffers they fill unfilled."""
    return (not torch.compiler.is_compiling() and not torch.jit.is_tracing()
            and not torch._C._are_functorch_transforms_active()
            and not compiled.dispatch_mode() and compiled.cpu_index(t))


class Segments:
    r"""A grouping of the rows of ``x`` into ``num_segments`` sets.

    Build it with one of the constructors (:meth:`from_index`, :meth:`from_ptr`,
    :meth:`uniform`, :meth:`from_mask`, :meth:`from_pyg`); every readout accepts
    any of them. Set :math:`b` holds :math:`n_b` = ``counts[b]`` rows and

    .. math::
        \mathrm{ptr}_0 = 0, \qquad \mathrm{ptr}_{b+1} = \mathrm{ptr}_b + n_b .

    Attributes:
        num_segments (int): number of sets ``B``.
        num_nodes (int): size of ``x`` along the node axis (dim ``-2``). For a mask
            grouping this is ``Nmax`` and ``x`` has shape ``[*, B, Nmax, F]``.
        counts (Tensor): ``[B]`` long tensor, rows per set (for a mask: valid rows);
            computed on first use when the grouping did not need it.
        device (torch.device): where the grouping's tensors live.
        kind (Kind): :attr:`Kind.UNIFORM`, :attr:`Kind.MASK`, :attr:`Kind.CSR` (sorted) or
            :attr:`Kind.SCATTER` (unsorted); it decides the kernel path. A ``str`` enum:
            ``seg.kind == "csr"`` holds too.
        size (int or None): rows per set of a uniform grouping.
        mask (Tensor or None): ``[B, Nmax]`` bool mask of a padded grouping.
        has_empty (bool or None): whether some set is empty, when known without reading
            tensor values again (``None``: unknown).

    A Segments owns its tensors: constructors copy a user tensor they keep (the index of
    an unsorted grouping, a ``ptr``, a mask), and ``counts``, ``index``, ``ptr`` and
    ``mask`` hand out copies. No write through any alias of the user's tensors, and no
    write into a tensor read from a Segments, can change a grouping in use (by a cached
    readout or by a backward pass still to come). Copies cost one pass over the copied
    tensor: ``N`` ids for an unsorted index, ``B + 1`` for a ptr.

    Example:
        >>> import torch
        >>> from graphpool import Segments
        >>> seg = Segments.from_index(torch.tensor([0, 0, 1, 3]), num_segments=5)
        >>> seg
        Segments(kind='csr', num_segments=5, num_nodes=4)
        >>> seg.counts.tolist(), seg.ptr.tolist()
        ([2, 1, 0, 1, 0], [0, 2, 3, 3, 4, 4])
        >>> Segments.from_ptr(torch.tensor([0, 2, 3, 3, 4, 4])).index.tolist()
        [0, 0, 1, 3]
    """

    __slots__ = ("num_segments", "num_nodes", "kind", "size", "has_empty", "device",
                 "checked", "_c", "_i", "_p", "_m", "_o")

    def __init__(self, *, kind: Kind, num_segments: int, num_nodes: int,
                 device: torch.device, counts: Optional[Tensor] = None,
                 index: Optional[Tensor] = None, ptr: Optional[Tensor] = None,
                 size: Optional[int] = None, mask: Optional[Tensor] = None,
                 has_empty: Optional[bool] = None, checked: bool = True) -> None:
        # internal: users go through the constructors, which hand over tensors that this
        # object alone owns. Counts may be left for later when a ptr, a uniform size or an
        # index determines them. `checked`: the ptr/index values are known to be in range.
        assert isinstance(kind, Kind), kind
        self.kind = kind
        self.num_segments = num_segments
        self.num_nodes = num_nodes
        self.device = device
        self.size = size
        self.has_empty = has_empty
        self.checked = checked
        self._c, self._i, self._p, self._m = counts, index, ptr, mask
        self._o: Optional[Tuple[Tensor, Tensor]] = None

    # ------------------------------------------------------------------ builders
    @classmethod
    @_plain_tensors
    def from_index(cls, index: Tensor, num_segments: Optional[int] = None, *,
                   sorted: Optional[bool] = None, validate: bool = True) -> "Segments":
        r"""Group rows by a set index (PyG's ``batch`` vector): row ``i`` is in set ``index[i]``.

        Args:
            index: ``[N]`` integer tensor with values in ``[0, num_segments)``.
            num_segments: number of sets ``B``. Inferred as ``index.max() + 1``
                (one host sync) when omitted; give it to allow trailing empty sets
                and to avoid the sync.
            sorted: whether ``index`` is non-decreasing. ``None`` detects it: always
                for a CPU index (one pass of the compiled helper), while validating
                otherwise (an unvalidated CUDA index is treated as unsorted); ``True``
                promises it (checked when validating, and always on the CPU, where the
                order is known for free). Only the Python bools and ``None`` are taken.
            validate: check index values (range, sortedness). A CPU index is always
                range-checked (its one pass finds the range anyway).

        Example:
            >>> import torch
            >>> seg = Segments.from_index(torch.tensor([1, 0, 1]))
            >>> seg.kind, seg.num_segments, seg.counts.tolist()
            (<Kind.SCATTER: 'scatter'>, 2, [1, 2])
        """
        where = "Segments.from_index"
        stats = None
        if (type(num_segments) is int and 0 <= num_segments <= _FAST_SETS and sorted is None
                and (validate is True or validate is False) and type(index) is Tensor
                and index.layout is torch.strided and index.dim() == 1 and index.numel()
                and _plain_eager() and compiled.cpu_index(index)
                and not torch._C._functorch.is_functorch_wrapped_tensor(index)):
            # the common case (a PyG batch vector in eager code) without the general
            # path's guards: the same C pass, the same checks, the same Segments
            stats = compiled.index_to_ptr(index, torch.empty(num_segments + 1,
                                                             dtype=torch.int64, device=_CPU))
            lo, hi, is_sorted, ptr, empty = stats
            if is_sorted and ptr is not None and lo >= 0 and hi < num_segments:
                return cls(kind=Kind.CSR, num_segments=num_segments, num_nodes=index.numel(),
                           device=index.device, ptr=ptr, has_empty=empty > 0, checked=True)
            counts = torch.empty(num_segments, dtype=torch.int64, device=_CPU)
            if not is_sorted and lo >= 0 and hi < num_segments and \
                    compiled.index_counts(index, counts):  # (a message-passing index)
                return cls(kind=Kind.SCATTER, num_segments=num_segments,
                           num_nodes=index.numel(), device=index.device, counts=counts,
                           index=index.clone(), checked=True)  # ours: the user's may change
        user = index
        index = _check_integer_vector(where, "index", index,
                                      "pass a 1-D tensor with one set id per row of x")
        sorted = check_flag(where, "sorted", sorted, allow_none=True)
        validate = check_flag(where, "validate", validate)
        n = index.numel()
        if num_segments is not None:
            num_segments = check_count(where, "num_segments", num_segments)
        compiling = torch.compiler.is_compiling()
        tracing = _recording()
        if tracing and num_segments is None:
            raise GraphpoolError(where, "num_segments", "an int while torch.jit.trace or "
                                 "make_fx records "
                                 "(the trace would fix the number of sets of the example)",
                                 "None", "pass num_graphs=B, or use torch.export, "
                                 "torch.onnx.export(..., dynamo=True) or torch.compile, "
                                 "which keep it symbolic")
        if num_segments is None and torch.compiler.is_exporting() and n:  # read on each run
            num_segments = _symbolic_count(where, index)
        fast = _helpers_usable(index)
        unknown = _without_values(index)
        if unknown and num_segments is None:  # make_fx(tracing_mode="fake"), FakeTensorMode
            raise GraphpoolError(where, "num_segments", "an int for an index without values "
                                 "(a FakeTensor)", "None", "pass num_graphs=B")
        # (fast: a CPU index)
        check_values = (validate or index.is_cpu) and not compiling and not unknown
        ptr = empty = None
        if n == 0:
            lo, hi, is_sorted = 0, -1, True
        elif stats is not None:  # the pass of the common case above
            lo, hi, is_sorted, ptr, empty = stats
        elif fast:  # one pass over a CPU index (no device sync): stats, and ptr if sorted
            lo, hi, is_sorted, ptr, empty = compiled.index_to_ptr(
                index, None if num_segments is None else
                alloc(where, "num_segments", (num_segments + 1,), dtype=torch.int64,
                      device=_CPU))
        elif check_values or num_segments is None:
            stats = torch.stack([index.min(), index.max(),
                                 (index[1:] >= index[:-1]).all().long()]).tolist()
            lo, hi, is_sorted = stats[0], stats[1], bool(stats[2])
        else:  # values unread: nothing is known about the order
            lo, hi, is_sorted = 0, -1, None
        if num_segments is None:
            num_segments = hi + 1
        if torch.compiler.is_exporting():  # checked when the exported program runs
            index = _asserted_index(where, index, num_segments)
        if check_values:
            if lo < 0:
                raise GraphpoolError(where, "index", "non-negative set ids",
                                     f"a minimum of {lo}",
                                     "set ids start at 0; remove or remap negative ids")
            if hi >= num_segments:
                raise GraphpoolError(
                    where, "num_segments", f"an int >= {hi + 1} (index.max() + 1)",
                    num_segments, f"pass num_segments >= {hi + 1} or leave it out to infer it")
        if sorted is True and is_sorted is False:
            raise GraphpoolError(where, "sorted", "True only for a non-decreasing index",
                                 "True for an unsorted index",
                                 "pass sorted=None to detect it, or sort the rows")
        if sorted is None:
            sorted = bool(is_sorted)
        if tracing:  # the order of the example is not that of later inputs: scatter
            sorted = False
        if sorted and fast and ptr is None:  # num_segments was inferred
            _, _, _, ptr, empty = compiled.index_to_ptr(
                index, alloc(where, "num_segments", (num_segments + 1,), dtype=torch.int64,
                      device=_CPU))
        checked = check_values
        if sorted and ptr is not None:  # the ptr is ours; the index is derived on demand
            return cls(kind=Kind.CSR, num_segments=num_segments, num_nodes=n,
                       device=index.device, ptr=ptr, has_empty=empty > 0, checked=checked)
        counts = alloc(where, "num_segments", (num_segments,), dtype=torch.long,
                       device=index.device)
        if not (fast and compiled.index_counts(index, counts)):  # C: 1 pass (ids checked)
            counts.zero_().index_add_(0, index, torch.ones_like(index))
        if sorted:
            return cls(kind=Kind.CSR, num_segments=num_segments, num_nodes=n,
                       device=index.device, counts=counts, checked=checked)
        return cls(kind=Kind.SCATTER, num_segments=num_segments, num_nodes=n,
                   device=index.device, counts=counts, index=_private(index, user),
                   checked=checked)

    @classmethod
    @_plain_tensors
    def from_ptr(cls, ptr: Tensor, num_nodes: Optional[int] = None, *,
                 validate: bool = True) -> "Segments":
        r"""Group sorted rows by a CSR pointer: set ``b`` is rows ``ptr[b]:ptr[b+1]``.

        Args:
            ptr: ``[B + 1]`` non-decreasing integer tensor with ``ptr[0] == 0`` and
                ``ptr[-1] == N``.
            num_nodes: ``N``; read from ``ptr[-1]`` (one host sync) when omitted.
            validate: check that ``ptr`` starts at 0, ends at ``N`` and never decreases.
                Without it the check still runs before a kernel first reads rows by
                ``ptr`` (no kernel ever reads out of bounds).

        Example:
            >>> import torch
            >>> Segments.from_ptr(torch.tensor([0, 3, 3, 5])).counts.tolist()
            [3, 0, 2]
        """
        where = "Segments.from_ptr"
        user = ptr
        ptr = _check_integer_vector(where, "ptr", ptr,
                                    "pass [0, n_0, n_0 + n_1, ..., N] (length B + 1)")
        validate = check_flag(where, "validate", validate)
        if ptr.numel() == 0:
            raise GraphpoolError(where, "ptr", "at least one entry ([0] for zero sets)",
                                 "an empty tensor", "pass torch.tensor([0]) for zero sets")
        if num_nodes is not None:
            num_nodes = check_count(where, "num_nodes", num_nodes)
        has_empty = None
        compiling = torch.compiler.is_compiling()
        unknown = _without_values(ptr)
        if unknown and num_nodes is None:  # make_fx(tracing_mode="fake"), FakeTensorMode
            raise GraphpoolError(where, "num_nodes", "an int for a ptr without values "
                                 "(a FakeTensor)", "None", "pass num_nodes=x.size(-2)")
        check_values = validate and not compiling and not unknown
        if check_values or num_nodes is None:
            first, last, monotone, empty = _ptr_stats(ptr)
            has_empty = empty if empty is None else empty > 0
            if num_nodes is None:
                num_nodes = last
            if check_values:
                _check_ptr_values(where, ptr, first, last, monotone, num_nodes)
        ptr = _private(ptr, user)
        if _recording():  # a recorded graph must not index rows by an unchecked ptr
            counts = ptr[1:] - ptr[:-1]
            index = torch.repeat_interleave(torch.arange(ptr.numel() - 1, device=ptr.device),
                                            counts)  # sized by the counts when replayed
            return cls(kind=Kind.SCATTER, num_segments=ptr.numel() - 1, num_nodes=num_nodes,
                       device=ptr.device, counts=counts, index=index, checked=check_values)
        return cls(kind=Kind.CSR, num_segments=ptr.numel() - 1, num_nodes=num_nodes,
                   device=ptr.device, ptr=ptr, has_empty=has_empty, checked=check_values)

    @classmethod
    def uniform(cls, num_segments: int, size: int, *,
                device: Optional[torch.device] = None) -> "Segments":
        r"""``num_segments`` sets of ``size`` consecutive rows each (image grids: ``size = H*W``).

        Rows ``b*size : (b+1)*size`` form set ``b``; ``x`` has ``num_segments * size``
        rows. No index is materialised: kernels reduce a ``[*, B, size, F]`` view.

        Example:
            >>> Segments.uniform(2, 3).ptr.tolist()
            [0, 3, 6]
        """
        where = "Segments.uniform"
        num_segments = check_count(where, "num_segments", num_segments)
        size = check_count(where, "size", size)
        known = type(size) is int and type(num_segments) is int  # (not symbolic sizes)
        return cls(kind=Kind.UNIFORM, num_segments=num_segments, num_nodes=num_segments * size,
                   device=_as_device("cpu" if device is None else device, where),
                   size=size, has_empty=size == 0 and num_segments > 0 if known else None)

    @classmethod
    @_plain_tensors
    def from_mask(cls, mask: Tensor) -> "Segments":
        r"""A padded batch: ``x`` is ``[*, B, Nmax, F]`` and ``mask[b, i]`` marks real rows.

        Padding rows are never read: they may hold anything, ``nan`` included.

        Example:
            >>> import torch
            >>> mask = torch.tensor([[True, True, False], [False, False, False]])
            >>> Segments.from_mask(mask).counts.tolist()
            [2, 0]
        """
        where = "Segments.from_mask"
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.dim() != 2:
            raise GraphpoolError(where, "mask", "a [B, Nmax] bool tensor", describe(mask),
                                 "pass the mask of to_dense_batch (True = real node)")
        _check_tensor(where, "mask", mask, "")
        return cls(kind=Kind.MASK, num_segments=mask.size(0), num_nodes=mask.size(1),
                   device=mask.device, counts=mask.sum(1), mask=mask.clone())

    @classmethod
    def from_pyg(cls, data: Any, *, validate: bool = True) -> "Segments":
        r"""The grouping of a PyG ``Batch`` (its ``ptr``) or of a single ``Data`` (one set).

        Example:
            >>> import torch
            >>> from torch_geometric.data import Batch, Data
            >>> b = Batch.from_data_list([Data(x=torch.ones(2, 1)), Data(x=torch.ones(3, 1))])
            >>> Segments.from_pyg(b).counts.tolist()
            [2, 3]
        """
        where = "Segments.from_pyg"
        if not _is_pyg_data(data):
            raise GraphpoolError(where, "data", "a PyG Batch or Data", describe(data),
                                 "pass the batch of a DataLoader, or build the grouping from "
                                 "a batch vector with Segments.from_index(batch)")
        num_nodes = data.num_nodes
        if num_nodes is None:
            raise GraphpoolError(where, "data", "a PyG Batch or Data whose nodes are known "
                                 "(x, num_nodes, ptr or batch)", f"{type(data).__name__} "
                                 "without nodes", "give it x or num_nodes")
        ptr = getattr(data, "ptr", None)
        if ptr is not None:
            return cls.from_ptr(ptr, num_nodes=num_nodes, validate=validate)
        batch = getattr(data, "batch", None)
        if batch is not None:
            return cls.from_index(batch, getattr(data, "num_graphs", None), validate=validate)
        device = data.x.device if getattr(data, "x", None) is not None else None
        return cls.from_ptr(torch.tensor([0, num_nodes], device=device), num_nodes=num_nodes,
                            validate=False)

    # ----------------------------------------------------- internal tensors (not copied)
    # Kernels read these; derived ones are computed on first use and kept.
    def _keep(self, name: str, value: Tensor) -> Tensor:
        if not torch.compiler.is_compiling():  # no writes to objects while tracing
            setattr(self, name, value)
        return value

    # (each property returns its kept tensor before any check: the hot path; the builders
    # run with transforms and inference mode off)
    @property
    def _counts(self) -> Tensor:
        return self._c if self._c is not None else self._build_counts()

    @_plain_tensors
    def _build_counts(self) -> Tensor:
        if self.kind == Kind.UNIFORM:
            return self._keep("_c", torch.full((self.num_segments,), self.size,
                                               dtype=torch.long, device=self.device))
        assert self._p is not None, self  # every other grouping is built with counts or ptr
        ptr = self._checked_ptr("Segments")  # counts of an unchecked ptr could be negative
        return self._keep("_c", ptr[1:] - ptr[:-1])

    @property
    def _index(self) -> Tensor:
        return self._i if self._i is not None else self._build_index()

    @_plain_tensors
    def _build_index(self) -> Tensor:
        n = self.num_nodes if self.kind != Kind.MASK else None
        if n is not None and torch.compiler.is_exporting():  # ONNX has no repeat_interleave
            return _rows_of_ptr(self._checked_ptr("Segments"), n)
        return self._keep("_i", torch.repeat_interleave(
            torch.arange(self.num_segments, device=self.device), self._counts, output_size=n))

    @property
    def _ptr(self) -> Tensor:
        return self._p if self._p is not None else self._build_ptr()

    @_plain_tensors
    def _build_ptr(self) -> Tensor:
        if self.kind == Kind.SCATTER:
            raise GraphpoolError(
                "Segments.ptr", "segments", "sorted segments (kind 'csr', 'uniform' or "
                "'mask')", "an unsorted index",
                "sort the rows first: perm = index.argsort(stable=True); "
                "x, index = x[perm], index[perm]")
        counts = self._counts
        return self._keep("_p", torch.cat([counts.new_zeros(1), counts.cumsum(0)]))

    @property
    def _order(self) -> Optional[Tuple[Tensor, Tensor]]:
        """``(ptr, perm)`` of an unsorted CPU index: its sorted order (a stable counting
        sort, ``O(N + B)``, on first use), which the compiled kernels reduce by; ``None``
        for ids outside ``[0, num_segments)`` (only unchecked ids), which they report."""
        if self._o is None:
            self._o = self._build_order()
        return self._o

    @_plain_tensors
    def _build_order(self) -> Optional[Tuple[Tensor, Tensor]]:
        return compiled.index_order(self._index, self.num_segments)

    def _checked_ptr(self, where: str = "segment_reduce") -> Tensor:
        """The ptr, after checking its values if no one has yet (``validate=False``): a
        kernel that reads rows by ``ptr`` must never read out of bounds. While
        ``torch.export`` traces, the check is part of the program (:func:`_asserted_ptr`)."""
        ptr = self._ptr
        if self.checked or self.kind != Kind.CSR:
            return ptr
        if torch.compiler.is_exporting():
            return _asserted_ptr(where, ptr, self.num_nodes)
        if not torch.compiler.is_compiling() and not is_fake(ptr):  # (a FakeTensor has no
            first, last, monotone, _ = _ptr_stats(ptr)               # values, no memory)
            _check_ptr_values(where, ptr, first, last, monotone, self.num_nodes)
            self.checked = True
        return ptr

    # ------------------------------------------------------- public tensors (copies)
    @property
    def counts(self) -> Tensor:
        """``[B]`` rows per set (long); a copy."""
        return self._counts.clone()

    @property
    def index(self) -> Tensor:
        """``[N]`` set id of every row (for a mask: of every real row, in row-major order);
        a copy."""
        return self._index.clone()

    @property
    def ptr(self) -> Tensor:
        """``[B + 1]`` CSR pointer (a copy); only sorted groupings have one."""
        return self._ptr.clone()

    @property
    def mask(self) -> Optional[Tensor]:
        """``[B, Nmax]`` bool mask of a padded grouping (a copy), else ``None``."""
        return None if self._m is None else self._m.clone()

    def to(self, device: torch.device | str) -> "Segments":
        """The same grouping with its tensors on ``device``."""
        device = _as_device(device, "Segments.to")

        def move(t: Optional[Tensor]) -> Optional[Tensor]:
            return None if t is None else t.to(device, copy=True)
        return Segments(kind=self.kind, num_segments=self.num_segments,
                        num_nodes=self.num_nodes, device=device,
                        counts=move(self._c), index=move(self._i), ptr=move(self._p),
                        size=self.size, mask=move(self._m), has_empty=self.has_empty,
                        checked=self.checked)

    def __len__(self) -> int:
        return self.num_segments

    def __repr__(self) -> str:
        extra = f", size={self.size}" if self.kind == Kind.UNIFORM else ""
        return (f"Segments(kind={self.kind.value!r}, num_segments={self.num_segments}, "
                f"num_nodes={self.num_nodes}{extra})")


def _rows_of_ptr(ptr: Tensor, num_nodes: int) -> Tensor:
    """``[N]`` set of every row, ``|{c >= 1 : ptr[c] <= v}|``, by a scatter of the set ends
    and a cumulative sum (``O(N + B)``, standard ops that export to ONNX)."""
    ends = ptr.new_zeros(num_nodes + 1).scatter_add(0, ptr[1:], torch.ones_like(ptr[1:]))
    return ends.cumsum(0)[:-1]


def _asserted_index(where: str, index: Tensor, num_segments: Any) -> Tensor:
    """``index`` in an exported program, checked when it runs: an id outside
    ``[0, num_segments)`` fails the program's assertion (torch.export) and becomes
    ``num_segments``, out of range for every scatter and gather by it, so that onnxruntime
    (where the assertion does not reach, and a negative index counts from the end) fails
    too instead of returning a result."""
    ok = (index >= 0) & (index < num_segments)
    torch._assert_async(ok.all(), f"{where}: invalid 'index': expected set ids in "
                        f"[0, number of sets), got one outside. Fix: remap the ids, or pass "
                        f"the right number of sets")
    return index.masked_fill(~ok, num_segments)


def _asserted_ptr(where: str, ptr: Tensor, num_nodes: Any) -> Tensor:
    """``ptr`` in an exported program, checked when it runs: one that does not start at 0,
    decreases or does not end at ``num_nodes`` fails the program's assertion
    (torch.export) and the gather that passes it on (onnxruntime, where the assertion
    does not reach), instead of grouping rows by it."""
    ok = (ptr[0] == 0) & (ptr[-1] == num_nodes) & (ptr[1:] >= ptr[:-1]).all()
    torch._assert_async(ok, f"{where}: invalid 'ptr': expected a non-decreasing pointer from "
                        f"0 to the number of rows, got another. Fix: build ptr as "
                        f"cat([0], counts.cumsum(0))")
    slots = torch.arange(ptr.numel(), device=ptr.device)
    return ptr.index_select(0, torch.where(ok, slots, ptr.numel()))


def _symbolic_count(where: str, index: Tensor) -> int:
    """``index.max() + 1`` as a size that torch.export reads when the program runs. The
    program is traced for at least one set, so an empty index fails its assertion with
    graphpool's message (onnxruntime, where it does not reach, reads 0 sets)."""
    torch._assert_async(torch.scalar_tensor(index.numel()) > 0,
                        f"{where}: invalid 'index': expected at least one row in an exported "
                        f"program, which reads the number of sets as index.max() + 1, got an "
                        f"empty index. Fix: pass a ptr for batches that may be empty")
    count = (torch.cat([index.new_full((1,), -1), index]).max() + 1).item()
    torch._check(count >= 1)
    return count


def _ptr_stats(ptr: Tensor) -> Tuple[int, int, bool, Optional[int]]:
    """``(ptr[0], ptr[-1], non-decreasing, number of empty sets or None)``."""
    if _helpers_usable(ptr):
        return compiled.ptr_stats(ptr)  # one C pass, no torch ops
    first, last, monotone = torch.stack([
        ptr[0], ptr[-1], (ptr[1:] >= ptr[:-1]).all().long()]).tolist()
    return first, last, bool(monotone), None


def _check_ptr_values(where: str, ptr: Tensor, first: int, last: int, monotone: bool,
                      num_nodes: int) -> None:
    if first != 0:
        raise GraphpoolError(where, "ptr", "ptr[0] == 0", f"ptr[0] == {first}",
                             "a CSR pointer starts at 0; prepend 0 or subtract ptr[0]")
    if not monotone:
        raise GraphpoolError(where, "ptr", "a non-decreasing pointer",
                             f"a decreasing one ({ptr[:8].tolist()}...)",
                             "build ptr as cat([0], counts.cumsum(0))")
    if last != num_nodes:
        raise GraphpoolError(where, "ptr", f"ptr[-1] == N == {num_nodes} rows",
                             f"ptr[-1] == {last}", "ptr must end at the number of rows of x")
