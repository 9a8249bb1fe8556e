"""Many rasters on Dask distributed: listing, cluster sizing, failures, re-runs, the merged
inventory, cancel, and the split-rows run against the single run, pixel for pixel.

Generated rasters with exactly predictable dummy models test the logic everywhere; the realdata
test maps small real Sentinel-2 tiles from ../shared/data with a bundled model.
"""

from __future__ import annotations

import csv
import errno
import json
import math
import shutil
from pathlib import Path

import fiona
import numpy as np
import pytest
import rasterio
from pyproj import CRS
from rasterio.transform import from_origin

from landslide_mapper.core.batch import inventory as inventory_module
from landslide_mapper.core.batch.cluster import local_sizing, open_cluster
from landslide_mapper.core.batch.listing import expand_inputs, output_names
from landslide_mapper.core.batch.run import INVENTORY, SUMMARY, map_many
from landslide_mapper.core.batch.split import block_batches, map_split, row_blocks, touches
from landslide_mapper.core.errors import CancelledError, InputError, OutputError
from landslide_mapper.core.mapping.engine import map_landslides
from landslide_mapper.core.mapping.tiling import TileGrid
from landslide_mapper.core.models.dummy import build_dummy_model
from tests.support import PX, X0, make_raster, shared_data

W = [0.004, -0.003, 0.002]
B = -0.6
H_, W_ = 150, 173


def scene(path: Path, seed: int, **kw) -> Path:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 800, (3, H_, W_)).astype(np.uint16)
    return make_raster(path, data, descriptions=["red", "green", "blue"], **kw)


@pytest.fixture
def rasters(tmp_path: Path) -> Path:
    """Three generated scenes and a file that is no raster at all."""
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(3):
        scene(folder / f"scene{k}.tif", k)
    (folder / "corrupt.tif").write_bytes(b"this is not a GeoTIFF")
    return folder


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "linear.onnx"
    build_dummy_model(path, weights=W, bias=B, tile_size=64, overlap=16)
    return path


def inventory(path: Path) -> tuple[list[dict], CRS]:
    with fiona.open(path, layer="landslides") as layer:
        return [dict(f["properties"]) for f in layer], CRS.from_wkt(layer.crs_wkt)


# --- inputs and sizing ------------------------------------------------------------------------


def test_inputs_from_folders_patterns_and_lists(tmp_path, rasters):
    other = tmp_path / "other"
    other.mkdir()
    scene(other / "scene0.tif", 9)  # same file name as one in rasters/: names must not collide
    (tmp_path / "list.txt").write_text(f"# two rasters\n{other / 'scene0.tif'}\nin/scene1.tif\n")
    items = expand_inputs([str(rasters / "scene*.tif"), str(tmp_path / "list.txt"), str(other)])
    assert [i.raster.name for i in items] == ["scene0.tif", "scene1.tif", "scene2.tif",
                                             "scene0.tif"]  # each raster once, in order
    names = [i.name for i in items]
    assert len(set(names)) == 4 and names[1:3] == ["scene1", "scene2"]
    assert names[0].startswith("scene0-") and names[3].startswith("scene0-")
    assert output_names([rasters / "scene0.tif", other / "scene0.tif"]) == [names[0], names[3]]

    (tmp_path / "list.csv").write_text("raster,model\nin/scene0.tif,a.onnx\nin/scene1.tif,\n")
    items = expand_inputs([str(tmp_path / "list.csv")])
    assert [(i.raster.name, i.model) for i in items] == [("scene0.tif", "a.onnx"),
                                                          ("scene1.tif", None)]


