"""int8 copies of models: the contract is carried over and records how, outputs stay close.

The models are tiny (built from ONNX operators, or a two-layer convolution network), so the
tolerances here are about quantization working at all; what a real network loses is measured on
held-out data in the model cards, and on a real scene in ``test_int8_map_agrees_on_iburi``.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import helper, numpy_helper

from landslide_mapper.cli.main import main as cli
from landslide_mapper.core.contract import read_contract, validate
from landslide_mapper.core.errors import InputError, ModelError
from landslide_mapper.core.mapping.calibration import (
    calibration_rasters,
    plan_calibration,
    quantize_with_rasters,
)
from landslide_mapper.core.models.dummy import build_dummy_model
from landslide_mapper.core.models.quantize import compare_models, quantize_int8
from tests.support import make_raster

BANDS = ["red", "green", "blue"]


def _conv_net(path, width: int = 8):
    """A dummy model's contract on a two-layer 3x3 convolution network with ReLU (seeded)."""
    build_dummy_model(path, kind="conv3", bands=BANDS, weights=[0.0] * 3, tile_size=32, overlap=8,
                      name="tiny-net")
    model = onnx.load(str(path))
    rng = np.random.default_rng(0)
    w0 = rng.normal(0, 0.5, (width, 3, 3, 3)).astype(np.float32)
    w1 = rng.normal(0, 0.3, (1, width, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["input", "w0", "b0"], ["c0"], pads=[1] * 4),
             helper.make_node("Relu", ["c0"], ["r0"]),
             helper.make_node("Conv", ["r0", "w1", "b1"], ["output"], pads=[1] * 4)]
    inits = [numpy_helper.from_array(w0, "w0"),
             numpy_helper.from_array(np.zeros(width, np.float32), "b0"),
             numpy_helper.from_array(w1, "w1"),
             numpy_helper.from_array(np.array([-0.2], np.float32), "b1")]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    del model.graph.initializer[:]
    model.graph.initializer.extend(inits)
    onnx.checker.check_model(model)
    onnx.save_model(model, str(path))
    return read_contract(path)


