"""Pretrained encoder weights: loading, first-convolution fitting, freezing, ImageNet statistics."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from landslide_mapper.core.contract import read_contract
from training.config import build_sources, load_config
from training.models import build_model
from training.pretrained import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    imagenet_normalisation,
    load_encoder_weights,
    rgb_bands,
)

from .conftest import tiny_config

REPO = Path(__file__).resolve().parents[2]
SHARED_WEIGHTS = REPO.parent / "shared" / "pretrained" / "mobilenet_v2_imagenet.pth"
FIRST = "features.0.0.weight"  # mobilenet_v2's first convolution
SMALL = {"architecture": "unet", "encoder": "mobilenet_v2", "encoder_depth": 3,
         "decoder_channels": [16, 8, 8]}


def _torchvision_like(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights keyed like torchvision's mobilenet_v2 (``features.*`` plus a classifier)."""
    gen = torch.Generator().manual_seed(seed)
    own = build_model("unet", "mobilenet_v2", 3).encoder.state_dict()
    sd = {k: (torch.randn(v.shape, generator=gen) if v.is_floating_point() else v.clone())
          for k, v in own.items()}
    sd["classifier.1.weight"] = torch.randn(10, 1280, generator=gen)
    sd["classifier.1.bias"] = torch.zeros(10)
    return sd


def _rgb_model() -> torch.nn.Module:
    return build_model("unet", "mobilenet_v2", 3)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "weights.pth"
    torch.save(_torchvision_like(), str(path))
    return path


def _cfg(weights, bands=None, **model) -> dict:
    cfg = {"model": {"encoder": "mobilenet_v2", "encoder_weights": str(weights), **model},
           "contract": {"bands": bands} if bands else {}, "data": {}, "_base": "."}
    return cfg


def test_a_state_dict_file_loads_into_the_encoder(weights_file, tmp_path):
    src = torch.load(weights_file, weights_only=True)
    model = build_model("unet", "mobilenet_v2", 3)
    label = load_encoder_weights(model, _cfg(weights_file), 3)
    for key in (FIRST, "features.7.conv.1.0.weight", "features.18.1.running_var"):
        assert torch.equal(model.encoder.state_dict()[key], src[key]), key
    digest = hashlib.sha256(weights_file.read_bytes()).hexdigest()[:16]
    assert label == f"weights.pth (sha256 {digest})"
    # prefixed keys, wrapped like a full model's checkpoint, load the same way
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"model": {f"encoder.{k}": v for k, v in src.items()}, "epoch": 3}, str(wrapped))
    other = build_model("unet", "mobilenet_v2", 3)
    load_encoder_weights(other, _cfg(wrapped), 3)
    assert torch.equal(other.encoder.state_dict()["features.7.conv.1.0.weight"],
                       src["features.7.conv.1.0.weight"])


def test_a_wrong_key_fails_naming_the_file_and_the_key(tmp_path):
    sd = _torchvision_like()
    sd["features.3.conv.1.1.wieght"] = sd.pop("features.3.conv.1.1.weight")
    torch.save(sd, str(tmp_path / "renamed.pth"))
    with pytest.raises(ValueError) as err:
        load_encoder_weights(_rgb_model(), _cfg(tmp_path / "renamed.pth"), 3)
    msg = str(err.value)
    assert "renamed.pth" in msg and "features.3.conv.1.1.weight" in msg and "\n" not in msg
    assert "features.3.conv.1.1.wieght" in msg  # the file's key that matched nothing


def test_a_wrong_shape_fails_naming_the_key_and_shapes(tmp_path):
    sd = _torchvision_like()
    sd["features.2.conv.0.0.weight"] = torch.zeros(8, 16, 1, 1)
    torch.save(sd, str(tmp_path / "shapes.pth"))
    with pytest.raises(ValueError, match=r"shapes.pth.*features.2.conv.0.0.weight \(8, 16, 1, 1\)"
                       r" \(encoder: \(96, 16, 1, 1\)\)"):
        load_encoder_weights(_rgb_model(), _cfg(tmp_path / "shapes.pth"), 3)


