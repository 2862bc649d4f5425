"""graphpool.distributed against the single-process readout of the concatenated rows.

Every case runs inside one ``torch.multiprocessing`` spawn per world size (2 and 3), gloo
on 127.0.0.1 with a free port; collectives time out after 30 s and the spawn after
``SPAWN_TIMEOUT``, so a bug fails the test instead of hanging CI. Each rank builds the
same data from the same seed, keeps its shard, reads it out with graphpool.distributed
and compares values and its rows' gradients with graphpool's single-process readout of
all rows (exact for max/min, ties included; an absolute floor scaled to the inputs for
the others). Learnable weights get one gradient per rank (their rows' share): their sum
over ranks must be the single-process gradient.
"""
from __future__ import annotations

import copy
import datetime
import math
import os
import socket
import time
import traceback

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import graphpool
from graphpool import (AttentionalReadout, GraphpoolError, MultiReadout, Segments,
                       SoftmaxReadout)
from graphpool.distributed import DistributedReadout, distributed_readout
from tests.reference import groups_of, naive_readout

SPAWN_TIMEOUT = 150  # seconds for all the cases of one world size
COMPILE_BACKEND = "aot_eager"  # dynamo and AOT autograd, without inductor's C++ build


# ------------------------------------------------------------------------- the cases
# (name, readout spec: a name, a list, or a function of (F, generator) -> Readout)
READOUTS = [
    ("sum", "sum"), ("mean", "mean"), ("max", "max"), ("min", "min"), ("vpa", "vpa"),
    ("count", "count"), ("var", "var"), ("std", "std"),
    ("var_sample", lambda f: graphpool.VarReadout(correction=1)),
    ("logsumexp", "logsumexp"),
    ("softmax", lambda f: SoftmaxReadout(t=0.7)),
    ("softmax_learn", lambda f: SoftmaxReadout(t=0.5, learn=True, channels=f)),
    ("powermean", lambda f: graphpool.PowerMeanReadout(p=2.5)),
    ("gem", lambda f: graphpool.GeMReadout()),
    ("attention", lambda f: AttentionalReadout(gate_nn=torch.nn.Linear(f, 1).double())),
    ("attention_feature", lambda f: AttentionalReadout(
        gate_nn=torch.nn.Linear(f, 2).double(), nn=torch.nn.Linear(f, 2).double(),
        gate="feature")),
    ("multi", lambda f: MultiReadout(["mean", "max", "std", "softmax", "count"])),
    ("catavgmax", "catavgmax"), ("avgmax", "avgmax"),
]
EXACT = ("max", "min", "count")
SHARDINGS = ("random", "last_rank_empty", "set_on_one_rank", "one_rank_holds_all")


def _build(spec, f):
    return graphpool.resolve_readout(spec) if not callable(spec) else spec(f)


def _data(seed, world, sharding, n=23, f=3, b=5, ties=False, dtype=torch.float64):
    """The full rows, their sorted batch vector (set b - 1 empty), and the owner of each."""
    g = torch.Generator().manual_seed(seed)
    if ties:  # few distinct values: ties within and across ranks
        x = torch.randint(-2, 3, (n, f), generator=g).to(dtype)
    else:
        x = (torch.randn(n, f, generator=g) * 2).to(dtype)
    batch = torch.randint(0, b - 1, (n,), generator=g).sort().values
    owner = torch.randint(0, world, (n,), generator=g)
    if sharding == "last_rank_empty":
        owner = owner % (world - 1)
    elif sharding == "set_on_one_rank":
        owner = torch.where(batch == 1, 0, owner)
        owner = torch.where(batch == 2, world - 1, owner)
    elif sharding == "one_rank_holds_all":
        owner = torch.full_like(owner, world - 1)
    return x, batch, owner, b


