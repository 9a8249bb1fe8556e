"""Mask -> landslide polygons, in row strips, with ground areas and probability attributes.

The mask is read strip by strip (``strip_rows`` rows at a time, never whole). Each strip is
polygonized with 4-connectivity (``rasterio.features.shapes``); pieces that continue across a strip
boundary (pixels sharing an edge on the two boundary rows, never a corner only) are joined with a
union-find and their pixel count, probability sum and maximum are added up. A component is finished
as soon as it has no pixel on the last row read, and is then written out, so memory holds only the
current strip and the components still open.

Geometry is built in pixel space (integer coordinates, exact unions) and moved to the raster's CRS
with its geotransform only when a polygon is finished. Finished polygons are written in the order
of their last row, then their bounds, so the output does not depend on the strip height.

Hole filling: a hole smaller than ``fill_holes_m2`` is filled, and a smaller component lying in it
(an island) becomes part of the polygon that surrounds it instead of overlapping it. A finished
component small enough to be such an island is held back until nothing can still surround it: the
rim of a hole is a 4-connected ring of pixels at most one row below the hole, and a fillable hole of
``n`` pixels spans at most ``n`` rows, so ``n + 2`` rows after the island's first row its rim is one
component; if no open component's bounds contain the island by then, it is written on its own.
"""

from __future__ import annotations

import heapq
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio import features
from rasterio.errors import RasterioIOError
from rasterio.windows import Window
from shapely.geometry import Polygon, box

from .errors import CancelledError, InputError
from .geometry import GroundMeasure
from .vector_io import PolygonWriter, check_writable

#: Pixels per strip when ``strip_rows`` is not given (rounded down to whole blocks when they fit).
STRIP_PIXELS = 1_000_000
#: uint8 probability convention: 0..254 -> 0..1, 255 nodata.
UINT8_PROBABILITY_SCALE = 1.0 / 254.0
UINT8_PROBABILITY_NODATA = 255


@dataclass
class VectorizeResult:
    """What :func:`vectorize_mask` wrote."""

    polygons_path: Path
    count: int
    total_area_m2: float


# --------------------------------------------------------------------------------------------
# Reading the rasters


@dataclass(frozen=True)
class _Band:
    """How to turn one strip of a single-band raster into a mask and/or a probability."""

    dataset: Any
    role: str
    probability: bool           # values are probabilities (float, or integers with a scale)
    scale: float = 1.0
    offset: float = 0.0
    nodata: float | None = None

    def read(self, row: int, height: int) -> np.ndarray:
        return self.dataset.read(1, window=Window(0, row, self.dataset.width, height))

    def valid(self, raw: np.ndarray) -> np.ndarray:
        ok = np.ones(raw.shape, dtype=bool)
        if raw.dtype.kind == "f":
            ok &= ~np.isnan(raw)
        if self.nodata is not None and not math.isnan(self.nodata):
            ok &= raw != self.nodata
        return ok

    def to_probability(self, raw: np.ndarray) -> np.ndarray:
        """Probabilities as float64, NaN where nodata."""
        p = raw.astype(np.float64)
        if self.scale != 1.0 or self.offset != 0.0:
            p = p * self.scale + self.offset
        p[~self.valid(raw)] = np.nan
        return p

    def to_mask(self, raw: np.ndarray, threshold: float) -> np.ndarray:
        valid = self.valid(raw)
        if not self.probability:
            return valid & (raw != 0)
        if raw.dtype.kind == "f":
            with np.errstate(invalid="ignore"):
                return valid & (raw * self.scale + self.offset >= threshold)
        # Integer probabilities: compare raw counts, so 127 of 254 is exactly 0.5.
        lowest = math.ceil((threshold - self.offset) / self.scale - 1e-9)
        return valid & (raw >= lowest)


