"""Every bad input gets a GraphpoolError naming the argument, the expectation and the fix."""
from __future__ import annotations

import pytest
import torch

import graphpool as gp
from graphpool import GraphpoolError, Segments
from graphpool.composite import segment_power_mean, segment_std, segment_var

x = torch.randn(4, 3)
idx = torch.tensor([0, 0, 1, 1])


def _empty_data():
    import warnings

    from torch_geometric.data import Data
    with warnings.catch_warnings():  # PyG warns that it cannot infer num_nodes
        warnings.simplefilter("ignore")
        return Data()

CASES = [
    ("index length != rows of x",
     lambda: gp.readout(x, torch.tensor([0, 0, 1])), r"'x'.*3 rows on dim -2.*one entry per node"),
    ("negative index", lambda: gp.readout(x, torch.tensor([0, -1, 1, 1])),
     r"readout: invalid 'batch'.*non-negative.*minimum of -1"),
    ("index out of range for num_graphs", lambda: gp.readout(x, idx, num_graphs=1),
     r"'num_graphs'.*>= 2.*got 1.*pass num_graphs >= 2"),
    ("float index", lambda: gp.readout(x, idx.float()), r"'batch'.*integer tensor.*batch.long\(\)"),
    ("2-D index", lambda: gp.readout(x, idx.view(2, 2)), r"'batch'.*1-D tensor"),
    ("index on another device", lambda: gp.readout(x, idx.to("meta")),
     r"'batch'.*on cpu.*meta.*\.to\('cpu'\)"),
    ("ptr not starting at 0", lambda: gp.readout(x, ptr=torch.tensor([1, 2, 4])),
     r"'ptr'.*ptr\[0\] == 0.*got ptr\[0\] == 1"),
    ("ptr not ending at N", lambda: gp.readout(x, ptr=torch.tensor([0, 2, 3])),
     r"'ptr'.*ptr\[-1\] == N == 4.*got ptr\[-1\] == 3"),
    ("ptr decreasing", lambda: gp.readout(x, ptr=torch.tensor([0, 3, 2, 4])),
     r"'ptr'.*non-decreasing"),
    ("empty ptr", lambda: gp.readout(x, ptr=torch.tensor([], dtype=torch.long)),
     r"'ptr'.*at least one entry"),
    ("index and ptr", lambda: gp.readout(x, idx, ptr=torch.tensor([0, 4])), r"'ptr'.*not both"),
    ("num_graphs disagrees with ptr", lambda: gp.readout(x, ptr=torch.tensor([0, 4]), num_graphs=3),
     r"'num_graphs'.*1 \(the grouping's number of sets\).*got 3"),
    ("x with no dim", lambda: gp.readout(torch.tensor(1.0), idx), r"'x'.*at least 1 dim"),
    ("std of integers, by name", lambda: gp.readout(idx.view(4, 1), idx, "std"),
     r"^readout: invalid 'x'.*floating point"),
    ("std of integers, module", lambda: gp.StdReadout()(idx.view(4, 1), idx),
     r"^StdReadout: invalid 'x'"),
    ("median of integers, module", lambda: gp.MedianReadout()(idx.view(4, 1), idx),
     r"^MedianReadout: invalid 'x'"),
    ("logsumexp fill_value beyond float16", lambda: gp.LogSumExpReadout(fill_value=1e10)(
        x.half(), idx, num_graphs=3), r"^LogSumExpReadout: invalid 'fill_value'.*float16"),
    ("softmax fill_value beyond float16, by name", lambda: gp.readout(
        x.half(), idx, "softmax", fill_value=1e10, num_graphs=3),
     r"^readout: invalid 'fill_value'.*float16"),
    ("count fill_value beyond float16", lambda: gp.readout(
        x.half(), idx, "count", fill_value=1e10, num_graphs=3),
     r"^readout: invalid 'fill_value'.*float16"),
    ("a list of tensors described, not printed", lambda: gp.readout(x, [idx, idx]),
     r"'batch'.*got a list of 2 \(a torch.int64 tensor of shape \(4,\) on cpu; a torch"),
    ("from_pyg of a batch vector", lambda: Segments.from_pyg(idx),
     r"^Segments.from_pyg: invalid 'data'.*PyG Batch or Data.*int64 tensor.*from_index"),
    ("from_pyg of another object", lambda: Segments.from_pyg(object()),
     r"^Segments.from_pyg: invalid 'data'.*got object"),
    ("a PyG Data without nodes", lambda: gp.readout(x, _empty_data()),
     r"^readout: invalid 'batch'.*nodes are known.*Data without nodes.*num_nodes"),
    ("x not a tensor", lambda: gp.readout([[1.0]], torch.tensor([0])), r"'x'.*torch.Tensor"),
    ("bool x", lambda: gp.readout(x > 0, idx), r"'x'.*floating point or integer"),
    ("mask shape mismatch", lambda: gp.segment_reduce(
        torch.ones(2, 5, 3), Segments.from_mask(torch.ones(2, 4, dtype=torch.bool))),
     r"'x'.*\[\*, 2, 4, F\].*to_dense_batch"),
    ("mask not bool", lambda: Segments.from_mask(torch.ones(2, 4)), r"'mask'.*bool"),
    ("unknown reduce", lambda: gp.readout(x, idx, "medoid"),
     r"'reduce'.*'sum', 'mean', 'max', 'min'.*'add'.*'medoid'"),
    ("mean of integers", lambda: gp.readout(x.long(), idx, "mean"),
     r"'x'.*floating point tensor for reduce='mean'.*x.float\(\)"),
    ("fractional fill for integers", lambda: gp.readout(x.long(), idx, "max", fill_value=0.5),
     r"'fill_value'.*integer"),
    ("bad batch type", lambda: gp.readout(x, [0, 0, 1, 1]), r"'batch'.*index tensor.*list"),
    ("num_segments negative", lambda: Segments.uniform(-1, 3), r"'num_segments'.*>= 0.*-1"),
    ("sorted=True but unsorted", lambda: Segments.from_index(torch.tensor([1, 0]), sorted=True),
     r"'sorted'.*non-decreasing"),
    ("ptr of unsorted segments", lambda: Segments.from_index(torch.tensor([1, 0])).ptr,
     r"'segments'.*sorted.*argsort"),
    ("segments of the wrong type", lambda: gp.segment_reduce(x, idx), r"'segments'.*Segments"),
    ("module dim", lambda: gp.SumReadout()(x, idx, dim=0 if x.dim() != 2 else 1),
     r"SumReadout: invalid 'dim'.*-2"),
    ("module dim_size vs num_graphs", lambda: gp.SumReadout()(x, idx, dim_size=2, num_graphs=3),
     r"'num_graphs'.*dim_size=2"),
    ("unknown readout name", lambda: gp.resolve_readout("medoid"),
     r"'readout'.*'sum', 'mean', 'max', 'min'.*'add'.*'medoid'"),
    # the statistics check x before any pass, fused kernels included
    ("power mean: x with too many rows", lambda: segment_power_mean(
        torch.randn(5, 3), Segments.from_index(idx), 2),
     r"^segment_power_mean: invalid 'x'.*4 rows on dim -2"),
    ("power mean: 1-D x", lambda: segment_power_mean(torch.randn(4), Segments.from_index(idx), 3),
     r"^segment_power_mean: invalid 'x'.*at least 2 dims.*unsqueeze"),
    ("power mean: sparse x", lambda: segment_power_mean(
        torch.randn(4, 3).to_sparse(), Segments.from_index(idx), 1),
     r"^segment_power_mean: invalid 'x'.*dense \(strided\).*to_dense"),
    ("variance: x with too many rows", lambda: segment_var(
        torch.randn(5, 3), Segments.from_index(idx)), r"^segment_var: invalid 'x'.*4 rows"),
    ("std: x on another device", lambda: segment_std(
        torch.randn(4, 3, device="meta"), Segments.from_index(idx)), r"^segment_std: invalid 'x'"),
    ("unknown backend", lambda: gp.set_backend("cuda"), r"'name'.*'auto', 'native', 'compiled', 'torch_scatter'"),
]


@pytest.mark.parametrize("name,call,match", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_error(name, call, match):
    with pytest.raises(GraphpoolError, match=match) as info:
        call()
    err = info.value
    assert isinstance(err, ValueError)
    assert err.argument and err.expected and err.fix, "every error names argument, expectation and fix"


def test_module_errors_name_the_module():
    with pytest.raises(GraphpoolError, match=r"^MeanReadout: invalid 'x'"):
        gp.MeanReadout()(x.long(), idx)


def test_validation_can_be_switched_off_for_speed():
    # Without validation an out-of-range id is not looked for; the number of sets is trusted.
    out = gp.readout(x, torch.tensor([0, 0, 1, 1]), num_graphs=3, validate=False)
    assert out.shape == (3, 3)
    with pytest.raises(GraphpoolError):
        gp.readout(x, torch.tensor([0, 0, 3, 1]), num_graphs=3)
