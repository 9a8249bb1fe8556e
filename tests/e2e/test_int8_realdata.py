"""The bundled int8 model maps a real scene like its float source.

The 2018 Iburi post-event scene (B4, B3, B2 stacked by ``prepare``) is mapped with the bundled
``sentinel2-rgb`` (int8) and with the float model it was made from (recovered from the git
history by the digest its contract records). Stated tolerance: the masks agree on at least 99.5 %
of the scored pixels, the landslide pixel counts differ by at most 5 %, and the mean probability
difference is below 0.01 (measured: 99.87 %, +2.3 %, 0.0015). Held-out F1 of both is in the
model card.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from landslide_mapper.core.contract import read_contract
from landslide_mapper.core.inputs.sentinel2 import prepare_sentinel2_stack
from landslide_mapper.core.mapping.engine import map_landslides
from landslide_mapper.core.models.registry import resolve_model
from scripts.float_model import float_source
from tests.support import shared_data

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

MASK_AGREEMENT = 0.995
LANDSLIDE_PIXELS_RTOL = 0.05
MEAN_PROBABILITY_DIFF = 0.01


def test_int8_map_agrees_with_float_on_iburi(tmp_path):
    folder = shared_data("sentinel2_iburi2018", "post-event")
    int8 = resolve_model("sentinel2-rgb")
    if not read_contract(int8).quantization:
        pytest.skip("the bundled sentinel2-rgb is not an int8 model")
    fp32 = float_source(int8, tmp_path / "sentinel2-rgb-float.onnx")
    if fp32 is None:
        pytest.skip("the float source of sentinel2-rgb is not in this checkout's git history")
    raster = tmp_path / "iburi_rgb.tif"
    prepare_sentinel2_stack([folder / f"download.{b}.tif" for b in ("B4", "B3", "B2")], raster,
                            bands=["B04", "B03", "B02"])
    maps = {}
    for kind, model in (("fp32", fp32), ("int8", int8)):
        prob, mask = tmp_path / f"{kind}_prob.tif", tmp_path / f"{kind}_mask.tif"
        map_landslides(raster, model, probability_path=prob, mask_path=mask)
        with rasterio.open(prob) as p, rasterio.open(mask) as m:
            maps[kind] = (p.read(1), m.read(1))
    (p32, m32), (p8, m8) = maps["fp32"], maps["int8"]
    scored = m32 != 255
    assert np.array_equal(scored, m8 != 255)
    n32, n8 = int((m32[scored] == 1).sum()), int((m8[scored] == 1).sum())
    assert n32 > 1000  # the scene has landslides: the comparison is not between empty masks
    agreement = float((m32[scored] == m8[scored]).mean())
    assert agreement >= MASK_AGREEMENT, agreement
    assert abs(n8 - n32) <= LANDSLIDE_PIXELS_RTOL * n32, (n32, n8)
    assert float(np.abs(p32[scored] - p8[scored]).mean()) < MEAN_PROBABILITY_DIFF