@pytest.mark.parametrize("make, expected", [
    (lambda d: str(d / "missing.tif"), "no such file or folder"),
    (lambda d: str(d / "nothing*.tif"), "found none"),
    (lambda d: (d / "empty").mkdir() or str(d / "empty"), "raster files"),
    (lambda d: (d / "l.txt").write_text("nope.tif\n") and str(d / "l.txt"), "entry 1"),
    (lambda d: (d / "l.csv").write_text("file_name,model\nx,y\n") and str(d / "l.csv"),
     "column named raster"),
])
def test_bad_inputs_are_named(tmp_path, make, expected):
    item = make(tmp_path)
    with pytest.raises(InputError, match=expected) as info:
        expand_inputs([item])
    assert "\n" not in str(info.value)


def test_local_cluster_does_not_oversubscribe_the_cores():
    assert local_sizing(10, None, None, cores=8) == (8, 1, None)
    assert local_sizing(3, None, None, cores=8) == (3, 2, None)
    assert local_sizing(10, None, 4, cores=8) == (2, 4, None)
    assert local_sizing(10, 2, None, cores=8) == (2, 4, None)
    workers, threads, note = local_sizing(10, 4, 4, cores=8)
    assert (workers, threads) == (4, 4) and "oversubscribed" in note
    with pytest.raises(InputError, match="Workers"):
        local_sizing(1, 0, None)


# --- the batch --------------------------------------------------------------------------------


def test_two_workers_map_three_rasters_and_report_the_corrupt_one(tmp_path, rasters, model):
    out = tmp_path / "out"
    seen = []
    result = map_many([str(rasters)], str(model), out, workers=2, threads_per_worker=1,
                      progress=seen.append)
    status = {o.name: o for o in result.outcomes}
    assert sorted(status) == ["corrupt", "scene0", "scene1", "scene2"]
    assert not result.ok and status["corrupt"].status == "failed"
    assert "corrupt.tif" in status["corrupt"].error and "GDAL" in status["corrupt"].error
    assert not (out / "corrupt").exists()
    assert seen == sorted(seen) and seen[-1] == 1.0
    for k in range(3):
        o = status[f"scene{k}"]
        assert o.status == "done" and o.polygons > 0 and o.area_m2 > 0 and o.seconds > 0
        for f in ("probability.tif", "mask.tif", "landslides.gpkg", "result.json"):
            assert (out / f"scene{k}" / f).is_file()
        # the same as a single map run of that raster
        single = map_landslides(rasters / f"scene{k}.tif", model,
                                polygons_path=tmp_path / f"single{k}.gpkg")
        assert o.polygons == single.polygon_count
    features, crs = inventory(out / INVENTORY)
    assert crs == CRS.from_user_input("EPSG:32654")  # the rasters' own
    assert len(features) == result.inventory_count == sum(o.polygons for o in result.outcomes)
    assert {f["source"] for f in features} == {str(rasters / f"scene{k}.tif") for k in range(3)}
    summary = (out / SUMMARY).read_text().splitlines()
    assert len(summary) == 5 and "failed" in summary[1]

    # A re-run skips what is complete; the corrupt raster is tried (and reported) again.
    stamp = (out / "scene0" / "probability.tif").stat().st_mtime_ns
    again = map_many([str(rasters)], str(model), out, workers=1)
    assert [o.status for o in again.outcomes] == ["failed", "skipped", "skipped", "skipped"]
    assert (out / "scene0" / "probability.tif").stat().st_mtime_ns == stamp
    assert again.inventory_count == result.inventory_count


def test_force_and_changed_settings_map_again(tmp_path, model):
    folder = tmp_path / "in"
    folder.mkdir()
    scene(folder / "a.tif", 1)
    out = tmp_path / "out"
    first = map_many([str(folder)], model, out, workers=1, processes=False)
    assert [o.status for o in first.outcomes] == ["done"]
    # Options that are off leave the settings as runs made before they existed wrote them.
    settings = json.loads((out / "a" / "result.json").read_text())["settings"]
    assert not {"tta", "rescale", "slope", "min_slope_deg"} & set(settings["options"])
    assert "terrain_files" not in settings
    assert [o.status for o in map_many([str(folder)], model, out, workers=1,
                                       processes=False).outcomes] == ["skipped"]
    assert [o.status for o in map_many([str(folder)], model, out, workers=1, processes=False,
                                       force=True).outcomes] == ["done"]
    changed = map_many([str(folder)], model, out, workers=1, processes=False, threshold=0.9)
    assert [o.status for o in changed.outcomes] == ["done"]
    assert changed.outcomes[0].area_m2 < first.outcomes[0].area_m2


