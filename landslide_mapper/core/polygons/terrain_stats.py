"""Slope and elevation of each polygon, read strip by strip beside the mask.

A slope raster (degrees) and an elevation raster (metres) in any CRS and resolution are read on
the mask's grid, a strip at a time exactly as the mask is (a warped view, bilinear, when their
grid differs from the mask's: nothing is held whole). For every landslide pixel of a component
the strip adds its slope to a sum and a count, and keeps the slope maximum and the elevation
minimum and maximum; pieces joined across strips (and islands absorbed by hole filling) add theirs
up, so a polygon gets ``slope_mean``, ``slope_max``, ``elev_min`` and ``elev_max`` over its
landslide pixels with a valid value (NULL where it has none, e.g. outside the DEM).

``min_slope_deg`` drops the polygons whose mean slope is below it (flat ground: fields, roads,
river bars, rarely a landslide); a polygon without a slope value is kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from ..errors import InputError, reading
from ..georeferencing import check_georeferenced

#: Written only when a slope (``slope_*``) or elevation (``elev_*``) raster is given.
SLOPE_FIELDS = ("slope_mean", "slope_max")
ELEVATION_FIELDS = ("elev_min", "elev_max")
#: Decimal places: degrees to 0.1, metres to 0.1.
TERRAIN_DECIMALS = {"slope_mean": 1, "slope_max": 1, "elev_min": 1, "elev_max": 1}


@dataclass
class TerrainStats:
    """Slope sum, count and maximum, and elevation minimum and maximum of a set of pixels."""

    slope_sum: float = 0.0
    slope_n: int = 0
    slope_max: float = -math.inf
    elev_min: float = math.inf
    elev_max: float = -math.inf

    def add(self, other: "TerrainStats | None") -> None:
        if other is None:
            return
        self.slope_sum += other.slope_sum
        self.slope_n += other.slope_n
        self.slope_max = max(self.slope_max, other.slope_max)
        self.elev_min = min(self.elev_min, other.elev_min)
        self.elev_max = max(self.elev_max, other.elev_max)

    def attributes(self, slope: bool, elevation: bool) -> dict[str, float | None]:
        """The attributes (unrounded); None where no pixel had a value."""
        out: dict[str, float | None] = {}
        if slope:
            out["slope_mean"] = self.slope_sum / self.slope_n if self.slope_n else None
            out["slope_max"] = self.slope_max if self.slope_n else None
        if elevation:
            found = math.isfinite(self.elev_min)
            out["elev_min"] = self.elev_min if found else None
            out["elev_max"] = self.elev_max if found else None
        return out


def label_stats(labels: np.ndarray, n: int, slope: np.ndarray | None,
                elevation: np.ndarray | None) -> list[TerrainStats]:
    """Per label ``1..n`` of ``labels`` (0 = none), the stats of its pixels' slope/elevation
    (NaN = no value)."""
    stats = [TerrainStats() for _ in range(n)]
    if slope is not None:
        ok = (labels > 0) & ~np.isnan(slope)
        lab, val = labels[ok], slope[ok]
        total = np.bincount(lab, weights=val, minlength=n + 1)
        count = np.bincount(lab, minlength=n + 1)
        top = np.full(n + 1, -np.inf)
        np.maximum.at(top, lab, val)
        for i, s in enumerate(stats, start=1):
            s.slope_sum, s.slope_n, s.slope_max = float(total[i]), int(count[i]), float(top[i])
    if elevation is not None:
        ok = (labels > 0) & ~np.isnan(elevation)
        lab, val = labels[ok], elevation[ok]
        low, high = np.full(n + 1, np.inf), np.full(n + 1, -np.inf)
        np.minimum.at(low, lab, val)
        np.maximum.at(high, lab, val)
        for i, s in enumerate(stats, start=1):
            s.elev_min, s.elev_max = float(low[i]), float(high[i])
    return stats


class TerrainReader:
    """Slope and/or elevation strips on the mask's grid (transposed like the mask when the walk
    goes by columns); open while vectorizing, closed with :meth:`close`."""

    def __init__(self, mask_ds: Any, slope_path: Any = None, elevation_path: Any = None,
                 transposed: bool = False) -> None:
        self.transposed = transposed
        self._open: list[Any] = []
        try:
            self.slope = self._on_grid(mask_ds, slope_path, "Slope raster")
            self.elevation = self._on_grid(mask_ds, elevation_path, "DEM")
        except BaseException:
            self.close()
            raise

    @property
    def fields(self) -> tuple[str, ...]:
        return (SLOPE_FIELDS if self.slope is not None else ()) + \
            (ELEVATION_FIELDS if self.elevation is not None else ())

    def _on_grid(self, mask_ds: Any, path: Any, role: str) -> Any:
        if path is None:
            return None
        source = f"{role} {str(path)!r}"
        if not Path(path).exists():
            raise InputError(f"{source}: the file does not exist. Check the path.")
        try:
            ds = rasterio.open(path)
        except rasterio.errors.RasterioIOError as err:
            raise InputError(f"{source}: expected a raster GDAL can read (e.g. a GeoTIFF), "
                             f"found a file it cannot open as one ({err}).") from None
        self._open.append(ds)
        check_georeferenced(ds, source)
        same = (ds.crs == mask_ds.crs and ds.shape == mask_ds.shape
                and np.allclose(tuple(ds.transform)[:6], tuple(mask_ds.transform)[:6],
                                rtol=1e-9, atol=1e-6 * abs(mask_ds.transform.a)))
        if same:
            return ds
        from rasterio.vrt import WarpedVRT

        vrt = WarpedVRT(ds, crs=mask_ds.crs, transform=mask_ds.transform, width=mask_ds.width,
                        height=mask_ds.height, resampling=Resampling.bilinear, nodata=np.nan,
                        dtype="float32")
        self._open.append(vrt)
        return vrt

    def _read(self, ds: Any, row: int, height: int) -> np.ndarray:
        with reading(f"Terrain raster {ds.name}"):
            if self.transposed:
                band = ds.read(1, window=Window(row, 0, height, ds.height), masked=True).T
            else:
                band = ds.read(1, window=Window(0, row, ds.width, height), masked=True)
        values = band.astype(np.float64).filled(np.nan)
        return np.ascontiguousarray(values)

    def read(self, row: int, height: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(slope, elevation) of one strip as float64 with NaN voids (None: not given)."""
        return (None if self.slope is None else self._read(self.slope, row, height),
                None if self.elevation is None else self._read(self.elevation, row, height))

    def close(self) -> None:
        for ds in reversed(self._open):
            ds.close()
        self._open = []


def check_min_slope(min_slope_deg: float, slope_path: Any) -> float:
    """``min_slope_deg`` as a float, checked: a number 0..90, and a slope raster when > 0."""
    try:
        value = float(min_slope_deg)
    except (TypeError, ValueError):
        value = math.nan
    if not 0.0 <= value <= 90.0:
        raise InputError(f"Minimum slope: expected degrees between 0 and 90 (0 = off), found "
                         f"{min_slope_deg!r}.")
    if value > 0 and slope_path is None:
        raise InputError(f"Minimum slope {value:g} degrees: expected a DEM or a slope raster to "
                         "measure the polygons' slope, found neither. Give a DEM or a slope "
                         "raster, or set the minimum slope to 0.")
    return value
