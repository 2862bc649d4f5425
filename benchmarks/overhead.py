"""Where the time of a small readout goes: the C kernel alone, then each layer above it.

    python benchmarks/overhead.py

The molecule batch of the suite (3,200 x 64 float32 rows in 128 sets, sorted), on one
thread (graphpool's kernels and torch's ops alike) so that no thread-pool wake-up enters
the numbers and the peers run as the layers do; each figure is the best of 15 blocks of
2,000 calls (a tight loop: the data stays in cache). Layers:

* kernel: ``compiled._reduce`` (the ctypes call and its buffer checks); backward kernel:
  ``compiled._broadcast`` of an output gradient (the sum's backward), alone;
* segment_reduce: + the argument checks, path choice and autograd bookkeeping;
* readout: + resolving the ``batch`` tensor (a cache hit: one memcmp of the ids);
* new batch: + building the grouping (the cache emptied before each call);
* forward+backward: ``readout(...).backward(g)`` (the Python autograd Function, its
  broadcast backward kernel and the engine);
* kernels forward+backward: an ``autograd.Function`` that only calls the two C kernels
  (``compiled._reduce`` forward, ``compiled._broadcast`` backward): what is left without
  any of graphpool's Python layers;
* empty Function forward+backward: an ``autograd.Function`` that returns empty tensors of
  the right shapes (no work): the autograd engine and ``.backward()`` with a Python node.

The same for ``index_add`` (what PyG's sum does) and ``x.sum(0)`` (the same bytes, read
once) for scale; ``x.sum(0)`` forward+backward reads and writes the same bytes through
torch's own C++ autograd nodes.
"""
from __future__ import annotations

import timeit

import torch

import graphpool as gp
from graphpool.kernels import compiled
from graphpool.segments_cache import CACHE


def measure(repeat: int = 15, number: int = 2000) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _measure(repeat, number)
    finally:
        torch.set_num_threads(threads)


def _measure(repeat: int, number: int) -> dict:
    g = torch.Generator().manual_seed(0)
    B = 128
    sizes = torch.randint(12, 39, (B,), generator=g)
    batch = torch.repeat_interleave(torch.arange(B), sizes)
    x = torch.randn(len(batch), 64, generator=g)
    leaf = x.clone().requires_grad_()
    seed = torch.randn(B, 64, generator=g)
    seg = gp.Segments.from_index(batch, B)
    ptr = seg.ptr

    def fresh():
        CACHE.clear()
        return gp.readout(x, batch, "sum", num_graphs=B)

    class Kernels(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return compiled._reduce(x, ptr, "sum", torch.float32)

        @staticmethod
        def backward(ctx, grad):
            return compiled._broadcast(grad, ptr, len(batch))

    class Empty(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.new_empty(B, 64)

        @staticmethod
        def backward(ctx, grad):
            return torch.empty(len(batch), 64)

    def fb(fn):
        def run():
            leaf.grad = None
            fn(leaf).backward(seed)
        return run

    calls = {
        "kernel": lambda: compiled._reduce(x, ptr, "sum", torch.float32),
        "backward kernel": lambda: compiled._broadcast(seed, ptr, len(batch)),
        "segment_reduce": lambda: gp.segment_reduce(x, seg, "sum"),
        "readout": lambda: gp.readout(x, batch, "sum", num_graphs=B),
        "new batch": fresh,
        "forward+backward": fb(lambda t: gp.readout(t, batch, "sum", num_graphs=B)),
        "kernels forward+backward": fb(Kernels.apply),
        "empty Function forward+backward": fb(Empty.apply),
        "index_add": lambda: x.new_zeros(B, 64).index_add(0, batch, x),
        "index_add forward+backward": fb(lambda t: t.new_zeros(B, 64).index_add(0, batch, t)),
        "x.sum(0)": lambda: x.sum(0),
        "x.sum(0) forward+backward": fb(lambda t: t.sum(0, keepdim=True).expand(B, 64)),
    }
    # a check first: the candidates agree
    torch.testing.assert_close(calls["readout"](), calls["index_add"]())
    return {name: min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6
            for name, fn in calls.items()}


def main() -> int:
    us = measure()
    print("| call | us per call |\n|---|---|")
    for name, t in us.items():
        print(f"| {name} | {t:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
