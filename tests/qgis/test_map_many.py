"""``landslide_mapper:map_many`` through ``processing.run``: many rasters, one inventory."""

from __future__ import annotations

from pathlib import Path

import processing
import pytest
from qgis.core import QgsProcessingException, QgsProcessingFeedback, QgsVectorLayer

from tests.qgis.conftest import BIG, SMALL, rect_area_m2, scene_data
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
