"""Hostile inputs to the helpers (issue #10, item 8, and the torch.fx part of item 3).

Every case is ``(name, call, expected)``. ``expected`` is either ``Raises(regex)``: the call
raises a :class:`GraphpoolError` whose message matches ``regex`` (which names the function
the user called and the argument at fault), or a zero-argument function computing the
reference value independently (torch's own pooling, a Python loop) that the result must
equal.
"""
from __future__ import annotations

import copy

import pytest
import torch
import torch.fx
import torch.nn.functional as F

from graphpool import MeanReadout
from graphpool.analysis.cam import class_activation
from graphpool.errors import GraphpoolError
from graphpool.excitation import SqueezeExcitation
from graphpool.grid import (GlobalPool1d, GlobalPool2d, GlobalPool3d, Layout, as_nodes,
                            batch_to_image, global_pool, grid_graph, image_to_batch,
                            nodes_to_map, pad_images, receptive_field, window_pool,
                            window_segments)
from graphpool.readouts.edge import EdgeEnergyReadout, edge_energy_readout


class Raises:
    def __init__(self, pattern: str) -> None:
        self.pattern = pattern


def fmap(*shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).to(dtype)


F4 = fmap(2, 3, 4, 5)
X = torch.tensor([[0.0, 1.0], [1.0, 3.0], [4.0, 3.0]])
EI = torch.tensor([[0, 1], [1, 2]])
BOOL = torch.bool


def naive_energy(x, edges, num_graphs, batch):
    """Python loop: sum over the edges of each graph of (x_u - x_v)**2."""
    out = torch.zeros(num_graphs, x.size(1), dtype=x.dtype)
    for u, v in edges.t().tolist():
        out[batch[u]] += (x[u] - x[v]) ** 2
    return out


def batch_of(maps):
    return image_to_batch(maps)


def tampered(fmap_, change):
    batch = copy.copy(image_to_batch(fmap_))
    batch.pos = change(batch.pos.clone())
    return batch


def moved(pos):
    pos[0, 0] += 0.5          # a transform that moves a node off its pixel
    return pos


def duplicated(pos):
    pos[0] = pos[1]           # two nodes on one pixel
    return pos


def out_of_grid(pos):
    return pos + 100


B0 = image_to_batch(torch.zeros(0, 3, 4, 5))
RAGGED = [fmap(3, 2, 2, seed=1), fmap(3, 1, 3, seed=2)]
PROXY_NAME = "fx"