def test_the_first_convolution_of_a_14_band_model(weights_file):
    bands = load_config("sentinel2-l4s")["contract"]["bands"]
    cfg = _cfg(weights_file, bands)
    assert rgb_bands(cfg, 14) == {"red": 3, "green": 2, "blue": 1}  # B4, B3, B2
    model = build_model("unet", "mobilenet_v2", 14)
    load_encoder_weights(model, cfg, 14)
    w = model.encoder.state_dict()[FIRST]
    src = torch.load(weights_file, weights_only=True)[FIRST]
    k = 3 / 14
    assert w.shape == (32, 14, 3, 3)
    for band, colour in ((3, 0), (2, 1), (1, 2)):
        assert torch.allclose(w[:, band], src[:, colour] * k)
    for band in (0, *range(4, 14)):
        assert torch.allclose(w[:, band], src.mean(dim=1) * k)


def test_three_bands_take_the_kernels_in_their_own_order(weights_file):
    src = torch.load(weights_file, weights_only=True)[FIRST]
    rgb = build_model("unet", "mobilenet_v2", 3)
    bands = [{"name": n} for n in ("red", "green", "blue")]
    load_encoder_weights(rgb, _cfg(weights_file, bands), 3)
    assert torch.equal(rgb.encoder.state_dict()[FIRST], src)
    bgr = build_model("unet", "mobilenet_v2", 3)
    bands = [{"name": "b", "aliases": ["B02"]}, {"name": "g", "aliases": ["B03"]},
             {"name": "r", "aliases": ["sentinel2:B04"]}]
    load_encoder_weights(bgr, _cfg(weights_file, bands), 3)
    assert torch.allclose(bgr.encoder.state_dict()[FIRST], src[:, [2, 1, 0]])


def test_imagenet_from_smp_goes_through_the_same_loading(monkeypatch):
    import segmentation_models_pytorch.encoders as encoders

    sd = _torchvision_like(seed=3)

    class Fetched:
        def state_dict(self):
            return sd

    seen = {}

    def fake_get_encoder(name, **kwargs):
        seen.update(kwargs, name=name)
        return Fetched()

    monkeypatch.setattr(encoders, "get_encoder", fake_get_encoder)
    model = build_model("unet", "mobilenet_v2", 3)
    assert load_encoder_weights(model, _cfg("imagenet"), 3) == "imagenet"
    assert seen["weights"] == "imagenet" and seen["name"] == "mobilenet_v2"
    assert torch.equal(model.encoder.state_dict()[FIRST], sd[FIRST])


def test_freeze_encoder_trains_the_decoder_only(tiles, weights_file):
    from training.loop import _Progress, _train_epoch
    from training.trainer import build_trainer

    model = dict(SMALL, encoder_weights=str(weights_file), freeze_encoder=True)
    cfg = load_config(tiny_config(tiles, model=model, max_steps_per_epoch=2, epochs=1))
    t, mean, std = build_trainer(cfg, init_weights=True)
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    _train_epoch(t, _Progress(mean, std), 0, progress=False)
    after = t.model.state_dict()
    enc = [k for k in before if k.startswith("encoder.")]
    dec = [k for k in before if k.startswith("decoder.") and before[k].is_floating_point()]
    assert enc and all(torch.equal(before[k], after[k]) for k in enc)  # incl. BN statistics
    assert any(not torch.equal(before[k], after[k]) for k in dec)
    assert not t.model.encoder.training and t.model.decoder.training
    assert all(not p.requires_grad for p in t.model.encoder.parameters())


def test_imagenet_statistics_fold_into_the_exported_contract(tiles, weights_file, tmp_path):
    from training.export import export_onnx
    from training.loop import fit

    cfg = tiny_config(tiles, model=dict(SMALL, encoder_weights=str(weights_file)),
                      epochs=1, max_steps_per_epoch=1)
    cfg["contract"]["bands"] = [{"name": n, "scale": 0.15, "offset": -0.5}
                                for n in ("red", "green", "blue")]
    run = fit(cfg, run_dir=tmp_path / "run", progress=False)
    contract, _ = export_onnx(run / "best.pt", tmp_path / "m.onnx")
    back = read_contract(tmp_path / "m.onnx")
    assert back == contract
    raw = np.array([0.0, 700.0, 1800.0, 9000.0])
    for band, m, s in zip(back.bands, IMAGENET_MEAN, IMAGENET_STD):
        x01 = (raw * 0.15 - 0.5) / 255.0  # the 8-bit pixel the scale/offset make, in 0..1
        assert band.normalize(raw) == pytest.approx((x01 - m) / s, rel=1e-9, abs=1e-9)
    digest = hashlib.sha256(weights_file.read_bytes()).hexdigest()[:16]
    assert back.training["encoder_weights"] == f"weights.pth (sha256 {digest})"
    assert "ImageNet" in back.training["input_statistics"]
    assert "encoder_weights" not in back.training["architecture_options"]


