"""A point cloud too big for one process: shard its points over 2, read out, backpropagate.

Several point clouds (sets) of 4 million points in all are split by rows over
``--nproc`` processes (gloo on 127.0.0.1): each rank generates and holds only its
contiguous share, so sets straddle ranks. Every rank reads out the union with
``graphpool.distributed`` (mean, max, std and softmax by default), computes the same loss
and backpropagates to its own points. A separate single process does the same on all the
points; the script checks that the readouts agree and that each rank's gradient equals
the single-process gradient of its rows (compared through per-feature sums), and prints
each process's peak memory above its baseline: each rank needs about 1/nproc of the
single process.

Run:  python examples/sharded_readout.py               (4M points, 8 features, 2 ranks)
      python examples/sharded_readout.py --nodes 100000 --readout max,var
"""
from __future__ import annotations

import argparse
import datetime
import resource
import socket
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import graphpool
from graphpool.distributed import DistributedReadout

CHUNK = 1 << 18  # rows generated per seeded chunk: every process builds the same points


def rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (Linux: ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def points(lo: int, hi: int, args) -> tuple:
    """Rows ``lo:hi`` of the cloud: ``x`` ``[hi - lo, F]`` and their set of each row (sets
    of growing size, as ``floor(B (i / N)^2)``; sorted, as a PyG batch vector)."""
    parts = []
    for c in range(lo // CHUNK, -(-hi // CHUNK)):
        g = torch.Generator().manual_seed(args.seed * 100003 + c)
        parts.append(torch.randn(CHUNK, args.features, generator=g))
    start = (lo // CHUNK) * CHUNK
    x = torch.cat(parts)[lo - start:hi - start].contiguous() if parts else \
        torch.zeros(0, args.features)
    rows = torch.arange(lo, hi, dtype=torch.float64)
    batch = (args.sets * (rows / args.nodes) ** 2).long().clamp(max=args.sets - 1)
    x += batch.unsqueeze(-1).to(x.dtype)  # each cloud around its own centre
    return x, batch


def loss_weights(args, width: int) -> torch.Tensor:
    return torch.randn(args.sets, width, generator=torch.Generator().manual_seed(args.seed))


def shard(rank: int, world: int, args) -> tuple:
    return rank * args.nodes // world, (rank + 1) * args.nodes // world


def digest(grad: torch.Tensor) -> torch.Tensor:
    """Per-feature sums of the gradient and of its magnitude, in float64."""
    g = grad.double()
    return torch.stack([g.sum(0), g.abs().sum(0)])


def single(args, queue) -> None:
    """The reference: all the points in one process."""
    torch.set_num_threads(args.threads)
    base = rss_mb()
    start = time.perf_counter()
    x, batch = points(0, args.nodes, args)
    x.requires_grad_(True)
    readout = graphpool.resolve_readout(args.readout)
    out = readout(x, batch, dim_size=args.sets)
    (out * loss_weights(args, out.size(-1))).sum().backward()
    digests = [digest(x.grad[lo:hi]) for lo, hi in (shard(r, args.nproc, args)
                                                      for r in range(args.nproc))]
    # plain lists: a tensor sent through the queue would be shared memory of this process
    queue.put(("single", out.tolist(), [d.tolist() for d in digests], rss_mb() - base,
               time.perf_counter() - start))


def rank_main(rank: int, args, port: int, queue) -> None:
    """One rank: its share of the points, the distributed readout, backward."""
    torch.set_num_threads(args.threads)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=args.nproc, timeout=datetime.timedelta(seconds=300))
    try:
        base = rss_mb()
        start = time.perf_counter()
        x, batch = points(*shard(rank, args.nproc, args), args)
        x.requires_grad_(True)
        readout = DistributedReadout(args.readout)
        log = []
        out = readout(x, batch, num_sets=args.sets, log=log)
        # the replicated loss: every rank computes the same loss of the same readout
        (out * loss_weights(args, out.size(-1))).sum().backward()
        queue.put((rank, out.tolist(), digest(x.grad).tolist(), rss_mb() - base,
                   time.perf_counter() - start, x.size(0), log))
    finally:
        dist.destroy_process_group()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=4_000_000, help="points in all")
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--sets", type=int, default=4, help="point clouds (sets)")
    parser.add_argument("--readout", default="mean,max,std,softmax",
                        help="comma-separated readouts, concatenated")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.readout = args.readout.split(",")
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()

    ref = ctx.Process(target=single, args=(args, queue))  # alone, for its own peak memory
    ref.start()
    _, out_ref, digests, mem_ref, time_ref = queue.get()
    ref.join()
    out_ref = torch.tensor(out_ref)
    digests = torch.tensor(digests, dtype=torch.float64)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    procs = mp.start_processes(rank_main, args=(args, port, queue), nprocs=args.nproc,
                               join=False, start_method="spawn")
    results = sorted(queue.get() for _ in range(args.nproc))
    procs.join()

    print(f"{args.nodes:,} points x {args.features} features in {args.sets} sets; readout "
          f"{'+'.join(args.readout)} -> {out_ref.size(-1)} features; {args.nproc} ranks")
    scale = float(out_ref.abs().max()) + 1
    ok = True
    print(f"{'process':<9}{'points':>12}{'peak MiB':>10}{'seconds':>9}  "
          f"max |value - single|  max |gradient sums - single| (relative)")
    print(f"{'single':<9}{args.nodes:>12,}{mem_ref:>10.0f}{time_ref:>9.1f}")
    for rank, out, dig, mem, secs, rows, log in results:
        out, dig = torch.tensor(out), torch.tensor(dig, dtype=torch.float64)
        dv = float((out - out_ref).abs().max())
        dg = float(((dig - digests[rank]).abs() / (digests[rank].abs() + 1e-30)).max())
        ok &= dv <= 1e-4 * scale and dg <= 1e-4
        print(f"{'rank ' + str(rank):<9}{rows:>12,}{mem:>10.0f}{secs:>9.1f}  {dv:>20.2e}  "
              f"{dg:>28.2e}")
    sent = sum(n for _, n in results[0][6]) * 4
    print(f"each rank sent {len(results[0][6])} collectives, {sent:,} bytes in all "
          f"(all-gathering the points would move {args.nodes * args.features * 4:,})")
    mean_rank = sum(r[3] for r in results) / len(results)
    print(f"peak memory per rank / single process: {mean_rank / mem_ref:.2f}")
    print("distributed == single process:", "yes" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