def test_model_per_raster_and_inventory_crs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    scene(folder / "utm.tif", 1)
    scene(folder / "lonlat.tif", 2, crs="EPSG:4326",
          transform=from_origin(141.0, 36.0, 0.0001, 0.0001))
    high, low = tmp_path / "high.onnx", tmp_path / "low.onnx"
    build_dummy_model(high, weights=[0, 0, 0], bias=3.0, pixel_size_m=10.0)
    build_dummy_model(low, weights=[0, 0, 0], bias=-3.0, pixel_size_m=10.0)
    listing = tmp_path / "rasters.csv"
    listing.write_text("raster,model\nin/utm.tif,high.onnx\nin/lonlat.tif\n".replace(
        "high.onnx", str(high)))
    result = map_many([str(listing)], str(low), tmp_path / "out", workers=1, processes=False)
    by_name = {o.name: o for o in result.outcomes}
    assert by_name["utm"].polygons == 1 and by_name["lonlat"].polygons == 0
    features, crs = inventory(tmp_path / "out" / INVENTORY)
    assert crs == CRS.from_user_input("EPSG:4326")  # the rasters' CRSs differ
    assert len(features) == 1 and features[0]["area_m2"] == pytest.approx(H_ * W_ * 100.0)

    chosen = map_many([str(listing)], str(low), tmp_path / "out", workers=1, processes=False,
                      crs="EPSG:3857")
    assert inventory(tmp_path / "out" / INVENTORY)[1] == CRS.from_user_input("EPSG:3857")
    assert chosen.inventory_count == 1
    with pytest.raises(InputError, match="Inventory CRS 'EPSG:nope'"):
        map_many([str(listing)], str(low), tmp_path / "out", crs="EPSG:nope")


def test_errors_before_any_work(tmp_path, rasters, model):
    with pytest.raises(InputError, match="no model"):
        map_many([str(rasters)], None, tmp_path / "out")
    with pytest.raises(Exception, match="nope.onnx"):
        map_many([str(rasters)], "nope.onnx", tmp_path / "out")
    (tmp_path / "file").write_text("x")
    with pytest.raises(Exception, match="expected a folder, found a file"):
        map_many([str(rasters)], model, tmp_path / "file")
    with pytest.raises(InputError, match="Minimum slope 5 degrees: expected a DEM or a slope "
                                         "raster") as info:
        map_many([str(rasters)], model, tmp_path / "out", min_slope_deg=5, split_rows=10)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_unreachable_scheduler_is_one_error_before_any_work(tmp_path, rasters, model,
                                                           monkeypatch):
    monkeypatch.setattr("landslide_mapper.core.batch.cluster.CONNECT_TIMEOUT_S", 1)
    with pytest.raises(InputError, match="Scheduler tcp://127.0.0.1:1: expected a running Dask "
                                         "scheduler") as info:
        map_many([str(rasters)], model, tmp_path / "out", scheduler="tcp://127.0.0.1:1")
    assert "\n" not in str(info.value)


def test_scheduler_without_workers_is_one_error(tmp_path, rasters, model, monkeypatch):
    from distributed import LocalCluster

    monkeypatch.setattr("landslide_mapper.core.batch.cluster.CONNECT_TIMEOUT_S", 1)
    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as cluster, \
            pytest.raises(InputError, match="expected at least one worker, found none"):
        map_many([str(rasters)], model, tmp_path / "out", scheduler=cluster.scheduler_address)