def test_without_pretrained_weights_the_statistics_are_the_data_s(tiles):
    from training.data.dataset import band_statistics
    from training.trainer import _normalisation

    cfg = load_config(tiny_config(tiles))
    pairs = build_sources(cfg).train
    assert _normalisation(cfg, pairs) == band_statistics(pairs, seed=int(cfg["seed"]))
    cfg["model"]["encoder_weights"] = "imagenet"  # auto: ImageNet's for red/green/blue
    mean, std = _normalisation(cfg, pairs)
    assert mean == pytest.approx([255 * m for m in IMAGENET_MEAN])
    assert std == pytest.approx([255 * s for s in IMAGENET_STD])


def test_14_bands_keep_their_own_statistics_except_red_green_blue():
    cfg = load_config("sentinel2-l4s-imagenet")
    stats = ([float(i) for i in range(14)], [float(i + 1) for i in range(14)])
    mean, std = imagenet_normalisation(cfg, stats, 14)
    white = 255 / 67.81
    for band, colour in ((3, 0), (2, 1), (1, 2)):
        assert mean[band] == pytest.approx(IMAGENET_MEAN[colour] * white, rel=1e-4)
        assert std[band] == pytest.approx(IMAGENET_STD[colour] * white, rel=1e-4)
    others = [0, *range(4, 14)]
    assert [mean[i] for i in others] == [stats[0][i] for i in others]
    assert [std[i] for i in others] == [stats[1][i] for i in others]


def test_a_relative_weights_path_is_taken_from_the_naming_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "sub" / "base.yaml").write_text(yaml.safe_dump(
        {"name": "b", "model": {"encoder": "mobilenet_v2", "encoder_weights": "../w.pth"}}))
    (tmp_path / "other" / "child.yaml").write_text(yaml.safe_dump(
        {"extends": "../sub/base.yaml", "name": "c"}))
    for path in (tmp_path / "sub" / "base.yaml", tmp_path / "other" / "child.yaml"):
        weights = load_config(path)["model"]["encoder_weights"]
        assert Path(weights) == (tmp_path / "w.pth").resolve()
    cfg = {"model": {"encoder": "mobilenet_v2", "encoder_weights": "missing.pth"}, "_base": "."}
    with pytest.raises(FileNotFoundError, match="missing.pth: file not found"):
        load_encoder_weights(build_model("unet", "mobilenet_v2", 3), cfg, 3)


def test_the_imagenet_configs_extend_the_bundled_ones():
    for name in ("sentinel2-rgb", "aerial-rgb", "sentinel2-l4s"):
        base, new = load_config(name), load_config(f"{name}-imagenet")
        # same data and hold-out, less the false-colour nepal_rgb tiles for the true-colour model
        dropped = ["nepal_rgb"] if name == "aerial-rgb" else []
        assert new["data"]["sources"] == [s for s in base["data"]["sources"]
                                          if s["name"] not in dropped]
        assert new["contract"]["bands"] == base["contract"]["bands"]
        assert Path(new["model"]["encoder_weights"]) == SHARED_WEIGHTS.resolve()
        assert new["data"]["normalization"] == "imagenet"
    assert not load_config("sentinel2-rgb-imagenet")["init_from"]
    # the 14-band model starts from the ImageNet-started true-colour model, as sentinel2-l4s
    # starts from sentinel2-rgb
    init = load_config("sentinel2-l4s-imagenet")["init_from"]
    assert init["checkpoint"] == "runs/sentinel2-rgb-imagenet/bundled/best.pt"
    assert init["channels"] == load_config("sentinel2-l4s")["init_from"]["channels"]


@pytest.mark.realdata
def test_the_shared_imagenet_weights_load_into_smp_mobilenet_v2_unet():
    if not SHARED_WEIGHTS.is_file():
        pytest.skip(f"pretrained weights not available: {SHARED_WEIGHTS}")
    src = torch.load(SHARED_WEIGHTS, weights_only=True)
    cfg = load_config("sentinel2-rgb-imagenet")
    model = build_model("unet", "mobilenet_v2", 3, decoder_channels=[128, 64, 32, 16, 16])
    label = load_encoder_weights(model, cfg, 3)
    assert label.startswith("mobilenet_v2_imagenet.pth (sha256 ba6234e5")
    own = model.encoder.state_dict()
    assert len([k for k in src if k.startswith("features.")]) == len(own) == 312
    assert all(torch.equal(own[k], src[k]) for k in own)
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(model(torch.zeros(1, 3, 64, 64))).all()
