"""export_training_chips: masks from polygons and a checked area, the spatial split, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from pyproj import Transformer
from shapely.geometry import box

from landslide_mapper.core.errors import CancelledError, InputError, OutputError
from landslide_mapper.core.loop.chips import choose_val_blocks, export_training_chips, tile_starts
from tests.support import UTM, X0, Y0, make_raster, pixel_box, write_polygons


@pytest.fixture
def raster(tmp_path: Path) -> Path:
    data = np.random.default_rng(0).integers(1, 1000, (3, 96, 128)).astype("uint16")
    return make_raster(tmp_path / "scene.tif", data, descriptions=["red", "green", "blue"])


def read_all(folder: Path) -> dict[str, tuple[np.ndarray, Path]]:
    out = {}
    for p in sorted(folder.glob("*/masks/*.tif")):
        with rasterio.open(p) as src:
            out[f"{p.parts[-3]}/{p.name}"] = (src.read(1), p)
    return out


def test_tile_starts_cover_the_axis():
    assert tile_starts(128, 32, 32) == [0, 32, 64, 96]
    assert tile_starts(130, 32, 32) == [0, 32, 64, 96, 128]  # last one padded
    assert tile_starts(20, 32, 32) == [0]
    assert tile_starts(100, 32, 24) == [0, 24, 48, 72]  # 72 + 32 >= 100
    for n, t, s in ((1000, 128, 96), (257, 64, 64), (64, 64, 32)):
        starts = tile_starts(n, t, s)
        assert starts[-1] + t >= n and (len(starts) == 1 or starts[-2] + t < n)


def test_val_blocks_seeded_share():
    a = choose_val_blocks(4, 5, 0.2, seed=3)
    assert a == choose_val_blocks(4, 5, 0.2, seed=3) and len(a) == 4
    assert choose_val_blocks(1, 1, 0.5, 0) == set()
    assert choose_val_blocks(3, 3, 0.0, 0) == set()


def test_mask_pixels_georeference_and_manifest(raster: Path, tmp_path: Path):
    # two landslides: 10 x 10 and 4 x 6 pixels, all in training tiles (val_fraction 0)
    polys = write_polygons(tmp_path / "ls.gpkg",
                           [pixel_box(10, 20, 30, 40), pixel_box(50, 54, 70, 76)])
    res = export_training_chips(raster, polys, tmp_path / "chips", tile_size=32,
                                keep_empty_fraction=1.0, val_fraction=0.0)
    assert res.train_chips == 3 * 4 and res.val_chips == 0
    masks = read_all(tmp_path / "chips")
    total = sum(int((m == 1).sum()) for m, _ in masks.values())
    assert total == 100 + 24
    assert res.pixels["train"] == {"landslide": 124, "background": 96 * 128 - 124, "unknown": 0}
    # the chip at row 0, col 32 holds rows 10..19, cols 30..39 -> its local cols 0..7
    m, p = masks["train/r000000_c000032.tif"]
    assert m[10:20, 0:8].all() and m.sum() == 80
    with rasterio.open(p) as src:
        assert src.dtypes[0] == "uint8" and src.nodata == 255
        assert src.transform.c == X0 + 320 and src.transform.f == Y0
        assert src.crs.to_string() == UTM
    with rasterio.open(tmp_path / "chips/train/images/r000000_c000032.tif") as src, \
            rasterio.open(raster) as full:
        assert src.descriptions == ("red", "green", "blue")
        np.testing.assert_array_equal(src.read(), full.read(window=((0, 32), (32, 64))))
    manifest = json.loads((tmp_path / "chips/manifest.json").read_text())
    assert manifest["counts"]["train"] == 12 and manifest["tile_size"] == 32
    src = manifest["training_config"]["data"]["sources"]
    assert src[0]["format"] == "chips" and src[0]["root"] == "train"  # relative to the manifest
    assert [b["name"] for b in manifest["training_config"]["contract"]["bands"]] == \
        ["red", "green", "blue"]


def test_checked_area_outside_is_unknown(raster: Path, tmp_path: Path):
    polys = write_polygons(tmp_path / "ls.gpkg", [pixel_box(10, 20, 10, 20)])
    # checked: rows 0..47, cols 0..63 (the top-left quarter)
    area = pixel_box(0, 48, 0, 64).bounds
    res = export_training_chips(raster, polys, tmp_path / "c", checked_area=area, tile_size=32,
                                keep_empty_fraction=1.0, val_fraction=0.0)
    # tiles wholly outside the checked area have no known pixel and are skipped
    assert res.skipped_unknown == 12 - 4
    known = res.pixels["train"]["landslide"] + res.pixels["train"]["background"]
    assert known == 48 * 64 and res.pixels["train"]["landslide"] == 100


def test_landslide_outside_checked_area_still_counts(raster: Path, tmp_path: Path):
    polys = write_polygons(tmp_path / "ls.gpkg", [pixel_box(60, 70, 100, 110)])
    area = pixel_box(0, 32, 0, 32)
    area_file = write_polygons(tmp_path / "area.gpkg", [area])
    res = export_training_chips(raster, polys, tmp_path / "c", checked_area=area_file,
                                tile_size=32, keep_empty_fraction=1.0, val_fraction=0.0)
    assert res.pixels["train"]["landslide"] == 100
    assert res.pixels["train"]["background"] == 32 * 32


def test_spatial_split_blocks_and_no_overlap(tmp_path: Path):
    data = np.ones((1, 256, 256), "uint16")
    r = make_raster(tmp_path / "big.tif", data)
    squares = [pixel_box(r, r + 8, c, c + 8) for r in range(4, 256, 40) for c in range(4, 256, 40)]
    polys = write_polygons(tmp_path / "ls.gpkg", squares)
    res = export_training_chips(r, polys, tmp_path / "c", tile_size=32, overlap=8,
                                keep_empty_fraction=1.0, val_fraction=0.25, block_size_tiles=3,
                                seed=1)
    manifest = json.loads((tmp_path / "c/manifest.json").read_text())
    stride, blocks = 24, {tuple(b) for b in manifest["val_blocks"]}
    assert res.val_chips > 0 and res.train_chips > 0 and res.dropped_next_to_val > 0

    def extent(name: str) -> tuple[int, int]:
        stem = Path(name).stem
        return int(stem[1:7]), int(stem[9:15])

    val = [extent(n) for n in (tmp_path / "c/val/masks").iterdir()]
    train = [extent(n) for n in (tmp_path / "c/train/masks").iterdir()]
    for r0, c0 in val:  # every val chip belongs to a chosen block
        assert (r0 // stride // 3, c0 // stride // 3) in blocks
    for r0, c0 in train:  # no training chip shares a pixel with a validation chip
        for v0, w0 in val:
            assert not (abs(r0 - v0) < 32 and abs(c0 - w0) < 32)
    again = export_training_chips(r, polys, tmp_path / "c2", tile_size=32, overlap=8,
                                  keep_empty_fraction=1.0, val_fraction=0.25, block_size_tiles=3,
                                seed=1)
    assert (again.train_chips, again.val_chips) == (res.train_chips, res.val_chips)


def test_keep_empty_fraction_zero_keeps_only_landslide_chips(raster: Path, tmp_path: Path):
    polys = write_polygons(tmp_path / "ls.gpkg", [pixel_box(10, 20, 10, 20)])
    res = export_training_chips(raster, polys, tmp_path / "c", tile_size=32,
                                keep_empty_fraction=0.0, val_fraction=0.0)
    assert res.train_chips == 1 and res.skipped_empty == 11


def test_polygons_in_another_crs_are_reprojected(raster: Path, tmp_path: Path):
    square = pixel_box(20, 40, 20, 40)  # 20 x 20 pixels
    to_ll = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    ll = shapely.transform(shapely.segmentize(square, 10), lambda xy: np.column_stack(
        to_ll.transform(xy[:, 0], xy[:, 1])))
    polys = write_polygons(tmp_path / "ll.gpkg", [ll], crs="EPSG:4326")
    res = export_training_chips(raster, polys, tmp_path / "c", tile_size=32,
                                keep_empty_fraction=1.0, val_fraction=0.0)
    assert res.reprojected_from and "4326" in res.reprojected_from
    assert any("reprojected" in m for m in res.messages)
    assert abs(res.pixels["train"]["landslide"] - 400) <= 4


def test_polygons_outside_the_raster(raster: Path, tmp_path: Path):
    far = box(0, 0, 100, 100)
    polys = write_polygons(tmp_path / "ls.gpkg", [pixel_box(10, 20, 10, 20), far])
    res = export_training_chips(raster, polys, tmp_path / "c", tile_size=32, val_fraction=0.0)
    assert res.polygons_outside == 1 and any("outside the raster" in m for m in res.messages)
    only_far = write_polygons(tmp_path / "far.gpkg", [far])
    with pytest.raises(InputError, match="none of them inside the raster"):
        export_training_chips(raster, only_far, tmp_path / "c2", tile_size=32)
    assert not (tmp_path / "c2").exists()


def test_empty_layer(raster: Path, tmp_path: Path):
    empty = write_polygons(tmp_path / "empty.gpkg", [])
    with pytest.raises(InputError, match="no polygons"):
        export_training_chips(raster, empty, tmp_path / "c", tile_size=32)
    res = export_training_chips(raster, empty, tmp_path / "c", tile_size=32,
                                checked_area=pixel_box(0, 96, 0, 128).bounds,
                                keep_empty_fraction=1.0, val_fraction=0.0)
    assert res.pixels["train"] == {"landslide": 0, "background": 96 * 128, "unknown": 0}


def test_invalid_geometry_is_repaired(raster: Path, tmp_path: Path):
    # a bow-tie over rows 10..30, cols 10..30: two triangles of 100 pixels^2 each
    a, b = (X0 + 100, Y0 - 100), (X0 + 300, Y0 - 300)
    bowtie = shapely.Polygon([a, (b[0], a[1]), (a[0], b[1]), b, a])
    assert not bowtie.is_valid
    polys = write_polygons(tmp_path / "bad.gpkg", [bowtie])
    res = export_training_chips(raster, polys, tmp_path / "c", tile_size=32,
                                keep_empty_fraction=1.0, val_fraction=0.0)
    assert res.polygons_repaired == 1 and any("repaired" in m for m in res.messages)
    assert 180 <= res.pixels["train"]["landslide"] <= 220


def test_existing_folder_and_cancel_leave_nothing(raster: Path, tmp_path: Path):
    polys = write_polygons(tmp_path / "ls.gpkg", [pixel_box(10, 20, 10, 20)])
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(OutputError, match="not empty"):
        export_training_chips(raster, polys, busy, tile_size=32)
    assert (busy / "keep.txt").read_text() == "mine"
    calls = []

    def cancel_after_three() -> bool:
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(CancelledError):
        export_training_chips(raster, polys, tmp_path / "x", tile_size=32,
                              is_canceled=cancel_after_three)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy", "ls.gpkg", "scene.tif"]


def test_manifest_sources_load_in_training(raster: Path, tmp_path: Path):
    pytest.importorskip("torch")
    from training.config import build_sources, load_config

    polys = write_polygons(tmp_path / "ls.gpkg", [pixel_box(r, r + 8, 8, 16) for r in (8, 40, 72)])
    res = export_training_chips(raster, polys, tmp_path / "c", tile_size=32,
                                keep_empty_fraction=1.0, val_fraction=0.34, block_size_tiles=1)
    sources = build_sources(load_config(res.training_config))
    assert len(sources.train) == res.train_chips
    assert sum(len(v) for v in sources.val.values()) == res.val_chips


def test_a_moved_chip_folder_trains_on_itself(raster: Path, tmp_path: Path):
    """Copy the chips, delete the original: the training config reads the copy's chips."""
    pytest.importorskip("torch")
    import shutil

    from landslide_mapper.core.loop.training_run import build_config
    from training.config import build_sources, load_config

    polys = write_polygons(tmp_path / "ls.gpkg", [pixel_box(r, r + 8, 8, 16) for r in (8, 40, 72)])
    res = export_training_chips(raster, polys, tmp_path / "c", tile_size=32,
                                keep_empty_fraction=1.0, val_fraction=0.34, block_size_tiles=1)
    copy = tmp_path / "moved" / "c"
    shutil.copytree(res.out_dir, copy)
    shutil.rmtree(res.out_dir)
    cfg, _ = build_config(copy)
    sources = build_sources(load_config(cfg))
    files = [p for pairs in [sources.train, *sources.val.values()] for pair in pairs
             for p in (pair.image, pair.mask)]
    assert len(sources.train) == res.train_chips and files
    assert all(Path(f).resolve().is_relative_to(copy.resolve()) for f in files)
