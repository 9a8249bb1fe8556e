"""Outputs against inputs, GeoPackage layers and misleading messages, as a user meets them.

A matrix of bad requests per surface: the ``landslide-mapper`` command as a subprocess, and a few
through ``qgis_process``. Each must end with a non-zero exit and one line naming the input, what
was expected and what was found, no traceback, no file that existed before changed (hashed before
and after, the other layers of a GeoPackage included) and no partial file left behind.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import fiona
import numpy as np
import pytest
import rasterio
from rasterio.control import GroundControlPoint
from shapely.geometry import mapping

from landslide_mapper.core.models.dummy import build_dummy_model
from tests.support import UTM, make_raster, pixel_box, write_polygons

try:  # the qgis_process environment (plugin from the built zip, own profile) of those tests
    from tests.e2e.test_qgis_process import QGIS_PROCESS, qgis_env, qgis_process  # noqa: F401
except ImportError:  # no QGIS here: the qgis_process cases skip
    QGIS_PROCESS = None

    @pytest.fixture(scope="module")
    def qgis_env():
        pytest.skip("QGIS is not importable here")

CLI = [sys.executable, "-m", "landslide_mapper.cli"]
OTHER_LAYERS = ("roads", "landslides_2017")


def run_cli(*args: object) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=300)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) with its content's hash."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def layer_rows(path: Path) -> dict[str, list]:
    return {name: [(f.id, dict(f.properties)) for f in fiona.open(path, layer=name)]
            for name in fiona.listlayers(path)}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """A scene, a DEM, a model, polygons, an inventory with other people's layers, band files,
    an empty chip folder, a raster placed only by GCPs and a folder of models."""
    root = tmp_path_factory.mktemp("paths")
    data = np.full((3, 64, 64), 10, np.uint16)
    data[:, 10:30, 10:30] = 200
    w = {"root": root}
    w["scene"] = make_raster(root / "scene.tif", data, descriptions=["red", "green", "blue"])
    w["dem"] = make_raster(root / "dem.tif",
                           np.add.outer(np.arange(64.0), np.arange(64.0)).astype("float32"))
    w["model"] = root / "bright.onnx"
    build_dummy_model(w["model"], weights=[1 / 30] * 3, bias=-10.0, tile_size=32, overlap=8,
                      name="bright")
    w["polygons"] = write_polygons(root / "ls.gpkg", [pixel_box(10, 30, 10, 30)])
    w["mask"] = make_raster(root / "pred.tif", (data[:1] > 100).astype(np.uint8))
    inv = root / "inventory.gpkg"
    for name in OTHER_LAYERS:
        schema = {"geometry": "Polygon", "properties": {"name": "str"}}
        with fiona.open(inv, "w", driver="GPKG", layer=name, schema=schema, crs=UTM) as dst:
            dst.write({"geometry": mapping(pixel_box(0, 2, 0, 2)), "properties": {"name": name}})
    w["inventory"] = inv
    bands = root / "bands"
    bands.mkdir()
    for band in ("B02", "B03", "B04"):
        make_raster(bands / f"T54SUE_20180906T013651_{band}.tif",
                    np.full((1, 20, 20), 1000, np.uint16))
    w["bands"] = bands
    w["chips"] = root / "chips"
    w["chips"].mkdir()
    w["contract"] = root / "contract.json"
    w["contract"].write_text(run_cli("info", w["model"], "--json").stdout)
    gcps = root / "gcps.tif"
    with rasterio.open(gcps, "w", driver="GTiff", width=40, height=40, count=3,
                       dtype="uint16") as dst:
        dst.write(np.full((3, 40, 40), 200, np.uint16))
        dst.gcps = ([GroundControlPoint(0, 0, 500000, 4000000),
                     GroundControlPoint(0, 40, 500400, 4000000),
                     GroundControlPoint(40, 0, 500000, 3999600)], rasterio.crs.CRS.from_string(UTM))
    w["gcps"] = gcps
    w["models_folder"] = root / "models"
    w["models_folder"].mkdir()
    (w["models_folder"] / "bright.onnx").write_bytes(w["model"].read_bytes())
    w["dem_link"] = root / "dem_link.tif"
    w["dem_link"].symlink_to(w["dem"])
    truth = root / "truth.json"
    with fiona.open(truth, "w", driver="GeoJSON", crs=UTM,
                    schema={"geometry": "Polygon", "properties": {"id": "int"}}) as dst:
        dst.write({"geometry": mapping(pixel_box(10, 30, 10, 30)), "properties": {"id": 1}})
    w["truth"] = truth
    return w


def cli_cases(w: dict[str, Path]) -> dict[str, tuple[list, Path, list[str]]]:
    """name -> (arguments, the input the message must name, further fragments it must hold)."""
    b03 = w["bands"] / "T54SUE_20180906T013651_B03.tif"
    return {
        "map --mask onto --dem": (
            ["map", w["scene"], "-m", w["model"], "--mask", w["dem"], "--dem", w["dem"], "-q"],
            w["dem"], ["DEM"]),
        "map --mask onto a symlink of --dem": (
            ["map", w["scene"], "-m", w["model"], "--mask", w["dem_link"], "--dem", w["dem"],
             "-q"], w["dem"], ["both lead to"]),
        "map --probability onto the input": (
            ["map", w["scene"], "-m", w["model"], "--probability", w["scene"], "-q"],
            w["scene"], ["input raster"]),
        "map --probability == --mask": (
            ["map", w["scene"], "-m", w["model"], "--probability", w["root"] / "pm.tif",
             "--mask", w["root"] / "pm.tif", "-q"], w["root"] / "pm.tif", ["own path"]),
        "map --polygons onto the model": (
            ["map", w["scene"], "-m", w["model"], "--polygons", w["root"] / "bright.gpkg",
             "--mask", w["model"], "-q"], w["model"], ["model file"]),
        "slope DEM DEM": (["slope", w["dem"], w["dem"], "-q"], w["dem"], ["DEM"]),
        "prepare over a band file": (
            ["prepare", w["bands"], b03, "--bands", "B02,B03,B04", "-q"], b03, ["band B03"]),
        "evaluate --report over the reference": (
            ["evaluate", w["mask"], w["polygons"], "--report", w["polygons"]], w["polygons"],
            ["reference"]),
        "evaluate report JSON over a GeoJSON reference": (
            ["evaluate", w["mask"], w["truth"], "--report", w["root"] / "truth.md"], w["truth"],
            ["Report JSON"]),
        "evaluate --polygons over the predicted layer": (
            ["evaluate", w["polygons"], w["truth"], "--polygons", w["polygons"], "--layer", "ls",
             "--pixel-size", "10"], w["polygons"], ["GeoPackage layer", "predicted"]),
        "evaluate --reference-out over the reference": (
            ["evaluate", w["mask"], w["truth"], "--reference-out", w["truth"]], w["truth"],
            ["reference"]),
        "contract -o over the contract JSON": (
            ["contract", w["model"], w["contract"], "-o", w["contract"]], w["contract"],
            ["contract file"]),
        "train over its --base": (
            ["train", w["chips"], w["model"], "--base", w["model"]], w["model"], ["base model"]),
        "quantize over its model": (
            ["quantize", w["model"], w["model"], "--calibration", w["scene"], "-q"], w["model"],
            ["model file"]),
        "chips into the raster's folder": (
            ["chips", w["scene"], w["polygons"], w["root"], "-q"], w["scene"], ["holds"]),
        "map a raster placed by GCPs only": (
            ["map", w["gcps"], "-m", w["model"], "--mask", w["root"] / "g.tif", "-q"], w["gcps"],
            ["ground control points", "gdalwarp"]),
        "a folder as the model": (
            ["map", w["scene"], "-m", w["models_folder"], "--mask", w["root"] / "f.tif", "-q"],
            w["models_folder"], ["folder", "bright.onnx"]),
        "a bad polygon extension": (
            ["map", w["scene"], "-m", w["model"], "--polygons", w["root"] / "ls.txt", "-q"],
            w["root"] / "ls.txt", [".gpkg"]),
        "a layer name on a shapefile": (
            ["vectorize", w["mask"], "--polygons", w["root"] / "v.shp", "--layer", "x", "-q"],
            w["root"] / "v.shp", ["expected a GeoPackage"]),
    }


CASES = sorted(cli_cases({k: Path(k) for k in (
    "root", "scene", "dem", "model", "polygons", "mask", "inventory", "bands", "chips",
    "contract", "gcps", "models_folder", "dem_link", "truth")}))


@pytest.mark.parametrize("case", CASES)
def test_cli_refuses_with_one_line_and_changes_nothing(world, case):
    args, named, fragments = cli_cases(world)[case]
    before = snapshot(world["root"])
    res = run_cli(*args)
    assert res.returncode != 0, res.stdout + res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    message = lines[0]
    assert "Traceback" not in res.stderr + res.stdout
    assert str(named) in message, message
    assert "expected" in message and "found" in message, message
    for fragment in fragments:
        assert fragment in message, message
    assert snapshot(world["root"]) == before  # nothing changed, nothing (partial) left


def test_cli_writes_its_layer_into_an_inventory_and_keeps_the_others(world, tmp_path):
    inv = tmp_path / "inventory.gpkg"
    inv.write_bytes(world["inventory"].read_bytes())
    others = layer_rows(inv)
    res = run_cli("map", world["scene"], "-m", world["model"], "--polygons", inv, "-q")
    assert res.returncode == 0, res.stderr
    res = run_cli("vectorize", world["mask"], "--polygons", f"{inv}|layername=vectorized", "-q")
    assert res.returncode == 0, res.stderr
    res = run_cli("evaluate", f"{inv}|layername=landslides", world["truth"], "--polygons", inv,
                  "--layer", "eval", "--pixel-size", "10")
    assert res.returncode == 0, res.stderr
    rows = layer_rows(inv)
    assert list(rows) == [*OTHER_LAYERS, "landslides", "vectorized", "eval", "eval_reference"]
    assert {k: rows[k] for k in OTHER_LAYERS} == others
    assert len(rows["landslides"]) == len(rows["vectorized"]) == 1
    # replace one of them: only that one changes
    res = run_cli("vectorize", world["mask"], "--polygons", inv, "--layer", "roads", "--min-area",
                  "1e9", "-q")
    assert res.returncode == 0, res.stderr
    after = layer_rows(inv)
    assert after["roads"] == [] and after["landslides_2017"] == others["landslides_2017"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inventory.gpkg"]


def test_cli_refuses_an_inventory_open_elsewhere(world, tmp_path):
    inv = tmp_path / "inventory.gpkg"
    inv.write_bytes(world["inventory"].read_bytes())
    (tmp_path / "inventory.gpkg-wal").write_bytes(b"")
    before = snapshot(tmp_path)
    res = run_cli("vectorize", world["mask"], "--polygons", inv, "-q")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "open in another program" in res.stderr and str(inv) in res.stderr
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------------------------------------
# qgis_process: a modest number of cases (each start of QGIS takes seconds)


@pytest.mark.qgis
@pytest.mark.slow
def test_qgis_process_matrix(world, tmp_path, qgis_env):
    if QGIS_PROCESS is None or not Path(QGIS_PROCESS).is_file():
        pytest.skip(f"qgis_process.bin not found ({QGIS_PROCESS})")
    env = qgis_env
    alg = "landslide_mapper:map_landslides"
    inv = tmp_path / "inventory.gpkg"
    inv.write_bytes(world["inventory"].read_bytes())
    others = layer_rows(inv)
    bad = {
        "mask onto the DEM": ([alg, f"INPUT={world['scene']}", f"MODEL={world['model']}",
                               f"DEM={world['dem']}", f"OUTPUT_MASK={world['dem']}",
                               f"OUTPUT_POLYGONS={tmp_path / 'a.gpkg'}"], world["dem"]),
        "GCPs only": ([alg, f"INPUT={world['gcps']}", f"MODEL={world['model']}",
                       f"OUTPUT_POLYGONS={tmp_path / 'b.gpkg'}"], world["gcps"]),
        "polygons onto the input's layer": (
            ["landslide_mapper:evaluate_landslides", f"PREDICTED={world['polygons']}",
             f"REFERENCE={world['truth']}", f"OUTPUT_POLYGONS={world['polygons']}|layername=ls",
             f"OUTPUT_REFERENCE={tmp_path / 'r.gpkg'}", f"OUTPUT_REPORT={tmp_path / 'r.html'}",
             "PIXEL_SIZE=10"], world["polygons"]),
    }
    before = snapshot(world["root"])
    for name, (args, named) in bad.items():
        done = qgis_process(env, "run", args[0], "--", *args[1:])
        text = done.stdout + done.stderr
        assert done.returncode != 0, name
        assert "Traceback" not in text, name
        hits = [line for line in text.splitlines() if str(named) in line and "expected" in line
                and "found" in line]
        assert hits, f"{name}: {text[-2000:]}"
    after = snapshot(world["root"])
    # QGIS's GDAL writes .aux.xml side-cars of the raster layers it loads: its own, not ours
    assert {k: v for k, v in after.items() if not k.endswith(".aux.xml")} == before
    # "Save to GeoPackage…" spelling: our layer in, the others kept, the result names the layer
    ogr = f"ogr:dbname='{inv}' table=\"mapped\" (geom)"
    done = qgis_process(env, "--json", "run", alg, "--", f"INPUT={world['scene']}",
                           f"MODEL={world['model']}", f"OUTPUT_POLYGONS={ogr}")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert '"OUTPUT_POLYGONS": "' + f"{inv}|layername=mapped" in done.stdout
    rows = layer_rows(inv)
    assert list(rows) == [*OTHER_LAYERS, "mapped"] and len(rows["mapped"]) == 1
    assert {k: rows[k] for k in OTHER_LAYERS} == others