def _open(path: Any, role: str) -> Any:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{role} {str(p)!r}: the file does not exist. Check the path.")
    try:
        ds = rasterio.open(p)
    except RasterioIOError as err:
        raise InputError(
            f"{role} {str(p)!r}: expected a raster that GDAL can read (e.g. a GeoTIFF), found a "
            f"file it cannot open as one ({err}). Choose the mask or probability raster."
        ) from None
    try:
        if ds.count != 1:
            raise InputError(
                f"{role} {str(p)!r}: expected a single-band raster, found {ds.count} bands. Give "
                "the one-band mask (or probability) raster, or extract the band first."
            )
        if ds.crs is None:
            raise InputError(
                f"{role} {str(p)!r}: expected a raster with a coordinate reference system, found "
                "none. Assign the CRS (e.g. with 'Assign projection' in QGIS) and run again."
            )
        if ds.transform == Affine.identity():
            raise InputError(
                f"{role} {str(p)!r}: expected a georeferenced raster, found no geotransform. "
                "Georeference the raster first."
            )
        kind = np.dtype(ds.dtypes[0]).kind
        if kind not in "uif":
            raise InputError(
                f"{role} {str(p)!r}: expected integer or floating-point pixels, found "
                f"{ds.dtypes[0]}. Convert the raster to Byte or Float32."
            )
    except BaseException:
        ds.close()
        raise
    return ds


def _band(ds: Any, role: str, *, as_probability: bool) -> _Band:
    """How to read ``ds``: a mask, or a probability (float, or integer with a value scale)."""
    dtype = np.dtype(ds.dtypes[0])
    scale = float(ds.scales[0]) if ds.scales else 1.0
    offset = float(ds.offsets[0]) if ds.offsets else 0.0
    nodata = ds.nodata
    if dtype.kind == "f":
        return _Band(ds, role, True, scale, offset, nodata)
    if scale != 1.0 or offset != 0.0:
        if scale <= 0:
            raise InputError(f"{role} {ds.name!r}: expected a positive value scale, found {scale}.")
        if nodata is None and dtype == np.uint8 and abs(scale - UINT8_PROBABILITY_SCALE) < 1e-9:
            nodata = UINT8_PROBABILITY_NODATA
        return _Band(ds, role, True, scale, offset, nodata)
    if not as_probability:
        return _Band(ds, role, False, nodata=nodata)
    if dtype == np.uint8:
        nodata = UINT8_PROBABILITY_NODATA if nodata is None else nodata
        return _Band(ds, role, True, UINT8_PROBABILITY_SCALE, 0.0, nodata)
    raise InputError(
        f"{role} {ds.name!r}: expected probabilities (Float32 0..1, or Byte 0..254 with 255 as "
        f"nodata), found {dtype.name} without a value scale. Give the probability raster written "
        "by Map landslides, or leave the probability input empty."
    )


def _check_same_grid(mask: Any, prob: Any) -> None:
    found = []
    if (mask.width, mask.height) != (prob.width, prob.height):
        found.append(f"size {prob.width}x{prob.height} instead of {mask.width}x{mask.height}")
    if mask.crs != prob.crs:
        found.append(f"CRS {prob.crs} instead of {mask.crs}")
    a, b = np.array(mask.transform[:6]), np.array(prob.transform[:6])
    pixel = min(abs(mask.transform.a), abs(mask.transform.e)) or 1.0
    if not np.allclose(a, b, rtol=1e-9, atol=1e-6 * pixel):
        found.append(f"geotransform {tuple(b)} instead of {tuple(a)}")
    if found:
        raise InputError(
            f"Probability raster {prob.name!r}: expected the same grid as the mask raster "
            f"{mask.name!r}, found {'; '.join(found)}. Give the probability raster the mask was "
            "made from, or resample it onto the mask's grid."
        )


