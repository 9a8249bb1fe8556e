"""The tiled engine on small rasters with exactly predictable dummy models."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from landslide_mapper.core.errors import CancelledError
from landslide_mapper.core.mapping.engine import map_landslides
from landslide_mapper.core.mapping.tiling import tile_origins
from landslide_mapper.core.models.dummy import build_dummy_model
from landslide_mapper.core.raster.io import pixel_size_m
from tests.support import make_raster, shared_data

W = np.array([0.004, -0.003, 0.002], np.float32)
B = -0.6
H_, W_ = 150, 173  # odd sizes: partial last tiles in both directions


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def linear_logit(data):
    return np.tensordot(W.astype(np.float64), data.astype(np.float64), axes=1) + B


def conv3_logit_zero_padded(data):
    """Independent reference: 3x3 mean of the linear part of the logit, zero padded."""
    lin = np.tensordot(W.astype(np.float64), data.astype(np.float64), axes=1)
    p = np.pad(lin, 1)
    h, w = lin.shape
    s = sum(p[i:i + h, j:j + w] for i in range(3) for j in range(3))
    return s / 9.0 + B


def read(path):
    with rasterio.open(path) as ds:
        return ds.read(1), ds.profile


@pytest.fixture
def scene(tmp_path):
    rng = np.random.default_rng(42)
    data = rng.integers(0, 800, (3, H_, W_)).astype(np.uint16)
    return make_raster(tmp_path / "scene.tif", data, descriptions=["red", "green", "blue"]), data


def model(tmp_path, kind="linear", **kw):
    kw.setdefault("weights", W)
    kw.setdefault("bias", B)
    path = tmp_path / f"{kind}.onnx"
    build_dummy_model(path, kind=kind, **kw)
    return path


def test_constant_model_gives_constant_map(tmp_path, scene):
    path, _ = scene
    m = model(tmp_path, weights=[0, 0, 0], bias=1.3)
    r = map_landslides(path, m, probability_path=tmp_path / "p.tif", mask_path=tmp_path / "m.tif")
    p, _ = read(r.probability_path)
    assert p.shape == (H_, W_)
    assert np.abs(p - sigmoid(1.3)).max() <= 1e-6
    assert np.ptp(p) == 0.0
    mask, _ = read(r.mask_path)
    assert (mask == 1).all()


def test_linear_tiled_with_overlap_equals_per_pixel_formula(tmp_path, scene):
    path, data = scene
    r = map_landslides(path, model(tmp_path), probability_path=tmp_path / "p.tif",
                       mask_path=tmp_path / "m.tif", tile_size=64, overlap=16)
    assert r.tiles == len(tile_origins(H_, 64, 16)) * len(tile_origins(W_, 64, 16))
    p, _ = read(r.probability_path)
    expected = sigmoid(linear_logit(data))
    assert np.abs(p - expected).max() < 1e-5
    mask, _ = read(r.mask_path)
    np.testing.assert_array_equal(mask, (p >= 0.5).astype(np.uint8))
    assert 0 < mask.mean() < 1  # both classes present: the threshold is really tested


def _near_tile_edges(length, tile, overlap, dist):
    """Pixels within ``dist`` of an interior tile edge along one axis."""
    near = np.zeros(length, bool)
    for o in tile_origins(length, tile, overlap):
        for e in (o, o + tile):
            if 0 < e < length:
                near[max(0, e - dist):e + dist] = True
    return near


def test_conv3_has_no_seams(tmp_path, scene):
    path, data = scene
    m = model(tmp_path, kind="conv3")
    reference = sigmoid(conv3_logit_zero_padded(data))
    near = (_near_tile_edges(H_, 64, 16, 2)[:, None] | _near_tile_edges(W_, 64, 16, 2)[None, :])

    tiled = read(map_landslides(path, m, probability_path=tmp_path / "t.tif",
                                tile_size=64, overlap=16).probability_path)[0]
    diff = np.abs(tiled - reference)
    assert diff[~near].max() < 1e-5  # tiles sit inside the raster: its border is zero padded too
    assert diff[near].max() < 5e-3  # an edge pixel's wrong value has a tiny blending weight

    # One big tile (reflection-padded past the raster) differs only near tile edges and borders.
    big = read(map_landslides(path, m, probability_path=tmp_path / "b.tif",
                              tile_size=256, overlap=0).probability_path)[0]
    border = np.zeros_like(near)
    border[:2] = border[-2:] = True
    border[:, :2] = border[:, -2:] = True
    assert np.abs(tiled - big)[~(near | border)].max() < 1e-5

    # Without overlap the same model shows the seams this test is meant to catch.
    hard = read(map_landslides(path, m, probability_path=tmp_path / "h.tif",
                               tile_size=64, overlap=0).probability_path)[0]
    assert np.abs(hard - reference).max() > 20 * diff.max()


def test_nodata_and_nan_never_scored(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.uniform(100, 200, (3, 90, 100)).astype(np.float32)
    data[:, 10:30, 5:40] = -9999.0  # nodata block across tile edges
    data[1, 60:63, 70:90] = np.nan  # NaNs inside one band
    data[0, 80, 3] = np.inf
    path = make_raster(tmp_path / "f.tif", data, nodata=-9999.0,
                       descriptions=["red", "green", "blue"])
    m = model(tmp_path, weights=[0.0, 0.0, 0.0], bias=8.0)  # every scored pixel is a landslide
    r = map_landslides(path, m, probability_path=tmp_path / "p.tif", mask_path=tmp_path / "m.tif",
                       tile_size=32, overlap=8)
    invalid = (data[0] == -9999.0) | ~np.isfinite(data).all(axis=0)
    mask, mprof = read(r.mask_path)
    p, pprof = read(r.probability_path)
    assert mprof["nodata"] == 255 and np.isnan(pprof["nodata"])
    assert (mask[invalid] == 255).all() and (mask[~invalid] == 1).all()
    assert np.isnan(p[invalid]).all() and np.isfinite(p[~invalid]).all()


def test_alpha_band_masks_pixels(tmp_path):
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 255, (3, 70, 80)).astype(np.uint8)
    alpha = np.full((1, 70, 80), 255, np.uint8)
    alpha[0, :20, :] = 0
    path = make_raster(tmp_path / "a.tif", np.concatenate([rgb, alpha]), photometric="RGB",
                       alpha="YES")
    m = model(tmp_path, weights=[0.0, 0.0, 0.0], bias=8.0)
    r = map_landslides(path, m, mask_path=tmp_path / "m.tif", tile_size=32, overlap=8)
    mask, _ = read(r.mask_path)
    assert (mask[:20] == 255).all() and (mask[20:] == 1).all()


def test_output_grid_is_input_grid(tmp_path, scene):
    path, _ = scene
    r = map_landslides(path, model(tmp_path), probability_path=tmp_path / "p.tif",
                       mask_path=tmp_path / "m.tif", probability_format="uint8")
    with rasterio.open(path) as src:
        for out in (r.probability_path, r.mask_path):
            with rasterio.open(out) as ds:
                assert ds.crs == src.crs and ds.transform == src.transform
                assert (ds.width, ds.height) == (src.width, src.height)
                assert ds.profile["tiled"] and ds.profile["compress"] == "deflate"


def test_uint8_probability_scaled(tmp_path, scene):
    path, data = scene
    r = map_landslides(path, model(tmp_path), probability_path=tmp_path / "p.tif",
                       probability_format="uint8")
    with rasterio.open(r.probability_path) as ds:
        q = ds.read(1)
        assert ds.nodata == 255 and ds.scales[0] == pytest.approx(1 / 254)
    expected = sigmoid(linear_logit(data)) * 254
    assert q.max() <= 254 and np.abs(q - expected).max() <= 0.5 + 1e-3


def test_geographic_crs(tmp_path):
    # Pixel size in degrees chosen to be ~10 m at 36 deg N (the model's pixel size).
    lat = 36.0
    dlat = 10.0 / 110_950.0
    dlon = 10.0 / (111_320.0 * np.cos(np.radians(lat)))
    rng = np.random.default_rng(3)
    data = rng.integers(0, 800, (3, 80, 90)).astype(np.uint16)
    path = make_raster(tmp_path / "g.tif", data, crs="EPSG:4326",
                       transform=from_origin(140.0, lat + 40 * dlat, dlon, dlat),
                       descriptions=["red", "green", "blue"])
    with rasterio.open(path) as ds:
        px, py = pixel_size_m(ds)
    assert px == pytest.approx(10.0, rel=5e-3) and py == pytest.approx(10.0, rel=5e-3)
    r = map_landslides(path, model(tmp_path), probability_path=tmp_path / "p.tif")
    assert not r.resampled
    p, prof = read(r.probability_path)
    assert prof["crs"].to_epsg() == 4326 and prof["transform"] == from_origin(
        140.0, lat + 40 * dlat, dlon, dlat)
    assert np.abs(p - sigmoid(linear_logit(data))).max() < 1e-5


def test_pixel_size_at_equator_matches_ellipsoid():
    """At the equator one degree is a*pi/180 along x and the meridian arc a(1-e2)*pi/180 along y."""
    a, f = 6378137.0, 1 / 298.257223563
    e2 = f * (2 - f)
    from rasterio.io import MemoryFile

    with MemoryFile() as mem:
        with mem.open(driver="GTiff", width=10, height=10, count=1, dtype="uint8", crs="EPSG:4326",
                      transform=from_origin(10.0, 0.0005, 1e-4, 1e-4)) as ds:
            px, py = pixel_size_m(ds)
    assert px == pytest.approx(a * np.pi / 180 * 1e-4, rel=1e-6)
    assert py == pytest.approx(a * (1 - e2) * np.pi / 180 * 1e-4, rel=1e-4)


def test_resampling_when_pixel_size_twice_off(tmp_path):
    # A smooth 20 m raster for a 10 m model: the model runs on a 10 m grid, output on the 20 m one.
    yy, xx = np.mgrid[0:60, 0:70].astype(np.float32)
    data = np.stack([300 + 4 * xx, 500 - 3 * yy, 200 + xx + yy]).astype(np.float32)
    path = make_raster(tmp_path / "c.tif", data, transform=from_origin(500000, 4000000, 20, 20),
                       descriptions=["red", "green", "blue"])
    r = map_landslides(path, model(tmp_path), probability_path=tmp_path / "p.tif",
                       mask_path=tmp_path / "m.tif")
    assert r.resampled and any("esampl" in m for m in r.messages)
    with rasterio.open(path) as src, rasterio.open(r.probability_path) as ds:
        assert (ds.width, ds.height) == (src.width, src.height) == (70, 60)
        assert ds.transform == src.transform and ds.crs == src.crs
        p = ds.read(1)
    expected = sigmoid(linear_logit(data))
    inner = (slice(2, -2), slice(2, -2))
    assert np.isfinite(p).all()
    assert np.abs(p[inner] - expected[inner]).max() < 2e-3
    mask, _ = read(r.mask_path)
    np.testing.assert_array_equal(mask, (p >= 0.5).astype(np.uint8))


def test_softmax2_model(tmp_path, scene):
    path, data = scene
    r = map_landslides(path, model(tmp_path, kind="softmax2"), probability_path=tmp_path / "p.tif")
    p, _ = read(r.probability_path)
    assert np.abs(p - sigmoid(linear_logit(data))).max() < 1e-5


def test_batch_sizes_give_identical_results(tmp_path, scene):
    path, _ = scene
    m = model(tmp_path, kind="conv3")
    a = read(map_landslides(path, m, probability_path=tmp_path / "a.tif", batch_size=1,
                            tile_size=32, overlap=8).probability_path)[0]
    b = read(map_landslides(path, m, probability_path=tmp_path / "b.tif", batch_size=7,
                            tile_size=32, overlap=8).probability_path)[0]
    np.testing.assert_array_equal(a, b)


def test_bands_by_description_reordered(tmp_path, scene):
    _, data = scene
    path = make_raster(tmp_path / "r.tif", data[::-1], descriptions=["blue", "green", "red"])
    r = map_landslides(path, model(tmp_path), probability_path=tmp_path / "p.tif")
    assert r.band_indexes == [3, 2, 1]
    p, _ = read(r.probability_path)
    assert np.abs(p - sigmoid(linear_logit(data))).max() < 1e-5


def test_cancel_mid_run_leaves_nothing(tmp_path, scene):
    path, _ = scene
    m = model(tmp_path)
    existing = tmp_path / "m.tif"
    existing.write_bytes(b"previous result")
    before = set(tmp_path.iterdir())
    calls = []

    def is_canceled():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(CancelledError):
        map_landslides(path, m, probability_path=tmp_path / "p.tif", mask_path=existing,
                       tile_size=32, overlap=8, batch_size=2, is_canceled=is_canceled)
    assert set(tmp_path.iterdir()) == before
    assert existing.read_bytes() == b"previous result"


def test_progress_monotonic_and_complete(tmp_path, scene):
    path, _ = scene
    seen = []
    r = map_landslides(path, model(tmp_path), mask_path=tmp_path / "m.tif", tile_size=32,
                       overlap=8, batch_size=4, progress=seen.append)
    assert len(seen) >= r.tiles // 4  # a step per batch
    assert all(b >= a for a, b in zip(seen, seen[1:]))
    assert seen[-1] == 1.0 and all(0 <= f <= 1 for f in seen)


def test_progress_monotonic_when_resampling(tmp_path):
    data = np.full((3, 40, 50), 100, np.uint16)
    path = make_raster(tmp_path / "c.tif", data, transform=from_origin(500000, 4000000, 20, 20))
    seen = []
    r = map_landslides(path, model(tmp_path), mask_path=tmp_path / "m.tif", tile_size=32,
                       overlap=8, progress=seen.append)
    assert r.resampled and seen[-1] == 1.0
    assert all(b >= a for a, b in zip(seen, seen[1:]))


def test_temporary_probability_removed_when_only_mask_and_polygons(tmp_path, scene):
    pytest.importorskip("landslide_mapper.core.polygons.vectorize")
    path, _ = scene
    r = map_landslides(path, model(tmp_path), mask_path=tmp_path / "m.tif",
                       polygons_path=tmp_path / "poly.gpkg")
    assert r.polygons_path.exists() and r.probability_path is None
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["scene.tif", "linear.onnx", "m.tif", "poly.gpkg"])


@pytest.mark.parametrize("name", ["l.gpkg", "l.shp"])
def test_polygons_from_the_mask(tmp_path, name):
    pytest.importorskip("landslide_mapper.core.polygons.vectorize")
    import fiona

    data = np.full((3, 100, 120), 100, np.uint16)
    data[0, 10:20, 10:25] = 900  # 10 x 15 px landslide across no tile edge
    data[0, 40:70, 50:90] = 900  # 30 x 40 px landslide across tile edges
    path = make_raster(tmp_path / "s.tif", data, descriptions=["red", "green", "blue"])
    m = model(tmp_path, weights=[0.01, 0, 0], bias=-5.0)  # logit +4 inside, -4 outside
    r = map_landslides(path, m, polygons_path=tmp_path / name, tile_size=32, overlap=8)
    assert r.polygon_count == 2 and r.mask_path is None and r.probability_path is None
    with fiona.open(r.polygons_path) as src:
        areas = sorted(f["properties"]["area_m2"] for f in src)
    assert areas == pytest.approx([10 * 15 * 100.0, 30 * 40 * 100.0])
    left = {p.name for p in tmp_path.iterdir()} - {"linear.onnx", "s.tif"}
    assert all(n.startswith("l.") for n in left) and name in left


def test_resampled_geographic_with_nodata(tmp_path):
    # ~20 m pixels in EPSG:4326 for a 10 m model, with a nodata block: masked on the input grid.
    lat = -8.0
    dlat = 20.0 / 110_600.0
    dlon = 20.0 / (111_320.0 * np.cos(np.radians(lat)))
    data = np.full((3, 50, 64), 500.0, np.float32)
    data[:, 5:15, 20:40] = -1.0
    transform = from_origin(115.0, lat + 25 * dlat, dlon, dlat)
    path = make_raster(tmp_path / "g.tif", data, crs="EPSG:4326", transform=transform, nodata=-1.0)
    m = model(tmp_path, weights=[0.01, 0, 0], bias=-2.0)  # logit +3 everywhere valid
    r = map_landslides(path, m, mask_path=tmp_path / "m.tif", probability_path=tmp_path / "p.tif",
                       tile_size=32, overlap=8)
    assert r.resampled
    mask, prof = read(r.mask_path)
    p, _ = read(r.probability_path)
    assert prof["transform"] == transform and mask.shape == (50, 64)
    block = np.zeros(mask.shape, bool)
    block[5:15, 20:40] = True
    assert (mask[block] == 255).all() and np.isnan(p[block]).all()
    assert (mask[~block] == 1).all()
    assert np.abs(p[~block] - sigmoid(3.0)).max() < 1e-5


@pytest.mark.realdata
def test_real_sentinel2_band_geographic(tmp_path):
    """A real Sentinel-2 band in EPSG:4326 (~7.4 x 10 m at 42.7 N): mapped on its own grid."""
    src = shared_data("sentinel2_iburi2018", "post-event", "download.B4.tif")
    m = tmp_path / "b4.onnx"
    build_dummy_model(m, bands=["sentinel2:B04"], weights=[0.004], bias=-4.0, tile_size=128,
                      overlap=32)
    r = map_landslides(src, m, probability_path=tmp_path / "p.tif", mask_path=tmp_path / "m.tif")
    assert not r.resampled and any("order" in msg for msg in r.messages)
    with rasterio.open(src) as ds:
        raw, nodata, grid = ds.read(1), ds.nodata, (ds.transform, ds.width, ds.height, ds.crs)
    p, prof = read(r.probability_path)
    assert (prof["transform"], prof["width"], prof["height"], prof["crs"]) == grid
    valid = raw != nodata
    assert np.abs(p[valid] - sigmoid(0.004 * raw[valid].astype(np.float64) - 4.0)).max() < 1e-5
    mask, _ = read(r.mask_path)
    assert (mask[~valid] == 255).all() and set(np.unique(mask[valid])) <= {0, 1}


@pytest.mark.realdata
def test_real_dem_resampled_back_onto_its_grid(tmp_path):
    """A real ~30 m DSM for a 10 m model: run at 10 m, written on the DSM's own grid."""
    src = shared_data("sentinel2_iburi2018", "dem", "download.DSM.tif")
    m = tmp_path / "dem.onnx"
    build_dummy_model(m, bands=["dem_m"], weights=[0.01], bias=-1.0, tile_size=128, overlap=32)
    r = map_landslides(src, m, probability_path=tmp_path / "p.tif")
    assert r.resampled
    with rasterio.open(src) as ds:
        dem, nodata, grid = ds.read(1), ds.nodata, (ds.transform, ds.width, ds.height, ds.crs)
    p, prof = read(r.probability_path)
    assert (prof["transform"], prof["width"], prof["height"], prof["crs"]) == grid
    valid = dem != nodata
    assert np.isnan(p[~valid]).all()
    expected = sigmoid(0.01 * dem.astype(np.float64) - 1.0)
    err = np.abs(p - expected)[valid & np.isfinite(p)]
    # Up- then down-sampling smooths a rough DSM a little: small errors, none large.
    assert np.isfinite(p[valid]).mean() > 0.99
    assert np.median(err) < 0.005 and np.quantile(err, 0.99) < 0.03 and err.max() < 0.05


