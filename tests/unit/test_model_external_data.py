"""Model files whose weights live in separate files (ONNX external data): only inside the model's
folder.

Every refused model below names a data file that exists and holds the right weights, so nothing but
the location check stands between it and a working session; the check must refuse it before onnx
or onnxruntime opens anything.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from landslide_mapper.core.contract import check_external_data, read_contract, write_contract
from landslide_mapper.core.errors import ModelError
from landslide_mapper.core.mapping.engine import map_landslides
from landslide_mapper.core.models.dummy import build_dummy_model
from landslide_mapper.core.models.quantize import graph_sha256
from landslide_mapper.core.models.runtime import create_session, open_session, run_batch
from tests.support import make_raster

WEIGHTS = [0.004, -0.003, 0.002]


def _external_model(folder: Path, location: str = "weights.bin") -> Path:
    """A dummy model saved with its initializers in ``folder / location``."""
    (folder / location).parent.mkdir(parents=True, exist_ok=True)
    inline = folder.parent / f"{folder.name}-inline.onnx"
    build_dummy_model(inline, weights=WEIGHTS, bias=-0.5)
    path = folder / "model.onnx"
    onnx.save_model(onnx.load(str(inline)), str(path), save_as_external_data=True,
                    all_tensors_to_one_file=True, location=location, size_threshold=0)
    return path


def _relocate(path: Path, location: str) -> None:
    """Point every external tensor of ``path`` at ``location`` (the graph alone is rewritten)."""
    model = onnx.load(str(path), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save_model(model, str(path))


def test_weights_in_the_models_folder_load_and_run(tmp_path):
    flat = _external_model(tmp_path / "flat")
    nested = _external_model(tmp_path / "nested", location="data/weights.bin")
    linked = _external_model(tmp_path / "linked")  # a link that stays inside the folder
    shutil.move(linked.parent / "weights.bin", linked.parent / "real.bin")
    (linked.parent / "weights.bin").symlink_to("real.bin")
    x = np.random.default_rng(0).uniform(0, 500, (2, 3, 32, 32)).astype(np.float32)
    expected = np.tensordot(np.array(WEIGHTS), x.astype(np.float64), axes=([0], [1]))[:, None] - 0.5
    for path in (flat, nested, linked):
        assert onnx.load(str(path), load_external_data=False).graph.initializer[0].external_data
        contract = read_contract(path)
        session = create_session(path, contract, device="cpu", threads=1)
        np.testing.assert_allclose(run_batch(session, x), expected, rtol=1e-5, atol=1e-4)
    scene = make_raster(tmp_path / "scene.tif", x[0].astype(np.uint16),
                        descriptions=["red", "green", "blue"])
    res = map_landslides(scene, flat, mask_path=tmp_path / "mask.tif", device="cpu")
    assert res.mask_path.exists()
    out = write_contract(flat, read_contract(flat), tmp_path / "copy.onnx")
    assert graph_sha256(out) == graph_sha256(flat)  # the weights were read, and saved inline


def _escaping(tmp_path: Path, how: str) -> tuple[Path, str]:
    """A model in ``tmp_path/model`` whose weights are a valid file outside that folder."""
    path = _external_model(tmp_path / "model")
    outside = tmp_path / "outside.bin"
    shutil.copy(path.parent / "weights.bin", outside)
    location = {
        "parent": "../outside.bin",
        "absolute": str(outside),
        "through a sub-folder": "data/../../outside.bin",
        "windows parent": "..\\outside.bin",
        "windows drive": "C:\\weights.bin",
        "link": "weights.bin",
    }[how]
    if how == "link":
        (path.parent / "weights.bin").unlink()
        (path.parent / "weights.bin").symlink_to(outside)
    else:
        _relocate(path, location)
    return path, location


def _opening(monkeypatch) -> list[str]:
    """Record every attempt of onnx or onnxruntime to open external data or a session."""
    import onnxruntime
    from onnx import external_data_helper

    calls: list[str] = []

    def spy(name, real):
        def record(*args, **kwargs):
            calls.append(name)
            return real(*args, **kwargs)
        return record

    monkeypatch.setattr(onnxruntime, "InferenceSession",
                        spy("InferenceSession", onnxruntime.InferenceSession))
    real = external_data_helper.load_external_data_for_model
    monkeypatch.setattr(external_data_helper, "load_external_data_for_model",
                        spy("load_external_data", real))
    return calls


ENTRY_POINTS = {
    "read_contract": lambda p, tmp: read_contract(p),
    "open_session": lambda p, tmp: open_session(p),
    "write_contract": lambda p, tmp: write_contract(p, {
        "schema_version": 1, "name": "m", "title": "M", "bands": ["red", "green", "blue"],
        "pixel_size_m": 10, "tile_size": 64, "overlap": 16}, tmp / "out.onnx"),
    "graph_sha256": lambda p, tmp: graph_sha256(p),
    "map_landslides": lambda p, tmp: map_landslides(
        make_raster(tmp / "scene.tif", np.ones((3, 40, 40), np.uint16),
                    descriptions=["red", "green", "blue"]), p, mask_path=tmp / "mask.tif"),
}


@pytest.mark.parametrize("how", ["parent", "absolute", "through a sub-folder", "windows parent",
                                 "windows drive", "link"])
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_weights_outside_the_models_folder_are_refused_before_reading(tmp_path, monkeypatch,
                                                                       how, entry):
    path, location = _escaping(tmp_path, how)
    calls = _opening(monkeypatch)
    with pytest.raises(ModelError) as err:
        ENTRY_POINTS[entry](path, tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert f"Model file {path}" in message and repr(location) in message
    assert f"inside {path.parent}" in message
    assert calls == []
    assert not (tmp_path / "out.onnx").exists() and not (tmp_path / "mask.tif").exists()


def test_training_evaluation_refuses_weights_outside(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from training.evaluate import load_model

    path, location = _escaping(tmp_path, "parent")
    calls = _opening(monkeypatch)
    with pytest.raises(ModelError, match=f"{location!r}.*outside the model's folder"):
        load_model(path)
    assert calls == []


def _external_tensor(name: str, location: str) -> TensorProto:
    t = numpy_helper.from_array(np.ones(3, np.float32), name)
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "12")):
        entry = t.external_data.add()
        entry.key, entry.value = key, value
    return t


def _model_with_tensor(where: str, location: str) -> onnx.ModelProto:
    """A graph whose one external tensor sits in an attribute, a sparse initializer, a loop's
    body or a local function."""
    out = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])]
    const = helper.make_node("Constant", [], ["y"], value=_external_tensor("c", location))
    functions = []
    sparse = []
    if where == "attribute":
        nodes = [const]
    elif where == "sparse initializer":
        sparse = [helper.make_sparse_tensor(_external_tensor("s", location),
                                            numpy_helper.from_array(np.arange(3), "i"), [3])]
        nodes = [helper.make_node("Identity", ["s"], ["y"])]
    elif where == "sub-graph":
        body = helper.make_graph([], "body", [], [helper.make_tensor_value_info(
            "t", TensorProto.FLOAT, [3])], [_external_tensor("t", location)])
        nodes = [helper.make_node("Loop", ["", ""], ["y"], body=body)]
    else:
        functions = [helper.make_function("local", "F", [], ["y"], [const],
                                          [helper.make_opsetid("", 13)])]
        nodes = [helper.make_node("F", [], ["y"], domain="local")]
    graph = helper.make_graph(nodes, "g", [], out, sparse_initializer=sparse)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                             functions=functions)


@pytest.mark.parametrize("where", ["attribute", "sparse initializer", "sub-graph", "function"])
def test_every_tensor_of_the_graph_is_checked(tmp_path, where):
    path = tmp_path / "m.onnx"
    onnx.save_model(_model_with_tensor(where, "../x.bin"), str(path))
    with pytest.raises(ModelError, match=r"'\.\./x\.bin', outside the model's folder"):
        check_external_data(path)
    onnx.save_model(_model_with_tensor(where, "x.bin"), str(path))
    check_external_data(path)  # the same graph naming a file in its folder passes
