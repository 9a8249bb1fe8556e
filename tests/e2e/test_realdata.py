"""The whole chain on real georeferenced Sentinel-2 data from ../shared/data.

The model is a pointwise dummy (a pixel is a landslide when its mean brightness is above the scene's
99th percentile), so the expected mask is computed independently with numpy from the raw pixels, and
polygon areas are checked against an independent geodesic computation (each polygon projected to a
Lambert azimuthal equal-area CRS centred on it).
"""

from __future__ import annotations

from pathlib import Path

import fiona
import numpy as np
import pyproj
import pytest
import rasterio
from rasterio.merge import merge
from shapely import transform as shapely_transform_coords
from shapely.geometry import shape

from landslide_mapper.core.inputs.sentinel2 import prepare_sentinel2_stack
from landslide_mapper.core.mapping.engine import map_landslides
from landslide_mapper.core.models.dummy import build_dummy_model
from tests.support import shared_data

pytestmark = pytest.mark.realdata


def _brightness_model(path: Path, raster: Path, n_bands: int, names: list[str]) -> float:
    with rasterio.open(raster) as src:
        rgb = src.read(list(range(1, 4))).astype(np.float64)
        valid = ~np.all(rgb == 0, axis=0)
        cut = float(np.percentile(rgb.mean(axis=0)[valid], 99))
    weights = [1 / (3 * 50.0)] * 3 + [0.0] * (n_bands - 3)
    build_dummy_model(path, bands=names, weights=weights, bias=-cut / 50.0, tile_size=128,
                      overlap=32, name="brightness")
    return cut


def _check_outputs(raster: Path, out: Path, cut: float, result) -> None:
    with rasterio.open(raster) as src, rasterio.open(out / "mask.tif") as mask, \
            rasterio.open(out / "prob.tif") as prob:
        for o in (mask, prob):
            assert o.crs == src.crs
            assert o.transform.almost_equals(src.transform, precision=1e-12)
            assert o.shape == src.shape
        brightness = src.read(list(range(1, 4))).astype(np.float64).mean(axis=0)
        m = mask.read(1)
    expected = brightness > cut
    clear = np.abs(brightness - cut) > 0.01  # pixels not on the decision boundary
    assert np.array_equal((m == 1)[clear], expected[clear])
    assert expected.sum() > 50

    with fiona.open(out / "landslides.gpkg") as layer:
        crs = pyproj.CRS.from_user_input(layer.crs_wkt)
        assert crs.is_geographic
        features = list(layer)
    assert len(features) == result.polygon_count > 0
    assert sum(f["properties"]["pixels"] for f in features) == int((m == 1).sum())
    for f in features[:200]:
        geom = shape(f["geometry"])
        c = geom.centroid
        laea = pyproj.CRS.from_proj4(f"+proj=laea +lat_0={c.y} +lon_0={c.x} +ellps=WGS84")
        to_laea = pyproj.Transformer.from_crs(crs, laea, always_xy=True).transform
        area = shapely_transform_coords(geom, lambda xy: np.column_stack(to_laea(xy[:, 0], xy[:, 1]))).area
        props = f["properties"]
        # areas are stated to 1 m2 and hectares to 0.01 ha
        assert props["area_m2"] == pytest.approx(area, rel=5e-3, abs=0.5)
        assert props["area_ha"] == pytest.approx(props["area_m2"] / 10_000, abs=0.005)
        assert props["centroid_lon"] == pytest.approx(c.x, abs=1e-3)
        assert props["centroid_lat"] == pytest.approx(c.y, abs=1e-3)
        assert 0.5 <= props["prob_mean"] <= props["prob_max"] <= 1.0


def test_iburi_2018_post_event_scene(tmp_path):
    folder = shared_data("sentinel2_iburi2018", "post-event")
    raster = tmp_path / "iburi_rgb.tif"
    prepare_sentinel2_stack([folder / f"download.{b}.tif" for b in ("B4", "B3", "B2")], raster,
                            bands=["B04", "B03", "B02"])
    model = tmp_path / "brightness.onnx"
    cut = _brightness_model(model, raster, 3, ["sentinel2:B04", "sentinel2:B03", "sentinel2:B02"])
    out = tmp_path / "out"
    out.mkdir()
    result = map_landslides(raster, model, probability_path=out / "prob.tif",
                            mask_path=out / "mask.tif", polygons_path=out / "landslides.gpkg")
    assert result.band_indexes == [1, 2, 3]
    _check_outputs(raster, out, cut, result)


def test_chittagong_mosaic(tmp_path):
    tiles = sorted(shared_data("sentinel2_chittagong", "images").glob("*.tif"))
    mosaic, transform = merge([str(t) for t in tiles])
    with rasterio.open(tiles[0]) as first:
        profile = first.profile
    raster = tmp_path / "chittagong.tif"
    profile.update(width=mosaic.shape[2], height=mosaic.shape[1], transform=transform,
                   dtype="float32", blockxsize=256, blockysize=256)
    with rasterio.open(raster, "w", **profile) as dst:
        dst.write(mosaic.astype(np.float32))
    model = tmp_path / "brightness.onnx"
    cut = _brightness_model(model, raster, 4, ["red", "green", "blue", "nir"])
    out = tmp_path / "out"
    out.mkdir()
    result = map_landslides(raster, model, probability_path=out / "prob.tif",
                            mask_path=out / "mask.tif", polygons_path=out / "landslides.gpkg")
    _check_outputs(raster, out, cut, result)
