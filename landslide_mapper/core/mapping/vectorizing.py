"""The polygons of a run: the staged mask vectorized, with terrain attributes from a DEM.

A DEM or a slope raster given to a run (or to :func:`vectorize_with_terrain`) gives every polygon
its slope and elevation (:mod:`..polygons.terrain_stats`): the slope comes from the slope raster,
else from the DEM by Horn's method on the DEM's own grid (:func:`..inputs.terrain.terrain_sources`,
the same slope the terrain bands use), and both are read on the mask's grid strip by strip, so
memory stays flat whatever the rasters' sizes. ``min_slope_deg`` then drops the polygons on flat
ground and the run reports how many and how much area.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional, Tuple

from ..errors import OutputError
from ..inputs.terrain import terrain_sources
from ..polygons.terrain_stats import check_min_slope

Terrain = Tuple[Optional[Path], Optional[Path]]
"""(slope raster, elevation raster) for the polygons, each None when not given."""


def vectorize_staged(staging: Any, model_name: str, min_area_m2: float | None,
                     fill_holes_m2: float, simplify_m: float, is_canceled, progress, *,
                     terrain: Terrain = (None, None), min_slope_deg: float = 0.0):
    """Polygons from a run's (temporary) mask, with probability (and terrain) attributes;
    returns the :class:`~..polygons.vectorize.VectorizeResult`."""
    try:
        from ..polygons.vectorize import vectorize_mask
    except ImportError as exc:
        raise OutputError(
            f"Polygons {staging.targets[2]}: vectorization is not available ({exc}).") from exc
    staging.check_rasters()
    return vectorize_mask(staging.mask, staging.polygons, probability_path=staging.prob,
                          min_area_m2=min_area_m2, fill_holes_m2=fill_holes_m2,
                          simplify_m=simplify_m, model_name=model_name,
                          layer_name=staging.layer, progress=progress, is_canceled=is_canceled,
                          source=f"Landslide mask for the polygons {staging.targets[2]}",
                          slope_path=terrain[0], elevation_path=terrain[1],
                          min_slope_deg=min_slope_deg)


def polygons_step(staging: Any, model_name: str, options: tuple, terrain: Terrain,
                  min_slope_deg: float, is_canceled, progress, note: Callable[[str], None]):
    """:func:`vectorize_staged` for a run (``options``: minimum area, hole filling and
    simplification), its outcome logged with ``note``; returns the VectorizeResult."""
    result = vectorize_staged(staging, model_name, *options, is_canceled, progress,
                              terrain=terrain, min_slope_deg=min_slope_deg)
    line = flat_note(result, min_slope_deg)
    if line:
        note(line)
    note(f"{result.count} polygon{'s' if result.count != 1 else ''} written.")
    return result


def terrain_note(terrain: Terrain) -> str | None:
    """The log line saying which terrain attributes the polygons get, and from what."""
    slope, elevation = terrain
    if slope is None and elevation is None:
        return None
    parts = []
    if slope is not None:
        parts.append(f"slope_mean and slope_max from {slope.name}")
    if elevation is not None:
        parts.append(f"elev_min and elev_max from {elevation.name}")
    return f"Polygons get {' and '.join(parts)} (read on the mask's grid)."


def flat_note(result: Any, min_slope_deg: float) -> str | None:
    """The log line of the polygons dropped for their mean slope (None when the filter is off)."""
    if not min_slope_deg > 0:
        return None
    n = result.flat_count
    return (f"Minimum slope {min_slope_deg:g} degrees: {n} polygon{'s' if n != 1 else ''} "
            f"({result.flat_area_m2 / 10_000:.2f} ha) dropped for a lower mean slope.")


def vectorize_with_terrain(mask_path: str | os.PathLike[str],
                           polygons_path: str | os.PathLike[str], *, dem=None, slope=None,
                           min_slope_deg: float = 0.0,
                           is_canceled: Callable[[], bool] | None = None,
                           log: Callable[[str], None] | None = None, **options: Any):
    """:func:`~..polygons.vectorize.vectorize_mask` with terrain attributes from a DEM (any CRS
    and resolution) or a slope raster; ``options`` are ``vectorize_mask``'s."""
    from ..polygons.vectorize import vectorize_mask

    min_slope_deg = check_min_slope(min_slope_deg, slope if slope is not None else dem)
    with tempfile.TemporaryDirectory(prefix="landslide-terrain-") as workdir:
        terrain = terrain_sources(mask_path, dem, workdir, slope_path=slope,
                                  is_canceled=is_canceled)
        result = vectorize_mask(mask_path, polygons_path, slope_path=terrain[0],
                                elevation_path=terrain[1], min_slope_deg=min_slope_deg,
                                is_canceled=is_canceled, **options)
    for line in (terrain_note(terrain), flat_note(result, min_slope_deg)):
        if line and log is not None:
            log(line)
    return result
