"""Slope and elevation of each polygon from a DEM or a slope raster, and the minimum-slope filter.

The synthetic DEM is flat (100 m) west of x = 500400 m and a plane rising eastwards at exactly
30 degrees (dz/dx = tan 30) east of it, so Horn's slope is 0 on the flat part and 30 degrees on
the plane, away from the break.
"""

from __future__ import annotations

import math

import fiona
import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin

from landslide_mapper.core.errors import InputError
from landslide_mapper.core.mapping.engine import map_landslides
from landslide_mapper.core.mapping.vectorizing import vectorize_with_terrain
from landslide_mapper.core.models.dummy import build_dummy_model
from landslide_mapper.core.polygons.vectorize import vectorize_mask
from tests.support import PX, UTM, X0, Y0, make_raster, shared_data

ROWS, COLS = 60, 80
BREAK_X = 500400.0  # column 40
TAN = math.tan(math.radians(30.0))
# (rows, cols) of the landslide squares: two on the flat part, two on the 30-degree plane
FLAT = [((10, 20), (5, 15)), ((35, 45), (8, 16))]
STEEP = [((10, 20), (50, 60)), ((35, 45), (55, 65))]


def elevation(x: np.ndarray) -> np.ndarray:
    return np.where(x < BREAK_X, 100.0, 100.0 + (x - BREAK_X) * TAN)


def centres() -> tuple[np.ndarray, np.ndarray]:
    """x, y of the mask's pixel centres, (ROWS, COLS)."""
    x = X0 + PX * (np.arange(COLS) + 0.5)
    y = Y0 - PX * (np.arange(ROWS) + 0.5)
    return np.meshgrid(x, y)


def squares_mask() -> np.ndarray:
    mask = np.zeros((ROWS, COLS), np.uint8)
    for (r0, r1), (c0, c1) in FLAT + STEEP:
        mask[r0:r1, c0:c1] = 1
    return mask


def read(path) -> list[dict]:
    with fiona.open(path) as layer:
        return [dict(f.properties) for f in layer]


@pytest.fixture()
def dem_on_grid(tmp_path):
    x, _ = centres()
    return make_raster(tmp_path / "dem.tif", elevation(x).astype(np.float32))


@pytest.fixture()
def mask(tmp_path):
    return make_raster(tmp_path / "mask.tif", squares_mask())


def square_of(feature: dict) -> tuple:
    """The square (of FLAT + STEEP) a polygon covers, found by its pixel count and elevation."""
    for square in FLAT + STEEP:
        (r0, r1), (c0, c1) = square
        x, _ = centres()
        z = elevation(x[r0:r1, c0:c1])
        if (feature["pixels"] == (r1 - r0) * (c1 - c0)
                and abs(feature["elev_min"] - z.min()) < 0.05
                and abs(feature["elev_max"] - z.max()) < 0.05):
            return square
    raise AssertionError(f"no square matches {feature}")


def test_slope_and_elevation_of_each_polygon(tmp_path, mask, dem_on_grid):
    out = tmp_path / "ls.gpkg"
    result = vectorize_with_terrain(mask, out, dem=dem_on_grid)
    assert result.count == 4 and result.flat_count == 0
    with fiona.open(out) as layer:
        names = list(layer.schema["properties"])
    assert names[names.index("prob_max") + 1:names.index("prob_max") + 5] == [
        "slope_mean", "slope_max", "elev_min", "elev_max"]
    x, _ = centres()
    seen = set()
    for f in read(out):
        square = square_of(f)  # elev_min/max: the DEM's lowest and highest under the polygon
        seen.add(square)
        want = 0.0 if square in FLAT else 30.0
        assert f["slope_mean"] == pytest.approx(want, abs=0.05)
        assert f["slope_max"] == pytest.approx(want, abs=0.05)
    assert seen == set(FLAT + STEEP)


def test_elevations_are_the_dem_values_under_the_polygon(tmp_path, mask):
    rng = np.random.default_rng(0)
    dem = rng.uniform(50, 900, (ROWS, COLS)).astype(np.float32)
    dem_path = make_raster(tmp_path / "rough.tif", dem)
    out = tmp_path / "ls.gpkg"
    vectorize_with_terrain(mask, out, dem=dem_path)
    features = read(out)
    wanted = sorted((round(float(dem[r0:r1, c0:c1].min()), 1),
                     round(float(dem[r0:r1, c0:c1].max()), 1))
                    for (r0, r1), (c0, c1) in FLAT + STEEP)
    assert sorted((f["elev_min"], f["elev_max"]) for f in features) == wanted


