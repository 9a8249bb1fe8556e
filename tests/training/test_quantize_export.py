"""``landslide-train export --int8`` and ``landslide-train quantize`` on a tiny trained smp model."""

from __future__ import annotations

import numpy as np
import onnx
import yaml
from click.testing import CliRunner

from landslide_mapper.core.contract import read_contract
from landslide_mapper.core.models.quantize import compare_models
from training.cli import main as train_cli
from training.export import export_onnx

from .conftest import tiny_config


def _tiles(n: int = 8, seed: int = 7):
    rng = np.random.default_rng(seed)
    for _ in range(n // 4):
        yield rng.normal(0, 1, (4, 3, 64, 64)).astype(np.float32)


def test_export_int8_carries_the_contract_and_scores_both(trained_run, tmp_path):
    fp32, int8 = tmp_path / "tiny.onnx", tmp_path / "tiny-int8.onnx"
    float_contract, _ = export_onnx(trained_run / "best.pt", fp32)
    done = CliRunner().invoke(train_cli, ["export", "--checkpoint", str(trained_run / "best.pt"),
                                          "--out", str(int8), "--int8"])
    assert done.exit_code == 0, done.output
    assert "quantized to int8" in done.output and "synthetic" in done.output
    assert not list(tmp_path.glob(".*"))  # the float export in between is gone

    ops = {n.op_type for n in onnx.load(str(int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    contract = read_contract(int8)
    assert contract.with_updates(quantization={}) == float_contract.with_updates(
        training=contract.training)  # only the train time may differ between two exports
    q = contract.quantization
    assert q["calibration"]["data"].startswith("training split of config")
    assert q["calibration_tiles"] == 4  # the 4 training tiles of 6 (2 held out)
    row = q["heldout"]["synthetic"]
    assert set(row) == {"float", "int8", "f1_change_points"}
    assert row["f1_change_points"] == round(100 * (row["int8"]["f1"] - row["float"]["f1"]), 2)

    agreement = compare_models(fp32, int8, _tiles())
    assert agreement.mean_abs_probability < 0.05
    assert agreement.mask_agreement > 0.95


def test_quantize_command_with_extra_rasters(trained_run, tiles, tmp_path):
    fp32, int8 = tmp_path / "tiny.onnx", tmp_path / "tiny-int8.onnx"
    export_onnx(trained_run / "best.pt", fp32)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tiles)), encoding="utf-8")
    scores = tmp_path / "scores.json"
    done = CliRunner().invoke(train_cli, [
        "quantize", "--model", str(fp32), "--config", str(config), "--out", str(int8),
        "--calibration", str(tiles / "images"), "--calibration-tiles", "3", "--json", str(scores)])
    assert done.exit_code == 0, done.output
    q = read_contract(int8).quantization
    assert q["calibration_tiles"] == 4 + 3  # training images, then raster tiles
    assert q["calibration"]["rasters"] == [f"{tiles.name}/images"]
    assert "F1 float" in done.output and scores.is_file()
