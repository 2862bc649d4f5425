"""Grid graphs and image <-> PyG batch conversions."""
import networkx as nx
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.nn import GCNConv
from torch_geometric.utils import grid as pyg_grid

from graphpool import GraphpoolError, MeanReadout, readout
from graphpool.grid import (GlobalPool2d, batch_to_image, grid_graph, image_to_batch,
                            pad_images)

SIZES = [(1, 1), (1, 5), (4, 1), (2, 2), (3, 4), (5, 5)]


def edge_set(edge_index):
    return set(map(tuple, edge_index.t().tolist()))


def naive_grid_edges(h, w, connectivity, self_loops):
    """Every ordered pixel pair within distance 1 (Manhattan for 4, Chebyshev for 8)."""
    edges = set()
    for i in range(h):
        for j in range(w):
            for k in range(h):
                for m in range(w):
                    di, dj = abs(i - k), abs(j - m)
                    near = di + dj == 1 if connectivity == 4 else max(di, dj) == 1
                    if near or (self_loops and di == dj == 0):
                        edges.add((i * w + j, k * w + m))
    return edges


@pytest.mark.parametrize("h, w", SIZES)
@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("self_loops", [False, True])
def test_grid_graph_equals_a_naive_loop(h, w, connectivity, self_loops):
    edges = grid_graph(h, w, connectivity, self_loops)
    assert edges.dtype == torch.long
    assert edge_set(edges) == naive_grid_edges(h, w, connectivity, self_loops)
    assert edges.size(1) == len(edge_set(edges))                 # no duplicates
    keys = edges[0] * h * w + edges[1]
    assert torch.equal(keys, keys.sort().values)                  # coalesced order


@pytest.mark.parametrize("h, w", SIZES)
def test_four_connectivity_equals_networkx(h, w):
    g = nx.grid_2d_graph(h, w)
    expected = {(i * w + j, k * w + m) for (i, j), (k, m) in g.edges}
    expected |= {(b, a) for a, b in expected}
    assert edge_set(grid_graph(h, w)) == expected


@pytest.mark.parametrize("h, w", SIZES)
def test_eight_connectivity_with_loops_equals_pyg_grid(h, w):
    edges, pos = grid_graph(h, w, connectivity=8, self_loops=True, return_pos=True)
    ref_edges, ref_pos = pyg_grid(h, w)
    assert edge_set(edges) == edge_set(ref_edges)
    assert torch.equal(pos, ref_pos)


def test_image_to_batch_nodes_edges_and_positions():
    fmap = torch.randn(2, 3, 2, 3)
    batch = image_to_batch(fmap, connectivity=8)
    assert batch.num_graphs == 2 and batch.batch.tolist() == [0] * 6 + [1] * 6
    for b in range(2):
        for i in range(2):
            for j in range(3):
                v = b * 6 + i * 3 + j
                assert torch.equal(batch.x[v], fmap[b, :, i, j])
                assert batch.pos[v].tolist() == [j, 1 - i]
    expected = edge_set(grid_graph(2, 3, 8)) | {(a + 6, c + 6) for a, c in
                                                 edge_set(grid_graph(2, 3, 8))}
    assert edge_set(batch.edge_index) == expected
    assert batch.image_size.tolist() == [[2, 3], [2, 3]]


def test_list_and_mask_give_each_image_its_own_grid():
    maps = [torch.randn(2, 3, 4), torch.randn(2, 1, 1), torch.randn(2, 2, 2)]
    padded, mask = pad_images(maps)
    for batch in [image_to_batch(maps), image_to_batch(padded, mask=mask)]:
        offset = 0
        for b, m in enumerate(maps):
            h, w = m.shape[1:]
            members = (batch.batch == b).nonzero().flatten()
            assert members.tolist() == list(range(offset, offset + h * w))
            assert torch.equal(batch.x[members], m.flatten(1).t())
            inside = (batch.batch[batch.edge_index[0]] == b)
            assert edge_set(batch.edge_index[:, inside] - offset) == edge_set(grid_graph(h, w))
            offset += h * w
        torch.testing.assert_close(MeanReadout()(batch.x, batch),
                                   torch.stack([m.mean((1, 2)) for m in maps]))