def test_attributes_do_not_depend_on_how_the_mask_is_walked(tmp_path, monkeypatch):
    """Strips of 7 rows (squares cut across strips) and strips of columns (a raster too wide for
    the block cache) give the attributes of one whole read."""
    from landslide_mapper.core.polygons import mask_reading

    rng = np.random.default_rng(1)
    mask_path = make_raster(tmp_path / "mask.tif", squares_mask())
    dem_path = make_raster(tmp_path / "rough.tif",
                           rng.uniform(50, 900, (ROWS, COLS)).astype(np.float32))
    slope_path = make_raster(tmp_path / "slope.tif",
                             rng.uniform(0, 60, (ROWS, COLS)).astype(np.float32))

    def attributes(name: str, **kw) -> list[tuple]:
        out = tmp_path / f"{name}.gpkg"
        vectorize_mask(mask_path, out, slope_path=slope_path, elevation_path=dem_path, **kw)
        return sorted((f["pixels"], f["slope_mean"], f["slope_max"], f["elev_min"], f["elev_max"])
                      for f in read(out))

    whole = attributes("whole")
    assert len(whole) == 4 and all(None not in a for a in whole)
    assert attributes("strips", strip_rows=7) == whole
    monkeypatch.setattr(mask_reading, "CACHE_BYTES", 1)
    with rasterio.open(mask_path) as ds:
        assert mask_reading.strip_walk(ds).transposed
    assert attributes("columns", strip_rows=7) == whole


def test_min_slope_drops_exactly_the_flat_polygons(tmp_path, mask, dem_on_grid):
    out = tmp_path / "ls.gpkg"
    result = vectorize_with_terrain(mask, out, dem=dem_on_grid, min_slope_deg=10)
    features = read(out)
    assert sorted(square_of(f) for f in features) == sorted(STEEP)
    assert result.count == 2 and result.flat_count == 2
    assert result.flat_area_m2 == pytest.approx((100 + 80) * PX * PX)
    with fiona.open(out) as layer:
        assert [int(f.id) for f in layer] == [1, 2]  # numbered without gaps


def test_slope_raster_alone_gives_slope_but_no_elevation(tmp_path, mask):
    slope = np.where(centres()[0] < BREAK_X, 2.0, 35.0).astype(np.float32)
    slope_path = make_raster(tmp_path / "slope.tif", slope)
    out = tmp_path / "ls.gpkg"
    result = vectorize_mask(mask, out, slope_path=slope_path, min_slope_deg=5)
    with fiona.open(out) as layer:
        names = list(layer.schema["properties"])
    assert "slope_mean" in names and "slope_max" in names and "elev_min" not in names
    assert result.count == 2 and result.flat_count == 2
    assert all(f["slope_mean"] == 35.0 for f in read(out))


def test_polygon_outside_the_dem_keeps_null_slope_and_is_not_dropped(tmp_path, mask):
    # the DEM covers only the western half: the eastern squares get no slope at all
    x, _ = centres()
    half = elevation(x[:, :30]).astype(np.float32)
    dem_path = make_raster(tmp_path / "half.tif", half)
    out = tmp_path / "ls.gpkg"
    result = vectorize_with_terrain(mask, out, dem=dem_path, min_slope_deg=10)
    features = read(out)
    assert result.flat_count == 2 and len(features) == 2
    assert all(f["slope_mean"] is None and f["elev_min"] is None for f in features)


def test_min_slope_without_dem_or_slope_is_refused(tmp_path, mask):
    with pytest.raises(InputError) as err:
        vectorize_mask(mask, tmp_path / "ls.gpkg", min_slope_deg=5)
    assert "Minimum slope" in str(err.value) and "DEM" in str(err.value)
    assert not (tmp_path / "ls.gpkg").exists()


def test_dem_in_another_crs(tmp_path, mask):
    """A geographic DEM (EPSG:4326, ~11 x 9 m cells) of the same terrain: slopes and elevations
    come out as on the mask's own grid, within what resampling allows."""
    to_utm = Transformer.from_crs("EPSG:4326", UTM, always_xy=True)
    to_geo = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    lon0, lat0 = to_geo.transform(X0 - 200, Y0 + 200)
    lon1, lat1 = to_geo.transform(X0 + PX * COLS + 200, Y0 - PX * ROWS - 200)
    step = 0.0001
    n_cols, n_rows = int((lon1 - lon0) / step) + 1, int((lat0 - lat1) / step) + 1
    lon = lon0 + step * (np.arange(n_cols) + 0.5)
    lat = lat0 - step * (np.arange(n_rows) + 0.5)
    glon, glat = np.meshgrid(lon, lat)
    gx, _ = to_utm.transform(glon, glat)
    dem_path = make_raster(tmp_path / "dem_geo.tif", elevation(gx).astype(np.float32),
                           crs="EPSG:4326", transform=from_origin(lon0, lat0, step, step))
    out = tmp_path / "ls.gpkg"
    result = vectorize_with_terrain(mask, out, dem=dem_path, min_slope_deg=10)
    features = read(out)
    assert result.flat_count == 2 and len(features) == 2
    x, _ = centres()
    for f in features:
        assert f["slope_mean"] == pytest.approx(30.0, abs=0.3)
        assert f["slope_max"] == pytest.approx(30.0, abs=0.5)
    wanted = sorted((elevation(x[r0:r1, c0:c1]).min(), elevation(x[r0:r1, c0:c1]).max())
                    for (r0, r1), (c0, c1) in STEEP)
    found = sorted((f["elev_min"], f["elev_max"]) for f in features)
    assert np.allclose(found, wanted, atol=0.5)


