"""A hostile, table-driven suite: every row is one attack and states its expected outcome.

Each case is a row ``Case(id, code, expect)``: ``code`` is a small snippet run against the
helpers in ``PRELUDE`` (a per-set Python loop ``naive``, torch's own per-set ops
``torch_ref``, every grouping x backend ``variants`` ...), and ``expect`` is what the
promise says must happen, not what happens today:

* ``Raises(regex)``   a ``GraphpoolError`` whose message matches ``regex`` (it names the
                      argument the user passed);
* ``Ok``              the snippet completes (its own asserts check values and gradients
                      against the naive loop or torch's op);
* ``OkOrRaises(rx)``  either of the two above;
* ``Names(var)``      a bad environment variable: an error or a warning naming ``var``
                      (or, with ``ok=``, a marker saying the value was honoured).

Cases where a crash is possible (memory safety at the C boundary, tracing, huge sizes,
environment variables) run isolated: one child process imports torch once and forks a
fresh grandchild per case, so a segfault, an abort or heap corruption is confined to its
own case and reported as a crash of that case. Everything else runs in-process.

Run: python -m pytest -q tests/test_hostile.py -p no:randomly
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import textwrap
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- expectations
@dataclass(frozen=True)
class Raises:
    pattern: str


@dataclass(frozen=True)
class _Ok:
    def __repr__(self) -> str:
        return "Ok"


Ok = _Ok()


@dataclass(frozen=True)
class OkOrRaises:
    pattern: str


@dataclass(frozen=True)
class Names:
    variable: str
    ok: Optional[str] = None  # a marker the snippet prints when the value was honoured


@dataclass(frozen=True)
class Case:
    id: str
    code: str
    expect: Any
    isolate: bool = False
    env: Tuple[Tuple[str, str], ...] = ()
    timeout: int = 30
    fresh_import: bool = False  # import graphpool in the case itself (environment cases)


def case(id: str, code: str, expect: Any, **kw: Any) -> Case:
    return Case(id, textwrap.dedent(code).strip() + "\n", expect, **kw)


# --------------------------------------------------------------------------------- prelude
# Helpers every snippet sees. Independent of graphpool's internals: the references are a
# Python loop over sets and torch's own reductions applied set by set.
PRELUDE = r'''
import math, resource, sys, threading, time, warnings
import numpy as np
import torch
import graphpool as gp
from graphpool import GraphpoolError, Segments
from graphpool.segments_cache import CACHE
from graphpool.kernels import compiled as _compiled, ext as _ext

BACKENDS = (["native"] + (["compiled"] if _compiled.library() is not None else [])
            + (["torch_scatter"] if _ext.AVAILABLE else []))
OPS = ("sum", "mean", "max", "min")
GROUPINGS = ("index-sorted", "ptr", "index-unsorted", "mask", "uniform")
FOLD = {"sum": torch.add, "mean": torch.add, "max": torch.maximum, "min": torch.minimum}


class Skip(Exception):
    pass


def need(module):
    try:
        __import__(module)
    except ImportError:
        raise Skip(f"{module} is not installed")


def data(*shape, dtype=torch.float32, seed=0, grad=None, low=-4, high=5):
    """Integer-valued data (exact sums, many ties), a leaf that requires grad for floats."""
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(low, high, shape, generator=g).to(dtype)
    if grad is None:
        grad = dtype.is_floating_point
    return t.requires_grad_(grad)


def rand(*shape, dtype=torch.float32, seed=0, grad=None):
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
    return t.requires_grad_(dtype.is_floating_point if grad is None else grad)


def index_of(counts):
    counts = torch.tensor(list(counts), dtype=torch.long)
    return torch.repeat_interleave(torch.arange(len(counts)), counts)


def ptr_of(counts):
    counts = torch.tensor(list(counts), dtype=torch.long)
    return torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])


def groups_of(counts):
    groups, start = [], 0
    for c in counts:
        groups.append(list(range(start, start + c)))
        start += c
    return groups


def groups_of_index(index, num_sets):
    groups = [[] for _ in range(num_sets)]
    for row, s in enumerate(index.tolist()):
        groups[s].append(row)
    return groups


def groups_of_ptr(ptr):
    p = ptr.tolist()
    return [list(range(p[b], p[b + 1])) for b in range(len(p) - 1)]


def naive(x, groups, op, fill=0.0):
    """The per-set loop: fold rows one at a time in float64 (integers in int64; integer
    sums stay int64, as torch.sum gives, and never wrap around)."""
    x = x.detach()
    lead, F = x.shape[:-2], x.shape[-1]
    flat = x.reshape(math.prod(lead), x.shape[-2], F)
    work = flat.double() if x.is_floating_point() else flat.long()
    outs = []
    for l in range(flat.shape[0]):
        rows = []
        for m in groups:
            if not m:
                rows.append(torch.full((F,), fill, dtype=work.dtype))
                continue
            acc = work[l, m[0]].clone()
            for v in m[1:]:
                acc = FOLD[op](acc, work[l, v])
            if op == "mean":
                acc = acc / len(m)
            rows.append(acc)
        outs.append(torch.stack(rows) if rows else work.new_zeros(0, F))
    out_dtype = torch.int64 if op == "sum" and not x.is_floating_point() else x.dtype
    return torch.stack(outs).reshape(*lead, len(groups), F).to(out_dtype)


_TORCH_OP = {"sum": lambda t: t.sum(-2), "mean": lambda t: t.mean(-2),
             "max": lambda t: t.amax(-2), "min": lambda t: t.amin(-2)}


def torch_ref(x, groups, op, fill=0.0):
    """The same sets through torch's own reductions (differentiable: torch.amax's ties)."""
    rows = []
    for m in groups:
        if not m:
            rows.append(torch.full((*x.shape[:-2], x.shape[-1]), fill, dtype=x.dtype))
        else:
            rows.append(_TORCH_OP[op](x[..., m, :]))
    if not rows:
        return x.new_zeros(*x.shape[:-2], 0, x.shape[-1])
    return torch.stack(rows, -2)


def policy_grad(x, groups, op, w):
    """The documented max/min tie policy, set by set: w / ties on the rows equal to the
    extremum (nan rows get nothing), in the dtype of x."""
    x = x.detach()
    y = naive(x, groups, op)
    g = torch.zeros_like(x)
    for b, m in enumerate(groups):
        if not m:
            continue
        hit = x[..., m, :] == y[..., b:b + 1, :]
        ties = hit.sum(-2, keepdim=True).to(w.dtype)
        share = w[..., b:b + 1, :] / ties
        g[..., m, :] = torch.where(hit, share, torch.zeros((), dtype=x.dtype))
    return g


def diff(got, want):
    """None if bit-for-bit equal (nan == nan), else a description of the first mismatch."""
    if not isinstance(got, torch.Tensor):
        return f"got {type(got).__name__}, want a tensor"
    if got.dtype != want.dtype or tuple(got.shape) != tuple(want.shape):
        return f"got {got.dtype} {tuple(got.shape)}, want {want.dtype} {tuple(want.shape)}"
    g, w = got.detach(), want.detach()
    if g.is_floating_point():
        bad = (g != w) & ~(g.isnan() & w.isnan())
    else:
        bad = g != w
    if not bad.any():
        return None
    where = tuple(bad.nonzero()[0].tolist())
    return (f"{int(bad.sum())} of {bad.numel()} elements differ; at {where} got "
            f"{g[where].item()!r}, want {w[where].item()!r}")


def close(got, want):
    try:
        torch.testing.assert_close(got.detach(), want.detach(), equal_nan=True)
    except AssertionError as err:
        return str(err).replace("\n", " ")[:300]
    return None


def integral(x):
    x = x.detach()
    return x.is_floating_point() and bool((x.double() == x.double().round()).all())


def assert_same(got, want, op, what="value"):
    exact = op in ("max", "min") or not want.is_floating_point()
    msg = diff(got, want) if exact else (diff(got, want) if integral(want) and op == "sum"
                                          else close(got, want))
    assert msg is None, f"{what} != naive per-set loop: {msg}"


def reader(grouping, counts, op, fill=0.0, backend=None, seed=0):
    """f(x) -> readout of x (rows in set order) through one grouping (and backend)."""
    counts = list(counts)
    B, N = len(counts), sum(counts)
    idx, ptr = index_of(counts), ptr_of(counts)
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(seed))
    n_max = max(counts, default=0)
    mask = torch.arange(n_max).unsqueeze(0) < torch.tensor(counts, dtype=torch.long).view(-1, 1)

    def run(thunk):
        if backend is None:
            return thunk()
        with gp.use_backend(backend):
            return thunk()
    if grouping == "index-sorted":
        return lambda x: run(lambda: gp.readout(x, idx, op, num_graphs=B, fill_value=fill))
    if grouping == "ptr":
        return lambda x: run(lambda: gp.readout(x, ptr=ptr, reduce=op, fill_value=fill))
    if grouping == "index-unsorted":
        shuffled = idx[perm]
        return lambda x: run(lambda: gp.readout(x.index_select(-2, perm), shuffled, op,
                                                num_graphs=B, fill_value=fill))
    if grouping == "mask":
        seg = Segments.from_mask(mask)

        def f(x):
            pad = float("nan") if x.is_floating_point() else torch.iinfo(x.dtype).max
            padded = torch.full((*x.shape[:-2], B, n_max, x.shape[-1]), pad, dtype=x.dtype)
            padded = padded.masked_scatter(mask.unsqueeze(-1).expand(padded.shape), x)
            return gp.readout(padded, seg, op, fill_value=fill)
        return f
    if grouping == "uniform":
        seg = Segments.uniform(B, counts[0])
        return lambda x: gp.readout(x, seg, op, fill_value=fill)
    raise AssertionError(grouping)


def variants(counts, op, fill=0.0, backends=None, groupings=GROUPINGS, seed=0):
    uniform_ok = len(counts) > 0 and len(set(counts)) == 1
    for g in groupings:
        if g in ("index-sorted", "ptr", "index-unsorted"):
            for be in backends or BACKENDS:
                yield f"{be}/{g}", reader(g, counts, op, fill, be, seed)
        elif g != "uniform" or uniform_ok:
            yield g, reader(g, counts, op, fill, None, seed)


def check_paths(make_x, counts, op, fill=0.0, backends=None, groupings=GROUPINGS,
                grad=True, seed=1):
    """Every grouping x backend: value == naive loop, value bit-for-bit equal across paths,
    gradient bit-for-bit equal to torch's own op applied set by set (torch.amax's ties; the
    documented policy where a set holds nan)."""
    if isinstance(make_x, torch.Tensor):
        t = make_x
        make_x = lambda: t.detach().clone().requires_grad_(t.is_floating_point())
    groups = groups_of(counts)
    x0 = make_x()
    want = naive(x0, groups, op, fill)
    grad = grad and x0.is_floating_point()
    if grad:
        w = rand(*want.shape, dtype=x0.dtype, seed=seed, grad=False)
        xr = x0.detach().clone().requires_grad_()
        if op in ("max", "min") and bool(xr.isnan().any()):
            gref = policy_grad(xr, groups, op, w)
        else:
            ref = torch_ref(xr, groups, op, fill)
            gref = (torch.autograd.grad(ref, xr, w, allow_unused=True)[0]
                    if ref.requires_grad else None)
            gref = torch.zeros_like(xr) if gref is None else gref
    problems, firsts = [], {}
    # Exact arithmetic (max/min, integers, integer-valued sums): one answer for every path.
    # Rounded sums of random data: one answer per row order (every backend of a grouping;
    # a sorted index and its ptr), since a different order of additions rounds differently.
    exact_everywhere = op in ("max", "min") or not x0.is_floating_point() or (
        integral(x0) and op in ("sum", "mean"))
    for name, f in variants(counts, op, fill, backends, groupings, seed):
        x = make_x()
        try:
            out = f(x)
            gx = None
            if grad:
                gx = (torch.autograd.grad(out, x, w, allow_unused=True)[0]
                      if out.requires_grad else None)
                gx = torch.zeros_like(x) if gx is None else gx
        except Exception as err:
            problems.append(f"{name}: raised {type(err).__name__}: {str(err)[:300]}")
            continue
        try:
            assert_same(out, want, op)
        except AssertionError as err:
            problems.append(f"{name}: {err}")
        grouping = name.split("/")[-1]
        key = "all" if exact_everywhere else "csr" if grouping in ("index-sorted", "ptr") else grouping
        if key not in firsts:
            firsts[key] = (name, out)
        else:
            m = diff(out, firsts[key][1])
            if m:
                problems.append(f"{name}: value not bit-for-bit equal to {firsts[key][0]}'s: {m}")
        if grad:
            m = diff(gx, gref)
            if m:
                problems.append(f"{name}: gradient != torch's per-set op: {m}")
    assert not problems, "\n  " + "\n  ".join(problems)


def check_double(dtype, op, grouping, counts=None, backends=None):
    """create_graph=True (double backward) on every backend of one grouping: the first
    gradient is finite and bit-for-bit torch's; the gradient of a penalty on it is close."""
    counts = counts or ((3, 3, 3) if grouping == "uniform" else (3, 0, 2, 4))
    groups, B, N, F = groups_of(counts), len(counts), sum(counts), 4
    base = data(N, F, dtype=dtype, seed=3, grad=False)
    w0 = rand(B, F, dtype=dtype, seed=4, grad=False)
    v = rand(N, F, dtype=dtype, seed=5, grad=False)

    def run(f):
        x = base.clone().requires_grad_()
        w = w0.clone().requires_grad_()
        out = f(x)
        (gx,) = torch.autograd.grad(out, x, w, create_graph=True)
        (gw,) = torch.autograd.grad((gx * v).sum(), w, allow_unused=True)
        return gx.detach(), (torch.zeros_like(w) if gw is None else gw)
    want_gx, _ = run(lambda x: torch_ref(x, groups, op))
    # the second-order reference in float64 (a sum of roundings in half would be less exact
    # than the code under test); gross errors (inf, misrouted sets) are what it catches
    x64 = base.double().requires_grad_()
    w64 = w0.double().requires_grad_()
    (g64,) = torch.autograd.grad(torch_ref(x64, groups, op), x64, w64, create_graph=True)
    (want_gw,) = torch.autograd.grad((g64 * v.double()).sum(), w64)
    eps = torch.finfo(dtype).eps
    problems = []
    for name, f in variants(counts, op, 0.0, backends, (grouping,)):
        try:
            gx, gw = run(f)
        except Exception as err:
            problems.append(f"{name}: raised {type(err).__name__}: {str(err)[:300]}")
            continue
        if not bool(torch.isfinite(gx).all()):
            problems.append(f"{name}: non-finite first gradient {gx.flatten()[:8].tolist()}")
        m = diff(gx, want_gx)
        if m:
            problems.append(f"{name}: first gradient (create_graph=True) != torch's: {m}")
        m = None
        try:
            torch.testing.assert_close(gw.double(), want_gw, rtol=16 * eps,
                                       atol=16 * eps * (1 + float(want_gw.abs().max())))
        except AssertionError as err:
            m = str(err).replace("\n", " ")[:300]
        if m:
            problems.append(f"{name}: gradient of the gradient != torch's: {m}")
    assert not problems, "\n  " + "\n  ".join(problems)


