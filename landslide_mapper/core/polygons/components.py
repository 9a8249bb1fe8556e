"""Landslide components in pixel space, and the order finished polygons are written in.

Geometry is built in pixel space (integer coordinates, exact unions) and moved to the raster's CRS
with its geotransform only when a polygon is finished. Finished polygons are written in the order
of their last row, then their bounds, so the output does not depend on the strip height.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from affine import Affine

from .terrain_stats import TerrainStats


@dataclass
class _Component:
    """A connected set of landslide pixels, possibly still growing (pixel-space geometry)."""

    pieces: list[Any]
    pixels: int
    prob_sum: float
    prob_n: int
    prob_max: float
    bounds: list[float]  # minx, miny, maxx, maxy
    vertices: int = 0    # of its pieces together
    terrain: TerrainStats | None = None  # slope/elevation of its pixels, when rasters are given

    def absorb(self, other: "_Component") -> None:
        self.pieces += other.pieces
        self.vertices += other.vertices
        self.add_pixels(other)
        b, o = self.bounds, other.bounds
        self.bounds = [min(b[0], o[0]), min(b[1], o[1]), max(b[2], o[2]), max(b[3], o[3])]

    def add_pixels(self, other: "_Component") -> None:
        """Count ``other``'s pixels and probabilities as this component's (not its geometry)."""
        self.pixels += other.pixels
        self.prob_sum += other.prob_sum
        self.prob_n += other.prob_n
        self.prob_max = max(self.prob_max, other.prob_max)
        if other.terrain is not None:
            if self.terrain is None:
                self.terrain = TerrainStats()
            self.terrain.add(other.terrain)


@dataclass(order=True)
class _Finished:
    """A finished polygon in pixel space, ordered for writing."""

    key: tuple
    geometry: Any = field(compare=False)
    comp: _Component = field(compare=False)
    point: Any = field(default=None, compare=False)  # an interior point, for pending islands


def _keys(geoms: np.ndarray, pixels: list[int]) -> list[tuple]:
    """Write order: last row, then bounds, pixel count and the normalized shape (never ties)."""
    if len(geoms) == 0:
        return []
    bounds = shapely.bounds(geoms).tolist()
    wkb = shapely.to_wkb(shapely.normalize(geoms)).tolist()
    return [(b[3], b[1], b[0], b[2], p, w) for b, p, w in zip(bounds, pixels, wkb)]


def _key(geom: Any, pixels: int) -> tuple:
    return _keys(np.array([geom], dtype=object), [pixels])[0]


def _finished(done: list[tuple[Any, _Component]]) -> list[_Finished]:
    """Finished components (geometry, stats) as polygons keyed for writing."""
    # Drop the vertices left on strip seams, so a polygon is the same whatever the strips.
    geoms = shapely.simplify(np.array([g for g, _ in done], dtype=object), 0)
    keys = _keys(geoms, [c.pixels for _, c in done])
    return [_Finished(k, g, c) for k, g, (_, c) in zip(keys, geoms, done)]


def _pixels_to_crs(geoms: Any, transform: Affine) -> Any:
    """Pixel-space geometries moved to the raster's CRS with its geotransform."""
    t = transform
    return shapely.transform(geoms, lambda xy: np.column_stack(t * (xy[:, 0], xy[:, 1])))