CASES = [
    # ---- edge_energy_readout / EdgeEnergyReadout: dtypes of indices and features ----
    ("edge-bool-edge_index", lambda: edge_energy_readout(X, EI.bool()),
     Raises(r"edge_energy_readout: invalid 'edge_index': expected an integer tensor.*bool")),
    ("edge-module-bool-edge_index", lambda: EdgeEnergyReadout()(X, EI.bool()),
     Raises(r"EdgeEnergyReadout: invalid 'edge_index'.*integer")),
    ("edge-float-edge_index", lambda: edge_energy_readout(X, EI.float()),
     Raises(r"'edge_index'.*integer")),
    ("edge-complex-edge_index", lambda: edge_energy_readout(X, EI.to(torch.complex64)),
     Raises(r"'edge_index'.*integer")),
    ("edge-bool-edge_type", lambda: edge_energy_readout(
        X, EI, edge_type=torch.tensor([True, False]), num_edge_types=2),
     Raises(r"'edge_type'.*integer")),
    ("edge-bool-x", lambda: edge_energy_readout(X.bool(), EI), Raises(r"'x'.*real")),
    ("edge-complex-x", lambda: edge_energy_readout(X.to(torch.complex64), EI),
     Raises(r"'x'.*real")),
    ("edge-int8-edge_index", lambda: edge_energy_readout(X, EI.to(torch.int8)),
     lambda: naive_energy(X, EI, 1, [0, 0, 0])),
    ("edge-uint8-x-no-wraparound", lambda: edge_energy_readout(
        torch.tensor([[0], [20], [0]], dtype=torch.uint8), EI),
     lambda: torch.tensor([[800]])),
    ("edge-noncontiguous-edge_index", lambda: edge_energy_readout(X, EI.t().contiguous().t()),
     lambda: naive_energy(X, EI, 1, [0, 0, 0])),
    ("edge-E0", lambda: edge_energy_readout(X, torch.zeros(2, 0, dtype=torch.long)),
     lambda: torch.zeros(1, 2)),
    ("edge-N0-two-graphs", lambda: edge_energy_readout(
        torch.zeros(0, 2), torch.zeros(2, 0, dtype=torch.long),
        torch.zeros(0, dtype=torch.long), num_graphs=2), lambda: torch.zeros(2, 2)),
    ("edge-F0", lambda: edge_energy_readout(torch.zeros(3, 0), EI), lambda: torch.zeros(1, 0)),
    ("edge-id-out-of-range", lambda: edge_energy_readout(X, torch.tensor([[0, 5], [1, 2]])),
     Raises(r"'edge_index'.*\[0, 3\)")),
    ("edge-device", lambda: edge_energy_readout(X, EI.to("meta")),
     Raises(r"'edge_index'.*on cpu")),
    ("edge-typed", lambda: edge_energy_readout(X, EI, edge_type=torch.tensor([1, 0]),
                                               num_edge_types=2),
     lambda: torch.cat([naive_energy(X, EI[:, 1:], 1, [0] * 3),
                        naive_energy(X, EI[:, :1], 1, [0] * 3)], dim=1)),

    # ---- as_nodes / Layout / nodes_to_map / pad_images ----
    ("as_nodes-B0", lambda: as_nodes(torch.zeros(0, 3, 4, 5)).x.shape,
     lambda: torch.Size([0, 20, 3])),
    ("as_nodes-C0", lambda: as_nodes(torch.zeros(2, 0, 4, 5)).x.shape,
     lambda: torch.Size([2, 20, 0])),
    ("as_nodes-mask-B0", lambda: as_nodes(torch.zeros(0, 3, 4, 5),
                                          mask=torch.zeros(0, 4, 5, dtype=BOOL)).x.shape,
     lambda: torch.Size([0, 20, 3])),
    ("as_nodes-mask-device", lambda: as_nodes(F4, mask=torch.ones(2, 4, 5, dtype=BOOL,
                                                                  device="meta")),
     Raises(r"as_nodes: invalid 'mask'.*on cpu")),
    ("as_nodes-mixed-dtype-list", lambda: as_nodes([fmap(3, 2, 2),
                                                    fmap(3, 2, 2, dtype=torch.float64)]),
     Raises(r"as_nodes: invalid 'fmap\[1\]'.*float32")),
    ("as_nodes-mixed-device-list", lambda: as_nodes([fmap(3, 2, 2),
                                                     torch.zeros(3, 2, 2, device="meta")]),
     Raises(r"'fmap\[1\]'.*on cpu")),
    ("as_nodes-channels-bool", lambda: as_nodes(F4, channels=True),
     Raises(r"as_nodes: invalid 'channels'")),
    ("as_nodes-channels-negative", lambda: as_nodes(F4, channels=-1),
     Raises(r"'channels'.*>= 0")),
    ("Layout-lowercase", lambda: Layout("nhwc"), lambda: Layout.NHWC),
    ("Layout-unknown", lambda: Layout("NCWH"), Raises(r"Layout: invalid 'value'.*'NCHW'")),
    ("nodes_to_map-negative-size", lambda: nodes_to_map(torch.zeros(1, 4, 2), "NCHW", (-2, -2)),
     Raises(r"nodes_to_map: invalid 'spatial'.*>= 0")),
    ("nodes_to_map-float-size", lambda: nodes_to_map(torch.zeros(1, 4, 2), "NCHW", (2.5, 2)),
     Raises(r"'spatial'")),
    ("nodes_to_map-wrong-rank", lambda: nodes_to_map(torch.zeros(1, 8, 2), "NCHW", (2, 2, 2)),
     Raises(r"'spatial'.*2 sizes \(H, W\)")),
    ("nodes_to_map-zero-size", lambda: nodes_to_map(torch.zeros(0, 0, 2), "NCHW", (0, 3)).shape,
     lambda: torch.Size([0, 2, 0, 3])),
    ("pad-mixed-dtype", lambda: pad_images([torch.ones(1, 2, 2, dtype=torch.long),
                                            torch.full((1, 2, 2), 0.5)]),
     Raises(r"pad_images: invalid 'maps\[1\]'.*int64")),
    ("pad-value-str", lambda: pad_images([torch.ones(1, 2, 2)], value="x"),
     Raises(r"pad_images: invalid 'value'")),
    ("pad-fractional-value-int-maps", lambda: pad_images(
        [torch.ones(1, 1, 2, dtype=torch.long), torch.ones(1, 2, 2, dtype=torch.long)],
        value=0.5), Raises(r"'value'.*integer")),
    ("pad-tensor-not-list", lambda: pad_images(F4), Raises(r"pad_images: invalid 'maps'")),
    ("pad-zero-size-image", lambda: pad_images([torch.ones(1, 0, 2), torch.ones(1, 2, 2)])[1],
     lambda: torch.tensor([[[False, False], [False, False]], [[True, True], [True, True]]])),

    # ---- global_pool / GlobalPool1d/2d/3d ----
    ("gp-B0", lambda: global_pool(torch.zeros(0, 3, 4, 5)), lambda: torch.zeros(0, 3)),
    ("gp-C0-max", lambda: global_pool(torch.zeros(2, 0, 4, 5), "max"), lambda: torch.zeros(2, 0)),
    ("GP2d-B0-keep-axes-catavgmax", lambda: GlobalPool2d("catavgmax", flatten=False)(
        torch.zeros(0, 3, 4, 5)).shape, lambda: torch.Size([0, 6, 1, 1])),
    # zero pixels: an empty node set reads 0 (the library's empty-set rule), where torch's
    # mean gives nan and amax raises
    ("gp-zero-pixels-mean", lambda: global_pool(torch.zeros(2, 3, 0, 5)),
     lambda: torch.zeros(2, 3)),
    ("GP3d-zero-pixels-max", lambda: GlobalPool3d("max")(torch.zeros(1, 3, 2, 0, 5)),
     lambda: torch.zeros(1, 3)),
    ("gp-mask-B0", lambda: global_pool(torch.zeros(0, 3, 4, 5),
                                       mask=torch.zeros(0, 4, 5, dtype=BOOL)),
     lambda: torch.zeros(0, 3)),
    ("gp-channels-last", lambda: global_pool(F4.to(memory_format=torch.channels_last), "max"),
     lambda: F4.amax((2, 3))),
    ("gp-strided", lambda: global_pool(F4[..., ::2], "max"), lambda: F4[..., ::2].amax((2, 3))),
    ("gp-int-max", lambda: global_pool(torch.arange(120).view(2, 3, 4, 5), "max"),
     lambda: torch.arange(120).view(2, 3, 4, 5).amax((2, 3))),
    ("gp-int-mean", lambda: global_pool(torch.ones(2, 3, 4, 5, dtype=torch.long)),
     Raises(r"global_pool: invalid 'fmap'.*floating point")),
    ("gp-bool", lambda: global_pool(torch.ones(2, 3, 4, 5, dtype=BOOL), "max"),
     Raises(r"global_pool: invalid 'fmap'.*floating point")),
    ("GP2d-bool", lambda: GlobalPool2d()(torch.ones(2, 3, 4, 5, dtype=BOOL)),
     Raises(r"GlobalPool2d: invalid 'fmap'.*floating point")),
    ("GP2d-int-avgmax", lambda: GlobalPool2d("avgmax")(torch.ones(2, 3, 4, 5, dtype=torch.long)),
     Raises(r"GlobalPool2d: invalid 'fmap'")),
    ("GP1d-complex", lambda: GlobalPool1d()(torch.ones(2, 3, 5, dtype=torch.complex64)),
     Raises(r"GlobalPool1d: invalid 'fmap'")),
    ("gp-flatten-str", lambda: global_pool(F4, flatten="no"),
     Raises(r"global_pool: invalid 'flatten'")),
    ("GP2d-flatten-str", lambda: GlobalPool2d(flatten="yes"),
     Raises(r"GlobalPool2d: invalid 'flatten'")),
    ("gp-mixed-dtype-list", lambda: global_pool([fmap(3, 2, 2),
                                                 fmap(3, 1, 3, dtype=torch.float64)]),
     Raises(r"global_pool: invalid 'fmap\[1\]'")),
    ("gp-list-zero-pixel-image", lambda: global_pool([torch.ones(3, 0, 2), RAGGED[1]], "sum"),
     lambda: torch.stack([torch.zeros(3), RAGGED[1].sum((1, 2))])),
    ("gp-nan-propagates", lambda: global_pool(torch.tensor([[[[float("nan"), 1.0]]]]), "max"),
     lambda: torch.tensor([[float("nan")]])),

    # ---- grid_graph ----
    ("grid_graph-numpy-int", lambda: grid_graph(__import__("numpy").int64(2), 2),
     lambda: grid_graph(2, 2)),
    ("grid_graph-huge", lambda: grid_graph(10**6, 10**6),
     Raises(r"grid_graph: invalid 'height'.*height \* width")),
    ("grid_graph-float-connectivity", lambda: grid_graph(2, 3, connectivity=4.0),
     Raises(r"grid_graph: invalid 'connectivity'")),
    ("grid_graph-list-connectivity", lambda: grid_graph(2, 3, connectivity=[4]),
     Raises(r"'connectivity'")),
    ("grid_graph-self_loops-str", lambda: grid_graph(2, 3, self_loops="no"),
     Raises(r"grid_graph: invalid 'self_loops'")),
    ("grid_graph-bad-device", lambda: grid_graph(2, 3, device="foo"),
     Raises(r"grid_graph: invalid 'device'")),
    ("grid_graph-1x1", lambda: grid_graph(1, 1), lambda: torch.zeros(2, 0, dtype=torch.long)),

    # ---- image_to_batch / batch_to_image ----
    ("i2b-mask-B0", lambda: image_to_batch(torch.zeros(0, 3, 4, 5),
                                           mask=torch.zeros(0, 4, 5, dtype=BOOL)).x.shape,
     lambda: torch.Size([0, 3])),
    ("i2b-self_loops-str", lambda: image_to_batch(F4, self_loops="yes"),
     Raises(r"image_to_batch: invalid 'self_loops'")),
    ("b2i-B0-needs-size", lambda: batch_to_image(B0.x, B0),
     Raises(r"batch_to_image: invalid 'size'.*0 images")),
    ("b2i-B0-with-size", lambda: batch_to_image(B0.x, B0, size=(4, 5)).shape,
     lambda: torch.Size([0, 3, 4, 5])),
    ("b2i-B0-with-size-mask", lambda: batch_to_image(B0.x, B0, size=(4, 5),
                                                     return_mask=True)[1].shape,
     lambda: torch.Size([0, 4, 5])),
    ("b2i-zero-height", lambda: batch_to_image(torch.zeros(0, 3),
                                               image_to_batch(torch.zeros(2, 3, 0, 5))).shape,
     lambda: torch.Size([2, 3, 0, 5])),
    ("b2i-size-larger-needs-mask", lambda: batch_to_image(image_to_batch(F4).x,
                                                          image_to_batch(F4), size=(5, 5)),
     Raises(r"batch_to_image: invalid 'return_mask'")),
    ("b2i-size-larger-padded", lambda: batch_to_image(image_to_batch(F4).x, image_to_batch(F4),
                                                      size=(5, 6), return_mask=True)[0],
     lambda: F.pad(F4, (0, 1, 0, 1))),
    ("b2i-size-too-small", lambda: batch_to_image(image_to_batch(F4).x, image_to_batch(F4),
                                                  size=(3, 5)),
     Raises(r"batch_to_image: invalid 'size'.*4 x 5")),
    ("b2i-pos-not-integer", lambda: batch_to_image(image_to_batch(F4).x, tampered(F4, moved)),
     Raises(r"batch_to_image: invalid 'batch'.*pos")),
    ("b2i-pos-off-grid", lambda: batch_to_image(image_to_batch(F4).x,
                                                tampered(F4, out_of_grid)),
     Raises(r"batch_to_image: invalid 'batch'.*pos")),
    ("b2i-pos-duplicate", lambda: batch_to_image(image_to_batch(F4).x, tampered(F4, duplicated)),
     Raises(r"batch_to_image: invalid 'batch'.*one node per pixel")),
    ("b2i-return_mask-str", lambda: batch_to_image(image_to_batch(F4).x, image_to_batch(F4),
                                                   return_mask="yes"),
     Raises(r"batch_to_image: invalid 'return_mask'.*True or False")),
    ("b2i-values-device", lambda: batch_to_image(image_to_batch(F4).x.to("meta"),
                                                 image_to_batch(F4)),
     Raises(r"batch_to_image: invalid 'values'.*on cpu")),
    ("b2i-ragged-roundtrip", lambda: batch_to_image(batch_of(RAGGED).x, batch_of(RAGGED),
                                                    return_mask=True)[0],
     lambda: torch.stack([F.pad(RAGGED[0], (0, 1)), F.pad(RAGGED[1], (0, 0, 0, 1))])),

    # ---- window_segments / window_pool / receptive_field ----
    ("window_pool-zero-height-names-window_pool", lambda: window_pool(torch.zeros(2, 3, 0, 4), 2),
     Raises(r"^window_pool: invalid 'kernel'")),
    ("window_pool-B0", lambda: window_pool(torch.zeros(0, 3, 4, 4), 2),
     lambda: F.avg_pool2d(torch.zeros(0, 3, 4, 4), 2)),
    ("window_pool-bool", lambda: window_pool(F4 > 0, 2),
     Raises(r"window_pool: invalid 'fmap'.*floating point")),
    ("window_pool-int-mean", lambda: window_pool(torch.ones(1, 1, 4, 4, dtype=torch.long), 2),
     Raises(r"window_pool: invalid 'fmap'.*floating point")),
    ("window_pool-channels-last-max", lambda: window_pool(
        F4.to(memory_format=torch.channels_last), 2, reduce="max"),
     lambda: F.max_pool2d(F4, 2)),
    ("window_pool-numpy-kernel", lambda: window_pool(F4, __import__("numpy").int64(2)),
     lambda: F.avg_pool2d(F4, 2)),
    ("window_segments-bool-kernel", lambda: window_segments(4, 4, True),
     Raises(r"window_segments: invalid 'kernel'")),
    ("receptive_field-int", lambda: receptive_field(5),
     Raises(r"receptive_field: invalid 'layers'")),
    ("receptive_field-None", lambda: receptive_field(None),
     Raises(r"receptive_field: invalid 'layers'")),
    ("receptive_field-tensor", lambda: receptive_field(torch.tensor([[3, 1]])),
     Raises(r"receptive_field: invalid 'layers'.*tolist")),
    ("receptive_field-empty", lambda: receptive_field([]), lambda: []),

    # ---- class_activation ----
    ("cam-bool-map", lambda: class_activation(F4 > 0, torch.nn.Linear(3, 4), layout="NCHW"),
     Raises(r"class_activation: invalid 'features'.*floating point")),
    ("cam-int-nodes", lambda: class_activation(torch.ones(5, 3, dtype=torch.long),
                                               torch.ones(4, 3)),
     Raises(r"class_activation: invalid 'features'.*floating point")),
    ("cam-int-weight", lambda: class_activation(torch.ones(5, 3),
                                                torch.ones(4, 3, dtype=torch.long)),
     Raises(r"class_activation: invalid 'classifier'.*floating point")),
    ("cam-weight-device", lambda: class_activation(torch.ones(5, 3),
                                                   torch.ones(4, 3, device="meta")),
     Raises(r"class_activation: invalid 'classifier'.*on cpu")),
    ("cam-lazy-linear", lambda: class_activation(F4, torch.nn.LazyLinear(4), layout="NCHW"),
     Raises(r"class_activation: invalid 'classifier'.*LazyLinear")),
    ("cam-mask-without-layout", lambda: class_activation(torch.ones(5, 3), torch.ones(4, 3),
                                                         mask=torch.ones(5, dtype=BOOL)),
     Raises(r"class_activation: invalid 'mask'")),
    ("cam-float64-features-float32-head", lambda: class_activation(
        F4.double(), torch.ones(2, 3), layout="NCHW"),
     lambda: torch.einsum("bchw,kc->bkhw", F4.double(), torch.ones(2, 3, dtype=torch.float64))),
    ("cam-B0", lambda: class_activation(torch.zeros(0, 3, 4, 5), torch.ones(2, 3),
                                        layout="NCHW").shape, lambda: torch.Size([0, 2, 4, 5])),

    # ---- SqueezeExcitation ----
    ("se-bool", lambda: SqueezeExcitation(3, 1, layout="NCHW")(F4 > 0),
     Raises(r"SqueezeExcitation: invalid 'x'.*float32")),
    ("se-float64-into-float32", lambda: SqueezeExcitation(3, 1, layout="NCHW")(F4.double()),
     Raises(r"SqueezeExcitation: invalid 'x'.*float32")),
    ("se-nodes-int", lambda: SqueezeExcitation(3, 1)(torch.ones(5, 3, dtype=torch.long)),
     Raises(r"SqueezeExcitation: invalid 'x'")),
    ("se-batch-wrong-length", lambda: SqueezeExcitation(3, 1)(torch.ones(5, 3),
                                                              torch.tensor([0, 0, 1])),
     Raises(r"SqueezeExcitation: invalid '(batch|x)'")),
    ("se-mask-B0", lambda: SqueezeExcitation(3, 1, layout="NCHW")(
        torch.zeros(0, 3, 4, 5), mask=torch.zeros(0, 4, 5, dtype=BOOL)).shape,
     lambda: torch.Size([0, 3, 4, 5])),
    ("se-zero-pixels", lambda: SqueezeExcitation(3, 1, layout="NCHW")(
        torch.zeros(2, 3, 0, 5)).shape, lambda: torch.Size([2, 3, 0, 5])),
]


