"""graphpool.distributed vs all-gathering the node features: bytes and time per readout.

    python benchmarks/distributed.py                     # 2 ranks, 250k rows x 16 per rank
    python benchmarks/distributed.py --rows 20000 --out /tmp/d.md

Spawns ``--nproc`` gloo ranks on 127.0.0.1 (one torch thread each). For every readout,
interleaved in one process per rank: the distributed readout (forward, then forward and
backward), against the baseline that all-gathers every rank's rows and runs graphpool's
single-process readout on them. Reports per call and rank: the collectives and the bytes
this rank sends (the agreement check included), the bytes the all-gather sends, and the
median wall time over ``--repeats`` calls; checks that both give the same readout.
Writes a Markdown table to ``--out`` (default benchmarks/results/distributed.md).
"""
from __future__ import annotations

import argparse
import datetime
import platform
import socket
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's graphpool
import graphpool  # noqa: E402
from graphpool.distributed import DistributedReadout  # noqa: E402

READOUTS = ["sum", "mean", "max", "var", "logsumexp", "softmax", "powermean", "attention",
            ["mean", "max", "std", "softmax"]]
CHECK_BYTES = 9 * 8  # the agreement check: 9 int64 per rank


def _name(spec) -> str:
    return "+".join(spec) if isinstance(spec, list) else spec


def _build(spec, features: int):
    torch.manual_seed(0)  # the same weights on every rank
    if spec == "attention":
        return graphpool.AttentionalReadout(in_channels=features)
    return graphpool.resolve_readout(spec)


def _gather_rows(x: torch.Tensor, batch: torch.Tensor, world: int):
    """The baseline's communication: every rank's rows and batch, gathered (equal shards)."""
    xs = [torch.empty_like(x) for _ in range(world)]
    bs = [torch.empty_like(batch) for _ in range(world)]
    dist.all_gather(xs, x.contiguous())
    dist.all_gather(bs, batch)
    return torch.cat(xs), torch.cat(bs)


def _time(fn, repeats: int) -> list:
    times = []
    for _ in range(repeats):
        dist.barrier()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def rank_main(rank: int, args, port: int, queue) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=args.nproc, timeout=datetime.timedelta(seconds=300))
    try:
        g = torch.Generator().manual_seed(rank)
        x = torch.randn(args.rows, args.features, generator=g)
        batch = torch.randint(0, args.sets, (args.rows,), generator=g).sort().values
        rows = []
        for spec in READOUTS:
            module = _build(spec, args.features)
            pool = DistributedReadout(module, validate=False)
            log = []
            ours = pool(x, batch, num_sets=args.sets, log=log)
            full_x, full_b = _gather_rows(x, batch, args.nproc)
            ref = module(full_x, full_b, dim_size=args.sets)
            err = float((ours - ref).detach().abs().max())
            xg = x.clone().requires_grad_(True)

            def forward():
                pool(x, batch, num_sets=args.sets)

            def forward_backward():
                xg.grad = None
                pool(xg, batch, num_sets=args.sets).sum().backward()

            def gathered():
                fx, fb = _gather_rows(x, batch, args.nproc)
                module(fx, fb, dim_size=args.sets)

            def gathered_backward():  # the gradient of the gathered rows, back to this rank
                xg.grad = None
                fx, fb = _gather_rows(xg.detach(), batch, args.nproc)
                fx.requires_grad_(True)
                module(fx, fb, dim_size=args.sets).sum().backward()
                mine = fx.grad[rank * args.rows:(rank + 1) * args.rows]
                xg.backward(mine)

            times = {k: [] for k in ("ours", "gather", "ours_bw", "gather_bw")}
            for _ in range(args.rounds):  # interleaved
                times["ours"] += _time(forward, args.repeats)
                times["gather"] += _time(gathered, args.repeats)
                times["ours_bw"] += _time(forward_backward, args.repeats)
                times["gather_bw"] += _time(gathered_backward, args.repeats)
            bw_log = []
            pool(xg, batch, num_sets=args.sets, log=bw_log)
            rows.append({"readout": _name(spec), "collectives": len(log),
                         "collectives_grad": len(bw_log),
                         "bytes": sum(n for _, n in log) * 4 + CHECK_BYTES,
                         "bytes_grad": sum(n for _, n in bw_log) * 4 + CHECK_BYTES,
                         "gather_bytes": args.rows * (args.features * 4 + 8),
                         "max_err": err,
                         **{k: statistics.median(v) * 1e3 for k, v in times.items()}})
        if rank == 0:
            queue.put(rows)
    finally:
        dist.destroy_process_group()


def table(rows, args) -> str:
    lines = [
        "# graphpool.distributed vs all-gathering the rows",
        "",
        f"`python benchmarks/distributed.py --nproc {args.nproc} --rows {args.rows} "
        f"--features {args.features} --sets {args.sets}`: {args.nproc} gloo ranks on one "
        f"machine ({platform.machine()}, torch {torch.__version__}, one thread per rank), "
        f"{args.rows:,} rows x {args.features} float32 features per rank, {args.sets} sets; "
        f"median of {args.rounds * args.repeats} calls, interleaved. Bytes: what one rank "
        f"sends per call (the {CHECK_BYTES}-byte agreement check included; the all-gather "
        f"sends the rows and their int64 batch entries). `max err`: the largest difference "
        f"between "
        f"the two readouts.",
        "",
        "| readout | collectives (with grad) | bytes sent (with grad) | all-gather bytes | "
        "forward ms | all-gather + readout ms | ratio | fwd+bwd ms | all-gather fwd+bwd ms "
        "| ratio | max err |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['readout']} | {r['collectives']} ({r['collectives_grad']}) | "
            f"{r['bytes']:,} ({r['bytes_grad']:,}) | {r['gather_bytes']:,} | "
            f"{r['ours']:.2f} | {r['gather']:.2f} | {r['gather'] / r['ours']:.1f}x | "
            f"{r['ours_bw']:.2f} | {r['gather_bw']:.2f} | {r['gather_bw'] / r['ours_bw']:.1f}x "
            f"| {r['max_err']:.1e} |")
    lines += ["", "Collectives: readout collectives per call, after the agreement check "
              "(one all-gather of 9 numbers); a ratio above 1 means the distributed readout "
              "is faster than gathering.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--rows", type=int, default=250_000, help="rows per rank")
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--sets", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" /
                                             "distributed.md"))
    args = parser.parse_args(argv)
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start = time.perf_counter()
    procs = mp.start_processes(rank_main, args=(args, port, queue), nprocs=args.nproc,
                               join=False, start_method="spawn")
    rows = queue.get()
    procs.join()
    text = table(rows, args) + f"Wall time of the run: {time.perf_counter() - start:.0f} s.\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
