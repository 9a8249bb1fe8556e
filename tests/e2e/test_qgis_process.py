"""``qgis_process`` as a batch user runs it, with the plugin installed from the built zip.

``qgis_process.bin`` is the real binary: Debian's ``qgis_process`` wrapper adds
``--noversioncheck``, which QGIS 3.22 rejects. Each test run gets its own home folder (so its own
QGIS profile) and sees the plugin through ``QGIS_PLUGINPATH``. The outputs must agree with
``processing.run`` of the same algorithm in this process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import processing
import pytest
import rasterio

from tests.qgis import conftest as qgis_fixtures
from tests.qgis.conftest import BIG, SMALL, rect_area_m2
from tests.support import REPO

# The provider, scene and model of the QGIS tests, for the processing.run side of the comparison.
provider = qgis_fixtures.provider
scene = qgis_fixtures.scene
model = qgis_fixtures.model

QGIS_PROCESS = shutil.which("qgis_process.bin") or "/usr/bin/qgis_process.bin"
ALG = "landslide_mapper:map_landslides"

pytestmark = [
    pytest.mark.qgis,
    pytest.mark.slow,  # each qgis_process call starts QGIS: about 5 s
    pytest.mark.skipif(not Path(QGIS_PROCESS).is_file(),
                       reason=f"qgis_process.bin not found ({QGIS_PROCESS})"),
]


@pytest.fixture(scope="module")
def qgis_env(tmp_path_factory) -> dict[str, str]:
    """Environment for qgis_process: a fresh profile, the unzipped plugin, this venv's packages."""
    root = tmp_path_factory.mktemp("qgis_process")
    built = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build_plugin_zip.py"), "--out-dir", str(root)],
        capture_output=True, text=True, timeout=120,
    )
    assert built.returncode == 0, built.stderr
    [plugin_zip] = root.glob("*.zip")
    plugins = root / "plugins"
    with zipfile.ZipFile(plugin_zip) as zf:
        zf.extractall(plugins)
    home = root / "home"
    runtime = root / "runtime"
    home.mkdir()
    runtime.mkdir(mode=0o700)
    site = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    env = dict(
        os.environ,
        HOME=str(home),
        QGIS_CUSTOM_CONFIG_PATH=str(root / "config"),  # pytest-qgis points it at its own folder
        XDG_RUNTIME_DIR=str(runtime),
        QT_QPA_PLATFORM="offscreen",
        QGIS_PLUGINPATH=str(plugins),
        PYTHONPATH=os.pathsep.join(dict.fromkeys(site)),  # rasterio, onnxruntime, ... of this venv
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.pop("LANDSLIDE_MAPPER_MODELS", None)
    env.pop("QGIS_OPTIONS_PATH", None)
    enabled = qgis_process(env, "plugins", "enable", "landslide_mapper")
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    ini = root / "config" / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    assert "landslide_mapper=true" in ini.read_text(), "the plugin was enabled in another profile"
    return env


def qgis_process(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([QGIS_PROCESS, *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)


def run_json(env: dict[str, str], alg: str, **params: object) -> dict:
    done = qgis_process(env, "--json", "run", alg, "--",
                        *(f"{key}={value}" for key, value in params.items()))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout)


def test_list_and_help(qgis_env):
    plugins = qgis_process(qgis_env, "plugins")
    assert "* landslide_mapper" in plugins.stdout, plugins.stdout + plugins.stderr
    listed = qgis_process(qgis_env, "list")
    assert listed.returncode == 0
    assert "landslide_mapper:map_landslides" in listed.stdout
    assert "landslide_mapper:vectorize_mask" in listed.stdout
    helped = qgis_process(qgis_env, "help", ALG)
    assert helped.returncode == 0, helped.stderr
    for name in ("INPUT", "MODEL", "MODEL_FILE", "THRESHOLD", "TILE_SIZE", "OVERLAP",
                 "OUTPUT_PROBABILITY", "OUTPUT_MASK", "OUTPUT_POLYGONS", "POLYGON_COUNT"):
        assert name in helped.stdout, name
    assert "the path of an .onnx file" in helped.stdout
    assert "come from the model" in helped.stdout


def test_run_agrees_with_processing_run(qgis_env, provider, scene, model, tmp_path):
    cli_dir, py_dir = tmp_path / "cli", tmp_path / "py"
    cli_dir.mkdir()
    py_dir.mkdir()

    def outputs(folder: Path) -> dict[str, str]:
        return {"OUTPUT_PROBABILITY": str(folder / "probability.tif"),
                "OUTPUT_MASK": str(folder / "mask.tif"),
                "OUTPUT_POLYGONS": str(folder / "landslides.gpkg")}

    report = run_json(qgis_env, ALG, INPUT=scene, MODEL=model, DEVICE="cpu", **outputs(cli_dir))
    results = report["results"]
    expected = processing.run(ALG, {"INPUT": str(scene), "MODEL": str(model), "DEVICE": "cpu",
                                    **outputs(py_dir)})

    assert results["POLYGON_COUNT"] == expected["POLYGON_COUNT"] == 2
    assert results["PROVIDER"] == expected["PROVIDER"] == "CPUExecutionProvider"
    for key in outputs(cli_dir):
        assert results[key] == outputs(cli_dir)[key]
        assert Path(results[key]).is_file()
    for name in ("probability.tif", "mask.tif"):
        with rasterio.open(cli_dir / name) as a, rasterio.open(py_dir / name) as b:
            assert (a.transform, a.crs, a.shape) == (b.transform, b.crs, b.shape)
            np.testing.assert_allclose(a.read(1), b.read(1), atol=1e-6)
    import fiona

    def areas(path: Path) -> list[float]:
        with fiona.open(path) as layer:
            return sorted(f["properties"]["area_m2"] for f in layer)

    assert areas(cli_dir / "landslides.gpkg") == pytest.approx(areas(py_dir / "landslides.gpkg"))
    assert areas(cli_dir / "landslides.gpkg") == pytest.approx(
        sorted([rect_area_m2(SMALL), rect_area_m2(BIG)]))

    # The mask qgis_process wrote, vectorized by qgis_process: the same two polygons.
    vectorized = run_json(qgis_env, "landslide_mapper:vectorize_mask",
                          INPUT=cli_dir / "mask.tif", OUTPUT_POLYGONS=cli_dir / "again.gpkg")
    assert vectorized["results"]["POLYGON_COUNT"] == 2
    assert vectorized["results"]["TOTAL_AREA_M2"] == pytest.approx(
        rect_area_m2(SMALL) + rect_area_m2(BIG))


def test_model_by_bundled_name(qgis_env, scene, model, tmp_path):
    env = dict(qgis_env, LANDSLIDE_MAPPER_MODELS=str(model.parent))
    report = run_json(env, ALG, INPUT=scene, MODEL="rectangles", MIN_AREA_M2=10000,
                      OUTPUT_POLYGONS=tmp_path / "named.gpkg")
    assert report["results"]["POLYGON_COUNT"] == 1


def test_missing_model_fails_with_a_clear_message(qgis_env, scene, tmp_path):
    done = qgis_process(qgis_env, "run", ALG, "--", f"INPUT={scene}",
                        f"MODEL={tmp_path / 'missing.onnx'}",
                        f"OUTPUT_POLYGONS={tmp_path / 'out.gpkg'}")
    assert done.returncode != 0
    assert "missing.onnx: file not found" in done.stdout + done.stderr
    assert not (tmp_path / "out.gpkg").exists()
