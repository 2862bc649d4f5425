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

from typing import Any, Optional

import torch
from torch import Tensor

from .errors import GraphpoolError, describe
from .kernels import compiled

__all__ = ["Segments"]

_KINDS = ("uniform", "mask", "csr", "scatter")


def _check_integer_vector(where: str, name: str, t: Any, fix: str) -> Tensor:
    if not isinstance(t, Tensor):
        raise GraphpoolError(where, name, "a 1-D integer torch.Tensor", describe(t), fix)
    if t.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise GraphpoolError(where, name, "an integer tensor (torch.long)", describe(t),
                             f"convert it with {name}.long()")
    if t.dim() != 1:
        raise GraphpoolError(where, name, "a 1-D tensor", describe(t), fix)
    if t.dtype == torch.int64 and t.is_contiguous():
        return t
    return t.long().contiguous()


def _as_device(device: Any) -> torch.device:
    """``device`` as tensors report it (``"cuda"`` -> ``cuda:0``), so comparisons hold."""
    if not isinstance(device, torch.device):
        device = torch.device(device)
    if device.type == "cpu" or device.index is not None:
        return device
    return torch.empty(0, device=device).device


def _check_count(where: str, name: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, Tensor) and value.numel() == 1 and not value.is_floating_point():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise GraphpoolError(where, name, f"an int >= {minimum}", repr(value),
                             f"pass a Python int >= {minimum}")
    return value


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
        kind (str): ``"uniform"``, ``"mask"``, ``"csr"`` (sorted) or ``"scatter"``
            (unsorted); it decides the kernel path.
        size (int or None): rows per set of a uniform grouping.
        mask (Tensor or None): ``[B, Nmax]`` bool mask of a padded grouping.
        has_empty (bool or None): whether some set is empty, when known without reading
            tensor values again (``None``: unknown).

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

    __slots__ = ("num_segments", "num_nodes", "kind", "size", "mask", "has_empty", "device",
                 "_counts", "_index", "_ptr")

    def __init__(self, *, kind: str, num_segments: int, num_nodes: int,
                 device: torch.device, counts: Optional[Tensor] = None,
                 index: Optional[Tensor] = None, ptr: Optional[Tensor] = None,
                 size: Optional[int] = None, mask: Optional[Tensor] = None,
                 has_empty: Optional[bool] = None) -> None:
        # internal: users go through the constructors. Counts may be left for later when a
        # ptr, a uniform size or an index determines them.
        assert kind in _KINDS, kind
        self.kind = kind
        self.num_segments = num_segments
        self.num_nodes = num_nodes
        self.device = device
        self._counts = counts
        self.size = size
        self.mask = mask
        self.has_empty = has_empty
        self._index = index
        self._ptr = ptr

    # ------------------------------------------------------------------ builders
    @classmethod
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
                promises it (checked when validating).
            validate: check index values (range, sortedness).

        Example:
            >>> import torch
            >>> seg = Segments.from_index(torch.tensor([1, 0, 1]))
            >>> seg.kind, seg.num_segments, seg.counts.tolist()
            ('scatter', 2, [1, 2])
        """
        where = "Segments.from_index"
        index = _check_integer_vector(where, "index", index,
                                      "pass a 1-D tensor with one set id per row of x")
        n = index.numel()
        if num_segments is not None:
            num_segments = _check_count(where, "num_segments", num_segments)
        compiling = torch.compiler.is_compiling()
        check_values = validate and not compiling
        fast = not compiling and compiled.cpu_index(index)
        ptr = empty = None
        if n == 0:
            lo, hi, is_sorted = 0, -1, True
        elif fast:  # one pass over a CPU index (no device sync): stats, and ptr if sorted
            lo, hi, is_sorted, ptr, empty = compiled.index_to_ptr(index, num_segments)
        elif check_values or num_segments is None:
            stats = torch.stack([index.min(), index.max(),
                                 (index[1:] >= index[:-1]).all().long()]).tolist()
            lo, hi, is_sorted = stats[0], stats[1], bool(stats[2])
        else:  # values unread: nothing is known about the order
            lo, hi, is_sorted = 0, -1, None
        if num_segments is None:
            num_segments = hi + 1
        if check_values:
            if lo < 0:
                raise GraphpoolError(where, "index", "non-negative set ids",
                                     f"a minimum of {lo}",
                                     "set ids start at 0; remove or remap negative ids")
            if hi >= num_segments:
                raise GraphpoolError(
                    where, "num_segments", f"an int >= {hi + 1} (index.max() + 1)",
                    num_segments, f"pass num_segments >= {hi + 1} or leave it out to infer it")
            if sorted is True and not is_sorted:
                raise GraphpoolError(where, "sorted", "True only for a non-decreasing index",
                                     "True for an unsorted index",
                                     "pass sorted=None to detect it, or sort the rows")
        if sorted is None:
            sorted = bool(is_sorted)
        if sorted and fast and ptr is None and is_sorted:  # num_segments was inferred
            _, _, _, ptr, empty = compiled.index_to_ptr(index, num_segments)
        if sorted and ptr is not None:
            return cls(kind="csr", num_segments=num_segments, num_nodes=n,
                       device=index.device, index=index, ptr=ptr, has_empty=empty > 0)
        counts = torch.zeros(num_segments, dtype=torch.long, device=index.device)
        counts.index_add_(0, index, torch.ones_like(index))
        return cls(kind="csr" if sorted else "scatter", num_segments=num_segments,
                   num_nodes=n, device=index.device, counts=counts, index=index)

    @classmethod
    def from_ptr(cls, ptr: Tensor, num_nodes: Optional[int] = None, *,
                 validate: bool = True) -> "Segments":
        r"""Group sorted rows by a CSR pointer: set ``b`` is rows ``ptr[b]:ptr[b+1]``.

        Args:
            ptr: ``[B + 1]`` non-decreasing integer tensor with ``ptr[0] == 0`` and
                ``ptr[-1] == N``.
            num_nodes: ``N``; read from ``ptr[-1]`` (one host sync) when omitted.
            validate: check that ``ptr`` starts at 0, ends at ``N`` and never decreases.

        Example:
            >>> import torch
            >>> Segments.from_ptr(torch.tensor([0, 3, 3, 5])).counts.tolist()
            [3, 0, 2]
        """
        where = "Segments.from_ptr"
        ptr = _check_integer_vector(where, "ptr", ptr,
                                    "pass [0, n_0, n_0 + n_1, ..., N] (length B + 1)")
        if ptr.numel() == 0:
            raise GraphpoolError(where, "ptr", "at least one entry ([0] for zero sets)",
                                 "an empty tensor", "pass torch.tensor([0]) for zero sets")
        if num_nodes is not None:
            num_nodes = _check_count(where, "num_nodes", num_nodes)
        has_empty = None
        compiling = torch.compiler.is_compiling()
        check_values = validate and not compiling
        if check_values or num_nodes is None:
            if not compiling and compiled.cpu_index(ptr):
                # one C pass, no torch ops; a valid ptr's empty sets come with it
                first, last, monotone, empty = compiled.ptr_stats(ptr)
                has_empty = empty > 0
            else:
                first, last, monotone = torch.stack([
                    ptr[0], ptr[-1], (ptr[1:] >= ptr[:-1]).all().long()]).tolist()
            if num_nodes is None:
                num_nodes = last
            if check_values:
                if first != 0:
                    raise GraphpoolError(where, "ptr", "ptr[0] == 0", f"ptr[0] == {first}",
                                         "a CSR pointer starts at 0; prepend 0 or subtract ptr[0]")
                if not monotone:
                    raise GraphpoolError(where, "ptr", "a non-decreasing pointer",
                                         f"a decreasing one ({ptr.tolist()[:8]}...)",
                                         "build ptr as cat([0], counts.cumsum(0))")
                if last != num_nodes:
                    raise GraphpoolError(where, "ptr", f"ptr[-1] == N == {num_nodes} rows",
                                         f"ptr[-1] == {last}",
                                         "ptr must end at the number of rows of x")
        return cls(kind="csr", num_segments=ptr.numel() - 1, num_nodes=num_nodes,
                   device=ptr.device, ptr=ptr, has_empty=has_empty)

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
        num_segments = _check_count(where, "num_segments", num_segments)
        size = _check_count(where, "size", size)
        return cls(kind="uniform", num_segments=num_segments, num_nodes=num_segments * size,
                   device=_as_device("cpu" if device is None else device),
                   size=size, has_empty=size == 0 and num_segments > 0)

    @classmethod
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
        return cls(kind="mask", num_segments=mask.size(0), num_nodes=mask.size(1),
                   device=mask.device, counts=mask.sum(1), mask=mask)

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
        num_nodes = data.num_nodes
        ptr = getattr(data, "ptr", None)
        if ptr is not None:
            return cls.from_ptr(ptr, num_nodes=num_nodes, validate=validate)
        batch = getattr(data, "batch", None)
        if batch is not None:
            return cls.from_index(batch, getattr(data, "num_graphs", None), validate=validate)
        device = data.x.device if getattr(data, "x", None) is not None else None
        return cls.from_ptr(torch.tensor([0, num_nodes], device=device), num_nodes=num_nodes,
                            validate=False)

    # --------------------------------------------------------------- conversions
    # Derived tensors are computed on first use and kept, except while torch.compile
    # traces: it forbids writing to objects from inside an autograd.Function.
    def _keep(self, name: str, value: Tensor) -> Tensor:
        if not torch.compiler.is_compiling():
            setattr(self, name, value)
        return value

    @property
    def counts(self) -> Tensor:
        """``[B]`` rows per set (long)."""
        if self._counts is not None:
            return self._counts
        if self.kind == "uniform":
            return self._keep("_counts", torch.full((self.num_segments,), self.size,
                                                    dtype=torch.long, device=self.device))
        assert self._ptr is not None, self  # every other grouping is built with counts or ptr
        return self._keep("_counts", self._ptr[1:] - self._ptr[:-1])

    @property
    def index(self) -> Tensor:
        """``[N]`` set id of every row (for a mask: of every real row, in row-major order)."""
        if self._index is not None:
            return self._index
        n = self.num_nodes if self.kind != "mask" else None
        return self._keep("_index", torch.repeat_interleave(
            torch.arange(self.num_segments, device=self.device), self.counts, output_size=n))

    @property
    def ptr(self) -> Tensor:
        """``[B + 1]`` CSR pointer; only sorted groupings have one."""
        if self._ptr is not None:
            return self._ptr
        if self.kind == "scatter":
            raise GraphpoolError(
                "Segments.ptr", "segments", "sorted segments (kind 'csr', 'uniform' or "
                "'mask')", "an unsorted index",
                "sort the rows first: perm = index.argsort(stable=True); "
                "x, index = x[perm], index[perm]")
        counts = self.counts
        return self._keep("_ptr", torch.cat([counts.new_zeros(1), counts.cumsum(0)]))

    def broadcast(self, values: Tensor) -> Tensor:
        r"""Copy each set's row of ``values`` (``[*, B, F]``) to every row of that set.

        The result has the layout of ``x``: ``[*, N, F]`` (``[*, B, Nmax, F]`` for a mask,
        padding rows included). It is the adjoint of a sum readout.

        Example:
            >>> import torch
            >>> seg = Segments.from_index(torch.tensor([0, 1, 1]))
            >>> seg.broadcast(torch.tensor([[1.], [2.]])).flatten().tolist()
            [1.0, 2.0, 2.0]
        """
        if self.kind == "mask":
            return values.unsqueeze(-2).expand(*values.shape[:-1], self.num_nodes,
                                               values.size(-1))
        if self.kind == "uniform":
            expanded = values.unsqueeze(-2).expand(*values.shape[:-1], self.size,
                                                   values.size(-1))
            return expanded.flatten(-3, -2)
        return values.index_select(-2, self.index)

    def _copy(self) -> "Segments":
        """A shallow copy (the cache hands these out); cheaper than copy.copy."""
        new = Segments.__new__(Segments)
        for name in Segments.__slots__:
            setattr(new, name, getattr(self, name))
        return new

    def to(self, device: torch.device | str) -> "Segments":
        """The same grouping with its tensors on ``device``."""
        def move(t: Optional[Tensor]) -> Optional[Tensor]:
            return None if t is None else t.to(device)
        return Segments(kind=self.kind, num_segments=self.num_segments,
                        num_nodes=self.num_nodes, device=_as_device(device),
                        counts=move(self._counts), index=move(self._index),
                        ptr=move(self._ptr), size=self.size, mask=move(self.mask),
                        has_empty=self.has_empty)

    def __len__(self) -> int:
        return self.num_segments

    def __repr__(self) -> str:
        extra = f", size={self.size}" if self.kind == "uniform" else ""
        return (f"Segments(kind={self.kind!r}, num_segments={self.num_segments}, "
                f"num_nodes={self.num_nodes}{extra})")
