"""Mask -> landslide polygons, in row strips, with ground areas and probability attributes.

:func:`vectorize_mask` is the entry point. The mask is read a strip of rows at a time, never whole
(:mod:`.mask_reading`); each strip is polygonized and its pieces joined with those of the strips
before into components (:mod:`.strips`); a component is finished as soon as it has no pixel on the
last row read, and is then written out (:mod:`.finishing`: hole filling and islands in
:mod:`.holes`, clean-up and attributes in :mod:`.attributes`), so memory holds only the current
strip and the components still open. The output does not depend on the strip height. A raster
so wide that a row of its blocks would not fit the block cache is walked in strips of columns
instead (read transposed, :func:`.mask_reading.strip_walk`), so memory stays flat whatever its
shape; its polygons are then written in the order of their last column.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import rasterio

from ..errors import CancelledError, InputError
from ..paths import Place, check_distinct
from . import DEFAULT_MIN_PIXELS
from .finishing import _Finisher
from .geometry import GroundMeasure
from .mask_reading import (
    STRIP_PIXELS,
    UINT8_PROBABILITY_NODATA,
    UINT8_PROBABILITY_SCALE,
    StripWalk,
    _Band,
    _band,
    _check_same_grid,
    _open,
    _read_strip,
    _strip_rows,
    _strips,
    strip_walk,
)
from .strips import _Merger
from .terrain_stats import TerrainReader, check_min_slope
from .vector_io import PolygonWriter, polygon_target


@dataclass
class VectorizeResult:
    """What :func:`vectorize_mask` wrote."""

    polygons_path: Path
    count: int
    total_area_m2: float
    layer_name: str | None = None  # the layer written, in a GeoPackage
    flat_count: int = 0          # polygons dropped for a mean slope under ``min_slope_deg``
    flat_area_m2: float = 0.0    # and their area


def _check_options(threshold: float, min_area_m2: float | None, fill_holes_m2: float,
                   simplify_m: float) -> None:
    if not 0.0 <= float(threshold) <= 1.0:
        raise InputError(f"threshold: expected a probability between 0 and 1, found {threshold!r}.")
    for name, value in (("min_area_m2", 0.0 if min_area_m2 is None else min_area_m2),
                        ("fill_holes_m2", fill_holes_m2), ("simplify_m", simplify_m)):
        if not (float(value) >= 0.0 and math.isfinite(float(value))):
            raise InputError(f"{name}: expected a number >= 0 (0 = off), found {value!r}.")


def _walked(mask_band: _Band, prob_band: _Band | None,
            walk: StripWalk) -> tuple[_Band, _Band | None]:
    """The bands read as ``walk`` goes (transposed for strips of columns)."""
    if not walk.transposed:
        return mask_band, prob_band
    mask_t = replace(mask_band, transposed=True)
    if prob_band is None:
        return mask_t, None
    return mask_t, mask_t if prob_band is mask_band else replace(prob_band, transposed=True)


def _cancelled(mask_path: Any) -> str:
    return f"Vectorizing {str(mask_path)!r} was cancelled; no polygon file was written."


def vectorize_mask(
    mask_path: str | os.PathLike[str],
    polygons_path: str | os.PathLike[str],
    *,
    probability_path: str | os.PathLike[str] | None = None,
    threshold: float = 0.5,
    min_area_m2: float | None = 0.0,
    fill_holes_m2: float = 0.0,
    simplify_m: float = 0.0,
    model_name: str = "",
    layer_name: str | None = None,
    progress: Callable[[float], Any] | None = None,
    is_canceled: Callable[[], bool] | None = None,
    strip_rows: int | None = None,
    source: str | None = None,
    slope_path: str | os.PathLike[str] | None = None,
    elevation_path: str | os.PathLike[str] | None = None,
    min_slope_deg: float = 0.0,
) -> VectorizeResult:
    """Vectorize a landslide mask (or a probability raster, thresholded) into polygons.

    The mask is uint8 with 1 = landslide, 0 = not, 255 = nodata; any other integer raster counts
    every non-zero, non-nodata pixel; a float raster (or an integer one with a value scale) is a
    probability and ``probability >= threshold`` is landslide. Probability attributes come from
    ``probability_path``, else from the input when it is a probability raster, else are NULL.
    ``pixels`` counts the landslide pixels of a polygon (islands absorbed by hole filling included).
    Polygons under ``min_area_m2`` are dropped (0 keeps all); ``None`` drops the specks instead:
    polygons of fewer than :data:`DEFAULT_MIN_PIXELS` pixels.
    The output format follows the extension (.gpkg, .shp, .geojson, .fgb); the file appears only
    when complete; a GeoPackage gets the layer ``layer_name`` (or the one named by
    ``path|layername=NAME``, default ``landslides``) and keeps its other layers. ``strip_rows`` sets the rows read at a time (default: about
    :data:`STRIP_PIXELS` pixels); the result does not depend on it. ``source`` names the mask in
    messages (default ``Mask raster PATH``). ``slope_path`` (degrees) and ``elevation_path``
    (metres), in any CRS and resolution, add ``slope_mean``/``slope_max`` and
    ``elev_min``/``elev_max`` (:mod:`.terrain_stats`); polygons whose mean slope is under
    ``min_slope_deg`` (> 0 needs ``slope_path``) are then dropped, and counted in the result.
    Raises InputError, OutputError or CancelledError.
    """
    _check_options(threshold, min_area_m2, fill_holes_m2, simplify_m)
    min_slope_deg = check_min_slope(min_slope_deg, slope_path)
    out, layer_name = polygon_target(polygons_path, layer_name)
    check_distinct([("Mask raster", mask_path), ("Probability raster", probability_path),
                    ("Slope raster", slope_path), ("DEM", elevation_path)],
                   [Place("Polygon output", out, layer_name)])
    report = progress or (lambda _f: None)
    cancelled = is_canceled or (lambda: False)
    with rasterio.Env(), _open(mask_path, "Mask raster") as mds:
        mask_band = _band(mds, "Mask raster", as_probability=False)
        pds = terrain = None
        try:
            if probability_path is not None:
                pds = _open(probability_path, "Probability raster")
                _check_same_grid(mds, pds)
                prob_band: _Band | None = _band(pds, "Probability raster", as_probability=True)
            else:
                prob_band = mask_band if mask_band.probability else None
            measure = GroundMeasure.from_crs(mds.crs, source=f"Mask raster {str(mask_path)!r}")
            walk = strip_walk(mds, *([pds] if pds is not None else []))
            mask_band, prob_band = _walked(mask_band, prob_band, walk)
            rows = _strip_rows(walk, strip_rows)
            if slope_path is not None or elevation_path is not None:
                terrain = TerrainReader(mds, slope_path, elevation_path, walk.transposed)
            fields = terrain.fields if terrain is not None else ()
            report(0.0)
            with rasterio.Env(GDAL_CACHEMAX=walk.cache_bytes), \
                    PolygonWriter(out, crs_wkt=mds.crs.to_wkt(), layer_name=layer_name,
                                  terrain_fields=fields) as writer:
                merger = _Merger(walk.width, source=source or f"Mask raster {str(mask_path)!r}")
                finisher = _Finisher(walk, measure, writer,
                                     min_area_m2=float(min_area_m2 or 0.0),
                                     min_pixels=DEFAULT_MIN_PIXELS if min_area_m2 is None else 0,
                                     fill_holes_m2=float(fill_holes_m2),
                                     simplify_m=float(simplify_m), model_name=str(model_name),
                                     terrain_fields=fields, min_slope_deg=min_slope_deg)
                for row, height in _strips(walk.height, rows):
                    if cancelled():
                        raise CancelledError(_cancelled(mask_path))
                    mask, prob = _read_strip(mask_band, prob_band, row, height, float(threshold))
                    last = row + height >= walk.height
                    strip_terrain = terrain.read(row, height) if terrain is not None else None
                    done = merger.add_strip(mask, prob, row, last, strip_terrain)
                    finisher.add(done, row + height, merger.open_bounds())
                    report(0.98 * (row + height) / walk.height)
                finisher.close()
                if cancelled():
                    raise CancelledError(_cancelled(mask_path))
        finally:
            if pds is not None:
                pds.close()
            if terrain is not None:
                terrain.close()
    report(1.0)
    return VectorizeResult(out, writer.count, finisher.total_area_m2, layer_name,
                           finisher.flat_count, finisher.flat_area_m2)


__all__ = ["vectorize_mask", "VectorizeResult", "DEFAULT_MIN_PIXELS", "STRIP_PIXELS", "UINT8_PROBABILITY_SCALE",
           "UINT8_PROBABILITY_NODATA"]