@pytest.mark.parametrize("name, call, expected", CASES, ids=[c[0] for c in CASES])
def test_hostile_input(name, call, expected):
    if isinstance(expected, Raises):
        with pytest.raises(GraphpoolError, match=expected.pattern):
            call()
        return
    got, want = call(), expected()
    if isinstance(want, torch.Tensor):
        assert got.shape == want.shape and got.dtype == want.dtype, (got, want)
        if want.is_floating_point() and want.numel():
            # summation order may differ from torch's: an absolute floor scaled to the inputs
            floor = 1e-5 * max(1.0, float(want.nan_to_num().abs().max()))
            torch.testing.assert_close(got, want, rtol=0, atol=floor, equal_nan=True)
        else:
            assert torch.equal(got, want)
    else:
        assert got == want


def test_no_case_name_repeats():
    names = [c[0] for c in CASES]
    assert len(names) == len(set(names)) and len(names) >= 40


# ---- torch.fx.symbolic_trace: the pools are leaves / call_function nodes whose replay is
# the real module, so a traced graph is correct on inputs of other sizes ----

class _Net(torch.nn.Module):
    def __init__(self, conv, pool):
        super().__init__()
        self.conv, self.pool = conv, pool

    def forward(self, x):
        return self.pool(self.conv(x))


