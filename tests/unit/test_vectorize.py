"""Mask -> polygons: areas on known shapes, strips, options, formats, bad inputs, cancel."""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path

import fiona
import numpy as np
import pytest
import rasterio
import shapely
from pyproj import CRS, Transformer
from rasterio.transform import from_origin
from shapely.geometry import shape

from landslide_mapper.core.errors import CancelledError, InputError, OutputError
from landslide_mapper.core.polygons.vectorize import VectorizeResult, vectorize_mask
from tests.support import make_raster, shared_data

# A GeoPackage keeps ``id`` as its feature id column (fid), not as a second field; other formats
# carry it as the first field.
FIELDS = ["area_m2", "area_ha", "perimeter_m", "prob_mean", "prob_max", "centroid_lon",
          "centroid_lat", "model", "pixels"]
FIELDS_WITH_ID = ["id", *FIELDS]
# Attributes are rounded to what they mean: m2 to 1, ha to 0.01, m to 0.1, probabilities to
# 0.001, lon/lat to 1e-6 degrees; comparisons allow half a unit of that rounding.
PROB_ABS = 5e-4 + 1e-12
LONLAT_ABS = 5e-7 + 1e-12


def read(path: Path) -> list[tuple[object, dict]]:
    with fiona.open(path) as layer:
        return [(shape(f.geometry), dict(f.properties)) for f in layer]


def feature_ids(path: Path) -> list[int]:
    with fiona.open(path) as layer:
        return [int(f.id) for f in layer]


def components(mask: np.ndarray) -> list[list[tuple[int, int]]]:
    """Independent 4-connected labelling (breadth-first flood fill) for small test masks."""
    seen = np.zeros(mask.shape, bool)
    out = []
    for r, c in zip(*np.nonzero(mask)):
        if seen[r, c]:
            continue
        comp, queue = [], deque([(r, c)])
        seen[r, c] = True
        while queue:
            y, x = queue.popleft()
            comp.append((y, x))
            for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                v, u = y + dy, x + dx
                inside = 0 <= v < mask.shape[0] and 0 <= u < mask.shape[1]
                if inside and mask[v, u] and not seen[v, u]:
                    seen[v, u] = True
                    queue.append((v, u))
        out.append(comp)
    return out


def folder_listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------------------- known shapes


def test_3x3_square_at_10m_is_900_m2_and_120_m(tmp_path):
    mask = np.zeros((8, 8), np.uint8)
    mask[2:5, 3:6] = 1
    src = make_raster(tmp_path / "mask.tif", mask, nodata=255)
    result = vectorize_mask(src, tmp_path / "out.gpkg", model_name="unet-l4s")
    assert isinstance(result, VectorizeResult)
    assert result.count == 1 and result.total_area_m2 == pytest.approx(900.0)
    [(geom, a)] = read(result.polygons_path)
    assert list(a) == FIELDS
    assert feature_ids(result.polygons_path) == [1]
    assert a["pixels"] == 9 and a["model"] == "unet-l4s"
    assert a["area_m2"] == 900.0
    assert a["area_ha"] == 0.09
    assert a["perimeter_m"] == 120.0
    assert a["prob_mean"] is None and a["prob_max"] is None
    assert geom.geom_type == "MultiPolygon" and geom.is_valid
    # Pixel (2..5, 3..6) of a 10 m grid whose origin is (500000, 4000000).
    assert geom.equals(shapely.box(500030, 3999950, 500060, 3999980))
    # Centroid, transformed independently.
    t = Transformer.from_crs("EPSG:32654", "EPSG:4326", always_xy=True)
    lon, lat = t.transform([500045.0], [3999965.0])
    assert a["centroid_lon"] == pytest.approx(lon[0], abs=LONLAT_ABS)
    assert a["centroid_lat"] == pytest.approx(lat[0], abs=LONLAT_ABS)
    assert a["centroid_lon"] == round(a["centroid_lon"], 6)
    with fiona.open(result.polygons_path) as layer:
        assert CRS.from_user_input(layer.crs_wkt).to_epsg() == 32654
        assert layer.schema["geometry"] == "MultiPolygon"