def _tiles(n: int = 16, seed: int = 1, size: int = 32):
    rng = np.random.default_rng(seed)
    for _ in range(n // 4):
        yield rng.normal(0, 1, (4, 3, size, size)).astype(np.float32)


def _op_types(path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


def test_int8_copy_carries_the_contract_and_agrees(tmp_path):
    src, out = tmp_path / "net.onnx", tmp_path / "net-int8.onnx"
    contract = _conv_net(src)
    compact = quantize_int8(src, out, _tiles(), calibration={"data": "random normal tiles"})

    assert {"QuantizeLinear", "DequantizeLinear"} <= _op_types(out)  # really quantized
    again = read_contract(out)
    assert again == compact
    q = again.quantization
    assert q["format"] == "QDQ" and q["weights"].startswith("int8, per channel")
    assert q["calibration_tiles"] == 16 and q["calibration"] == {"data": "random normal tiles"}
    assert len(q["source_sha256"]) == 64 and q["source_model"] == "net.onnx"
    # Everything else is the source's contract, unchanged.
    assert again.with_updates(quantization={}) == contract

    agreement = compare_models(src, out, _tiles(seed=2))
    assert agreement.tiles == 16
    # Mostly within one quantization step; a few outliers of new tiles beyond the calibrated
    # ranges are clipped, hence the looser bound on the largest difference.
    assert agreement.mean_abs_probability < 0.01
    assert agreement.max_abs_probability < 0.3
    assert agreement.mask_agreement > 0.98
    assert 0.05 < agreement.landslide_pixels_float / agreement.pixels < 0.95  # masks not trivial


def test_float_contract_reads_as_before_and_the_field_round_trips():
    doc = {"schema_version": 1, "name": "m", "title": "M", "bands": ["red"], "pixel_size_m": 10,
           "tile_size": 64, "overlap": 16}
    assert "quantization" not in validate(doc).to_dict()
    record = {"format": "QDQ", "calibration_tiles": 3}
    c = validate(dict(doc, quantization=record))
    assert c.quantization == record
    assert validate(json.loads(c.to_json())).quantization == record
    with pytest.raises(ModelError, match="'quantization' must be an object"):
        validate(dict(doc, quantization="int8"))


def test_refuses_a_quantized_model_and_empty_or_wrong_calibration(tmp_path):
    src, out = tmp_path / "net.onnx", tmp_path / "net-int8.onnx"
    _conv_net(src)
    with pytest.raises(InputError, match="Calibration data: no tile"):
        quantize_int8(src, out, iter(()))
    with pytest.raises(InputError, match=r"expected tiles of shape \(n, 3, height, width\)"):
        quantize_int8(src, out, [np.zeros((1, 4, 32, 32), np.float32)])
    assert not out.exists()
    quantize_int8(src, out, _tiles())
    with pytest.raises(ModelError, match="already quantized"):
        quantize_int8(out, tmp_path / "again.onnx", _tiles())


def test_calibration_reads_tiles_through_the_contract_scaling(tmp_path):
    """A raster whose raw values normalise to exactly 0 and 1 in two halves: the tiles read for
    calibration hold those normalised values (scale and offset applied, nodata skipped)."""
    bands = [{"name": n, "scale": 0.01, "offset": -1.0} for n in BANDS]
    model = tmp_path / "m.onnx"
    contract = build_dummy_model(model, kind="linear", bands=bands, weights=[1, 1, 1],
                                 tile_size=32, overlap=0)
    data = np.full((3, 64, 96), 100, np.uint16)  # (100 * 0.01 - 1) = 0
    data[:, :, 48:] = 200  # = 1
    data[:, :32, :32] = 0  # one whole tile of nodata: never used
    raster = make_raster(tmp_path / "r.tif", data, nodata=0, descriptions=BANDS)
    from landslide_mapper.core.mapping.calibration import calibration_batches

    plan = plan_calibration(calibration_rasters([tmp_path]), contract, tiles=10)
    assert plan.candidates == 6 and plan.rasters == (raster,)
    tiles = np.concatenate(list(calibration_batches(plan, contract, 10)))
    assert tiles.shape == (5, 3, 32, 32)  # 6 tiles, the nodata one skipped
    assert set(np.unique(tiles)) == {0.0, 1.0}


def test_quantize_command(tmp_path):
    src = tmp_path / "net.onnx"
    _conv_net(src)
    rng = np.random.default_rng(3)
    data = rng.integers(1, 255, (3, 96, 96)).astype(np.uint8)
    folder = tmp_path / "scenes"
    folder.mkdir()
    make_raster(folder / "a.tif", data, descriptions=BANDS)
    out = tmp_path / "net-int8.onnx"
    done = CliRunner().invoke(cli, ["quantize", str(src), str(out), "--calibration",
                                    str(folder), "--tiles", "8", "-q"])
    assert done.exit_code == 0, done.output
    assert "8 calibration tiles" in done.output and "masks" in done.output
    q = read_contract(out).quantization
    assert q["calibration"]["rasters"] == ["a.tif"] and q["calibration_tiles"] == 8

    empty = tmp_path / "empty"
    empty.mkdir()
    done = CliRunner().invoke(cli, ["quantize", str(src), str(tmp_path / "x.onnx"),
                                    "--calibration", str(empty)])
    assert done.exit_code == 1
    assert "Calibration data" in done.output and "holds no raster file" in done.output
    assert not (tmp_path / "x.onnx").exists()


def test_quantize_with_rasters_returns_the_agreement(tmp_path):
    src, out = tmp_path / "net.onnx", tmp_path / "int8.onnx"
    _conv_net(src)
    data = np.random.default_rng(4).integers(1, 255, (3, 64, 64)).astype(np.uint8)
    make_raster(tmp_path / "a.tif", data, descriptions=BANDS)
    compact, agreement = quantize_with_rasters(src, out, [tmp_path / "a.tif"], tiles=4)
    assert compact.quantization["calibration_tiles"] == 4
    assert agreement.tiles == 4 and agreement.mask_agreement > 0.95
