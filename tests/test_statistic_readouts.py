"""Statistic readouts (var, std, logsumexp, softmax, power mean / GeM, median, quantile, prod,
vpa, count) and MultiReadout against independent references: PyG's own aggregation classes,
a float64 loop over the sets built from torch's functions, closed forms, hypothesis
properties, torch.compile, gradcheck, and a table of bad arguments.

Every tolerance is derived from the dtype's eps, the set sizes and the magnitude of the data
(a rounding-error bound), never measured on one machine; no assertion is timed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st
from torch import Tensor
from torch_geometric.nn import aggr as pyg

import graphpool as gp
from graphpool import GraphpoolError, Segments
from graphpool.composite import (INTERPOLATIONS, segment_count, segment_logsumexp,
                                 segment_power_mean, segment_quantile, segment_softmax,
                                 segment_softmax_sum, segment_sort_k, segment_std,
                                 segment_var)
from graphpool.readouts import (CountReadout, GeMReadout, LogSumExpReadout, MedianReadout,
                                MultiReadout, PowerMeanReadout, ProdReadout, QuantileReadout,
                                SoftmaxReadout, StdReadout, VarReadout, VPAReadout,
                                resolve_readout)

from .groupings import groupings, groups_from_counts

F64 = torch.float64
HALF = (torch.float16, torch.bfloat16)


def eps(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).eps


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """What the statistics compute in (half types in float32)."""
    return torch.float32 if dtype in HALF else dtype


# ----------------------------------------------------------------------------------------
# Per-set float64 references, written from torch's own functions and the documented math
# ----------------------------------------------------------------------------------------

def ref_var(s: Tensor, correction: int = 0) -> Tensor:
    if s.size(0) <= correction:
        return s.new_full(s.shape[1:], math.nan)
    return torch.var(s, 0, correction=correction)


def ref_std(s: Tensor, correction: int = 0) -> Tensor:
    """sqrt(var), with the documented subgradient 0 where the variance is 0 (torch.std's own
    gradient there is nan)."""
    var = ref_var(s, correction)
    positive = var > 0
    return torch.where(torch.isnan(var), var,
                       torch.where(positive, torch.where(positive, var, 1).sqrt(), 0))


def ref_lse(s: Tensor) -> Tensor:
    return torch.logsumexp(s, 0)


def ref_softmax(s: Tensor, t) -> Tensor:
    """Explicit softmax weights exp(t x - max) / sum, then the weighted sum."""
    scores = s * t
    w = torch.exp(scores - scores.max(0).values)
    return (w * s).sum(0) / w.sum(0)


def signed_pow(v: Tensor, e) -> Tensor:
    return torch.sign(v) * v.abs() ** e


def ref_power_mean(s: Tensor, p) -> Tensor:
    return signed_pow(signed_pow(s, p).mean(0), 1 / p)


def ref_quantile(s: Tensor, qs, interpolation: str) -> Tensor:
    return torch.cat([torch.quantile(s, q, dim=0, interpolation=interpolation) for q in qs])


def loop(per_set: Callable[[Tensor], Tensor], x: Tensor, counts, width: int,
         fill: float = 0.0) -> Tensor:
    """The readout of every set of ``x`` (rows of set 0, then set 1, ...), in float64;
    empty sets get ``fill``. ``x`` may carry leading dims."""
    x = x.to(F64)
    if x.dim() > 2:
        return torch.stack([loop(per_set, xi, counts, width, fill) for xi in x])
    rows = []
    for members in groups_from_counts(counts):
        rows.append(per_set(x[members]) if members else x.new_full((width,), fill))
    return torch.stack(rows) if rows else x.new_zeros(0, width)


# ----------------------------------------------------------------------------------------
# The readout table
# ----------------------------------------------------------------------------------------

QS = [0.0, 0.3, 0.5, 0.9, 1.0]


@dataclass
class Case:
    id: str
    make: Callable[[int], torch.nn.Module]            # number of features -> module
    ref: Callable[[Tensor, torch.nn.Module], Tensor]  # float64 set [n, F], module -> [k F]
    function: Optional[Callable] = None               # (x, segments, module) -> composite
    named: Optional[tuple] = None                     # (name, options) for gp.readout
    # bound of |error| / (n eps): (max |x|, module) -> magnitude
    scale: Callable[[float, torch.nn.Module], float] = lambda a, m: a
    data: str = "real"                                # "positive": x in [0.1, 2]
    exact: bool = False                               # order statistics, counts
    width: int = 1                                    # output features per input feature
    differentiable: bool = True
    sqrt_of: Optional[str] = None                     # std: error bound of sqrt(var)
    half_in_half: bool = False                        # computed in the half type itself
    grad_cond: Callable[[float, torch.nn.Module], float] = lambda a, m: 1.0
    sums: bool = True                                 # error grows with n (sums, products)
    relative: bool = False                            # error relative to |result| (prod)


def _t(m):
    return m.t.detach().double() if isinstance(m.t, Tensor) else m.t


def _p(m):
    return m.p.detach().double().clamp(min=0.01) if isinstance(m.p, Tensor) else m.p


def _tp(m):  # the live parameter, in float64, so reference gradients reach it
    return m.t.double() if isinstance(m.t, Tensor) else m.t


def _pp(m):
    return m.p.double().clamp(min=0.01) if isinstance(m.p, Tensor) else m.p


def _learn_t(F):
    m = SoftmaxReadout(learn=True, channels=F)
    with torch.no_grad():
        m.t.copy_(torch.linspace(-1.5, 2.0, F))
    return m


def _learn_p(F):
    m = PowerMeanReadout(p=2.0, learn=True, channels=F)
    with torch.no_grad():
        m.p.copy_(torch.linspace(0.7, 3.0, F))
    return m


def _max_abs_t(m):
    t = _t(m)
    return float(t.abs().max()) if isinstance(t, Tensor) else abs(t)


def _max_p(m):
    p = _p(m)
    return (float(p.max()), float(p.min())) if isinstance(p, Tensor) else (p, p)


CASES = [
    Case("var", lambda F: VarReadout(), lambda s, m: ref_var(s),
         lambda x, seg, m: segment_var(x, seg), ("var", {}), scale=lambda a, m: 4 * a * a),
    Case("var-c1", lambda F: VarReadout(correction=1), lambda s, m: ref_var(s, 1),
         lambda x, seg, m: segment_var(x, seg, correction=1), ("var", {"correction": 1}),
         scale=lambda a, m: 8 * a * a),
    Case("std", lambda F: StdReadout(), lambda s, m: ref_std(s),
         lambda x, seg, m: segment_std(x, seg), ("std", {}), scale=lambda a, m: 4 * a * a,
         sqrt_of="var", grad_cond=lambda a, m: 4 * a * a),
    Case("std-c1", lambda F: StdReadout(correction=1), lambda s, m: ref_std(s, 1),
         lambda x, seg, m: segment_std(x, seg, correction=1), ("std", {"correction": 1}),
         scale=lambda a, m: 8 * a * a, sqrt_of="var", grad_cond=lambda a, m: 4 * a * a),
    Case("logsumexp", lambda F: LogSumExpReadout(), lambda s, m: ref_lse(s),
         lambda x, seg, m: segment_logsumexp(x, seg), ("logsumexp", {}),
         scale=lambda a, m: a + 2),
    Case("softmax-t0.7", lambda F: SoftmaxReadout(t=0.7), lambda s, m: ref_softmax(s, _tp(m)),
         lambda x, seg, m: segment_softmax_sum(x, seg, 0.7), ("softmax", {"t": 0.7}),
         scale=lambda a, m: a * (2 + 2 * _max_abs_t(m) * a),
         grad_cond=lambda a, m: 1 + 2 * _max_abs_t(m) * a),
    Case("softmax-t-2", lambda F: SoftmaxReadout(t=-2.0), lambda s, m: ref_softmax(s, _tp(m)),
         lambda x, seg, m: segment_softmax_sum(x, seg, -2.0), ("softmax", {"t": -2.0}),
         scale=lambda a, m: a * (2 + 2 * _max_abs_t(m) * a),
         grad_cond=lambda a, m: 1 + 2 * _max_abs_t(m) * a),
    Case("softmax-learn-channels", _learn_t, lambda s, m: ref_softmax(s, _tp(m)),
         lambda x, seg, m: segment_softmax_sum(x, seg, m.t),
         scale=lambda a, m: a * (2 + 2 * _max_abs_t(m) * a),
         grad_cond=lambda a, m: 1 + 2 * _max_abs_t(m) * a),
    Case("powermean-p1", lambda F: PowerMeanReadout(p=1.0), lambda s, m: ref_power_mean(s, 1.0),
         lambda x, seg, m: segment_power_mean(x, seg, 1.0), ("powermean", {"p": 1.0}),
         scale=lambda a, m: 4 * a),
    # mixed signs: the sign-safe odd extension
    Case("powermean-p2.5", lambda F: PowerMeanReadout(p=2.5),
         lambda s, m: ref_power_mean(s, 2.5),
         lambda x, seg, m: segment_power_mean(x, seg, 2.5), ("powermean", {"p": 2.5}),
         scale=lambda a, m: 16 * a, grad_cond=lambda a, m: 8.0),
    Case("powermean-p0.5", lambda F: PowerMeanReadout(p=0.5),
         lambda s, m: ref_power_mean(s, 0.5),
         lambda x, seg, m: segment_power_mean(x, seg, 0.5), ("powermean", {"p": 0.5}),
         scale=lambda a, m: 16 * a, data="positive", grad_cond=lambda a, m: 8.0),
    Case("powermean-learn-channels", _learn_p, lambda s, m: ref_power_mean(s, _pp(m)),
         lambda x, seg, m: segment_power_mean(x, seg, m.p), data="positive",
         scale=lambda a, m: 16 * a * (_max_p(m)[0] + 1 / _max_p(m)[1]),
         grad_cond=lambda a, m: 8.0),
    Case("gem", lambda F: GeMReadout(), lambda s, m: ref_power_mean(s, _pp(m)),
         None, None, data="positive", scale=lambda a, m: 32 * a, grad_cond=lambda a, m: 8.0),
    Case("median", lambda F: MedianReadout(), lambda s, m: ref_quantile(s, [0.5], "lower"),
         lambda x, seg, m: segment_quantile(x, seg, 0.5, "lower"), ("median", {}),
         exact=True),
    Case("median-linear", lambda F: MedianReadout("linear"),
         lambda s, m: ref_quantile(s, [0.5], "linear"),
         lambda x, seg, m: segment_quantile(x, seg, 0.5), ("median", {"interpolation": "linear"}),
         scale=lambda a, m: 4 * a, half_in_half=True, sums=False),
    *[Case(f"quantile-{mode}", (lambda mode: lambda F: QuantileReadout(QS, mode))(mode),
           (lambda mode: lambda s, m: ref_quantile(s, QS, mode))(mode),
           (lambda mode: lambda x, seg, m: segment_quantile(x, seg, QS, mode))(mode),
           ("quantile", {"q": QS, "interpolation": mode}),
           exact=mode in ("lower", "higher", "nearest"), width=len(QS),
           scale=lambda a, m: 4 * a, half_in_half=True, sums=False)
      for mode in INTERPOLATIONS],
    # the table's prod multiplies in the half type itself (the kernels accumulate only sums
    # and means in float32): n roundings of the half type
    Case("prod", lambda F: ProdReadout(), lambda s, m: s.prod(0), None, ("prod", {}),
         relative=True, half_in_half=True),
    Case("vpa", lambda F: VPAReadout(), lambda s, m: s.sum(0) / math.sqrt(s.size(0)), None,
         ("vpa", {}), scale=lambda a, m: 4 * a * 5),
    Case("count", lambda F: CountReadout(), lambda s, m: s.new_full((1,), s.size(0)),
         lambda x, seg, m: segment_count(x, seg), ("count", {}), exact=True,
         differentiable=False),
]
CASE_IDS = [c.id for c in CASES]


def make_x(case: Case, shape, dtype, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    if case.data == "positive":
        x = torch.rand(shape, generator=g, dtype=F64) * 1.9 + 0.1
    else:
        x = torch.randn(shape, generator=g, dtype=F64) * 2
    return x.to(dtype)


def out_width(case: Case, features: int) -> int:
    return 1 if case.id == "count" else case.width * features


def value_tol(case: Case, ref: Tensor, x: Tensor, module, counts, dtype) -> Tensor:
    """Elementwise bound on |graphpool - float64 reference| for ``x`` of ``dtype``."""
    n = max(max(counts, default=1), 1)
    a = float(x.detach().double().abs().max()) if x.numel() else 1.0
    work = dtype if case.half_in_half else compute_dtype(dtype)
    size = n if case.sums else 1
    if case.exact:
        delta = torch.zeros_like(ref)
    elif case.relative:  # n roundings of a product, each relative
        delta = 4 * n * eps(work) * ref.abs()
    else:
        delta = torch.full_like(ref, 4 * size * eps(work) * case.scale(a, module))
    if case.sqrt_of:  # |sqrt(u) - sqrt(v)| <= min(sqrt|u - v|, |u - v| / sqrt(v))
        delta = torch.minimum(delta.sqrt(), delta / ref.clamp(min=0).sqrt())
    if dtype in HALF and not case.half_in_half:
        # one rounding (to nearest) of the float32 result y: |round(y) - y| <= eps/2 |y|
        # (or half the smallest subnormal), |y - ref| <= delta
        delta = delta + 0.5 * eps(dtype) * (ref.abs() + delta) + torch.finfo(dtype).tiny * 2 ** -(
            {torch.float16: 10, torch.bfloat16: 7}[dtype] + 1)
    return torch.nan_to_num(delta, nan=0.0)


def absmax(t: Tensor) -> float:
    return float(t.detach().double().abs().max()) if t.numel() else 0.0


def assert_within(got: Tensor, ref: Tensor, tol, msg: str = "") -> None:
    got, ref = got.double(), ref.double()
    assert got.shape == ref.shape, f"{msg}: shape {tuple(got.shape)} != {tuple(ref.shape)}"
    both_nan = torch.isnan(got) & torch.isnan(ref)
    assert torch.equal(torch.isnan(got), torch.isnan(ref)), f"{msg}: nan where\n{got}\n{ref}"
    same_inf = torch.isinf(ref) & (got == ref)
    err = torch.where(both_nan | same_inf, 0, (got - ref).abs())
    tol = torch.as_tensor(tol, dtype=F64).expand_as(err)
    bad = err > tol
    assert not bad.any(), (f"{msg}: max err {err.max().item():.3g} (tol "
                           f"{tol[bad].min().item():.3g}) at {bad.nonzero()[:4].tolist()}\n"
                           f"got {got[bad][:4].tolist()}\nref {ref[bad][:4].tolist()}")


def masked_loss(out: Tensor, weights: Tensor) -> Tensor:
    """sum(w * out) over the entries that are not nan (nan for n <= correction)."""
    out = out.to(weights.dtype)
    return torch.where(torch.isnan(out), 0, out * weights).sum()


def grads(out: Tensor, inputs, weights: Tensor):
    # retain_graph: a grouping built from x (index_select, padding) is shared by several calls
    return torch.autograd.grad(masked_loss(out, weights), inputs, allow_unused=True,
                               retain_graph=True)


# ----------------------------------------------------------------------------------------
# 1. Every readout on every grouping, against the float64 per-set loop (values + gradients)
# ----------------------------------------------------------------------------------------

COUNTS = [[3, 0, 2, 1, 4], [4, 4, 4], [0, 0], [1]]


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_every_grouping_matches_the_per_set_loop(case, dtype):
    F = 3
    for ci, counts in enumerate(COUNTS):
        module = case.make(F).to(dtype)
        x = make_x(case, (sum(counts), F), dtype, seed=ci).requires_grad_()
        x64 = x.detach().double().requires_grad_()
        params = [p for p in module.parameters()]
        ref = loop(lambda s: case.ref(s, module), x64, counts, out_width(case, F))
        tol = value_tol(case, ref.detach(), x, module, counts, dtype)
        weights = torch.randn(ref.shape, generator=torch.Generator().manual_seed(7), dtype=F64)
        if case.differentiable and ref.requires_grad:
            ref_grads = grads(ref, [x64, *params], weights)
        for name, xg, seg in groupings(x, counts):
            calls = {"module": lambda: module(xg, seg)}
            if case.function is not None:
                calls["function"] = lambda: case.function(xg, seg, module)
            if case.named is not None:
                calls["readout"] = lambda: gp.readout(xg, seg, case.named[0], **case.named[1])
            for how, call in calls.items():
                msg = f"{case.id} {dtype} counts={counts} {name} {how}"
                out = call()
                assert out.dtype == dtype, msg
                assert_within(out, ref.detach(), tol, msg)
                if not case.differentiable:
                    assert not out.requires_grad, msg
                    continue
                if not ref.requires_grad:  # no non-empty set
                    continue
                got = grads(out, [x, *params], weights)
                n = max(counts)
                a = float(x.detach().abs().max())
                for g, r, what in zip(got, ref_grads, ["x", *["param"] * len(params)]):
                    if r is None:
                        continue
                    g = torch.zeros_like(r) if g is None else g
                    assert torch.isfinite(g).all(), f"{msg}: grad {what} not finite"
                    gtol = (32 * n * eps(compute_dtype(dtype)) * case.grad_cond(a, module)
                            * (1 + r.abs().max()) * (1 if what == "x" else n * len(counts)))
                    if case.exact:  # the weights rounded to dtype, summed over <= width q
                        gtol = case.width * eps(dtype) * (1 + r.abs())
                    assert_within(g, r, gtol, f"{msg} grad {what}")


@pytest.mark.parametrize("case", [c for c in CASES if c.id in (
    "var-c1", "std", "logsumexp", "softmax-t0.7", "powermean-p2.5", "quantile-linear",
    "median", "count", "vpa")], ids=lambda c: c.id)
def test_leading_batch_dims_are_independent_problems(case):
    counts, F = [3, 0, 2, 4], 2
    module = case.make(F)
    x = make_x(case, (2, 3, sum(counts), F), F64, seed=5)
    ref = loop(lambda s: case.ref(s, module), x.reshape(6, sum(counts), F), counts,
               out_width(case, F)).reshape(2, 3, len(counts), -1)
    for name, xg, seg in groupings(x, counts):
        out = module(xg, seg).detach()
        assert_within(out, ref.detach(), value_tol(case, ref.detach(), x, module, counts, F64),
                      f"{case.id} {name}")


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_half_inputs_are_computed_in_float32_and_rounded_once(case, dtype):
    counts, F = [3, 0, 2, 5], 2
    module = case.make(F)
    x = make_x(case, (sum(counts), F), dtype, seed=3)
    ref = loop(lambda s: case.ref(s, module), x, counts, out_width(case, F)).detach()
    tol = value_tol(case, ref, x, module, counts, dtype)
    for name, xg, seg in groupings(x, counts):
        out = module(xg, seg)
        assert out.dtype == dtype, f"{case.id} {name}"
        assert_within(out, ref, tol, f"{case.id} {dtype} {name}")


@pytest.mark.parametrize("name", [
    "var", "std", "logsumexp", "softmax", SoftmaxReadout(t=-0.5), "powermean",
    PowerMeanReadout(p=2.0), "gem", "median", "prod", "vpa", "count",
    QuantileReadout([0.25, 0.75], "midpoint"), "catavgmax", ["std", "median", "logsumexp"]],
    ids=str)
def test_global_pool2d_equals_the_graph_path(name):
    B, C, H, W = 2, 3, 4, 5
    fmap = torch.rand(B, C, H, W, generator=torch.Generator().manual_seed(1)) + 0.5
    nodes = fmap.permute(0, 2, 3, 1).reshape(B * H * W, C)
    batch = torch.arange(B).repeat_interleave(H * W)
    got = gp.GlobalPool2d(name)(fmap).detach()
    want = gp.readout(nodes, batch, name).detach()  # (gem: p = 3 fixed, GeM's initial p)
    # the same sets over another grouping: the kernels may add in another order
    tol = 8 * H * W * eps(torch.float32) * (1 + want.abs().max())
    if name == "prod":
        tol = 8 * H * W * eps(torch.float32) * want.abs()
    assert_within(got, want, tol, str(name))
    # and nn.AdaptiveAvgPool2d-style flattening: the width the pool says
    assert got.shape == (B, gp.GlobalPool2d(name).out_features(C))


@pytest.mark.parametrize("dtype", [torch.float32, F64, torch.bfloat16])
def test_segment_softmax_weights_on_every_grouping(dtype):
    counts, F = [3, 0, 2, 1, 4], 2
    x = make_x(CASES[0], (sum(counts), F), dtype, seed=2)
    want = []
    for members in groups_from_counts(counts):  # explicit exp(s - max) / sum
        s = x[members].double()
        if members:
            w = torch.exp(s - s.max(0).values)
            want.append(w / w.sum(0))
    want = torch.cat(want)
    work = compute_dtype(dtype)
    tol = 8 * max(counts) * eps(work) * (1 + 2 * absmax(x)) * want + (
        0.5 * eps(dtype) * want if dtype in HALF else 0)
    rows = torch.arange(x.size(0), dtype=F64).unsqueeze(-1)  # rides along: where rows went
    for name, xg, seg in groupings(torch.cat([x.double(), rows], -1), counts):
        ids = xg[..., -1]
        xg = xg[..., :-1].to(dtype)
        got = segment_softmax(xg, seg)
        assert got.shape == xg.shape and got.dtype == dtype, name
        if name == "mask":  # padding rows get 0, the rows keep their place
            mask = ~torch.isnan(ids)
            assert torch.equal(got[~mask], torch.zeros_like(got[~mask])), name
            got, ids = got[mask], ids[mask]
        assert_within(got[torch.argsort(ids)], want, tol, name)


def test_power_mean_p1_has_the_means_gradient_at_zeros():
    """f(x) = sign(x)|x|^p is x for p = 1: zeros (a ReLU's output) keep the mean's gradient
    1/n, also for a learnable p initialised at 1 and for an all-zero set."""
    x = torch.relu(torch.randn(9, 3, generator=torch.Generator().manual_seed(3)))
    x[6:] = 0  # set 2: all zeros
    x.requires_grad_()
    batch = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2, 2])
    assert (x[:6] == 0).any()
    w = torch.randn(3, 3, generator=torch.Generator().manual_seed(4))
    want, = torch.autograd.grad((gp.readout(x, batch, "mean") * w).sum(), x)
    for module in (PowerMeanReadout(p=1.0), PowerMeanReadout(learn=True), GeMReadout(p=1.0)):
        out = module(x, batch)
        torch.testing.assert_close(out, gp.readout(x, batch, "mean"), rtol=4 * eps(
            torch.float32), atol=4 * eps(torch.float32))
        got, = torch.autograd.grad((out * w).sum(), x)
        assert_within(got, want, 8 * eps(torch.float32) * (1 + want.abs()), repr(module))
    for p in (2.0, 3.0):  # p > 1: the derivative of |x|^p at 0 is 0
        g, = torch.autograd.grad(segment_power_mean(x, Segments.from_index(batch), p).sum(), x)
        assert torch.equal(g[x.detach() == 0], torch.zeros_like(g[x.detach() == 0]))


# ----------------------------------------------------------------------------------------
# 2. Against PyG's own classes, on random batches with empty sets
# ----------------------------------------------------------------------------------------

def random_batch(seed: int, num_sets: int = 7, features: int = 3, dtype=torch.float32,
                 positive: bool = False, sort: bool = True, leading_empty: bool = True):
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(0, 6, (num_sets,), generator=g)
    counts[-1], counts[2] = 0, 0  # a trailing and an inner empty set
    if leading_empty:
        counts[0] = 0
    index = torch.repeat_interleave(torch.arange(num_sets), counts)
    if not sort:
        index = index[torch.randperm(index.numel(), generator=g)]
    n = int(counts.sum())
    if positive:  # x^p and mean(x^p) inside PyG's clamp range [1e-4, 100] for p <= 2.5
        x = torch.rand(n, features, generator=g, dtype=F64) * 4.9 + 0.1
    else:
        x = torch.randn(n, features, generator=g, dtype=F64) * 2
    return x.to(dtype), index, counts


def _copy_param(name):
    def copy(ours, theirs):
        with torch.no_grad():
            value = torch.linspace(0.6, 2.5, getattr(ours, name).numel())
            getattr(ours, name).copy_(value)
            getattr(theirs, name).copy_(value)
    return copy


DYADIC = [0.0, 0.25, 0.5, 0.875, 1.0]  # q * (n - 1) exact in PyG's float32 and in float64
PYG_CASES = [
    ("var", lambda F: pyg.VarAggregation(), lambda F: VarReadout(), {}),
    ("std", lambda F: pyg.StdAggregation(), lambda F: StdReadout(), {}),
    ("softmax-t1", lambda F: pyg.SoftmaxAggregation(), lambda F: SoftmaxReadout(), {}),
    ("softmax-t-0.4", lambda F: pyg.SoftmaxAggregation(t=-0.4),
     lambda F: SoftmaxReadout(t=-0.4), {}),
    ("softmax-learn", lambda F: pyg.SoftmaxAggregation(t=0.3, learn=True),
     lambda F: SoftmaxReadout(t=0.3, learn=True), {"param": "t"}),
    ("softmax-learn-channels", lambda F: pyg.SoftmaxAggregation(learn=True, channels=F),
     lambda F: SoftmaxReadout(learn=True, channels=F), {"param": "t", "copy": _copy_param("t")}),
    ("powermean-p1", lambda F: pyg.PowerMeanAggregation(p=1.0),
     lambda F: PowerMeanReadout(p=1.0), {"positive": True}),
    ("powermean-p2", lambda F: pyg.PowerMeanAggregation(p=2.0),
     lambda F: PowerMeanReadout(p=2.0), {"positive": True, "empty": "pyg-clamp"}),
    ("powermean-p0.5", lambda F: pyg.PowerMeanAggregation(p=0.5),
     lambda F: PowerMeanReadout(p=0.5), {"positive": True, "empty": "pyg-clamp"}),
    ("powermean-learn-channels", lambda F: pyg.PowerMeanAggregation(learn=True, channels=F),
     lambda F: PowerMeanReadout(learn=True, channels=F),
     {"positive": True, "empty": "pyg-clamp", "param": "p", "copy": _copy_param("p")}),
    ("median", lambda F: pyg.MedianAggregation(), lambda F: MedianReadout(), {}),
    *[(f"quantile-{mode}", (lambda mode: lambda F: pyg.QuantileAggregation(DYADIC, mode))(mode),
       (lambda mode: lambda F: QuantileReadout(DYADIC, mode))(mode), {"nearest": mode})
      for mode in INTERPOLATIONS],
    ("mul", lambda F: pyg.MulAggregation(), lambda F: ProdReadout(), {"empty": "pyg-one"}),
    ("vpa", lambda F: pyg.VariancePreservingAggregation(), lambda F: VPAReadout(), {}),
]


def nearest_tie_mask(counts, qs, features) -> Tensor:
    """Sets where q (n - 1) is a half integer: PyG rounds q (n - 1) + ptr (its position in
    the batch), so its 'nearest' there depends on where the set sits (see below)."""
    rows = []
    for n in counts.tolist():
        rows.append(torch.tensor([[(q * (n - 1)) % 1 == 0.5] * features for q in qs]).flatten())
    return torch.stack(rows)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("sort", [True, False], ids=["sorted", "unsorted"])
@pytest.mark.parametrize("case", PYG_CASES, ids=[c[0] for c in PYG_CASES])
def test_matches_pyg_aggregations(case, sort, dtype):
    cid, make_pyg, make_ours, opts = case
    F = 3
    for seed in range(2):
        # PyG's quantiles index out of range on a leading empty set (see below)
        x, index, counts = random_batch(seed, features=F, dtype=dtype,
                                        positive=opts.get("positive", False), sort=sort,
                                        leading_empty="nearest" not in opts
                                        and cid != "median")
        B = counts.numel()
        theirs, ours = make_pyg(F).to(dtype), make_ours(F).to(dtype)
        if "copy" in opts:
            opts["copy"](ours, theirs)
        xa = x.clone().requires_grad_()
        xb = x.clone().requires_grad_()
        want = theirs(xa, index, dim_size=B)
        got = ours(xb, index, dim_size=B)
        keep = torch.ones_like(got, dtype=torch.bool)
        empty = (counts == 0).unsqueeze(-1).expand_as(got)
        if "empty" in opts:  # PyG does not fill its empty sets with 0 here (see below)
            keep &= ~empty
            assert (got[empty] == 0).all()
        if opts.get("nearest") == "nearest":
            keep &= ~nearest_tie_mask(counts, DYADIC, F)
        n = int(counts.max())
        a = float(x.abs().max())
        scale = {"var": 4 * a * a, "std": 4 * a, "mul": float(got.abs().max()) + 1}.get(
            cid.split("-")[0], a * (2 + 2 * a))
        tol = 16 * n * eps(dtype) * scale
        if cid == "median" or cid.split("-")[-1] in ("lower", "higher", "nearest"):
            tol = 0.0  # the same row
        elif cid.startswith("quantile"):  # l + (h - l) frac, frac exact for dyadic q
            tol = 4 * eps(dtype) * a
        if cid == "std":  # PyG's var (E[x^2] - E[x]^2) rounds to ~n eps a^2: sqrt of that
            tol = torch.minimum(torch.tensor(math.sqrt(16 * n * eps(dtype) * a * a)),
                                16 * n * eps(dtype) * a * a / want.detach().double().clamp(
                                    min=1e-30).sqrt())
            tol = torch.where(want.detach() == 0, math.sqrt(1e-5), tol)  # PyG's cut-off
        assert_within(got.detach()[keep], want.detach()[keep],
                      tol if not isinstance(tol, Tensor) else tol[keep], f"{cid} values")
        weights = torch.randn(got.shape, generator=torch.Generator().manual_seed(seed),
                              dtype=dtype) * keep
        ga = torch.autograd.grad((want * weights).sum(), [xa, *theirs.parameters()])
        gb = torch.autograd.grad((got * weights).sum(), [xb, *ours.parameters()])
        # d/dx of each readout is at most ~(1 + 2a) (softmax: alpha (1 + t (x - y))), computed
        # by sums of n terms; a parameter's gradient sums over all rows and sets
        gtol = 16 * n * eps(dtype) * (1 + 2 * a) * (x.size(0) if "param" in opts else 1)
        if cid == "std":  # both are (x - mean) / (n std): conditioned by 1 / var
            gtol = gtol * (1 + 1 / float(want.detach()[want.detach() > 0].min() ** 2))
        for g, r in zip(gb, ga):
            assert_within(g, r, gtol * (1 + r.abs().max().item()), f"{cid} grads")


def test_quantile_layout_is_pygs():
    """A list of q concatenates along the features: [q0 features, q1 features, ...]."""
    x, index, counts = random_batch(3, leading_empty=False)
    got = QuantileReadout([0.25, 0.75], "lower")(x, index, dim_size=counts.numel())
    want = pyg.QuantileAggregation([0.25, 0.75], "lower")(x, index, dim_size=counts.numel())
    assert got.shape == (counts.numel(), 6)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(got[:, 3:], QuantileReadout(0.75, "lower")(
        x, index, dim_size=counts.numel()), rtol=0, atol=0)


MULTI = ["mean", "max", "std", "softmax", "median"]


@pytest.mark.parametrize("mode", ["sum", "mean", "max", "min", "std", "var", "logsumexp"])
def test_multi_readout_gives_empty_sets_its_fill_value_in_every_stacking_mode(mode):
    x, batch = torch.tensor([[1.], [3.]]), torch.tensor([0, 0])
    for fill in (0.0, 5.0, float("nan")):
        multi = MultiReadout(["mean", "max"], mode=mode, fill_value=fill)
        out = multi(x, batch, num_graphs=2)
        full = getattr(torch, {"max": "amax", "min": "amin"}.get(mode, mode))(
            torch.tensor([[2.], [3.]]), 0)
        torch.testing.assert_close(out[0], full)
        torch.testing.assert_close(out[1], torch.tensor([fill]), equal_nan=True)
        torch.testing.assert_close(gp.readout(x, batch, multi, num_graphs=2), out,
                                   equal_nan=True)


@pytest.mark.parametrize("mode", ["mean", "std", "var", "logsumexp"])
def test_multi_readout_refuses_integer_results_for_a_floating_mode(mode):
    x, batch = torch.tensor([[1], [3]]), torch.tensor([0, 0])
    with pytest.raises(GraphpoolError, match=rf"^MultiReadout: invalid 'x'.*floating point "
                       rf".*mode='{mode}'.*torch.int64.*x.float\(\)"):
        MultiReadout(["sum", "max"], mode=mode)(x, batch)
    for ok in ("cat", "sum", "max", "min"):  # what integers can do
        assert MultiReadout(["sum", "max"], mode=ok)(x, batch).dtype == torch.int64
    built = [gp.SumReadout(), gp.MaxReadout()]  # their own fill; the Multi's must fit too
    with pytest.raises(GraphpoolError, match=r"^MultiReadout: invalid 'fill_value'.*integer"):
        MultiReadout(built, mode="sum", fill_value=2.5)(x, batch, dim_size=2)
    assert MultiReadout(built, mode="sum", fill_value=2)(x, batch, dim_size=2).tolist() == [
        [7], [2]]


@pytest.mark.parametrize("build, theirs", [
    (lambda: MultiReadout(["mean", "max"], mode="proj",
                          mode_kwargs=dict(in_channels=4, out_channels=3)),
     lambda: pyg.MultiAggregation(["mean", "max"], mode="proj",
                                  mode_kwargs=dict(in_channels=4, out_channels=3))),
    (lambda: MultiReadout(["mean", "max"], mode="attn",
                          mode_kwargs=dict(in_channels=4, out_channels=4, num_heads=2)),
     lambda: pyg.MultiAggregation(["mean", "max"], mode="attn",
                                  mode_kwargs=dict(in_channels=4, out_channels=4,
                                                   num_heads=2))),
    (lambda: gp.SoftmaxReadout(t=0.5, learn=True, channels=4),
     lambda: pyg.SoftmaxAggregation(t=0.5, learn=True, channels=4)),
    (lambda: gp.GeMReadout(), lambda: pyg.PowerMeanAggregation(p=3.0, learn=True)),
    (lambda: MultiReadout([gp.PowerMeanReadout(p=2.0, learn=True), "mean"]),
     lambda: pyg.MultiAggregation([pyg.PowerMeanAggregation(p=2.0, learn=True), "mean"])),
], ids=["proj", "attn", "softmax", "gem", "inner"])
def test_reset_parameters_resets_every_learnable_value_as_pyg_does(build, theirs):
    """What a model's re-initialisation (between folds) calls on its aggregation."""
    kept = []
    for module in (build(), theirs()):
        with torch.no_grad():
            for p in module.parameters():
                p.add_(1.0)  # training moved them
        moved = {n: p.detach().clone() for n, p in module.named_parameters()}
        module.reset_parameters()
        kept.append([n for n, p in module.named_parameters() if torch.equal(moved[n], p)])
        assert len(kept[-1]) < len(moved)
    # the same left alone (nn.MultiheadAttention's reset keeps out_proj.weight), none else
    assert kept[0] == kept[1] == (["multihead_attn.out_proj.weight"]
                                  if "attn" in repr(build()) else [])
    ours, pygs = build(), theirs()
    for module in (ours, pygs):
        with torch.no_grad():
            for p in module.parameters():
                p.add_(1.0)
        module.reset_parameters()
    for name in ("t", "p"):  # a learnable scalar comes back to its initial value exactly
        if hasattr(ours, name):
            assert torch.equal(getattr(ours, name), getattr(pygs, name))


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("mode", ["cat", "proj", "attn", "sum", "mean", "max", "min", "std",
                                  "var", "logsumexp"])
def test_multi_aggregation_modes_match_pyg(mode, dtype):
    F = 3
    x, index, counts = random_batch(11, features=F, dtype=dtype, leading_empty=False)
    B = counts.numel()
    kwargs = {}
    if mode in ("proj", "attn"):
        kwargs = {"mode_kwargs": {"in_channels": F, "out_channels": 4,
                                  **({"num_heads": 2} if mode == "attn" else {})}}
    torch.manual_seed(0)
    theirs = pyg.MultiAggregation(MULTI, mode=mode, **kwargs).to(dtype)
    ours = MultiReadout(MULTI, mode=mode, **kwargs).to(dtype)
    shared = {k.replace("lins.", ""): v for k, v in theirs.state_dict().items()
              if k.startswith(("lin", "multihead"))}
    ours.load_state_dict(shared, strict=True)  # the same weights, every one of them
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    want, got = theirs(xa, index, dim_size=B), ours(xb, index, dim_size=B)
    assert got.shape == want.shape == (B, ours.out_features(F))
    if mode != "cat":  # empty sets: fill_value, where PyG's layers give a value of their
        empty = (counts == 0).unsqueeze(-1)  # own, and its combination of the readouts'
        # fills another (logsumexp of zeros is log 5); see the tests below
        assert empty.any() and (got.masked_select(empty) == 0).all()
        want = want.masked_fill(empty, 0)
    n, a = int(counts.max()), float(x.abs().max())
    # each readout is within 16 n eps (1 + a)^2 (the softmax's and the variance's bounds);
    # the combinations add, scale or mix the len(MULTI) results with weights of |w| < 1
    tol = 16 * n * eps(dtype) * (1 + a) ** 2 * len(MULTI)
    assert_within(got.detach(), want.detach(), tol, mode)
    weights = torch.randn(got.shape, generator=torch.Generator().manual_seed(2), dtype=dtype)
    ga = torch.autograd.grad((want * weights).sum(), [xa, *theirs.parameters()])
    gb = torch.autograd.grad((got * weights).sum(), [xb, *ours.parameters()])
    for g, r in zip(gb, ga):
        assert_within(g, r, tol * 8 * B * (1 + r.abs().max().item()), f"{mode} grads")


# --- where graphpool deliberately differs from PyG ----------------------------------------

@pytest.mark.parametrize("mode", ["proj", "attn"])
def test_multi_readout_layers_leave_empty_sets_at_fill_value(mode):
    """An empty set gets fill_value from MultiReadout's projection or attention, as from
    every readout (PyG gives the layers' output for the inner readouts' zeros: a learned
    value), and sends no gradient to the layers; a leading dim is a batch of sets too."""
    x, index, counts = random_batch(3, features=3, dtype=F64)
    kwargs = {"in_channels": 3, "out_channels": 4, **({"num_heads": 2} if mode == "attn" else {})}
    torch.manual_seed(0)
    theirs = pyg.MultiAggregation(["mean", "max"], mode=mode, mode_kwargs=kwargs).double()
    ours = MultiReadout(["mean", "max"], mode=mode, mode_kwargs=kwargs,
                        fill_value=-2.0).double()
    ours.load_state_dict({k.replace("lins.", ""): v for k, v in theirs.state_dict().items()
                          if k.startswith(("lin", "multihead"))})
    got, want = ours(x, index, dim_size=len(counts)), theirs(x, index, dim_size=len(counts))
    empty = counts == 0
    assert (got[empty] == -2.0).all() and not (want[empty] == -2.0).any()
    torch.testing.assert_close(got[~empty], want[~empty])
    only_empty = torch.autograd.grad(got[empty].sum(), list(ours.parameters()),
                                     allow_unused=True, materialize_grads=True)
    assert all((g == 0).all() for g in only_empty)
    stacked = torch.stack([x, 2 * x])  # [2, N, F]: each slice read out on its own
    both = ours(stacked, index, dim_size=len(counts))
    for i in range(2):
        torch.testing.assert_close(both[i], ours(stacked[i], index, dim_size=len(counts)))
    assert ours(x[:0], index[:0], dim_size=0).shape == (0, 4)  # no set at all
    assert ours(stacked[:, :0], index[:0], dim_size=0).shape == (2, 0, 4)

@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_std_keeps_small_deviations_where_pyg_returns_zero(dtype):
    x = torch.tensor([[1.0], [1.002], [5.0], [5.0], [7.0]], dtype=dtype, requires_grad=True)
    index = torch.tensor([0, 0, 1, 1, 2])
    ref = loop(ref_std, x.detach(), [2, 2, 1], 1)
    assert 0 < ref[0, 0] ** 2 < 1e-5   # below PyG's cut-off
    want = pyg.StdAggregation()(x, index)
    assert want[0, 0] == 0             # PyG: 0 (and gradient 0)
    got = StdReadout()(x, index)
    tol = value_tol(CASES[CASE_IDS.index("std")], ref, x, None, [2, 2, 1], dtype)
    assert_within(got.detach(), ref, tol, "std")
    assert got[0, 0] > 0.0009
    g, = torch.autograd.grad(got.sum(), x)  # d std / dx = (x - mean) / (n std) = -+1/2
    assert_within(g[:2], torch.tensor([[-0.5], [0.5]]), 64 * eps(dtype) / 1e-3, "grad")
    assert torch.equal(g[2:], torch.zeros(3, 1, dtype=dtype))  # zero variance: gradient 0


def test_power_mean_is_sign_safe_where_pyg_clamps():
    x = torch.tensor([[-2.0], [1.0], [3.0], [-1.0], [-4.0]], dtype=F64)
    index = torch.tensor([0, 0, 0, 1, 1])
    got = PowerMeanReadout(p=2.0)(x, index)
    want = torch.tensor([[math.sqrt(2.0)], [-math.sqrt(8.5)]], dtype=F64)  # f^-1(mean f(x))
    torch.testing.assert_close(got, want, rtol=4 * eps(F64), atol=0)
    theirs = pyg.PowerMeanAggregation(p=2.0)(x, index)
    # PyG: mean(clamp(x, 1e-4)^2) ^ (1/2): the negative set becomes (1e-4^2)^(1/2) clamped
    assert theirs[1, 0] == pytest.approx(1e-2) and theirs[0, 0] != pytest.approx(got[0, 0])
    torch.testing.assert_close(PowerMeanReadout(p=2.0)(-x, index), -got, rtol=0, atol=0)
    assert (x[:3].min() <= got[0]) & (got[0] <= x[:3].max())   # a mean: inside the range


def test_var_has_no_cancellation_on_large_offsets_where_pygs_does():
    n = 64
    g = torch.Generator().manual_seed(0)
    x = (1e4 + 1e-2 * torch.randn(2 * n, 3, generator=g, dtype=F64)).float()
    index = torch.arange(2).repeat_interleave(n)
    ref = loop(ref_var, x, [n, n], 3)
    # every term of the two-pass sums is at most (max |x - mean| + ulp(1e4))^2
    spread = max(float((x[index == b].double() - x[index == b].double().mean(0)).abs().max())
                 for b in range(2)) + 1e4 * eps(torch.float32)
    tol = 8 * n * eps(torch.float32) * spread ** 2
    got = VarReadout()(x, index)
    assert_within(got, ref, tol, "graphpool var")
    theirs = pyg.VarAggregation()(x, index)
    assert (theirs.double() - ref).abs().max() > 100 * tol  # E[x^2] - E[x]^2 cancels
    assert (got >= 0).all()


def test_nearest_quantile_does_not_depend_on_the_sets_position_as_pygs_does():
    # the set {0, 1} (q (n-1) = 0.5, a tie: round half to even gives the lower, as
    # torch.quantile) at an even and at an odd offset in the batch
    x = torch.tensor([[0.0], [1.0], [5.0], [0.0], [1.0]])
    index = torch.tensor([0, 0, 1, 2, 2])
    pyg_nearest = pyg.QuantileAggregation(0.5, "nearest")(x, index)
    ours = QuantileReadout(0.5, "nearest")(x, index)
    torch_ref = torch.quantile(torch.tensor([0.0, 1.0]), 0.5, interpolation="nearest")
    assert ours[0, 0] == ours[2, 0] == torch_ref == 0.0
    assert pyg_nearest[0, 0] == 0.0 and pyg_nearest[2, 0] == 1.0   # PyG: position-dependent


def test_a_leading_empty_set_is_filled_where_pygs_quantile_raises():
    x, index = torch.tensor([[1.0], [2.0], [4.0]]), torch.tensor([1, 1, 2])
    with pytest.raises(IndexError):  # PyG looks up row q * (0 - 1) + 0 < 0
        pyg.MedianAggregation()(x, index, dim_size=3)
    assert MedianReadout(fill_value=-1.0)(x, index, dim_size=3).flatten().tolist() == [
        -1.0, 1.0, 4.0]
    assert QuantileReadout([0.5, 1.0])(x, index, dim_size=3).tolist() == [
        [0.0, 0.0], [1.5, 2.0], [4.0, 4.0]]


def test_pyg_empty_sets_for_mul_and_power_mean_are_not_fill_value():
    x, index = torch.rand(3, 2) + 0.5, torch.tensor([0, 0, 2])
    assert (ProdReadout()(x, index, dim_size=3)[1] == 0).all()
    assert (pyg.MulAggregation()(x, index, dim_size=3)[1] == 1).all()        # PyG: 1
    assert (PowerMeanReadout(p=2.0, fill_value=-1.0)(x, index, dim_size=3)[1] == -1).all()
    assert (pyg.PowerMeanAggregation(p=2.0)(x, index, dim_size=3)[1] > 0).all()  # clamp


@pytest.mark.parametrize("k", [1, 2, 6])
def test_sort_k_matches_pygs_sort_aggregation_on_every_grouping(k):
    x, index, counts = random_batch(5, features=3, dtype=F64)  # continuous: no ties
    order = torch.argsort(index, stable=True)
    x, index = x[order].requires_grad_(), index[order]
    want = pyg.SortAggregation(k)(x, index, dim_size=counts.numel())
    w = torch.randn(want.shape, generator=torch.Generator().manual_seed(1), dtype=F64)
    ref_grad, = torch.autograd.grad((want * w).sum(), x)
    for name, xg, seg in groupings(x, counts.tolist()):
        got = segment_sort_k(xg, seg, k)
        assert torch.equal(got, want), name
        g, = torch.autograd.grad((got * w).sum(), x, retain_graph=True)
        assert torch.equal(g, ref_grad), name


# ----------------------------------------------------------------------------------------
# 3. Closed forms
# ----------------------------------------------------------------------------------------

def distinct_batch(dtype):
    """Sets of distinct values on a grid of 0.25 (gaps >= 0.25), no ties."""
    x = (torch.randperm(40, generator=torch.Generator().manual_seed(4))[:12].to(dtype)
         / 4 - 5).view(12, 1).repeat(1, 2)
    x[:, 1] = -x[:, 1]
    return x, [4, 1, 0, 7]


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_softmax_limits(dtype):
    x, counts = distinct_batch(dtype)
    e = eps(dtype)
    for name, xg, seg in groupings(x, counts):
        mean = gp.readout(xg, seg, "mean")
        assert_within(segment_softmax_sum(xg, seg, 0.0), mean, 8 * 7 * e * 5, name)
        assert_within(segment_softmax_sum(xg, seg, 1e-9), mean, 8 * 7 * e * 5 + 1e-7, name)
        # t * gap >= 1e4 * 0.25: every other weight is exp(-2500) = 0
        assert_within(segment_softmax_sum(xg, seg, 1e4), gp.readout(xg, seg, "max"), 0, name)
        assert_within(segment_softmax_sum(xg, seg, -1e4), gp.readout(xg, seg, "min"), 0, name)
        assert_within(SoftmaxReadout(t=1e4)(xg, seg), gp.readout(xg, seg, "max"), 0, name)
        w = segment_softmax(xg * 3, seg)
        sums = gp.readout(w, seg, "sum")
        assert_within(sums[torch.tensor(counts) > 0], torch.ones(3, 2), 8 * 7 * e, name)


@pytest.mark.parametrize("dtype,top", [(torch.float16, 6e4), (torch.bfloat16, 3e38 / 8),
                                       (torch.float32, 3e38 / 8), (F64, 1.7e308 / 8)])
def test_softmax_of_values_near_the_largest_finite_one(dtype, top):
    """Sets whose sum of e x stays finite in the computation type (float16: float32, so up
    to float16's largest value; the others: up to their largest value over n, as
    documented) give the softmax-weighted mean of the naive per-set loop, rounded once."""
    g = torch.Generator().manual_seed(3)
    counts = [7, 1, 0, 4]
    x = (torch.rand(sum(counts), 2, generator=g, dtype=F64) * 0.5 + 0.5) * top
    x[::3] = -x[::3]
    x = x.to(dtype)
    n = max(counts)
    for t in (1e-30, 0.3, 1.0):
        t_scaled = t / top  # scores of order 1: every weight counts
        ref = torch.stack([ref_softmax(s, t_scaled) if len(s) else s.new_zeros(2)
                           for s in x.double().split(counts)])
        tol = (eps(dtype) + 16 * n * eps(compute_dtype(dtype))) * ref.abs()
        for name, xg, seg in groupings(x, counts):
            got = segment_softmax_sum(xg, seg, t_scaled)
            assert got.dtype == dtype and bool(torch.isfinite(got).all()), name
            assert_within(got, ref, tol, f"{name} t={t_scaled}")


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_power_mean_limits(dtype):
    x, counts = distinct_batch(dtype)
    x = x.abs() + 0.25
    n = torch.tensor(counts, dtype=F64).clamp(min=1).unsqueeze(-1)
    for name, xg, seg in groupings(x, counts):
        mean = gp.readout(xg, seg, "mean")
        assert_within(segment_power_mean(xg, seg, 1.0), mean, 8 * 7 * eps(dtype) * 6, name)
        top = gp.readout(xg, seg, "max").double()
        for p in (200.0, 1e4):
            got = segment_power_mean(xg, seg, p).double()
            assert torch.isfinite(got).all(), name  # no overflow of x^p
            # (max^p / n)^(1/p) <= M_p <= max, rounding aside
            slack = 64 * eps(dtype) * top
            assert (got <= top + slack).all() and (got >= top * n ** (-1 / p) - slack).all()
    big = torch.tensor([[900.0], [1000.0]], dtype=dtype)  # 1000^200 overflows float64
    got = segment_power_mean(big, Segments.from_index(torch.tensor([0, 0])), 200.0)
    assert torch.isfinite(got).all()
    want = 1000 * ((1 + (0.9) ** 200) / 2) ** (1 / 200)
    assert got.item() == pytest.approx(want, rel=64 * eps(dtype))


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_logsumexp_bounds_and_infinities(dtype):
    x, counts = distinct_batch(dtype)
    n = torch.tensor(counts, dtype=F64).clamp(min=1).unsqueeze(-1)
    for name, xg, seg in groupings(x * 40, counts):
        lse = segment_logsumexp(xg, seg).double()
        top = gp.readout(xg, seg, "max").double()
        slack = 8 * 7 * eps(dtype) * (top.abs() + 2)
        keep = torch.tensor(counts) > 0
        assert (lse[keep] >= top[keep] - slack[keep]).all(), name
        assert (lse[keep] <= (top + n.log() + slack)[keep]).all(), name
    inf = math.inf
    x = torch.tensor([[-inf], [-inf], [3e38], [3e38], [inf], [1.0]], dtype=dtype)
    seg = Segments.from_index(torch.tensor([0, 0, 1, 1, 2, 2]), 4)
    out = segment_logsumexp(x, seg, fill_value=-7.0).flatten().tolist()
    assert out[0] == -inf and out[2] == inf and out[3] == -7.0
    assert math.isfinite(out[1]) and out[1] == pytest.approx(3e38, rel=1e-6)


CONSTANTS = [0.1, 1e8 + 1, -3.3, 1e-30, 7.0]


@pytest.mark.parametrize("dtype", [torch.float32, F64, *HALF])
def test_var_is_nonnegative_and_exactly_zero_on_constant_sets(dtype):
    counts = [3, 1, 5, 0, 2]
    # 1e8 + 1 is inf in float16 (its variance is nan): 6e4 + 1 there
    constants = [c if c < 1e8 or dtype != torch.float16 else 6e4 + 1 for c in CONSTANTS]
    rows = []
    for b, n in enumerate(counts):
        rows += [constants[b]] * n
    x = torch.tensor(rows, dtype=dtype).unsqueeze(-1).repeat(1, 2)
    x[:, 1] = -x[:, 1]
    x.requires_grad_()
    for name, xg, seg in groupings(x, counts):
        for c in (0, 1):
            var = segment_var(xg, seg, correction=c)
            std = segment_std(xg, seg, correction=c)
            n = torch.tensor(counts).unsqueeze(-1).expand(-1, 2)
            assert (var[n > c] == 0).all() and (std[n > c] == 0).all(), f"{name} c={c}"
            assert torch.isnan(var[(n <= c) & (n > 0)]).all(), name
            assert (var[n == 0] == 0).all(), name            # fill_value
            g, = torch.autograd.grad(std.nan_to_num().sum() + var.nan_to_num().sum(), x,
                                     retain_graph=True)
            assert torch.equal(g, torch.zeros_like(g)), f"{name} c={c}: {g}"
    noisy = torch.randn(200, 3, generator=torch.Generator().manual_seed(1)) * 1e-3 + 5
    seg = Segments.from_index(torch.randint(0, 9, (200,), generator=torch.Generator()
                                            .manual_seed(2)), 9)
    assert (segment_var(noisy.to(dtype), seg) >= 0).all()


def test_std_gradient_is_zero_not_nan_at_zero_variance():
    x = torch.tensor([[2.0], [2.0], [2.0], [4.0], [1.0], [3.0]], requires_grad=True)
    batch = torch.tensor([0, 0, 0, 1, 2, 2])
    for module in (StdReadout(), StdReadout(correction=1)):
        out = module(x, batch)
        g, = torch.autograd.grad(out.nan_to_num().sum(), x)
        assert torch.isfinite(g).all() and (g[:4] == 0).all()
        assert g[4] == -g[5] != 0


def test_quantiles_keep_infinities_and_sort_nan_last():
    inf = math.inf
    x = torch.tensor([[inf], [1.0], [inf], [-inf], [2.0], [-3e38], [3e38], [5.0]],
                     requires_grad=True)
    counts = [1, 2, 2, 2, 1]
    want = {"linear": [[inf] * 3, [1, inf, inf], [-inf, -inf, 2], [-3e38, 0, 3e38], [5] * 3],
            "midpoint": [[inf] * 3, [1, inf, inf], [-inf, -inf, 2], [-3e38, 0, 3e38], [5] * 3],
            "lower": [[inf] * 3, [1, 1, inf], [-inf, -inf, 2], [-3e38, -3e38, 3e38], [5] * 3],
            "higher": [[inf] * 3, [1, inf, inf], [-inf, 2, 2], [-3e38, 3e38, 3e38], [5] * 3]}
    for mode, rows in want.items():
        for name, xg, seg in groupings(x, counts):
            got = segment_quantile(xg, seg, [0.0, 0.5, 1.0], mode)
            assert got.tolist() == torch.tensor(rows).tolist(), f"{mode} {name}"
            # q = 1 is the maximum and q = 0 the minimum, infinities included
            assert torch.equal(got[:, 2:], gp.readout(xg, seg, "max")), f"{mode} {name}"
            assert torch.equal(got[:, :1], gp.readout(xg, seg, "min")), f"{mode} {name}"
            g, = torch.autograd.grad(got.sum(), x, retain_graph=True)
            assert torch.isfinite(g).all(), f"{mode} {name}"
    # nan sorts last, as in PyG (torch.quantile returns nan for the whole set instead)
    xn = torch.tensor([[1.0], [math.nan], [3.0], [2.0]])
    bn = torch.tensor([0, 0, 0, 1])
    for mode in INTERPOLATIONS:
        got = QuantileReadout([0.0, 0.5, 1.0], mode)(xn, bn)
        theirs = pyg.QuantileAggregation([0.0, 0.5, 1.0], mode)(xn, bn)
        assert torch.equal(got.isnan(), theirs.isnan()), mode
        assert torch.equal(got.nan_to_num(), theirs.nan_to_num()), mode


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_empty_batches_and_zero_features(case):
    for counts, F in (([], 3), ([2, 0, 1], 0), ([0, 0], 2), ([], 0)):
        module = case.make(max(F, 1)) if "channels" not in case.id else case.make(1)
        x = make_x(case, (sum(counts), F), torch.float32).requires_grad_()
        for name, xg, seg in groupings(x, counts):
            if "channels" in case.id and F != 1:
                continue  # one learnable value per feature: checked in the bad-input table
            out = module(xg, seg)
            width = 1 if case.id == "count" else case.width * F
            assert out.shape == (len(counts), width), f"{case.id} {counts} {F} {name}"
            if case.id == "count":
                assert out.flatten().tolist() == counts, name
            else:  # no values, or only empty sets
                assert (out == 0).all(), f"{case.id} {counts} {F} {name}"
            if out.requires_grad:
                g, = torch.autograd.grad(out.sum(), x, retain_graph=True, allow_unused=True)
                assert g is None or (g == 0).all()


# ----------------------------------------------------------------------------------------
# 4. Properties (hypothesis)
# ----------------------------------------------------------------------------------------

PROPERTY_READOUTS = {
    # name: (make(F), exact under reordering)
    "var": (lambda F: VarReadout(), False), "std": (lambda F: StdReadout(correction=1), False),
    "logsumexp": (lambda F: LogSumExpReadout(), False),
    "softmax": (lambda F: SoftmaxReadout(t=-0.8), False),
    "powermean": (lambda F: PowerMeanReadout(p=3.0), False),
    "median": (lambda F: MedianReadout(), True),
    "quantile": (lambda F: QuantileReadout([0.1, 0.5, 0.8], "linear"), True),
    "quantile-nearest": (lambda F: QuantileReadout([0.25, 0.5, 0.75], "nearest"), True),
    "count": (lambda F: CountReadout(), True), "max": (lambda F: resolve_readout("max"), True),
    "prod": (lambda F: ProdReadout(), False), "vpa": (lambda F: VPAReadout(), False),
}
SCALE = {"var": lambda a: 4 * a * a, "logsumexp": lambda a: a + 2,
         "softmax": lambda a: a * (2 + 2 * a), "powermean": lambda a: 16 * a,
         "vpa": lambda a: 4 * a}

PROPERTY = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])
counts_st = st.lists(st.integers(0, 6), min_size=1, max_size=5)


