"""SqueezeExcitation on images == the standard SE block; on graphs == a per-graph loop."""
import pytest
import torch
from torch import nn
from torch_geometric.data import Batch, Data

from graphpool import GraphpoolError, MaxReadout, Segments
from graphpool.excitation import SqueezeExcitation
from graphpool.grid import image_to_batch, pad_images


class ReferenceSE(nn.Module):
    """The SE block of Hu et al. as usually written: GAP, two 1x1 convs, sigmoid, scale."""

    def __init__(self, channels, hidden):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))


def reference_for(se):
    ref = ReferenceSE(se.channels, se.hidden).to(se.fc1.weight.dtype)
    with torch.no_grad():
        ref.fc1.weight.copy_(se.fc1.weight[:, :, None, None])
        ref.fc1.bias.copy_(se.fc1.bias)
        ref.fc2.weight.copy_(se.fc2.weight[:, :, None, None])
        ref.fc2.bias.copy_(se.fc2.bias)
    return ref


@pytest.mark.parametrize("shape, reduction", [((2, 16, 5, 5), 4), ((3, 8, 1, 7), 16),
                                              ((1, 32, 6, 4), 8), ((0, 4, 2, 2), 2)])
def test_equals_standard_se_block_on_images(shape, reduction):
    torch.manual_seed(0)
    se = SqueezeExcitation(shape[1], reduction, layout="NCHW").double()
    ref = reference_for(se)
    fmap = torch.randn(shape, dtype=torch.float64)
    torch.testing.assert_close(se(fmap), ref(fmap))
    cl = fmap.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(se(cl), ref(fmap))
    nhwc = SqueezeExcitation(shape[1], reduction, layout="NHWC").double()
    nhwc.load_state_dict(se.state_dict())
    torch.testing.assert_close(nhwc(fmap.permute(0, 2, 3, 1)), ref(fmap).permute(0, 2, 3, 1))


def test_gradients_equal_reference_and_gradcheck():
    torch.manual_seed(0)
    se = SqueezeExcitation(6, 2, layout="NCHW").double()
    ref = reference_for(se)
    fmap = torch.randn(2, 6, 3, 4, dtype=torch.float64)
    ours_in, ref_in = fmap.clone().requires_grad_(), fmap.clone().requires_grad_()
    se(ours_in).square().sum().backward()
    ref(ref_in).square().sum().backward()
    torch.testing.assert_close(ours_in.grad, ref_in.grad)
    torch.testing.assert_close(se.fc1.weight.grad, ref.fc1.weight.grad[:, :, 0, 0])
    assert torch.autograd.gradcheck(se, (fmap.requires_grad_(),))


def test_on_pyg_batches_equals_a_per_graph_loop():
    torch.manual_seed(0)
    se = SqueezeExcitation(5, 2).double()
    graphs = [Data(x=torch.randn(n, 5, dtype=torch.float64)) for n in (4, 1, 7)]
    batch = Batch.from_data_list(graphs)
    expected = torch.cat([g.x * se.gates(g.x.mean(0)) for g in graphs])
    torch.testing.assert_close(se(batch.x, batch), expected)
    torch.testing.assert_close(se(batch.x, batch.batch), expected)
    torch.testing.assert_close(se(batch.x, Segments.from_pyg(batch)), expected)


def test_image_path_equals_graph_path():
    torch.manual_seed(0)
    fmap = torch.randn(3, 8, 4, 4)
    image_se = SqueezeExcitation(8, 4, layout="NCHW")
    graph_se = SqueezeExcitation(8, 4)
    graph_se.load_state_dict(image_se.state_dict())
    batch = image_to_batch(fmap)
    out = graph_se(batch.x, batch)
    torch.testing.assert_close(out, image_se(fmap).flatten(2).transpose(1, 2).reshape(-1, 8))


def test_ragged_and_padded_images_equal_per_image_se():
    torch.manual_seed(0)
    se = SqueezeExcitation(4, 2, layout="NCHW")
    maps = [torch.randn(4, 3, 5), torch.randn(4, 1, 2)]
    expected = [se(m.unsqueeze(0))[0] for m in maps]
    for got, want in zip(se(maps), expected):
        torch.testing.assert_close(got, want)
    padded, mask = pad_images(maps)
    out = se(padded, mask=mask)
    torch.testing.assert_close(out[0, :, :3, :5], expected[0])
    torch.testing.assert_close(out[1, :, :1, :2], expected[1])


def test_other_readouts_squeeze():
    torch.manual_seed(0)
    se = SqueezeExcitation(4, 2, readout=MaxReadout(), layout="NCHW")
    fmap = torch.randn(2, 4, 3, 3)
    gates = se.gates(fmap.amax((2, 3)))
    torch.testing.assert_close(se(fmap), fmap * gates[:, :, None, None])


def test_repr():
    assert repr(SqueezeExcitation(64)) == \
        "SqueezeExcitation(channels=64, hidden=4, readout=MeanReadout(), layout=None)"
    assert SqueezeExcitation(3, reduction=16).hidden == 1


ERRORS = [
    ("channels", lambda: SqueezeExcitation(0), "channels.*int >= 1"),
    ("reduction", lambda: SqueezeExcitation(8, reduction=1.5), "reduction.*int >= 1"),
    ("readout", lambda: SqueezeExcitation(8, readout="medoid"), "reduce.*'medoid'"),
    ("layout", lambda: SqueezeExcitation(8, layout="CHW"), "layout.*'CHW'"),
    ("image-channels", lambda: SqueezeExcitation(8, layout="NCHW")(torch.randn(1, 4, 2, 2)),
     "x.*8 channels.*shape \\(1, 4, 2, 2\\)"),
    ("image-rank", lambda: SqueezeExcitation(8, layout="NCHW")(torch.randn(8, 2, 2)),
     "x.*4-D tensor"),
    ("image-batch", lambda: SqueezeExcitation(2, layout="NCHW")(torch.randn(1, 2, 2, 2),
                                                                torch.tensor([0])),
     "batch.*None for a feature map"),
    ("node-width", lambda: SqueezeExcitation(8)(torch.randn(5, 4)), r"x.*\[\*, N, 8\]"),
    ("node-mask", lambda: SqueezeExcitation(2)(torch.randn(1, 3, 2),
                                               mask=torch.ones(1, 3, dtype=torch.bool)),
     "mask.*Segments.from_mask"),
    ("mask-shape", lambda: SqueezeExcitation(2, layout="NCHW")(
        torch.randn(1, 2, 3, 3), mask=torch.ones(1, 3, dtype=torch.bool)), r"mask.*\(1, 3, 3\)"),
]


@pytest.mark.parametrize("name, call, match", ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_input_raises_graphpool_error(name, call, match):
    with pytest.raises(GraphpoolError, match=match):
        call()
