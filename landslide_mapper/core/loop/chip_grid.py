"""The tile grid of a chip export and its spatial split into training and validation blocks.

Tiles sit on a regular grid with stride ``tile - overlap`` starting at the raster's top-left
corner; the last row and column reach past the raster's edge. The grid is cut into blocks of
``block`` x ``block`` tiles and a seeded share of whole blocks goes to validation; a training tile
that overlaps any validation block's pixels is to be dropped, so no ground is in both splits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Tile offsets along one axis: ``i * stride`` for ``i < n``, ``n = ceil((length - tile) /
    stride) + 1`` (one tile when ``length <= tile``); the last tile may reach past the edge."""
    n = 1 if length <= tile else math.ceil((length - tile) / stride) + 1
    return [i * stride for i in range(n)]


def choose_val_blocks(n_block_rows: int, n_block_cols: int, fraction: float,
                      seed: int) -> set[tuple[int, int]]:
    """A seeded share of whole blocks: ``round(fraction * n)``, at least one when ``n > 1``."""
    blocks = [(r, c) for r in range(n_block_rows) for c in range(n_block_cols)]
    if fraction <= 0 or len(blocks) < 2:
        return set()
    n_val = min(max(int(round(fraction * len(blocks))), 1), len(blocks) - 1)
    order = np.random.default_rng(seed).permutation(len(blocks))
    return {blocks[i] for i in order[:n_val]}


@dataclass
class ChipGrid:
    """The tile grid over the raster and its spatial split into training and validation blocks."""

    tile: int
    block: int
    rows: list[int]
    cols: list[int]
    val_blocks: set[tuple[int, int]]
    val_extents: list[tuple[int, int, int, int]] = field(default_factory=list)

    @classmethod
    def plan(cls, height: int, width: int, tile: int, overlap: int, block: int,
             val_fraction: float, seed: int) -> ChipGrid:
        """The grid over a ``height`` x ``width`` raster, with its seeded validation blocks."""
        stride = tile - overlap
        rows, cols = tile_starts(height, tile, stride), tile_starts(width, tile, stride)
        val_blocks = choose_val_blocks(math.ceil(len(rows) / block), math.ceil(len(cols) / block),
                                       val_fraction, seed)
        grid = cls(tile, block, rows, cols, val_blocks)
        grid.val_extents = [grid._block_extent(*b) for b in sorted(val_blocks)]
        return grid

    @property
    def tiles(self) -> int:
        return len(self.rows) * len(self.cols)

    def _block_extent(self, br: int, bc: int) -> tuple[int, int, int, int]:
        """Pixel rows and columns (start, end, start, end) that block ``(br, bc)``'s tiles cover."""
        r_ids = range(br * self.block, min((br + 1) * self.block, len(self.rows)))
        c_ids = range(bc * self.block, min((bc + 1) * self.block, len(self.cols)))
        return (self.rows[r_ids[0]], self.rows[r_ids[-1]] + self.tile,
                self.cols[c_ids[0]], self.cols[c_ids[-1]] + self.tile)

    def split_of(self, ri: int, ci: int) -> str:
        """``val`` when tile ``(ri, ci)`` of the grid lies in a validation block, else ``train``."""
        return "val" if (ri // self.block, ci // self.block) in self.val_blocks else "train"

    def touches_val(self, r0: int, c0: int) -> bool:
        """Whether the tile at pixel ``(r0, c0)`` overlaps any validation block's pixels."""
        t = self.tile
        return any(r0 < e[1] and e[0] < r0 + t and c0 < e[3] and e[2] < c0 + t
                   for e in self.val_extents)
