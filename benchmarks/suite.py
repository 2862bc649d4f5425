r"""Benchmark graphpool against its peers: PyG pools, native torch, torch_scatter.

Every candidate of a case runs in one process, interleaved (one block of calls of each
candidate per round, see :data:`SAMPLE_MS`), after a warm-up; the table reports the
median time per call over rounds. Before timing, each
candidate's output (and, for forward+backward, its gradient) is checked against
graphpool's — a candidate that disagrees aborts the run.

A readout reads each input element once, so it is bound by memory bandwidth. The
*floor* of a case is ``x.sum(-2)`` over the same bytes, timed in the same rounds;
``GB/s`` is the size of ``x`` divided by the median time.

Run ``python benchmarks/run.py`` (full) or ``graphpool bench`` (quick).
"""
from __future__ import annotations

import json
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch import Tensor

import graphpool as gp
from graphpool.kernels import compiled, ext
from graphpool import _native
from graphpool.segments_cache import CACHE

__all__ = ["Case", "Result", "make_cases", "run_case", "run", "markdown", "check_targets"]

OPS = ("sum", "mean", "max")
#: graphpool with its Segments cache emptied before every call: the cost of the first
#: readout of a new batch (the other calls of a step reuse the resolved grouping).
FRESH = "graphpool, new batch"
NOT_PEERS = ("graphpool", FRESH, "floor: x.sum")
#: Where the index pass of a new batch is negligible next to the reduction, FRESH is
#: not timed (molecules and medium only).
FRESH_MAX_ELEMENTS = 1 << 24


@dataclass
class Case:
    """One input: ``kind`` is ``graph`` (x [N, F] + sorted or shuffled batch), ``edges``
    (messages [E, F] aggregated into N nodes by an unsorted destination index, as
    ``aggr=`` of a message-passing layer sees them; ``shape`` is (N, E, F)) or ``image``."""

    regime: str
    kind: str
    dtype: torch.dtype
    shape: tuple
    num_graphs: int = 0
    sorted: bool = True


@dataclass
class Result:
    regime: str
    dtype: str
    op: str
    mode: str
    candidate: str
    median_ms: float
    ratio_to_graphpool: float
    gbps: float
    checked: bool = True
    extra: Dict[str, float] = field(default_factory=dict)