# ---------------------------------------------------------------------------- the mapping run


@pytest.fixture()
def scene(tmp_path):
    """An RGB raster bright (a landslide for the model below) on the four squares."""
    rgb = np.full((3, ROWS, COLS), 50, np.uint8)
    for (r0, r1), (c0, c1) in FLAT + STEEP:
        rgb[0, r0:r1, c0:c1] = 200
    return make_raster(tmp_path / "scene.tif", rgb, descriptions=["red", "green", "blue"])


@pytest.fixture()
def bright(tmp_path):
    path = tmp_path / "bright.onnx"
    build_dummy_model(path, weights=[0.1, 0, 0], bias=-10.0, tile_size=32, overlap=8)
    return path


def test_map_with_a_dem_in_another_crs_filters_flat_polygons(tmp_path, scene, bright):
    to_geo = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    lon0, lat0 = to_geo.transform(X0 - 300, Y0 + 300)
    step = 0.0002  # a coarser DEM than the raster, in degrees
    lon = lon0 + step * (np.arange(60) + 0.5)
    lat = lat0 - step * (np.arange(50) + 0.5)
    gx, _ = Transformer.from_crs("EPSG:4326", UTM, always_xy=True).transform(
        *np.meshgrid(lon, lat))
    dem = make_raster(tmp_path / "dem.tif", elevation(gx).astype(np.float32), crs="EPSG:4326",
                      transform=from_origin(lon0, lat0, step, step))
    out = tmp_path / "ls.gpkg"
    messages = []
    result = map_landslides(scene, bright, polygons_path=out, dem=dem, min_slope_deg=10,
                            log=messages.append)
    assert result.polygon_count == 2 and result.slope_dropped_count == 2
    assert result.slope_dropped_area_ha == pytest.approx((100 + 80) * PX * PX / 1e4, abs=0.005)
    assert any("2 polygons" in m and "dropped" in m for m in messages)
    for f in read(out):
        assert f["slope_mean"] == pytest.approx(30.0, abs=1.0)


def test_map_with_min_slope_and_no_dem_is_refused_before_any_work(tmp_path, scene, bright):
    with pytest.raises(InputError) as err:
        map_landslides(scene, bright, polygons_path=tmp_path / "ls.gpkg", min_slope_deg=5)
    assert "Minimum slope" in str(err.value)
    assert list(tmp_path.glob("ls*")) == []


def test_map_without_terrain_writes_no_terrain_fields(tmp_path, scene, bright):
    out = tmp_path / "ls.gpkg"
    result = map_landslides(scene, bright, polygons_path=out)
    assert result.polygon_count == 4 and result.slope_dropped_count == 0
    with fiona.open(out) as layer:
        assert not {"slope_mean", "elev_min"} & set(layer.schema["properties"])


# ---------------------------------------------------------------------------- real data


@pytest.mark.realdata
def test_iburi_slopes_from_the_dsm_agree_with_the_scenes_slope_raster(tmp_path):
    """The 2018 Iburi scene mapped with sentinel2-rgb: the polygons' mean slope from the 30 m
    DSM (EPSG:4326, Horn's method here) against the scene's own slope raster; --min-slope 5
    drops exactly the polygons whose mean slope is under 5 degrees."""
    from landslide_mapper.core.inputs.sentinel2 import prepare_sentinel2_stack

    folder = shared_data("sentinel2_iburi2018")
    raster = tmp_path / "iburi_rgb.tif"
    prepare_sentinel2_stack([folder / "post-event" / f"download.{b}.tif" for b in
                             ("B4", "B3", "B2")], raster, bands=["B04", "B03", "B02"])
    dsm = folder / "dem" / "download.DSM.tif"
    options = dict(min_area_m2=500, threads=2)
    map_landslides(raster, "sentinel2-rgb", polygons_path=tmp_path / "dsm.gpkg", dem=dsm,
                   **options)
    map_landslides(raster, "sentinel2-rgb", polygons_path=tmp_path / "given.gpkg",
                   slope=folder / "slope" / "download.slope.tif", **options)
    result = map_landslides(raster, "sentinel2-rgb", polygons_path=tmp_path / "steep.gpkg",
                            dem=dsm, min_slope_deg=5, **options)
    ours, given = read(tmp_path / "dsm.gpkg"), read(tmp_path / "given.gpkg")
    assert len(ours) == len(given) > 100
    a = np.array([f["slope_mean"] for f in ours])
    b = np.array([f["slope_mean"] for f in given])
    assert np.corrcoef(a, b)[0, 1] > 0.9 and np.median(np.abs(a - b)) < 2.0
    assert all(f["elev_min"] <= f["elev_max"] for f in ours)
    flat = [f for f in ours if f["slope_mean"] < 5]
    assert 0 < len(flat) == result.slope_dropped_count
    assert result.polygon_count == len(ours) - len(flat)
    assert result.slope_dropped_area_ha == pytest.approx(
        sum(f["area_m2"] for f in flat) / 1e4, abs=0.01)