def test_corner_contact_does_not_merge_edge_contact_does(tmp_path):
    mask = np.zeros((6, 6), np.uint8)
    mask[1, 1] = mask[2, 2] = 1          # diagonal: two polygons
    mask[4, 1] = mask[4, 2] = 1          # edge: one polygon
    src = make_raster(tmp_path / "mask.tif", mask)
    for rows in (None, 1, 2):
        out = vectorize_mask(src, tmp_path / f"o{rows}.gpkg", strip_rows=rows).polygons_path
        features = read(out)
        assert sorted(a["pixels"] for _, a in features) == [1, 1, 2]


def test_ring_hole_and_perimeter(tmp_path):
    mask = np.zeros((7, 7), np.uint8)
    mask[1:6, 1:6] = 1
    mask[2:5, 2:5] = 0                   # 3x3 hole: ring of 16 pixels
    src = make_raster(tmp_path / "mask.tif", mask)
    [(geom, a)] = read(vectorize_mask(src, tmp_path / "o.gpkg", strip_rows=2).polygons_path)
    assert a["area_m2"] == pytest.approx(1600.0)
    assert a["perimeter_m"] == pytest.approx(200.0 + 120.0)   # outer 5x5 + hole 3x3 rims
    assert a["pixels"] == 16
    assert len(geom.geoms[0].interiors) == 1


# ---------------------------------------------------------------------------- mask conventions


@pytest.mark.parametrize("on,nodata", [(1, None), (255, None), (1, 255), (7, 0)])
def test_plain_masks_written_by_others(tmp_path, on, nodata):
    mask = np.zeros((6, 6), np.uint8) if nodata != 0 else np.full((6, 6), 9, np.uint8)
    if nodata == 0:
        mask[0, :] = 0                    # nodata row, never a landslide
    else:
        mask[0, :] = 0
    mask[2:4, 2:4] = on
    if nodata == 255:
        mask[5, :] = 255                  # nodata pixels are never landslide
    src = make_raster(tmp_path / "mask.tif", mask, nodata=nodata)
    features = read(vectorize_mask(src, tmp_path / "o.gpkg").polygons_path)
    if nodata == 0:                       # every non-zero, non-nodata pixel is landslide
        assert [a["pixels"] for _, a in features] == [30]
    else:
        assert [a["pixels"] for _, a in features] == [4]


def test_probability_attributes_from_a_probability_raster(tmp_path):
    rng = np.random.default_rng(3)
    mask = np.zeros((9, 9), np.uint8)
    mask[1:4, 1:4] = 1
    mask[6:8, 5:9] = 1
    prob = rng.random((9, 9)).astype(np.float32)
    prob[2, 2] = np.nan                   # nodata inside a polygon: left out of the mean
    src = make_raster(tmp_path / "mask.tif", mask, nodata=255)
    psrc = make_raster(tmp_path / "prob.tif", prob, nodata=float("nan"))
    features = read(vectorize_mask(src, tmp_path / "o.gpkg", probability_path=psrc,
                                   strip_rows=2).polygons_path)
    by_pixels = {a["pixels"]: a for _, a in features}
    first = prob[1:4, 1:4].astype(np.float64)
    second = prob[6:8, 5:9].astype(np.float64)
    assert by_pixels[9]["prob_mean"] == pytest.approx(np.nanmean(first), abs=PROB_ABS)
    assert by_pixels[9]["prob_max"] == pytest.approx(np.nanmax(first), abs=PROB_ABS)
    assert by_pixels[8]["prob_mean"] == pytest.approx(second.mean(), abs=PROB_ABS)
    assert by_pixels[8]["prob_max"] == pytest.approx(second.max(), abs=PROB_ABS)
    assert by_pixels[9]["prob_mean"] == round(by_pixels[9]["prob_mean"], 3)


def test_float_probability_input_is_thresholded_and_used_for_attributes(tmp_path):
    prob = np.full((6, 6), 0.1, np.float32)
    prob[1:3, 1:4] = [[0.5, 0.7, 0.9], [0.6, 0.49, 0.8]]
    prob[5, 5] = np.nan
    src = make_raster(tmp_path / "prob.tif", prob, nodata=float("nan"))
    [(_, a)] = read(vectorize_mask(src, tmp_path / "o.gpkg", threshold=0.5).polygons_path)
    assert a["pixels"] == 5                       # 0.49 is below, 0.5 is at the threshold
    assert a["prob_mean"] == 0.7                  # mean of 0.5, 0.7, 0.9, 0.6, 0.8 (float32)
    assert a["prob_max"] == 0.9
    [(_, b)] = read(vectorize_mask(src, tmp_path / "o2.gpkg", threshold=0.75).polygons_path)
    assert b["pixels"] == 2 and b["prob_max"] == 0.9   # 0.9 over 0.8
    assert b["prob_mean"] == 0.85


