"""Hole filling, and the islands it absorbs.

A hole smaller than ``fill_holes_m2`` is filled, and a smaller component lying in it (an island)
becomes part of the polygon that surrounds it instead of overlapping it. A finished component small
enough to be such an island is held back until nothing can still surround it: the rim of a hole is
a 4-connected ring of pixels at most one row below the hole, and a fillable hole of ``n`` pixels
spans at most ``n`` rows, so ``n + 2`` rows after the island's first row its rim is one component;
if no open component's bounds contain the island by then, it is written on its own.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import shapely
from affine import Affine
from shapely.geometry import Polygon, box

from .components import _Finished, _key, _pixels_to_crs
from .geometry import GroundMeasure


def _hold_rows(ds: Any, measure: GroundMeasure, fill_holes_m2: float) -> int:
    """Rows past an island's first row after which its hole's rim is one component (0 = off)."""
    if fill_holes_m2 <= 0:
        return 0
    corners = [box(0, 0, 1, 1), box(0, ds.height - 1, 1, ds.height)]
    smallest_pixel = float(np.min(measure.area(_pixels_to_crs(np.array(corners), ds.transform))))
    return int(math.ceil(fill_holes_m2 / smallest_pixel)) + 2


def _cell(xy: Any) -> tuple[int, int]:
    """The 16 x 16-pixel cell of a pixel-space point (index of pending islands)."""
    return int(xy[0] // 16), int(xy[1] // 16)


class _PendingIslands:
    """Finished polygons held back because they may still be islands of a polygon to come."""

    def __init__(self, hold_rows: int) -> None:
        self.hold_rows = hold_rows
        self.items: list[_Finished] = []     # small components that may still be islands
        self.cells: dict[tuple[int, int], list[_Finished]] = {}  # items, by interior point

    def __len__(self) -> int:
        return len(self.items)

    def first_key(self) -> tuple | None:
        """The write key of the first pending island (nothing after it may be written yet)."""
        return min(self.items).key if self.items else None

    def park(self, item: _Finished) -> None:
        """Hold a possible island back, indexed by an interior point."""
        # An island touches its hole's rim at most at a corner: an interior point of it decides.
        item.point = tuple(shapely.get_coordinates(item.geometry.representative_point())[0])
        self.items.append(item)
        self.cells.setdefault(_cell(item.point), []).append(item)

    def take_in(self, holes: list[Any]) -> list[_Finished]:
        """Remove and return the pending islands lying in ``holes`` (pixel-space polygons)."""
        found: list[_Finished] = []
        seen: set[int] = set()
        for hole in holes:
            x0, y0, x1, y1 = hole.bounds
            (cx0, cy0), (cx1, cy1) = _cell((x0, y0)), _cell((x1, y1))
            for cx in range(cx0, cx1 + 1):
                for cy in range(cy0, cy1 + 1):
                    for island in self.cells.get((cx, cy), ()):
                        px, py = island.point
                        if (x0 < px < x1 and y0 < py < y1 and id(island) not in seen
                                and shapely.contains_xy(hole, px, py)):
                            seen.add(id(island))
                            found.append(island)
        if found:
            self._unpark(found)
        return found

    def release(self, rows_read: int, open_bounds: np.ndarray) -> list[_Finished]:
        """Remove and return the pending islands that no component can still surround.

        Before ``hold_rows`` rows past an island's first row are read, the rim of its hole may still
        be in several pieces (e.g. joined through a diagonal pinch above and a row below), none of
        whose bounds contain it; after that the rim is one component.
        """
        if not self.items:
            return []
        bounds = np.array([(p.key[2], p.key[1], p.key[3], p.key[0]) for p in self.items])
        keep = rows_read < bounds[:, 1] + self.hold_rows
        check = np.flatnonzero(~keep)
        if len(open_bounds) and check.size:
            tree = shapely.STRtree(shapely.box(*open_bounds.T))
            hits = tree.query(shapely.box(*bounds[check].T), predicate="covered_by")
            keep[check[np.unique(hits[0])]] = True
        released = [p for p, k in zip(self.items, keep) if not k]
        if released:
            self._unpark(released)
        return released

    def drain(self) -> list[_Finished]:
        """Remove and return every pending island (nothing is left to surround them)."""
        items = self.items
        self.items = []
        self.cells = {}
        return items

    def _unpark(self, items: list[_Finished]) -> None:
        gone = {id(i) for i in items}
        self.items = [p for p in self.items if id(p) not in gone]
        for item in items:
            self.cells[_cell(item.point)].remove(item)


class _HoleFiller:
    """Fills the small holes of finished polygons and parks the possible islands."""

    def __init__(self, measure: GroundMeasure, transform: Affine, fill_holes_m2: float,
                 islands: _PendingIslands) -> None:
        self.measure = measure
        self.transform = transform
        self.fill_holes_m2 = fill_holes_m2
        self.islands = islands

    def fill_holes(self, items: list[_Finished]) -> list[_Finished]:
        """Fill small holes, absorbing pending islands; park small results as possible islands."""
        if not items:
            return []
        geoms = np.array([i.geometry for i in items], dtype=object)
        # Filling holes leaves the exterior as it is: its area decides whether a polygon may be
        # an island of another one.
        outer_area = self._exterior_areas(geoms)
        holed = (shapely.get_num_interior_rings(geoms) > 0) | \
            (shapely.get_type_id(geoms) != shapely.GeometryType.POLYGON)
        ready = []
        # Ascending last row: an island is always handled before what surrounds it.
        for item, area, has_holes in zip(items, outer_area.tolist(), holed.tolist()):
            if has_holes:
                item = self._fill(item)
            if area < self.fill_holes_m2:
                self.islands.park(item)
            else:
                ready.append(item)
        return ready

    def _areas(self, geoms: np.ndarray) -> np.ndarray:
        """Ground areas of pixel-space polygons."""
        return self.measure.area(_pixels_to_crs(geoms, self.transform))

    def _exterior_areas(self, geoms: np.ndarray) -> np.ndarray:
        parts, owner = shapely.get_parts(geoms, return_index=True)
        shells = shapely.polygons(shapely.get_exterior_ring(parts))
        areas = self._areas(shells)
        return np.bincount(owner, weights=areas, minlength=len(geoms))

    def _fill(self, item: _Finished) -> _Finished:
        """Drop the interior rings smaller than ``fill_holes_m2`` and absorb their islands."""
        parts = shapely.get_parts(item.geometry)
        rings = [list(p.interiors) for p in parts]
        flat = [Polygon(r) for rs in rings for r in rs]
        if not flat:
            return item
        small = (self._areas(np.array(flat, dtype=object)) < self.fill_holes_m2).tolist()
        if not any(small):
            return item
        filled = [h for h, f in zip(flat, small) if f]
        kept, i = [], 0
        for part, rs in zip(parts, rings):
            flags = small[i:i + len(rs)]
            kept.append(Polygon(part.exterior, [r for r, f in zip(rs, flags) if not f]))
            i += len(rs)
        geom = kept[0] if len(kept) == 1 else shapely.MultiPolygon(kept)
        # The islands are not written: their pixels count as the surrounding polygon's.
        for island in self.islands.take_in(filled):
            item.comp.add_pixels(island.comp)
        return _Finished(_key(geom, item.comp.pixels), geom, item.comp)
