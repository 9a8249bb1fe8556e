"""``landslide_mapper:map_many`` through ``processing.run``: many rasters, one inventory."""

from __future__ import annotations

from pathlib import Path

import processing
import pytest
from qgis.core import QgsProcessingException, QgsProcessingFeedback, QgsVectorLayer

from tests.qgis.conftest import BIG, COLS, ROWS, SMALL, rect_area_m2, scene_data
from tests.support import make_raster

pytestmark = pytest.mark.qgis

ALG = "landslide_mapper:map_many"


@pytest.fixture
def scenes(tmp_path: Path) -> list[str]:
    """Two copies of the two-rectangle scene in different folders, with the same file name."""
    paths = []
    for folder in ("east", "west"):
        (tmp_path / folder).mkdir()
        paths.append(str(make_raster(tmp_path / folder / "scene.tif", scene_data(),
                                     descriptions=["red", "green", "blue"])))
    return paths


def test_maps_every_raster_into_one_inventory(provider, scenes, model, tmp_path):
    out = tmp_path / "out"
    steps = []

    class Feedback(QgsProcessingFeedback):
        def setProgress(self, value):
            steps.append(value)
            super().setProgress(value)

    result = processing.run(ALG, {"INPUT": scenes, "MODEL": str(model), "WORKERS": 2,
                                  "OUTPUT_FOLDER": str(out)}, feedback=Feedback())
    assert (result["MAPPED"], result["FAILED"], result["POLYGON_COUNT"]) == (2, 0, 4)
    assert Path(result["OUTPUT_SUMMARY"]).is_file() and steps[-1] == 100.0
    layer = QgsVectorLayer(result["OUTPUT_POLYGONS"], "inventory", "ogr")
    assert layer.isValid() and layer.crs().authid() == "EPSG:32654"
    features = list(layer.getFeatures())
    assert sorted(f["source"] for f in features) == sorted(scenes * 2)
    assert sorted(f["area_m2"] for f in features) == pytest.approx(
        sorted([rect_area_m2(BIG), rect_area_m2(SMALL)] * 2))
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert len(folders) == 2 and all(f.startswith("scene-") for f in folders)

    again = processing.run(ALG, {"INPUT": scenes, "MODEL": str(model), "CRS": "EPSG:4326",
                                 "OUTPUT_FOLDER": str(out)})
    assert again["POLYGON_COUNT"] == 4
    assert QgsVectorLayer(again["OUTPUT_POLYGONS"], "i", "ogr").crs().authid() == "EPSG:4326"


def test_min_slope_drops_the_landslides_on_flat_ground(provider, scenes, model, tmp_path):
    import csv

    import numpy as np

    # 30 degrees under the big rectangle (columns < 50), flat under the small one
    slope = np.where(np.arange(COLS) < 50, 30.0, 0.0)[None].repeat(ROWS, 0).astype(np.float32)
    slope_path = str(make_raster(tmp_path / "slope.tif", slope))
    out = tmp_path / "out"
    result = processing.run(ALG, {"INPUT": scenes, "MODEL": str(model), "WORKERS": 2,
                                  "SLOPE": slope_path, "MIN_SLOPE": 10.0,
                                  "OUTPUT_FOLDER": str(out)})
    assert (result["MAPPED"], result["POLYGON_COUNT"]) == (2, 2)
    layer = QgsVectorLayer(result["OUTPUT_POLYGONS"], "inventory", "ogr")
    assert sorted(f["area_m2"] for f in layer.getFeatures()) == pytest.approx(
        [rect_area_m2(BIG)] * 2)
    # the layer must go now: the traceback pytest.raises keeps below holds this frame, and a
    # QGIS layer freed only after QGIS itself has shut down crashes the interpreter at exit
    del layer
    with open(result["OUTPUT_SUMMARY"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["slope_dropped"], float(r["slope_dropped_ha"])) for r in rows] == [
        ("1", pytest.approx(rect_area_m2(SMALL) / 1e4, abs=0.005))] * 2
    with pytest.raises(QgsProcessingException, match="Minimum slope 10 degrees: expected a DEM "
                                                     "or a slope raster"):
        processing.run(ALG, {"INPUT": scenes, "MODEL": str(model), "MIN_SLOPE": 10.0,
                             "OUTPUT_FOLDER": str(tmp_path / "none")})
    assert not (tmp_path / "none").exists()


def test_cancel_is_a_processing_error(provider, scenes, model, tmp_path):
    feedback = QgsProcessingFeedback()
    feedback.cancel()
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        processing.run(ALG, {"INPUT": scenes, "MODEL": str(model), "WORKERS": 1,
                             "OUTPUT_FOLDER": str(tmp_path / "out")}, feedback=feedback)


def test_bad_model_is_refused_before_running(provider, scenes, tmp_path):
    with pytest.raises(QgsProcessingException, match="nope.onnx"):
        processing.run(ALG, {"INPUT": scenes, "MODEL": str(tmp_path / "nope.onnx"),
                             "OUTPUT_FOLDER": str(tmp_path / "out")})


def test_without_dask_it_refuses_with_the_installer_hint(provider, scenes, model, tmp_path,
                                                         monkeypatch):
    from landslide_mapper.processing import map_many
    from landslide_mapper.processing.dependencies import INSTALL_HINT

    monkeypatch.setattr(map_many, "missing_modules",
                        lambda names: [n for n in names if n in ("dask", "distributed")])
    with pytest.raises(QgsProcessingException) as err:
        processing.run(ALG, {"INPUT": scenes, "MODEL": str(model),
                             "OUTPUT_FOLDER": str(tmp_path / "out")})
    assert ("Map landslides (many rasters) needs the Python package(s) dask, distributed, which "
            f"cannot be imported. {INSTALL_HINT}") in str(err.value)
    assert not (tmp_path / "out").exists()


def test_workers_are_processes_only_with_a_python_of_this_version(monkeypatch, tmp_path):
    import multiprocessing.spawn
    import sys

    from landslide_mapper.processing import map_many

    monkeypatch.setattr(multiprocessing.spawn, "get_executable", lambda: sys.executable)
    assert map_many._worker_processes() == (True, (
        f"separate Python processes ({sys.executable}, Python {sys.version_info[0]}."
        f"{sys.version_info[1]})"))
    monkeypatch.setattr(multiprocessing.spawn, "get_executable",
                        lambda: r"C:\OSGeo4W\bin\qgis-bin.exe")
    processes, why = map_many._worker_processes()
    assert not processes and "qgis-bin.exe is not a Python" in why
    other = tmp_path / "python3"  # a python3 of another version first on PATH
    other.write_text("#!/bin/sh\necho 3.7\n")
    other.chmod(0o755)
    monkeypatch.setattr(multiprocessing.spawn, "get_executable", lambda: str(other))
    processes, why = map_many._worker_processes()
    assert not processes and f"{other} is Python 3.7, not this process's" in why
