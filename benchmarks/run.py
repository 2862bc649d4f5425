"""Full benchmark: graphpool vs PyG pools, native torch and torch_scatter.

    python benchmarks/run.py                  # all regimes, CPU (see docs/performance.md for run time)
    python benchmarks/run.py --quick          # smaller regimes (same as `graphpool bench`)
    python benchmarks/run.py --device cuda    # on a GPU, when there is one

Prints a markdown table (times, best peer, ratios, GB/s, floor) and the issue's targets,
and writes everything to JSON: a scratch file by default, the published
benchmarks/results/<device>.json (and the table beside it, .md) only with --update.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: benchmarks.suite
from benchmarks import suite as bench  # noqa: E402
from benchmarks import training as train_bench  # noqa: E402
from graphpool.apps.commands._args import positive_int


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller regimes, fewer rounds")
    parser.add_argument("--rounds", type=positive_int, default=None,
                        help="timed rounds per candidate (at least 1)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                        help="cpu or cuda (exits cleanly when there is no GPU)")
    parser.add_argument("--json", default=None, help="where to write the results (default: "
                        "a scratch file in the temporary folder)")
    parser.add_argument("--update", action="store_true", help="write the published results "
                        "benchmarks/results/<device>.json and .md (the table of the docs)")
    parser.add_argument("--sample-ms", type=float, default=bench.SAMPLE_MS,
                        help="length of a timed block of calls (0: time single calls)")
    parser.add_argument("--regimes", default="", help="only regimes whose name contains one "
                        "of these comma-separated words, e.g. 'molecules,image'")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: nothing to benchmark on the GPU", file=sys.stderr)
        return 0
    start = time.perf_counter()
    bench.SAMPLE_MS = args.sample_ms
    rounds = args.rounds or (3 if args.quick else 5)
    words = [w for w in args.regimes.split(",") if w]
    cases = [c for c in bench.make_cases(args.quick)
             if not words or any(w in c.regime for w in words)]
    results = bench.run(cases, rounds, args.device,
                        progress=lambda s: print(f"  {s}", file=sys.stderr, flush=True))
    training = []
    if args.device == "cpu" and (not words or any(w in "training" for w in words)):
        training = train_bench.run_training(
            rounds=1 if args.quick else 3, compile_too=not args.quick,
            batch_sizes=(128,) if args.quick else train_bench.BATCH_SIZES,
            progress=lambda s: print(f"  {s}", file=sys.stderr, flush=True))
    published = Path(__file__).parent / "results" / f"{args.device}.json"
    previous = json.loads(published.read_text())["results"] if published.exists() else None
    targets = bench.check_targets(results, training, previous) if args.device == "cpu" else []
    large = next((c for c in cases if c.regime.startswith("large")), None)
    if args.device == "cpu" and large is not None:
        n, f = large.shape[0] * large.shape[1], large.shape[2]
        for op in bench.OPS:
            peak = bench.peak_forward_allocation(large, op)
            targets.append({"target": f"large {op} forward: largest allocation / (N x F x 4 B)",
                            "value": round(peak / (n * f * 4), 4), "goal": "< 1",
                            "met": peak < n * f * 4})
    print(f"\nmachine: {bench.machine()}\n")
    print(bench.markdown(results))
    if training:
        print("\n" + train_bench.markdown(training))
    print("\n| target | value | goal | met |\n|---|---|---|---|")
    for t in targets:
        print(f"| {t['target']} | {t['value']} | {t['goal']} | {'yes' if t['met'] else 'NO'} |")
    scratch = Path(tempfile.gettempdir()) / f"graphpool-bench-{args.device}.json"
    path = Path(args.json) if args.json else published if args.update else scratch
    path.parent.mkdir(parents=True, exist_ok=True)
    wall = round(time.perf_counter() - start, 1)
    bench.to_json(results, targets, str(path), wall_s=wall, rounds=rounds,
                  sample_ms=args.sample_ms, training=training)
    print(f"\nsuite wall time: {wall} s; wrote {os.path.relpath(path)}")
    if args.update:  # the printed table beside the JSON, as docs/performance.md quotes it
        table = [f"machine: {bench.machine()}", "", bench.markdown(results), "",
                 *([train_bench.markdown(training), ""] if training else []),
                 "| target | value | goal | met |", "|---|---|---|---|",
                 *(f"| {t['target']} | {t['value']} | {t['goal']} | "
                   f"{'yes' if t['met'] else 'NO'} |" for t in targets),
                 "", f"suite wall time: {wall} s; wrote {os.path.relpath(path)}"]
        published.with_suffix(".md").write_text("\n".join(table) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
