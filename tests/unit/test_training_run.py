"""train_on_chips' pieces that need no torch: the interpreter, the config it writes, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from landslide_mapper.core.contract import read_contract
from landslide_mapper.core.errors import InputError, ModelError
from landslide_mapper.core.loop import training_run
from landslide_mapper.core.loop.training_run import build_config, find_python
from landslide_mapper.core.models.dummy import build_dummy_model
from landslide_mapper.core.models.registry import resolve_model


@pytest.fixture
def chips(tmp_path: Path) -> Path:
    """A chip folder's manifest (the config is built from it alone)."""
    folder = tmp_path / "chips"
    for split in ("train", "val"):
        (folder / split).mkdir(parents=True)
    snippet = {"data": {"tile_size": 64, "sources": [
        {"name": "chips_train", "format": "chips", "root": "train", "train": {}},
        {"name": "chips_val", "format": "chips", "root": "val", "val_only": True}]},
        "contract": {"pixel_size_m": 10.0, "tile_size": 64, "nodata_value": 0.0, "bands": [
            {"name": n, "scale": 1.0, "offset": 0.0} for n in ("B4", "B3", "B2")]}}
    (folder / "manifest.json").write_text(json.dumps(
        {"raster": "scene.tif", "polygons": "ls.gpkg", "training_config": snippet}))
    return folder


def test_interpreter_order(monkeypatch):
    monkeypatch.setenv("LANDSLIDE_MAPPER_PYTHON", "/opt/py/bin/python")
    assert find_python() == "/opt/py/bin/python"
    monkeypatch.delenv("LANDSLIDE_MAPPER_PYTHON")
    venv = training_run.REPO / ".venv" / "bin" / "python"
    assert find_python() == (str(venv) if venv.is_file() else find_python())


def test_config_from_scratch(chips: Path):
    cfg, messages = build_config(chips, epochs=3, device="cpu", max_steps=5)
    assert "extends" not in cfg and "init_from" not in cfg
    assert cfg["data"]["sources"][1]["val_only"] and cfg["data"]["normalization"] == "auto"
    assert cfg["epochs"] == 3 and cfg["device"] == "cpu" and cfg["max_steps_per_epoch"] == 5
    assert [b["scale"] for b in cfg["contract"]["bands"]] == [1.0, 1.0, 1.0]


def test_config_extends_a_named_config(chips: Path):
    if not (training_run.CONFIG_DIR / "sentinel2-rgb.yaml").is_file():
        pytest.skip("training configs not present")
    cfg, _ = build_config(chips, base="sentinel2-rgb")
    named = read_contract(resolve_model("sentinel2-rgb")).training["config"]
    assert Path(cfg["extends"]).name == named  # the recipe the bundled model was trained with


@pytest.mark.parametrize("present", [True, False])
def test_a_base_config_whose_encoder_weights_are_absent_starts_from_random_weights(
        chips: Path, tmp_path: Path, present: bool):
    if present:
        (tmp_path / "weights.pth").write_bytes(b"x")
    base = tmp_path / "base.yaml"
    base.write_text("name: base\nmodel: {architecture: unet, encoder: mobilenet_v2, "
                    "encoder_weights: weights.pth}\n")
    cfg, messages = build_config(chips, base=str(base))
    if present:
        assert "model" not in cfg  # the base's own model section (with its weights) applies
    else:
        assert cfg["model"] == {"architecture": "unet", "encoder": "mobilenet_v2",
                                "encoder_weights": None}
        assert any("weights.pth are not on this machine" in m for m in messages)


def test_onnx_without_training_config_cannot_be_fine_tuned(chips: Path, tmp_path: Path):
    model = tmp_path / "m.onnx"
    build_dummy_model(model, bands=["red", "green", "blue"], weights=[1.0, 0.0, 0.0])
    with pytest.raises(ModelError, match="cannot be fine-tuned.*Train from a config"):
        build_config(chips, base=str(model))