def property_x(seed, n, features, ties, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g, dtype=F64) * 2
    if ties:  # many equal values: order statistics must still be exact
        x = (x * 2).round() / 2
    return x.to(dtype)


def reorder_tol(name, x, counts, dtype, result):
    """Summing n numbers in another order changes the result by at most 2 (n-1) eps sum|.|;
    the statistics are a few such sums (and, for std, a sqrt: see value_tol)."""
    if PROPERTY_READOUTS[name][1]:
        return 0.0
    n = max(max(counts), 1)
    if name == "prod":  # relative: n roundings, in any order
        return 4 * n * eps(dtype) * result.detach().double().abs()
    a = float(x.abs().max()) if x.numel() else 1.0
    if name == "std":  # |sqrt(u) - sqrt(v)| <= min(sqrt|u - v|, |u - v| / sqrt(v))
        tol = torch.full_like(result.detach().double(), 8 * n * eps(dtype) * 8 * a * a)
        tol = torch.minimum(tol.sqrt(), tol / result.detach().double().clamp(min=0).sqrt())
        return tol.nan_to_num(nan=0.0)
    return 8 * n * eps(dtype) * SCALE[name](a)


@PROPERTY
@given(counts=counts_st, features=st.integers(1, 3), seed=st.integers(0, 2 ** 16),
       ties=st.booleans(), name=st.sampled_from(sorted(PROPERTY_READOUTS)),
       dtype=st.sampled_from([torch.float32, F64]))