def test_cancel_keeps_finished_rasters_and_leaves_no_partial_file(tmp_path, rasters, model):
    (rasters / "corrupt.tif").unlink()
    out = tmp_path / "out"
    with pytest.raises(CancelledError, match="Run the same command again"):
        map_many([str(rasters)], model, out, workers=1, processes=False,
                 is_canceled=lambda: True)
    assert not [p for p in out.rglob(".*") if "partial" in p.name]
    assert not (out / INVENTORY).exists() and (out / SUMMARY).is_file()
    assert map_many([str(rasters)], model, out, workers=1, processes=False).ok


# --- one raster in blocks of rows -------------------------------------------------------------


def test_row_blocks_and_the_batches_a_block_needs():
    assert row_blocks(150, 64) == [(0, 64), (64, 128), (128, 150)]
    assert row_blocks(10, 64) == [(0, 10)]
    with pytest.raises(InputError, match="Split rows"):
        row_blocks(10, 0)
    grid = TileGrid.build(150, 173, 64, 16)  # tile rows at 0, 48, 86
    batches = block_batches(grid, 4, 64, 128)
    rows = {t.row for b in batches for t in b if touches(t, grid, 64, 128)}
    assert rows == {48, 86}  # the overlap of the tile row at 48 is the block's margin


@pytest.mark.parametrize("split_rows, kind, fmt, tta", [
    (37, "conv3", "float32", False), (64, "conv3", "uint8", False),
    (13, "linear", "float32", False), (37, "conv3", "float32", True)])
def test_split_rows_equals_single_run_pixel_for_pixel(tmp_path, split_rows, kind, fmt, tta):
    src = scene(tmp_path / "scene.tif", 5)
    model = tmp_path / f"{kind}.onnx"
    build_dummy_model(model, kind=kind, weights=W, bias=B, tile_size=64, overlap=24)
    one, split = tmp_path / "one", tmp_path / "split"
    one.mkdir(), split.mkdir()
    opts = {"batch_size": 3, "probability_format": fmt, "tta": tta}
    single = map_landslides(src, model, probability_path=one / "p.tif", mask_path=one / "m.tif",
                            polygons_path=one / "l.gpkg", **opts)
    with open_cluster(None, 8, workers=2, model_threads=1, processes=False) as info:
        count = map_split(src, model, info.client, info.cancel_event, split_rows,
                          probability_path=split / "p.tif", mask_path=split / "m.tif",
                          polygons_path=split / "l.gpkg", **opts).polygon_count
    for name in ("p.tif", "m.tif"):
        with rasterio.open(one / name) as a, rasterio.open(split / name) as b:
            assert repr(a.profile) == repr(b.profile)  # nodata may be NaN (never == itself)
            np.testing.assert_array_equal(a.read(), b.read())
    assert count == single.polygon_count
    with fiona.open(one / "l.gpkg") as a, fiona.open(split / "l.gpkg") as b:
        assert [dict(f["properties"]) for f in a] == [dict(f["properties"]) for f in b]
    assert sorted(p.name for p in split.iterdir()) == ["l.gpkg", "m.tif", "p.tif"]


def test_batch_with_split_rows_on_worker_processes(tmp_path, rasters, model):
    (rasters / "corrupt.tif").unlink()
    plain = map_many([str(rasters)], model, tmp_path / "plain", workers=1, processes=False)
    split = map_many([str(rasters)], model, tmp_path / "split", workers=2, split_rows=50)
    assert split.ok and [o.polygons for o in split.outcomes] == [o.polygons
                                                                  for o in plain.outcomes]
    for o in plain.outcomes:
        with rasterio.open(tmp_path / "plain" / o.name / "probability.tif") as a, \
                rasterio.open(tmp_path / "split" / o.name / "probability.tif") as b:
            np.testing.assert_array_equal(a.read(), b.read())


# --- the options of a single run: terrain, minimum slope, rescaling; the inventory's layer ----

