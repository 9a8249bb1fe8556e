"""Every wrong input gets a typed error that names the input and what was found.

Each case also checks that a file already at the output path is left untouched.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from rasterio.transform import from_origin

from landslide_mapper.core.errors import CancelledError, InputError, ModelError, OutputError
from landslide_mapper.core.mapping.engine import map_landslides
from landslide_mapper.core.models.dummy import build_dummy_model
from tests.support import make_raster

OLD = b"result of an earlier run"


@pytest.fixture
def env(tmp_path):
    data = np.random.default_rng(0).integers(1, 500, (3, 64, 80)).astype(np.uint16)
    raster = make_raster(tmp_path / "scene.tif", data, descriptions=["red", "green", "blue"])
    model = tmp_path / "m.onnx"
    build_dummy_model(model, weights=[0.01, 0.0, 0.0], bias=-1.0, tile_size=32, overlap=8)
    out = tmp_path / "out" / "mask.tif"
    out.parent.mkdir()
    out.write_bytes(OLD)
    return tmp_path, raster, model, out


def run_fails(err, raster, model, out, *words, **kw):
    with pytest.raises(err) as e:
        map_landslides(raster, model, mask_path=out, **kw)
    msg = str(e.value)
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"
    assert out.read_bytes() == OLD
    assert sorted(p.name for p in out.parent.iterdir()) == ["mask.tif"]  # no temporaries left
    return msg


def test_not_a_raster(env):
    tmp, _, model, out = env
    text = tmp / "notes.tif"
    text.write_text("this is not a raster")
    run_fails(InputError, text, model, out, "notes.tif", "not a raster")


def test_missing_raster(env):
    tmp, _, model, out = env
    run_fails(InputError, tmp / "nowhere.tif", model, out, "nowhere.tif", "not found")


def test_fewer_bands_than_the_model_needs(env):
    tmp, _, model, out = env
    two = make_raster(tmp / "two.tif", np.ones((2, 40, 40), np.uint16))
    run_fails(InputError, two, model, out, "two.tif", "needs 3 bands", "red, green, blue",
              "has 2 bands")


def test_no_crs(env):
    tmp, _, model, out = env
    r = make_raster(tmp / "nocrs.tif", np.ones((3, 40, 40), np.uint16), crs=None)
    run_fails(InputError, r, model, out, "nocrs.tif", "no coordinate reference system")


def test_no_geotransform(env):
    tmp, _, model, out = env
    r = make_raster(tmp / "nogt.tif", np.ones((3, 40, 40), np.uint16), transform=None, crs=None)
    run_fails(InputError, r, model, out, "nogt.tif")
    r2 = make_raster(tmp / "nogt2.tif", np.ones((3, 40, 40), np.uint16), transform=None)
    run_fails(InputError, r2, model, out, "nogt2.tif", "no geotransform", "identity")


def test_all_nodata(env):
    tmp, _, model, out = env
    r = make_raster(tmp / "empty.tif", np.zeros((3, 40, 40), np.uint16), nodata=0)
    run_fails(InputError, r, model, out, "empty.tif", "nodata", "nothing to map")
    nan = make_raster(tmp / "nan.tif", np.full((3, 40, 40), np.nan, np.float32))
    run_fails(InputError, nan, model, out, "nan.tif", "nodata")


def test_nans_inside_are_masked_not_an_error(env):
    tmp, _, _, _ = env
    data = np.full((3, 50, 60), 300.0, np.float32)
    data[2, 20:25, 10:50] = np.nan
    r = make_raster(tmp / "nans.tif", data)
    sure = tmp / "sure.onnx"
    build_dummy_model(sure, weights=[0, 0, 0], bias=9.0, tile_size=32, overlap=8)
    res = map_landslides(r, sure, mask_path=tmp / "m2.tif")
    import rasterio

    with rasterio.open(res.mask_path) as ds:
        mask = ds.read(1)
    assert (mask[20:25, 10:50] == 255).all()
    assert (mask == 1).sum() == 50 * 60 - 5 * 40


def test_pixel_size_far_off(env):
    tmp, _, model, out = env
    r = make_raster(tmp / "coarse.tif", np.ones((3, 40, 40), np.uint16),
                    transform=from_origin(500000, 4000000, 100, 100))
    run_fails(InputError, r, model, out, "coarse.tif", "100 m", "10 m", "coarser")
    r = make_raster(tmp / "fine.tif", np.ones((3, 40, 40), np.uint16),
                    transform=from_origin(500000, 4000000, 0.5, 0.5))
    run_fails(InputError, r, model, out, "fine.tif", "0.5 m", "finer")


def test_corrupt_onnx(env):
    tmp, raster, model, out = env
    bad = tmp / "broken.onnx"
    bad.write_bytes(model.read_bytes()[: len(model.read_bytes()) // 3])
    run_fails(ModelError, raster, bad, out, "broken.onnx", "cannot be read as ONNX")


def test_onnx_without_contract(env):
    tmp, raster, model, out = env
    import onnx

    m = onnx.load(str(model))
    del m.metadata_props[:]
    bare = tmp / "bare.onnx"
    onnx.save_model(m, str(bare))
    run_fails(ModelError, raster, bare, out, "bare.onnx", "no Landslide Mapper contract",
              "landslide_mapper")


def test_model_channels_disagree_with_contract(env):
    tmp, raster, _, out = env
    import json

    import onnx

    four = tmp / "four.onnx"
    build_dummy_model(four, bands=["red", "green", "blue", "nir"], tile_size=32, overlap=8)
    m = onnx.load(str(four))
    doc = json.loads(m.metadata_props[0].value)
    doc["bands"] = doc["bands"][:3]
    m.metadata_props[0].value = json.dumps(doc)
    onnx.save_model(m, str(four))
    run_fails(ModelError, raster, four, out, "four.onnx", "4 input channels", "3 bands")


def test_tile_size_not_multiple_of_32(env):
    _, raster, model, out = env
    run_fails(InputError, raster, model, out, "multiple of 32", "found 100", tile_size=100)


def test_overlap_not_below_tile_size(env):
    _, raster, model, out = env
    run_fails(InputError, raster, model, out, "overlap", "found 64", "tile size 64",
              tile_size=64, overlap=64)


def test_unwritable_output_fails_before_work(env):
    tmp, raster, model, out = env
    calls = []
    not_a_folder = tmp / "scene.tif" / "mask.tif"
    with pytest.raises(OutputError) as e:
        map_landslides(raster, model, mask_path=not_a_folder, progress=calls.append)
    assert "scene.tif" in str(e.value) and "does not exist" in str(e.value)
    with pytest.raises(OutputError) as e:
        map_landslides(raster, model, mask_path=tmp / "missing" / "m.tif", progress=calls.append)
    assert "missing" in str(e.value)
    assert calls == []  # refused before any tile was run


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write anywhere")
def test_read_only_folder(env):
    tmp, raster, model, out = env
    out.parent.chmod(0o555)
    try:
        with pytest.raises(OutputError) as e:
            map_landslides(raster, model, mask_path=out)
        assert "not writable" in str(e.value)
    finally:
        out.parent.chmod(0o755)
    assert out.read_bytes() == OLD


def test_output_is_the_input(env):
    _, raster, model, _ = env
    before = raster.read_bytes()
    with pytest.raises(OutputError) as e:
        map_landslides(raster, model, probability_path=raster)
    assert "found the same file as the input raster" in str(e.value)
    assert raster.read_bytes() == before


def test_no_output_given(env):
    _, raster, model, _ = env
    with pytest.raises(OutputError, match="none given"):
        map_landslides(raster, model)


def test_cuda_requested_without_cuda(env):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA is available here")
    _, raster, model, out = env
    run_fails(InputError, raster, model, out, "cuda", "CPUExecutionProvider", device="cuda")


def test_cancel_in_the_middle(env):
    _, raster, model, out = env
    n = []
    run_fails(CancelledError, raster, model, out, "Cancelled",
              is_canceled=lambda: n.append(1) or len(n) > 2, batch_size=1)


def test_tile_size_the_model_cannot_take(env):
    tmp, raster, model, out = env
    import onnx

    m = onnx.load(str(model))
    for d in m.graph.input[0].type.tensor_type.shape.dim[2:]:
        d.dim_value = 64
    fixed = tmp / "fixed.onnx"
    onnx.save_model(m, str(fixed))
    run_fails(InputError, raster, fixed, out, "Tile size 32", "fixed.onnx", "64 x 64",
              tile_size=32, overlap=8)