def _strip_rows(ds: Any, strip_rows: int | None) -> int:
    if strip_rows is not None:
        if int(strip_rows) < 1:
            raise InputError(f"strip_rows: expected a whole number >= 1, found {strip_rows!r}.")
        return int(strip_rows)
    rows = max(1, STRIP_PIXELS // max(1, ds.width))
    block = max(1, ds.block_shapes[0][0]) if ds.block_shapes else 1
    return rows // block * block if rows >= block else rows  # whole blocks when they fit


# --------------------------------------------------------------------------------------------
# Components


@dataclass
class _Component:
    """A connected set of landslide pixels, possibly still growing (pixel-space geometry)."""

    pieces: list[Any]
    pixels: int
    prob_sum: float
    prob_n: int
    prob_max: float
    bounds: list[float]  # minx, miny, maxx, maxy

    def absorb(self, other: "_Component") -> None:
        self.pieces += other.pieces
        self.pixels += other.pixels
        self.prob_sum += other.prob_sum
        self.prob_n += other.prob_n
        self.prob_max = max(self.prob_max, other.prob_max)
        b, o = self.bounds, other.bounds
        self.bounds = [min(b[0], o[0]), min(b[1], o[1]), max(b[2], o[2]), max(b[3], o[3])]


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


def _strip_pieces(mask: np.ndarray, prob: np.ndarray | None,
                  row: int) -> tuple[list[Any], list[_Component], np.ndarray, np.ndarray]:
    """Polygonize one strip: pieces (pixel space, rows offset by ``row``), their stats, and the
    1-based piece index on the strip's first and last rows (0 = no landslide)."""
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
    ids = np.arange(1, n + 1)
    bounds = shapely.bounds(arr)
    psum = np.zeros(n + 1)
    pn = np.zeros(n + 1, dtype=np.int64)
    pmax = np.full(n + 1, -np.inf)
    if prob is not None:
        labels = features.rasterize(zip(raw, ids.tolist()), out_shape=(height, width),
                                    transform=where, fill=0, dtype="int32")
        ok = (labels > 0) & ~np.isnan(prob)
        lab, val = labels[ok], prob[ok]
        psum = np.bincount(lab, weights=val, minlength=n + 1)
        pn = np.bincount(lab, minlength=n + 1)
        np.maximum.at(pmax, lab, val)
        top, bottom = labels[0].astype(np.int64), labels[-1].astype(np.int64)
    else:
        top = _row_labels(raw, bounds[:, 1] == row, width, row)
        bottom = _row_labels(raw, bounds[:, 3] == row + height, width, row + height - 1)
    comps = [
        _Component([g], int(pixels[i]), float(psum[i + 1]), int(pn[i + 1]), float(pmax[i + 1]),
                   list(bounds[i]))
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
    """Joins strip pieces into components and yields them, in pixel space, once finished."""

    def __init__(self, width: int) -> None:
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
                  last: bool) -> list[tuple[Any, _Component]]:
        """Add one strip; return the components it finished (geometry, stats)."""
        geoms, comps, top, bottom = _strip_pieces(mask, prob, row)
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

    def open_bounds(self) -> np.ndarray:
        if not self.open:
            return np.zeros((0, 4))
        return np.array([c.bounds for c in self.open.values()])


# --------------------------------------------------------------------------------------------
# Finishing: holes, islands, order, geometry in the CRS, attributes


class _Finisher:
    """Fills holes, absorbs islands, orders, measures and writes finished components."""

    def __init__(self, ds: Any, measure: GroundMeasure, writer: PolygonWriter, *,
                 min_area_m2: float, fill_holes_m2: float, simplify_m: float,
                 model_name: str) -> None:
        self.transform = ds.transform
        self.measure = measure
        self.writer = writer
        self.min_area_m2 = min_area_m2
        self.fill_holes_m2 = fill_holes_m2
        self.model_name = model_name
        self.total_area_m2 = 0.0
        self.pending: list[_Finished] = []     # small components that may still be islands
        self.cells: dict[tuple[int, int], list[_Finished]] = {}  # pending, by interior point
        self.ready: list[_Finished] = []       # heap, written in key order
        self.next_fid = 1
        centre = ds.transform * (ds.width / 2, ds.height / 2)
        lat = float(measure.centroid_lonlat([shapely.Point(centre)])[1][0])
        self.tolerance = measure.tolerance(simplify_m, lat) if simplify_m > 0 else 0.0
        self.hold_rows = 0
        if fill_holes_m2 > 0:
            corners = [box(0, 0, 1, 1), box(0, ds.height - 1, 1, ds.height)]
            smallest_pixel = float(np.min(self.measure.area(self.to_crs(np.array(corners)))))
            self.hold_rows = int(math.ceil(fill_holes_m2 / smallest_pixel)) + 2

    def to_crs(self, geoms: Any) -> Any:
        t = self.transform
        return shapely.transform(geoms, lambda xy: np.column_stack(t * (xy[:, 0], xy[:, 1])))

    def add(self, done: list[tuple[Any, _Component]], rows_read: int,
            open_bounds: np.ndarray) -> None:
        """Take the components one strip finished; write every one that can no longer change."""
        if not done and not self.pending:
            return
        # Drop the vertices left on strip seams, so a polygon is the same whatever the strips.
        geoms = shapely.simplify(np.array([g for g, _ in done], dtype=object), 0)
        keys = _keys(geoms, [c.pixels for _, c in done])
        items = [_Finished(k, g, c) for k, g, (_, c) in zip(keys, geoms, done)]
        if self.fill_holes_m2 > 0:
            items = self._fill_holes(sorted(items))
            self._release(rows_read, open_bounds)
        for item in items:
            heapq.heappush(self.ready, item)
        self._write_ready()

    def close(self) -> None:
        for item in self.pending:
            heapq.heappush(self.ready, item)
        self.pending = []
        self.cells = {}
        self._write_ready()

    # Holes and islands --------------------------------------------------------------------

    def _fill_holes(self, items: list[_Finished]) -> list[_Finished]:
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
                self._park(item)
            else:
                ready.append(item)
        return ready

    def _exterior_areas(self, geoms: np.ndarray) -> np.ndarray:
        parts, owner = shapely.get_parts(geoms, return_index=True)
        shells = shapely.polygons(shapely.get_exterior_ring(parts))
        areas = self.measure.area(self.to_crs(shells))
        return np.bincount(owner, weights=areas, minlength=len(geoms))

    def _fill(self, item: _Finished) -> _Finished:
        """Drop the interior rings smaller than ``fill_holes_m2`` and absorb their islands."""
        parts = shapely.get_parts(item.geometry)
        rings = [list(p.interiors) for p in parts]
        flat = [Polygon(r) for rs in rings for r in rs]
        if not flat:
            return item
        small = (self.measure.area(self.to_crs(np.array(flat, dtype=object)))
                 < self.fill_holes_m2).tolist()
        if not any(small):
            return item
        filled = [h for h, f in zip(flat, small) if f]
        kept, i = [], 0
        for part, rs in zip(parts, rings):
            flags = small[i:i + len(rs)]
            kept.append(Polygon(part.exterior, [r for r, f in zip(rs, flags) if not f]))
            i += len(rs)
        geom = kept[0] if len(kept) == 1 else shapely.MultiPolygon(kept)
        self._absorb_islands(item.comp, filled)
        return _Finished(_key(geom, item.comp.pixels), geom, item.comp)

    def _park(self, item: _Finished) -> None:
        """Hold a possible island back, indexed by an interior point."""
        # An island touches its hole's rim at most at a corner: an interior point of it decides.
        item.point = tuple(shapely.get_coordinates(item.geometry.representative_point())[0])
        self.pending.append(item)
        self.cells.setdefault(_cell(item.point), []).append(item)

    def _unpark(self, items: list[_Finished]) -> None:
        gone = {id(i) for i in items}
        self.pending = [p for p in self.pending if id(p) not in gone]
        for item in items:
            self.cells[_cell(item.point)].remove(item)

    def _absorb_islands(self, comp: _Component, filled: list[Any]) -> None:
        """Add the pending islands lying in ``filled`` holes to ``comp`` (they are not written)."""
        found: list[_Finished] = []
        seen: set[int] = set()
        for hole in filled:
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
        for island in found:
            c = island.comp
            comp.pixels += c.pixels
            comp.prob_sum += c.prob_sum
            comp.prob_n += c.prob_n
            comp.prob_max = max(comp.prob_max, c.prob_max)
        if found:
            self._unpark(found)

    def _release(self, rows_read: int, open_bounds: np.ndarray) -> None:
        """Queue pending islands that no component can still surround.

        Before ``hold_rows`` rows past an island's first row are read, the rim of its hole may still
        be in several pieces (e.g. joined through a diagonal pinch above and a row below), none of
        whose bounds contain it; after that the rim is one component.
        """
        if not self.pending:
            return
        bounds = np.array([(p.key[2], p.key[1], p.key[3], p.key[0]) for p in self.pending])
        keep = rows_read < bounds[:, 1] + self.hold_rows
        check = np.flatnonzero(~keep)
        if len(open_bounds) and check.size:
            tree = shapely.STRtree(shapely.box(*open_bounds.T))
            hits = tree.query(shapely.box(*bounds[check].T), predicate="covered_by")
            keep[check[np.unique(hits[0])]] = True
        released = [p for p, k in zip(self.pending, keep) if not k]
        for item in released:
            heapq.heappush(self.ready, item)
        if released:
            self._unpark(released)

    # Writing -----------------------------------------------------------------------------

    def _write_ready(self) -> None:
        limit = min(self.pending).key if self.pending else None
        batch = []
        while self.ready and (limit is None or self.ready[0].key < limit):
            batch.append(heapq.heappop(self.ready))
        if batch:
            self._write(batch)

    def _write(self, batch: list[_Finished]) -> None:
        geoms = self.to_crs(np.array([b.geometry for b in batch], dtype=object))
        if self.tolerance > 0:
            geoms = shapely.simplify(geoms, self.tolerance, preserve_topology=True)
        bad = ~shapely.is_valid(geoms)
        if bad.any():
            geoms[bad] = [_polygonal(shapely.make_valid(g)) for g in geoms[bad]]
        geoms = shapely.orient_polygons(geoms, exterior_cw=False)
        area, perimeter = self.measure.area_perimeter(geoms)
        lon, lat = self.measure.centroid_lonlat(geoms)
        kept, records = [], []
        for i, item in enumerate(batch):
            g = geoms[i]
            if g is None or g.is_empty or area[i] < self.min_area_m2:
                continue
            c = item.comp
            kept.append(g)
            records.append({
                "id": self.next_fid,
                "area_m2": float(area[i]),
                "area_ha": float(area[i]) / 10_000.0,
                "perimeter_m": float(perimeter[i]),
                "prob_mean": c.prob_sum / c.prob_n if c.prob_n else None,
                "prob_max": c.prob_max if c.prob_n else None,
                "centroid_lon": float(lon[i]),
                "centroid_lat": float(lat[i]),
                "model": self.model_name,
                "pixels": int(c.pixels),
            })
            self.next_fid += 1
            self.total_area_m2 += float(area[i])
        self.writer.write_many(kept, records)


def _cell(xy: Any) -> tuple[int, int]:
    """The 16 x 16-pixel cell of a pixel-space point (index of pending islands)."""
    return int(xy[0] // 16), int(xy[1] // 16)


def _polygonal(geom: Any) -> Any:
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


# --------------------------------------------------------------------------------------------
# Entry point


def _check_options(threshold: float, min_area_m2: float, fill_holes_m2: float,
                   simplify_m: float) -> None:
    if not 0.0 <= float(threshold) <= 1.0:
        raise InputError(f"threshold: expected a probability between 0 and 1, found {threshold!r}.")
    for name, value in (("min_area_m2", min_area_m2), ("fill_holes_m2", fill_holes_m2),
                        ("simplify_m", simplify_m)):
        if not (float(value) >= 0.0 and math.isfinite(float(value))):
            raise InputError(f"{name}: expected a number >= 0 (0 = off), found {value!r}.")


def _cancelled(mask_path: Any) -> str:
    return f"Vectorizing {str(mask_path)!r} was cancelled; no polygon file was written."


def _strips(height: int, rows: int) -> Iterator[tuple[int, int]]:
    for row in range(0, height, rows):
        yield row, min(rows, height - row)


def vectorize_mask(
    mask_path: str | os.PathLike[str],
    polygons_path: str | os.PathLike[str],
    *,
    probability_path: str | os.PathLike[str] | None = None,
    threshold: float = 0.5,
    min_area_m2: float = 0.0,
    fill_holes_m2: float = 0.0,
    simplify_m: float = 0.0,
    model_name: str = "",
    layer_name: str = "landslides",
    progress: Callable[[float], Any] | None = None,
    is_canceled: Callable[[], bool] | None = None,
    strip_rows: int | None = None,
) -> VectorizeResult:
    """Vectorize a landslide mask (or a probability raster, thresholded) into polygons.

    The mask is uint8 with 1 = landslide, 0 = not, 255 = nodata; any other integer raster counts
    every non-zero, non-nodata pixel; a float raster (or an integer one with a value scale) is a
    probability and ``probability >= threshold`` is landslide. Probability attributes come from
    ``probability_path``, else from the input when it is a probability raster, else are NULL.
    ``pixels`` counts the landslide pixels of a polygon (islands absorbed by hole filling included).
    The output format follows the extension (.gpkg, .shp, .geojson, .fgb); the file appears only
    when complete. ``strip_rows`` sets the rows read at a time (default: about
    :data:`STRIP_PIXELS` pixels); the result does not depend on it. Raises InputError, OutputError
    or CancelledError.
    """
    _check_options(threshold, min_area_m2, fill_holes_m2, simplify_m)
    out = check_writable(polygons_path)
    report = progress or (lambda _f: None)
    cancelled = is_canceled or (lambda: False)
    with rasterio.Env(), _open(mask_path, "Mask raster") as mds:
        mask_band = _band(mds, "Mask raster", as_probability=False)
        pds = None
        try:
            if probability_path is not None:
                pds = _open(probability_path, "Probability raster")
                _check_same_grid(mds, pds)
                prob_band: _Band | None = _band(pds, "Probability raster", as_probability=True)
            else:
                prob_band = mask_band if mask_band.probability else None
            measure = GroundMeasure.from_crs(mds.crs, source=f"Mask raster {str(mask_path)!r}")
            rows = _strip_rows(mds, strip_rows)
            report(0.0)
            with PolygonWriter(out, crs_wkt=mds.crs.to_wkt(), layer_name=layer_name) as writer:
                merger = _Merger(mds.width)
                finisher = _Finisher(mds, measure, writer, min_area_m2=float(min_area_m2),
                                     fill_holes_m2=float(fill_holes_m2),
                                     simplify_m=float(simplify_m), model_name=str(model_name))
                for row, height in _strips(mds.height, rows):
                    if cancelled():
                        raise CancelledError(_cancelled(mask_path))
                    raw = mask_band.read(row, height)
                    mask = mask_band.to_mask(raw, float(threshold))
                    prob = None
                    if prob_band is mask_band:
                        prob = mask_band.to_probability(raw)
                    elif prob_band is not None:
                        prob = prob_band.to_probability(prob_band.read(row, height))
                    del raw
                    last = row + height >= mds.height
                    done = merger.add_strip(mask, prob, row, last)
                    finisher.add(done, row + height, merger.open_bounds())
                    report(0.98 * (row + height) / mds.height)
                finisher.close()
                if cancelled():
                    raise CancelledError(_cancelled(mask_path))
        finally:
            if pds is not None:
                pds.close()
    report(1.0)
    return VectorizeResult(out, writer.count, finisher.total_area_m2)