T_ROWS, T_COLS, BREAK_COL = 48, 80, 40  # flat ground west of column 40, a 30-degree plane east


def terrain_scene(path: Path, squares) -> Path:
    """An RGB raster bright (a landslide for :func:`bright`) on ``(r0, r1, c0, c1)`` squares."""
    rgb = np.full((3, T_ROWS, T_COLS), 50, np.uint8)
    for r0, r1, c0, c1 in squares:
        rgb[0, r0:r1, c0:c1] = 200
    return make_raster(path, rgb, descriptions=["red", "green", "blue"])


def terrain_dem(path: Path) -> Path:
    x = X0 + PX * (np.arange(T_COLS) + 0.5)
    brk = X0 + PX * BREAK_COL
    z = np.where(x < brk, 100.0, 100.0 + (x - brk) * math.tan(math.radians(30.0)))
    return make_raster(path, np.tile(z, (T_ROWS, 1)).astype(np.float32))


FLAT_A, STEEP_A = (5, 15, 5, 15), (5, 15, 50, 60)  # 10 x 10 px of 10 m: 1 ha each
FLAT_B = (25, 35, 20, 30)


@pytest.fixture
def bright(tmp_path: Path) -> Path:
    path = tmp_path / "bright.onnx"
    build_dummy_model(path, weights=[0.1, 0, 0], bias=-10.0, tile_size=32, overlap=8)
    return path


@pytest.fixture
def terrain(tmp_path: Path) -> tuple[Path, Path]:
    """Rasters a (one flat, one steep square) and b (two flat, one steep), and the DEM."""
    folder = tmp_path / "in"
    folder.mkdir()
    terrain_scene(folder / "a.tif", [FLAT_A, STEEP_A])
    terrain_scene(folder / "b.tif", [FLAT_A, FLAT_B, STEEP_A])
    return folder, terrain_dem(tmp_path / "dem.tif")


def test_min_slope_drops_flat_polygons_and_the_summary_says_so(tmp_path, terrain, bright):
    folder, dem = terrain
    out = tmp_path / "out"
    opts = {"workers": 1, "processes": False}
    result = map_many([str(folder)], bright, out, dem=dem, min_slope_deg=10, **opts)
    by_name = {o.name: o for o in result.outcomes}
    assert [(by_name[n].polygons, by_name[n].slope_dropped, by_name[n].slope_dropped_ha)
            for n in ("a", "b")] == [(1, 1, 1.0), (1, 2, 2.0)]
    features, _ = inventory(out / INVENTORY)
    assert len(features) == 2 and all(f["slope_mean"] == pytest.approx(30, abs=1)
                                      for f in features)
    with open(out / SUMMARY, newline="") as f:
        rows = {r["name"]: r for r in csv.DictReader(f)}
    assert [(rows[n]["slope_dropped"], rows[n]["slope_dropped_ha"]) for n in ("a", "b")] == [
        ("1", "1.00"), ("2", "2.00")]
    assert any("3 polygons (3.00 ha) dropped for a mean slope under 10 degrees" in m
               for m in result.messages)

    # The settings fingerprint: the same options skip (and keep the counts), others map again.
    again = map_many([str(folder)], bright, out, dem=dem, min_slope_deg=10, **opts)
    assert [(o.status, o.slope_dropped) for o in again.outcomes] == [("skipped", 1),
                                                                     ("skipped", 2)]
    off = map_many([str(folder)], bright, out, dem=dem, **opts)
    assert [(o.status, o.polygons) for o in off.outcomes] == [("done", 2), ("done", 3)]
    slope = make_raster(tmp_path / "slope.tif", np.where(np.arange(T_COLS) < BREAK_COL, 0.0, 30.0)
                        [None].repeat(T_ROWS, 0).astype(np.float32))
    by_slope = map_many([str(folder)], bright, out, slope=slope, min_slope_deg=10, **opts)
    assert [(o.status, o.slope_dropped) for o in by_slope.outcomes] == [("done", 1), ("done", 2)]
    make_raster(slope, np.full((T_ROWS, T_COLS), 30.0, np.float32))  # the same file, redone
    steep = map_many([str(folder)], bright, out, slope=slope, min_slope_deg=10, **opts)
    assert [(o.status, o.slope_dropped) for o in steep.outcomes] == [("done", 0), ("done", 0)]