def _close(got, want, scale, exact, what):
    if exact:
        assert torch.equal(got, want) or (torch.isnan(got) == torch.isnan(want)).all() and \
            torch.equal(got.nan_to_num(), want.nan_to_num()), f"{what}: {got} != {want}"
        return
    eps = torch.finfo(want.dtype).eps if want.is_floating_point() else 0
    floor = 64 * eps * (1 + scale) ** 2 * 23
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert torch.allclose(got, want, atol=floor, rtol=64 * eps, equal_nan=True), \
        f"{what}: max diff {(got - want).abs().nan_to_num().max()} > {floor}"


def _allreduce_grads(module):
    grads = []
    for p in module.parameters():
        g = p.grad.clone() if p.grad is not None else torch.zeros_like(p)
        dist.all_reduce(g)
        grads.append(g)
    return grads


def _check_case(rank, world, name, spec, sharding, grouping, seed, ties=False,
                backward="replicated", lead=False, size=(23, 3, 5)):
    n, f, b = size
    x, batch, owner, b = _data(seed, world, sharding, n=n, f=f, b=b, ties=ties)
    f = x.size(-1)
    if lead:  # leading dims [2, N, F]
        x = torch.stack([x, -x.flip(-1)])
    torch.manual_seed(seed)  # the same weights on every rank
    module = _build(spec, f)
    ref_module = copy.deepcopy(module)
    mine = owner == rank
    x_ref = x.clone().requires_grad_(True)
    x_loc = x[..., mine, :].clone().requires_grad_(True)
    b_loc = batch[mine]
    out_ref = ref_module(x_ref, batch, dim_size=b)
    kwargs = dict(num_sets=b)
    arg = b_loc
    x_in = x_loc
    if grouping == "unsorted":  # the same rows, shuffled on this rank
        perm = torch.randperm(b_loc.numel(), generator=torch.Generator().manual_seed(rank))
        arg = b_loc[perm]
        x_in = x_loc[..., perm, :]
    elif grouping == "ptr":
        arg, kwargs = None, dict(ptr=torch.cat([torch.zeros(1, dtype=torch.long),
                                                torch.bincount(b_loc, minlength=b).cumsum(0)]))
    elif grouping == "segments":
        arg, kwargs = Segments.from_index(b_loc, num_segments=b), {}
    elif grouping == "mask":
        from torch_geometric.utils import to_dense_batch
        x_in, mask = to_dense_batch(x_loc, b_loc, batch_size=b)
        arg, kwargs = Segments.from_mask(mask), {}
    dmodule = DistributedReadout(module, backward=backward)
    out = dmodule(x_in, arg, **kwargs)
    what = f"[rank {rank}/{world}] {name} {sharding} {grouping}"
    scale = float(x.abs().max()) if x.numel() else 1.0
    exact = name in EXACT
    _close(out.detach(), out_ref.detach(), scale, exact, what + " value")
    if name in ("sum", "mean", "max", "min") and not lead:  # and a plain loop over sets
        naive = naive_readout(x.detach(), groups_of(batch, b), name)
        _close(out.detach(), naive, scale, name in EXACT, what + " value (naive loop)")
    if not out_ref.requires_grad:
        return
    w = torch.randn(out_ref.shape, generator=torch.Generator().manual_seed(seed + 1),
                    dtype=out_ref.dtype)
    if backward == "sum":  # a different loss on every rank; the objective is their sum
        ws = [torch.randn(out_ref.shape, generator=torch.Generator().manual_seed(seed + 2 + r),
                          dtype=out_ref.dtype) for r in range(world)]
        (out * ws[rank]).sum().backward()
        sum(((out_ref * wr).sum() for wr in ws)).backward()
    else:
        (out * w).sum().backward()
        (out_ref * w).sum().backward()
    # backward="sum": the ranks' output gradients are summed in another order than here
    _close(x_loc.grad, x_ref.grad[..., mine, :], scale, exact and backward == "replicated",
           what + " gradient")
    for got, p in zip(_allreduce_grads(module), ref_module.parameters()):
        _close(got, p.grad, scale, False, what + " weight gradient (sum over ranks)")


