"""Tile-grid math and blending weights (pure functions)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from landslide_mapper.core.mapping.tiling import (
    TileGrid,
    blend_weights,
    ramp,
    tile_origins,
    weight_sums,
)

lengths = st.integers(min_value=1, max_value=3000)
tiles = st.sampled_from([32, 64, 96, 128, 256, 512])


@st.composite
def axis(draw):
    tile = draw(tiles)
    overlap = draw(st.integers(min_value=0, max_value=tile - 1))
    return draw(lengths), tile, overlap


@settings(deadline=None)  # timings on a shared machine are not what is tested
@given(axis())
def test_every_pixel_covered(args):
    length, tile, overlap = args
    covered = np.zeros(length, bool)
    for o in tile_origins(length, tile, overlap):
        covered[o:o + tile] = True
    assert covered.all()


@settings(deadline=None)
@given(axis())
def test_tiles_inside_raster_when_larger_than_a_tile(args):
    length, tile, overlap = args
    origins = tile_origins(length, tile, overlap)
    if length <= tile:
        assert origins == [0]
    else:
        assert all(0 <= o and o + tile <= length for o in origins)
        assert origins[-1] + tile == length


@settings(deadline=None)
@given(axis())
def test_strides_and_count(args):
    length, tile, overlap = args
    origins = tile_origins(length, tile, overlap)
    stride = tile - overlap
    expected_n = 1 if length <= tile else math.ceil((length - tile) / stride) + 1
    assert len(origins) == expected_n
    steps = np.diff(origins)
    assert (steps[:-1] == stride).all() if len(steps) > 1 else True
    if len(steps):
        assert 0 < steps[-1] <= stride  # the last tile is shifted inward, never outward
    assert origins == sorted(set(origins))


def test_known_grid():
    # 200 px, tile 64, overlap 16 -> stride 48: 0, 48, 96, then the last one ends at 200.
    assert tile_origins(200, 64, 16) == [0, 48, 96, 136]
    assert tile_origins(64, 64, 16) == [0]
    assert tile_origins(10, 64, 0) == [0]
    assert tile_origins(128, 64, 0) == [0, 64]


def test_grid_rows_finish_in_order():
    g = TileGrid.build(200, 130, 64, 16)
    ts = list(g.tiles())
    assert len(ts) == len(g) == 4 * 3
    assert [t.index for t in ts] == list(range(12))
    assert sum(t.last_in_row for t in ts) == 4
    assert g.final_row_after(0) == 48 and g.final_row_after(3) == 200
    first, last = ts[0], ts[-1]
    assert first.top and first.left and not first.bottom and not first.right
    assert last.bottom and last.right and not last.top and not last.left


@settings(deadline=None)
@given(tiles, st.data())
def test_weights_positive_and_flat_on_border(tile, data):
    overlap = data.draw(st.integers(min_value=0, max_value=tile - 1))
    sides = data.draw(st.tuples(*[st.booleans()] * 4))
    w = blend_weights(tile, overlap, top=sides[0], bottom=sides[1], left=sides[2], right=sides[3])
    assert w.shape == (tile, tile) and w.dtype == np.float32
    assert (w > 0).all() and (w <= 1).all()
    if all(sides):
        assert (w == 1).all()


def test_ramp_is_hann_and_complementary():
    r = ramp(16).astype(np.float64)
    x = (np.arange(16) + 0.5) / 16
    np.testing.assert_allclose(r, np.sin(np.pi * x / 2) ** 2, atol=1e-6)
    # Two tiles overlapping by exactly the ramp length sum to 1: a constant field stays constant.
    np.testing.assert_allclose(r + r[::-1], 1.0, atol=1e-6)


@settings(deadline=None)
@given(st.integers(1, 200), st.integers(1, 200), st.sampled_from([32, 64]), st.data())
def test_weight_sums_factorize_and_never_vanish(height, width, tile, data):
    overlap = data.draw(st.integers(min_value=0, max_value=tile - 8))  # stride >= 8: few tiles
    g = TileGrid.build(height, width, tile, overlap)
    total = np.zeros((height + tile, width + tile))
    for t in g.tiles():  # brute force: add every tile's window
        w = blend_weights(tile, overlap, top=t.top, bottom=t.bottom, left=t.left, right=t.right)
        total[t.row:t.row + tile, t.col:t.col + tile] += w
    total = total[:height, :width]
    rows, cols = weight_sums(g)
    np.testing.assert_allclose(np.outer(rows, cols), total, rtol=1e-6)
    assert total.min() > 0.25