def test_permuting_nodes_inside_sets_changes_nothing(counts, features, seed, ties, name, dtype):
    x = property_x(seed, sum(counts), features, ties, dtype)
    module = PROPERTY_READOUTS[name][0](features)
    index = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    base = module(x, Segments.from_index(index, len(counts)))
    g = torch.Generator().manual_seed(seed + 1)
    inside = torch.cat([torch.tensor(m, dtype=torch.long)[torch.randperm(len(m), generator=g)]
                        for m in groups_from_counts(counts)]) if x.size(0) else index
    anywhere = torch.randperm(x.size(0), generator=g)
    tol = reorder_tol(name, x, counts, dtype, base)
    for perm in (inside, anywhere):
        out = module(x[perm], Segments.from_index(index[perm], len(counts)))
        assert_within(out, base, tol, name)


@PROPERTY
@given(counts=counts_st, features=st.integers(1, 3), seed=st.integers(0, 2 ** 16),
       ties=st.booleans(), name=st.sampled_from(sorted(PROPERTY_READOUTS)))
def test_relabelling_sets_permutes_the_outputs(counts, features, seed, ties, name):
    x = property_x(seed, sum(counts), features, ties)
    module = PROPERTY_READOUTS[name][0](features)
    B = len(counts)
    index = torch.repeat_interleave(torch.arange(B), torch.tensor(counts))
    base = module(x, Segments.from_index(index, B))
    sigma = torch.randperm(B, generator=torch.Generator().manual_seed(seed))
    out = module(x, Segments.from_index(sigma[index], B))
    assert_within(out[sigma], base, reorder_tol(name, x, counts, F64, base), name)


