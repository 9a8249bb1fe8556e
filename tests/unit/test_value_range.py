"""Raw values against the model's expected range: refused with what was found, or rescaled.

Dummy linear models make the outputs exact: a raster in other units, rescaled, must give the same
probabilities as the same scene in the model's own units.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from landslide_mapper.core.contract import read_contract, validate, write_contract
from landslide_mapper.core.errors import InputError, ModelError
from landslide_mapper.core.mapping.engine import map_landslides
from landslide_mapper.core.models.dummy import build_dummy_model
from landslide_mapper.core.models.registry import resolve_model
from tests.support import make_raster, shared_data

RGB = ("red", "green", "blue")


def _model(path: Path, low: float, high: float, dtype: str, weight: float) -> Path:
    bands = [{"name": n, "value_range": [low, high], "dtype": dtype} for n in RGB]
    build_dummy_model(path, bands=bands, weights=[weight, 0.0, 0.0], bias=-2.0)
    return path


def _scene(seed: int = 0) -> np.ndarray:
    """Sentinel-2-like digital numbers (reflectance x 10000), 3 x 96 x 96, float64."""
    rng = np.random.default_rng(seed)
    dn = rng.uniform(300, 2500, (3, 96, 96))
    dn[:, 30:60, 30:60] = 3500.0  # a bright scar
    return dn


def _prob(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


def test_contract_states_value_range_and_still_reads_version_1(tmp_path: Path):
    doc = {"schema_version": 1, "name": "m", "title": "M", "pixel_size_m": 10.0,
           "tile_size": 64, "overlap": 16, "bands": ["red"]}
    plain = validate(doc)
    assert plain.bands[0].value_range is None and plain.bands[0].dtype == ""
    assert "value_range" not in plain.to_json()  # older readers see the same document
    ranged = validate(dict(doc, bands=[{"name": "red", "value_range": [0, 255], "dtype": "uint8"}]))
    assert ranged.bands[0].value_range == (0.0, 255.0) and ranged.bands[0].dtype == "uint8"
    assert validate(json.loads(ranged.to_json())) == ranged
    with pytest.raises(ModelError, match=r"bands\[0\].value_range must be \[low, high\].*"
                                         r"bands\[0\].dtype must be one of"):
        validate(dict(doc, bands=[{"name": "red", "value_range": [5, 1], "dtype": "uint12"}]))
    m = tmp_path / "m.onnx"
    build_dummy_model(m, bands=["red"], weights=[1.0])
    write_contract(m, ranged.with_updates(tile_size=64))
    assert read_contract(m).bands[0].value_range == (0.0, 255.0)


@pytest.mark.parametrize("name, low, high, dtype", [
    ("sentinel2-rgb", 0.0, 10000.0, "uint16"),
    ("aerial-rgb", 0.0, 255.0, "uint8"),
])
def test_bundled_models_state_their_ranges(name: str, low: float, high: float, dtype: str):
    bands = read_contract(resolve_model(name)).bands
    assert all(b.value_range == (low, high) and b.dtype == dtype for b in bands)


def test_bundled_l4s_ranges_only_on_its_sentinel2_bands():
    bands = read_contract(resolve_model("sentinel2-l4s")).bands
    s2 = [b for b in bands if b.name.startswith("sentinel2:")]
    assert len(s2) == 12 and all(b.value_range == (0.0, 10000.0) for b in s2)
    assert all(b.value_range is None for b in bands if not b.name.startswith("sentinel2:"))


@pytest.mark.parametrize("kind, values, dtype, found", [
    ("0-1 reflectance", lambda dn: dn / 10000.0, "float32", "far below"),
    ("8-bit", lambda dn: np.clip(dn / 4000.0 * 255, 0, 255), "uint8", "far below"),
])
def test_sentinel2_model_refuses_then_rescales(tmp_path: Path, kind, values, dtype, found):
    model = _model(tmp_path / "s2.onnx", 0, 10000, "uint16", 0.001)
    dn = np.rint(_scene())
    good = make_raster(tmp_path / "dn.tif", dn.astype(np.uint16), descriptions=RGB)
    bad = make_raster(tmp_path / "bad.tif", values(dn).astype(dtype), descriptions=RGB)
    ok = map_landslides(good, model, probability_path=tmp_path / "p_dn.tif")
    assert not any("rescale" in m for m in ok.messages)
    with pytest.raises(InputError) as err:
        map_landslides(bad, model, probability_path=tmp_path / "p.tif")
    text = str(err.value)
    assert "\n" not in text and str(bad) in text and found in text
    assert f"found {dtype}" in text and "0..10000" in text and "--rescale" in text
    assert "1st/50th/99th percentiles red" in text
    assert not (tmp_path / "p.tif").exists()
    res = map_landslides(bad, model, probability_path=tmp_path / "p.tif", rescale=True)
    assert any("rescaled linearly from" in m and "to the model's 0..10000" in m
               for m in res.messages)
    if dtype == "float32":  # 0..1 -> 0..10000 undoes the change of units exactly
        np.testing.assert_allclose(_prob(res.probability_path), _prob(ok.probability_path),
                                   atol=1e-5)
    else:  # 8-bit 0..255 -> 0..10000: the bright scar stays the most likely landslide
        p = _prob(res.probability_path)
        assert p[30:60, 30:60].mean() > p[:30].mean()


def test_aerial_model_refuses_16_bit_then_rescales(tmp_path: Path):
    model = _model(tmp_path / "aerial.onnx", 0, 255, "uint8", 0.02)
    dn = _scene()
    bad = make_raster(tmp_path / "u16.tif", dn.astype(np.uint16), descriptions=RGB)
    with pytest.raises(InputError, match=r"far above what the model 'dummy' expects: expected "
                                         r"uint8 values 0\.\.255 .* found uint16"):
        map_landslides(bad, model, mask_path=tmp_path / "m.tif")
    res = map_landslides(bad, model, probability_path=tmp_path / "p.tif", rescale=True)
    assert any("from 0..4095" in m and "to the model's 0..255" in m for m in res.messages)
    # x' = x * 255 / 4095; logit = 0.02 * x' - 2
    expected = 1 / (1 + np.exp(-(0.02 * dn[0].astype(np.uint16) * 255 / 4095 - 2)))
    np.testing.assert_allclose(_prob(res.probability_path), expected, atol=1e-5)


def test_nodata_is_left_out_of_the_sample(tmp_path: Path):
    """A scene mostly nodata (here -9999) is judged by its valid pixels only."""
    model = _model(tmp_path / "s2.onnx", 0, 10000, "uint16", 0.001)
    dn = np.full((3, 96, 96), -9999.0, np.float32)
    dn[:, 40:56, 40:56] = _scene()[:, 40:56, 40:56]
    path = make_raster(tmp_path / "nd.tif", dn, nodata=-9999.0, descriptions=RGB)
    res = map_landslides(path, model, mask_path=tmp_path / "m.tif", rescale=True)
    assert any("already within the range" in m for m in res.messages)


@pytest.mark.realdata
def test_real_iburi_scene_maps_without_complaint(tmp_path: Path):
    """The demo scene (post-event B4, B3, B2 stacked by prepare) passes sentinel2-rgb's check."""
    from landslide_mapper.core.inputs.sentinel2 import prepare_sentinel2_stack

    folder = shared_data("sentinel2_iburi2018", "post-event")
    stack = tmp_path / "iburi.tif"
    prepare_sentinel2_stack([folder / f"download.{b}.tif" for b in ("B4", "B3", "B2")], stack,
                            bands="sentinel2-rgb")
    res = map_landslides(stack, "sentinel2-rgb", mask_path=tmp_path / "m.tif")
    assert not any("value" in m.lower() and "rescal" in m.lower() for m in res.messages)


def test_cli_map_refuses_then_rescales(tmp_path: Path):
    """``landslide-mapper map``: one line and exit 1 without --rescale; the mapping printed with."""
    from click.testing import CliRunner

    from landslide_mapper.cli.main import main

    model = _model(tmp_path / "s2.onnx", 0, 10000, "uint16", 0.001)
    bad = make_raster(tmp_path / "bad.tif", (_scene() / 10000.0).astype(np.float32),
                      descriptions=RGB)
    args = ["map", str(bad), "--model", str(model), "--mask", str(tmp_path / "m.tif")]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert "far below what the model 'dummy' expects" in refused.output
    assert not (tmp_path / "m.tif").exists()
    done = CliRunner().invoke(main, [*args, "--rescale"])
    assert done.exit_code == 0, done.output
    assert "rescaled linearly from 0..1" in done.output and (tmp_path / "m.tif").is_file()