def test_uint8_scaled_probability_as_input_and_as_attribute_source(tmp_path):
    raw = np.zeros((5, 5), np.uint8)
    raw[1, 1:4] = [127, 200, 254]                 # 0.5, 0.787, 1.0
    raw[3, 3] = 255                               # nodata
    src = make_raster(tmp_path / "p8.tif", raw, nodata=255)
    with rasterio.open(src, "r+") as ds:
        ds.scales = (1 / 254,)
    [(_, a)] = read(vectorize_mask(src, tmp_path / "o.gpkg").polygons_path)
    assert a["pixels"] == 3
    assert a["prob_mean"] == round((127 + 200 + 254) / 3 / 254, 3)
    assert a["prob_max"] == 1.0
    # The same raster as the probability of a separate mask.
    mask = (raw > 0).astype(np.uint8)
    msrc = make_raster(tmp_path / "m.tif", mask)
    features = read(vectorize_mask(msrc, tmp_path / "o2.gpkg", probability_path=src).polygons_path)
    by_pixels = {x["pixels"]: x for _, x in features}
    assert by_pixels[3]["prob_mean"] == pytest.approx(a["prob_mean"], rel=1e-9)
    assert by_pixels[1]["prob_mean"] is None      # its only pixel is probability nodata


# ---------------------------------------------------------------------------- strips


def blobs(seed: int, shape=(48, 40), p=0.45) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = (rng.random(shape) < p).astype(np.uint8)
    mask[5:40, 8] = 1                      # a blob spanning many strips
    mask[5, 8:30] = mask[39, 8:30] = 1     # ... and closing a big ring across them
    mask[5:40, 29] = 1
    return mask


@pytest.mark.parametrize("seed", [0, 1])
def test_strips_give_the_single_strip_result(tmp_path, seed):
    mask = blobs(seed)
    prob = np.random.default_rng(seed + 10).random(mask.shape).astype(np.float32)
    src = make_raster(tmp_path / "mask.tif", mask, nodata=255)
    psrc = make_raster(tmp_path / "prob.tif", prob)
    kw = dict(probability_path=psrc, fill_holes_m2=350.0, model_name="m")
    whole = read(vectorize_mask(src, tmp_path / "whole.gpkg", strip_rows=mask.shape[0],
                                **kw).polygons_path)
    for rows in (1, 2, 5, 16):
        strips = read(vectorize_mask(src, tmp_path / f"s{rows}.gpkg", strip_rows=rows,
                                     **kw).polygons_path)
        assert len(strips) == len(whole)
        for (g1, a1), (g2, a2) in zip(whole, strips):
            assert g1.equals(g2), rows
            for k in FIELDS:
                if isinstance(a1[k], float):
                    assert a1[k] == pytest.approx(a2[k], rel=1e-12, abs=1e-12), (rows, k)
                else:
                    assert a1[k] == a2[k], (rows, k)


def test_polygons_are_the_4_connected_components(tmp_path):
    mask = blobs(2, p=0.5)
    src = make_raster(tmp_path / "mask.tif", mask)
    features = read(vectorize_mask(src, tmp_path / "o.gpkg", strip_rows=3).polygons_path)
    expected = components(mask.astype(bool))
    assert len(features) == len(expected)
    assert sorted(a["pixels"] for _, a in features) == sorted(len(c) for c in expected)
    assert sum(a["area_m2"] for _, a in features) == pytest.approx(100.0 * mask.sum())
    assert all(g.is_valid for g, _ in features)
    # Every component's pixel centres lie in exactly one polygon, the same for all its pixels.
    tree = shapely.STRtree([g for g, _ in features])
    for comp in expected:
        centres = [shapely.Point(500000 + 10 * c + 5, 4000000 - 10 * r - 5) for r, c in comp]
        hits = {tuple(tree.query(p, predicate="within")) for p in centres}
        assert len(hits) == 1 and len(next(iter(hits))) == 1


