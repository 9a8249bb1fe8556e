"""What keeps memory flat, checked for correct results (figures: scripts/bench_memory.py).

* ``map`` blends a raster wider than its strip budget in column blocks: the result must be the
  one of a single full-width strip, bit for bit, on its own grid and when warped back.
* ``evaluate`` refuses a grid over its pixel limit and takes its pixel size in metres.
* ``vectorize`` refuses a mask whose one component would not fit its vertex budget.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from landslide_mapper.core.mapping import engine, inference
from landslide_mapper.core.mapping.engine import map_landslides
from landslide_mapper.core.mapping.tiling import TileGrid, column_blocks
from landslide_mapper.core.models.dummy import build_dummy_model
from tests.support import make_raster

H, W = 70, 1100  # wider than several 256-column blocks, with a partial last one


def _scene(tmp_path: Path, pixel: float = 10.0) -> Path:
    rng = np.random.default_rng(3)
    data = rng.uniform(0, 2, (3, H, W)).astype(np.float32)
    return make_raster(tmp_path / f"wide_{pixel:g}.tif", data,
                       transform=from_origin(500000.0, 4000000.0, pixel, pixel))


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


def test_column_blocks_cover_the_width_in_whole_blocks():
    assert column_blocks(1100, 600, 256) == [(0, 512), (512, 1024), (1024, 1100)]
    assert column_blocks(100, 10, 256) == [(0, 100)]
    grid = TileGrid.build(70, 1100, 32, 8)
    tiles = list(grid.tiles_for_columns(512, 1024))
    assert min(t.col for t in tiles) < 512 and max(t.col for t in tiles) + 32 > 1023
    assert all(t.col < 1024 and t.col + 32 > 512 for t in tiles)
    assert sum(t.last_in_row for t in tiles) == len(grid.rows)


@pytest.mark.parametrize("pixel", [10.0, 13.0])  # 13 m: resampled, then warped back
def test_wide_raster_in_column_blocks_equals_one_strip(tmp_path: Path, monkeypatch, pixel):
    model = tmp_path / "conv3.onnx"
    build_dummy_model(model, kind="conv3", weights=[1.0, -0.5, 0.25], bias=-0.3,
                      tile_size=32, overlap=8)
    scene = _scene(tmp_path, pixel)
    whole = map_landslides(scene, model, probability_path=tmp_path / "whole.tif",
                           mask_path=tmp_path / "whole_mask.tif")
    seen: list[tuple[int, int]] = []
    real = inference.StripAccumulator

    def small(grid, sink, block=256, cols=None):
        seen.append(cols)
        return real(grid, sink, block, cols)

    # a strip budget of 256 columns: blocks 0-256, 256-512, ... and warping 256 columns at a time
    monkeypatch.setattr(inference, "STRIP_BYTES", 1)
    monkeypatch.setattr(inference, "StripAccumulator", small)
    monkeypatch.setattr(engine, "WARP_COLUMNS", 256)
    blocked = map_landslides(scene, model, probability_path=tmp_path / "blocked.tif",
                             mask_path=tmp_path / "blocked_mask.tif")
    assert len(seen) > 1 and seen[0] == (0, 256)
    assert blocked.tiles > whole.tiles  # tiles across a block boundary run for both blocks
    # the same sums in the same order: bit for bit; GDAL's warp of a window may differ by an ulp
    atol = 0.0 if pixel == 10.0 else 1e-6
    np.testing.assert_allclose(_read(blocked.probability_path), _read(whole.probability_path),
                               rtol=0, atol=atol)
    np.testing.assert_array_equal(_read(blocked.mask_path), _read(whole.mask_path))
    assert np.isfinite(_read(blocked.probability_path)).all()
    assert blocked.resampled == (pixel != 10.0)


def _squares(path: Path, x: float, y: float, crs: str = "EPSG:32633", size: float = 50.0,
             n: int = 3) -> Path:
    import fiona
    from shapely.geometry import box, mapping

    schema = {"geometry": "Polygon", "properties": {"id": "int"}}
    with fiona.open(path, "w", driver="GPKG", crs=crs, schema=schema) as dst:
        for i in range(n):
            x0 = x + i * 4 * size
            dst.write({"geometry": mapping(box(x0, y, x0 + size, y + size)),
                       "properties": {"id": i + 1}})
    return path


def test_evaluate_refuses_a_grid_over_the_limit_for_far_apart_inputs(tmp_path: Path):
    from landslide_mapper.core.errors import InputError
    from landslide_mapper.core.loop.evaluation import MAX_GRID_PIXELS, evaluate_landslides

    pred = _squares(tmp_path / "pred.gpkg", 500_000, 5_000_000)
    ref = _squares(tmp_path / "ref.gpkg", 600_000, 5_100_000)  # 100 km north-east
    with pytest.raises(InputError) as err:
        evaluate_landslides(pred, ref, pixel_size=1.0)
    text = str(err.value)
    assert f"at most {MAX_GRID_PIXELS:,}" in text and "do not overlap" in text
    assert "at least" in text and "\n" not in text
    res = evaluate_landslides(pred, ref)  # a pixel size picked: 4000 pixels across
    assert max(res.grid["width"], res.grid["height"]) == 4000


def test_evaluate_pixel_size_in_metres_in_a_geographic_crs(tmp_path: Path):
    """10 m in EPSG:4326 at 43 N: about 1.2e-4 degrees of longitude, 9e-5 of latitude; before,
    10 was taken as 10 degrees and made a 1 x 1 grid."""
    from landslide_mapper.core.errors import InputError
    from landslide_mapper.core.loop.evaluation import evaluate_landslides

    deg = 50 / 111_000  # ~50 m squares
    ref = _squares(tmp_path / "ref.gpkg", 142.0, 43.0, crs="EPSG:4326", size=deg)
    pred = _squares(tmp_path / "pred.gpkg", 142.0, 43.0, crs="EPSG:4326", size=deg, n=2)
    res = evaluate_landslides(pred, ref, pixel_size=10.0)
    px, py = res.grid["pixel_size"]
    assert px == pytest.approx(10 / 81_500, rel=0.02) and py == pytest.approx(10 / 111_100,
                                                                             rel=0.01)
    assert res.hits == 2 and res.pixel["recall"] == pytest.approx(2 / 3, abs=0.05)
    with pytest.raises(InputError, match="expected a pixel size well below the polygons' extent"):
        evaluate_landslides(pred, ref, pixel_size=5000.0)
    with pytest.raises(InputError, match="expected a number of metres > 0, found -1"):
        evaluate_landslides(pred, ref, pixel_size=-1.0)


def _blobs_mask(path: Path, height: int, width: int) -> tuple[Path, Path]:
    """A mask of ragged blobs (with holes and diagonal pinches) and its probability raster."""
    rng = np.random.default_rng(5)
    noise = rng.random((height, width))
    yy, xx = np.mgrid[0:height, 0:width]
    blobs = (np.sin(xx / 7.0) * np.cos(yy / 5.0) > 0.3) & (noise > 0.1)
    prob = np.where(blobs, 0.5 + 0.5 * noise, 0.4 * noise).astype(np.float32)
    mask = make_raster(path, blobs.astype(np.uint8), nodata=255, tiled=True, blockxsize=256,
                       blockysize=256)
    return mask, make_raster(path.with_name("prob.tif"), prob, tiled=True, blockxsize=256,
                             blockysize=256)


def _features(path: Path) -> list[tuple]:
    import fiona
    import shapely
    from shapely.geometry import shape

    with fiona.open(path) as src:
        rows = [(shapely.normalize(shape(f["geometry"])).wkb_hex, f["properties"]["pixels"],
                 round(f["properties"]["area_m2"], 6), round(f["properties"]["prob_mean"], 9),
                 f["properties"]["prob_max"]) for f in src]
    return sorted(rows)


def test_a_very_wide_mask_walked_in_columns_gives_the_same_polygons(tmp_path: Path,
                                                                     monkeypatch):
    """A raster whose row of blocks does not fit the cache is read in strips of columns:
    the same polygons and attributes as in strips of rows (only their order may differ)."""
    from landslide_mapper.core.polygons import mask_reading
    from landslide_mapper.core.polygons.vectorize import vectorize_mask

    mask, prob = _blobs_mask(tmp_path / "mask.tif", 60, 900)
    rows = vectorize_mask(mask, tmp_path / "rows.gpkg", probability_path=prob, strip_rows=7)
    with rasterio.open(mask) as m, rasterio.open(prob) as p:
        assert not mask_reading.strip_walk(m, p).transposed
        monkeypatch.setattr(mask_reading, "CACHE_BYTES", 1000)
        walk = mask_reading.strip_walk(m, p)
        assert walk.transposed and (walk.width, walk.height) == (60, 900)
    cols = vectorize_mask(mask, tmp_path / "cols.gpkg", probability_path=prob, strip_rows=13)
    assert cols.count == rows.count > 20
    assert cols.total_area_m2 == pytest.approx(rows.total_area_m2)
    assert _features(tmp_path / "cols.gpkg") == _features(tmp_path / "rows.gpkg")


def test_a_noise_mask_is_refused_before_it_grows(tmp_path: Path, monkeypatch):
    """One region with a huge holed outline (a speckled mask) is refused, naming the mask."""
    from landslide_mapper.core.errors import InputError
    from landslide_mapper.core.polygons import strips
    from landslide_mapper.core.polygons.vectorize import vectorize_mask

    idx = np.arange(200) % 4 == 0
    mesh = (idx[:, None] | idx[None, :]).astype(np.uint8)  # one component, 2500 holes
    mask = make_raster(tmp_path / "mesh.tif", mesh, nodata=255)
    ok = vectorize_mask(mask, tmp_path / "ok.gpkg")
    assert ok.count == 1
    monkeypatch.setattr(strips, "MAX_COMPONENT_VERTICES", 5000)
    with pytest.raises(InputError, match=r"mesh.tif'?: expected separate landslide areas, found "
                                         r"one connected region whose outline has [\d,]+ vertices"):
        vectorize_mask(mask, tmp_path / "noise.gpkg", strip_rows=50)
    assert not (tmp_path / "noise.gpkg").exists()


def test_map_names_its_polygons_not_a_temporary_mask(tmp_path: Path, monkeypatch):
    """The outline limit hit while ``map`` vectorizes: the message names the polygon output,
    and nothing is left behind."""
    from landslide_mapper.core.errors import InputError
    from landslide_mapper.core.polygons import strips

    model = tmp_path / "all.onnx"
    build_dummy_model(model, weights=[1.0, 0.0, 0.0], bias=-1.0, tile_size=32, overlap=8)
    idx = np.arange(W) % 4 == 0
    red = (idx[:H, None] | idx[None, :]).astype(np.float32) * 2  # a mesh: one holed region
    scene = make_raster(tmp_path / "wide_10.tif", np.stack([red, red, red]))
    monkeypatch.setattr(strips, "MAX_COMPONENT_VERTICES", 500)
    with pytest.raises(InputError, match=r"^Landslide mask for the polygons .*ls\.gpkg: expected "
                                         "separate landslide areas"):
        map_landslides(scene, model, polygons_path=tmp_path / "ls.gpkg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.onnx", "wide_10.tif"]