@PROPERTY
@given(counts=counts_st, features=st.integers(1, 3), seed=st.integers(0, 2 ** 16),
       extra=st.integers(0, 3), pad=st.sampled_from([math.nan, math.inf, -math.inf, 1e300]),
       name=st.sampled_from(sorted(PROPERTY_READOUTS)))
def test_padding_rows_change_nothing_and_get_zero_gradient(counts, features, seed, extra,
                                                           pad, name):
    x = property_x(seed, sum(counts), features, False)
    module = PROPERTY_READOUTS[name][0](features)
    B, width = len(counts), max(counts) + extra
    mask = torch.arange(width).unsqueeze(0) < torch.tensor(counts).unsqueeze(1)
    padded = torch.full((B, width, features), pad, dtype=F64)
    padded[mask] = x
    padded.requires_grad_()
    xi = x.clone().requires_grad_()
    index = torch.repeat_interleave(torch.arange(B), torch.tensor(counts))
    want = module(xi, Segments.from_index(index, B))
    got = module(padded, Segments.from_mask(mask))
    assert_within(got, want, reorder_tol(name, x, counts, F64, want), name)
    if got.requires_grad:
        weights = torch.randn(got.shape, generator=torch.Generator().manual_seed(seed),
                              dtype=F64)
        g, = grads(got, [padded], weights)
        assert torch.isfinite(g).all(), name
        assert torch.equal(g[~mask], torch.zeros_like(g[~mask])), name
        if any(counts):
            r, = grads(want, [xi], weights)
            assert_within(g[mask], r, 64 * max(counts) * eps(F64) * (1 + r.abs().max()) * 8,
                          f"{name} grads")