def test_reads_only_strips_of_the_mask(tmp_path, monkeypatch):
    mask = blobs(4)
    src = make_raster(tmp_path / "mask.tif", mask)
    heights = []
    original = rasterio.io.DatasetReader.read

    def spy(self, *args, **kwargs):
        window = kwargs.get("window")
        heights.append(None if window is None else window.height)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", spy)
    vectorize_mask(src, tmp_path / "o.gpkg", strip_rows=4)
    assert heights and all(h is not None and h <= 4 for h in heights)
    assert len(heights) == -(-mask.shape[0] // 4)


# ---------------------------------------------------------------------------- options


def test_min_area_drops_small_polygons(tmp_path):
    mask = np.zeros((10, 10), np.uint8)
    mask[1:4, 1:4] = 1          # 900 m2
    mask[6:8, 6:8] = 1          # 400 m2
    mask[8, 1] = 1              # 100 m2
    src = make_raster(tmp_path / "mask.tif", mask)
    result = vectorize_mask(src, tmp_path / "o.gpkg", min_area_m2=400.0)
    areas = sorted(a["area_m2"] for _, a in read(result.polygons_path))
    assert areas == pytest.approx([400.0, 900.0])
    assert result.count == 2 and result.total_area_m2 == pytest.approx(1300.0)
    assert feature_ids(result.polygons_path) == [1, 2]


@pytest.mark.parametrize("pixel_m", [10.0, 0.5])
def test_no_minimum_area_given_drops_specks_of_fewer_than_the_default_pixels(tmp_path, pixel_m):
    from landslide_mapper.core.polygons import DEFAULT_MIN_PIXELS

    assert 2 <= DEFAULT_MIN_PIXELS <= 9, "a speck is a few pixels"
    mask = np.zeros((12, 12), np.uint8)
    mask[1, 1] = 1                                          # 1 pixel
    mask[4, 1:1 + DEFAULT_MIN_PIXELS - 1] = 1               # one pixel short of the default
    mask[7, 1:1 + DEFAULT_MIN_PIXELS] = 1                   # exactly the default: kept
    mask[9:12, 6:9] = 1                                     # 9 pixels
    src = make_raster(tmp_path / "mask.tif", mask, transform=from_origin(500000, 4000000,
                                                                         pixel_m, pixel_m))
    specks_off = read(vectorize_mask(src, tmp_path / "d.gpkg", min_area_m2=None).polygons_path)
    assert sorted(a["pixels"] for _, a in specks_off) == [DEFAULT_MIN_PIXELS, 9]
    kept_all = read(vectorize_mask(src, tmp_path / "all.gpkg", min_area_m2=0).polygons_path)
    assert sorted(a["pixels"] for _, a in kept_all) == [1, DEFAULT_MIN_PIXELS - 1,
                                                          DEFAULT_MIN_PIXELS, 9]


def test_attributes_are_rounded_to_what_they_mean(tmp_path):
    # 0.37 m pixels: areas and perimeters with many decimals before rounding.
    mask = np.zeros((9, 9), np.uint8)
    mask[1:8, 2:7] = 1
    prob = np.full((9, 9), 0.123456, np.float32)
    prob[1:8, 2:7] = 0.876543
    transform = from_origin(500000.0, 4000000.0, 0.37, 0.37)
    src = make_raster(tmp_path / "mask.tif", mask, transform=transform)
    psrc = make_raster(tmp_path / "prob.tif", prob, transform=transform)
    [(_, a)] = read(vectorize_mask(src, tmp_path / "o.gpkg", probability_path=psrc).polygons_path)
    area = 35 * 0.37 * 0.37                                 # 4.7915 m2
    assert a["area_m2"] == round(area) == 5.0
    assert a["area_ha"] == round(area / 10_000, 2) == 0.0
    assert a["perimeter_m"] == round(2 * (7 + 5) * 0.37, 1) == 8.9
    assert a["prob_mean"] == a["prob_max"] == 0.877
    for key, places in (("centroid_lon", 6), ("centroid_lat", 6)):
        assert a[key] == round(a[key], places) and a[key] != round(a[key], places - 1)


def test_a_geopackage_has_one_id_column(tmp_path):
    """``id`` is the GeoPackage's feature id column (QGIS shows one id, not fid and id)."""
    import sqlite3

    mask = np.zeros((6, 6), np.uint8)
    mask[1:3, 1:3] = mask[4:6, 4:6] = 1
    out = vectorize_mask(make_raster(tmp_path / "m.tif", mask), tmp_path / "o.gpkg").polygons_path
    with sqlite3.connect(out) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(landslides)")]
        ids = [row[0] for row in db.execute("SELECT id FROM landslides ORDER BY id")]
    assert columns[0] == "id" and "fid" not in columns and columns.count("id") == 1
    assert ids == [1, 2]


def test_fill_holes_below_the_area_only(tmp_path):
    mask = np.zeros((9, 12), np.uint8)
    mask[1:4, 1:4] = 1
    mask[2, 2] = 0              # 100 m2 hole
    mask[1:7, 5:11] = 1
    mask[2:5, 6:9] = 0          # 900 m2 hole
    src = make_raster(tmp_path / "mask.tif", mask)
    features = read(vectorize_mask(src, tmp_path / "o.gpkg", fill_holes_m2=500.0).polygons_path)
    by_pixels = {a["pixels"]: (g, a) for g, a in features}
    small, big = by_pixels[8], by_pixels[27]
    assert small[1]["area_m2"] == pytest.approx(900.0) and not small[0].geoms[0].interiors
    assert big[1]["area_m2"] == pytest.approx(3600.0 - 900.0)
    assert len(big[0].geoms[0].interiors) == 1
    assert small[1]["perimeter_m"] == pytest.approx(120.0)


@pytest.mark.parametrize("rows", [None, 1, 3])
def test_an_island_in_a_filled_hole_joins_its_surround(tmp_path, rows):
    mask = np.zeros((9, 9), np.uint8)
    mask[1:8, 1:8] = 1
    mask[2:7, 2:7] = 0          # 5x5 hole (2500 m2) ...
    mask[4, 4] = 1              # ... with a one-pixel island in it
    src = make_raster(tmp_path / "mask.tif", mask)
    kept = read(vectorize_mask(src, tmp_path / f"k{rows}.gpkg", strip_rows=rows).polygons_path)
    assert sorted(a["area_m2"] for _, a in kept) == pytest.approx([100.0, 2400.0])
    filled = read(vectorize_mask(src, tmp_path / f"f{rows}.gpkg", strip_rows=rows,
                                 fill_holes_m2=3000.0).polygons_path)
    assert len(filled) == 1
    geom, a = filled[0]
    assert a["area_m2"] == pytest.approx(4900.0) and a["pixels"] == 25
    assert not geom.geoms[0].interiors


# A hole whose rim closes only through a diagonal pinch above and a row below its island: when the
# island is finished, no single piece of the rim read so far surrounds it.
PINCHED = [
    ".#..##.######", "##...#...#.#.", "#########.#.#", "###.##.#.####", "#.###.##.##.#",
    "#.####..#..##", ".#.###..##..#", "#.##.##.##.##", "#.##..##..##.", ".##..###.##.#",
    "####.###..#.#", ".#.##########", "####..###..##",
]


@pytest.mark.parametrize("rows", [1, 2, 3])
def test_an_island_whose_rim_closes_late_still_joins_it(tmp_path, rows):
    mask = np.zeros((33, 13), np.uint8)
    mask[:13] = [[c == "#" for c in line] for line in PINCHED]
    src = make_raster(tmp_path / "mask.tif", mask)
    # The 22-pixel hole (2200 m2) holds the 5-pixel island: filled, and the island joins it.
    kw = dict(fill_holes_m2=2300.0)
    whole = read(vectorize_mask(src, tmp_path / "w.gpkg", **kw).polygons_path)
    strips = read(vectorize_mask(src, tmp_path / f"s{rows}.gpkg", strip_rows=rows,
                                 **kw).polygons_path)
    assert 5 not in [a["pixels"] for _, a in whole]
    assert [a["pixels"] for _, a in strips] == [a["pixels"] for _, a in whole]
    assert all(g1.equals(g2) for (g1, _), (g2, _) in zip(whole, strips))
    assert sum(a["pixels"] for _, a in whole) == mask.sum()


def test_simplify_reduces_a_staircase_and_keeps_it_valid(tmp_path):
    mask = np.zeros((40, 40), np.uint8)
    for r in range(40):
        mask[r, : r + 1] = 1    # a staircase triangle: 80 vertices on its diagonal
    src = make_raster(tmp_path / "mask.tif", mask)
    [(raw, a)] = read(vectorize_mask(src, tmp_path / "raw.gpkg").polygons_path)
    [(simple, b)] = read(vectorize_mask(src, tmp_path / "s.gpkg", simplify_m=15.0).polygons_path)
    assert shapely.get_num_coordinates(simple) < shapely.get_num_coordinates(raw) / 5
    assert simple.is_valid and a["pixels"] == b["pixels"] == 820
    # Simplified within its tolerance: the shapes differ by no more than 15 m anywhere.
    assert raw.hausdorff_distance(simple) <= 15.0 + 1e-6
    assert b["area_m2"] == pytest.approx(a["area_m2"], rel=0.05)


def test_simplify_tolerance_in_metres_in_a_geographic_crs(tmp_path):
    mask = np.zeros((40, 40), np.uint8)
    for r in range(40):
        mask[r, : r + 1] = 1
    deg = 1e-4                  # about 11 m north-south, 9 m east-west at 36 N
    src = make_raster(tmp_path / "mask.tif", mask, crs="EPSG:4326",
                      transform=from_origin(141.0, 36.0, deg, deg))
    [(raw, _)] = read(vectorize_mask(src, tmp_path / "raw.gpkg").polygons_path)
    [(simple, b)] = read(vectorize_mask(src, tmp_path / "s.gpkg", simplify_m=30.0).polygons_path)
    assert shapely.get_num_coordinates(simple) < shapely.get_num_coordinates(raw) / 5
    # 30 m is about 2.7e-4 degree of latitude: the result stays within it.
    assert raw.hausdorff_distance(simple) <= 30.0 / 110_900 + 1e-12
    assert simple.is_valid


# ---------------------------------------------------------------------------- geographic CRS


def test_geographic_areas_are_geodesic(tmp_path):
    mask = np.zeros((30, 30), np.uint8)
    mask[3:21, 4:25] = 1
    mask[8:12, 10:13] = 0
    deg = 1e-4
    src = make_raster(tmp_path / "mask.tif", mask, crs="EPSG:4326",
                      transform=from_origin(141.0, 36.0, deg, deg))
    [(geom, a)] = read(vectorize_mask(src, tmp_path / "o.gpkg").polygons_path)
    c = geom.centroid
    laea = CRS.from_proj4(f"+proj=laea +lat_0={c.y} +lon_0={c.x} +datum=WGS84 +units=m")
    t = Transformer.from_crs("EPSG:4326", laea, always_xy=True)
    projected = shapely.transform(geom, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))
    assert a["area_m2"] == pytest.approx(projected.area, rel=0.005)
    assert a["perimeter_m"] == pytest.approx(projected.length, rel=0.005)
    assert a["centroid_lon"] == pytest.approx(c.x, abs=LONLAT_ABS)
    assert a["centroid_lat"] == pytest.approx(c.y, abs=LONLAT_ABS)


