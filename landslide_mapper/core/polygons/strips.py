"""Polygonizing the mask strip by strip and joining the pieces into components across strips.

Each strip is polygonized with 4-connectivity (``rasterio.features.shapes``); pieces that continue
across a strip boundary (pixels sharing an edge on the two boundary rows, never a corner only) are
joined with a union-find and their pixel count, probability sum and maximum (and slope and
elevation statistics, :mod:`.terrain_stats`) are added up. A
component is finished as soon as it has no pixel on the last row read, and is then handed on, so
memory holds only the current strip and the components still open.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from affine import Affine
from rasterio import features

from ..errors import InputError
from .components import _Component
from .terrain_stats import TerrainStats, label_stats

#: Largest outline (vertices of a component's pieces together) vectorized: about 0.3 GB to join.
MAX_COMPONENT_VERTICES = 500_000


def _strip_pieces(mask: np.ndarray, prob: np.ndarray | None, row: int,
                  terrain: tuple[np.ndarray | None, np.ndarray | None] | None = None
                  ) -> tuple[list[Any], list[_Component], np.ndarray, np.ndarray]:
    """Polygonize one strip: pieces (pixel space, rows offset by ``row``), their stats, and the
    1-based piece index on the strip's first and last rows (0 = no landslide). ``terrain``:
    the strip's (slope, elevation), each None when not given (:mod:`.terrain_stats`)."""
    height, width = mask.shape
    where = Affine.translation(0, row)
    # The GeoJSON-like mappings are kept for rasterize: faster than shapely's __geo_interface__.
    raw = [g for g, _ in features.shapes(mask.view(np.uint8), mask=mask, connectivity=4,
                                         transform=where)]
    arr = _polygons(raw)
    geoms = list(arr)
    n = len(geoms)
    if n == 0:
        empty = np.zeros(width, dtype=np.int64)
        return [], [], empty, empty
    pixels = np.rint(shapely.area(arr)).astype(np.int64)
    vertices = shapely.get_num_coordinates(arr)
    ids = np.arange(1, n + 1)
    bounds = shapely.bounds(arr)
    psum = np.zeros(n + 1)
    pn = np.zeros(n + 1, dtype=np.int64)
    pmax = np.full(n + 1, -np.inf)
    per_piece: list[TerrainStats | None] = [None] * n
    if prob is not None or terrain is not None:
        labels = features.rasterize(zip(raw, ids.tolist()), out_shape=(height, width),
                                    transform=where, fill=0, dtype="int32")
        if prob is not None:
            ok = (labels > 0) & ~np.isnan(prob)
            lab, val = labels[ok], prob[ok]
            psum = np.bincount(lab, weights=val, minlength=n + 1)
            pn = np.bincount(lab, minlength=n + 1)
            np.maximum.at(pmax, lab, val)
        if terrain is not None:
            per_piece = list(label_stats(labels, n, *terrain))
        top, bottom = labels[0].astype(np.int64), labels[-1].astype(np.int64)
    else:
        top = _row_labels(raw, bounds[:, 1] == row, width, row)
        bottom = _row_labels(raw, bounds[:, 3] == row + height, width, row + height - 1)
    comps = [
        _Component([g], int(pixels[i]), float(psum[i + 1]), int(pn[i + 1]), float(pmax[i + 1]),
                   list(bounds[i]), int(vertices[i]), per_piece[i])
        for i, g in enumerate(geoms)
    ]
    return geoms, comps, top, bottom


def _polygons(rings_of: list[dict]) -> np.ndarray:
    """GeoJSON-like polygons (from ``features.shapes``) as a shapely array, built in one call."""
    coords: list = []
    ring_end = [0]
    poly_end = [0]
    for g in rings_of:
        for ring in g["coordinates"]:
            coords.extend(ring)
            ring_end.append(len(coords))
        poly_end.append(len(ring_end) - 1)
    if len(poly_end) == 1:
        return np.empty(0, dtype=object)
    return shapely.from_ragged_array(shapely.GeometryType.POLYGON, np.asarray(coords, dtype=float),
                                     (np.asarray(ring_end), np.asarray(poly_end)))


def _row_labels(geoms: list[Any], touching: np.ndarray, width: int, row: int) -> np.ndarray:
    """1-based index of the piece covering each pixel of one row (only pieces touching it)."""
    shapes = [(geoms[i], i + 1) for i in np.flatnonzero(touching)]
    if not shapes:
        return np.zeros(width, dtype=np.int64)
    out = features.rasterize(shapes, out_shape=(1, width), transform=Affine.translation(0, row),
                             fill=0, dtype="int32")
    return out[0].astype(np.int64)


