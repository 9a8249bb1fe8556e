"""Tiny, seeded synthetic data for the training tests (written to a temporary folder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

TINY_MODEL = {
    "architecture": "unet",
    "encoder": "resnet18",
    "encoder_depth": 3,
    "decoder_channels": [32, 16, 8],
}


def write_tiles(
    root: Path, n: int = 6, size: int = 64, seed: int = 0, mask_value: int = 255
) -> Path:
    """``root/images/tile_K.png`` (RGB) + ``root/masks/tile_K.png``: a bright square on noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for k in range(n):
        img = rng.integers(20, 90, size=(size, size, 3)).astype(np.uint8)
        mask = np.zeros((size, size), np.uint8)
        if k % 3:  # every third tile has no landslide
            r, c = rng.integers(0, size - 24, size=2)
            img[r : r + 20, c : c + 20] = rng.integers(180, 250, size=(20, 20, 3))
            mask[r : r + 20, c : c + 20] = mask_value
        Image.fromarray(img).save(root / "images" / f"tile_{k}.png")
        Image.fromarray(mask).save(root / "masks" / f"tile_{k}.png")
    return root


def tiny_config(root: Path, **changes) -> dict:
    cfg = {
        "name": "tiny",
        "seed": 1,
        "model": dict(TINY_MODEL),
        "data": {
            "tile_size": 64,
            "sources": [
                {
                    "name": "synthetic",
                    "format": "tiles",
                    "root": str(root),
                    "label": {"threshold": 127},
                    "holdout": {"fraction": 0.34, "seed": 0},
                }
            ],
        },
        "augment": {"flips": True, "rotate90": True},
        "loss": {"name": "bce_dice"},
        "optimizer": {"name": "adam", "lr": 0.01},
        "epochs": 2,
        "batch_size": 2,
        "eval_batch_size": 4,
        "threads": 1,
        "contract": {
            "title": "Tiny test model",
            "pixel_size_m": 1.0,
            "overlap": 16,
            "bands": [{"name": "red"}, {"name": "green"}, {"name": "blue"}],
        },
    }
    cfg.update(changes)
    return cfg


@pytest.fixture(scope="session")
def tiles(tmp_path_factory) -> Path:
    return write_tiles(tmp_path_factory.mktemp("tiles"))


@pytest.fixture(scope="session")
def trained_run(tiles, tmp_path_factory) -> Path:
    """One tiny two-epoch run, shared by the tests that need a checkpoint."""
    from training.loop import fit

    return fit(tiny_config(tiles), run_dir=tmp_path_factory.mktemp("run"), progress=False)