FX_MODULES = [
    ("GlobalPool2d-mean", torch.nn.Conv2d, GlobalPool2d("mean"), lambda y: y.mean((2, 3))),
    ("GlobalPool2d-catavgmax", torch.nn.Conv2d, GlobalPool2d("catavgmax"),
     lambda y: torch.cat([y.mean((2, 3)), y.amax((2, 3))], 1)),
    ("GlobalPool2d-readout-keep-axes", torch.nn.Conv2d, GlobalPool2d(MeanReadout(), flatten=False),
     lambda y: y.mean((2, 3), keepdim=True)),
    ("GlobalPool1d-max", torch.nn.Conv1d, GlobalPool1d("max"), lambda y: y.amax(2)),
    ("GlobalPool3d-sum", torch.nn.Conv3d, GlobalPool3d("sum"), lambda y: y.sum((2, 3, 4))),
]


@pytest.mark.parametrize("name, conv, pool, reference", FX_MODULES,
                         ids=[m[0] for m in FX_MODULES])
def test_symbolic_trace_records_the_pool_as_a_leaf(name, conv, pool, reference):
    torch.manual_seed(0)
    net = _Net(conv(3, 4, 1), pool)
    traced = torch.fx.symbolic_trace(net)
    assert [n.op for n in traced.graph.nodes] == ["placeholder", "call_module", "call_module",
                                                 "output"]
    dims = pool.spatial_dims
    for batch, size in ((2, 3), (5, 6)):           # replay on sizes never traced
        x = torch.randn(batch, 3, *([size] * dims))
        want = reference(net.conv(x))
        got = traced(x)
        assert torch.equal(got, net(x))
        torch.testing.assert_close(got, want, rtol=0,
                                   atol=1e-5 * max(1.0, float(want.abs().max())))


