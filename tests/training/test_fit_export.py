"""A few CPU steps on tiny data: run folder, resume, export, onnxruntime parity, evaluate."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from landslide_mapper.core.contract import read_contract
from training.config import build_sources, load_config
from training.evaluate import evaluate
from training.export import export_onnx
from training.loop import fit, model_from_checkpoint
from training.metrics import scores

from .conftest import tiny_config


def test_run_folder_has_checkpoints_logs_and_summary(trained_run):
    for name in ("config.yaml", "log.csv", "last.pt", "best.pt", "summary.json"):
        assert (trained_run / name).is_file(), name
    rows = list(csv.DictReader(open(trained_run / "log.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    summary = json.loads((trained_run / "summary.json").read_text())
    assert set(summary["scores"]) == {"synthetic", "all"}
    assert summary["scores"]["synthetic"]["images"] == 2  # round(0.34 * 6) held out


def test_resume_continues_from_the_last_epoch(tiles, trained_run, tmp_path):
    import shutil

    run = tmp_path / "resumed"
    shutil.copytree(trained_run, run)
    fit(tiny_config(tiles, epochs=3), resume=run / "last.pt", progress=False)
    rows = list(csv.DictReader(open(run / "log.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 2 and len(ckpt["history"]) == 3


def test_same_seed_same_weights(tiles, tmp_path):
    cfg = tiny_config(tiles, epochs=1, max_steps_per_epoch=2)
    a = fit(cfg, run_dir=tmp_path / "a", progress=False)
    b = fit(cfg, run_dir=tmp_path / "b", progress=False)
    sa = torch.load(a / "last.pt", weights_only=True)["model"]
    sb = torch.load(b / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_export_writes_a_valid_contract_and_matches_torch(trained_run, tmp_path):
    out = tmp_path / "tiny.onnx"
    contract, err = export_onnx(trained_run / "best.pt", out)
    assert err < 1e-4
    back = read_contract(out)
    assert back == contract
    ckpt = torch.load(trained_run / "best.pt", weights_only=True)
    assert [b.name for b in back.bands] == ["red", "green", "blue"]
    assert [b.mean for b in back.bands] == pytest.approx(ckpt["mean"])
    assert back.tile_size == 64 and back.output_kind == "sigmoid_logit"
    assert back.training["hardware"] != "not recorded" and back.training["epochs"] == 2
    assert back.metrics["synthetic"]["f1"] == pytest.approx(ckpt["scores"]["synthetic"]["f1"])
    assert back.training["split"]["synthetic"].startswith("held out 2 of 6")

    # onnxruntime on a tile larger than the training tile (dynamic height/width)
    import onnxruntime as ort

    model, _ = model_from_checkpoint(trained_run / "best.pt")
    model.eval()
    x = np.random.default_rng(5).standard_normal((1, 3, 96, 160)).astype(np.float32)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert got.shape == (1, 1, 96, 160)
    assert np.abs(got - ref).max() < 1e-3


def test_evaluate_onnx_equals_torch_and_independent_count(trained_run, tiles, tmp_path):
    out = tmp_path / "tiny.onnx"
    export_onnx(trained_run / "best.pt", out)
    cfg = load_config(tiny_config(tiles))
    val = list(build_sources(cfg).val.items())
    by_onnx = evaluate(out, val)["synthetic"]
    by_torch = evaluate(str(trained_run / "best.pt"), val)["synthetic"]
    for key in ("tp", "fp", "fn", "tn"):
        assert (
            abs(by_onnx[key] - by_torch[key]) <= 2
        )  # parity: at most a few pixels at the threshold
    # independent: run torch by hand on the held-out tiles and count with numpy
    from training.data.readers import read_pair

    model, ckpt = model_from_checkpoint(trained_run / "best.pt")
    model.eval()
    mean = np.asarray(ckpt["mean"], np.float32)[:, None, None]
    std = np.asarray(ckpt["std"], np.float32)[:, None, None]
    preds, truths = [], []
    for pair in val[0][1]:
        img, mask = read_pair(pair)
        with torch.no_grad():
            p = torch.sigmoid(model(torch.from_numpy((img - mean) / std)[None]))[0, 0].numpy()
        preds.append(p >= 0.5)
        truths.append(mask == 1)
    expected = scores(np.stack(preds), np.stack(truths))
    assert by_torch["f1"] == pytest.approx(expected["f1"])
    assert by_torch["iou_dataset"] == pytest.approx(expected["iou_dataset"])


def test_cli_evaluate_prints_table_and_writes_json(trained_run, tiles, tmp_path):
    out = tmp_path / "tiny.onnx"
    export_onnx(trained_run / "best.pt", out)
    js = tmp_path / "scores.json"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "training.cli",
            "evaluate",
            "--model",
            str(out),
            "--data",
            str(tiles),
            "--format",
            "tiles",
            "--label",
            "threshold=127",
            "--json",
            str(js),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "iou_per_image" in res.stdout
    doc = json.loads(js.read_text())
    (scores_,) = doc.values()
    for key in ("precision", "recall", "f1", "accuracy", "iou_dataset", "iou_per_image"):
        assert 0.0 <= scores_[key] <= 1.0
    assert scores_["images"] == 6


def test_cli_reports_a_missing_folder_cleanly(tmp_path):
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "training.cli",
            "evaluate",
            "--model",
            str(tmp_path / "nope.onnx"),
            "--data",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 1 and "nope.onnx" in res.stderr and "Traceback" not in res.stderr


def test_raw_units_fold_the_contract_scaling_into_mean_and_std():
    from landslide_mapper.core.contract import BandSpec
    from training.evaluate import LoadedModel

    bands = [
        BandSpec("a", scale=0.5, offset=-0.5, mean=10.0, std=4.0),
        BandSpec("b", scale=-2.0, offset=3.0, mean=1.0, std=0.5),
    ]
    loaded = LoadedModel(
        None,
        [b.mean for b in bands],
        [b.std for b in bands],
        [b.scale for b in bands],
        [b.offset for b in bands],
        0.5,
        "",
    )
    stored = np.array([3.0, 7.0])
    factor = [2.0, 0.1]  # raw = stored * factor
    mean, std = loaded.normalisation("raw", factor)
    got = (stored - np.array(mean)) / np.array(std)
    expected = [b.normalize(x * f) for b, x, f in zip(bands, stored, factor)]
    assert got == pytest.approx(expected)
    assert loaded.normalisation("training") == ([10.0, 1.0], [4.0, 0.5])


@pytest.mark.realdata
def test_l4s_raw_units_equal_training_units_for_an_l4s_scaled_contract(tmp_path):
    """A model whose contract scale is 1 / L4S vector sees the same input either way."""
    from landslide_mapper.core.models.dummy import build_dummy_model
    from tests.support import shared_data
    from training.data.readers import L4S_VECTOR

    root = shared_data("landslide4sense_h5")
    bands = [
        {"name": f"b{i}", "scale": 1.0 / v, "mean": 1.0, "std": 0.5}
        for i, v in enumerate(L4S_VECTOR[:3])
    ]
    path = tmp_path / "l4s_dummy.onnx"
    build_dummy_model(
        path, kind="linear", bands=bands, weights=[1.0, -0.5, 0.7], bias=-0.2, tile_size=128
    )
    a = evaluate(
        path, root, fmt="l4s-h5", units="training", options={"split": "", "channels": [0, 1, 2]}
    )
    b = evaluate(
        path, root, fmt="l4s-h5", units="raw", options={"split": "", "channels": [0, 1, 2]}
    )
    (sa,), (sb,) = a.values(), b.values()
    assert sa["images"] == 21
    for key in ("tp", "fp", "fn", "tn"):
        assert abs(sa[key] - sb[key]) <= 3  # float rounding at the threshold only
    assert (
        0 < sa["tp"] + sa["fp"]
    )  # the dummy predicts something, so the comparison means something


def test_transfer_from_an_rgb_checkpoint_maps_channels(trained_run, tiles):
    from training.config import load_config
    from training.loop import make_model, transfer_weights

    cfg = load_config(tiny_config(tiles))
    model = make_model(cfg, 5)
    loaded = transfer_weights(model, trained_run / "best.pt", [(4, 0), (2, 1)])
    src = torch.load(trained_run / "best.pt", weights_only=True)["model"]
    first = next(k for k, v in src.items() if v.dim() == 4)  # the first convolution
    w = model.state_dict()[first]
    assert first in loaded and w.shape[1] == 5
    assert torch.equal(w[:, 4], src[first][:, 0]) and torch.equal(w[:, 2], src[first][:, 1])
    assert float(w[:, [0, 1, 3]].abs().sum()) == 0.0
    later = [k for k in src if k != first and src[k].shape == model.state_dict()[k].shape]
    assert all(torch.equal(model.state_dict()[k], src[k]) for k in later)


def test_missing_init_checkpoint_is_an_error_unless_optional(tiles, tmp_path):
    cfg = tiny_config(tiles, epochs=1, max_steps_per_epoch=1)
    cfg["init_from"] = {"checkpoint": str(tmp_path / "none.pt")}
    with pytest.raises(FileNotFoundError, match="none.pt"):
        fit(cfg, run_dir=tmp_path / "a", progress=False)
    cfg["init_from"]["required"] = False
    assert (fit(cfg, run_dir=tmp_path / "b", progress=False) / "best.pt").is_file()