def test_arbitrary_mask_keeps_edges_between_kept_pixels():
    fmap = torch.arange(9.).view(1, 1, 3, 3)
    mask = torch.tensor([[[True, True, False], [False, True, True], [False, False, True]]])
    batch = image_to_batch(fmap, mask=mask)
    assert batch.x.flatten().tolist() == [0., 1., 4., 5., 8.]
    assert edge_set(batch.edge_index) == {(0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 2),
                                          (3, 4), (4, 3)}


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_batch_to_image_inverts_uniform_batches_exactly(layout):
    fmap = torch.randn(3, 4, 5, 6) if layout == "NCHW" else torch.randn(3, 5, 6, 4)
    batch = image_to_batch(fmap, layout)
    assert torch.equal(batch_to_image(batch.x, batch, layout), fmap)
    # a node permutation that keeps pos and batch aligned is undone too
    perm = torch.randperm(batch.num_nodes)
    batch.x, batch.pos, batch.batch = batch.x[perm], batch.pos[perm], batch.batch[perm]
    assert torch.equal(batch_to_image(batch.x, batch, layout), fmap)


def test_batch_to_image_of_ragged_images_needs_the_mask():
    maps = [torch.randn(2, 3, 4), torch.randn(2, 2, 2)]
    batch = image_to_batch(maps)
    with pytest.raises(GraphpoolError, match="return_mask.*different sizes.*got False"):
        batch_to_image(batch.x, batch)
    fmap, mask = batch_to_image(batch.x, batch, return_mask=True)
    padded, expected_mask = pad_images(maps)
    assert torch.equal(fmap, padded) and torch.equal(mask, expected_mask)


def test_a_pyg_layer_runs_on_cnn_features_and_reads_out_like_gap():
    torch.manual_seed(0)
    fmap = torch.randn(2, 4, 5, 5)
    batch = image_to_batch(fmap, self_loops=False)
    conv = GCNConv(4, 6)
    h = conv(batch.x, batch.edge_index)
    hmap = batch_to_image(h, batch)
    assert hmap.shape == (2, 6, 5, 5)
    torch.testing.assert_close(readout(h, batch, "mean"), GlobalPool2d("mean")(hmap))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5), st.integers(1, 5)), min_size=1, max_size=4),
       st.sampled_from([4, 8]), st.booleans())
def test_edge_count_formula(sizes, connectivity, self_loops):
    maps = [torch.zeros(1, h, w) for h, w in sizes]
    batch = image_to_batch(maps, connectivity=connectivity, self_loops=self_loops)
    expected = 0
    for h, w in sizes:
        expected += 2 * (h * (w - 1) + w * (h - 1))
        if connectivity == 8:
            expected += 4 * (h - 1) * (w - 1)
        if self_loops:
            expected += h * w
    assert batch.edge_index.size(1) == expected


ERRORS = [
    ("connectivity", lambda: grid_graph(3, 3, connectivity=6), "connectivity.*4 or 8.*6"),
    ("connectivity-batch", lambda: image_to_batch(torch.randn(1, 1, 2, 2), connectivity=5),
     "connectivity.*4 or 8"),
    ("height", lambda: grid_graph(0, 3), "height.*int >= 1.*0"),
    ("width", lambda: grid_graph(2, 2.5), "width.*int >= 1.*2.5"),
    ("layout-3d", lambda: image_to_batch(torch.randn(1, 1, 2, 2, 2), "NCDHW"),
     "layout.*'NCHW', 'NHWC'"),
    ("rank", lambda: image_to_batch(torch.randn(1, 2, 2)), "fmap.*4-D"),
    ("mask", lambda: image_to_batch(torch.randn(1, 1, 2, 2), mask=torch.ones(1, 4).bool()),
     r"mask.*\(1, 2, 2\)"),
    ("not-a-grid-batch", lambda: batch_to_image(torch.zeros(3, 1), object()),
     "batch.*made by image_to_batch"),
    ("values", lambda: batch_to_image(torch.zeros(3, 1), image_to_batch(torch.randn(1, 1, 2, 2))),
     r"values.*\[4, F\]"),
]


@pytest.mark.parametrize("name, call, match", ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_input_raises_graphpool_error(name, call, match):
    with pytest.raises(GraphpoolError, match=match):
        call()
