"""Class activation maps: one implementation for images and graphs, and their rendering."""
import sys

import matplotlib.image
import pytest
import torch
from torch import nn
from torch_geometric.data import Batch, Data

from graphpool import GraphpoolError, MeanReadout, SumReadout
from graphpool.analysis.cam import class_activation, save_graph_cam, save_image_cam
from graphpool.grid import GlobalPool2d, image_to_batch, pad_images


def naive_cam(fmap, weight):
    """CAM_k(i, j) = sum_c w_kc fmap[b, c, i, j] by loops over classes and channels."""
    b, c, h, w = fmap.shape
    out = torch.zeros(b, weight.size(0), h, w, dtype=fmap.dtype)
    for k in range(weight.size(0)):
        for ch in range(c):
            out[:, k] += weight[k, ch] * fmap[:, ch]
    return out


@pytest.mark.parametrize("shape", [(2, 8, 5, 5), (1, 3, 1, 7), (3, 16, 4, 6)])
def test_image_cam_equals_loop_and_mean_equals_logit_minus_bias(shape):
    fmap = torch.randn(shape, dtype=torch.float64)
    head = nn.Linear(shape[1], 4).double()
    cam = class_activation(fmap, head, layout="NCHW")
    torch.testing.assert_close(cam, naive_cam(fmap, head.weight))
    logits = head(GlobalPool2d("mean")(fmap))
    torch.testing.assert_close(cam.mean((2, 3)), logits - head.bias)


def test_image_cam_other_layouts_and_weight_tensor():
    fmap = torch.randn(2, 6, 4, 5)
    weight = torch.randn(3, 6)
    expected = naive_cam(fmap, weight)
    nhwc = class_activation(fmap.permute(0, 2, 3, 1), weight, layout="NHWC")
    torch.testing.assert_close(nhwc, expected.permute(0, 2, 3, 1))
    cl = class_activation(fmap.contiguous(memory_format=torch.channels_last), weight,
                          layout="NCHW")
    torch.testing.assert_close(cl, expected)


def test_ragged_and_padded_images():
    maps = [torch.randn(4, 3, 5, dtype=torch.float64), torch.randn(4, 2, 2, dtype=torch.float64)]
    head = nn.Linear(4, 3).double()
    cams = class_activation(maps, head, layout="NCHW")
    for cam, m in zip(cams, maps):
        torch.testing.assert_close(cam, naive_cam(m.unsqueeze(0), head.weight)[0])
        torch.testing.assert_close(cam.mean((1, 2)), head(m.mean((1, 2))) - head.bias)
    padded, mask = pad_images(maps)
    cam = class_activation(padded, head, layout="NCHW", mask=mask)
    torch.testing.assert_close(cam[1, :, :2, :2], cams[1])


def test_graph_cam_identity_for_mean_and_sum_readouts():
    torch.manual_seed(0)
    graphs = [Data(x=torch.randn(n, 5, dtype=torch.float64)) for n in (3, 1, 6)]
    batch = Batch.from_data_list(graphs)
    head = nn.Linear(5, 2).double()
    cam = class_activation(batch.x, head)
    assert cam.shape == (10, 2)
    for readout in (MeanReadout(), SumReadout()):
        logits = head(readout(batch.x, batch))
        torch.testing.assert_close(readout(cam, batch), logits - head.bias)
    for b, g in enumerate(graphs):                          # per-graph loop
        torch.testing.assert_close(cam[batch.batch == b], g.x @ head.weight.t())


def test_image_and_graph_paths_agree():
    fmap = torch.randn(2, 5, 3, 4)
    head = nn.Linear(5, 3)
    batch = image_to_batch(fmap)
    node_cam = class_activation(batch.x, head)
    image_cam = class_activation(fmap, head, layout="NCHW")
    torch.testing.assert_close(node_cam, image_cam.flatten(2).transpose(1, 2).reshape(-1, 3))


def test_gradients_flow_to_features_and_weights():
    fmap = torch.randn(1, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f, w: class_activation(f, w, layout="NCHW"),
                                    (fmap, weight))


def test_save_image_cam_writes_a_png(tmp_path):
    cam = torch.rand(4, 4)
    for image in [None, torch.rand(8, 8), torch.rand(1, 8, 8), torch.rand(3, 16, 12)]:
        out = save_image_cam(tmp_path / "cam.png", cam, image, title="class 3")
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert matplotlib.image.imread(out).ndim == 3


def test_save_graph_cam_writes_a_png(tmp_path):
    batch = image_to_batch(torch.randn(1, 2, 3, 3))
    scores = class_activation(batch.x, torch.randn(2, 2))[:, 0]
    out = save_graph_cam(tmp_path / "g.png", batch.edge_index, scores, pos=batch.pos)
    assert out.read_bytes()[:4] == b"\x89PNG"
    out = save_graph_cam(tmp_path / "spring.png", torch.tensor([[0, 1], [1, 0]]),
                         torch.tensor([1., 2., 3.]))
    assert out.exists()


def test_rendering_without_matplotlib_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install graphpool\[plot\]"):
        save_image_cam(tmp_path / "x.png", torch.rand(2, 2))


ERRORS = [
    ("classifier", lambda: class_activation(torch.randn(3, 4), torch.randn(4)),
     "classifier.*nn.Linear or a \\[K, C\\] weight"),
    ("graph-width", lambda: class_activation(torch.randn(3, 4), nn.Linear(5, 2)),
     r"features.*\[\*, N, 5\].*layout='NCHW'"),
    ("image-channels", lambda: class_activation(torch.randn(1, 4, 3, 3), nn.Linear(5, 2),
                                                layout="NCHW"),
     "features.*5 channels"),
    ("image-rank", lambda: class_activation(torch.randn(4, 3, 3), nn.Linear(4, 2),
                                            layout="NCHW"), "features.*4-D"),
    ("cam-rank", lambda: save_image_cam("x.png", torch.rand(1, 2, 2)), r"cam.*\(H, W\)"),
    ("image-rank", lambda: save_image_cam("x.png", torch.rand(2, 2), torch.rand(2, 4, 4)),
     r"image.*\(3, H, W\)"),
    ("scores", lambda: save_graph_cam("x.png", torch.zeros(2, 0).long(), torch.rand(2, 2)),
     r"scores.*\[N\]"),
    ("edges", lambda: save_graph_cam("x.png", torch.tensor([[0], [5]]), torch.rand(3)),
     "edge_index.*node ids < 3.*5"),
    ("edge-shape", lambda: save_graph_cam("x.png", torch.zeros(3, 1).long(), torch.rand(3)),
     r"edge_index.*\[2, E\]"),
    ("pos", lambda: save_graph_cam("x.png", torch.zeros(2, 0).long(), torch.rand(3),
                                   pos=torch.rand(2, 2)), r"pos.*\[3, 2\]"),
]


@pytest.mark.parametrize("name, call, match", ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_input_raises_graphpool_error(name, call, match):
    with pytest.raises(GraphpoolError, match=match):
        call()