def test_split_rows_gives_the_polygons_their_terrain_too(tmp_path, terrain, bright):
    folder, dem = terrain
    opts = {"dem": dem, "min_slope_deg": 10, "workers": 1, "processes": False}
    plain = map_many([str(folder)], bright, tmp_path / "plain", **opts)
    split = map_many([str(folder)], bright, tmp_path / "split", split_rows=20, **opts)
    assert split.ok and [(o.polygons, o.slope_dropped) for o in split.outcomes] == [
        (o.polygons, o.slope_dropped) for o in plain.outcomes]
    assert inventory(tmp_path / "split" / INVENTORY)[0] == inventory(
        tmp_path / "plain" / INVENTORY)[0]

    needs_slope = tmp_path / "needs-slope.onnx"
    build_dummy_model(needs_slope, bands=["red", "green", "slope_deg"], weights=[0.1, 0, 0],
                      bias=-10.0, tile_size=32, overlap=8)
    refused = map_many([str(folder / "a.tif")], needs_slope, tmp_path / "x", split_rows=20, **opts)
    assert refused.outcomes[0].status == "failed"
    assert "a split run does not derive them" in refused.outcomes[0].error


def test_rescale_maps_values_the_model_would_refuse(tmp_path):
    model = tmp_path / "s2.onnx"
    build_dummy_model(model, bands=[{"name": n, "value_range": [0, 10000], "dtype": "uint16"}
                                    for n in ("red", "green", "blue")],
                      weights=[0.001, 0, 0], bias=-2.0, tile_size=32, overlap=8)
    dn = np.random.default_rng(3).uniform(300, 1500, (3, 60, 70))
    dn[:, 20:40, 30:50] = 3500.0  # the only landslide
    dn = np.rint(dn)
    for name, values in (("dn", dn.astype(np.uint16)), ("unit", (dn / 10000).astype(np.float32))):
        (tmp_path / name).mkdir()
        make_raster(tmp_path / name / "scene.tif", values, descriptions=["red", "green", "blue"])
    opts = {"workers": 1, "processes": False}
    reference = map_many([str(tmp_path / "dn")], model, tmp_path / "ref", **opts)
    assert [o.polygons for o in reference.outcomes] == [1]
    for split_rows in (None, 25):
        refused = map_many([str(tmp_path / "unit")], model, tmp_path / f"no{split_rows}",
                           split_rows=split_rows, **opts)
        error = refused.outcomes[0].error
        assert refused.outcomes[0].status == "failed" and "--rescale" in error
        assert "scene.tif" in error and "\n" not in error
    plain = map_many([str(tmp_path / "unit")], model, tmp_path / "plain", rescale=True, **opts)
    split = map_many([str(tmp_path / "unit")], model, tmp_path / "split", rescale=True,
                     split_rows=25, **opts)
    assert [o.polygons for o in plain.outcomes] == [o.polygons for o in split.outcomes] == [1]
    with rasterio.open(tmp_path / "ref" / "scene" / "probability.tif") as ref, \
            rasterio.open(tmp_path / "plain" / "scene" / "probability.tif") as a, \
            rasterio.open(tmp_path / "split" / "scene" / "probability.tif") as b:
        np.testing.assert_allclose(a.read(), ref.read(), atol=1e-5)  # 0..1 -> 0..10000
        np.testing.assert_array_equal(a.read(), b.read())


