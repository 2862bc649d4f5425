"""The reduction table is the extension point: a reduction registered here, at test time,
runs on every path, grouping, backend and dtype, and equals a per-set loop; no other file
is touched. Paths that do not implement its primitive refuse it instead of computing
something else."""
from __future__ import annotations

import pytest
import torch

import graphpool as gp
from graphpool import GraphpoolError, Segments, segment_reduce
from graphpool import _native
from graphpool.kernels import compiled, ext
from graphpool.kernels.reductions import (Primitive, Reduction, register_reduction,
                                          unregister_reduction)

from .groupings import groupings, groups_from_counts

PROD = Primitive("product", identity=lambda dtype: 1, scatter="prod", segment="prod",
                 dense=lambda view, dim, keepdim: view.prod(dim, keepdim=keepdim))


@pytest.fixture
def prod():
    register_reduction(Reduction("product", PROD), aliases=("times",))
    yield "product"
    unregister_reduction("product")


def loop_prod(x, groups, fill):
    rows = []
    for members in groups:
        acc = torch.full((x.size(-1),), fill, dtype=torch.float64)
        if members:
            acc = torch.ones(x.size(-1), dtype=torch.float64)
            for v in members:
                acc = acc * x[v].double()
        rows.append(acc)
    return torch.stack(rows).to(x.dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("counts", [[3, 0, 2, 1], [2, 2, 2]])
def test_a_registered_reduction_runs_everywhere(prod, backend, dtype, counts):
    x = (torch.rand(sum(counts), 5, generator=torch.Generator().manual_seed(0)) + 0.5
         ).to(dtype)
    expected = loop_prod(x, groups_from_counts(counts), fill=-1.0)
    for name, xs, seg in groupings(x, counts):
        for spelling in ("product", "times"):
            got = segment_reduce(xs, seg, spelling, fill_value=-1.0)
            # products of <= 3 factors in [0.5, 1.5): a few roundings of the dtype
            tol = 4 * torch.finfo(dtype).eps * expected.abs().double().max().item()
            torch.testing.assert_close(got.double(), expected.double(), rtol=0, atol=tol,
                                       msg=f"{name} ({spelling})")


def test_a_registered_reduction_has_gradients_and_works_in_readouts(prod, backend):
    x = (torch.rand(6, 3, dtype=torch.float64) + 0.5).requires_grad_()
    batch = torch.tensor([0, 0, 2, 2, 2, 1])
    out = gp.readout(x, batch, "product")
    reference = torch.stack([x[batch == b].prod(0) for b in range(3)])
    torch.testing.assert_close(out, reference)
    grad, = torch.autograd.grad(out.sum(), x)
    ref_grad, = torch.autograd.grad(reference.sum(), x)
    torch.testing.assert_close(grad, ref_grad)
    fmap = torch.rand(2, 3, 4, 4) + 0.5
    nodes = fmap.flatten(2).transpose(1, 2)
    torch.testing.assert_close(segment_reduce(nodes, Segments.uniform(1, 16), "product")
                               .squeeze(1), fmap.flatten(2).prod(-1))


@pytest.mark.skipif(_native.library() is None, reason="the compiled kernels are not built")
def test_paths_that_lack_a_primitive_refuse_it(prod):
    x, seg = torch.rand(4, 2), Segments.from_ptr(torch.tensor([0, 2, 4]))
    with pytest.raises(GraphpoolError, match="'reduce'.*compiled path"):
        compiled.combine(x, seg, PROD, torch.float32)
    if ext.AVAILABLE:
        with pytest.raises(GraphpoolError, match="'reduce'.*torch_scatter"):
            ext.combine(x, seg, PROD, torch.float32)
    with gp.use_backend("compiled"):  # dispatch hands prod to a path that implements it
        torch.testing.assert_close(segment_reduce(x, seg, "product"),
                                   torch.stack([x[:2].prod(0), x[2:].prod(0)]))


def test_a_primitive_without_torch_forms_is_refused_not_run_as_another_op():
    bare = Primitive("bare", identity=lambda dtype: 0)
    register_reduction(Reduction("bare", bare))
    try:
        with pytest.raises(GraphpoolError, match="'reduce'.*bare"):
            gp.readout(torch.ones(3, 1), torch.tensor([0, 1, 1]), "bare")
        with pytest.raises(GraphpoolError, match="'reduce'"):
            gp.readout(torch.ones(4, 1), torch.tensor([1, 0, 1, 0]), "bare")
    finally:
        unregister_reduction("bare")


@pytest.mark.parametrize("bad, match", [
    (lambda: register_reduction("product"), "'reduction'"),
    (lambda: register_reduction(Reduction("sum", PROD)), "'name'.*not in the table"),
    (lambda: register_reduction(Reduction("Prod", PROD)), "'name'.*lower-case"),
    (lambda: register_reduction(Reduction("p2", PROD), aliases=("add",)), "'name'"),
])
def test_registration_errors(bad, match):
    with pytest.raises(GraphpoolError, match=match):
        bad()
    assert "p2" not in gp.REDUCTIONS


def test_a_registered_reduction_is_a_readout_module_everywhere_by_name(prod):
    fmap = torch.rand(2, 3, 4, 4) + 0.5
    torch.testing.assert_close(gp.GlobalPool2d("product")(fmap), fmap.flatten(2).prod(-1))
    torch.testing.assert_close(gp.GlobalPool2d(["times", "max"])(fmap),
                               torch.cat([fmap.flatten(2).prod(-1), fmap.amax((2, 3))], -1))
    module = gp.resolve_readout("TIMES")
    assert repr(module) == "TableReadout('product')"
    x, batch = torch.rand(5, 2) + 0.5, torch.tensor([0, 0, 1, 1, 1])
    torch.testing.assert_close(module(x, batch), torch.stack([x[:2].prod(0), x[2:].prod(0)]))


@pytest.mark.parametrize("name, cls", [("add", "SumReadout"), ("avg", "MeanReadout"),
                                       ("Mean", "MeanReadout"), ("MAX", "MaxReadout")])
def test_one_alias_table_for_every_resolver(name, cls):
    assert type(gp.resolve_readout(name)).__name__ == cls
    assert type(gp.GlobalPool2d(name).readout).__name__ == cls
    with pytest.raises(GraphpoolError, match="GlobalPool2d: invalid 'reduce'.*'avgmax'"):
        gp.GlobalPool2d("no-such-readout")


def test_forward_mode_of_a_primitive_without_a_rule_is_refused(prod):
    import torch.autograd.forward_ad as fwAD
    x = torch.rand(4, 2, dtype=torch.float64)
    with fwAD.dual_level():
        dual = fwAD.make_dual(x, torch.ones_like(x))
        with pytest.raises(GraphpoolError, match="readout: invalid 'reduce'.*forward-mode"):
            gp.readout(dual, torch.tensor([0, 0, 1, 1]), "product")