def _check_random_cases(rank, world, count=40):
    """Random sizes (no row at all included), widths, numbers of sets, shardings and
    readouts: a property test with seeds every rank draws alike."""
    for name in ("sum", "mean", "max", "var", "softmax", "attention", "multi"):  # no row
        _check_case(rank, world, name, dict(READOUTS)[name], "random", "index", 4000,
                    size=(0, 2, 3))
    g = torch.Generator().manual_seed(1234)
    for case in range(count):
        n = int(torch.randint(0, 30, (1,), generator=g))
        f = int(torch.randint(1, 5, (1,), generator=g))
        b = int(torch.randint(2, 7, (1,), generator=g))
        name, spec = READOUTS[int(torch.randint(0, len(READOUTS), (1,), generator=g))]
        sharding = SHARDINGS[int(torch.randint(0, len(SHARDINGS), (1,), generator=g))]
        _check_case(rank, world, name, spec, sharding, "index", 5000 + case,
                    ties=name in EXACT, size=(n, f, b))


def _check_nan(rank, world):
    """A nan on one rank is the set's nan on every rank, as in one process (gloo's MAX and
    MIN alone may drop it)."""
    x, batch, owner, b = _data(11, world, "random")
    x[3, 1] = x[10, 0] = x[17, 2] = float("nan")
    x[5, 2] = float("inf")
    mine = owner == rank
    for reduce in ("max", "min", "sum", "mean", "softmax", "var", "logsumexp"):
        out = distributed_readout(x[mine], batch[mine], reduce, num_sets=b)
        ref = graphpool.readout(x, batch, reduce, num_graphs=b)
        assert torch.equal(torch.isnan(out), torch.isnan(ref)), (reduce, out, ref)
        _close(out, ref, float(x[torch.isfinite(x)].abs().max()), reduce in EXACT,
               f"[rank {rank}] {reduce} with nan and inf")


def _check_collectives(rank, world):
    """The collectives each readout sends, as the docs state."""
    x = torch.randn(4, 3, dtype=torch.float64)
    batch = torch.tensor([0, 0, 1, 1])
    expect = {"sum": [("sum", 2 * 4)], "mean": [("sum", 2 * 4)],
              "count": [("sum", 2)], "max": [("max", 2 * 7)],
              "logsumexp": [("max", 2 * 4), ("sum", 2 * 3)],
              "softmax": [("max", 2 * 4), ("sum", 2 * 6)],
              "powermean": [("max", 2 * 4), ("sum", 2 * 4)],
              "var": [("gather", 2 * 13)]}
    for reduce, want in expect.items():
        log = []
        distributed_readout(x, batch, reduce, num_sets=2, log=log)
        assert log == want, f"{reduce}: {log} != {want}"
    log = []  # max with a gradient: the tie counts too
    distributed_readout(x.clone().requires_grad_(), batch, "max", num_sets=2, log=log)
    assert log == [("max", 14), ("sum", 6)], log
    log = []  # a MultiReadout packs its readouts' requests: one SUM, one MAX
    distributed_readout(x, batch, ["mean", "sum", "count", "max", "min"], num_sets=2, log=log)
    assert sorted(log) == [("max", 14), ("min", 14), ("sum", 2 * (4 + 4 + 1))], log
    log = []  # integers: no nan flags
    distributed_readout(x.long(), batch, "max", num_sets=2, log=log)
    assert log == [("max", 8)], log
    log = []  # softmax and logsumexp share their MAX and their SUM
    distributed_readout(x, batch, ["softmax", "logsumexp", "mean"], num_sets=2, log=log)
    assert log == [("max", 16), ("sum", 8), ("sum", 12 + 6)], log


def _expect_error(rank, world, argument, call):
    try:
        call()
    except GraphpoolError as err:
        assert err.argument == argument, f"[rank {rank}] {err.argument!r} != {argument!r}: {err}"
        for r in range(world):
            assert f"rank {r}:" in str(err), f"[rank {rank}] rank {r} not named: {err}"
        return str(err)
    raise AssertionError(f"[rank {rank}] no GraphpoolError for mismatched {argument}")


