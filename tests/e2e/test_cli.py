"""The ``landslide-mapper`` command as a user runs it: a subprocess, exit codes, files written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import fiona
import numpy as np
import pytest
import rasterio

from tests.support import bright_model, make_raster

CLI = [sys.executable, "-m", "landslide_mapper.cli"]


def run(*args: str, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=300, **kw)


@pytest.fixture()
def scene(tmp_path: Path) -> Path:
    """A 3-band raster with two bright squares (20x20 and 6x6 pixels at 10 m) on a dark field."""
    data = np.full((3, 150, 130), 10, np.uint16)
    data[:, 20:40, 30:50] = 200
    data[:, 100:106, 90:96] = 200
    return make_raster(tmp_path / "scene.tif", data, descriptions=["red", "green", "blue"])


@pytest.fixture()
def model(tmp_path: Path) -> Path:
    return bright_model(tmp_path / "bright.onnx")


def test_map_writes_all_three_outputs_with_areas(tmp_path, scene, model):
    out = tmp_path / "out"
    out.mkdir()
    res = run("map", scene, "--model", model, "--polygons", out / "ls.gpkg",
              "--probability", out / "p.tif", "--mask", out / "m.tif", "--quiet")
    assert res.returncode == 0, res.stderr
    assert "2 landslides" in res.stdout
    with rasterio.open(scene) as src, rasterio.open(out / "m.tif") as mask:
        assert (mask.crs, mask.transform, mask.shape) == (src.crs, src.transform, src.shape)
        assert int((mask.read(1) == 1).sum()) == 20 * 20 + 6 * 6
    with fiona.open(out / "ls.gpkg") as layer:
        areas = sorted(f["properties"]["area_m2"] for f in layer)
    assert areas == pytest.approx([36 * 100.0, 400 * 100.0])
    assert sorted(p.name for p in out.iterdir()) == ["ls.gpkg", "m.tif", "p.tif"]


def test_min_area_drops_the_small_square(tmp_path, scene, model):
    res = run("map", scene, "--model", model, "--polygons", tmp_path / "ls.gpkg",
              "--min-area", "5000", "-q")
    assert res.returncode == 0, res.stderr
    with fiona.open(tmp_path / "ls.gpkg") as layer:
        assert len(layer) == 1


def test_vectorize_command(tmp_path, scene, model):
    assert run("map", scene, "--model", model, "--mask", tmp_path / "m.tif", "-q").returncode == 0
    res = run("vectorize", tmp_path / "m.tif", "--polygons", tmp_path / "v.gpkg", "-q")
    assert res.returncode == 0, res.stderr
    assert "2 landslides" in res.stdout and "4.36 ha" in res.stdout


@pytest.mark.parametrize(
    "case, fragment",
    [
        ("not_a_raster", "not_a_raster.tif"),
        ("too_few_bands", "band"),
        ("no_model_contract", "has no Landslide Mapper contract"),
        ("bad_tile", "multiple of 32"),
        ("min_slope_without_dem", "Minimum slope 5 degrees"),
    ],
)
def test_bad_input_one_line_reason_and_exit_1(tmp_path, scene, model, case, fragment):
    args = ["map", scene, "--model", model, "--polygons", tmp_path / "ls.gpkg", "-q"]
    if case == "not_a_raster":
        bad = tmp_path / "not_a_raster.tif"
        bad.write_text("hello")
        args[1] = bad
    elif case == "too_few_bands":
        args[1] = make_raster(tmp_path / "one.tif", np.ones((1, 40, 40), np.uint8))
    elif case == "no_model_contract":
        import onnx

        m = onnx.load(str(model))
        del m.metadata_props[:]
        onnx.save_model(m, str(model))
    elif case == "bad_tile":
        args += ["--tile-size", "100"]
    elif case == "min_slope_without_dem":
        args += ["--min-slope", "5"]
    res = run(*args)
    assert res.returncode == 1
    assert fragment in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "ls.gpkg").exists()


def test_dem_slope_attributes_min_slope_and_tta(tmp_path, scene, model):
    """Flat ground west of x = 500700 m (column 70), a 30-degree plane east of it: the big
    square lies on the flat and is dropped by --min-slope, the small one is kept."""
    x = 500000.0 + 10.0 * (np.arange(130) + 0.5)
    z = np.where(x < 500700, 100.0, 100.0 + (x - 500700) * np.tan(np.radians(30.0)))
    dem = make_raster(tmp_path / "dem.tif", np.tile(z, (150, 1)).astype(np.float32))
    res = run("map", scene, "--model", model, "--dem", dem, "--min-slope", "10", "--tta",
              "--polygons", tmp_path / "ls.gpkg", "--mask", tmp_path / "m.tif", "-q")
    assert res.returncode == 0, res.stderr
    assert "(1 landslides); 1 dropped for a mean slope under 10 degrees (4.00 ha)" in res.stdout
    with fiona.open(tmp_path / "ls.gpkg") as layer:
        [small] = [f["properties"] for f in layer]
    assert small["area_m2"] == 3600 and small["slope_mean"] == pytest.approx(30.0, abs=0.05)
    res = run("vectorize", tmp_path / "m.tif", "--polygons", tmp_path / "v.gpkg", "--dem", dem,
              "--min-slope", "10", "-q")
    assert res.returncode == 0, res.stderr
    assert "1 landslides" in res.stdout and "1 dropped" in res.stdout


def test_map_needs_an_output(scene, model):
    res = run("map", scene, "--model", model)
    assert res.returncode == 2 and "at least one output" in res.stderr


def test_info_and_contract_commands(tmp_path, model):
    res = run("info", model, "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["name"] == "bright" and [b["name"] for b in doc["bands"]] == ["red", "green", "blue"]
    doc["name"] = "renamed"
    (tmp_path / "c.json").write_text(json.dumps(doc))
    res = run("contract", model, tmp_path / "c.json", "-o", tmp_path / "renamed.onnx")
    assert res.returncode == 0, res.stderr
    assert json.loads(run("info", tmp_path / "renamed.onnx", "--json").stdout)["name"] == "renamed"
    doc["tile_size"] = 50
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    res = run("contract", model, tmp_path / "bad.json", "-o", tmp_path / "bad.onnx")
    assert res.returncode == 1 and "multiple of 32" in res.stderr
    assert not (tmp_path / "bad.onnx").exists()


def test_models_lists_bundled_models():
    res = run("models")
    assert res.returncode == 0, res.stderr
    from landslide_mapper.core.models.registry import bundled_models

    for m in bundled_models():
        assert m.name in res.stdout