def test_pixel_size_in_feet_crs_is_converted(tmp_path):
    # EPSG:2277 is in US survey feet (1200/3937 m): 32.8083 ft pixels are 10 m.
    ft = 1200 / 3937
    path = make_raster(tmp_path / "ft.tif", np.ones((3, 40, 40), np.uint16), crs="EPSG:2277",
                       transform=from_origin(2e6, 1e7, 10 / ft, 10 / ft))
    with rasterio.open(path) as ds:
        px, py = pixel_size_m(ds)
    assert px == pytest.approx(10.0, rel=1e-6) and py == pytest.approx(10.0, rel=1e-6)
    r = map_landslides(path, model(tmp_path), mask_path=tmp_path / "m.tif")
    assert not r.resampled


def _static_input(path, batch, size):
    import onnx

    m = onnx.load(str(path))
    dims = m.graph.input[0].type.tensor_type.shape.dim
    for d, v in zip(dims, (batch, None, size, size)):
        if v is not None:
            d.dim_value = v
    onnx.save_model(m, str(path))
    return path


def test_model_with_static_batch_and_tile_size(tmp_path, scene):
    path, data = scene
    m = _static_input(model(tmp_path), batch=1, size=32)
    r = map_landslides(path, m, probability_path=tmp_path / "p.tif", tile_size=32, overlap=8,
                       batch_size=4)
    assert any("fixed batch size" in msg for msg in r.messages)
    p, _ = read(r.probability_path)
    assert np.abs(p - sigmoid(linear_logit(data))).max() < 1e-5
    free = read(map_landslides(path, model(tmp_path, kind="conv3"), tile_size=32, overlap=0,
                               probability_path=tmp_path / "f.tif").probability_path)[0]
    m4 = _static_input(tmp_path / "conv3.onnx", batch=4, size=32)
    r = map_landslides(path, m4, probability_path=tmp_path / "q.tif", tile_size=32, overlap=0)
    assert r.tiles % 4 != 0  # the last batch is partial and gets padded
    q, _ = read(r.probability_path)
    np.testing.assert_allclose(q, free, atol=1e-6)