def _check_mismatches(rank, world):
    """Ranks that disagree all raise, naming the argument and every rank's value; the group
    stays usable (the next call works)."""
    x = torch.randn(3, 4)
    batch = torch.tensor([0, 1, 1])
    msg = _expect_error(rank, world, "num_sets", lambda: distributed_readout(
        x, batch, "mean", num_sets=2 + rank))
    assert "rank 0: 2" in msg and "rank 1: 3" in msg, msg
    msg = _expect_error(rank, world, "x", lambda: distributed_readout(
        torch.randn(3, 4 + rank), batch, "sum", num_sets=2))
    assert "rank 1: 5" in msg and "features" in msg, msg
    msg = _expect_error(rank, world, "x", lambda: distributed_readout(
        x.double() if rank else x, batch, "sum", num_sets=2))
    assert "float64" in msg and "float32" in msg, msg
    msg = _expect_error(rank, world, "reduce", lambda: distributed_readout(
        x, batch, "mean" if rank == 0 else "max", num_sets=2))
    assert "MeanReadout" in msg and "MaxReadout" in msg, msg
    _expect_error(rank, world, "reduce", lambda: distributed_readout(
        x, batch, "softmax", num_sets=2, t=1.0 + rank))
    _expect_error(rank, world, "x", lambda: distributed_readout(
        x.clone().requires_grad_(rank == 0), batch, "max", num_sets=2))
    msg = _expect_error(rank, world, "x", lambda: distributed_readout(
        x.expand(1 + rank, 3, 4), batch, "mean", num_sets=2))
    assert "leading dims" in msg and "rank 0: (1,)" in msg, msg
    _expect_error(rank, world, "backward", lambda: DistributedReadout(
        "sum", backward="sum" if rank else "replicated")(
            x.clone().requires_grad_(), batch, num_sets=2))
    torch.manual_seed(rank)  # an attention with other weights on every rank
    attention = AttentionalReadout(in_channels=4)
    msg = _expect_error(rank, world, "reduce", lambda: distributed_readout(
        x, batch, attention, num_sets=2))
    assert "weights" in msg and "digest" in msg, msg
    out = distributed_readout(x, batch, "sum", num_sets=2)  # still in step
    assert torch.allclose(out, graphpool.readout(x, batch, "sum") * world)


def _check_local_errors(rank, world):
    """An argument only one rank gets wrong (found before any collective: a bad index, an
    unknown readout, a bad backward=, rows that do not match the index) raises on every
    rank, naming that rank, instead of leaving the others waiting in the agreement check
    (they then paired it with the next call and hung there); the group stays in step."""
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(5))  # alike on every rank
    batch, bad = torch.tensor([0, 1, 1]), world - 1
    cases = [
        ("num_sets", lambda: distributed_readout(
            x, torch.tensor([0, 1, 7]) if rank == bad else batch, "sum", num_sets=2)),
        ("reduce", lambda: distributed_readout(
            x, batch, "meen" if rank == bad else "mean", num_sets=2)),
        ("backward", lambda: distributed_readout(
            x, batch, "sum", num_sets=2, backward="mean" if rank == bad else "replicated")),
        ("x", lambda: distributed_readout(x[:2] if rank == bad else x, batch, "max",
                                          num_sets=2)),
        ("x", lambda: DistributedReadout("sum")(x.tolist() if rank == bad else x, batch,
                                                num_sets=2)),
    ]
    for argument, call in cases:
        with pytest.raises(GraphpoolError) as err:
            call()
        assert err.value.argument == argument, f"[rank {rank}] {err.value}"
        assert f"rank {bad}:" in str(err.value), f"[rank {rank}] {err.value}"
        assert "leave it out" not in str(err.value), f"[rank {rank}] {err.value}"
    # the readout's own part failing on one rank's rows (batch norm in training mode on
    # a single row): every rank raises, instead of the others waiting in the first MAX
    torch.manual_seed(0)
    gate = torch.nn.Sequential(torch.nn.Linear(4, 1), torch.nn.BatchNorm1d(1))
    pool = DistributedReadout(AttentionalReadout(gate_nn=gate))
    rows = 1 if rank == bad else 3
    with pytest.raises(GraphpoolError) as err:
        pool(x[:rows], batch[:rows], num_sets=2)
    assert err.value.argument == "reduce" and f"rank {bad}: ValueError" in str(err.value)
    # ... unless the ranks' arguments disagree too: that error explains it
    with pytest.raises(GraphpoolError) as err:
        pool(x[:rows], batch[:rows], num_sets=2 + rank)
    assert err.value.argument == "num_sets", str(err.value)
    out = distributed_readout(x, batch, "sum", num_sets=2)  # still in step
    assert torch.allclose(out, graphpool.readout(x, batch, "sum") * world)


