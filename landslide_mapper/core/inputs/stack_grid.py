"""The stack's output grid: the reference band's grid, or that grid on another CRS, cut to an AOI.

The reference grid is B02's 10 m grid (another band's when B02 is absent). With an output CRS the
grid is reprojected onto it at 10 m (in the CRS's linear units; at GDAL's choice of resolution for
a geographic CRS). An area of interest (``(xmin, ymin, xmax, ymax)``, a shapely polygon, or a
polygon vector file; in ``aoi_crs``, by default the output CRS) crops the grid to its bounds,
snapped outwards to whole pixels; a polygon AOI is also returned, so that pixels outside it are
written as nodata.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rasterio
from affine import Affine
from rasterio.windows import Window

from ..errors import InputError
from ..georeferencing import check_georeferenced


@dataclass(frozen=True)
class Grid:
    crs: Any
    transform: Affine
    width: int
    height: int

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        t = self.transform
        return t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f

    def window_transform(self, win: Window) -> Affine:
        return rasterio.windows.transform(win, self.transform)


def reference_grid(ref, label: str) -> Grid:
    check_georeferenced(ref, f"{label}: band file {ref.name}", "band file")
    return Grid(ref.crs, ref.transform, ref.width, ref.height)


def target_grid(ref: Grid, crs, aoi, aoi_crs, label: str):
    """The output grid: the reference grid (or reprojected to ``crs``), cropped to the AOI."""
    from rasterio.crs import CRS
    from rasterio.warp import calculate_default_transform, transform_bounds, transform_geom

    grid = ref
    if crs is not None:
        dst = CRS.from_user_input(crs)
        if dst != ref.crs:
            res = None
            if not dst.is_geographic:
                unit = dst.linear_units_factor[1] or 1.0
                res = 10.0 / unit
            t, w, h = calculate_default_transform(ref.crs, dst, ref.width, ref.height,
                                                  *ref.bounds, resolution=res)
            grid = Grid(dst, t, w, h)
    geometry = None
    if aoi is not None:
        src_crs = CRS.from_user_input(aoi_crs) if aoi_crs is not None else grid.crs
        if isinstance(aoi, (str, os.PathLike)):
            geometry, src_crs = _read_aoi_file(Path(aoi), label)
        if isinstance(aoi, (tuple, list)) and len(aoi) == 4:
            bounds = transform_bounds(src_crs, grid.crs, *map(float, aoi), densify_pts=21)
        else:
            geom = geometry if geometry is not None else aoi
            from shapely.geometry import mapping, shape

            geometry = shape(transform_geom(src_crs, grid.crs, mapping(geom)))
            bounds = geometry.bounds
        # snapped outwards to whole pixels of the grid, clipped to it
        t = grid.transform
        eps = 1e-6
        c0 = max(0, math.floor((bounds[0] - t.c) / t.a + eps))
        c1 = min(grid.width, math.ceil((bounds[2] - t.c) / t.a - eps))
        r0 = max(0, math.floor((bounds[3] - t.f) / t.e + eps))
        r1 = min(grid.height, math.ceil((bounds[1] - t.f) / t.e - eps))
        if c1 - c0 < 1 or r1 - r0 < 1:
            raise InputError(
                f"Area of interest {tuple(round(b, 6) for b in bounds)} (in {grid.crs}) does not "
                f"overlap {label} (extent {tuple(round(b, 6) for b in grid.bounds)}). Choose an "
                "area inside the scene.")
        win = Window(c0, r0, c1 - c0, r1 - r0)
        grid = Grid(grid.crs, grid.window_transform(win), win.width, win.height)
    return grid, geometry


def _read_aoi_file(path: Path, label: str):
    import fiona
    from rasterio.crs import CRS
    from shapely.geometry import shape
    from shapely.ops import unary_union

    try:
        with fiona.open(path) as src:
            geoms = [shape(f["geometry"]) for f in src if f["geometry"] is not None]
            crs = CRS.from_wkt(src.crs_wkt) if src.crs_wkt else None
    except Exception as exc:
        raise InputError(f"Area of interest {path}: cannot be read as a vector file ({exc}).") \
            from exc
    polys = [g for g in geoms if g.geom_type in ("Polygon", "MultiPolygon")]
    if not polys or crs is None:
        raise InputError(f"Area of interest {path}: expected polygons with a CRS, found "
                         f"{len(polys)} polygons{'' if crs else ' and no CRS'}.")
    return unary_union(polys), crs