def test_symbolic_trace_of_the_functions_and_the_mask_argument():
    class Functions(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.pool = GlobalPool2d("max")

        def forward(self, x, mask):
            return (global_pool(x, "mean", flatten=False)
                    + window_pool(x, 2, reduce="max").amax((2, 3), keepdim=True)
                    + self.pool(x, mask)[..., None, None])

    net = Functions()
    traced = torch.fx.symbolic_trace(net)
    targets = {n.target for n in traced.graph.nodes if n.op == "call_function"}
    assert global_pool in targets and window_pool in targets
    for shape in ((1, 2, 4, 4), (3, 2, 6, 8)):
        x = torch.randn(shape)
        mask = torch.rand(shape[0], *shape[2:]) > 0.3
        mask[:, 0, 0] = True
        want = (x.mean((2, 3), keepdim=True) + F.max_pool2d(x, 2).amax((2, 3), keepdim=True)
                + torch.where(mask[:, None], x, -torch.inf).amax((2, 3))[..., None, None])
        got = traced(x, mask)
        assert torch.equal(got, net(x, mask))
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5 * float(want.abs().max()))


def test_squeeze_excitation_traces_as_a_leaf():
    torch.manual_seed(0)
    net = _Net(torch.nn.Conv2d(3, 4, 1), SqueezeExcitation(4, 2, layout="NCHW"))
    traced = torch.fx.symbolic_trace(net)
    assert [n.op for n in traced.graph.nodes].count("call_module") == 2
    x = torch.randn(3, 3, 7, 5)
    assert torch.equal(traced(x), net(x))