# ---------------------------------------------------------------------------- formats


@pytest.mark.parametrize("ext,names", [
    (".gpkg", FIELDS), (".geojson", FIELDS_WITH_ID), (".fgb", FIELDS_WITH_ID),
    (".shp", ["id", "area_m2", "area_ha", "perim_m", "prob_mean", "prob_max", "cent_lon",
              "cent_lat", "model", "pixels"]),
])
def test_formats_by_extension(tmp_path, ext, names):
    mask = np.zeros((6, 6), np.uint8)
    mask[1:4, 1:4] = 1
    mask[5, 5] = 1
    src = make_raster(tmp_path / "mask.tif", mask)
    out = tmp_path / f"out{ext}"
    result = vectorize_mask(src, out, model_name="m")
    assert result.polygons_path == out and result.count == 2
    with fiona.open(out) as layer:
        assert list(layer.schema["properties"]) == names
        assert CRS.from_user_input(layer.crs_wkt).to_epsg() == 32654
        areas = sorted(f.properties["area_m2"] for f in layer)
    assert areas == pytest.approx([100.0, 900.0])
    assert not [p for p in folder_listing(tmp_path) if "partial" in p]


@pytest.mark.parametrize("ext", [".gpkg", ".geojson", ".shp", ".fgb"])
def test_no_landslide_gives_an_empty_layer_with_the_schema(tmp_path, ext):
    src = make_raster(tmp_path / "mask.tif", np.zeros((5, 5), np.uint8))
    result = vectorize_mask(src, tmp_path / f"out{ext}")
    assert result.count == 0 and result.total_area_m2 == 0.0
    with fiona.open(result.polygons_path) as layer:
        assert list(layer) == []
        if ext != ".geojson":       # GeoJSON stores no field list when there is no feature
            first = ["area_m2", "area_ha"] if ext == ".gpkg" else ["id", "area_m2"]
            assert list(layer.schema["properties"])[:2] == first
            assert CRS.from_user_input(layer.crs_wkt).to_epsg() == 32654