SHARED = ["mean", "max", "min", "sum", "std", "var", "softmax", "logsumexp", "powermean",
          "median", "count", "vpa"]


@PROPERTY
@given(counts=counts_st, features=st.integers(1, 3), seed=st.integers(0, 2 ** 16),
       names=st.lists(st.sampled_from(SHARED), min_size=2, max_size=5),
       dtype=st.sampled_from([torch.float32, F64, torch.bfloat16]),
       grouping=st.sampled_from(["index-sorted", "index-unsorted", "mask", "ptr"]))
def test_shared_passes_equal_separate_readouts(counts, features, seed, names, dtype, grouping):
    x = property_x(seed, sum(counts), features, False, dtype).requires_grad_()
    _, xg, seg = next(g for g in groupings(x, counts, seed=seed) if g[0] == grouping)
    multi = MultiReadout(names)
    got = multi(xg, seg)
    separate = [resolve_readout(n)(xg, seg) for n in names]
    want = torch.cat(separate, dim=-1)
    assert got.dtype == want.dtype
    # the same operations on the same tensors: equal to the bit
    assert torch.equal(torch.isnan(got), torch.isnan(want))
    assert torch.equal(got.nan_to_num(), want.nan_to_num()), names
    if got.requires_grad:
        w = torch.randn(got.shape, generator=torch.Generator().manual_seed(seed), dtype=F64)
        g1, = grads(got, [x], w)
        g2, = grads(want, [x], w)
        # a shared pass sums its consumers' gradients before its backward, separate ones
        # after: a few roundings of dtype apart
        assert_within(g1, g2, 4 * len(names) * eps(dtype) * (1 + absmax(g2)),
                      str(names))