def test_several_reader_threads_give_identical_rows(tmp_path, scene):
    """Batches prepared by 3 readers (each on its own handle) reach the model in order."""
    from landslide_mapper.core.contract import read_contract
    from landslide_mapper.core.mapping.inference import run_tiles
    from landslide_mapper.core.mapping.tiling import TileGrid
    from landslide_mapper.core.models.runtime import create_session
    from landslide_mapper.core.raster.io import BandReader

    path, data = scene
    m = model(tmp_path, kind="conv3")
    contract = read_contract(m)
    session = create_session(m, contract, threads=1)
    grid = TileGrid.build(H_, W_, 32, 8)

    def run(n_readers):
        out = np.full((H_, W_), -1.0, np.float32)

        def sink(row0, prob, valid):
            out[row0:row0 + prob.shape[0]] = prob

        handles = [rasterio.open(path) for _ in range(n_readers)]
        try:
            readers = [BandReader(h, [1, 2, 3], contract.bands, 0.0) for h in handles]
            stats = run_tiles(readers, grid, session, contract.output_kind, sink, batch_size=3)
        finally:
            for h in handles:
                h.close()
        assert stats.tiles == len(grid)
        return out

    one, three = run(1), run(3)
    assert (one >= 0).all()  # every row was flushed
    np.testing.assert_array_equal(one, three)
    reference = sigmoid(conv3_logit_zero_padded(data))
    near = (_near_tile_edges(H_, 32, 8, 2)[:, None] | _near_tile_edges(W_, 32, 8, 2)[None, :])
    assert np.abs(three - reference)[~near].max() < 1e-5