class _Column(torch.nn.Module):
    """Column ``i`` of ``x`` as a gate or value network (no weights)."""

    def __init__(self, i):
        super().__init__()
        self.i = i

    def forward(self, x):
        return x[..., self.i:self.i + 1]


def _check_masked_scores(rank, world):
    """Scores of ``-inf`` (masked nodes) on every row a rank holds of a set: that rank's
    rows get the single-process gradient 0, not nan (a rank's own log-sum-exp of them is
    ``-inf``, whose logarithm has no gradient)."""
    g = torch.Generator().manual_seed(21)
    x = torch.randn(12, 3, generator=g, dtype=torch.float64)
    batch = torch.arange(12) // 4  # 3 sets of 4 rows
    owner = torch.arange(12) % world
    masked = (owner == 0) & (batch < 2)  # rank 0's rows of sets 0 and 1
    x[masked, 0] = -math.inf
    readouts = [AttentionalReadout(gate_nn=_Column(0), nn=_Column(1)),
                graphpool.LogSumExpReadout(), SoftmaxReadout(t=0.8)]
    mine = owner == rank
    for module in readouts:
        x_ref = x.clone().requires_grad_(True)
        x_loc = x[mine].clone().requires_grad_(True)
        ref = module(x_ref, batch, dim_size=3)
        out = DistributedReadout(module)(x_loc, batch[mine], num_sets=3)
        w = torch.randn(ref.shape, generator=torch.Generator().manual_seed(3),
                        dtype=ref.dtype)
        (out * w).sum().backward()
        (ref * w).sum().backward()
        what = f"[rank {rank}] {module!r} with -inf scores"
        _close(out.detach(), ref.detach(), 3.0, False, what)
        _close(x_loc.grad, x_ref.grad[mine], 3.0, False, what + " gradient")


def _check_combine_weights(rank, world):
    """A MultiReadout's own weights (mode "proj", "attn") act on the global results, so
    every rank computes their gradient in full; the sum over ranks must still be the
    single-process gradient, as for the gate's (it was W times that)."""
    for mode in ("proj", "attn"):
        spec = (lambda f, mode=mode: MultiReadout(
            ["mean", "max", "softmax"], mode=mode,
            mode_kwargs=dict(in_channels=f, out_channels=2)).double())
        _check_case(rank, world, f"multi_{mode}", spec, "random", "index", 77, ties=True)


def _check_dtypes_and_shapes(rank, world):
    """Half types (computed in float32, rounded once), 1-D x, integer sums and extrema."""
    x, batch, owner, b = _data(7, world, "random", ties=True)
    mine = owner == rank
    for dtype in (torch.float16, torch.bfloat16):
        for reduce in ("mean", "max", "std", "softmax"):
            x_ref = x.to(dtype).requires_grad_(True)
            x_loc = x[mine].to(dtype).requires_grad_(True)
            out = distributed_readout(x_loc, batch[mine], reduce, num_sets=b)
            ref = graphpool.readout(x_ref, batch, reduce, num_graphs=b)
            assert out.dtype == dtype
            out.float().sum().backward()
            ref.float().sum().backward()
            what = f"[rank {rank}] {reduce} {dtype}"
            _close(out.float(), ref.float(), 2.0, reduce == "max", what)
            _close(x_loc.grad.float(), x_ref.grad[mine].float(), 2.0, reduce == "max",
                   what + " gradient")
    out = distributed_readout(x[mine, 0], batch[mine], "sum", num_sets=b)  # 1-D: [B]
    _close(out, graphpool.readout(x[:, 0], batch, "sum", num_graphs=b), 2.0, False, "1-D")
    for dtype in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        for reduce in ("sum", "max", "min", "count"):  # int16: gloo has no MAX of it
            xi = (x + 2).to(dtype)
            out = distributed_readout(xi[mine], batch[mine], reduce, num_sets=b)
            ref = graphpool.readout(xi, batch, reduce, num_graphs=b)
            assert out.dtype == ref.dtype and torch.equal(out, ref), (reduce, dtype)


