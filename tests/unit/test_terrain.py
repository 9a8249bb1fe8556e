"""Slope from a DEM (Horn's method) and DEM/slope bands aligned to a raster."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from pyproj import Geod
from rasterio.transform import from_origin

from landslide_mapper.core.contract import BandSpec
from landslide_mapper.core.errors import InputError
from landslide_mapper.core.inputs.terrain import (
    TERRAIN_NODATA,
    augment_with_terrain,
    compute_slope,
    horn_slope,
    metres_per_degree,
)
from landslide_mapper.core.raster.bands import map_bands
from tests.support import REPO, UTM, make_raster, shared_data

sys.path.insert(0, str(REPO))
from scripts import make_fixtures as fx  # noqa: E402


def _plane(n: int, res: float, gx: float, gy: float) -> np.ndarray:
    """z = gx * x + gy * y in metres, x east and y north of the grid's lower-left corner."""
    cols, rows = np.meshgrid(np.arange(n), np.arange(n))
    x = (cols + 0.5) * res
    y = (n - rows - 0.5) * res
    return (gx * x + gy * y).astype(np.float32)


def _slope(tmp_path, z, **kw):
    dem = make_raster(tmp_path / "dem.tif", z, transform=from_origin(500000, 4000000, kw.pop(
        "res", 10.0), kw.pop("res_y", 10.0)), nodata=kw.pop("nodata", -9999.0), crs=kw.pop(
        "crs", UTM))
    out = compute_slope(dem, tmp_path / "slope.tif", **kw)
    with rasterio.open(out) as ds:
        return ds.read(1), (ds.nodata, ds.descriptions)


def test_plane_rising_one_metre_per_metre_is_45_degrees(tmp_path):
    s, (nodata, descriptions) = _slope(tmp_path, _plane(40, 10.0, 1.0, 0.0))
    assert nodata == TERRAIN_NODATA and descriptions == ("slope_deg",)
    np.testing.assert_allclose(s, 45.0, atol=1e-4)  # edges too: extrapolated, exact on a plane


def test_oblique_plane_and_pixel_size(tmp_path):
    # gradient (0.3, 0.4) -> |grad| 0.5 -> atan(0.5), whatever the pixel size and block layout
    z = _plane(70, 2.5, 0.3, 0.4)
    s, _ = _slope(tmp_path, z, res=2.5, res_y=2.5, block_size=32)
    np.testing.assert_allclose(s, math.degrees(math.atan(0.5)), atol=1e-4)


def test_feet_crs_is_unit_aware(tmp_path):
    # EPSG:2236 (Florida East, US survey feet): a 10 ft pixel is 3.048 m. z rises 3.048 m per
    # pixel eastwards -> 1 m per m -> 45 degrees (elevations in metres).
    z = (np.arange(30)[None, :] * 10 * 1200 / 3937).repeat(30, 0).astype(np.float32)
    dem = make_raster(tmp_path / "dem_ft.tif", z, crs="EPSG:2236",
                      transform=from_origin(500000, 1000000, 10, 10), nodata=-9999.0)
    with rasterio.open(compute_slope(dem, tmp_path / "s.tif")) as ds:
        np.testing.assert_allclose(ds.read(1), 45.0, atol=1e-3)
    # elevations in feet too: z_factor 0.3048 gives the same 45 degrees for z in feet
    with rasterio.open(compute_slope(make_raster(tmp_path / "dem_ftft.tif", z / (1200 / 3937),
                                                 crs="EPSG:2236",
                                                 transform=from_origin(500000, 1e6, 10, 10)),
                                     tmp_path / "s2.tif", z_factor=1200 / 3937)) as ds:
        np.testing.assert_allclose(ds.read(1), 45.0, atol=1e-3)