def test_reader_threads_by_provider():
    from landslide_mapper.core.models.runtime import reader_threads

    assert reader_threads("CPUExecutionProvider", cores=2) == 1
    assert reader_threads("CPUExecutionProvider", cores=16) == 2
    assert reader_threads("CUDAExecutionProvider", cores=16) == 4
    assert reader_threads("CUDAExecutionProvider", cores=2) == 1


@pytest.mark.parametrize("pixel", [10.0, 20.0])  # direct, and resampled (one WarpedVRT per reader)
def test_engine_with_several_readers(tmp_path, monkeypatch, pixel):
    import landslide_mapper.core.mapping.engine as engine

    yy, xx = np.mgrid[0:60, 0:70].astype(np.float32)
    data = np.stack([300 + 4 * xx, 500 - 3 * yy, 200 + xx + yy]).astype(np.float32)
    path = make_raster(tmp_path / "c.tif", data,
                       transform=from_origin(500000, 4000000, pixel, pixel))
    m = model(tmp_path)
    single = read(map_landslides(path, m, probability_path=tmp_path / "a.tif", tile_size=32,
                                 overlap=8).probability_path)[0]
    monkeypatch.setattr(engine, "reader_threads", lambda provider: 3)
    r = map_landslides(path, m, probability_path=tmp_path / "b.tif", tile_size=32, overlap=8)
    assert any("3 reader threads" in msg for msg in r.messages)
    np.testing.assert_array_equal(read(r.probability_path)[0], single)