def make_cases(quick: bool = False) -> List[Case]:
    """The regimes of the issue; ``quick`` shrinks the big ones so the run takes ~1 minute."""
    k = 20 if quick else 1
    cases = [
        Case("molecules 128x25x64", "graph", torch.float32, (128, 25, 64), 128),
        Case(f"medium {1000 // k}x100x128", "graph", torch.float32, (1000 // k, 100, 128),
             1000 // k),
        Case(f"large {10000 // k}x100x64", "graph", torch.float32, (10000 // k, 100, 64),
             10000 // k),
        Case(f"large {10000 // k}x100x64", "graph", torch.bfloat16, (10000 // k, 100, 64),
             10000 // k),
        Case(f"one graph {1_000_000 // k}x64", "graph", torch.float32, (1, 1_000_000 // k, 64), 1),
        Case(f"unsorted {10000 // k}x100x64", "graph", torch.float32, (10000 // k, 100, 64),
             10000 // k, sorted=False),
        Case(f"message passing {1_000_000 // k} edges into {100_000 // k}x64", "edges",
             torch.float32, (100_000 // k, 1_000_000 // k, 64), 100_000 // k, sorted=False),
        # labels name the shapes really timed (a quick run has 3 and 1 images)
        Case(f"image {64 // k}x256x14x14", "image", torch.float32, (64 // k, 256, 14, 14)),
        Case(f"image {32 // k}x2048x7x7", "image", torch.float32, (32 // k, 2048, 7, 7)),
    ]
    return cases


def _graph_inputs(case: Case, device: str, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    num_graphs, mean_nodes, feats = case.shape
    if num_graphs == 1:
        sizes = torch.tensor([mean_nodes])
    else:  # sizes vary +-50% around the mean, like real batches
        sizes = torch.randint(mean_nodes // 2, mean_nodes * 3 // 2 + 1, (num_graphs,), generator=g)
    batch = torch.repeat_interleave(torch.arange(num_graphs), sizes)
    x = torch.randn(int(sizes.sum()), feats, generator=g).to(case.dtype)
    if not case.sorted:
        perm = torch.randperm(x.size(0), generator=g)
        x, batch = x[perm], batch[perm]
    ptr = torch.cat([torch.zeros(1, dtype=torch.long), sizes.cumsum(0)])
    return x.to(device), batch.to(device), ptr.to(device)


def _edge_inputs(case: Case, device: str, seed: int = 0):
    """A random graph with E = 10 N edges stored sorted by source, as PyG's datasets store
    ``edge_index``: the destination index (what the aggregation groups by) is unsorted."""
    g = torch.Generator().manual_seed(seed)
    nodes, edges, feats = case.shape
    edge_index = torch.randint(0, nodes, (2, edges), generator=g)
    edge_index = edge_index[:, edge_index[0].argsort(stable=True)]
    messages = torch.randn(edges, feats, generator=g).to(case.dtype)
    return messages.to(device), edge_index.to(device)


def _edge_candidates(case: Case, op: str, edge_index: Tensor
                     ) -> Dict[str, Callable[[Tensor], Tensor]]:
    """The aggregation as a message-passing layer calls it: ``aggr(messages,
    edge_index[1], dim_size=N)``, with a fresh ``edge_index[1]`` view every call, as every
    layer of a model gets."""
    from torch_geometric.nn import aggr

    nodes, feats = case.shape[0], case.shape[2]
    cls = {"sum": (gp.SumReadout, aggr.SumAggregation),
           "mean": (gp.MeanReadout, aggr.MeanAggregation),
           "max": (gp.MaxReadout, aggr.MaxAggregation)}[op]
    ours, pyg = cls[0](), cls[1]()
    cands: Dict[str, Callable[[Tensor], Tensor]] = {
        "graphpool": lambda m: ours(m, edge_index[1], dim_size=nodes),
        "PyG": lambda m: pyg(m, edge_index[1], dim_size=nodes)}
    native_op = {"sum": "sum", "mean": "mean", "max": "amax"}[op]
    cands["torch scatter_reduce"] = lambda m: m.new_zeros(nodes, feats).scatter_reduce(
        0, edge_index[1].view(-1, 1).expand(-1, feats), m, native_op, include_self=False)
    if ext.AVAILABLE:
        import torch_scatter

        cands["torch_scatter scatter"] = lambda m: torch_scatter.scatter(
            m, edge_index[1], 0, dim_size=nodes, reduce=op)
    return cands


def _graph_candidates(case: Case, op: str, batch: Tensor, ptr: Tensor
                      ) -> Dict[str, Callable[[Tensor], Tensor]]:
    from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool

    B, feats = case.num_graphs, case.shape[2]
    pyg = {"sum": global_add_pool, "mean": global_mean_pool, "max": global_max_pool}[op]
    def fresh(x: Tensor) -> Tensor:  # as on the first readout of a new batch
        CACHE.clear()
        return gp.readout(x, batch, op, num_graphs=B)

    cands: Dict[str, Callable[[Tensor], Tensor]] = {
        "graphpool": lambda x: gp.readout(x, batch, op, num_graphs=B),
        FRESH: fresh,
        "PyG": lambda x: pyg(x, batch, size=B),
    }
    if batch.numel() * feats > FRESH_MAX_ELEMENTS:
        del cands[FRESH]
    index = batch.view(-1, 1).expand(-1, feats)
    native_op = {"sum": "sum", "mean": "mean", "max": "amax"}[op]
    cands["torch scatter_reduce"] = lambda x: x.new_zeros(B, x.size(1)).scatter_reduce(
        0, index, x, native_op, include_self=False)
    if op != "max":
        def index_add(x):
            out = x.new_zeros(B, x.size(1)).index_add(0, batch, x)
            if op == "mean":
                out = out / torch.bincount(batch, minlength=B).clamp(min=1).unsqueeze(1)
            return out
        cands["torch index_add"] = index_add
    if case.sorted and case.dtype != torch.bfloat16:  # segment_reduce has no bf16 backward
        cands["torch segment_reduce"] = lambda x: torch.segment_reduce(
            x, op, offsets=ptr, axis=0, unsafe=True)
    if ext.AVAILABLE:
        import torch_scatter

        if case.sorted:
            cands["torch_scatter segment_csr"] = lambda x: torch_scatter.segment_csr(
                x, ptr, reduce=op)
        cands["torch_scatter scatter"] = lambda x: torch_scatter.scatter(
            x, batch, 0, dim_size=B, reduce=op)
    return cands


#: The statistic readouts timed against PyG's aggregations (and torch_scatter's composites)
#: on the molecule and medium regimes (the large regime's multi-second calls would take
#: the suite past ten minutes).
FAMILY = ("var", "std", "softmax", "powermean", "logsumexp")
FAMILY_REGIMES = ("molecules", "medium")
_FAMILY_OPTIONS = {"powermean": {"p": 2.0}}


def _family_candidates(case: Case, op: str, batch: Tensor
                       ) -> Dict[str, Callable[[Tensor], Tensor]]:
    from torch_geometric.nn import aggr

    B = case.num_graphs
    options = _FAMILY_OPTIONS.get(op, {})
    cands: Dict[str, Callable[[Tensor], Tensor]] = {
        "graphpool": lambda x: gp.readout(x, batch, op, num_graphs=B, **options)}
    pyg = {"var": aggr.VarAggregation, "std": aggr.StdAggregation,
           "softmax": aggr.SoftmaxAggregation, "powermean": aggr.PowerMeanAggregation}.get(op)
    if pyg is not None:
        module = pyg(**options)
        cands["PyG"] = lambda x: module(x, batch, dim_size=B)
    if ext.AVAILABLE:
        from torch_scatter import composite

        if op == "std":
            cands["torch_scatter scatter_std"] = lambda x: composite.scatter_std(
                x, batch, 0, dim_size=B, unbiased=False)
        elif op == "logsumexp":
            cands["torch_scatter scatter_logsumexp"] = lambda x: composite.scatter_logsumexp(
                x, batch, 0, dim_size=B)
        elif op == "softmax":
            def softmax_sum(x):
                alpha = composite.scatter_softmax(x, batch, 0, dim_size=B)
                return x.new_zeros(B, x.size(1)).index_add(0, batch, alpha * x)
            cands["torch_scatter scatter_softmax"] = softmax_sum
    return cands


def _image_candidates(op: str) -> Dict[str, Callable[[Tensor], Tensor]]:
    from graphpool.grid import GlobalPool2d

    pool = GlobalPool2d(op)
    cands = {"graphpool": pool}
    if op == "mean":
        cands["x.mean((2, 3))"] = lambda x: x.mean((2, 3))
        cands["AdaptiveAvgPool2d"] = lambda x: torch.nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
    elif op == "max":
        cands["x.amax((2, 3))"] = lambda x: x.amax((2, 3))
        cands["AdaptiveMaxPool2d"] = lambda x: torch.nn.functional.adaptive_max_pool2d(x, 1).flatten(1)
    else:
        cands["x.sum((2, 3))"] = lambda x: x.sum((2, 3))
    return cands


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


#: A timed sample is a block of consecutive calls lasting about this long (at least one
#: call). Single calls of sub-millisecond ops mostly measure the cache and thread-pool
#: state the previous candidate left behind, which changes with the candidate order.
SAMPLE_MS = 5.0
#: Calls slower than this are warmed up once and timed in 3 rounds, to keep the suite short.
SLOW_S = 0.25
#: Cases whose rounds are cheap get more of them (up to MAX_ROUNDS, about CHEAP_S of
#: timing per case): small inputs are the noisiest.
CHEAP_S, MAX_ROUNDS = 1.0, 25


def _timed(fn: Callable[[], object], device: str) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def _warm_up(fn: Callable[[], object], device: str) -> float:
    """Call until the time per call stops dropping (kernels built, allocator and huge
    pages settled): at least 2 calls, at most 10, one if a call takes over
    :data:`SLOW_S`. Returns the last call's seconds."""
    last = _timed(fn, device)
    for _ in range(9):
        if last > SLOW_S:
            break
        now = _timed(fn, device)
        settled = now > 0.8 * last
        last = now
        if settled:
            break
    return last


def _time_interleaved(fns: Dict[str, Callable[[], object]], rounds: int, device: str
                      ) -> Dict[str, float]:
    """Median ms per call of every candidate; one block of ``calls`` calls per candidate
    per round, candidates interleaved. ``calls`` is the same for all candidates of a case
    and sized from graphpool's warm-up time. ``rounds`` is a minimum: cheap cases get up
    to :data:`MAX_ROUNDS`. A candidate slower than :data:`SLOW_S` per call gets at most 3
    rounds (its median is still over interleaved rounds)."""
    warm = {name: _warm_up(fn, device) for name, fn in fns.items()}
    calls = max(1, round(SAMPLE_MS / 1e3 / warm["graphpool"]))
    round_s = calls * sum(warm.values())  # cheap cases get more rounds, up to CHEAP_S
    rounds = max(rounds, min(MAX_ROUNDS, int(CHEAP_S / round_s)))
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for i in range(rounds):
        for name, fn in fns.items():
            if warm[name] > SLOW_S and i >= 3:
                continue
            _sync(device)
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            _sync(device)
            times[name].append((time.perf_counter() - start) / calls)
    return {name: statistics.median(ts) * 1e3 for name, ts in times.items()}


def _settle_huge_pages(nbytes: int) -> None:
    """Bring graphpool's fresh huge-page buffers of ``nbytes`` to their steady cost.

    graphpool's backward writes gradients of :data:`~graphpool.kernels.compiled.HUGE_PAGE_BYTES`
    and more into fresh transparent huge pages (:func:`~graphpool.kernels.compiled.empty`).
    On a VM whose host backs guest memory lazily and takes freed memory back (free page
    reporting, as on this project's machines), a fresh 2 MiB page first costs the host a
    fault per 4 KiB: in a fresh process the first ~8 such buffers took 16x their steady
    time (57 against 3.5 ms for 51 MB), and after a pause of two seconds or more the first
    one to three do again. A training loop runs in the steady state, and the warm-up of
    :func:`_warm_up` cannot tell a plateau of slow calls from it, so before a case whose
    gradient is that large the suite allocates and fills such buffers until one costs
    less than 4x filling memory already mapped (at most 32)."""
    if nbytes < compiled.HUGE_PAGE_BYTES or not compiled._HUGE_PAGES:
        return
    mapped = torch.empty(nbytes, dtype=torch.uint8)
    mapped.fill_(1)
    start = time.perf_counter()
    mapped.fill_(1)
    refill = time.perf_counter() - start
    del mapped
    for _ in range(32):
        start = time.perf_counter()
        fresh = compiled.empty((nbytes,), torch.uint8)
        fresh.fill_(1)
        spent = time.perf_counter() - start
        del fresh  # (freed after the clock: the reference is a fill, not a free)
        if spent < 4 * refill:
            return


def _forward_backward(fn: Callable[[Tensor], Tensor], x: Tensor) -> Callable[[], Tensor]:
    leaf = x.detach().clone().requires_grad_()
    seed = None

    def run() -> Tensor:
        nonlocal seed
        leaf.grad = None
        out = fn(leaf)
        if seed is None:
            seed = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out)
        out.backward(seed)
        return leaf.grad
    return run


def _check(name: str, got: Tensor, expected: Tensor, what: str,
           bound: Optional[Tensor] = None) -> None:
    """``bound``: the rounding-error bound of a long sum; other checks use torch's defaults."""
    if expected.dtype in (torch.bfloat16, torch.float16) and bound is None:
        bound = torch.finfo(expected.dtype).eps * expected.double().abs()
    got, expected = got.double(), expected.double()
    if bound is not None:
        bad = (got - expected).abs() > 2 * bound + 1e-6
        if bad.any():
            raise AssertionError(f"{name} disagrees with graphpool ({what}) beyond the "
                                 f"rounding bound at {int(bad.sum())} entries")
        return
    try:
        torch.testing.assert_close(got, expected.to(got), equal_nan=True)
    except AssertionError as err:
        raise AssertionError(f"{name} disagrees with graphpool ({what}): {err}") from None


def _sum_bound(x: Tensor, batch: Tensor, num_graphs: int, op: str) -> Tensor:
    """Recursive summation error bound, n * eps * sum |x| per set (divided by n for means)."""
    eps = torch.finfo(x.dtype).eps
    counts = torch.bincount(batch, minlength=num_graphs).clamp(min=1).unsqueeze(1).double()
    abs_sum = torch.zeros(num_graphs, x.size(1), dtype=torch.float64,
                          device=x.device).index_add_(0, batch, x.abs().double())
    bound = eps * counts * abs_sum
    return bound / counts if op == "mean" else bound


def run_case(case: Case, op: str, mode: str, rounds: int, device: str = "cpu") -> List[Result]:
    """Time every candidate of one (case, op, mode); outputs are checked first."""
    if case.kind == "graph":
        x, batch, ptr = _graph_inputs(case, device)
        if op in FAMILY:
            x = x.abs() + 0.5 if op == "powermean" else x  # PyG's power mean: in [1e-4, 100]
            cands = _family_candidates(case, op, batch)
        else:
            cands = _graph_candidates(case, op, batch, ptr)
        floor = lambda: x.sum(0)  # noqa: E731
    elif case.kind == "edges":
        x, edge_index = _edge_inputs(case, device)
        batch = edge_index[1]
        cands = _edge_candidates(case, op, edge_index)
        floor = lambda: x.sum(0)  # noqa: E731
    else:
        x = torch.randn(case.shape, generator=torch.Generator().manual_seed(0)).to(device,
                                                                                  case.dtype)
        cands = _image_candidates(op)
        floor = lambda: x.sum((2, 3))  # noqa: E731
    if mode == "forward":
        fns = {name: (lambda f=f: f(x)) for name, f in cands.items()}
    else:
        fns = {name: _forward_backward(f, x) for name, f in cands.items()}
    # Max gradients: peers give a tied maximum's whole gradient to one row, graphpool
    # splits it evenly, so compare what every policy must agree on: each set's total.
    if mode != "forward" and op == "max":
        per_set = ((lambda g: gp.readout(g, batch, "sum", num_graphs=case.num_graphs))
                   if case.kind != "image" else (lambda g: g.sum((2, 3))))
    else:
        per_set = lambda g: g  # noqa: E731
    bound = None
    if case.kind != "image" and mode == "forward" and op in OPS and op != "max":
        bound = _sum_bound(x, batch, case.num_graphs, op)
    reference = per_set(fns["graphpool"]())
    if op in FAMILY:  # several passes, each rounding in its own order (PyG's var cancels):
        # agreement to 1e-4 of the largest magnitude catches a wrong op, not a rounding
        bound = 1e-4 * reference.double().abs().max().clamp(min=1) + 0 * reference.double()
    for name, fn in fns.items():
        _check(name, per_set(fn()), reference, "gradient" if mode != "forward" else "output",
               bound)
    timed = dict(fns)
    if mode == "forward":
        timed["floor: x.sum"] = floor
    elif device == "cpu":
        _settle_huge_pages(x.numel() * x.element_size())
    ms = _time_interleaved(timed, rounds, device)
    gbytes = x.numel() * x.element_size() / 1e9
    ours = ms["graphpool"]
    return [Result(case.regime, str(case.dtype).replace("torch.", ""), op, mode, name, t,
                   t / ours, gbytes / (t / 1e3), checked=name != "floor: x.sum")
            for name, t in ms.items()]


def peak_forward_allocation(case: Case, op: str) -> float:
    """Largest single allocation (bytes) made by graphpool's forward, from the profiler."""
    x, batch, _ = _graph_inputs(case, "cpu")
    fn = _graph_candidates(case, op, batch, None)["graphpool"]
    fn(x)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                profile_memory=True) as prof:
        fn(x)
    return float(max((e.self_cpu_memory_usage for e in prof.events()), default=0))


def run(cases: Sequence[Case], rounds: int, device: str = "cpu",
        modes: Sequence[str] = ("forward", "forward+backward"),
        progress: Optional[Callable[[str], None]] = None) -> List[Result]:
    results: List[Result] = []
    for case in cases:
        family = FAMILY if case.kind == "graph" and case.sorted and case.dtype == \
            torch.float32 and case.regime.startswith(FAMILY_REGIMES) else ()
        for op in (*OPS, *family):
            for mode in modes:
                if progress:
                    progress(f"{case.regime} {case.dtype} {op} {mode}")
                results += run_case(case, op, mode, rounds, device)
    return results


def machine() -> Dict[str, object]:
    return {"platform": platform.platform(), "processor": platform.processor(),
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "graphpool": gp.__version__, "torch_scatter": ext.AVAILABLE,
            "compiled_kernels": _native.library() is not None}


def markdown(results: Sequence[Result]) -> str:
    """One row per (case, op, mode): graphpool's time and every peer's ratio to it."""
    rows = ["| regime | dtype | op | mode | graphpool ms | GB/s | best peer | peer ms | "
            "peer / graphpool | floor / graphpool | new batch ms |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    groups: Dict[tuple, List[Result]] = {}
    for r in results:
        groups.setdefault((r.regime, r.dtype, r.op, r.mode), []).append(r)
    for (regime, dtype, op, mode), rs in groups.items():
        ours = next(r for r in rs if r.candidate == "graphpool")
        peers = [r for r in rs if r.candidate not in NOT_PEERS]
        best = min(peers, key=lambda r: r.median_ms)
        floor = next((r for r in rs if r.candidate == "floor: x.sum"), None)
        fresh = next((r for r in rs if r.candidate == FRESH), None)
        rows.append(f"| {regime} | {dtype} | {op} | {mode} | {ours.median_ms:.3f} | "
                    f"{ours.gbps:.1f} | {best.candidate} | {best.median_ms:.3f} | "
                    f"{best.median_ms / ours.median_ms:.2f} | "
                    f"{'' if floor is None else f'{floor.median_ms / ours.median_ms:.2f}'} | "
                    f"{'' if fresh is None else f'{fresh.median_ms:.3f}'} |")
    return "\n".join(rows)


def _find(results, regime_prefix, op, mode, dtype="float32"):
    rs = [r for r in results if r.regime.startswith(regime_prefix) and r.op == op
          and r.mode == mode and r.dtype == dtype]
    return {r.candidate: r.median_ms for r in rs}


def check_targets(results: Sequence[Result], training: Sequence[dict] = (),
                  previous: Optional[Sequence[dict]] = None) -> List[Dict[str, object]]:
    """The performance issue's targets, evaluated on this run's own numbers.

    ``training``: rows of :func:`benchmarks.training.run_training`; ``previous``: the
    ``results`` of the last published run, for "no row more than 10% slower"."""
    out = []

    def add(name, value, goal, ok):
        out.append({"target": name, "value": round(value, 3), "goal": goal, "met": bool(ok)})

    def peers(d):
        return {k: v for k, v in d.items() if k not in NOT_PEERS}

    def vs_best(prefix, op, mode, goal, label=None, fresh=False):
        f = _find(results, prefix, op, mode)
        if f and peers(f):
            best = min(peers(f).values())
            ours = f[FRESH] if fresh else f["graphpool"]
            name = label or f"{prefix} {op} {mode}: best peer / graphpool"
            add(name + (" new batch" if fresh else ""), best / ours, f">= {goal}",
                best / ours >= goal)

    for op in OPS:
        for mode in ("forward", "forward+backward"):
            vs_best("molecules", op, mode, 1.3)
        vs_best("molecules", op, "forward", 1.3, fresh=True)
        vs_best("medium", op, "forward", 1.3)
        for mode in ("forward", "forward+backward"):
            vs_best("unsorted", op, mode, 1.5)
            f = _find(results, "message passing", op, mode)
            if f:
                add(f"message passing {op} {mode}: PyG / graphpool", f["PyG"] / f["graphpool"],
                    ">= 1.5", f["PyG"] / f["graphpool"] >= 1.5)
        f = _find(results, "large", op, "forward")
        if f:
            add(f"large {op} forward: PyG / graphpool", f["PyG"] / f["graphpool"], ">= 4",
                f["PyG"] / f["graphpool"] >= 4)
            add(f"large {op} forward: graphpool / floor (x.sum over the same bytes)",
                f["graphpool"] / f["floor: x.sum"], "<= 1.1",
                f["graphpool"] / f["floor: x.sum"] <= 1.1)
    for regime in dict.fromkeys(r.regime for r in results if r.regime.startswith("image")):
        f = _find(results, regime, "mean", "forward")
        if f:
            ratio = f["graphpool"] / f["x.mean((2, 3))"]
            add(f"{regime} mean forward: graphpool / x.mean((2, 3))", ratio, "<= 1.02",
                ratio <= 1.02)
        fb = _find(results, regime, "mean", "forward+backward")
        if fb:
            ratio = fb["x.mean((2, 3))"] / fb["graphpool"]
            add(f"{regime} mean forward+backward: x.mean((2, 3)) / graphpool", ratio, ">= 1",
                ratio >= 1)
        fb = _find(results, regime, "max", "forward+backward")
        if fb:
            ratio = fb["AdaptiveMaxPool2d"] / fb["graphpool"]
            add(f"{regime} max forward+backward: AdaptiveMaxPool2d / graphpool", ratio, ">= 1",
                ratio >= 1)
    for op in FAMILY:
        for mode in ("forward", "forward+backward"):
            vs_best("molecules", op, mode, 1)
    for row in {(r["regime"], r["mode"]): r for r in training}.values():
        ratio = next(r["ratio_to_graphpool"] for r in training if r["regime"] == row["regime"]
                     and r["mode"] == row["mode"] and r["candidate"] == "PyG")
        goal = 1.15 if row["mode"] == "eager" else 1.0
        add(f"{row['regime']} {row['mode']}: PyG / graphpool", ratio, f">= {goal}",
            ratio >= goal)
    if previous:
        before = {(r["regime"], r["dtype"], r["op"], r["mode"]): r["median_ms"]
                  for r in previous if r["candidate"] == "graphpool"}
        now = {(r.regime, r.dtype, r.op, r.mode): r.median_ms for r in results
               if r.candidate == "graphpool"}
        common = [k for k in now if k in before]
        slower = [k for k in common if now[k] > 1.1 * before[k]]
        if common:
            add("rows more than 10% slower than the last published run (of "
                f"{len(common)})" + (": " + "; ".join(" ".join(k) for k in slower)
                                     if slower else ""), len(slower), "0", not slower)
    return out


def to_json(results: Sequence[Result], targets, path: str, **extra: object) -> None:
    with open(path, "w") as f:
        json.dump({"machine": machine(), **extra, "results": [asdict(r) for r in results],
                   "targets": targets}, f, indent=1)