class _Merger:
    """Joins strip pieces into components and yields them, in pixel space, once finished.

    Refuses (InputError naming ``source``) a component whose outline grows past
    :data:`MAX_COMPONENT_VERTICES`: joining and finishing it would take memory and time without
    bound, and such a region is noise (a speckled mask), not a landslide.
    """

    def __init__(self, width: int, source: str = "Mask raster") -> None:
        self.source = source
        self.parent: dict[int, int] = {}
        self.open: dict[int, _Component] = {}      # root id -> component still growing
        self.prev_bottom = np.zeros(width, dtype=np.int64)  # root ids on the last row read
        self.next_id = 1

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        ca, cb = self.open[ra], self.open[rb]
        if len(ca.pieces) < len(cb.pieces):
            ra, rb, ca, cb = rb, ra, cb, ca
        ca.absorb(cb)
        self.parent[rb] = ra
        del self.open[rb]

    def add_strip(self, mask: np.ndarray, prob: np.ndarray | None, row: int,
                  last: bool, terrain: tuple[np.ndarray | None, np.ndarray | None] | None = None
                  ) -> list[tuple[Any, _Component]]:
        """Add one strip; return the components it finished (geometry, stats)."""
        geoms, comps, top, bottom = _strip_pieces(mask, prob, row, terrain)
        base = self.next_id - 1
        self.next_id += len(comps)
        link = (self.prev_bottom > 0) & (top > 0)
        pairs = np.unique(np.stack([self.prev_bottom[link], top[link] + base]), axis=1) \
            if link.any() else np.zeros((2, 0), dtype=np.int64)
        linked = set(pairs[1].tolist())
        at_bottom = set() if last else set((np.unique(bottom[bottom > 0]) + base).tolist())
        done: list[tuple[Any, _Component]] = []
        for i, comp in enumerate(comps):
            gid = base + i + 1
            if gid in linked or gid in at_bottom:
                self.parent[gid] = gid
                self.open[gid] = comp
            else:
                done.append((geoms[i], comp))
        touched = {self.find(int(r)) for r in np.unique(self.prev_bottom[self.prev_bottom > 0])}
        for a, b in pairs.T.tolist():
            self.union(a, b)
        touched = {self.find(r) for r in touched} | {self.find(g) for g in linked | at_bottom}
        self._check_size([*comps, *(self.open[r] for r in touched)], row + mask.shape[0])
        still_open = {self.find(g) for g in at_bottom}
        for root in sorted(touched - still_open):
            comp = self.open.pop(root)
            geom = comp.pieces[0] if len(comp.pieces) == 1 else shapely.union_all(comp.pieces)
            done.append((geom, comp))
        # Forget finished ids; keep the union-find only for what is still open.
        self.parent = {g: self.find(g) for g in self.parent if self.find(g) in still_open}
        if last or bottom.max(initial=0) == 0:
            self.prev_bottom = np.zeros_like(self.prev_bottom)
        else:
            roots = np.zeros(len(comps) + 1, dtype=np.int64)
            for g in at_bottom:
                roots[g - base] = self.find(g)
            self.prev_bottom = roots[bottom]
        return done

    def _check_size(self, comps: list[_Component], rows_read: int) -> None:
        big = max(comps, key=lambda c: c.vertices, default=None)
        if big is None or big.vertices <= MAX_COMPONENT_VERTICES:
            return
        x0, y0, x1, y1 = big.bounds
        raise InputError(
            f"{self.source}: expected separate landslide areas, found one connected region "
            f"whose outline has {big.vertices:,} vertices after {rows_read} rows (more than "
            f"{MAX_COMPONENT_VERTICES:,}; {big.pixels:,} pixels spanning {x1 - x0:.0f} x "
            f"{y1 - y0:.0f} pixels, holed or ragged like noise). Clean the mask first (a higher "
            "threshold, or gdal_sieve.py / QGIS 'Sieve' to drop specks and fill pinholes) or "
            "vectorize a smaller area.")

    def open_bounds(self) -> np.ndarray:
        if not self.open:
            return np.zeros((0, 4))
        return np.array([c.bounds for c in self.open.values()])