def test_fine_tune_from_checkpoint_keeps_the_model_inputs(chips: Path, tmp_path: Path):
    model = tmp_path / "m.onnx"
    (tmp_path / "base.yaml").write_text("name: base\n")
    bands = [dict(name=n, scale=0.1, offset=-0.5, mean=0.2, std=0.4)
             for n in ("red", "green", "blue")]
    build_dummy_model(model, bands=bands, weights=[1.0, 0.0, 0.0],
                      training={"config": "base.yaml"})
    assert read_contract(model).bands[0].scale == pytest.approx(0.1)
    cfg_file = tmp_path / "base.yaml"
    ckpt = tmp_path / "best.pt"
    ckpt.write_bytes(b"weights")
    cfg, messages = build_config(chips, base=str(model), checkpoint=str(ckpt))
    assert Path(cfg["extends"]) == cfg_file.resolve()
    assert cfg["init_from"]["checkpoint"] == str(ckpt.resolve())
    # (raw * 0.1 - 0.5 - 0.2) / 0.4 == (raw - 7) / 4
    assert cfg["data"]["normalization"] == {"mean": [pytest.approx(7.0)] * 3,
                                            "std": [pytest.approx(4.0)] * 3}
    assert [b["name"] for b in cfg["contract"]["bands"]] == ["red", "green", "blue"]
    assert "B4" in cfg["contract"]["bands"][0]["aliases"]
    # without a checkpoint: from scratch, said plainly
    cfg, messages = build_config(chips, base=str(model))
    assert "init_from" not in cfg and any("from scratch" in m for m in messages)


def test_band_count_mismatch_and_missing_manifest(chips: Path, tmp_path: Path):
    model = tmp_path / "m.onnx"
    (tmp_path / "base.yaml").write_text("name: base\n")
    build_dummy_model(model, bands=["red", "nir"], weights=[1.0, 0.0],
                      training={"config": "base.yaml"})
    with pytest.raises(InputError, match="hold 3 band"):
        build_config(chips, base=str(model))
    with pytest.raises(InputError, match="manifest.json"):
        build_config(tmp_path)


def test_cli_train_reports_a_dying_process(chips: Path, tmp_path: Path, monkeypatch):
    """``landslide-mapper train``: the training process's last lines and exit code, no model."""
    pytest.importorskip("torch")
    import sys

    from click.testing import CliRunner

    from landslide_mapper.cli.main import main

    py = tmp_path / "python"
    py.write_text('#!/bin/sh\ncase "$*" in *" fit "*) echo "ValueError: no chips"; exit 2 ;; '
                  f'esac\nexec "{sys.executable}" "$@"\n')
    py.chmod(0o755)
    monkeypatch.setenv("LANDSLIDE_MAPPER_PYTHON", str(py))
    result = CliRunner().invoke(main, ["train", str(chips), str(tmp_path / "m.onnx"),
                                       "--device", "cpu"])
    assert result.exit_code == 1
    assert "exited with code 2" in result.output and "ValueError: no chips" in result.output
    assert not (tmp_path / "m.onnx").exists()


def test_checkpoint_named_by_the_contract(chips: Path, tmp_path: Path):
    model = tmp_path / "m.onnx"
    (tmp_path / "base.yaml").write_text("name: base\n")
    (tmp_path / "m.pt").write_bytes(b"weights")
    build_dummy_model(model, bands=["red", "green", "blue"], weights=[1.0, 0.0, 0.0],
                      training={"config": "base.yaml", "checkpoint": "m.pt"})
    cfg, messages = build_config(chips, base=str(model))
    assert cfg["init_from"]["checkpoint"] == str((tmp_path / "m.pt").resolve())


