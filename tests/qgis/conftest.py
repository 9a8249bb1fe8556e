"""Fixtures for the QGIS tests: Processing with the Landslide Mapper provider, rasters, models.

The scene is exactly predictable: a 3-band raster (10 m pixels, UTM) whose red band is 1.0 on two
rectangles and 0.0 elsewhere, scored by a dummy model with ``logit = 10 * red - 5``, so the
rectangles have probability sigmoid(5) ~ 0.993 and the rest sigmoid(-5) ~ 0.007.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from landslide_mapper.core.models.dummy import build_dummy_model
from tests.support import make_raster

PIXEL_M = 10.0
ROWS, COLS = 80, 96
# (row0, row1, col0, col1) of the landslide rectangles: 20 x 20 and 5 x 8 pixels
BIG = (10, 30, 20, 40)
SMALL = (50, 55, 60, 68)
WEIGHTS = (10.0, 0.0, 0.0)
BIAS = -5.0


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def rect_area_m2(rect: tuple[int, int, int, int]) -> float:
    r0, r1, c0, c1 = rect
    return (r1 - r0) * (c1 - c0) * PIXEL_M * PIXEL_M


def rect_perimeter_m(rect: tuple[int, int, int, int]) -> float:
    r0, r1, c0, c1 = rect
    return 2 * ((r1 - r0) + (c1 - c0)) * PIXEL_M


@pytest.fixture(scope="session")
def provider(qgis_processing):
    """The Landslide Mapper provider, registered once in QGIS's Processing registry."""
    from qgis.core import QgsApplication

    from landslide_mapper.processing.provider import LandslideMapperProvider

    registry = QgsApplication.processingRegistry()
    existing = registry.providerById("landslide_mapper")
    if existing is not None:
        return existing
    prov = LandslideMapperProvider()
    assert registry.addProvider(prov)
    return prov


def scene_data(red_in_rects: float = 1.0) -> np.ndarray:
    data = np.zeros((3, ROWS, COLS), np.float32)
    for r0, r1, c0, c1 in (BIG, SMALL):
        data[0, r0:r1, c0:c1] = red_in_rects
    data[1] = 0.25  # green and blue carry values the model ignores (weight 0)
    data[2] = 0.5
    return data


@pytest.fixture
def scene(tmp_path: Path) -> Path:
    """The two-rectangle scene (see the module docstring)."""
    return make_raster(tmp_path / "scene.tif", scene_data(), descriptions=["red", "green", "blue"])


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """Dummy model ``logit = 10 * red - 5``; contract: threshold 0.5, tile 64, overlap 16."""
    path = tmp_path / "models" / "rectangles.onnx"
    path.parent.mkdir()
    build_dummy_model(path, weights=WEIGHTS, bias=BIAS, name="rectangles",
                      pixel_size_m=PIXEL_M, tile_size=64, overlap=16, threshold=0.5)
    return path


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    """An empty folder for outputs, so a test can check that nothing else was left there."""
    path = tmp_path / "out"
    path.mkdir()
    return path