@PROPERTY
@given(counts=counts_st, features=st.integers(1, 3), seed=st.integers(0, 2 ** 16),
       k=st.integers(1, 7))
def test_sort_k_with_ties_does_not_depend_on_node_order(counts, features, seed, k):
    x = property_x(seed, sum(counts), features, True)  # many ties, also in the last feature
    index = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    base = segment_sort_k(x, Segments.from_index(index, len(counts)), k)
    perm = torch.randperm(x.size(0), generator=torch.Generator().manual_seed(seed))
    out = segment_sort_k(x[perm], Segments.from_index(index[perm], len(counts)), k)
    assert torch.equal(out, base)
    for b, members in enumerate(groups_from_counts(counts)):  # rows sorted, zero-padded
        rows = base[b].view(k, features)
        assert torch.equal(rows[len(members):], torch.zeros_like(rows[len(members):]))
        last = rows[:len(members), -1]
        assert (last[:-1] >= last[1:]).all()


# ----------------------------------------------------------------------------------------
# 5. MultiReadout behaviour
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["native", "auto"])
def test_multi_readout_computes_each_shared_pass_once(monkeypatch, backend):
    import graphpool.composite.stats as stats
    from graphpool.kernels import compiled, moments

    calls = []
    real, real_moments = stats.segment_reduce, compiled.moments

    def counting(x, segments, op, *args, **kwargs):
        calls.append(op)
        return real(x, segments, op, *args, **kwargs)

    def counting_moments(*args):
        calls.append("moments")
        return real_moments(*args)

    def counting_power_mean(*args):
        calls.append("power_mean")
        return real_power_mean(*args)

    real_power_mean = compiled.power_mean
    monkeypatch.setattr(stats, "segment_reduce", counting)
    monkeypatch.setattr(compiled, "moments", counting_moments)
    monkeypatch.setattr(compiled, "power_mean", counting_power_mean)
    x, batch = torch.randn(7, 2), torch.tensor([0, 0, 1, 1, 1, 2, 2])
    names = ["std", "var", "logsumexp", "powermean", "max", "mean"]
    with gp.use_backend(backend):
        fused = moments.fused(x, gp.Segments.from_index(batch))
        MultiReadout(names)(x, batch)
        shared = list(calls)
        calls.clear()
        for name in names:
            resolve_readout(name)(x, batch)
    assert fused == (backend == "auto" and compiled.available())
    if fused:  # var and std: one pass of the variance kernel (no maximum); the power mean
        # (p = 1): one pass of its kernel, which finds its scale itself; logsumexp's maximum
        assert shared.count("moments") == 1 < calls.count("moments") == 2
        assert shared.count("power_mean") == 1 == calls.count("power_mean")
        assert shared.count("max") == 1 == calls.count("max")
    else:  # the maximum (the constant-set test of var and std, the shift of logsumexp,
        # the scale of the power mean) once instead of four times; var's sums once for both
        assert "moments" not in shared + calls
        assert shared.count("max") == 1 < calls.count("max") == 4
        assert shared.count("sum") < calls.count("sum")