def test_layer_name_in_a_geopackage(tmp_path):
    src = make_raster(tmp_path / "mask.tif", np.ones((3, 3), np.uint8))
    out = vectorize_mask(src, tmp_path / "o.gpkg", layer_name="scars").polygons_path
    assert fiona.listlayers(out) == ["scars"]


def test_an_existing_output_is_replaced_on_success(tmp_path):
    src = make_raster(tmp_path / "mask.tif", np.ones((3, 3), np.uint8))
    out = tmp_path / "o.gpkg"
    out.write_bytes(b"old")
    vectorize_mask(src, out)
    assert len(read(out)) == 1


# ---------------------------------------------------------------------------- bad inputs


def test_unknown_extension_is_an_output_error(tmp_path):
    src = make_raster(tmp_path / "mask.tif", np.ones((3, 3), np.uint8))
    with pytest.raises(OutputError, match=r"out\.kml.*\.gpkg.*'\.kml'"):
        vectorize_mask(src, tmp_path / "out.kml")


def test_not_a_raster(tmp_path):
    bad = tmp_path / "notes.tif"
    bad.write_text("not a raster")
    with pytest.raises(InputError, match=r"Mask raster .*notes\.tif.*expected a raster"):
        vectorize_mask(bad, tmp_path / "o.gpkg")
    with pytest.raises(InputError, match=r"missing\.tif.*does not exist"):
        vectorize_mask(tmp_path / "missing.tif", tmp_path / "o.gpkg")