def _check_group(rank, world):
    """A sub-group: only its ranks take part; the others are refused."""
    sub = dist.new_group([0, 1])
    x = torch.full((2, 1), float(rank + 1))
    if rank in (0, 1):
        out = distributed_readout(x, torch.tensor([0, 0]), "sum", num_sets=1, group=sub)
        assert out.item() == 6.0, out
    else:
        with pytest.raises(GraphpoolError, match="group"):
            distributed_readout(x, torch.tensor([0, 0]), "sum", num_sets=1, group=sub)


def _check_compile(rank, world):
    """torch.compile (not fullgraph: the agreement check reads the gathered table on the
    host) gives eager's values and gradients: dynamo traces the collectives' autograd
    Functions and AOT autograd their backward (inductor's code generation, checked by hand
    in docs/distributed.md, costs ~10 s more per process)."""
    x, batch, owner, b = _data(99, world, "random", dtype=torch.float32)
    mine = owner == rank
    pool = DistributedReadout(["mean", "max", "softmax"])
    outs, grads = [], []
    for run in (pool, torch.compile(pool, backend=COMPILE_BACKEND)):
        x_loc = x[mine].clone().requires_grad_(True)
        out = run(x_loc, batch[mine], num_sets=b)
        out.backward(torch.ones_like(out))
        outs.append(out.detach())
        grads.append(x_loc.grad)
    scale = float(x.abs().max())
    _close(outs[1], outs[0], scale, False, f"[rank {rank}] compiled value")
    _close(grads[1], grads[0], scale, False, f"[rank {rank}] compiled gradient")


def _worker(rank, world, port):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world, timeout=datetime.timedelta(seconds=30))
    try:
        seed = 0
        for sharding in SHARDINGS:
            for name, spec in READOUTS:
                seed += 1
                _check_case(rank, world, name, spec, sharding, "index", seed,
                            ties=name in ("max", "min", "multi", "catavgmax"))
        for grouping in ("unsorted", "ptr", "segments", "mask"):
            for name in ("mean", "max", "std", "softmax", "attention", "multi"):
                seed += 1
                spec = dict(READOUTS)[name]
                _check_case(rank, world, name, spec, "random", grouping, seed,
                            ties=name == "max")
        for name in ("sum", "max", "var", "softmax_learn", "attention"):
            seed += 1
            _check_case(rank, world, name, dict(READOUTS)[name], "random", "index", seed,
                        backward="sum", ties=name == "max")
        for name in ("mean", "max", "logsumexp", "powermean"):
            seed += 1
            _check_case(rank, world, name, dict(READOUTS)[name], "random", "index", seed,
                        lead=True, ties=name == "max")
        _check_random_cases(rank, world)
        _check_collectives(rank, world)
        _check_nan(rank, world)
        _check_dtypes_and_shapes(rank, world)
        _check_mismatches(rank, world)
        _check_local_errors(rank, world)
        _check_masked_scores(rank, world)
        _check_combine_weights(rank, world)
        if world >= 3:
            _check_group(rank, world)
        else:
            _check_compile(rank, world)
    except BaseException:
        traceback.print_exc()
        raise
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("world", [2, 3])
def test_distributed_readouts_match_single_process(world):
    ctx = mp.start_processes(_worker, args=(world, _free_port()), nprocs=world, join=False,
                             start_method="spawn")
    deadline = time.monotonic() + SPAWN_TIMEOUT
    try:
        while not ctx.join(timeout=max(1.0, deadline - time.monotonic())):
            if time.monotonic() > deadline:
                pytest.fail(f"world size {world}: no result within {SPAWN_TIMEOUT} s")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()


