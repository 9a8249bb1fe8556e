"""The 8-bit Landslide4Sense renderings: how they were made; the bundled config reproduces it.

Each PNG channel equals floor(k * v) where v is the L4S value of B4/B3/B2 (raw DN / per-band
vector) and k = 255 / max over the patch's three bands. The sentinel2-rgb contract maps raw DN
with a fixed k, so its per-band scale times the band's vector must be the same k for all three.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest

from tests.support import shared_data
from training.config import load_config

L4S_VECTOR = {"red": 445.17289745, "green": 663.41636217, "blue": 824.63171476}


@pytest.mark.realdata
def test_png_is_patch_stretched_floor_of_l4s_values():
    import h5py
    from PIL import Image

    rgb = shared_data("landslide4sense_rgb")
    h5 = shared_data("landslide4sense_h5")
    by_id = {
        r["l4s_traindata_image"].split("/")[-1]: r for r in csv.DictReader(open(rgb / "ID_MAP.csv"))
    }
    matched = 0
    for path in sorted((h5 / "images").glob("*.h5")):
        if path.name not in by_id:
            continue
        with h5py.File(path) as f:
            v = np.asarray(f["img"])[..., [3, 2, 1]]  # B4, B3, B2
        png = np.asarray(Image.open(rgb / by_id[path.name]["png_image"]))[..., :3].astype(float)
        k = 255.0 / v.max()
        expected = np.floor(v * k)
        assert np.mean(np.abs(png - expected) <= 1) > 0.99, path.name
        matched += 1
    assert matched >= 5


def test_contract_scales_share_one_stretch():
    cfg = load_config("sentinel2-rgb")
    ks = [b["scale"] * L4S_VECTOR[b["name"]] for b in cfg["contract"]["bands"]]
    assert ks == pytest.approx([ks[0]] * 3, rel=1e-3)
    assert 45 < ks[0] < 110  # within the range of per-patch stretches
    assert all(b["offset"] == -0.5 for b in cfg["contract"]["bands"])  # floor() ~ round(x - 0.5)
