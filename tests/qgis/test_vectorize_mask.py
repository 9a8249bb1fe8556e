"""``landslide_mapper:vectorize_mask`` through ``processing.run`` on hand-drawn masks.

Shapes at 10 m pixels: a 3 x 3 square (900 m2) and a 6 x 4 rectangle with a 2 x 2 hole
(2400 - 400 = 2000 m2; 2400 m2 with the hole filled).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import processing
import pytest
from qgis.core import QgsProcessingException, QgsProcessingFeedback, QgsVectorLayer

from landslide_mapper.core.errors import LandslideMapperError
from landslide_mapper.core.polygons.vectorize import vectorize_mask
from tests.support import make_raster

pytestmark = pytest.mark.qgis

ALG = "landslide_mapper:vectorize_mask"
SQUARE = (2, 5, 2, 5)          # rows 2-4, cols 2-4
RING = (8, 14, 10, 14)         # rows 8-13, cols 10-13
HOLE = (10, 12, 11, 13)        # inside RING
SQUARE_M2, RING_M2, HOLE_M2 = 900.0, 2400.0, 400.0


def paint(shape, value, *rects_and_values):
    grid = np.full(shape, value, dtype=np.float32)
    for (r0, r1, c0, c1), v in rects_and_values:
        grid[r0:r1, c0:c1] = v
    return grid


@pytest.fixture
def mask(tmp_path: Path) -> Path:
    data = paint((20, 20), 0, (SQUARE, 1), (RING, 1), (HOLE, 0)).astype(np.uint8)
    data[19, 19] = 255  # a nodata pixel is never landslide
    return make_raster(tmp_path / "mask.tif", data, nodata=255)


@pytest.fixture
def probability(tmp_path: Path) -> Path:
    """0.8 on the square; the ring 0.6 on its upper half, 0.9 on its lower half; 0.1 elsewhere."""
    data = paint((20, 20), 0.1, (SQUARE, 0.8), ((8, 11, 10, 14), 0.6), ((11, 14, 10, 14), 0.9),
                 (HOLE, 0.2))
    return make_raster(tmp_path / "probability.tif", data)


def run(params: dict, feedback: QgsProcessingFeedback | None = None) -> dict:
    return processing.run(ALG, params, feedback=feedback)


def areas(path: str) -> list[dict]:
    layer = QgsVectorLayer(path, "polygons", "ogr")
    assert layer.isValid()
    rows = [dict(zip(layer.fields().names(), f.attributes())) for f in layer.getFeatures()]
    return sorted(rows, key=lambda r: r["area_m2"])


def test_mask_to_polygons_with_areas(provider, mask, out_dir):
    result = run({"INPUT": str(mask), "OUTPUT_POLYGONS": str(out_dir / "p.gpkg")})
    assert result["OUTPUT_POLYGONS"] == str(out_dir / "p.gpkg")
    assert result["POLYGON_COUNT"] == 2
    assert result["TOTAL_AREA_M2"] == pytest.approx(SQUARE_M2 + RING_M2 - HOLE_M2)
    rows = areas(result["OUTPUT_POLYGONS"])
    assert [r["area_m2"] for r in rows] == pytest.approx([SQUARE_M2, RING_M2 - HOLE_M2])
    assert [r["area_ha"] for r in rows] == pytest.approx([0.09, 0.2])
    # square: 4 sides of 30 m; ring: outer 2 * (60 + 40) m plus the hole's 4 * 20 m
    assert [r["perimeter_m"] for r in rows] == pytest.approx([120.0, 280.0])


def test_fill_holes_and_min_area(provider, mask, out_dir):
    result = run({"INPUT": str(mask), "FILL_HOLES_M2": HOLE_M2 + 1, "MIN_AREA_M2": 1000,
                  "OUTPUT_POLYGONS": str(out_dir / "p.gpkg")})
    assert result["POLYGON_COUNT"] == 1
    [row] = areas(result["OUTPUT_POLYGONS"])
    assert row["area_m2"] == pytest.approx(RING_M2)


def test_probability_attributes(provider, mask, probability, out_dir):
    result = run({"INPUT": str(mask), "PROBABILITY": str(probability),
                  "OUTPUT_POLYGONS": str(out_dir / "p.gpkg")})
    square, ring = areas(result["OUTPUT_POLYGONS"])
    assert square["prob_mean"] == pytest.approx(0.8, abs=1e-6)
    assert square["prob_max"] == pytest.approx(0.8, abs=1e-6)
    # ring pixels: upper half 3 rows x 4 - 2 hole pixels = 10 at 0.6; lower 12 - 2 = 10 at 0.9
    assert ring["prob_mean"] == pytest.approx((10 * 0.6 + 10 * 0.9) / 20, abs=1e-6)
    assert ring["prob_max"] == pytest.approx(0.9, abs=1e-6)


@pytest.mark.parametrize(("threshold", "expected"), [(0.5, 2), (0.7, 2), (0.85, 1), (0.95, 0)])
def test_probability_raster_as_input_is_thresholded(provider, probability, out_dir, threshold,
                                                    expected):
    """0.7 keeps the square (0.8) and the ring's lower half; 0.85 only the lower half (0.9)."""
    result = run({"INPUT": str(probability), "THRESHOLD": threshold,
                  "OUTPUT_POLYGONS": str(out_dir / f"t{threshold}.gpkg")})
    assert result["POLYGON_COUNT"] == expected