def test_multiband_mask(tmp_path):
    src = make_raster(tmp_path / "rgb.tif", np.zeros((3, 4, 4), np.uint8))
    with pytest.raises(InputError, match=r"rgb\.tif.*single-band.*found 3 bands"):
        vectorize_mask(src, tmp_path / "o.gpkg")


def test_no_crs(tmp_path):
    src = make_raster(tmp_path / "nocrs.tif", np.ones((4, 4), np.uint8), crs=None)
    with pytest.raises(InputError, match=r"nocrs\.tif.*coordinate reference system.*none"):
        vectorize_mask(src, tmp_path / "o.gpkg")


@pytest.mark.parametrize("change", ["size", "transform", "crs"])
def test_probability_on_another_grid(tmp_path, change):
    src = make_raster(tmp_path / "mask.tif", np.ones((4, 4), np.uint8))
    kw: dict = {}
    data = np.full((4, 4), 0.9, np.float32)
    if change == "size":
        data = np.full((5, 4), 0.9, np.float32)
    elif change == "transform":
        kw["transform"] = from_origin(500005.0, 4000000.0, 10.0, 10.0)
    else:
        kw["crs"] = "EPSG:32655"
    psrc = make_raster(tmp_path / "prob.tif", data, **kw)
    what = "geotransform" if change == "transform" else change
    with pytest.raises(InputError, match=rf"(?i)prob\.tif.*same grid.*mask\.tif.*found .*{what}"):
        vectorize_mask(src, tmp_path / "o.gpkg", probability_path=psrc)


def test_integer_probability_without_scale_is_refused(tmp_path):
    src = make_raster(tmp_path / "mask.tif", np.ones((4, 4), np.uint8))
    psrc = make_raster(tmp_path / "p16.tif", np.ones((4, 4), np.uint16))
    with pytest.raises(InputError, match=r"p16\.tif.*expected probabilities.*uint16"):
        vectorize_mask(src, tmp_path / "o.gpkg", probability_path=psrc)


@pytest.mark.parametrize("target", ["missing/o.gpkg", "afile/o.gpkg", "adir"])
def test_unwritable_output(tmp_path, target):
    src = make_raster(tmp_path / "mask.tif", np.ones((4, 4), np.uint8))
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir.gpkg").mkdir()
    path = tmp_path / (target if target != "adir" else "adir.gpkg")
    with pytest.raises(OutputError, match="Polygon output"):
        vectorize_mask(src, path)


@pytest.mark.parametrize("name,value", [("threshold", 1.5), ("min_area_m2", -1.0),
                                        ("fill_holes_m2", float("nan")), ("simplify_m", -2.0)])
def test_bad_options(tmp_path, name, value):
    src = make_raster(tmp_path / "mask.tif", np.ones((4, 4), np.uint8))
    with pytest.raises(InputError, match=name):
        vectorize_mask(src, tmp_path / "o.gpkg", **{name: value})


