"""Tile-grid math and the blending window: pure functions, no I/O.

Tiles are square (``tile`` pixels) and step by ``stride = tile - overlap``. Along one axis of
``length`` pixels the origins are::

    n       = 1                                     if length <= tile
            = ceil((length - tile) / stride) + 1    otherwise
    origin_i = min(i * stride, length - tile)       i = 0 .. n-1

so the last partial tile is covered (``ceil``) and, when the raster is larger than a tile, shifted
inward to end exactly on the raster's edge (every tile lies inside the raster). A raster smaller
than one tile gets a single tile at 0 that reaches past the edge; the reader pads it.

Overlapping predictions are blended with a weight window: a raised-cosine (Hann) ramp over the
``overlap`` pixels of each side that faces another tile, and a flat 1 on sides that lie on the
raster's own border (nothing to blend with there, so no down-weighting). The ramp never reaches 0,
so the weight sum of every pixel is > 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def tile_origins(length: int, tile: int, overlap: int) -> list[int]:
    """Tile origins along one axis of ``length`` pixels (formula in the module docstring)."""
    if length <= 0:
        raise ValueError(f"length must be > 0, found {length}")
    if tile <= 0 or not 0 <= overlap < tile:
        raise ValueError(f"expected tile > 0 and 0 <= overlap < tile, found {tile}, {overlap}")
    if length <= tile:
        return [0]
    stride = tile - overlap
    n = math.ceil((length - tile) / stride) + 1
    return [min(i * stride, length - tile) for i in range(n)]


@dataclass(frozen=True)
class Tile:
    """One tile of the grid: its origin, grid position and which of its sides are raster border."""

    index: int
    row: int
    col: int
    grid_row: int
    grid_col: int
    top: bool
    bottom: bool
    left: bool
    right: bool
    last_in_row: bool


@dataclass(frozen=True)
class TileGrid:
    """All tiles covering a ``height`` x ``width`` raster, row by row."""

    height: int
    width: int
    tile: int
    overlap: int
    rows: tuple[int, ...]
    cols: tuple[int, ...]

    @classmethod
    def build(cls, height: int, width: int, tile: int, overlap: int) -> "TileGrid":
        return cls(height, width, tile, overlap,
                   tuple(tile_origins(height, tile, overlap)),
                   tuple(tile_origins(width, tile, overlap)))

    def __len__(self) -> int:
        return len(self.rows) * len(self.cols)

    def tiles(self):
        """Tiles in row-major order (the order the engine streams and writes them)."""
        return self.tiles_for_columns(0, self.width)

    def tiles_for_columns(self, c0: int, c1: int):
        """The tiles reaching into columns ``c0 .. c1 - 1``, in row-major order; ``last_in_row``
        marks the last of them in each tile row."""
        n_cols = len(self.cols)
        js = [j for j, c in enumerate(self.cols) if c < c1 and c + self.tile > c0]
        for i, r in enumerate(self.rows):
            for k, j in enumerate(js):
                c = self.cols[j]
                yield Tile(
                    index=i * n_cols + j, row=r, col=c, grid_row=i, grid_col=j,
                    top=r == 0, bottom=r + self.tile >= self.height,
                    left=c == 0, right=c + self.tile >= self.width,
                    last_in_row=k == len(js) - 1,
                )

    def final_row_after(self, grid_row: int) -> int:
        """Rows above this one are complete once tile row ``grid_row`` has been blended."""
        if grid_row + 1 < len(self.rows):
            return self.rows[grid_row + 1]
        return self.height


def column_blocks(width: int, max_width: int, block: int) -> list[tuple[int, int]]:
    """Column ranges ``(c0, c1)`` covering ``width`` columns, each at most ``max_width`` wide
    (rounded down to whole ``block`` s, at least one): the raster is blended one range at a time.

    A pixel's blended value needs every tile covering it, so the tiles reaching across a boundary
    run for both ranges, each keeping only its own columns.
    """
    step = max(block, max_width // block * block)
    return [(c, min(c + step, width)) for c in range(0, width, step)]


def ramp(overlap: int) -> np.ndarray:
    """Raised-cosine ramp over ``overlap`` pixels, sampled at pixel centres: all in (0, 1)."""
    if overlap <= 0:
        return np.ones(0, np.float32)
    x = (np.arange(overlap, dtype=np.float64) + 0.5) / overlap
    return (0.5 - 0.5 * np.cos(np.pi * x)).astype(np.float32)


def axis_weights(tile: int, overlap: int, start_border: bool, end_border: bool) -> np.ndarray:
    """One axis of a tile's weight window: ramps at both ends unless that end is raster border."""
    r = ramp(overlap)
    w = np.ones(tile, np.float32)
    if overlap:
        if not start_border:
            w[:overlap] = np.minimum(w[:overlap], r)
        if not end_border:
            w[-overlap:] = np.minimum(w[-overlap:], r[::-1])
    return w


def blend_weights(tile: int, overlap: int, *, top: bool = False, bottom: bool = False,
                  left: bool = False, right: bool = False) -> np.ndarray:
    """Weight window of one tile (``tile`` x ``tile`` float32, all > 0).

    ``top`` .. ``right`` say which sides lie on the raster's border: those are not ramped. The
    window is separable: the outer product of a row profile and a column profile.
    """
    rows = axis_weights(tile, overlap, top, bottom)
    return np.outer(rows, axis_weights(tile, overlap, left, right))


def tile_weights(grid: TileGrid, t: Tile) -> np.ndarray:
    """The weight window of tile ``t`` within ``grid``."""
    return blend_weights(grid.tile, grid.overlap,
                         top=t.top, bottom=t.bottom, left=t.left, right=t.right)


def axis_weight_sums(length: int, tile: int, overlap: int) -> np.ndarray:
    """Sum over the tiles of one axis of their weight profiles (float64, length ``length``)."""
    total = np.zeros(length, np.float64)
    origins = tile_origins(length, tile, overlap)
    for o in origins:
        w = axis_weights(tile, overlap, o == 0, o + tile >= length)
        n = min(tile, length - o)
        total[o:o + n] += w[:n]
    return total


def weight_sums(grid: TileGrid) -> tuple[np.ndarray, np.ndarray]:
    """Row and column factors of the total blending weight: ``sum[r, c] == rows[r] * cols[c]``.

    Every tile's window is the outer product of a row profile (set by its row origin) and a column
    profile (set by its column origin), and the grid holds every pair of origins, so the sum over
    all tiles factorizes. The engine divides by it instead of accumulating weights per pixel.
    """
    return (axis_weight_sums(grid.height, grid.tile, grid.overlap),
            axis_weight_sums(grid.width, grid.tile, grid.overlap))
