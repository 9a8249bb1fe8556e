"""Finished polygons in the CRS: clean-up (simplify, repair, orient), minimum area, attributes.

Each written polygon carries its ground area (m2 and ha) and perimeter, its centroid in lon/lat,
the mean and maximum probability of its pixels (NULL without probabilities), the model name and
its landslide pixel count (islands absorbed by hole filling included). Values are rounded to
what they mean (:data:`DECIMALS`): m2 to 1, ha to 0.01, m to 0.1, probabilities to 0.001, lon/lat
to 1e-6 degrees (about 0.1 m). With a slope or elevation raster, the mean and maximum slope
(degrees) and the lowest and highest elevation (metres) of its pixels, both to 0.1
(:mod:`.terrain_stats`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import shapely

from .components import _Component, _Finished
from .geometry import GroundMeasure
from .terrain_stats import TERRAIN_DECIMALS, TerrainStats


def _simplify_tolerance(ds: Any, measure: GroundMeasure, simplify_m: float) -> float:
    """``simplify_m`` metres in CRS units, at the raster's centre (0 = no simplification)."""
    centre = ds.transform * (ds.width / 2, ds.height / 2)
    lat = float(measure.centroid_lonlat([shapely.Point(centre)])[1][0])
    return measure.tolerance(simplify_m, lat) if simplify_m > 0 else 0.0


def _cleaned(geoms: np.ndarray, tolerance: float) -> np.ndarray:
    """Polygons in the CRS simplified (``tolerance`` > 0), made valid and oriented CCW."""
    if tolerance > 0:
        geoms = shapely.simplify(geoms, tolerance, preserve_topology=True)
    bad = ~shapely.is_valid(geoms)
    if bad.any():
        geoms[bad] = [_polygonal(shapely.make_valid(g)) for g in geoms[bad]]
    return shapely.orient_polygons(geoms, exterior_cw=False)


def _polygonal(geom: Any) -> Any:
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


#: Decimal places of the written attributes (areas in m2 and ha, perimeter in m, probabilities,
#: centroid in degrees).
DECIMALS = {"area_m2": 0, "area_ha": 2, "perimeter_m": 1, "prob_mean": 3, "prob_max": 3,
            "centroid_lon": 6, "centroid_lat": 6, **TERRAIN_DECIMALS}


def _records(batch: list[_Finished], geoms: np.ndarray, measure: GroundMeasure, *,
             min_area_m2: float, model_name: str, first_fid: int, min_pixels: int = 0,
             terrain_fields: Sequence[str] = (), min_slope_deg: float = 0.0,
             ) -> tuple[list[Any], list[dict], list[float]]:
    """The polygons of at least ``min_area_m2`` and ``min_pixels`` pixels and their attributes,
    numbered from ``first_fid``, and the areas (m2) of those then dropped for a mean slope
    (rounded as written) under ``min_slope_deg`` (a polygon without a slope value is kept)."""
    area, perimeter = measure.area_perimeter(geoms)
    lon, lat = measure.centroid_lonlat(geoms)
    kept, records, flat = [], [], []
    for i, item in enumerate(batch):
        g = geoms[i]
        if g is None or g.is_empty or area[i] < min_area_m2 or item.comp.pixels < min_pixels:
            continue
        record = _record(first_fid + len(records), item.comp, area[i], perimeter[i],
                         lon[i], lat[i], model_name, terrain_fields)
        slope = record.get("slope_mean")
        if min_slope_deg > 0 and slope is not None and slope < min_slope_deg:
            flat.append(float(area[i]))
            continue
        kept.append(g)
        records.append(record)
    return kept, records, flat


def _record(fid: int, c: _Component, area: Any, perimeter: Any, lon: Any, lat: Any,
            model_name: str, terrain_fields: Sequence[str] = ()) -> dict:
    record = {
        "id": fid,
        "area_m2": float(area),
        "area_ha": float(area) / 10_000.0,
        "perimeter_m": float(perimeter),
        "prob_mean": c.prob_sum / c.prob_n if c.prob_n else None,
        "prob_max": c.prob_max if c.prob_n else None,
        "centroid_lon": float(lon),
        "centroid_lat": float(lat),
        "model": model_name,
        "pixels": int(c.pixels),
    }
    if terrain_fields:
        stats = c.terrain or TerrainStats()
        values = stats.attributes("slope_mean" in terrain_fields, "elev_min" in terrain_fields)
        record.update(values)
    for key, places in DECIMALS.items():
        if record.get(key) is not None:
            record[key] = round(float(record[key]), places)
    return record
