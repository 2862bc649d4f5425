r"""Reuse the :class:`~graphpool.Segments` of a batch tensor across readouts.

A model reads out the same batch several times per step: a readout per GIN layer, the
aggregation of every message-passing layer. :func:`~graphpool.segments.as_segments`
(behind every readout function and module) therefore resolves a ``batch`` or ``ptr``
tensor once and reuses the result while that tensor is alive and unchanged.

An entry is found by the tensor's identity and trusted only if a weak reference still
points at that very tensor and its version counter (which every in-place write bumps)
has not moved, so a stale grouping is never returned after a PyTorch write. Writes that
bypass PyTorch's version counter (through ``.numpy()`` or ``.data``) are not seen: call
``CACHE.clear()`` after those. Entries keep the derived tensors
(``ptr``, ``counts``), never the batch tensor itself, and leave when it is freed.
Explicit constructors (``Segments.from_index`` ...) never use the cache, and neither does
code traced by ``torch.compile``.

Example:
    >>> import torch
    >>> from graphpool import readout
    >>> from graphpool.segments_cache import CACHE
    >>> batch = torch.tensor([0, 0, 1])
    >>> _ = readout(torch.ones(3, 2), batch)
    >>> len(CACHE) >= 1
    True
    >>> CACHE.clear(); len(CACHE)
    0
"""
from __future__ import annotations

import weakref
from typing import Any, Callable, Dict, Hashable, Tuple

import torch
from torch import Tensor

__all__ = ["SegmentsCache", "CACHE"]


class SegmentsCache:
    """Map ``(tensor, arguments)`` to the Segments built from them; at most ``maxsize``
    entries, the oldest leaving first."""

    def __init__(self, maxsize: int = 64) -> None:
        self.maxsize = maxsize
        self._entries: Dict[Tuple[int, Hashable], Tuple[weakref.ref, int, Any, str]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def resolve(self, tensor: Tensor, args: Hashable, build: Callable[[], Any]) -> Any:
        """``build()``, or the Segments it returned before for this ``tensor`` and ``args``.

        ``build`` must return a Segments whose ``_index`` or ``_ptr`` slot is ``tensor``.
        """
        if torch.compiler.is_compiling() or tensor.is_inference():
            return build()  # traced code must not touch Python state; no version counter
        key = (id(tensor), args)
        entry = self._entries.get(key)
        if entry is not None:
            ref, version, template, slot = entry
            if ref() is tensor and version == tensor._version:
                seg = template._copy()
                setattr(seg, slot, tensor)
                return seg
        seg = build()
        slot = "_index" if seg._index is tensor else "_ptr" if seg._ptr is tensor else None
        if slot is not None:
            template = seg._copy()
            setattr(template, slot, None)
            self._store(key, tensor, template, slot)
        return seg

    def _store(self, key, tensor: Tensor, template: Any, slot: str) -> None:
        entries = self._entries

        def forget(ref: weakref.ref) -> None:  # may run at any allocation (gc)
            if entries.get(key, (None,))[0] is ref:
                entries.pop(key, None)
        entries.pop(key, None)
        while len(entries) >= self.maxsize:
            try:
                entries.pop(next(iter(entries)), None)
            except (StopIteration, RuntimeError):  # emptied or changed meanwhile
                break
        entries[key] = (weakref.ref(tensor, forget), tensor._version, template, slot)


#: The cache behind :func:`~graphpool.segments.as_segments`.
CACHE = SegmentsCache()
