"""The model contract: validation, round trip through ONNX metadata, clear errors."""

from __future__ import annotations

import json

import onnx
import pytest

from landslide_mapper.core.contract import (
    METADATA_KEY,
    BandSpec,
    check_tiling,
    read_contract,
    validate,
    write_contract,
)
from landslide_mapper.core.errors import InputError, ModelError
from landslide_mapper.core.models.dummy import build_dummy_model
from landslide_mapper.core.models.registry import bundled_models, resolve_model


def _doc(**changes):
    doc = {
        "schema_version": 1,
        "name": "m",
        "title": "M",
        "bands": [{"name": "red", "scale": 0.5, "offset": 1.0, "mean": 2.0, "std": 4.0}],
        "pixel_size_m": 10,
        "tile_size": 64,
        "overlap": 16,
    }
    doc.update(changes)
    return doc


def test_band_normalization_is_the_documented_affine_formula():
    band = validate(_doc()).bands[0]
    # (x * 0.5 + 1 - 2) / 4 at x = 10 -> 1.0
    assert band.normalize(10.0) == pytest.approx(1.0)


def test_round_trip_through_onnx_metadata(tmp_path):
    path = tmp_path / "m.onnx"
    contract = build_dummy_model(path, bands=["red", "green"], weights=[1, 2], training={"epochs": 3})
    again = read_contract(path)
    assert again == contract
    assert again.training["epochs"] == 3
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(props[METADATA_KEY])["schema"] == "landslide_mapper.model"


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"schema_version": 2}, "'schema_version' is 2"),
        ({"tile_size": 100}, "multiple of 32, found 100"),
        ({"overlap": 64}, "less than the tile size 64"),
        ({"threshold": 1.5}, "between 0 and 1, found 1.5"),
        ({"bands": []}, "'bands' must be a non-empty list"),
        ({"bands": [{"name": "a"}, {"name": "a"}]}, "found a twice"),
        ({"bands": [{"name": "a", "std": 0}]}, "bands[0].std must not be 0"),
        ({"output_kind": "relu"}, "found 'relu'"),
        ({"pixel_size_m": "ten"}, "'pixel_size_m' must be a number"),
    ],
)
def test_invalid_contracts_name_the_problem(changes, fragment):
    with pytest.raises(ModelError) as err:
        validate(_doc(**changes))
    assert fragment in str(err.value)


def test_missing_keys_are_all_listed():
    doc = _doc()
    del doc["pixel_size_m"], doc["bands"]
    with pytest.raises(ModelError) as err:
        validate(doc)
    assert "'pixel_size_m' is missing" in str(err.value)
    assert "'bands' is missing" in str(err.value)


def test_onnx_without_contract_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "plain.onnx"
    build_dummy_model(path)
    model = onnx.load(str(path))
    del model.metadata_props[:]
    onnx.save_model(model, str(path))
    with pytest.raises(ModelError) as err:
        read_contract(path)
    assert "has no Landslide Mapper contract" in str(err.value)
    assert "landslide-mapper contract" in str(err.value)


def test_corrupt_onnx_is_refused(tmp_path):
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x08\x07this is not a protobuf" * 10)
    with pytest.raises(ModelError, match="cannot be read as ONNX"):
        read_contract(path)


def test_write_contract_into_third_party_model(tmp_path):
    src = tmp_path / "third_party.onnx"
    build_dummy_model(src, bands=["a", "b", "c"])
    model = onnx.load(str(src))
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = "author", "someone"
    onnx.save_model(model, str(src))
    out = tmp_path / "with_contract.onnx"
    write_contract(src, _doc(name="tp", bands=["x", "y", "z"]), out)
    assert read_contract(out).name == "tp"
    kept = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert kept["author"] == "someone"
    with pytest.raises(ModelError, match="takes 3 input channels but the contract lists 1"):
        write_contract(src, _doc(), tmp_path / "wrong.onnx")
    assert not (tmp_path / "wrong.onnx").exists()


def test_check_tiling():
    assert check_tiling(256, 64, raise_=False) == []
    with pytest.raises(InputError, match="try 96 or 128"):
        check_tiling(100, 10)
    with pytest.raises(InputError, match="found 256"):
        check_tiling(256, 256)


def test_resolve_model_by_path_and_unknown_name(tmp_path):
    path = tmp_path / "m.onnx"
    build_dummy_model(path)
    assert resolve_model(str(path)) == path
    with pytest.raises(ModelError, match="not a bundled model"):
        resolve_model("no-such-model")
    with pytest.raises(ModelError, match="file not found"):
        resolve_model(str(tmp_path / "missing.onnx"))


def test_every_bundled_model_has_a_valid_contract_and_a_card():
    for model in bundled_models():
        contract = model.contract
        assert contract.name == model.name
        assert model.card_path is not None, f"{model.name} has no model card"
        assert all(isinstance(b, BandSpec) for b in contract.bands)
