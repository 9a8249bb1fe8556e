"""The "Map landslides" dialog as a geologist uses it: defaults, a run on a worker thread, results
added to the project with their styles."""

from __future__ import annotations

import time

import processing
import pytest
from qgis.core import (
    QgsApplication,
    QgsPalettedRasterRenderer,
    QgsProcessingContext,
    QgsProject,
    QgsRasterLayer,
    QgsSingleBandPseudoColorRenderer,
    QgsSingleSymbolRenderer,
)
from qgis.gui import QgsBrowserGuiModel

pytestmark = pytest.mark.qgis

CUSTOM = "Custom .onnx file…"


@pytest.fixture
def dialog_for(provider, qgis_iface, qgis_new_project):
    """Builds the algorithm dialog (not shown) with a scene layer in the project."""
    browser = QgsBrowserGuiModel()
    qgis_iface.browserModel = lambda: browser  # the stub interface lacks it; the dialog needs it

    def build(scene, **values):
        layer = QgsRasterLayer(str(scene), "scene")
        QgsProject.instance().addMapLayer(layer)
        return processing.createAlgorithmDialog(
            "landslide_mapper:map_landslides", {"INPUT": layer.id(), **values})

    return build


def test_dialog_defaults(dialog_for, scene, model):
    dialog = dialog_for(scene, MODEL=CUSTOM, MODEL_FILE=str(model))
    params = dialog.createProcessingParameters()
    assert params["THRESHOLD"] is None and params["TILE_SIZE"] is None
    assert params["OVERLAP"] is None and params["BANDS"] is None
    assert params["DEVICE"] == "auto" and params["PROBABILITY_FORMAT"] == "float32"
    assert params["MIN_AREA_M2"] == 0 and params["BATCH_SIZE"] == 4
    for name in ("OUTPUT_PROBABILITY", "OUTPUT_MASK", "OUTPUT_POLYGONS"):
        assert params[name].sink.staticValue() == "TEMPORARY_OUTPUT", name
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    assert dialog.algorithm().checkParameterValues(params, context) == (True, "")


def test_dialog_refuses_custom_model_without_file(dialog_for, scene):
    dialog = dialog_for(scene, MODEL=CUSTOM)
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    ok, message = dialog.algorithm().checkParameterValues(
        dialog.createProcessingParameters(), context)
    assert not ok
    assert "MODEL_FILE" in message and "choose an .onnx model file" in message


def test_dialog_run_adds_styled_layers(dialog_for, scene, model):
    dialog = dialog_for(scene, MODEL=CUSTOM, MODEL_FILE=str(model))
    project = QgsProject.instance()
    dialog.runAlgorithm()  # runs on a QgsTask thread, then loads the outputs
    deadline = time.monotonic() + 60
    while len(project.mapLayers()) < 4 and time.monotonic() < deadline:
        QgsApplication.processEvents()
        time.sleep(0.02)
    layers = {layer.name(): layer for layer in project.mapLayers().values()}
    assert set(layers) == {"scene", "Landslide probability", "Landslide mask",
                           "Landslide polygons"}
    assert isinstance(layers["Landslide probability"].renderer(), QgsSingleBandPseudoColorRenderer)
    assert isinstance(layers["Landslide mask"].renderer(), QgsPalettedRasterRenderer)
    assert isinstance(layers["Landslide polygons"].renderer(), QgsSingleSymbolRenderer)
    assert layers["Landslide polygons"].featureCount() == 2
    assert layers["Landslide polygons"].source().split("|")[0].endswith(".gpkg")
    assert layers["Landslide mask"].source().endswith(".tif")
