"""Feature maps as node sets: zero-copy views, named layouts, round trips, ragged images."""
import pytest
import torch

from graphpool import GraphpoolError, SumReadout
from graphpool.grid import Layout, as_nodes, nodes_to_map, pad_images

# (layout, batched shape, how to read pixel (b, p...) channel c in a naive loop)
LAYOUTS = [
    ("NCL", (2, 3, 5)),
    ("NLC", (2, 5, 3)),
    ("NCHW", (2, 3, 4, 5)),
    ("NHWC", (2, 4, 5, 3)),
    ("NCDHW", (2, 3, 2, 3, 4)),
    ("NDHWC", (2, 2, 3, 4, 3)),
]


def naive_nodes(fmap, layout):
    """Node rows of every image by explicit loops over pixels in row-major order."""
    channels_last = layout.endswith("C")
    spatial = fmap.shape[1:-1] if channels_last else fmap.shape[2:]
    out = []
    for b in range(fmap.size(0)):
        rows = []
        for p in torch.cartesian_prod(*[torch.arange(s) for s in spatial]).view(
                -1, len(spatial)).tolist():
            rows.append(fmap[(b, *p)] if channels_last else fmap[(b, slice(None), *p)])
        out.append(torch.stack(rows))
    return torch.stack(out)


def shares_memory(a, b):
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


@pytest.mark.parametrize("layout, shape", LAYOUTS)
def test_node_view_is_a_view_and_matches_a_loop(layout, shape):
    fmap = torch.randn(shape)
    nodes = as_nodes(fmap, layout)
    assert shares_memory(nodes.x, fmap)
    assert torch.equal(nodes.x, naive_nodes(fmap, layout))
    assert nodes.segments.kind == "uniform" and nodes.segments.num_segments == 1
    assert torch.equal(nodes.to_map(nodes.x), fmap)
    assert shares_memory(nodes.to_map(nodes.x), fmap)


def test_channels_last_memory_is_a_view_too():
    fmap = torch.randn(2, 3, 4, 5).contiguous(memory_format=torch.channels_last)
    nodes = as_nodes(fmap, "NCHW")
    assert shares_memory(nodes.x, fmap) and nodes.x.is_contiguous()
    assert torch.equal(nodes.x, naive_nodes(fmap, "NCHW"))


def test_non_contiguous_input_still_reads_the_right_pixels():
    base = torch.randn(2, 3, 6, 10)
    fmap = base[:, :, 1:5, ::3]
    assert torch.equal(as_nodes(fmap).x, naive_nodes(fmap, "NCHW"))


def test_layout_enum_properties():
    assert [m.value for m in Layout] == ["NCL", "NLC", "NCHW", "NHWC", "NCDHW", "NDHWC"]
    assert Layout("NDHWC").shape_text == "(B, D, H, W, C)"
    assert Layout.NCL.spatial_dims == 1 and not Layout.NCL.channels_last
    assert as_nodes(torch.randn(1, 2, 3, 3), Layout.NHWC).x.shape == (1, 6, 3)


def test_to_map_takes_any_feature_width():
    fmap = torch.randn(2, 3, 4, 5)
    nodes = as_nodes(fmap)
    out = nodes.to_map(nodes.x @ torch.randn(3, 7))
    assert out.shape == (2, 7, 4, 5)
    assert nodes_to_map(torch.zeros(4, 20, 2), "NHWC", (4, 5)).shape == (4, 4, 5, 2)


def test_ragged_list_rows_and_inverse():
    maps = [torch.randn(3, 2, 4), torch.randn(3, 5, 1), torch.randn(3, 1, 1)]
    nodes = as_nodes(maps)
    assert nodes.segments.kind == "csr"
    assert nodes.segments.counts.tolist() == [8, 5, 1]
    assert nodes.spatial == (5, 4) and nodes.sizes == ((2, 4), (5, 1), (1, 1))
    expected = torch.cat([naive_nodes(m.unsqueeze(0), "NCHW")[0] for m in maps])
    assert torch.equal(nodes.x, expected)
    back = nodes.to_map(nodes.x)
    assert all(torch.equal(a, b) for a, b in zip(back, maps))


def test_padded_batch_and_mask():
    maps = [torch.randn(2, 3, 2), torch.randn(2, 1, 4)]
    padded, mask = pad_images(maps, value=-1.0)
    assert padded.shape == (2, 2, 3, 4) and mask.shape == (2, 3, 4)
    assert torch.equal(padded[0, :, :3, :2], maps[0]) and torch.equal(padded[1, :, :1], maps[1])
    assert (padded[~mask.unsqueeze(1).expand_as(padded)] == -1).all()
    nodes = as_nodes(padded, mask=mask)
    assert shares_memory(nodes.x, padded)
    assert nodes.segments.kind == "mask" and nodes.segments.counts.tolist() == [6, 4]
    sums = nodes.readout(SumReadout())
    torch.testing.assert_close(sums, torch.stack([m.sum((1, 2)) for m in maps]))


def test_pad_images_channels_last_and_3d():
    padded, mask = pad_images([torch.ones(2, 2, 5), torch.ones(1, 3, 5)], "NHWC")
    assert padded.shape == (2, 2, 3, 5) and mask.sum().item() == 7
    vol, vmask = pad_images([torch.ones(1, 1, 2, 3), torch.ones(1, 2, 1, 1)], "NCDHW")
    assert vol.shape == (2, 1, 2, 2, 3) and vmask.sum((1, 2, 3)).tolist() == [6, 2]


def test_zero_images():
    nodes = as_nodes(torch.randn(0, 3, 4, 4))
    assert nodes.x.shape == (0, 16, 3) and nodes.num_images == 0
    assert nodes.to_map(nodes.x).shape == (0, 3, 4, 4)
    assert nodes.readout(SumReadout()).shape == (0, 3)


ERRORS = [
    ("rank", lambda: as_nodes(torch.randn(3, 4), "NCL"), r"fmap.*3-D tensor \(B, C, L\)"),
    ("rank-3d", lambda: as_nodes(torch.randn(1, 2, 3, 4), "NCDHW"),
     r"5-D tensor \(B, C, D, H, W\).*unsqueeze"),
    ("channels", lambda: as_nodes(torch.randn(1, 2, 3, 4), channels=3),
     r"fmap.*3 channels.*\(B, C, H, W\).*shape \(1, 2, 3, 4\)"),
    ("channels-nhwc", lambda: as_nodes(torch.randn(1, 2, 3, 4), "NHWC", channels=3),
     r"3 channels.*\(B, H, W, C\)"),
    ("layout", lambda: as_nodes(torch.randn(1, 2, 3, 4), "HWC"), "layout.*'NDHWC'.*'HWC'"),
    ("mask-batch", lambda: as_nodes(torch.randn(2, 1, 3, 3),
                                    mask=torch.ones(3, 3, 3, dtype=torch.bool)),
     r"mask.*\(2, 3, 3\)"),
    ("values", lambda: nodes_to_map(torch.zeros(2, 5, 3), "NCHW", (2, 3)),
     r"values.*\[\*, 6, F\]"),
    ("pad-empty", lambda: pad_images([]), "maps.*non-empty"),
]


@pytest.mark.parametrize("name, call, match", ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_input_raises_graphpool_error(name, call, match):
    with pytest.raises(GraphpoolError, match=match):
        call()