@pytest.mark.skipif(os.geteuid() == 0, reason="permissions do not apply to root")
def test_read_only_folder(tmp_path):
    src = make_raster(tmp_path / "mask.tif", np.ones((4, 4), np.uint8))
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="not writable"):
            vectorize_mask(src, ro / "o.gpkg")
    finally:
        ro.chmod(0o700)


# ---------------------------------------------------------------------------- progress, cancel


def test_progress_is_monotonic_and_ends_at_one(tmp_path):
    src = make_raster(tmp_path / "mask.tif", blobs(5))
    seen: list[float] = []
    vectorize_mask(src, tmp_path / "o.gpkg", strip_rows=5, progress=seen.append)
    assert len(seen) > 5 and seen == sorted(seen) and seen[-1] == 1.0
    assert all(0.0 <= f <= 1.0 for f in seen)


@pytest.mark.parametrize("ext", [".gpkg", ".shp"])
def test_cancel_leaves_nothing_and_keeps_an_existing_file(tmp_path, ext):
    src = make_raster(tmp_path / "mask.tif", blobs(6))
    out = tmp_path / f"o{ext}"
    out.write_bytes(b"previous result")
    before = folder_listing(tmp_path)
    calls = iter(range(100))
    with pytest.raises(CancelledError, match="cancelled"):
        vectorize_mask(src, out, strip_rows=4, is_canceled=lambda: next(calls) >= 3)
    assert folder_listing(tmp_path) == before
    assert out.read_bytes() == b"previous result"


def test_a_failure_while_writing_leaves_nothing(tmp_path, monkeypatch):
    src = make_raster(tmp_path / "mask.tif", blobs(7))
    out = tmp_path / "o.gpkg"
    out.write_bytes(b"previous result")
    before = folder_listing(tmp_path)
    from landslide_mapper.core.polygons import vector_io

    def broken(self, records):
        raise OSError("disk full")

    monkeypatch.setattr(vector_io.PolygonWriter, "flush", lambda self: broken(self, None))
    with pytest.raises(OSError, match="disk full"):
        vectorize_mask(src, out, strip_rows=4)
    assert folder_listing(tmp_path) == before
    assert out.read_bytes() == b"previous result"


# ---------------------------------------------------------------------------- real data


@pytest.mark.realdata
def test_real_sentinel2_labels_in_a_geographic_crs(tmp_path):
    """Chittagong landslide labels (EPSG:4326): strips, components and geodesic areas."""
    label = sorted(shared_data("sentinel2_chittagong", "labels").glob("*.tif"))
    best = None
    for path in label:
        with rasterio.open(path) as ds:
            data = ds.read(1)
            if best is None or (data == 2).sum() > best[1].sum():
                best = (ds.profile, data == 2)
    profile, mask = best
    if not mask.any():
        pytest.skip("no landslide pixels in the shared Chittagong labels")
    src = make_raster(tmp_path / "mask.tif", mask.astype(np.uint8), crs=profile["crs"],
                      transform=profile["transform"])
    whole = read(vectorize_mask(src, tmp_path / "w.gpkg").polygons_path)
    strips = read(vectorize_mask(src, tmp_path / "s.gpkg", strip_rows=7).polygons_path)
    assert len(whole) == len(strips) == len(components(mask))
    assert all(g1.equals(g2) for (g1, _), (g2, _) in zip(whole, strips))
    assert sum(a["pixels"] for _, a in whole) == int(mask.sum())
    # Independent area: each landslide pixel projected to a local equal-area CRS, summed.
    t = profile["transform"]
    rows, cols = np.nonzero(mask)
    lat = t.f + t.e * (rows + 0.5)
    lon0 = t.c + t.a * cols.mean()
    laea = CRS.from_proj4(f"+proj=laea +lat_0={lat.mean()} +lon_0={lon0} +datum=WGS84")
    tr = Transformer.from_crs("EPSG:4326", laea, always_xy=True)
    pixels = [shapely.box(t.c + t.a * c, t.f + t.e * (r + 1), t.c + t.a * (c + 1), t.f + t.e * r)
              for r, c in zip(rows, cols)]
    def project(xy):
        return np.column_stack(tr.transform(xy[:, 0], xy[:, 1]))

    expected = sum(shapely.transform(p, project).area for p in pixels)
    assert sum(a["area_m2"] for _, a in whole) == pytest.approx(expected, rel=0.005)