def test_uninitialised_group_says_how_to_initialise():
    assert not dist.is_initialized()
    with pytest.raises(GraphpoolError) as err:
        distributed_readout(torch.ones(2, 1), torch.tensor([0, 0]), "sum", num_sets=1)
    assert err.value.argument == "group"
    assert "init_process_group" in str(err.value) and "torchrun" in str(err.value)


@pytest.mark.parametrize("call, argument", [
    (lambda: distributed_readout(torch.ones(2, 1), torch.tensor([0, 0]), "sum"), "num_sets"),
    (lambda: distributed_readout(torch.ones(2, 1), None, "median", num_sets=1), "reduce"),
    (lambda: distributed_readout(torch.ones(2, 1), None, "sum", num_sets=1,
                                 backward="mean"), "backward"),
    (lambda: distributed_readout(torch.ones(2, 1, dtype=torch.long), None, "mean",
                                 num_sets=1), "x"),
    (lambda: distributed_readout(torch.ones(2, 1, dtype=torch.bool), None, "count",
                                 num_sets=1), "x"),  # refused as in one process
    (lambda: distributed_readout(torch.ones(2, 1), None, "attention", num_sets=1,
                                 in_channels=1), "reduce"),
    (lambda: distributed_readout(torch.ones(2, 1), None, "sum", num_sets=1,
                                 group="all"), "group"),
    (lambda: DistributedReadout(graphpool.MeanReadout(), t=2.0), "t"),
    (lambda: distributed_readout(torch.ones(2, 1), None, graphpool.MeanReadout(),
                                 num_sets=1, t=2.0), "t"),
    (lambda: distributed_readout(torch.ones(2, 1), None, graphpool.MeanReadout(fill_value=-1.0),
                                 num_sets=1, fill_value=0.0), "fill_value"),
])
def test_bad_arguments_in_one_process(call, argument, tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0,
                            world_size=1)
    try:
        with pytest.raises(GraphpoolError) as err:
            call()
        assert err.value.argument == argument, str(err.value)
    finally:
        dist.destroy_process_group()


def test_a_readout_instance_with_its_own_fill_value_in_one_process(tmp_path):
    """As readout(): a fill_value given along with a module is accepted when it is the
    module's own (it was refused, and named 'reduce')."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0,
                            world_size=1)
    try:
        x, batch = torch.tensor([[1.0], [3.0]]), torch.tensor([0, 0])
        module = graphpool.MeanReadout(fill_value=-1.0)
        out = distributed_readout(x, batch, module, num_sets=2, fill_value=-1)
        assert torch.equal(out, graphpool.readout(x, batch, module, num_graphs=2))
        assert out[1].item() == -1.0
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("shape, num_sets", [((0, 3), 0), ((2, 0, 3), 2), ((0, 4, 3), 2),
                                             ((0, 3), 3)])
def test_zero_sets_zero_rows_and_empty_leading_dims_in_one_process(shape, num_sets, tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0,
                            world_size=1)
    try:
        batch = torch.zeros(shape[-2], dtype=torch.long)
        for reduce in ("sum", "mean", "vpa", "max", "min", "count", "var", "std", "logsumexp",
                       "softmax", "powermean", ["mean", "max", "std"]):
            x = torch.zeros(shape, requires_grad=True)
            out = distributed_readout(x, batch, reduce, num_sets=num_sets, fill_value=-1.0)
            ref = graphpool.readout(x, batch, reduce, num_graphs=num_sets, fill_value=-1.0)
            assert out.shape == ref.shape and torch.equal(out, ref), reduce
    finally:
        dist.destroy_process_group()