@pytest.mark.parametrize("name, root, pattern", [
    ("pool-is-the-root", GlobalPool2d(), r"GlobalPool2d: invalid 'fmap'.*submodule"),
    ("unregistered-readout", type("R", (torch.nn.Module,), {
        "forward": lambda self, x: global_pool(x, MeanReadout())})(),
     r"global_pool: invalid 'fmap'.*torch.export"),
    ("as_nodes", type("A", (torch.nn.Module,), {
        "forward": lambda self, x: as_nodes(x).x})(), r"as_nodes: invalid 'fmap'.*torch.export"),
    ("image_to_batch", type("I", (torch.nn.Module,), {
        "forward": lambda self, x: image_to_batch(x).x})(),
     r"image_to_batch: invalid 'fmap'.*torch.export"),
    ("class_activation", type("C", (torch.nn.Module,), {
        "forward": lambda self, x: class_activation(x, torch.ones(2, 3), layout="NCHW")})(),
     r"class_activation: invalid 'features'.*outside the traced model"),
    ("edge_energy_readout", type("E", (torch.nn.Module,), {
        "forward": lambda self, x, e: edge_energy_readout(x, e)})(),
     r"edge_energy_readout: invalid 'x'.*leaf module"),
])
def test_symbolic_trace_refuses_what_it_cannot_record(name, root, pattern):
    with pytest.raises(GraphpoolError, match=pattern):
        torch.fx.symbolic_trace(root)
