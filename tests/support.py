"""Shared test helpers: small georeferenced rasters and the shared data folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import fiona
import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.transform import from_origin
from shapely.geometry import box, mapping

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LANDSLIDE_DATA", REPO.parent / "shared" / "data"))

UTM = "EPSG:32654"
UTM_ORIGIN = from_origin(500000.0, 4000000.0, 10.0, 10.0)
# UTM_ORIGIN: x = X0 + PX * col, y = Y0 - PX * row
X0, Y0, PX = 500000.0, 4000000.0, 10.0


def make_raster(
    path: str | Path,
    data: np.ndarray,
    *,
    crs: str | None = UTM,
    transform: Affine | None = UTM_ORIGIN,
    nodata: float | None = None,
    descriptions: Sequence[str] | None = None,
    **profile,
) -> Path:
    """Write ``data`` (bands, rows, cols) as a GeoTIFF and return its path."""
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    kw = dict(driver="GTiff", count=data.shape[0], height=data.shape[1], width=data.shape[2],
              dtype=data.dtype, nodata=nodata, **profile)
    if crs is not None:
        kw["crs"] = crs
    if transform is not None:
        kw["transform"] = transform
    with rasterio.open(path, "w", **kw) as dst:
        dst.write(data)
        for i, d in enumerate(descriptions or (), start=1):
            dst.set_band_description(i, d)
    return Path(path)


def shared_data(*parts: str) -> Path:
    """A path under the shared data folder; skips the test with a reason when absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} (set LANDSLIDE_DATA to the data folder)")
    return path


def pixel_box(r0: int, r1: int, c0: int, c1: int):
    """The polygon covering rows r0..r1-1 and columns c0..c1-1 of a UTM_ORIGIN grid exactly."""
    return box(X0 + PX * c0, Y0 - PX * r1, X0 + PX * c1, Y0 - PX * r0)


def write_polygons(path: str | Path, geoms, crs: str = UTM) -> Path:
    """Write shapely polygons to a GeoPackage layer with an ``id`` field."""
    schema = {"geometry": "Polygon", "properties": {"id": "int"}}
    with fiona.open(path, "w", driver="GPKG", schema=schema, crs=crs) as dst:
        for i, g in enumerate(geoms):
            dst.write({"geometry": mapping(g), "properties": {"id": i}})
    return Path(path)


def bright_model(path: str | Path) -> Path:
    """A one-layer model ``bright``: logit = (r + g + b) / 30 - 10, so a pixel of value 200 in
    all three bands is a landslide and one of value 10 is not."""
    from landslide_mapper.core.models.dummy import build_dummy_model

    build_dummy_model(path, weights=[1 / 30] * 3, bias=-10.0, name="bright")
    return Path(path)