def trace_check(fn, example, news):
    """torch.jit.trace must refuse up front (GraphpoolError) or equal eager on new inputs.
    Where eager raises a GraphpoolError the traced function must raise too: a trace runs
    torch ops only, so torch's own bounds checks speak there (documented in docs/core.md),
    but it must never return a result."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(fn, example, check_trace=False)
    except GraphpoolError:
        print("REFUSED UP FRONT")
        return
    for k, args in enumerate(news):
        try:
            want = fn(*args)
        except GraphpoolError:
            try:
                got = traced(*args)
            except (GraphpoolError, RuntimeError, IndexError):
                continue
            raise AssertionError(f"new input {k}: eager raises GraphpoolError, traced "
                                 f"returned {got}")
        got = traced(*args)
        m = diff(got, want)
        assert m is None, f"new input {k}: traced != eager: {m}"


def fx_check(module, news):
    try:
        gm = torch.fx.symbolic_trace(module)
    except GraphpoolError:
        print("REFUSED UP FRONT")
        return
    for k, args in enumerate(news):
        m = diff(gm(*args), module(*args))
        assert m is None, f"new input {k}: fx-traced != eager: {m}"


def limit_memory(gb):
    """Cap this process's address space at its current size + gb GiB (protects the host)."""
    with open("/proc/self/status") as f:
        vm = next(int(l.split()[1]) for l in f if l.startswith("VmSize")) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + int(gb * 2**30), resource.RLIM_INFINITY))


def check_rss(gb):
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    assert rss < gb, f"max resident set {rss:.2f} GiB >= {gb} GiB"
'''

# ------------------------------------------------------------------------------- the runners
_PRELUDE_NS: Optional[Dict[str, Any]] = None


def _outcome(err: Optional[BaseException], caught, output: str) -> Dict[str, Any]:
    out = {"status": "ok", "type": "", "message": "", "output": output,
           "warnings": [f"{w.category.__name__}: {w.message}" for w in caught]}
    if err is not None:
        name = type(err).__name__
        out["type"], out["message"] = name, str(err)
        if name == "Skip":
            out["status"] = "skip"
        elif name == "GraphpoolError" and isinstance(err, ValueError):
            out["status"] = "gperr"
        else:
            out["status"] = "exc"
            out["trace"] = "".join(traceback.format_exception(err)[-3:])
    return out


def run_in_process(c: Case) -> Dict[str, Any]:
    global _PRELUDE_NS
    import graphpool
    from graphpool.segments_cache import CACHE
    if _PRELUDE_NS is None:
        _PRELUDE_NS = {"__name__": "hostile_case"}  # a module name: jit.trace needs one
        exec(PRELUDE, _PRELUDE_NS)
    ns = dict(_PRELUDE_NS)
    buf, err = io.StringIO(), None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with contextlib.redirect_stdout(buf):
                exec(compile(c.code, f"<case {c.id}>", "exec"), ns)
        except Exception as e:  # noqa: BLE001 - classified below
            err = e
        finally:
            graphpool.set_backend("auto")
            CACHE.clear()
    return _outcome(err, caught, buf.getvalue())


# The isolating child: imports torch (and PyG) once, then forks one grandchild per case.
# Environment cases run first, before graphpool is imported, so each imports it afresh.
SERVER = r'''
import json, os, signal, sys, tempfile, traceback, warnings
payload = json.load(sys.stdin)
sys.path.insert(0, payload["root"])
os.chdir(payload["root"])
import numpy, torch
import torch_geometric  # noqa: F401  (heavy; shared by every case)
from torch_geometric.nn.aggr import Aggregation  # noqa: F401
tmp = tempfile.mkdtemp(prefix="gp-hostile-")
RES, OUT = os.path.join(tmp, "result.json"), os.path.join(tmp, "output.txt")


def classify(err, caught):
    out = {"status": "ok", "type": "", "message": "",
           "warnings": [f"{w.category.__name__}: {w.message}" for w in caught]}
    if err is not None:
        name = type(err).__name__
        out["type"], out["message"] = name, str(err)
        out["status"] = ("skip" if name == "Skip" else "gperr"
                         if name == "GraphpoolError" and isinstance(err, ValueError) else "exc")
        if out["status"] == "exc":
            out["trace"] = "".join(traceback.format_exception(err)[-3:])
    return out