def test_multi_readout_fill_value_reaches_the_readouts_it_builds():
    x, batch = torch.randn(3, 2), torch.tensor([0, 0, 2])
    for spec in (["mean", "max", "std"], "catavgmax"):
        out = gp.readout(x, batch, spec, fill_value=-1.0)
        assert (out[1] == -1).all(), spec
    own = MultiReadout([MedianReadout(fill_value=5.0), "mean"],
                       readouts_kwargs=[{}, {"fill_value": 2.0}], fill_value=-1.0)
    out = own(x, batch, dim_size=3)
    assert (out[1, :2] == 5).all() and (out[1, 2:] == 2).all()


def test_multi_readout_out_features_and_quantile_widths():
    multi = MultiReadout(["mean", QuantileReadout([0.1, 0.9]), "count"])
    x, batch = torch.randn(5, 4), torch.tensor([0, 0, 1, 1, 1])
    assert multi(x, batch).shape == (2, multi.out_features(4)) == (2, 4 + 8 + 1)
    proj = MultiReadout(["mean", QuantileReadout([0.1, 0.9])], mode="proj",
                        mode_kwargs={"in_channels": 4, "out_channels": 3})
    assert proj(x, batch).shape == (2, 3)


# ----------------------------------------------------------------------------------------
# 6. torch.compile(fullgraph=True) equals eager
# ----------------------------------------------------------------------------------------

COMPILED_MULTI = MultiReadout(["std", "softmax", "powermean", "mean"])
COMPILED_MEDIAN = MedianReadout(max_num_nodes=4)  # the module takes the padded width too


def _compiled_readouts(x, seg):
    return (segment_var(x, seg), segment_std(x, seg, correction=1), segment_logsumexp(x, seg),
            segment_softmax_sum(x, seg, 1.5), segment_power_mean(x, seg, 2.5),
            # quantiles need the padded width before tracing: max_num_nodes (else one host
            # read of the largest set, which fullgraph refuses on index groupings)
            segment_quantile(x, seg, [0.2, 0.9], max_num_nodes=3),
            COMPILED_MULTI(x, seg),  # shared passes
            COMPILED_MEDIAN(x, seg))


@pytest.mark.parametrize("grouping", ["index-unsorted", "uniform"])
def test_compile_fullgraph_equals_eager(grouping):
    torch._dynamo.reset()
    counts = [3, 3, 3, 3]
    x = torch.randn(12, 3, generator=torch.Generator().manual_seed(0), requires_grad=True)
    _, xg, seg = next(g for g in groupings(x, counts) if g[0] == grouping)
    # aot_eager: dynamo must capture one graph (fullgraph) and AOTAutograd trace the
    # backward; inductor's code generation is torch's, not graphpool's, and slow on 2 cores
    compiled = torch.compile(_compiled_readouts, fullgraph=True, backend="aot_eager")
    got, want = compiled(xg, seg), _compiled_readouts(xg, seg)
    g = torch.Generator().manual_seed(1)
    weights = [torch.randn(o.shape, generator=g) for o in want]
    for a, b in zip(got, want):
        assert_within(a.detach(), b.detach(), 0, grouping)
    ga, = torch.autograd.grad(sum(masked_loss(o, w) for o, w in zip(got, weights)), x,
                              retain_graph=True)
    gb, = torch.autograd.grad(sum(masked_loss(o, w) for o, w in zip(want, weights)), x)
    assert_within(ga, gb, 0, grouping)


def test_compiled_max_num_nodes_too_small_is_an_error_not_an_overlap():
    # set 1 (5 rows) overflows max_num_nodes=3: its extra rows would be written into the
    # slots of set 2, whose only row comes first and would be overwritten
    x = torch.tensor([[-5.0], [0.0], [1.0], [2.0], [3.0], [4.0], [5.0], [6.0], [8.0], [9.0]])
    seg = Segments.from_index(torch.tensor([2, 0, 0, 1, 1, 1, 1, 1, 3, 3]), 4)
    torch._dynamo.reset()
    low = torch.compile(lambda x, s: segment_quantile(x, s, 0.0, max_num_nodes=3),
                        fullgraph=True, backend="eager")
    with pytest.raises(RuntimeError, match="max_num_nodes"):
        low(x, seg)
    with pytest.raises(GraphpoolError, match="invalid 'max_num_nodes'"):  # eager: named
        segment_quantile(x, seg, 0.0, max_num_nodes=3)
    assert segment_quantile(x, seg, 0.0, max_num_nodes=5).flatten().tolist() == [
        0.0, 2.0, -5.0, 8.0]


# ----------------------------------------------------------------------------------------
# 7. gradcheck in float64
# ----------------------------------------------------------------------------------------

GRADCHECK = [
    ("var", lambda: VarReadout()), ("var-c1", lambda: VarReadout(correction=1)),
    ("std", lambda: StdReadout()), ("std-c1", lambda: StdReadout(correction=1)),
    ("logsumexp", lambda: LogSumExpReadout()), ("softmax", lambda: SoftmaxReadout(t=1.3)),
    ("softmax-learn", lambda: _learn_t(2)), ("powermean-p2.5", lambda: PowerMeanReadout(p=2.5)),
    ("powermean-p0.5", lambda: PowerMeanReadout(p=0.5)), ("powermean-learn", lambda: _learn_p(2)),
    ("gem", lambda: GeMReadout()), ("median", lambda: MedianReadout()),
    ("quantile-linear", lambda: QuantileReadout([0.3, 0.7])),
    ("quantile-midpoint", lambda: QuantileReadout(0.5, "midpoint")),
    ("prod", lambda: ProdReadout()), ("vpa", lambda: VPAReadout()),
]


@pytest.mark.parametrize("name, make", GRADCHECK, ids=[g[0] for g in GRADCHECK])
def test_gradcheck(name, make):
    counts = [3, 1, 0, 4]
    g = torch.Generator().manual_seed(9)
    # distinct values away from 0 (power means of mixed signs have a kink at 0)
    x = (torch.randperm(32, generator=g)[:16].double() / 3 + 0.4).view(8, 2)
    if not name.startswith(("powermean-p0.5", "gem", "powermean-learn")):
        x = x * torch.tensor([1.0, -1.0], dtype=F64)
    module = make().double()
    params = tuple(module.parameters())
    for gname, xg, seg in groupings(x, counts):
        if gname not in ("index-unsorted", "mask"):
            continue
        xg = xg.detach().requires_grad_()

        def f(xv, *ps):  # the parameters too: gradcheck perturbs what it passes in
            out = _with_params(module, ps, xv, seg) if ps else module(xv, seg)
            return out.nan_to_num()  # var/std with correction=1 are nan on one-node sets
        inputs = (xg, *[p.detach().clone().requires_grad_() for p in params])
        assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7,
                                        nondet_tol=0.0), f"{name} {gname}"


GRADGRADCHECK = ["var", "var-c1", "std", "softmax", "powermean-p2.5", "powermean-p0.5",
                 "powermean-learn"]


@pytest.mark.parametrize("name", GRADGRADCHECK)
def test_gradgradcheck_on_sorted_and_unsorted_groupings(name):
    """Second derivatives (double backward) of the eager paths: the fused variance kernel
    (sorted groupings) and the power mean's signed power, values and parameters."""
    make = dict(GRADCHECK)[name]
    g = torch.Generator().manual_seed(10)
    x = (torch.randperm(24, generator=g)[:12].double() / 3 + 0.4).view(6, 2)
    module = make().double()
    params = tuple(module.parameters())
    for gname, xg, seg in groupings(x, [3, 1, 2]):
        if gname not in ("index-sorted", "index-unsorted"):
            continue

        def f(xv, *ps):
            out = _with_params(module, ps, xv, seg) if ps else module(xv, seg)
            return out.nan_to_num()
        inputs = (xg.detach().requires_grad_(),
                  *[p.detach().clone().requires_grad_() for p in params])
        assert torch.autograd.gradgradcheck(f, inputs, eps=1e-6, atol=1e-6), f"{name} {gname}"


@pytest.mark.parametrize("p", [0.5, 1.0, 2.0, 3.0, 0.0, -1.0])
def test_signed_power_eager_equals_its_torch_composition_at_zero_and_signs(p):
    """The eager signed power (derivatives written out) against the torch composition
    that tracers and torch.func run: the same values (bits: the sign of a zero too) and
    gradients, at zeros of both signs, nan and inf; a tensor exponent may be <= 0 (a
    number is > 0 wherever graphpool passes one)."""
    from graphpool.composite import stats

    v = torch.tensor([[0.0, -0.0, 1.5], [-2.0, 0.3, 0.0], [float("nan"), -float("inf"), 4.0]],
                     dtype=F64)
    e = torch.tensor([p, p, p], dtype=F64)
    g = torch.tensor([[1.0, -2.0, 0.5], [3.0, 1.0, -1.0], [2.0, 1.0, 1.0]], dtype=F64)
    for exponent in ((p, e) if p > 0 else (e,)):
        leaf = v.clone().requires_grad_()
        ex = exponent.clone().requires_grad_() if isinstance(exponent, torch.Tensor) else p
        out = stats._signed_pow(leaf, ex)
        grads = torch.autograd.grad(out, [leaf] + ([ex] if isinstance(ex, torch.Tensor)
                                                   else []), g)

        def composite(vv, *ee):
            return (stats._signed_pow(vv, ee[0] if ee else p) * g).sum()
        args = (v,) + ((e,) if isinstance(exponent, torch.Tensor) else ())
        ref = torch.func.grad(composite, argnums=tuple(range(len(args))))(*args)
        with torch.no_grad():
            ref_out = torch.func.vmap(lambda vv: stats._signed_pow(vv, exponent))(v[None])[0]
        torch.testing.assert_close(out, ref_out, rtol=0, atol=0, equal_nan=True)
        assert torch.equal(out.signbit(), ref_out.signbit())
        assert out[0, 1].signbit() and not out[0, 0].signbit()  # odd: -0.0 stays -0.0
        for got, want in zip(grads, ref):
            torch.testing.assert_close(got, want, equal_nan=True)


def _with_params(module, ps, xv, seg):
    """Call ``module`` with its parameters replaced by ``ps`` (differentiably)."""
    return torch.func.functional_call(module, dict(zip(dict(module.named_parameters()), ps)),
                                      (xv, seg))