def test_cancel_terminates_the_training_process(chips: Path, tmp_path: Path, monkeypatch):
    pytest.importorskip("torch")
    import sys
    import time

    from landslide_mapper.core.errors import CancelledError
    from landslide_mapper.core.loop.training_run import train_on_chips

    py = tmp_path / "python"
    py.write_text('#!/bin/sh\ncase "$*" in *" fit "*) echo "epoch 1 | loss 0.5"; '
                  f'exec sleep 600 ;; esac\nexec "{sys.executable}" "$@"\n')
    py.chmod(0o755)
    monkeypatch.setenv("LANDSLIDE_MAPPER_PYTHON", str(py))
    lines: list[str] = []
    start = time.monotonic()
    with pytest.raises(CancelledError, match="no model was written"):
        train_on_chips(chips, tmp_path / "m.onnx", device="cpu", log=lines.append,
                       is_canceled=lambda: any(x.startswith("epoch 1") for x in lines))
    assert time.monotonic() - start < 120  # not the 600 s the process would have slept
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob(".m*"))


def test_a_model_trained_here_is_fine_tuned_from_its_run(chips: Path, tmp_path: Path):
    """train_on_chips keeps the run beside the model: its config and best.pt are found again."""
    model = tmp_path / "mine.onnx"
    run = tmp_path / "mine_run"
    run.mkdir()
    (run / "train_config.yaml").write_text("name: mine\n")
    (run / "best.pt").write_bytes(b"weights")
    build_dummy_model(model, bands=["red", "green", "blue"], weights=[1.0, 0.0, 0.0],
                      training={"config": "train_config.yaml"})
    cfg, _ = build_config(chips, base=str(model))
    assert Path(cfg["extends"]) == (run / "train_config.yaml").resolve()
    assert cfg["init_from"]["checkpoint"] == str((run / "best.pt").resolve())


def test_a_copied_chip_folder_trains_on_itself(chips: Path, tmp_path: Path):
    """Manifest roots are relative to the manifest: the copy is read, not the original."""
    import shutil

    copy = tmp_path / "elsewhere" / "copied"
    shutil.copytree(chips, copy)
    shutil.rmtree(chips)
    cfg, _ = build_config(copy)
    roots = [Path(s["root"]) for s in cfg["data"]["sources"]]
    assert roots == [(copy / "train").resolve(), (copy / "val").resolve()]


def test_an_old_manifest_with_absolute_roots(chips: Path, tmp_path: Path):
    """Earlier manifests stored absolute roots: a copy still reads its own folders; a folder
    whose chips are gone anywhere is refused, naming what is missing."""
    import shutil

    manifest = json.loads((chips / "manifest.json").read_text())
    for src in manifest["training_config"]["data"]["sources"]:
        src["root"] = str(chips / src["root"])
    (chips / "manifest.json").write_text(json.dumps(manifest))
    copy = tmp_path / "copied"
    shutil.copytree(chips, copy)
    cfg, _ = build_config(copy)
    assert Path(cfg["data"]["sources"][0]["root"]) == (copy / "train").resolve()
    shutil.rmtree(chips)
    shutil.rmtree(copy / "val")
    with pytest.raises(InputError, match=r"names the chip folder .*val.* found no such folder"):
        build_config(copy)


def test_a_failed_run_leaves_no_model_and_keeps_its_log(chips: Path, tmp_path: Path, monkeypatch):
    """A training process that dies before any checkpoint: no model, and the run folder holds
    the log the message points at (a refusal before the process starts leaves no folder)."""
    pytest.importorskip("torch")
    import sys

    from landslide_mapper.core.loop.training_run import train_on_chips

    py = tmp_path / "python"
    py.write_text('#!/bin/sh\ncase "$*" in *" fit "*) echo "FileNotFoundError: gone"; exit 1 ;; '
                  f'esac\nexec "{sys.executable}" "$@"\n')
    py.chmod(0o755)
    monkeypatch.setenv("LANDSLIDE_MAPPER_PYTHON", str(py))
    with pytest.raises(ModelError, match="(?s)exited with code 1.*full log is .*m_run"):
        train_on_chips(chips, tmp_path / "m.onnx", device="cpu")
    assert not (tmp_path / "m.onnx").exists()
    assert "FileNotFoundError: gone" in (tmp_path / "m_run" / "output.log").read_text()
    assert not list((tmp_path / "m_run").glob("*.pt"))