def test_horn_matches_gdaldem_on_rough_terrain(tmp_path):
    """An independent implementation: gdaldem slope (Horn) on a random DEM, interior pixels."""
    if shutil.which("gdaldem") is None:
        pytest.skip("gdaldem is not installed")
    rng = np.random.default_rng(3)
    z = np.cumsum(np.cumsum(rng.normal(0, 2, (50, 60)), 0), 1).astype(np.float32)
    s, _ = _slope(tmp_path, z, block_size=16, edges="nodata")
    subprocess.run(["gdaldem", "slope", "-q", str(tmp_path / "dem.tif"),
                    str(tmp_path / "gdal.tif")], check=True)
    with rasterio.open(tmp_path / "gdal.tif") as g:
        ref = g.read(1)
    np.testing.assert_allclose(s[1:-1, 1:-1], ref[1:-1, 1:-1], atol=1e-3)
    assert (s[0] == TERRAIN_NODATA).all() and (s[:, -1] == TERRAIN_NODATA).all()


def test_voids_propagate_and_are_not_filled(tmp_path):
    z = _plane(20, 10.0, 1.0, 0.0)
    z[8, 11] = -9999.0
    s, _ = _slope(tmp_path, z)
    void = s == TERRAIN_NODATA
    expected = np.zeros_like(void)
    expected[7:10, 10:13] = True  # the void and its 8 neighbours, no slope invented next to it
    assert (void == expected).all()
    np.testing.assert_allclose(s[~void], 45.0, atol=1e-4)


def test_nan_void_in_a_float_dem_without_nodata(tmp_path):
    z = _plane(12, 10.0, 0.0, 1.0)
    z[0, 0] = np.nan
    s, _ = _slope(tmp_path, z, nodata=None)
    assert (s[:2, :2] == TERRAIN_NODATA).all() and s[3, 3] == pytest.approx(45.0, abs=1e-4)


def test_horn_kernel_by_hand():
    # a b c / d e f / g h i = 0 0 0 / 0 0 0 / 8 8 8 with dx = dy = 1: dz/dy = 32/8 = 4
    z = np.array([[0, 0, 0], [0, 0, 0], [8, 8, 8]], float)
    assert horn_slope(z, 1.0, 1.0)[0, 0] == pytest.approx(math.degrees(math.atan(4)))
    assert np.isnan(horn_slope(np.where(np.eye(3) > 0, np.nan, z), 1.0, 1.0)[0, 0])


def test_metres_per_degree_against_geodesic_distances():
    geod = Geod(ellps="WGS84")
    for lat in (0.0, 36.1, 42.7, 70.0):
        mx, my = metres_per_degree(np.array([lat]), 6378137.0, 1 / 298.257223563)
        _, _, ex = geod.inv(0.0, lat, 1e-4, lat)
        _, _, ey = geod.inv(0.0, lat - 5e-5, 0.0, lat + 5e-5)
        assert mx[0] * 1e-4 == pytest.approx(ex, rel=1e-6)
        assert my[0] * 1e-4 == pytest.approx(ey, rel=1e-6)


def test_geographic_dem_uses_metres_per_degree_at_each_latitude(tmp_path):
    # The fixture DEM rises 0.1 m per metre southwards (measured on WGS84): 5.71 degrees. Treating
    # degrees as equal in x and y, or ignoring the latitude, would be far off east-west.
    paths = fx.make_dems(tmp_path)
    out = compute_slope(paths["geographic"], tmp_path / "slope_geo.tif")
    with rasterio.open(out) as ds:
        s = ds.read(1)
    valid = s != TERRAIN_NODATA
    np.testing.assert_allclose(s[valid], math.degrees(math.atan(0.1)), atol=0.01)
    assert (~valid).sum() == 9  # the one void and its neighbours

    # an east-facing plane at 36 N: z rises 0.2 m per metre eastwards, metres measured by pyproj
    lon0, lat0, d = 141.0, 36.2, 1 / 3600
    n = 40
    lats = lat0 - (np.arange(n) + 0.5) * d
    geod = Geod(ellps="WGS84")
    east = np.array([[geod.inv(lon0, la, lon0 + (c + 0.5) * d, la)[2] for c in range(n)]
                     for la in lats])
    dem = make_raster(tmp_path / "geo_east.tif", (0.2 * east).astype(np.float64),
                      crs="EPSG:4326", transform=from_origin(lon0, lat0, d, d))
    with rasterio.open(compute_slope(dem, tmp_path / "s_east.tif")) as ds:
        np.testing.assert_allclose(ds.read(1), math.degrees(math.atan(0.2)), atol=0.01)


# ---------------------------------------------------------------------------------------------
# augment_with_terrain