def test_alpha_band_masks_pixels_when_resampled(tmp_path):
    rng = np.random.default_rng(5)
    rgb = rng.integers(1, 255, (3, 60, 64)).astype(np.uint8)
    alpha = np.full((1, 60, 64), 255, np.uint8)
    alpha[0, :, :16] = 0
    path = make_raster(tmp_path / "a.tif", np.concatenate([rgb, alpha]), photometric="RGB",
                       alpha="YES", transform=from_origin(500000, 4000000, 20, 20))
    m = model(tmp_path, weights=[0.0, 0.0, 0.0], bias=8.0)
    r = map_landslides(path, m, mask_path=tmp_path / "m.tif", tile_size=32, overlap=8)
    assert r.resampled
    mask, _ = read(r.mask_path)
    assert (mask[:, :16] == 255).all() and (mask[:, 16:] == 1).all()


def test_black_collar_without_declared_nodata_is_not_mapped(tmp_path):
    rgb = np.random.default_rng(6).integers(1, 255, (3, 50, 60)).astype(np.uint8)
    rgb[:, :, :7] = 0  # collar
    rgb[:, 30, 40] = 0  # one black pixel inside: also nodata (0 in every band)
    rgb[0, 10, 50] = 0  # 0 in one band only: data
    path = make_raster(tmp_path / "c.tif", rgb, descriptions=["red", "green", "blue"])
    m = model(tmp_path, weights=[0.0, 0.0, 0.0], bias=8.0)
    r = map_landslides(path, m, mask_path=tmp_path / "m.tif", tile_size=32, overlap=8)
    assert any("black collar" in msg for msg in r.messages)
    mask, _ = read(r.mask_path)
    black = (rgb == 0).all(axis=0)
    assert (mask[black] == 255).all() and (mask[~black] == 1).all()
    # a single band of zeros (e.g. flat slope) is data: the rule needs several bands
    flat = make_raster(tmp_path / "f.tif", np.zeros((1, 40, 40), np.float32))
    m1 = tmp_path / "one.onnx"
    build_dummy_model(m1, bands=["slope_deg"], weights=[0.0], bias=8.0, tile_size=32, overlap=8)
    mask1, _ = read(map_landslides(flat, m1, mask_path=tmp_path / "m1.tif").mask_path)
    assert (mask1 == 1).all()


