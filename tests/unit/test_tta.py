"""Test-time augmentation: the 8 orientations of the square, turned back and averaged."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from landslide_mapper.core.mapping.engine import map_landslides
from landslide_mapper.core.mapping.tta import D4, orient, tta_probability, unorient
from landslide_mapper.core.models.dummy import build_dummy_model
from tests.support import make_raster


def test_d4_is_eight_distinct_orientations_each_undone_by_its_inverse():
    x = np.random.default_rng(0).normal(size=(2, 3, 5, 5))
    oriented = [orient(x, k, f) for k, f in D4]
    assert len(D4) == 8
    assert len({o.tobytes() for o in oriented}) == 8
    for (k, f), o in zip(D4, oriented):
        assert np.array_equal(unorient(o, k, f), x)
    assert D4[0] == (0, False) and np.array_equal(oriented[0], x)


def test_pointwise_prediction_comes_back_unchanged():
    """A model that scores each pixel by itself is orientation-free: TTA returns its map."""
    x = np.random.default_rng(1).uniform(size=(3, 2, 16, 16)).astype(np.float32)
    out = tta_probability(lambda b: b[:, 0], x)
    assert out.dtype == np.float32 and out.shape == (3, 16, 16)
    np.testing.assert_allclose(out, x[:, 0], atol=1e-7)


def test_a_position_bound_prediction_is_averaged_over_the_orbit():
    """A 'model' that answers with the column index (n x n tiles): the 8 images of pixel (i, j)
    have the columns j, n-1-j, i and n-1-i twice each, so the average is (n - 1) / 2 everywhere."""
    n = 8
    x = np.zeros((2, 1, n, n), np.float32)
    column = np.broadcast_to(np.arange(n, dtype=np.float32), (n, n))
    out = tta_probability(lambda b: np.broadcast_to(column, (b.shape[0], n, n)), x)
    np.testing.assert_allclose(out, np.full((2, n, n), (n - 1) / 2), atol=1e-6)
    # without the inverse turn the columns' mean would not be constant: the test can fail
    assert not np.allclose(np.mean([orient(column, k, f) for k, f in D4[:2]], axis=0),
                           (n - 1) / 2)


@pytest.fixture()
def scene(tmp_path):
    """An RGB raster with bright, irregular blobs and a nodata corner (0 in every band)."""
    rng = np.random.default_rng(2)
    red = rng.uniform(20, 80, (90, 110))
    red[20:45, 30:41] = 220
    red[60:64, 70:100] = 200
    rgb = np.stack([red, np.full_like(red, 60), np.full_like(red, 60)]).astype(np.uint8)
    rgb[:, :6, :6] = 0
    return make_raster(tmp_path / "scene.tif", rgb, descriptions=["red", "green", "blue"])


def probability(path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


def run(scene, model, out, tta: bool) -> np.ndarray:
    map_landslides(scene, model, probability_path=out, tta=tta, batch_size=3)
    return probability(out)


def test_tta_changes_nothing_for_a_pointwise_model(tmp_path, scene):
    model = tmp_path / "linear.onnx"
    build_dummy_model(model, weights=[0.05, 0.0, 0.0], bias=-5.0, tile_size=32, overlap=8)
    plain = run(scene, model, tmp_path / "plain.tif", tta=False)
    tta = run(scene, model, tmp_path / "tta.tif", tta=True)
    assert np.array_equal(np.isnan(plain), np.isnan(tta)) and np.isnan(plain[:6, :6]).all()
    np.testing.assert_allclose(tta, plain, atol=1e-6, equal_nan=True)


def asymmetric_model(path) -> None:
    """A 3x3 convolution that looks only at the upper-left neighbour: not orientation-free."""
    import onnx
    from onnx import numpy_helper

    build_dummy_model(path, kind="conv3", weights=[0.05, 0.0, 0.0], bias=-5.0, tile_size=32,
                      overlap=8)
    model = onnx.load(str(path))
    kernel = np.zeros((1, 3, 3, 3), np.float32)
    kernel[0, 0, 0, 0] = 0.05
    for i, init in enumerate(model.graph.initializer):
        if init.name == "weight":
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(kernel, "weight"))
    onnx.save_model(model, str(path))


def test_tta_averages_an_orientation_bound_model(tmp_path, scene):
    model = tmp_path / "corner.onnx"
    asymmetric_model(model)
    plain = run(scene, model, tmp_path / "plain.tif", tta=False)
    tta = run(scene, model, tmp_path / "tta.tif", tta=True)
    assert np.array_equal(np.isnan(plain), np.isnan(tta))
    valid = ~np.isnan(plain)
    assert np.abs(tta[valid] - plain[valid]).max() > 0.1
    # the shifted edges of the plain map spread over all four sides with TTA: inside a blob both
    # agree, and on the blob's upper-left and lower-right edges TTA lies between the extremes
    assert abs(tta[30, 35] - plain[30, 35]) < 1e-3
    assert 0.05 < tta[20, 35] < 0.95 and 0.05 < tta[44, 35] < 0.95