L4S_LIKE = [BandSpec("sentinel2:B02"), BandSpec("sentinel2:B04"), BandSpec("slope_deg"),
            BandSpec("dem_m")]


def _scene(tmp_path, n=60, res=10.0):
    data = np.stack([np.full((n, n), 1500, np.uint16), np.full((n, n), 900, np.uint16)])
    data[:, :2, :2] = 0
    return make_raster(tmp_path / "scene.tif", data, transform=from_origin(
        fx.X0, fx.Y0, res, res), nodata=0, descriptions=["sentinel2:B02", "sentinel2:B04"])


def test_augment_adds_slope_and_dem_on_the_input_grid(tmp_path):
    dems = fx.make_dems(tmp_path)
    scene = _scene(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    out = augment_with_terrain(scene, dems["utm"], L4S_LIKE, work)
    assert out.suffix == ".vrt" and out.parent == work
    with rasterio.open(out) as ds, rasterio.open(scene) as src:
        assert (ds.crs, ds.transform, ds.shape) == (src.crs, src.transform, src.shape)
        assert ds.descriptions == ("sentinel2:B02", "sentinel2:B04", "slope_deg", "dem_m")
        mapping = map_bands(L4S_LIKE, list(ds.descriptions))
        assert mapping.indexes == [1, 2, 3, 4] and mapping.method == "description"
        np.testing.assert_array_equal(ds.read(1), src.read(1))
        slope, dem = ds.read(3), ds.read(4)
    # DEM z = x - X0: bilinear of a plane is exact at the 10 m pixel centres
    x = (np.arange(60) + 0.5) * 10.0
    np.testing.assert_allclose(dem[5], x, atol=1e-3)
    # the void at DEM pixel (12, 12) covers map x, y in [X0 + 300, X0 + 330] x [Y0-300, Y0-330]:
    # its 3x3 neighbourhood is slope nodata on the DEM grid; elsewhere 45 degrees
    valid = slope != TERRAIN_NODATA
    np.testing.assert_allclose(slope[valid], 45.0, atol=1e-3)
    assert not valid[30, 30] and valid[5, 5]
    assert dem[31, 31] == TERRAIN_NODATA  # inside the DEM void itself


def test_augment_returns_the_input_when_nothing_is_missing(tmp_path):
    scene = _scene(tmp_path)
    specs = [BandSpec("sentinel2:B02"), BandSpec("sentinel2:B04")]
    assert augment_with_terrain(scene, None, specs, tmp_path) == scene


def test_augment_with_a_given_slope_raster_and_geographic_dem(tmp_path):
    dems = fx.make_dems(tmp_path)
    scene = _scene(tmp_path)
    given = make_raster(tmp_path / "given_slope.tif", np.full((80, 80), 12.5, np.float32),
                        transform=from_origin(fx.X0 - 100, fx.Y0 + 100, 10, 10))
    out = augment_with_terrain(scene, dems["geographic"], L4S_LIKE, tmp_path,
                               slope_path=given)
    with rasterio.open(out) as ds:
        np.testing.assert_allclose(ds.read(3), 12.5)
        dem = ds.read(4)
    valid = dem != TERRAIN_NODATA
    assert valid.mean() > 0.95
    # geographic DEM: 100 + 0.1 * metres south of its first row; it rises southwards
    assert (np.diff(dem[valid[:, 10], 10]) > 0).all()


def test_augment_dem_not_overlapping_names_both(tmp_path):
    dems = fx.make_dems(tmp_path)
    scene = _scene(tmp_path)
    with pytest.raises(InputError) as err:
        augment_with_terrain(scene, dems["far"], L4S_LIKE, tmp_path)
    msg = str(err.value)
    assert "dem_far.tif" in msg and "scene.tif" in msg and "does not overlap" in msg


def test_augment_needs_a_dem_when_terrain_bands_are_missing(tmp_path):
    scene = _scene(tmp_path)
    with pytest.raises(InputError, match="slope_deg and dem_m.*Give a DEM"):
        augment_with_terrain(scene, None, L4S_LIKE, tmp_path)


# ---------------------------------------------------------------------------------------------
# Real data


@pytest.mark.realdata
def test_slope_of_the_iburi_dsm_agrees_with_the_shipped_slope(tmp_path):
    """Horn slope of ``dem/download.DSM.tif`` vs the shipped ``slope/download.slope.tif``.

    The shipped raster was made by others from the same 30 m DSM, with a 4-neighbour gradient
    (it agrees better with central differences) and zeros on its border; Horn's 3x3 weights smooth
    more, so on rough terrain it is a little lower. Bound: correlation >= 0.93 and mean absolute
    difference <= 2.5 degrees on the interior (border excluded), the level two correct slope
    estimators reach on a 30 m DSM of steep hills (a wrong pixel size, e.g. degrees not converted
    or one axis off by cos(latitude) = 0.73, gives a correlation far lower or a bias of several
    degrees).
    """
    dsm = shared_data("sentinel2_iburi2018", "dem", "download.DSM.tif")
    ref_path = shared_data("sentinel2_iburi2018", "slope", "download.slope.tif")
    out = compute_slope(dsm, tmp_path / "iburi_slope.tif", block_size=128)
    with rasterio.open(out) as a, rasterio.open(ref_path) as b:
        assert (a.transform, a.shape) == (b.transform, b.shape)
        ours, ref = a.read(1)[1:-1, 1:-1], b.read(1)[1:-1, 1:-1]
    valid = ours != TERRAIN_NODATA
    diff = ours[valid] - ref[valid]
    mad = float(np.abs(diff).mean())
    corr = float(np.corrcoef(ours[valid], ref[valid])[0, 1])
    print(f"\nIburi DSM slope vs shipped slope: {valid.sum()} px, mean abs difference "
          f"{mad:.2f} deg, bias {diff.mean():+.2f} deg, correlation {corr:.3f}, "
          f"means {ours[valid].mean():.2f} vs {ref[valid].mean():.2f} deg")
    assert corr >= 0.93
    assert mad <= 2.5
    assert abs(diff.mean()) <= 1.5


def test_augmented_raster_runs_through_the_engine(tmp_path):
    """The VRT feeds map_landslides: slope reaches the model, DEM voids are never scored."""
    from landslide_mapper.core.mapping.engine import map_landslides
    from landslide_mapper.core.models.dummy import build_dummy_model

    dems = fx.make_dems(tmp_path)
    scene = _scene(tmp_path)
    model = tmp_path / "terrain.onnx"
    # logit = slope - 40: 45 degrees everywhere -> sigmoid(5)
    build_dummy_model(model, bands=[b.name for b in L4S_LIKE], weights=[0, 0, 1, 0],
                      bias=-40.0, tile_size=32, overlap=8)
    vrt = augment_with_terrain(scene, dems["utm"], L4S_LIKE, tmp_path)
    prob = tmp_path / "prob.tif"
    map_landslides(vrt, model, probability_path=prob)
    with rasterio.open(prob) as ds, rasterio.open(vrt) as src:
        p = ds.read(1)
        slope = src.read(3)
    scored = np.isfinite(p)
    assert not scored[:2, :2].any()  # the scene's own nodata
    assert not scored[slope == TERRAIN_NODATA].any()  # DEM voids
    np.testing.assert_allclose(p[scored], 1 / (1 + math.exp(-5.0)), atol=1e-4)


def test_augment_keeps_an_alpha_mask_as_nodata(tmp_path):
    """An RGBA orthophoto + slope: pixels with alpha 0 stay masked in the stacked VRT."""
    dems = fx.make_dems(tmp_path)
    ortho = fx.make_orthophotos(tmp_path)["rgba"]
    specs = [BandSpec("red"), BandSpec("green"), BandSpec("blue"), BandSpec("slope_deg")]
    vrt = augment_with_terrain(ortho, dems["utm"], specs, tmp_path)
    with rasterio.open(vrt) as ds, rasterio.open(ortho) as src:
        alpha = src.read(4)
        rgb = src.read([1, 2, 3]).astype(np.float32)
        got = ds.read([1, 2, 3])
        mask = ds.read_masks(1)
        assert map_bands(specs, list(ds.descriptions)).indexes == [1, 2, 3, 5]
    assert (mask[alpha == 0] == 0).all() and (mask[alpha > 0] == 255).all()
    np.testing.assert_array_equal(got[:, alpha > 0], rgb[:, alpha > 0])