def run(case, base):
    for f in (RES, OUT):
        if os.path.exists(f):
            os.remove(f)
    pid = os.fork()
    if pid == 0:
        try:
            fd = os.open(OUT, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            for k, v in case["env"]:
                os.environ[k] = v
            signal.alarm(case["timeout"])
            err = None
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    ns = dict(base) if base is not None else {"__name__": "hostile_case"}
                    if base is None:
                        exec(payload["prelude"], ns)
                    exec(compile(case["code"], "<case " + case["id"] + ">", "exec"), ns)
                except BaseException as e:
                    err = e
            result = classify(err, caught)
            sys.stdout.flush()
            sys.stderr.flush()
            with open(RES + ".part", "w") as f:
                json.dump(result, f)
            os.replace(RES + ".part", RES)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    try:
        with open(OUT, errors="replace") as f:
            output = f.read()[-4000:]
    except OSError:
        output = ""
    try:
        with open(RES) as f:
            result = json.load(f)
    except (OSError, ValueError):
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            kind = "timeout" if sig == signal.SIGALRM else "crash"
            result = {"status": kind, "type": "", "warnings": [],
                      "message": f"the case's process was killed by signal {sig} "
                                 f"({signal.Signals(sig).name})"}
        else:
            result = {"status": "crash", "type": "", "warnings": [],
                      "message": f"the case's process exited with status "
                                 f"{os.waitstatus_to_exitcode(status)} before reporting"}
    result["output"] = output
    print("RESULT " + json.dumps({"id": case["id"], **result}), flush=True)


cases = payload["cases"]
for c in cases:
    if c["fresh_import"]:
        run(c, None)
base = {"__name__": "hostile_case"}  # a module name for the snippets' functions (jit.trace)
exec(payload["prelude"], base)
for c in cases:
    if not c["fresh_import"]:
        run(c, base)
'''


def run_isolated(cases: List[Case]) -> Dict[str, Dict[str, Any]]:
    if not cases:
        return {}
    payload = {"root": str(ROOT), "prelude": PRELUDE,
               "cases": [{"id": c.id, "code": c.code, "env": list(c.env),
                          "timeout": c.timeout, "fresh_import": c.fresh_import}
                         for c in cases]}
    proc = subprocess.run([sys.executable, "-c", SERVER], input=json.dumps(payload),
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            r = json.loads(line[len("RESULT "):])
            results[r.pop("id")] = r
    for c in cases:
        results.setdefault(c.id, {"status": "crash", "type": "", "warnings": [], "output": "",
                                  "message": f"the isolating process died (rc {proc.returncode})"
                                             f": {proc.stderr[-2000:]}"})
    return results


def judge(c: Case, o: Dict[str, Any]) -> None:
    if o["status"] == "skip":
        pytest.skip(o["message"])
    exp = c.expect
    said = o["message"].strip()
    shown = (f"\n--- reproducer ({c.id}{', env ' + str(dict(c.env)) if c.env else ''}) ---\n"
             f"{c.code.rstrip()}\n--- outcome: {o['status']}"
             f"{' ' + o['type'] if o['type'] else ''}: {said[:2500]}")
    if o.get("trace"):
        shown += f"\n--- traceback (last frames) ---\n{o['trace'][-1500:]}"
    if o.get("output", "").strip() and o["status"] in ("crash", "timeout", "exc"):
        shown += f"\n--- output of the case ---\n{o['output'][-1500:]}"
    status = o["status"]
    matches = status == "gperr" and isinstance(exp, (Raises, OkOrRaises)) and re.search(
        exp.pattern, said) is not None
    if isinstance(exp, Raises):
        if status == "gperr" and not matches:
            pytest.fail(f"GraphpoolError does not match {exp.pattern!r}" + shown, False)
        assert matches, f"expected a GraphpoolError matching {exp.pattern!r}" + shown
    elif exp is Ok:
        assert status == "ok", "expected the case to pass its checks" + shown
    elif isinstance(exp, OkOrRaises):
        assert status == "ok" or matches, (f"expected a correct result or a GraphpoolError "
                                           f"matching {exp.pattern!r}") + shown
    elif isinstance(exp, Names):
        text = "\n".join([said, *o["warnings"], o.get("output", "")])
        honoured = exp.ok is not None and exp.ok in o.get("output", "")
        assert status not in ("crash", "timeout"), "the process crashed" + shown
        assert honoured or exp.variable in text, (
            f"no error or warning names {exp.variable}"
            + (f" and the value was not honoured ({exp.ok!r} not printed)" if exp.ok else "")
            + shown + (f"\n--- warnings: {o['warnings']}" if o["warnings"] else ""))
    else:  # pragma: no cover
        raise AssertionError(exp)


# ============================================================================ the cases
# docs/core.md, Errors: the message names the function called and the argument as the user
# passed it, also when a lower layer found the fault.
NAME_PTR = r"^readout: invalid 'ptr'"                       # readout(x, ptr=...)
NAME_SEG_PTR = r"invalid '(ptr|segments)'"                  # an explicit Segments.from_ptr
NAME_INDEX = r"^readout: invalid '(batch|num_graphs)'"      # readout(x, batch, num_graphs=)
NAME_SEG_INDEX = r"invalid '(index|num_segments|segments)'"  # an explicit Segments.from_index
NAME_NUM = r"^readout: invalid 'num_graphs'"

# --------------------------------------------------- 1. memory safety at the C boundary
MEMORY: List[Case] = []
BAD_PTRS = [("out_of_range", "[0, 1000000]"), ("decreasing", "[0, 3, 1, 4]"),
            ("not_starting_at_0", "[1, 2, 4]"), ("last_below_N", "[0, 1, 2]"),
            ("last_above_N", "[0, 2, 9]"), ("negative_entry", "[0, -5, 4]"),
            ("huge_negative", "[0, -2**62, 4]")]
for pname, p in BAD_PTRS:
    for be in ("native", "compiled", "torch_scatter"):
        for op in ("sum", "max"):
            MEMORY.append(case(f"ptr-{pname}-validate_false-{be}-{op}", f"""
                x = rand(4, 3, grad=False)
                with gp.use_backend({be!r}):
                    out = gp.readout(x, ptr=torch.tensor({p}), reduce={op!r}, validate=False)
                print(out)
                """, Raises(NAME_PTR), isolate=True))
    MEMORY.append(case(f"ptr-{pname}-Segments_validate_false-mean-backward", f"""
        x = rand(4, 3)
        seg = Segments.from_ptr(torch.tensor({p}), num_nodes=4, validate=False)
        gp.segment_reduce(x, seg, "mean").sum().backward()
        print(x.grad)
        """, Raises(NAME_SEG_PTR), isolate=True))
MEMORY += [
    case("ptr-decreasing-validate_false-Segments.index", """
        print(Segments.from_ptr(torch.tensor([0, 3, 1, 4]), num_nodes=4, validate=False).index)
        """, Raises(NAME_SEG_PTR), isolate=True),
    case("ptr-decreasing-validate_false-segment_broadcast", """
        seg = Segments.from_ptr(torch.tensor([0, 3, 1, 4]), num_nodes=4, validate=False)
        print(gp.segment_broadcast(torch.ones(3, 2), seg))
        """, Raises(NAME_SEG_PTR), isolate=True),
    case("ptr-out_of_range-validate_false-segment_broadcast", """
        seg = Segments.from_ptr(torch.tensor([0, 1000000]), num_nodes=4, validate=False)
        print(gp.segment_broadcast(torch.ones(1, 2), seg))
        """, Raises(NAME_SEG_PTR), isolate=True),
    case("ptr-out_of_range-validate_false-PyG_Batch-MaxReadout", """
        from torch_geometric.data import Batch, Data
        b = Batch.from_data_list([Data(x=rand(2, 3, grad=False)), Data(x=rand(2, 3, seed=1, grad=False))])
        b.ptr[1] = 1000000
        print(gp.MaxReadout(validate=False)(b.x, b))
        """, Raises(r"^MaxReadout: invalid '(ptr|batch|index)'"), isolate=True),
]
MEMORY += [  # the scatter kernels (unsorted index) and the channels-first max backward
    case("scatter_kernel-unsorted-strided_leading_dims-max-backward", """
        base = data(3, 6, 4, seed=2)  # ties
        x = base.transpose(0, 1).transpose(0, 1)[:, :, ::2]  # [3, 6, 2], strided features
        b = torch.tensor([2, 0, 2, 1, 0, 2])
        out = gp.readout(x, b, "max", num_graphs=4)
        (g,) = torch.autograd.grad(out.sum(), base)
        for l in range(3):
            assert_same(out[l], naive(x[l].detach(), groups_of_index(b, 4), "max"), "max")
        twin = base.detach().clone().requires_grad_()
        ref = torch.stack([torch.stack([twin[l, :, ::2][b == s].amax(0) if (b == s).any()
                                        else twin.new_zeros(2) for s in range(4)]) for l in range(3)])
        (g2,) = torch.autograd.grad(ref.sum(), twin)
        assert diff(g, g2) is None, diff(g, g2)
        """, Ok, isolate=True),
    case("run_kernel-channels_first_views-max-backward", """
        t = data(2, 6, 3, 5, seed=3)  # ties
        maps = [t, t[:, ::2], t.contiguous(memory_format=torch.channels_last),
                t[:1].expand(3, 6, 3, 5), t.transpose(2, 3)]
        for fmap in maps:
            (g,) = torch.autograd.grad(gp.GlobalPool2d("max")(fmap).sum(), t)
            (g2,) = torch.autograd.grad(fmap.amax((2, 3)).sum(), t)  # amax: the even split
            assert diff(g, g2) is None, diff(g, g2)
        """, Ok, isolate=True),
]
BAD_INDEX = [("above_num_graphs", "torch.tensor([0, 1, 5, 1])"),
             ("negative", "torch.tensor([0, -1, 1, 1])"),
             ("huge", "torch.tensor([0, 1, 2**40, 1])"),
             ("int32_above", "torch.tensor([0, 1, 7, 1], dtype=torch.int32)"),
             ("strided_above", "torch.tensor([0, 9, 1, 9, 5, 9, 1, 9])[::2]")]
for iname, ix in BAD_INDEX:
    for be in ("native", "compiled", "torch_scatter"):
        for op in ("sum", "max"):
            MEMORY.append(case(f"index-{iname}-validate_false-{be}-{op}", f"""
                x = rand(4, 3, grad=False)
                with gp.use_backend({be!r}):
                    out = gp.readout(x, {ix}, {op!r}, num_graphs=2, validate=False)
                print(out)
                """, Raises(NAME_INDEX), isolate=True))
    MEMORY.append(case(f"index-{iname}-Segments_validate_false-max-backward", f"""
        x = rand(4, 3)
        seg = Segments.from_index({ix}, 2, validate=False)
        gp.segment_reduce(x, seg, "max").sum().backward()
        print(x.grad)
        """, Raises(NAME_SEG_INDEX), isolate=True))
for be in ("native", "compiled", "torch_scatter"):
    for op in ("sum", "mean", "max"):
        MEMORY.append(case(f"sorted_true_on_unsorted_index-validate_false-{be}-{op}", f"""
            x = rand(5, 3, grad=False)
            idx = torch.tensor([1, 0, 1, 0, 2])
            with gp.use_backend({be!r}):
                out = gp.segment_reduce(x, Segments.from_index(idx, 3, sorted=True, validate=False), {op!r})
            assert_same(out, naive(x, groups_of_index(idx, 3), {op!r}), {op!r})
            """, OkOrRaises(r"invalid 'sorted'"), isolate=True))
DTYPE_NAMES = {"float16": "torch.float16", "bfloat16": "torch.bfloat16",
               "float32": "torch.float32", "float64": "torch.float64"}
for dt in ("float16", "bfloat16"):
    for op in ("max", "min", "sum", "mean"):
        for g in ("index-sorted", "ptr", "index-unsorted", "mask", "uniform"):
            MEMORY.append(case(f"double_backward-{dt}-{op}-{g}", f"""
                check_double({DTYPE_NAMES[dt]}, {op!r}, {g!r})
                """, Ok, isolate=True))
for dt, op, g in [("float32", "max", "index-sorted"), ("float32", "min", "ptr"),
                  ("float64", "max", "mask"), ("float64", "min", "index-unsorted")]:
    MEMORY.append(case(f"double_backward-{dt}-{op}-{g}", f"""
        check_double({DTYPE_NAMES[dt]}, {op!r}, {g!r})
        """, Ok, isolate=True))
for dt, op, how in [("float16", "max", "index"), ("float16", "min", "index"),
                    ("bfloat16", "max", "index"), ("bfloat16", "min", "index"),
                    ("float16", "max", "ptr"), ("bfloat16", "min", "ptr")]:
    grouping = ("torch.arange(1000).repeat_interleave(2)" if how == "index"
                else "ptr=torch.arange(0, 2001, 2)")
    MEMORY.append(case(f"double_backward-{dt}-{op}-2000x64-{how}", f"""
        x = torch.ones(2000, 64, dtype={DTYPE_NAMES[dt]}, requires_grad=True)
        out = gp.readout(x, {grouping}, reduce={op!r})
        (g,) = torch.autograd.grad(out.sum(), x, create_graph=True)
        assert bool(torch.isfinite(g).all()), f"non-finite gradients: {{g.flatten()[:4].tolist()}}"
        m = diff(g, torch.full_like(g, 0.5))
        assert m is None, f"tie split of two equal rows must be 0.5: {{m}}"
        """, Ok, isolate=True))
for dt, op, how in [("float16", "max", "index"), ("bfloat16", "min", "ptr")]:
    MEMORY.append(case(f"jacobian_create_graph-{dt}-{op}-{how}", f"""
        counts = (2, 0, 3, 1)
        x = data(6, 2, dtype={DTYPE_NAMES[dt]}, seed=7, grad=False)
        idx, ptr = index_of(counts), ptr_of(counts)
        f = ((lambda x: gp.readout(x, idx, {op!r}, num_graphs=4)) if {how!r} == "index"
             else (lambda x: gp.readout(x, ptr=ptr, reduce={op!r})))
        J = torch.autograd.functional.jacobian(f, x, create_graph=True)
        Jr = torch.autograd.functional.jacobian(lambda x: torch_ref(x, groups_of(counts), {op!r}), x)
        assert bool(torch.isfinite(J).all()), "non-finite jacobian"
        m = diff(J, Jr)
        assert m is None, f"jacobian != torch's: {{m}}"
        """, Ok, isolate=True))
for dt in ("float16", "bfloat16"):
    MEMORY.append(case(f"gradient_penalty-{dt}-max", f"""
        counts = (3, 2, 3)
        idx = index_of(counts)
        h = data(8, 3, dtype={DTYPE_NAMES[dt]}, seed=2, grad=False)
        W0 = data(3, 4, dtype={DTYPE_NAMES[dt]}, seed=3, grad=False, low=-1, high=2)
        a0 = rand(3, 4, dtype={DTYPE_NAMES[dt]}, seed=4, grad=False)
        def step(readout):
            W, a = W0.clone().requires_grad_(), a0.clone().requires_grad_()
            x = h @ W
            s = (readout(x) * a).sum()
            (gx,) = torch.autograd.grad(s, x, create_graph=True)
            loss = s + (gx.float() ** 2).sum()
            gW, ga = torch.autograd.grad(loss, (W, a))
            return gx.detach(), gW, ga
        gx, gW, ga = step(lambda x: gp.readout(x, idx, "max"))
        rx, rW, ra = step(lambda x: torch_ref(x, groups_of(counts), "max"))
        assert bool(torch.isfinite(gx).all()), f"non-finite gradient {{gx.flatten()[:6].tolist()}}"
        assert diff(gx, rx) is None, diff(gx, rx)
        assert close(gW, rW) is None and close(ga, ra) is None, (close(gW, rW), close(ga, ra))
        """, Ok, isolate=True))
LAYOUTS = [  # N = 6 rows in set order, F = 4 features, from a leaf that requires grad
    ("rows_strided", "data(12, 4)[::2]"),
    ("features_strided", "data(6, 8)[:, ::2]"),
    ("column_major", "data(4, 6).t()"),
    ("storage_offset", "data(11, 4)[5:]"),
    ("expand_rows_stride0", "data(1, 4).expand(6, 4)"),
    ("expand_features_stride0", "data(6, 1).expand(6, 4)"),
    ("leading_dims", "data(2, 3, 6, 4)"),
    ("leading_dims_unmergeable", "data(6, 3, 2, 4).permute(2, 1, 0, 3)"),
    ("leading_dim_transposed", "data(6, 2, 4).transpose(0, 1)"),
    ("channels_first_map", "data(2, 4, 2, 3).flatten(2).transpose(1, 2)"),
    ("channels_last_map", "data(2, 4, 2, 3).to(memory_format=torch.channels_last).flatten(2).transpose(1, 2)"),
]
for lname, expr in LAYOUTS:
    for be in ("native", "compiled", "torch_scatter"):
        for op in ("sum", "max"):
            MEMORY.append(case(f"layout-{lname}-{be}-{op}", f"""
                check_paths(lambda: {expr}, (2, 0, 3, 1), {op!r}, backends=[{be!r}],
                            groupings=("index-sorted", "ptr", "index-unsorted"))
                """, Ok, isolate=True))

# ------------------------------------------------------------ 2. one answer on every path
ONE_ANSWER: List[Case] = []
MIXED, EQUAL = (0, 3, 0, 4, 1, 5, 0), (4, 4, 4)
for dt in ("float32", "float64", "float16", "bfloat16"):
    for op in ("sum", "mean", "max", "min"):
        ONE_ANSWER.append(case(f"paths-{dt}-{op}-empty_sets_leading_middle_trailing", f"""
            check_paths(data(13, 5, dtype={DTYPE_NAMES[dt]}), {MIXED}, {op!r})
            """, Ok))
        ONE_ANSWER.append(case(f"paths-{dt}-{op}-equal_sets_with_uniform", f"""
            check_paths(data(12, 5, dtype={DTYPE_NAMES[dt]}, seed=1), {EQUAL}, {op!r})
            """, Ok))
    for op in ("sum", "mean"):  # rounding-order differences between paths show up here
        ONE_ANSWER.append(case(f"paths-{dt}-{op}-random_values-large_sets", f"""
            check_paths(rand(206, 3, dtype={DTYPE_NAMES[dt]}, seed=7), (0, 37, 0, 64, 5, 100), {op!r})
            """, Ok))
        ONE_ANSWER.append(case(f"paths-{dt}-{op}-random_values-equal_sets_with_uniform", f"""
            check_paths(rand(150, 3, dtype={DTYPE_NAMES[dt]}, seed=8), (50, 50, 50), {op!r})
            """, Ok))
    for op in ("max", "min"):
        ONE_ANSWER.append(case(f"paths-{dt}-{op}-random_values", f"""
            check_paths(rand(13, 5, dtype={DTYPE_NAMES[dt]}, seed=2), {MIXED}, {op!r})
            """, Ok))
for dt in ("bfloat16", "float16", "float32"):
    for op in ("max", "min"):
        ONE_ANSWER.append(case(f"tie_split_one_third-{dt}-{op}", f"""
            x = torch.tensor([[1.], [1.], [1.], [0.], [2.]], dtype={DTYPE_NAMES[dt]})
            check_paths(x, (3, 2), {op!r})   # three tied rows: 1/3 each, as torch.amax rounds it
            """, Ok))
NONFINITE = [("nan_in_set", "[[float('nan')], [1.], [2.], [3.]]", (2, 2)),
             ("plus_inf", "[[float('inf')], [1.], [-1.], [3.]]", (2, 2)),
             ("only_minus_inf", "[[-float('inf')], [-float('inf')], [1.], [float('inf')]]", (2, 2)),
             ("inf_and_minus_inf", "[[float('inf')], [-float('inf')], [5.], [float('nan')]]", (2, 2))]
for nname, rows, counts in NONFINITE:
    for dt in ("float32", "float16", "bfloat16"):
        for op in ("sum", "mean", "max", "min"):
            ONE_ANSWER.append(case(f"nonfinite-{nname}-{dt}-{op}", f"""
                x = torch.tensor({rows}, dtype={DTYPE_NAMES[dt]}).repeat(1, 3)
                check_paths(x, {counts}, {op!r})
                """, Ok))
for op in ("sum", "mean", "max", "min"):
    for fname, fill in [("nan", "float('nan')"), ("minus_1.5", "-1.5"), ("1e4", "1e4")]:
        ONE_ANSWER.append(case(f"empty_sets-fill_{fname}-float32-{op}", f"""
            check_paths(data(5, 3, seed=4), (0, 2, 0, 3, 0), {op!r}, fill={fill})
            """, Ok))
    ONE_ANSWER.append(case(f"empty_sets-fill_minus_2-float16-{op}", f"""
        check_paths(data(5, 3, dtype=torch.float16, seed=4), (0, 2, 0, 3, 0), {op!r}, fill=-2.0)
        """, Ok))
    ONE_ANSWER.append(case(f"zero_rows_zero_sets-{op}", f"""
        check_paths(data(0, 3), (), {op!r})
        """, Ok))
    ONE_ANSWER.append(case(f"all_sets_empty-{op}", f"""
        check_paths(data(0, 3), (0, 0), {op!r}, fill=3.0)
        """, Ok))
for dt in ("int64", "int32", "int8", "uint8"):
    for op in ("sum", "max", "min"):
        ONE_ANSWER.append(case(f"integers-{dt}-{op}-fill_7", f"""
            check_paths(data(9, 3, dtype=torch.{dt}, low=0, high=9), (0, 3, 0, 4, 2), {op!r}, fill=7)
            """, Ok))
for dt, op in [("float32", "sum"), ("float32", "max"), ("float16", "max"), ("bfloat16", "sum")]:
    ONE_ANSWER.append(case(f"one_big_set_parallel_kernels-{dt}-{op}", f"""
        check_paths(data(16400, 4, dtype={DTYPE_NAMES[dt]}, seed=5), (16400,), {op!r},
                    groupings=("index-sorted", "ptr", "index-unsorted", "uniform"))
        """, Ok))
for op in ("sum", "mean", "max", "min"):
    ONE_ANSWER.append(case(f"leading_dims-float32-{op}", f"""
        check_paths(data(2, 13, 5, seed=6), {MIXED}, {op!r})
        """, Ok, isolate=True))
ONE_ANSWER.append(case("mean_of_integers_is_refused", """
    gp.readout(torch.ones(4, 3, dtype=torch.long), torch.tensor([0, 0, 1, 1]), "mean")
    """, Raises(r"invalid 'x'")))

# ------------------------------------------------------------------------------ 3. tracing
TRACING: List[Case] = []
NEW_BATCHES = ("[(rand(7, 4, seed=1, grad=False), torch.tensor([0, 1, 1, 1, 2, 2, 2])), "
               "(rand(3, 2, seed=2, grad=False), torch.tensor([0, 1, 2])), "
               "(rand(6, 4, seed=3, grad=False), torch.tensor([2, 0, 1, 0, 2, 1])), "
               "(rand(4, 4, seed=4, grad=False), torch.tensor([0, 0, 2, 2]))]")
EXAMPLE = "(rand(5, 4, grad=False), torch.tensor([0, 0, 1, 2, 2]))"
for op in ("sum", "mean", "max", "min"):
    TRACING.append(case(f"jit_trace-index-num_graphs-{op}", f"""
        trace_check(lambda x, b: gp.readout(x, b, {op!r}, num_graphs=3), {EXAMPLE}, {NEW_BATCHES})
        """, Ok, isolate=True))
TRACING += [
    case("jit_trace-ptr-max", """
        trace_check(lambda x, p: gp.readout(x, ptr=p, reduce="max"),
                    (rand(5, 4, grad=False), torch.tensor([0, 2, 3, 5])),
                    [(rand(7, 4, seed=1, grad=False), torch.tensor([0, 1, 4, 7])),
                     (rand(2, 3, seed=2, grad=False), torch.tensor([0, 0, 1, 2]))])
        """, Ok, isolate=True),
    case("jit_trace-one_set-max", """
        trace_check(lambda x: gp.readout(x, reduce="max"), (rand(5, 3, grad=False),),
                    [(rand(7, 3, seed=1, grad=False),), (rand(2, 3, seed=2, grad=False),)])
        """, Ok, isolate=True),
    case("jit_trace-no_num_graphs-max", f"""
        trace_check(lambda x, b: gp.readout(x, b, "max"), {EXAMPLE}, {NEW_BATCHES})
        """, Ok, isolate=True),
    case("jit_trace-MaxReadout_module-max", f"""
        m = gp.MaxReadout()
        trace_check(lambda x, b: m(x, b, dim_size=3), {EXAMPLE}, {NEW_BATCHES})
        """, Ok, isolate=True),
    case("jit_trace-Segments.from_index_inside-max", f"""
        trace_check(lambda x, b: gp.segment_reduce(x, Segments.from_index(b, 3), "max"),
                    {EXAMPLE}, {NEW_BATCHES})
        """, Ok, isolate=True),
    case("jit_trace-uniform_from_x_size-max", """
        trace_check(lambda x: gp.segment_reduce(x, Segments.uniform(2, x.size(0) // 2), "max"),
                    (rand(6, 3, grad=False),),
                    [(rand(8, 3, seed=1, grad=False),), (rand(2, 3, seed=2, grad=False),)])
        """, Ok, isolate=True),
    case("jit_trace-mask-max", """
        trace_check(lambda x, m: gp.segment_reduce(x, Segments.from_mask(m), "max"),
                    (rand(2, 3, 4, grad=False), torch.tensor([[1, 1, 0], [1, 0, 0]]).bool()),
                    [(rand(3, 2, 4, seed=1, grad=False), torch.tensor([[1, 0], [1, 1], [0, 0]]).bool())])
        """, Ok, isolate=True),
    case("jit_trace-unsorted_example-max", f"""
        trace_check(lambda x, b: gp.readout(x, b, "max", num_graphs=3),
                    (rand(5, 4, grad=False), torch.tensor([2, 0, 1, 0, 2])), {NEW_BATCHES})
        """, Ok, isolate=True),
    case("jit_trace-float16-max", f"""
        trace_check(lambda x, b: gp.readout(x.half(), b, "max", num_graphs=3), {EXAMPLE},
                    {NEW_BATCHES})
        """, Ok, isolate=True),
    case("jit_trace-bad_batch_later_must_still_raise-max", """
        trace_check(lambda x, b: gp.readout(x, b, "max", num_graphs=3),
                    (rand(5, 4, grad=False), torch.tensor([0, 0, 1, 2, 2])),
                    [(rand(4, 4, seed=1, grad=False), torch.tensor([0, 1, 9, 2])),
                     (rand(4, 4, seed=2, grad=False), torch.tensor([0, -1, 1, 2]))])
        """, Ok, isolate=True),
    case("jit_trace-backward_on_new_inputs-max", """
        f = lambda x, b: gp.readout(x, b, "max", num_graphs=3)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                traced = torch.jit.trace(f, (rand(5, 4), torch.tensor([0, 0, 1, 2, 2])), check_trace=False)
        except GraphpoolError:
            traced = None
        if traced is not None:
            for x, b in [(data(7, 4, seed=1), torch.tensor([0, 1, 1, 1, 2, 2, 2])),
                         (data(6, 4, seed=3), torch.tensor([2, 0, 1, 0, 2, 1]))]:
                (g1,) = torch.autograd.grad(traced(x, b).sum(), x)
                (g2,) = torch.autograd.grad(f(x, b).sum(), x)
                assert diff(g1, g2) is None, "traced gradient != eager: " + str(diff(g1, g2))
        """, Ok, isolate=True),
    case("onnx_export_legacy-max-does_not_bake_trace_values", """
        need("onnx")
        import io as _io
        class M(torch.nn.Module):
            def forward(self, x, b):
                return gp.readout(x, b, "max", num_graphs=3)
        buf = _io.BytesIO()
        try:
            torch.onnx.export(M(), (rand(5, 4, grad=False), torch.tensor([0, 0, 1, 2, 2])), buf,
                              dynamo=False, input_names=["x", "b"],
                              dynamic_axes={"x": {0: "n"}, "b": {0: "n"}})
        except GraphpoolError:
            print("REFUSED UP FRONT")
        else:
            need("onnxruntime")
            import onnxruntime as ort
            sess = ort.InferenceSession(buf.getvalue())
            x, b = rand(7, 4, seed=1, grad=False), torch.tensor([2, 0, 1, 1, 2, 0, 1])
            got = torch.from_numpy(sess.run(None, {"x": x.numpy(), "b": b.numpy()})[0])
            assert diff(got, M()(x, b)) is None, diff(got, M()(x, b))
        """, Ok),
    case("onnx_export_legacy-sum-ptr", """
        need("onnx")
        class M(torch.nn.Module):
            def forward(self, x, p):
                return gp.readout(x, ptr=p, reduce="sum")
        import io as _io
        try:
            torch.onnx.export(M(), (rand(5, 4, grad=False), torch.tensor([0, 2, 5])), _io.BytesIO(),
                              dynamo=False)
        except GraphpoolError:
            print("REFUSED UP FRONT")
        """, Ok),
]
FUNC_COUNTS = (2, 0, 3, 1)
for op in ("sum", "mean", "max", "min"):
    for g in ("index-sorted", "ptr", "index-unsorted", "mask"):
        TRACING.append(case(f"torch.func.grad-{op}-{g}", f"""
            f = reader({g!r}, {FUNC_COUNTS}, {op!r})
            x, w = rand(6, 3, dtype=torch.float64, grad=False), rand(4, 3, dtype=torch.float64, seed=1, grad=False)
            loss = lambda x: (f(x) * w).sum()
            got = torch.func.grad(loss)(x)
            xr = x.clone().requires_grad_()
            (want,) = torch.autograd.grad(loss(xr), xr)
            assert diff(got, want) is None, diff(got, want)
            """, OkOrRaises(r"invalid 'x'"), isolate=True))
    for g in ("index-sorted", "ptr", "index-unsorted", "mask"):
        TRACING.append(case(f"torch.func.vmap-{op}-{g}", f"""
            f = reader({g!r}, {FUNC_COUNTS}, {op!r})
            xs = rand(5, 6, 3, grad=False)
            got = torch.func.vmap(f)(xs)
            want = torch.stack([f(x) for x in xs])
            assert diff(got, want) is None, diff(got, want)
            """, OkOrRaises(r"invalid 'x'"), isolate=True))
    for g in ("index-sorted", "ptr", "index-unsorted"):
        TRACING.append(case(f"torch.func.jvp-{op}-{g}", f"""
            f = reader({g!r}, {FUNC_COUNTS}, {op!r})
            x, t = rand(6, 3, dtype=torch.float64, grad=False), rand(6, 3, dtype=torch.float64, seed=1, grad=False)
            out, tangent = torch.func.jvp(f, (x,), (t,))
            eps = 1e-6
            fd = (f(x + eps * t) - f(x - eps * t)) / (2 * eps)
            assert diff(out, f(x)) is None, diff(out, f(x))
            torch.testing.assert_close(tangent, fd, atol=1e-6, rtol=1e-6)
            """, OkOrRaises(r"invalid 'x'"), isolate=True))
for name in ("powermean", "gem", "std", "var", "softmax", "logsumexp"):
    TRACING.append(case(f"jit_trace-index-num_graphs-{name}", f"""
        fn = lambda x, b: gp.readout(x.abs() + 0.5, b, {name!r}, num_graphs=3)
        with warnings.catch_warnings():  # the trace's own check (check_trace) runs it again
            warnings.simplefilter("ignore")
            torch.jit.trace(fn, {EXAMPLE})
        trace_check(fn, {EXAMPLE}, {NEW_BATCHES})
        """, Ok, isolate=True))
# jacobian(vectorize=True) runs the backward on gradients batched by the legacy vmap
# (is_grads_batched): no storage a kernel could read, so torch ops must run there
for grouping in ("index-sorted", "index-unsorted", "ptr", "uniform"):
    TRACING.append(case(f"jacobian_vectorize-{grouping}", f"""
        counts = (2, 0, 3, 1) if {grouping!r} != "uniform" else (2, 2, 2)
        read = {{op: reader({grouping!r}, counts, op) for op in OPS}}
        x = rand(6, 3, dtype=torch.float64, grad=False)
        for name in (*OPS, "std", "powermean", "softmax"):
            f = read[name] if name in OPS else (
                lambda x, name=name: gp.readout(x, index_of(counts), name,
                                                num_graphs=len(counts)))
            J = torch.autograd.functional.jacobian(f, x, vectorize=True)
            loop = torch.autograd.functional.jacobian(f, x)
            # the one-pass kernels and torch's ops round the statistics differently
            m = diff(J, loop) if name in OPS else close(J, loop)
            assert m is None, (name, m)
        """, Ok))

TRACING += [
    case("torch.func.jacrev-max-ptr", """
        ptr = ptr_of((2, 0, 3, 1))
        x = rand(6, 3, dtype=torch.float64, grad=False)
        f = lambda x: gp.readout(x, ptr=ptr, reduce="max")
        J = torch.func.jacrev(f)(x)
        Jr = torch.autograd.functional.jacobian(lambda x: torch_ref(x, groups_of((2, 0, 3, 1)), "max"), x)
        assert diff(J, Jr) is None, diff(J, Jr)
        """, OkOrRaises(r"invalid 'x'"), isolate=True),
    case("torch.func.hessian-mean-index", """
        idx = index_of((2, 0, 3, 1))
        x = rand(6, 2, dtype=torch.float64, grad=False)
        f = lambda x: (gp.readout(x, idx, "mean", num_graphs=4) ** 2).sum()
        H = torch.func.hessian(f)(x)
        Hr = torch.autograd.functional.hessian(lambda x: (torch_ref(x, groups_of((2, 0, 3, 1)), "mean") ** 2).sum(), x)
        torch.testing.assert_close(H, Hr)
        """, OkOrRaises(r"invalid 'x'"), isolate=True),
    case("torch.func.vmap-batch_mapped_too", """
        xs, bs = rand(3, 4, 2, grad=False), torch.tensor([[0, 0, 1, 1], [1, 0, 1, 0], [0, 1, 1, 1]])
        got = torch.func.vmap(lambda x, b: gp.readout(x, b, "max", num_graphs=2))(xs, bs)
        want = torch.stack([gp.readout(x, b, "max", num_graphs=2) for x, b in zip(xs, bs)])
        assert diff(got, want) is None, diff(got, want)
        """, OkOrRaises(r"invalid 'batch'"), isolate=True),
]
FX_NEWS = "[(rand(7, 4, seed=1, grad=False), torch.tensor([0, 1, 1, 1, 2, 2, 2])), (rand(4, 4, seed=2, grad=False), torch.tensor([2, 0, 0, 1]))]"
TRACING += [
    case("fx_symbolic_trace-model_calling_readout", f"""
        class M(torch.nn.Module):
            def forward(self, x, b):
                return gp.readout(x, b, "sum", num_graphs=3) * 2
        fx_check(M(), {FX_NEWS})
        """, Ok, isolate=True),
    case("fx_symbolic_trace-model_with_SumReadout", f"""
        class M(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.pool = gp.SumReadout()
            def forward(self, x, b):
                return self.pool(x, b, dim_size=3) + 1
        fx_check(M(), {FX_NEWS})
        """, Ok, isolate=True),
    case("fx_symbolic_trace-MaxReadout_as_root", f"""
        fx_check(gp.MaxReadout(), {FX_NEWS})
        """, Ok, isolate=True),
    case("fx_symbolic_trace-model_with_ptr", """
        class M(torch.nn.Module):
            def forward(self, x, p):
                return gp.readout(x, ptr=p, reduce="mean")
        fx_check(M(), [(rand(7, 4, grad=False), torch.tensor([0, 3, 7])),
                       (rand(2, 4, grad=False), torch.tensor([0, 0, 2]))])
        """, Ok, isolate=True),
]

# --------------------------------------------------------- 4. groupings that never go stale
FRESH: List[Case] = []
BATCH0 = "torch.tensor([0, 0, 1, 1, 2, 2])"
BATCH_WRITES = [  # each turns batch[2] from 1 into 0 (or permutes it), by another route
    ("setitem", "", "batch[2] = 0"),
    ("view_setitem", "", "v = batch[1:]; v[1] = 0"),
    ("inference_mode_setitem", "", "with torch.inference_mode(): batch[2] = 0"),
    ("dot_data_setitem", "", "batch.data[2] = 0"),
    ("numpy_write", "", "batch.numpy()[2] = 0"),
    ("from_numpy_array_write", "ARR = np.array([0, 0, 1, 1, 2, 2]); batch = torch.from_numpy(ARR)",
     "ARR[2] = 0"),
    ("from_dlpack_alias", "", "torch.from_dlpack(batch)[2] = 0"),
    ("set_storage_alias", "",
     "alias = torch.empty(0, dtype=torch.long).set_(batch.untyped_storage(), 0, batch.shape, batch.stride()); alias[2] = 0"),
    ("untyped_storage_byte", "", "batch.untyped_storage()[16] = 0"),
    ("untyped_storage_copy", "",
     "batch.untyped_storage().copy_(torch.tensor([0, 0, 0, 1, 2, 2]).untyped_storage())"),
    ("dot_data_rebind", "", "batch.data = torch.tensor([0, 0, 0, 1, 2, 2])"),
    ("numpy_unsort", "", "batch.numpy()[:] = [2, 0, 1, 0, 2, 1]"),
    ("dot_data_unsort", "", "batch.data[:] = torch.tensor([2, 0, 1, 0, 2, 1])"),
]
BATCH_WRITES += [
    ("set_rebind", "", "batch.set_(torch.tensor([0, 0, 0, 1, 2, 2]))"),
    ("copy_under_no_grad", "", "with torch.no_grad(): batch.copy_(torch.tensor([0, 0, 0, 1, 2, 2]))"),
    ("as_strided_same_storage", "batch = torch.tensor([0, 0, 1, 1, 2, 2, 9, 9])[:6]",
     "batch.as_strided_((6,), (1,), 2)"),  # now views [1, 1, 2, 2, 9, 9]: ids 1, 2, 9
    ("dot_data_as_strided", "batch = torch.tensor([0, 0, 1, 1, 2, 2, 9, 9])[:6]",
     "batch.data = batch.data.as_strided((6,), (1,), 1)"),  # [0, 1, 1, 2, 2, 9]
]
for wname, setup, write in BATCH_WRITES:
    for op in ("sum", "max"):
        FRESH.append(case(f"cache-batch-{wname}-{op}", f"""
            x = data(6, 3, seed=2, grad=False)
            {setup or "batch = " + BATCH0}
            for _ in range(2):
                gp.readout(x, batch, {op!r})
            {write}
            got = gp.readout(x, batch, {op!r})
            assert_same(got, naive(x, groups_of_index(batch, int(batch.max()) + 1), {op!r}), {op!r}, "readout after the write")
            """, Ok))
FRESH += [
    case("cache-batch-resize_", """
        x = data(6, 3, seed=2, grad=False)
        batch = torch.tensor([0, 0, 1, 1, 2, 2])
        gp.readout(x, batch, "sum"); gp.readout(x, batch, "sum")
        batch.resize_(4)
        assert_same(gp.readout(x[:4], batch, "sum"), naive(x[:4], groups_of((2, 2)), "sum"), "sum")
        """, Ok),
    case("cache-ptr-resize_", """
        x = data(6, 3, seed=2, grad=False)
        ptr = torch.tensor([0, 2, 4, 6])
        gp.readout(x, ptr=ptr); gp.readout(x, ptr=ptr)
        ptr.resize_(3)
        assert_same(gp.readout(x[:4], ptr=ptr), naive(x[:4], groups_of((2, 2)), "sum"), "sum")
        """, Ok),
    case("cache-batch-written_by_another_thread_between_readouts", """
        x = data(6, 3, seed=2, grad=False)
        batch = torch.tensor([0, 0, 1, 1, 2, 2])
        gp.readout(x, batch, "max"); gp.readout(x, batch, "max")
        t = threading.Thread(target=lambda: batch.numpy().__setitem__(2, 0)); t.start(); t.join()
        assert_same(gp.readout(x, batch, "max"), naive(x, groups_of((3, 1, 2)), "max"), "max")
        """, Ok),
]
for wname, setup, write in BATCH_WRITES[3:7] + BATCH_WRITES[10:11]:
    FRESH.append(case(f"cache-batch-{wname}-num_graphs_3-mean", f"""
        x = data(6, 3, seed=2, grad=False)
        {setup or "batch = " + BATCH0}
        gp.readout(x, batch, "mean", num_graphs=3)
        {write}
        got = gp.readout(x, batch, "mean", num_graphs=3)
        assert_same(got, naive(x, groups_of_index(batch, 3), "mean"), "mean", "readout after the write")
        """, Ok))
    FRESH.append(case(f"cache-batch-{wname}-MeanReadout_module", f"""
        x = data(6, 3, seed=2, grad=False)
        {setup or "batch = " + BATCH0}
        m = gp.MeanReadout()
        m(x, batch)
        {write}
        assert_same(m(x, batch), naive(x, groups_of_index(batch, 3), "mean"), "mean", "module after the write")
        """, Ok))
PTR0 = "torch.tensor([0, 2, 4, 6])"
PTR_WRITES = [  # each turns ptr[1] from 2 into 3
    ("setitem", "", "ptr[1] = 3"),
    ("dot_data_setitem", "", "ptr.data[1] = 3"),
    ("numpy_write", "", "ptr.numpy()[1] = 3"),
    ("from_numpy_array_write", "ARR = np.array([0, 2, 4, 6]); ptr = torch.from_numpy(ARR)", "ARR[1] = 3"),
    ("from_dlpack_alias", "", "torch.from_dlpack(ptr)[1] = 3"),
    ("set_storage_alias", "",
     "alias = torch.empty(0, dtype=torch.long).set_(ptr.untyped_storage(), 0, ptr.shape, ptr.stride()); alias[1] = 3"),
    ("untyped_storage_byte", "", "ptr.untyped_storage()[8] = 3"),
    ("dot_data_rebind", "", "ptr.data = torch.tensor([0, 3, 4, 6])"),
]
for wname, setup, write in PTR_WRITES:
    for op in ("sum", "max"):
        FRESH.append(case(f"cache-ptr-{wname}-{op}", f"""
            x = data(6, 3, seed=2, grad=False)
            {setup or "ptr = " + PTR0}
            for _ in range(2):
                gp.readout(x, ptr=ptr, reduce={op!r})
            {write}
            got = gp.readout(x, ptr=ptr, reduce={op!r})
            assert_same(got, naive(x, groups_of_ptr(ptr), {op!r}), {op!r}, "readout after the write")
            """, Ok))
FRESH.append(case("cache-batch-freed_and_id_reused", """
    x = data(6, 3, seed=2, grad=False)
    for k in range(20):
        batch = torch.tensor([0, 0, 1, 1, 2, 2]) if k % 2 == 0 else torch.tensor([0, 1, 1, 1, 1, 2])
        got = gp.readout(x, batch, "sum")
        assert_same(got, naive(x, groups_of_index(batch, 3), "sum"), "sum", f"round {k}")
        del batch
    """, Ok))
FWD_BWD = [  # (grouping, tensor, the call, groups before the write, index to write, new value)
    ("index_sorted", BATCH0, "gp.readout(x, T, OP)", "groups_of_index(T, 3)", 2, 0),
    ("index_unsorted", "torch.tensor([2, 0, 1, 0, 2, 1])", "gp.readout(x, T, OP)",
     "groups_of_index(T, 3)", 0, 1),
    ("ptr", PTR0, "gp.readout(x, ptr=T, reduce=OP)", "groups_of_ptr(T)", 1, 3),
]
for gname, tensor, call, groups_expr, i, v in FWD_BWD:
    for wname, write in [("setitem", f"T[{i}] = {v}"), ("dot_data", f"T.data[{i}] = {v}"),
                         ("numpy", f"T.numpy()[{i}] = {v}")]:
        for warm in ("cold", "warm_cache"):
            for op in ("sum", "max"):
                FRESH.append(case(f"write_between_forward_and_backward-{gname}-{wname}-{warm}-{op}", f"""
                    OP = {op!r}
                    x, w = data(6, 3, seed=2), rand(3, 3, seed=3, grad=False)
                    T = {tensor}
                    before = {groups_expr}
                    if {warm == "warm_cache"}:
                        {call.replace("x,", "x.detach(),")}
                    out = {call}
                    {write}
                    try:
                        (g,) = torch.autograd.grad(out, x, w)
                    except GraphpoolError:
                        print("RAISED")
                    except RuntimeError as err:
                        assert "inplace operation" in str(err), err   # autograd's own check
                        print("RAISED")
                    else:
                        xr = x.detach().clone().requires_grad_()
                        (want,) = torch.autograd.grad(torch_ref(xr, before, OP), xr, w)
                        assert diff(g, want) is None, "gradient not that of the forward's grouping: " + str(diff(g, want))
                    """, Ok))
DERIVED = [  # (grouping, constructor, x, groups)
    ("index_sorted", "Segments.from_index(torch.tensor([0, 0, 1, 1, 2, 2]), 3)", "data(6, 3, grad=False)",
     "groups_of((2, 2, 2))", ("counts", "ptr", "index")),
    ("index_unsorted", "Segments.from_index(torch.tensor([2, 0, 1, 0, 2, 1]), 3)", "data(6, 3, grad=False)",
     "groups_of_index(torch.tensor([2, 0, 1, 0, 2, 1]), 3)", ("counts", "index")),
    ("ptr", "Segments.from_ptr(torch.tensor([0, 1, 4, 6]))", "data(6, 3, grad=False)",
     "groups_of((1, 3, 2))", ("counts", "ptr", "index")),
    ("uniform", "Segments.uniform(3, 2)", "data(6, 3, grad=False)", "groups_of((2, 2, 2))",
     ("counts", "ptr", "index")),
]
MUTATE = {"counts": "t.fill_(1)", "ptr": "t.zero_()", "index": "t.fill_(0)", "mask": "t.fill_(True)"}
for gname, ctor, xexpr, groups_expr, attrs in DERIVED:
    for attr in attrs:
        for op in ("mean", "max"):
            FRESH.append(case(f"derived_tensor-{gname}-.{attr}-written-{op}", f"""
                seg = {ctor}
                x = {xexpr}
                gp.segment_reduce(x, seg, {op!r})
                t = seg.{attr}
                {MUTATE[attr]}
                got = gp.segment_reduce(x, seg, {op!r})
                assert_same(got, naive(x, {groups_expr}, {op!r}), {op!r}, "readout after writing seg.{attr}")
                """, Ok))
for attr in ("counts", "mask", "index"):
    FRESH.append(case(f"derived_tensor-mask-.{attr}-written-mean", f"""
        m = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 0, 0]]).bool()
        seg = Segments.from_mask(m)
        x = data(3, 3, 2, grad=False)
        x[~m] = float("nan")
        t = seg.{attr}
        {MUTATE[attr]}
        got = gp.segment_reduce(x, seg, "mean")
        want = torch.stack([x[b][m[b]].double().mean(0) if m[b].any() else torch.zeros(2, dtype=torch.float64)
                            for b in range(3)]).float()
        assert_same(got, want, "mean", "readout after writing seg.{attr}")
        """, Ok))
for attr in ("counts", "ptr", "index"):
    FRESH.append(case(f"derived_tensor-cached_as_segments-.{attr}-written-mean", f"""
        x = data(6, 3, grad=False)
        batch = torch.tensor([0, 0, 1, 1, 1, 2])
        t = gp.as_segments(x, batch).{attr}
        {MUTATE[attr]}
        got = gp.readout(x, batch, "mean")
        assert_same(got, naive(x, groups_of((2, 3, 1)), "mean"), "mean", "readout after writing .{attr}")
        """, Ok))

# ------------------------------------------------------- 5. promises and arguments checked
ARGS: List[Case] = []
for sname, sv in [("int_1", "1"), ("numpy_bool", "np.bool_(True)"), ("tensor_true", "torch.tensor(True)"),
                  ("string_yes", "'yes'"), ("float_1", "1.0"), ("list_true", "[True]")]:
    for validate in (True, False):
        ARGS.append(case(f"sorted={sname}-unsorted_index-validate_{validate}", f"""
            idx = torch.tensor([1, 0, 1, 0, 2])
            x = rand(5, 3, grad=False)
            seg = Segments.from_index(idx, 3, sorted={sv}, validate={validate})
            assert_same(gp.segment_reduce(x, seg, "max"), naive(x, groups_of_index(idx, 3), "max"), "max")
            """, OkOrRaises(r"invalid 'sorted'")))
for vname, vv in [("string_no", "'no'"), ("int_0", "0"), ("none", "None"), ("numpy_false", "np.bool_(False)"),
                  ("string_False", "'False'")]:
    ARGS.append(case(f"validate={vname}-readout", f"""
        x, batch = rand(4, 3, grad=False), torch.tensor([0, 0, 1, 1])
        assert_same(gp.readout(x, batch, "sum", validate={vv}), naive(x, groups_of((2, 2)), "sum"), "sum")
        """, OkOrRaises(r"invalid 'validate'")))
ARGS.append(case("validate=string_no-MaxReadout_module", """
    x, batch = rand(4, 3, grad=False), torch.tensor([0, 0, 1, 1])
    assert_same(gp.MaxReadout(validate="no")(x, batch), naive(x, groups_of((2, 2)), "max"), "max")
    """, OkOrRaises(r"invalid 'validate'")))
NUM_GRAPHS = [("list", "[3]", False), ("numpy_int64", "np.int64(3)", True), ("float_3.0", "3.0", True),
              ("float_3.5", "3.5", False), ("negative", "-1", False), ("bool_true", "True", False),
              ("tensor_0d", "torch.tensor(3)", True), ("tensor_1d", "torch.tensor([3])", False),
              ("string", "'3'", False), ("too_small", "2", False), ("float_tensor", "torch.tensor(3.0)", False)]
for bname, batch in [("sorted", "torch.tensor([0, 0, 1, 2])"), ("unsorted", "torch.tensor([2, 0, 1, 0])")]:
    for nname, nv, may_work in NUM_GRAPHS:
        check = ("assert_same(out, naive(x, groups_of_index(batch, 3), 'max'), 'max')" if may_work else "")
        ARGS.append(case(f"num_graphs={nname}-{bname}_batch", f"""
            x, batch = rand(4, 3, grad=False), {batch}
            out = gp.readout(x, batch, "max", num_graphs={nv})
            {check}
            """, OkOrRaises(NAME_NUM) if may_work else Raises(NAME_NUM)))
ARGS += [
    case("num_graphs-with_ptr_disagreeing", """
        gp.readout(rand(4, 3, grad=False), ptr=torch.tensor([0, 2, 3, 4]), num_graphs=5)
        """, Raises(r"invalid 'num_graphs'")),
    case("num_graphs=string-with_ptr", """
        gp.readout(rand(4, 3, grad=False), ptr=torch.tensor([0, 2, 3, 4]), num_graphs="3")
        """, Raises(r"invalid 'num_graphs'")),
    case("dim_size=list-MaxReadout_module", """
        gp.MaxReadout()(rand(4, 3, grad=False), torch.tensor([0, 0, 1, 2]), dim_size=[3])
        """, Raises(r"^MaxReadout: invalid 'dim_size'")),
]
for pname, pv in [("list", "[0, 2, 4]"), ("tuple", "(0, 2, 4)"), ("numpy", "np.array([0, 2, 4])"),
                  ("float_tensor", "torch.tensor([0., 2., 4.])"), ("2d", "torch.tensor([[0, 2, 4]])"),
                  ("empty", "torch.tensor([], dtype=torch.long)"), ("bool", "torch.tensor([False, True, True])"),
                  ("last_not_N", "torch.tensor([0, 2, 3])"), ("decreasing", "torch.tensor([0, 3, 2, 4])"),
                  ("meta", "torch.tensor([0, 2, 4], device='meta')"), ("complex", "torch.tensor([0, 2, 4]) + 0j")]:
    ARGS.append(case(f"ptr={pname}", f"""
        print(gp.readout(rand(4, 3, grad=False), ptr={pv}))
        """, Raises(NAME_PTR)))
ARGS += [  # docs/core.md: index and ptr together (PyG passes both): the ptr is used, checked
    case("ptr-and-batch-agreeing", """
        x = rand(4, 3, grad=False)
        out = gp.readout(x, torch.tensor([0, 0, 1, 1]), "max", ptr=torch.tensor([0, 2, 4]))
        assert_same(out, naive(x, groups_of((2, 2)), "max"), "max")
        """, Ok),
    case("ptr-and-batch-disagreeing", """
        gp.readout(rand(4, 3, grad=False), torch.tensor([0, 0, 1, 1]), ptr=torch.tensor([0, 1, 4]))
        """, Raises(NAME_PTR)),
    case("ptr-and-batch-disagreeing-validate_false_trusts_ptr", """
        x = rand(4, 3, grad=False)
        out = gp.readout(x, torch.tensor([0, 0, 1, 1]), "sum", ptr=torch.tensor([0, 1, 4]), validate=False)
        assert_same(out, naive(x, groups_of((1, 3)), "sum"), "sum")
        """, Ok),
    case("num_graphs-and-size-disagreeing", """
        gp.readout(rand(4, 3, grad=False), torch.tensor([0, 0, 1, 1]), num_graphs=2, size=3)
        """, Raises(r"^readout: invalid '(size|num_graphs)'")),
    case("size=list-sum_readout", """
        gp.sum_readout(rand(4, 3, grad=False), torch.tensor([0, 0, 1, 1]), [2])
        """, Raises(r"^sum_readout: invalid 'size'")),
    case("size=float-max_readout", """
        gp.max_readout(rand(4, 3, grad=False), torch.tensor([0, 0, 1, 1]), 2.5)
        """, Raises(r"^max_readout: invalid 'size'")),
    case("size-too_small-mean_readout", """
        gp.mean_readout(rand(4, 3, grad=False), torch.tensor([0, 0, 1, 1]), 1)
        """, Raises(r"^mean_readout: invalid 'size'")),
]
RB = r"^readout: invalid 'batch'"
for bname, bv, rx in [("list", "[0, 0, 1, 1]", RB), ("numpy", "np.array([0, 0, 1, 1])", RB),
                      ("float_tensor", "torch.tensor([0., 0., 1., 1.])", RB),
                      ("2d", "torch.tensor([[0, 0, 1, 1]])", RB),
                      ("bool", "torch.tensor([False, False, True, True])", RB),
                      ("complex", "torch.tensor([0, 0, 1, 1]) + 0j", RB), ("string", "'batch'", RB),
                      ("negative_id", "torch.tensor([0, -1, 1, 1])", RB),
                      ("shorter_than_x", "torch.tensor([0, 0, 1])", r"^readout: invalid '(batch|x)'"),
                      ("longer_than_x", "torch.tensor([0, 0, 1, 1, 1])", r"^readout: invalid '(batch|x)'")]:
    ARGS.append(case(f"batch={bname}", f"""
        print(gp.readout(rand(4, 3, grad=False), {bv}))
        """, Raises(rx)))
FILLS = [("complex", "1j", "float32", "max", False), ("string", "'0'", "float32", "max", False),
         ("none", "None", "float32", "max", False), ("1e10_float16", "1e10", "float16", "max", False),
         ("1e10_float16_sum", "1e10", "float16", "sum", False), ("1e39_float32", "1e39", "float32", "max", False),
         ("1e39_bfloat16", "1e39", "bfloat16", "min", False), ("300_int8", "300", "int8", "max", False),
         ("minus_129_int8", "-129", "int8", "min", False), ("nan_int64", "float('nan')", "int64", "max", False),
         ("inf_int32", "float('inf')", "int32", "max", False), ("2**63_int64", "2**63", "int64", "sum", False),
         ("minus_1_uint8", "-1", "uint8", "max", False), ("1.5_int64", "1.5", "int64", "max", False),
         ("tensor_0d", "torch.tensor(1.0)", "float32", "max", True),
         ("numpy_float32", "np.float32(2.5)", "float32", "max", True),
         ("inf_float16_representable", "float('inf')", "float16", "max", True),
         ("65504_float16_representable", "65504.0", "float16", "max", True)]
for fname, fv, dt, op, may_work in FILLS:
    check = (f"assert_same(out, naive(x, groups_of_index(batch, 3), {op!r}, fill=float({fv})), {op!r})"
             if may_work else "print(out)")
    ARGS.append(case(f"fill_value={fname}-{op}", f"""
        x, batch = data(4, 3, dtype=torch.{dt}, low=0, high=5, grad=False), torch.tensor([0, 0, 2, 2])
        out = gp.readout(x, batch, {op!r}, num_graphs=3, fill_value={fv})
        {check}
        """, (Ok if fname.endswith("representable") else OkOrRaises(r"invalid 'fill_value'"))
        if may_work else Raises(r"invalid 'fill_value'")))
for dname, expr in [("uniform-bogus", "Segments.uniform(2, 3, device='bogus')"),
                    ("uniform-cuda99", "Segments.uniform(2, 3, device='cuda:99')"),
                    ("uniform-cuda", "Segments.uniform(2, 3, device='cuda')"),
                    ("uniform-int_7", "Segments.uniform(2, 3, device=7)"),
                    ("uniform-float", "Segments.uniform(2, 3, device=1.5)"),
                    ("uniform-mps", "Segments.uniform(2, 3, device='mps')"),
                    ("to-bogus", "Segments.uniform(2, 3).to('bogus')"),
                    ("to-cuda", "Segments.uniform(2, 3).to('cuda')"),
                    ("to-int_3", "Segments.uniform(2, 3).to(3)"),
                    ("to-none", "Segments.uniform(2, 3).to(None)"),
                    ("index_segments-to-gpu", "Segments.from_index(torch.tensor([0, 1])).to('gpu')")]:
    ARGS.append(case(f"device-{dname}", f"""
        seg = {expr}
        print(gp.segment_reduce(torch.ones(6, 2), seg, "sum"))
        """, Raises(r"invalid 'device'")))
ARGS += [
    case("meta-x-batch_cpu", """
        gp.readout(torch.randn(4, 3, device="meta"), torch.tensor([0, 0, 1, 1]))
        """, Raises(r"^readout: invalid '(x|batch)'")),
    case("meta-x-batch_meta", """
        gp.readout(torch.randn(4, 3, device="meta"), torch.tensor([0, 0, 1, 1], device="meta"), num_graphs=2)
        """, Raises(r"invalid '(x|batch|index)'")),
    case("meta-x-batch_meta-validate_false", """
        gp.readout(torch.randn(4, 3, device="meta"), torch.tensor([0, 0, 1, 1], device="meta"),
                   num_graphs=2, validate=False)
        """, Raises(r"invalid '(x|batch|index)'")),
    case("meta-x-alone", """
        out = gp.readout(torch.randn(4, 3, device="meta"), reduce="max")
        assert out.device.type == "meta" and tuple(out.shape) == (1, 3), out
        """, OkOrRaises(r"invalid 'x'")),
    case("meta-x-cpu_segments", """
        gp.segment_reduce(torch.randn(4, 3, device="meta"), Segments.from_index(torch.tensor([0, 0, 1, 1])), "max")
        """, Raises(r"invalid '(x|batch|segments)'")),
    case("meta-batch-x_cpu", """
        gp.readout(torch.randn(4, 3), torch.tensor([0, 0, 1, 1], device="meta"))
        """, Raises(r"^readout: invalid 'batch'")),
    case("meta-Segments.from_index", """
        Segments.from_index(torch.tensor([0, 1], device="meta"), 2)
        """, Raises(r"invalid 'index'")),
    case("meta-Segments.from_ptr", """
        Segments.from_ptr(torch.tensor([0, 1, 2], device="meta"))
        """, Raises(r"invalid 'ptr'")),
    case("meta-Segments.from_mask", """
        Segments.from_mask(torch.ones(2, 3, dtype=torch.bool, device="meta"))
        """, Raises(r"invalid 'mask'")),
]
for xname, call, rx in [
        ("bool", "gp.readout(torch.ones(4, 3, dtype=torch.bool), torch.tensor([0, 0, 1, 1]))", r"invalid 'x'"),
        ("complex", "gp.readout(torch.ones(4, 3, dtype=torch.complex64), torch.tensor([0, 0, 1, 1]))", r"invalid 'x'"),
        ("complex_alone", "gp.readout(torch.ones(4, 3, dtype=torch.complex64), reduce='max')", r"invalid 'x'"),
        ("0_dims", "gp.readout(torch.tensor(1.), torch.tensor([0]))", r"invalid 'x'"),
        ("0_dims_alone", "gp.readout(torch.tensor(1.))", r"invalid 'x'"),
        ("list", "gp.readout([[1., 2.]] * 4, torch.tensor([0, 0, 1, 1]))", r"invalid 'x'"),
        ("numpy", "gp.readout(np.ones((4, 3)), torch.tensor([0, 0, 1, 1]))", r"invalid 'x'"),
        ("numpy_alone", "gp.readout(np.ones((4, 3)))", r"invalid 'x'"),
        ("sparse", "gp.readout(torch.ones(4, 3).to_sparse(), torch.tensor([0, 0, 1, 1]))", r"invalid 'x'"),
        ("rows_mismatch_batch", "gp.readout(torch.ones(5, 3), torch.tensor([0, 0, 1, 1]))", r"^readout: invalid '(x|batch)'"),
        ("rows_mismatch_ptr", "gp.readout(torch.ones(5, 3), ptr=torch.tensor([0, 2, 4]))", r"^readout: invalid '(x|ptr)'"),
        ("mask_shape", "gp.segment_reduce(torch.ones(2, 3, 3), Segments.from_mask(torch.ones(2, 4, dtype=torch.bool)))", r"invalid 'x'"),
        ("uniform_rows", "gp.segment_reduce(torch.ones(5, 3), Segments.uniform(2, 3))", r"invalid 'x'"),
        ("int_mean_via_module", "gp.MeanReadout()(torch.ones(4, 3, dtype=torch.int32), torch.tensor([0, 0, 1, 1]))", r"invalid 'x'")]:
    if call.startswith("gp.readout") and not rx.startswith("^"):
        rx = "^readout: " + rx
    ARGS.append(case(f"x-{xname}", f"""
        print({call})
        """, Raises(rx)))
ARGS += [  # inputs the promise accepts: each must give the loop's answer
    case("x-1_dim_with_batch-one_value_per_node", """
        x = data(4, grad=False)
        out = gp.readout(x, torch.tensor([0, 0, 1, 1]), "max")
        assert_same(out, naive(x.unsqueeze(-1), groups_of((2, 2)), "max").squeeze(-1), "max")
        """, Ok),
    case("x-1_dim_with_ptr-one_value_per_node", """
        x = data(4, grad=False)
        out = gp.readout(x, ptr=torch.tensor([0, 1, 4]), reduce="sum")
        assert_same(out, naive(x.unsqueeze(-1), groups_of((1, 3)), "sum").squeeze(-1), "sum")
        """, Ok),
    case("x-1_dim_alone", """
        x = data(4, grad=False)
        out = gp.readout(x, reduce="min")
        assert_same(out, naive(x.unsqueeze(-1), groups_of((4,)), "min").squeeze(-1), "min")
        """, Ok),
    case("x-1_dim-MeanReadout_module-with_grad", """
        x = data(5)
        out = gp.MeanReadout()(x, torch.tensor([1, 0, 1, 0, 1]))
        assert_same(out, naive(x.unsqueeze(-1), groups_of_index(torch.tensor([1, 0, 1, 0, 1]), 2), "mean").squeeze(-1), "mean")
        out.sum().backward()
        assert_same(x.grad, torch.tensor([1/3, 1/2, 1/3, 1/2, 1/3]), "mean", "gradient")
        """, Ok),
    case("module-dim_0-heads_layout", """
        x = data(6, 2, 3, grad=False)      # GATConv's [E, heads, C] on dim=0
        idx = torch.tensor([0, 0, 2, 1, 2, 2])
        out = gp.MaxReadout()(x, idx, dim=0)
        want = naive(x.reshape(6, 6), groups_of_index(idx, 3), "max").reshape(3, 2, 3)
        assert_same(out, want, "max")
        """, Ok),
    case("module-dim_1-leading_batch_dim", """
        x = data(2, 6, 3, grad=False)
        idx = torch.tensor([0, 0, 1, 1, 1, 2])
        out = gp.SumReadout()(x, idx, dim=1)
        assert_same(out, naive(x, groups_of((2, 3, 1)), "sum"), "sum")
        """, Ok),
    case("module-dim_out_of_range", """
        gp.SumReadout()(torch.ones(6, 3), torch.tensor([0, 0, 1, 1, 1, 2]), dim=5)
        """, Raises(r"^SumReadout: invalid 'dim'")),
    case("module-dim_float", """
        gp.SumReadout()(torch.ones(6, 3), torch.tensor([0, 0, 1, 1, 1, 2]), dim=0.5)
        """, Raises(r"^SumReadout: invalid 'dim'")),
    case("no_grouping-3_dims-returns_[*,F]", """
        x = data(2, 5, 3, grad=False)
        assert_same(gp.sum_readout(x), naive(x, groups_of((5,)), "sum").squeeze(-2), "sum")
        """, Ok),
    case("batch-pyg_Index_subclass", """
        from torch_geometric import Index
        x = data(4, 3, grad=False)
        b = Index(torch.tensor([0, 0, 1, 1]), dim_size=2, is_sorted=True)
        assert_same(gp.readout(x, b, "max"), naive(x, groups_of((2, 2)), "max"), "max")
        """, Ok),
    case("batch-pyg_Index_unsorted", """
        from torch_geometric import Index
        x = data(4, 3, grad=False)
        b = Index(torch.tensor([1, 0, 1, 0]), dim_size=2)
        assert_same(gp.readout(x, b, "min"), naive(x, groups_of_index(torch.tensor([1, 0, 1, 0]), 2), "min"), "min")
        """, Ok),
    case("x-tensor_subclass", """
        class MyTensor(torch.Tensor):
            pass
        x = data(4, 3, grad=False)
        out = gp.readout(x.as_subclass(MyTensor), torch.tensor([0, 0, 1, 1]), "max")
        assert_same(torch.Tensor(out) if not type(out) is torch.Tensor else out, naive(x, groups_of((2, 2)), "max"), "max")
        """, OkOrRaises(r"^readout: invalid 'x'")),
    case("x-parameter", """
        x = torch.nn.Parameter(data(4, 3))
        out = gp.readout(x, ptr=torch.tensor([0, 3, 4]), reduce="max")
        assert_same(out.detach(), naive(x, groups_of((3, 1)), "max"), "max")
        """, Ok),
    case("inference_mode-x_and_batch", """
        with torch.inference_mode():
            x = data(6, 3, grad=False)
            b = torch.tensor([0, 0, 1, 1, 2, 2])
            for _ in range(2):
                out = gp.readout(x, b, "mean")
            b[2] = 0
            out = gp.readout(x, b, "mean")
        assert_same(out, naive(x, groups_of_index(torch.tensor([0, 0, 0, 1, 2, 2]), 3), "mean"), "mean")
        """, Ok),
    case("batch-strided_view", """
        x = data(4, 3, grad=False)
        b = torch.tensor([0, 9, 0, 9, 1, 9, 1, 9])[::2]
        assert_same(gp.readout(x, b, "max"), naive(x, groups_of((2, 2)), "max"), "max")
        """, Ok),
    case("batch-expanded_stride_0", """
        x = data(4, 3, grad=False)
        b = torch.tensor([0]).expand(4)
        assert_same(gp.readout(x, b, "sum"), naive(x, groups_of((4,)), "sum"), "sum")
        """, Ok),
    case("ptr-strided_view", """
        x = data(4, 3, grad=False)
        p = torch.tensor([0, 7, 1, 7, 4, 7])[::2]
        assert_same(gp.readout(x, ptr=p, reduce="min"), naive(x, groups_of((1, 3)), "min"), "min")
        """, Ok),
    case("Segments-deepcopy_and_pickle", """
        import copy, pickle
        x = data(6, 3, grad=False)
        for seg in [Segments.from_index(torch.tensor([2, 0, 1, 0, 2, 1]), 3), Segments.from_ptr(torch.tensor([0, 1, 4, 6])),
                    Segments.uniform(3, 2), Segments.from_index(torch.tensor([0, 0, 1, 1, 2, 2]), 4)]:
            want = gp.segment_reduce(x, seg, "max")
            for clone in (copy.deepcopy(seg), pickle.loads(pickle.dumps(seg))):
                assert diff(gp.segment_reduce(x, clone, "max"), want) is None
        """, Ok),
    case("fill_value-given_without_empty_sets-still_checked", """
        gp.readout(data(4, 3, dtype=torch.float16, grad=False), torch.tensor([0, 0, 1, 1]), "max", fill_value=1e10)
        """, OkOrRaises(r"^readout: invalid 'fill_value'")),
]
ARGS += [
    case("distributed_readout-no_process_group", """
        from graphpool.distributed import distributed_readout
        print(distributed_readout(torch.ones(3, 2), torch.tensor([0, 0, 1]), "sum", num_sets=2))
        """, Raises(r"^distributed_readout: invalid 'group'.*init")),
    case("run_onnx-program=list", """
        from graphpool.export import run_onnx
        print(run_onnx([1, 2], torch.ones(2)))
        """, Raises(r"^run_onnx: invalid 'program'")),
    case("batch=sparse", """
        print(gp.readout(torch.ones(4, 2), torch.tensor([0, 0, 1, 1]).to_sparse()))
        """, Raises(r"^readout: invalid 'batch'")),
    case("fill_value=Fraction", """
        from fractions import Fraction
        x, b = data(4, 2, grad=False), torch.tensor([0, 0, 2, 2])
        out = gp.readout(x, b, "max", fill_value=Fraction(1, 4))
        assert_same(out, naive(x, groups_of_index(b, 3), "max", fill=0.25), "max")
        """, OkOrRaises(r"^readout: invalid 'fill_value'")),
    case("fill_value=10**400-float32", """
        print(gp.readout(torch.ones(4, 2), torch.tensor([0, 0, 2, 2]), "max", fill_value=10**400))
        """, Raises(r"^readout: invalid 'fill_value'")),
    case("fill_value=10**400-int64", """
        print(gp.readout(torch.ones(4, 2, dtype=torch.long), torch.tensor([0, 0, 2, 2]), "max", fill_value=10**400))
        """, Raises(r"^readout: invalid 'fill_value'")),
    case("device-Segments.to_cpu:0-is_the_cpu", """
        x = data(6, 2, grad=False)
        out = gp.segment_reduce(x, Segments.uniform(2, 3).to("cpu:0"), "sum")
        assert_same(out, naive(x, groups_of((3, 3)), "sum"), "sum")
        """, Ok),
    case("device-Segments.from_index.to_cpu:0-readout", """
        x = data(6, 2, grad=False)
        seg = Segments.from_index(torch.tensor([0, 0, 1, 1, 1, 2])).to(torch.device("cpu", 0))
        assert_same(gp.readout(x, seg, "max"), naive(x, groups_of((2, 3, 1)), "max"), "max")
        """, Ok),
    case("device-uniform-cpu:5", """
        x = data(6, 2, grad=False)
        out = gp.segment_reduce(x, Segments.uniform(2, 3, device="cpu:5"), "sum")
        assert_same(out, naive(x, groups_of((3, 3)), "sum"), "sum")
        """, OkOrRaises(r"invalid 'device'")),
    case("device-segments_on_meta-segment_reduce_names_segments", """
        gp.segment_reduce(torch.ones(6, 2), Segments.uniform(2, 3).to("meta"), "sum")
        """, Raises(r"^segment_reduce: invalid '(segments|x)'")),
    case("device-segments_on_meta-SumReadout_names_index", """
        gp.SumReadout()(torch.ones(6, 2), Segments.uniform(2, 3).to("meta"))
        """, Raises(r"^SumReadout: invalid '(index|x)'")),
    case("x-float8_e4m3fn", """
        print(gp.readout(torch.ones(4, 2).to(torch.float8_e4m3fn), torch.tensor([0, 0, 2, 2]), "max"))
        """, Raises(r"^readout: invalid 'x'")),
    case("x-quantized_quint8", """
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            q = torch.quantize_per_tensor(torch.ones(4, 2), 0.1, 0, torch.quint8)
        print(gp.readout(q, torch.tensor([0, 0, 2, 2]), "max"))
        """, Raises(r"^readout: invalid 'x'")),
    case("x-nested_tensor", """
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nt = torch.nested.nested_tensor([torch.ones(2, 2), torch.ones(3, 2)])
        print(gp.readout(nt, torch.tensor([0, 0, 2, 2])))
        """, Raises(r"^readout: invalid 'x'")),
]
for dt, op in [("uint16", "max"), ("uint32", "sum"), ("uint64", "min")]:
    ARGS.append(case(f"x-{dt}-{op}", f"""
        x, b = data(4, 2, dtype=torch.long, low=0, high=9, grad=False), torch.tensor([0, 0, 2, 2])
        out = gp.readout(x.to(torch.{dt}), b, {op!r}, fill_value=3)
        assert out.dtype == torch.{dt}, out.dtype
        assert_same(out.long(), naive(x, groups_of_index(b, 3), {op!r}, fill=3), {op!r})
        """, OkOrRaises(r"^readout: invalid 'x'")))
for dt in ("int32", "int16", "int8", "uint8"):
    ARGS.append(case(f"batch-dtype_{dt}", f"""
        x = data(5, 3, grad=False)
        b = torch.tensor([2, 0, 1, 0, 2], dtype=torch.{dt})
        assert_same(gp.readout(x, b, "max"), naive(x, groups_of_index(b.long(), 3), "max"), "max")
        """, Ok))
ARGS.append(case("ptr-dtype_int32", """
    x = data(5, 3, grad=False)
    assert_same(gp.readout(x, ptr=torch.tensor([0, 2, 2, 5], dtype=torch.int32), reduce="mean"),
                naive(x, groups_of((2, 0, 3)), "mean"), "mean")
    """, Ok))
for rname, rv in [("medoid", "'medoid'"), ("none", "None"), ("int", "3"), ("empty", "''"),
                  ("callable", "torch.sum"), ("padded", "' sum'")]:
    ARGS.append(case(f"reduce={rname}", f"""
        gp.readout(torch.ones(4, 3), torch.tensor([0, 0, 1, 1]), {rv})
        """, Raises(r"^readout: invalid 'reduce'")))
SIZES = [
    ("num_graphs_2**62-sorted", "gp.readout(torch.ones(3, 2), torch.tensor([0, 0, 1]), 'sum', num_graphs=2**62)", False),
    ("num_graphs_2**62-unsorted", "gp.readout(torch.ones(3, 2), torch.tensor([1, 0, 0]), 'max', num_graphs=2**62)", False),
    ("num_graphs_2**62-validate_false", "gp.readout(torch.ones(3, 2), torch.tensor([0, 0, 1]), 'mean', num_graphs=2**62, validate=False)", False),
    ("num_graphs_2**62-zero_features", "gp.readout(torch.ones(3, 0), torch.tensor([0, 0, 1]), 'sum', num_graphs=2**62)", True),
    ("num_segments_2**62-Segments.from_index", "Segments.from_index(torch.tensor([0, 0, 1]), 2**62)", True),
    ("segments_2**62-uniform_readout", "gp.segment_reduce(torch.ones(0, 2), Segments.uniform(2**62, 0), 'max')", False),
    ("num_graphs_1e9-zero_features", "gp.readout(torch.ones(3, 0), torch.tensor([0, 0, 1]), 'sum', num_graphs=10**9)", True),
    ("num_graphs_1e9-zero_features-validate_false", "gp.readout(torch.ones(3, 0), torch.tensor([0, 0, 1]), 'max', num_graphs=10**9, validate=False)", True),
    ("num_graphs_1e9-zero_features-unsorted", "gp.readout(torch.ones(3, 0), torch.tensor([1, 0, 0]), 'sum', num_graphs=10**9)", True),
    ("num_graphs_1e9-one_feature-sum", "gp.readout(torch.ones(3, 1), torch.tensor([0, 0, 1]), 'sum', num_graphs=10**9)", True),
    ("num_graphs_1e9-one_feature-max", "gp.readout(torch.ones(3, 1), torch.tensor([0, 0, 1]), 'max', num_graphs=10**9)", True),
    ("num_segments_1e9-Segments.from_index", "Segments.from_index(torch.tensor([0, 0, 1]), 10**9)", True),
]
for sname, call, may_work in SIZES:
    region = "num_segments" if "segments" in sname else "num_graphs"
    seg_rx = r"^segment_reduce: invalid 'segments'" if sname.startswith("segments") else r"invalid 'num_segments'"
    ARGS.append(case(f"size-{sname}", f"""
        limit_memory(3)    # the host is shared: the address space may grow by 3 GiB at most
        t0 = time.time()
        try:
            out = {call}
            print("RETURNED", getattr(out, "shape", out))
        finally:
            check_rss(2.0)
            assert time.time() - t0 < 20, f"took {{time.time() - t0:.1f}} s"
        """, OkOrRaises(NAME_NUM if region == "num_graphs" else seg_rx)
        if may_work else Raises(NAME_NUM if region == "num_graphs" else seg_rx),
        isolate=True))

# ----------------------------------------------------------- 6. no surprising global state
STATE: List[Case] = [
    case("threads-interleaved_use_backend_blocks_restore_the_global", """
        gp.set_backend("auto")
        other = BACKENDS[-1]
        a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
        def A():
            with gp.use_backend("native"):
                a_in.set(); b_in.wait(5)
            a_out.set()
        def B():
            a_in.wait(5)
            with gp.use_backend(other):
                b_in.set(); a_out.wait(5)
        ts = [threading.Thread(target=A), threading.Thread(target=B)]
        [t.start() for t in ts]; [t.join(10) for t in ts]
        assert gp.get_backend() == "auto", f"global backend left at {gp.get_backend()!r}"
        """, Ok),
    case("threads-other_thread_keeps_its_backend_during_a_block", """
        gp.set_backend("auto")
        inside, seen, done = threading.Event(), {}, threading.Event()
        def A():
            with gp.use_backend("native"):
                inside.set(); done.wait(5)
        def B():
            inside.wait(5)
            seen["B"] = gp.get_backend()
            gp.readout(torch.ones(4, 2), torch.tensor([0, 0, 1, 1]))
            done.set()
        ts = [threading.Thread(target=A), threading.Thread(target=B)]
        [t.start() for t in ts]; [t.join(10) for t in ts]
        assert seen["B"] == "auto", f"thread B saw thread A's backend {seen['B']!r}"
        """, Ok),
    case("threads-each_thread_sees_its_own_block", """
        gp.set_backend("auto")
        other = BACKENDS[-1] if BACKENDS[-1] != "native" else "auto"
        both_in, seen = threading.Barrier(2), {}
        def run(name, backend):
            with gp.use_backend(backend):
                both_in.wait(5)
                seen[name] = gp.get_backend()
                both_in.wait(5)
        ts = [threading.Thread(target=run, args=("A", "native")),
              threading.Thread(target=run, args=("B", other))]
        [t.start() for t in ts]; [t.join(10) for t in ts]
        assert seen == {"A": "native", "B": other}, seen
        """, Ok),
    case("threads-main_thread_unaffected_by_a_thread_block", """
        gp.set_backend("auto")
        inside, release = threading.Event(), threading.Event()
        def A():
            with gp.use_backend("native"):
                inside.set(); release.wait(5)
        t = threading.Thread(target=A); t.start(); inside.wait(5)
        seen = gp.get_backend()
        release.set(); t.join(10)
        assert seen == "auto", f"main thread saw {seen!r} while another thread was in a block"
        """, Ok),
    case("threads-exception_in_a_block_restores", """
        gp.set_backend("auto")
        def A():
            try:
                with gp.use_backend("native"):
                    raise KeyError("boom")
            except KeyError:
                pass
        t = threading.Thread(target=A); t.start(); t.join(10)
        assert gp.get_backend() == "auto", gp.get_backend()
        """, Ok),
]
ENV_PROBE = """
print("BACKEND=" + gp.get_backend())
print("COMPILED=" + ("on" if _compiled.available() else "off"))
print("HUGE_PAGES=" + ("on" if getattr(_compiled, "_HUGE_PAGES", True) else "off"))
x = torch.ones(1 << 23, 1, requires_grad=True)          # a 32 MiB gradient: huge-page buffers
gp.readout(x, ptr=torch.tensor([0, 1 << 22, 1 << 23]), reduce="sum").sum().backward()
"""
for ename, env, expect in [
        ("GRAPHPOOL_BACKEND=bogus", {"GRAPHPOOL_BACKEND": "bogus"}, Names("GRAPHPOOL_BACKEND")),
        ("GRAPHPOOL_BACKEND=NATIVE", {"GRAPHPOOL_BACKEND": "NATIVE"}, Names("GRAPHPOOL_BACKEND", ok="BACKEND=native")),
        ("GRAPHPOOL_BACKEND=space_native", {"GRAPHPOOL_BACKEND": " native"}, Names("GRAPHPOOL_BACKEND", ok="BACKEND=native")),
        ("GRAPHPOOL_BACKEND=empty", {"GRAPHPOOL_BACKEND": ""}, Names("GRAPHPOOL_BACKEND", ok="BACKEND=auto")),
        ("GRAPHPOOL_BACKEND=compiled-with-GRAPHPOOL_COMPILED=0",
         {"GRAPHPOOL_BACKEND": "compiled", "GRAPHPOOL_COMPILED": "0"}, Names("GRAPHPOOL_BACKEND")),
        ("GRAPHPOOL_BACKEND=native-valid", {"GRAPHPOOL_BACKEND": "native"}, Names("GRAPHPOOL_BACKEND", ok="BACKEND=native")),
        ("GRAPHPOOL_COMPILED=bogus", {"GRAPHPOOL_COMPILED": "bogus"}, Names("GRAPHPOOL_COMPILED")),
        ("GRAPHPOOL_COMPILED=false", {"GRAPHPOOL_COMPILED": "false"}, Names("GRAPHPOOL_COMPILED", ok="COMPILED=off")),
        ("GRAPHPOOL_COMPILED=no", {"GRAPHPOOL_COMPILED": "no"}, Names("GRAPHPOOL_COMPILED", ok="COMPILED=off")),
        ("GRAPHPOOL_COMPILED=0-valid", {"GRAPHPOOL_COMPILED": "0"}, Names("GRAPHPOOL_COMPILED", ok="COMPILED=off")),
        ("GRAPHPOOL_HUGE_PAGES=bogus", {"GRAPHPOOL_HUGE_PAGES": "bogus"}, Names("GRAPHPOOL_HUGE_PAGES")),
        ("GRAPHPOOL_HUGE_PAGES=false", {"GRAPHPOOL_HUGE_PAGES": "false"}, Names("GRAPHPOOL_HUGE_PAGES", ok="HUGE_PAGES=off")),
        ("GRAPHPOOL_SANITIZE=bogus", {"GRAPHPOOL_SANITIZE": "bogus"}, Names("GRAPHPOOL_SANITIZE")),
        ("GRAPHPOOL_SANITIZE=true", {"GRAPHPOOL_SANITIZE": "true"}, Names("GRAPHPOOL_SANITIZE")),
        ("GRAPHPOOL_CACHE=a_file", {"GRAPHPOOL_CACHE": os.devnull}, Names("GRAPHPOOL_CACHE")),
        ("GRAPHPOOL_CACHE=unwritable", {"GRAPHPOOL_CACHE": "/proc/graphpool-hostile"}, Names("GRAPHPOOL_CACHE"))]:
    STATE.append(case(f"env-{ename}", ENV_PROBE, expect, isolate=True, fresh_import=True,
                      env=tuple(env.items())))
STATE.append(case("default_device-meta_cpu_data_still_reads_out", """
    # torch.set_default_device changes where a bare torch.empty goes; graphpool's CPU
    # buffers must not follow it (the kernels would refuse them, or worse)
    counts = (2, 0, 3, 1)
    x, groups = rand(6, 4), groups_of(counts)
    sorted_index = index_of(counts)
    unsorted = torch.tensor([2, 0, 2, 3, 0, 2])
    want = {op: naive(x, groups, op) for op in OPS}
    want_u = {op: naive(x, groups_of_index(unsorted, 4), op) for op in OPS}
    ptr, negated = ptr_of(counts), torch._neg_view(torch.tensor([0, -1, -1]))
    torch.set_default_device("meta")
    try:
        for op in OPS:
            for b, w in ((sorted_index, want[op]), (unsorted, want_u[op])):
                CACHE.clear()
                assert_same(gp.readout(x, b, op, num_graphs=4), w, op)
            assert_same(gp.readout(x, ptr=ptr, reduce=op), want[op], op)
        leaf = x.detach().clone().requires_grad_()
        gp.readout(leaf, unsorted, "max", num_graphs=4).sum().backward()
        assert leaf.grad.device.type == "cpu"
        for name in ("std", "powermean", "softmax"):
            out = gp.readout(x.abs(), sorted_index, name, num_graphs=4)
            assert out.device.type == "cpu" and out.shape == (4, 4), (name, out)
        seg = Segments.from_index(negated, 2)  # a negation bit: resolved, not refused
        assert seg.counts.tolist() == [1, 2], seg.counts
    finally:
        torch.set_default_device("cpu")
    """, Ok, isolate=True))

STATE.append(case("env-GRAPHPOOL_DATA=a_file", """
    from graphpool.datasets import load_tu_dataset
    print(len(load_tu_dataset("MUTAG")))
    """, Names("GRAPHPOOL_DATA"), isolate=True, fresh_import=True,
    env=(("GRAPHPOOL_DATA", os.devnull),)))

CLASSES = {"memory": MEMORY, "one_answer": ONE_ANSWER, "tracing": TRACING, "fresh_groupings": FRESH,
           "arguments": ARGS, "global_state": STATE}
_ALL = [c for cs in CLASSES.values() for c in cs]
_dupes = {c.id for c in _ALL if sum(d.id == c.id for d in _ALL) > 1}
assert not _dupes, f"duplicate case ids: {sorted(_dupes)}"


# ================================================================================ the tests
@pytest.fixture(scope="session")
def isolated_results(request):
    """Run every selected isolated case in one child process (one fork per case)."""
    wanted, seen = [], set()
    for item in request.session.items:
        c = getattr(item, "callspec", None) and item.callspec.params.get("case")
        if isinstance(c, Case) and c.isolate and c.id not in seen:
            seen.add(c.id)
            wanted.append(c)
    return run_isolated(wanted)


def _run(c: Case, request) -> None:
    o = request.getfixturevalue("isolated_results")[c.id] if c.isolate else run_in_process(c)
    judge(c, o)


def _ids(cases):
    return [c.id for c in cases]


@pytest.mark.parametrize("case", MEMORY, ids=_ids(MEMORY))
def test_memory_safety(case, request):
    _run(case, request)


@pytest.mark.parametrize("case", ONE_ANSWER, ids=_ids(ONE_ANSWER))
def test_one_answer(case, request):
    _run(case, request)


@pytest.mark.parametrize("case", TRACING, ids=_ids(TRACING))
def test_tracing(case, request):
    _run(case, request)


@pytest.mark.parametrize("case", FRESH, ids=_ids(FRESH))
def test_fresh_groupings(case, request):
    _run(case, request)


@pytest.mark.parametrize("case", ARGS, ids=_ids(ARGS))
def test_arguments(case, request):
    _run(case, request)


@pytest.mark.parametrize("case", STATE, ids=_ids(STATE))
def test_global_state(case, request):
    _run(case, request)
