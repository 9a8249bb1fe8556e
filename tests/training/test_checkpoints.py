"""Checkpoints hold plain values and are read without running code: a crafted file is refused."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from training.checkpoints import load_checkpoint, load_plain, save_checkpoint
from training.cli import main as train_cli

from .conftest import tiny_config


class _TouchOnLoad:
    """Unpickling this calls ``Path.touch(marker)``: what a malicious checkpoint could do."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def _craft(path: pathlib.Path, marker: pathlib.Path, like: dict | None = None) -> pathlib.Path:
    """A checkpoint shaped like a real one whose config hides a code-running object."""
    state = dict(like or {"model": {"w": torch.zeros(1)}, "mean": [0.0], "std": [1.0]})
    state["config"] = {"model": {}, "data": {}, "payload": _TouchOnLoad(marker)}
    torch.save(state, str(path))
    return path


@pytest.fixture
def crafted(tmp_path, trained_run):
    """(crafted.pt, marker): a real checkpoint's weights plus the payload."""
    marker = tmp_path / "MARKER"
    real = torch.load(trained_run / "last.pt", weights_only=True)
    path = _craft(tmp_path / "crafted.pt", marker, real)
    # the payload is real: an unsafe load runs it (here, on a copy pointing elsewhere)
    probe = tmp_path / "PROBE"
    torch.load(str(_craft(tmp_path / "probe.pt", probe)), weights_only=False)
    assert probe.exists()
    return path, marker


def _write_config(tmp_path, tiles, **changes) -> pathlib.Path:
    cfg = tiny_config(tiles, epochs=1, max_steps_per_epoch=1, **changes)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def _commands(tmp_path, tiles, ckpt):
    out = tmp_path / "out.onnx"
    return {
        "evaluate": ["evaluate", "--model", str(ckpt), "--data", str(tiles),
                     "--label", "threshold=127"],
        "export": ["export", "--checkpoint", str(ckpt), "--out", str(out)],
        "fine-tune": ["fit", "--config",
                      str(_write_config(tmp_path, tiles, init_from={"checkpoint": str(ckpt)})),
                      "--run-dir", str(tmp_path / "run"), "--quiet"],
        "resume": ["fit", "--config", str(_write_config(tmp_path, tiles)), "--resume", str(ckpt),
                   "--run-dir", str(tmp_path / "run"), "--quiet"],
        "encoder weights": ["fit", "--config",
                            str(_write_config(tmp_path, tiles, model={
                                "architecture": "unet", "encoder": "resnet18", "encoder_depth": 3,
                                "decoder_channels": [32, 16, 8], "encoder_weights": str(ckpt)})),
                            "--run-dir", str(tmp_path / "run"), "--quiet"],
    }


@pytest.mark.parametrize(
    "command", ["evaluate", "export", "fine-tune", "resume", "encoder weights"]
)
def test_a_crafted_checkpoint_is_refused_by_every_command(command, crafted, tiles, tmp_path):
    ckpt, marker = crafted
    args = _commands(tmp_path, tiles, ckpt)[command]
    done = CliRunner().invoke(train_cli, args)
    assert done.exit_code == 1, done.output
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.output, done.stderr
    assert str(ckpt) in lines[0] and "pickled Python objects" in lines[0]
    assert not marker.exists()
    assert not (tmp_path / "out.onnx").exists() and not (tmp_path / "run").exists()


def test_an_old_checkpoint_with_python_objects_names_what_it_holds(tmp_path, trained_run):
    real = torch.load(trained_run / "best.pt", weights_only=True)
    real["config"]["config_file"] = pathlib.Path("old.yaml")  # what older versions could hold
    torch.save(real, str(tmp_path / "old.pt"))
    with pytest.raises(ValueError, match=r"old\.pt: expected plain tensors.*pathlib"):
        load_checkpoint(tmp_path / "old.pt")


def test_structure_is_checked(tmp_path, trained_run):
    real = torch.load(trained_run / "best.pt", weights_only=True)
    for drop, need, message in (("config", "model", "no 'config'"),
                                ("optimizer", "resume", "no 'optimizer'")):
        broken = {k: v for k, v in real.items() if k != drop}
        torch.save(broken, str(tmp_path / "broken.pt"))
        expected = f"broken.pt: expected a training checkpoint.*{message}"
        with pytest.raises(ValueError, match=expected):
            load_checkpoint(tmp_path / "broken.pt", need)
    torch.save({**real, "model": {"w": [1, 2]}}, str(tmp_path / "bad.pt"))
    with pytest.raises(ValueError, match="not named tensors"):
        load_checkpoint(tmp_path / "bad.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"junk.pt: expected .*found content that is not plain"):
        load_plain(tmp_path / "junk.pt")
    assert load_checkpoint(trained_run / "best.pt", "resume")["epoch"] >= 0


def test_saved_values_are_plain(tmp_path):
    state = {"model": {"w": torch.ones(2)}, "config": {"model": {}, "data": {}},
             "mean": [np.float32(1.5)], "std": [np.float64(2.0)], "n": np.int64(3),
             "where": pathlib.Path("a/b"), "betas": (0.9, 0.999)}
    save_checkpoint(state, tmp_path / "c.pt")
    back = load_checkpoint(tmp_path / "c.pt")  # weights_only=True inside
    assert back["mean"] == [1.5] and type(back["mean"][0]) is float
    assert back["n"] == 3 and type(back["n"]) is int and back["where"] == "a/b"
    assert back["betas"] == (0.9, 0.999) and torch.equal(back["model"]["w"], torch.ones(2))

    @dataclass
    class Thing:
        x: int = 1

    with pytest.raises(TypeError, match=r"\['config'\]\['x'\].*Thing"):
        save_checkpoint({**state, "config": {"x": Thing()}}, tmp_path / "d.pt")
    assert not (tmp_path / "d.pt").exists()