def test_probability_on_another_grid_is_refused_with_the_core_message(provider, mask, tmp_path,
                                                                      out_dir):
    other = make_raster(tmp_path / "other.tif", np.zeros((10, 10), np.float32))
    with pytest.raises(LandslideMapperError) as core:
        vectorize_mask(mask, tmp_path / "core.gpkg", probability_path=other)
    with pytest.raises(QgsProcessingException, match="same grid") as qgis_error:
        run({"INPUT": str(mask), "PROBABILITY": str(other),
             "OUTPUT_POLYGONS": str(out_dir / "p.gpkg")})
    assert str(core.value) in str(qgis_error.value)
    assert list(out_dir.iterdir()) == []


def test_multiband_input_is_refused_with_the_core_message(provider, tmp_path, out_dir):
    rgb = make_raster(tmp_path / "rgb.tif", np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(LandslideMapperError) as core:
        vectorize_mask(rgb, tmp_path / "core.gpkg")
    with pytest.raises(QgsProcessingException, match="single-band") as qgis_error:
        run({"INPUT": str(rgb), "OUTPUT_POLYGONS": str(out_dir / "p.gpkg")})
    assert str(core.value) in str(qgis_error.value)


def test_cancel_leaves_no_outputs(provider, mask, out_dir):
    feedback = QgsProcessingFeedback()
    feedback.cancel()
    with pytest.raises(QgsProcessingException, match="(?i)cancel"):
        run({"INPUT": str(mask), "OUTPUT_POLYGONS": str(out_dir / "p.gpkg")}, feedback=feedback)
    assert list(out_dir.iterdir()) == []


def test_geojson_output(provider, mask, out_dir):
    result = run({"INPUT": str(mask), "OUTPUT_POLYGONS": str(out_dir / "p.geojson")})
    assert result["POLYGON_COUNT"] == 2
    assert [r["area_m2"] for r in areas(result["OUTPUT_POLYGONS"])] == pytest.approx(
        [SQUARE_M2, RING_M2 - HOLE_M2])


def test_dem_gives_slope_and_elevation_and_minimum_slope_drops_flat_polygons(
        provider, mask, tmp_path, out_dir):
    """DEM flat west of column 7, a 30-degree plane east of it: the square lies on the flat,
    the ring on the plane."""
    x = 500000.0 + 10.0 * (np.arange(20) + 0.5)
    z = np.where(x < 500070, 100.0, 100.0 + (x - 500070) * np.tan(np.radians(30.0)))
    dem = make_raster(tmp_path / "dem.tif", np.tile(z, (20, 1)).astype(np.float32))
    result = run({"INPUT": str(mask), "DEM": str(dem), "OUTPUT_POLYGONS": str(out_dir / "a.gpkg")})
    square, ring = areas(result["OUTPUT_POLYGONS"])
    assert square["slope_mean"] == 0.0 and ring["slope_mean"] == pytest.approx(30.0, abs=0.05)
    assert square["elev_min"] == square["elev_max"] == 100.0
    assert ring["elev_max"] > ring["elev_min"] > 100.0
    result = run({"INPUT": str(mask), "DEM": str(dem), "MIN_SLOPE": 10.0,
                  "OUTPUT_POLYGONS": str(out_dir / "b.gpkg")})
    assert result["POLYGON_COUNT"] == 1
    [kept] = areas(result["OUTPUT_POLYGONS"])
    assert kept["area_m2"] == RING_M2 - HOLE_M2
    with pytest.raises(QgsProcessingException, match="Minimum slope"):
        run({"INPUT": str(mask), "MIN_SLOPE": 10.0, "OUTPUT_POLYGONS": str(out_dir / "c.gpkg")})