# ----------------------------------------------------------------------------------------
# 8. Bad arguments: every GraphpoolError names the argument the user passed
# ----------------------------------------------------------------------------------------

X2 = torch.randn(5, 2)
X1 = torch.randn(5, 1)
B5 = torch.tensor([0, 0, 1, 1, 1])
SEG = Segments.from_index(B5)
XI = torch.arange(10).view(5, 2)

BAD = [
    # q
    (lambda: QuantileReadout(1.5), "q"), (lambda: QuantileReadout(-0.1), "q"),
    (lambda: QuantileReadout([]), "q"), (lambda: QuantileReadout([0.5, "a"]), "q"),
    (lambda: QuantileReadout(True), "q"), (lambda: QuantileReadout(math.nan), "q"),
    (lambda: QuantileReadout(torch.tensor(0.5)), "q"),
    (lambda: segment_quantile(X2, SEG, 2), "q"),
    (lambda: gp.readout(X2, B5, "quantile", q=[0.1, 1.1]), "q"),
    (lambda: MultiReadout(["mean", "quantile"], readouts_kwargs=[{}, {"q": 2}]), "q"),
    # interpolation
    (lambda: QuantileReadout(0.5, "cubic"), "interpolation"),
    (lambda: MedianReadout(None), "interpolation"),
    (lambda: segment_quantile(X2, SEG, 0.5, "LINEAR"), "interpolation"),
    # correction
    (lambda: VarReadout(correction=-1), "correction"),
    (lambda: StdReadout(correction=1.5), "correction"),
    (lambda: VarReadout(correction=True), "correction"),
    (lambda: segment_var(X2, SEG, correction=-1), "correction"),
    (lambda: segment_std(X2, SEG, correction="1"), "correction"),
    (lambda: gp.readout(X2, B5, "std", correction=-2), "correction"),
    # p <= 0 and other bad powers / temperatures
    (lambda: PowerMeanReadout(p=0), "p"), (lambda: PowerMeanReadout(p=-1.0), "p"),
    (lambda: PowerMeanReadout(p=math.inf), "p"), (lambda: PowerMeanReadout(p=True), "p"),
    (lambda: GeMReadout(p=0.0), "p"), (lambda: segment_power_mean(X2, SEG, 0), "p"),
    (lambda: segment_power_mean(X2, SEG, -2.0), "p"),
    (lambda: gp.readout(X2, B5, "powermean", p=0), "p"),
    (lambda: segment_power_mean(X2, SEG, torch.ones(3)), "p"),
    (lambda: segment_power_mean(X1, SEG, torch.ones(3)), "p"),   # would widen [5,1] to 3
    (lambda: SoftmaxReadout(t=math.nan), "t"), (lambda: SoftmaxReadout(t="hot"), "t"),
    (lambda: segment_softmax_sum(X2, SEG, torch.ones(3)), "t"),
    (lambda: segment_softmax_sum(X1, SEG, torch.ones(2)), "t"),  # would widen [5,1] to 2
    # integer x
    *[(f, "x") for f in (
        lambda: segment_var(XI, SEG), lambda: segment_std(XI, SEG),
        lambda: segment_logsumexp(XI, SEG), lambda: segment_softmax_sum(XI, SEG),
        lambda: segment_power_mean(XI, SEG), lambda: segment_quantile(XI, SEG),
        lambda: segment_softmax(XI, SEG), lambda: VarReadout()(XI, B5),
        lambda: MedianReadout()(XI, B5), lambda: gp.readout(XI, B5, "softmax"),
        lambda: gp.readout(XI, B5, "prod"), lambda: MultiReadout(["std", "mean"])(XI, B5))],
    # learnable channels
    (lambda: SoftmaxReadout(learn=True, channels=3)(X2, B5), "channels"),
    (lambda: SoftmaxReadout(learn=True, channels=3)(X1, B5), "channels"),  # silent widening
    (lambda: PowerMeanReadout(learn=True, channels=2)(torch.rand(5, 3), B5), "channels"),
    (lambda: GeMReadout(channels=4)(X1.abs(), B5), "channels"),
    (lambda: SoftmaxReadout(learn=False, channels=2), "channels"),
    (lambda: SoftmaxReadout(learn=True, channels=0), "channels"),
    (lambda: PowerMeanReadout(learn=True, channels=True), "channels"),
    # MultiReadout
    (lambda: MultiReadout(["mean"], mode="concat"), "mode"),
    (lambda: MultiReadout(["mean"], mode=None), "mode"),
    (lambda: MultiReadout("mean"), "readouts"), (lambda: MultiReadout([]), "readouts"),
    (lambda: MultiReadout(["mean", "medoid"]), "readouts"),
    (lambda: MultiReadout(["mean", "max"], readouts_kwargs=[{}]), "readouts_kwargs"),
    (lambda: MultiReadout(["mean", "max"], readouts_kwargs=[{}, 3]), "readouts_kwargs"),
    (lambda: MultiReadout(["mean", "max"], mode="proj", mode_kwargs={"in_channels": 2}),
     "mode_kwargs"),
    (lambda: MultiReadout(["mean", "max"], mode="proj",
                          mode_kwargs={"in_channels": 2, "out_channels": 0}), "mode_kwargs"),
    (lambda: MultiReadout(["mean", "max"], mode="proj",
                          mode_kwargs={"in_channels": 2, "out_channels": True}), "mode_kwargs"),
    (lambda: MultiReadout(["mean", "max"], mode="attn",
                          mode_kwargs={"in_channels": [2], "out_channels": 4}), "mode_kwargs"),
    (lambda: MultiReadout(["mean", "max"], mode="attn",
                          mode_kwargs={"in_channels": 2, "out_channels": 4, "num_heads": 3}),
     "mode_kwargs"),
    (lambda: MultiReadout(["mean", "max"], mode="proj",
                          mode_kwargs={"in_channels": 2, "out_channels": 4, "num_heads": 2}),
     "mode_kwargs"),
    (lambda: MultiReadout(["mean", "max"], mode="cat", mode_kwargs={"out_channels": 4}),
     "mode_kwargs"),
    (lambda: MultiReadout(["mean", "max"], mode="attn",
                          mode_kwargs={"in_channels": 2, "out_channels": 4, "dropout": -1.0}),
     "mode_kwargs"),  # torch takes it, and fails in the first training forward
    (lambda: MultiReadout(["mean", "max"], mode="proj",
                          mode_kwargs={"in_channels": 2, "out_channels": 4, "bias": "yes"}),
     "mode_kwargs"),
    (lambda: MultiReadout(["mean", "max"], mode="proj", mode_kwargs=[("in_channels", 2)]),
     "mode_kwargs"),
    (lambda: MultiReadout(["mean", "max"], mode="proj",
                          mode_kwargs={"in_channels": 3, "out_channels": 4})(X2, B5),
     "mode_kwargs"),  # in_channels that do not match x
    (lambda: MultiReadout(["mean", "count"], mode="sum")(X2, B5), "readouts"),
    (lambda: gp.readout(X2, B5, ["mean", "var"], correction=1), "correction"),
    (lambda: VarReadout(fill_value="zero")(X2, B5), "fill_value"),
    # fresh projection weights: another random answer on every call of the function
    (lambda: gp.readout(X2, B5, ["mean", "max"], mode="proj",
                        mode_kwargs={"in_channels": 2, "out_channels": 3}), "reduce"),
    (lambda: segment_sort_k(X2, SEG, 0), "k"),
    (lambda: segment_quantile(X2, SEG, 0.5, max_num_nodes=2), "max_num_nodes"),
]


@pytest.mark.parametrize("call, argument", BAD, ids=[f"{a}-{i}" for i, (_, a) in
                                                    enumerate(BAD)])
def test_bad_arguments_name_the_argument(call, argument):
    with pytest.raises(GraphpoolError, match=rf"invalid '{argument}'"):
        call()


def test_a_list_with_learnable_readouts_takes_in_channels_from_the_resolver():
    x, batch = torch.randn(6, 8), torch.tensor([0, 0, 1, 1, 1, 2])
    multi = gp.resolve_readout(["mean", "attention", "set2set"], in_channels=8)
    assert multi.out_features(8) == 8 + 8 + 16
    assert multi(x, batch).shape == (3, 32)
    own = gp.MultiReadout(["sort", "max"], readouts_kwargs=[{"in_channels": 8, "k": 2}, {}])
    assert own(x, batch).shape == (3, 24)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.int32])
def test_count_gives_empty_sets_its_fill_value_like_every_readout(dtype):
    x, batch = torch.ones(3, 2, dtype=dtype), torch.tensor([0, 0, 2])
    want = torch.tensor([[2, 2], [0, 0], [1, 1]])
    out_dtype = dtype if dtype.is_floating_point else torch.int64
    assert gp.readout(x, batch, "count", num_graphs=4).dtype == out_dtype
    for fill in (0, 5, -1):
        expected = want.masked_fill(want == 0, fill)[:, :1]
        expected = torch.cat([expected, torch.full((1, 1), fill)]).to(out_dtype)
        for out in (gp.readout(x, batch, "count", fill_value=fill, num_graphs=4),
                    gp.CountReadout(fill_value=fill)(x, batch, dim_size=4)):
            assert torch.equal(out, expected), (fill, out)
    multi = gp.readout(x.float(), batch, ["count", "mean"], fill_value=3.0, num_graphs=4)
    assert multi[1].tolist() == [3.0, 3.0, 3.0] and multi[0].tolist() == [2.0, 1.0, 1.0]


def test_to_dense_of_a_mask_grouping_hands_out_a_copy_of_the_mask():
    """A write into the returned mask (say, to drop a node) leaves the grouping as it was."""
    from graphpool.composite import to_dense
    seg = Segments.from_mask(torch.tensor([[True, True, False], [True, False, False]]))
    x = torch.tensor([[[1.], [3.], [0.]], [[5.], [0.], [0.]]])
    before = gp.readout(x, seg, "mean")
    for extra in (None, 4):
        _, mask = to_dense(x, seg, max_num_nodes=extra)
        mask[0, 1] = False
        torch.testing.assert_close(gp.readout(x, seg, "mean"), before, rtol=0, atol=0)
        assert seg.counts.tolist() == [2, 1]


def test_to_dense_fills_the_padding_of_a_mask_grouping_and_keeps_zero_rows_tied_to_x():
    from graphpool.composite import to_dense
    seg = gp.Segments.from_mask(torch.tensor([[True, False]]))
    dense, _ = to_dense(torch.tensor([[[1.], [float("nan")]]]), seg, fill_value=0.0)
    assert dense.flatten().tolist() == [1.0, 0.0]
    with pytest.raises(gp.GraphpoolError, match="'max_num_nodes'"):
        to_dense(torch.zeros(1, 2, 1), seg, max_num_nodes=1)
    dense, mask = to_dense(torch.ones(1, 2, 1), seg, max_num_nodes=4)
    assert dense.flatten().tolist() == [1.0, 0, 0, 0] and mask.tolist() == [[True] + [False] * 3]
    x = torch.zeros(0, 2, requires_grad=True)
    dense, _ = to_dense(x, gp.Segments.from_index(torch.zeros(0, dtype=torch.long), 2))
    assert dense.requires_grad