def test_local_crs_is_mapped_with_a_note(tmp_path):
    local = ('LOCAL_CS["site grid",LOCAL_DATUM["local",0],UNIT["metre",1],AXIS["X",EAST],'
             'AXIS["Y",NORTH]]')
    data = np.random.default_rng(7).integers(1, 500, (3, 40, 40)).astype(np.uint16)
    path = make_raster(tmp_path / "l.tif", data, crs=local, transform=from_origin(0, 400, 10, 10))
    r = map_landslides(path, model(tmp_path), mask_path=tmp_path / "m.tif")
    assert any("local (engineering) CRS" in msg and "l.tif" in msg for msg in r.messages)
    with rasterio.open(r.mask_path) as m, rasterio.open(path) as src:
        assert m.crs == src.crs and m.transform == src.transform


def test_cancel_at_every_step_leaves_nothing(tmp_path):
    """Cancel at the n-th check, for every n: tiles, warping back, polygons, publishing."""
    pytest.importorskip("landslide_mapper.core.polygons.vectorize")
    data = np.full((3, 40, 50), 100, np.uint16)
    data[0, 10:20, 10:30] = 900
    path = make_raster(tmp_path / "c.tif", data, transform=from_origin(500000, 4000000, 20, 20))
    m = model(tmp_path, weights=[0.01, 0, 0], bias=-5.0)
    out = tmp_path / "out"
    out.mkdir()
    completed = False
    for n in range(60):
        calls = []

        def is_canceled():
            calls.append(1)
            return len(calls) > n

        try:
            r = map_landslides(path, m, probability_path=out / "p.tif", mask_path=out / "m.tif",
                               polygons_path=out / "l.gpkg", tile_size=32, overlap=8,
                               batch_size=1, is_canceled=is_canceled)
        except CancelledError:
            assert list(out.iterdir()) == [], f"left behind after cancel at check {n}"
            continue
        assert r.resampled and r.polygon_count == 1
        assert sorted(p.name for p in out.iterdir()) == ["l.gpkg", "m.tif", "p.tif"]
        completed = True
        break
    assert completed