def test_layer_keeps_the_other_layers_of_the_inventory(tmp_path, rasters, model):
    (rasters / "corrupt.tif").unlink()
    out = tmp_path / "out"
    first = map_many([str(rasters)], model, out, workers=1, processes=False)
    gpkg = out / INVENTORY
    road = {"geometry": {"type": "LineString", "coordinates": [(500000, 3999000),
                                                               (500500, 3999500)]},
            "properties": {"name": "ridge road"}}
    with fiona.open(gpkg, "w", driver="GPKG", layer="roads", crs="EPSG:32654",
                    schema={"geometry": "LineString", "properties": {"name": "str"}}) as dst:
        dst.write(road)
    again = map_many([str(rasters)], model, out, workers=1, processes=False,
                     layer_name="event_2024")
    assert [o.status for o in again.outcomes] == ["skipped"] * 3
    assert sorted(fiona.listlayers(gpkg)) == ["event_2024", "landslides", "roads"]
    with fiona.open(gpkg, layer="roads") as layer:
        assert [f["properties"]["name"] for f in layer] == ["ridge road"]
    for name in ("landslides", "event_2024"):
        with fiona.open(gpkg, layer=name) as layer:
            assert len(layer) == first.inventory_count == again.inventory_count > 0
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("failure", ["disk full while copying", "failed rename"])
def test_a_failed_merge_leaves_the_previous_inventory_and_no_partial_file(
        tmp_path, rasters, model, monkeypatch, failure):
    (rasters / "corrupt.tif").unlink()
    out = tmp_path / "out"
    map_many([str(rasters)], model, out, workers=1, processes=False)
    before = (out / INVENTORY).read_bytes()
    real_copy = inventory_module._copy
    calls = []

    def copy_then_fail(*args):
        calls.append(real_copy(*args))  # the first raster's polygons are written
        raise OSError(errno.ENOSPC, "No space left on device")

    def fail_publish(staged, target, layers, what):
        raise OutputError(f"{what} {target}: the rename failed.")

    if failure == "failed rename":
        monkeypatch.setattr(inventory_module.geopackage, "publish", fail_publish)
    else:
        monkeypatch.setattr(inventory_module, "_copy", copy_then_fail)
    with pytest.raises(OutputError, match="disk is full" if "disk" in failure else "rename"):
        map_many([str(rasters)], model, out, workers=1, processes=False)
    assert (out / INVENTORY).read_bytes() == before
    assert not [p for p in out.rglob(".*")]  # no temporary file anywhere
    assert len(calls) == (1 if "disk" in failure else 0)
    with open(out / SUMMARY, newline="") as f:
        assert [r["status"] for r in csv.DictReader(f)] == ["skipped"] * 3


# --- real data --------------------------------------------------------------------------------


@pytest.mark.realdata
def test_real_sentinel2_tiles_on_a_local_cluster(tmp_path):
    images = shared_data("sentinel2_chittagong", "images")
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("000000000000.tif", "000000000001.tif", "000000000002.tif"):
        shutil.copy(images / name, folder / name)
    (folder / "truncated.tif").write_bytes((images / "000000000003.tif").read_bytes()[:4000])
    out = tmp_path / "out"
    result = map_many([str(folder)], "sentinel2-rgb", out, workers=2, threads_per_worker=1,
                      bands=[1, 2, 3])
    status = {o.name: o.status for o in result.outcomes}
    assert status == {"000000000000": "done", "000000000001": "done", "000000000002": "done",
                      "truncated": "failed"}
    bad = next(o for o in result.outcomes if o.name == "truncated")
    assert "truncated.tif" in bad.error
    assert not (out / "truncated").exists()  # nothing half-written left of the failed raster
    features, crs = inventory(out / INVENTORY)
    assert crs == CRS.from_user_input("EPSG:4326")
    assert len(features) == sum(o.polygons for o in result.outcomes) > 0
    assert {Path(f["source"]).name for f in features} <= {"000000000000.tif", "000000000001.tif",
                                                          "000000000002.tif"}
