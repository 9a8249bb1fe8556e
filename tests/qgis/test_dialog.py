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
    assert params["MIN_AREA_M2"] is None and params["BATCH_SIZE"] == 4  # None: drop specks
    for name in ("OUTPUT_PROBABILITY", "OUTPUT_MASK", "OUTPUT_POLYGONS"):
        assert params[name].sink.staticValue() == "TEMPORARY_OUTPUT", name
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    assert dialog.algorithm().checkParameterValues(params, context) == (True, "")


def test_dialog_proposes_auto_and_lists_models_with_titles(dialog_for, scene, model, monkeypatch):
    monkeypatch.setenv("LANDSLIDE_MAPPER_MODELS", str(model.parent))
    dialog = dialog_for(scene)
    params = dialog.createProcessingParameters()
    assert params["MODEL"].startswith("auto — the bundled model that fits the input raster")
    param = dialog.algorithm().parameterDefinition("MODEL")
    options = param.options()
    assert "rectangles — Dummy linear model (for tests · not for mapping)" in options
    # QGIS splits a text value at commas: every option must be accepted as it is.
    assert all(param.checkValueIsAcceptable(option) for option in options), options
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
    # Named after the input layer and the model that made them.
    polygons, probability, mask = (f"{what} — scene (rectangles)" for what in (
        "landslides", "landslide probability", "landslide mask"))
    layers = {layer.name(): layer for layer in project.mapLayers().values()}
    assert set(layers) == {"scene", polygons, probability, mask}
    assert isinstance(layers[probability].renderer(), QgsSingleBandPseudoColorRenderer)
    assert isinstance(layers[mask].renderer(), QgsPalettedRasterRenderer)
    assert isinstance(layers[polygons].renderer(), QgsSingleSymbolRenderer)
    assert layers[polygons].featureCount() == 2
    assert layers[polygons].source().split("|")[0].endswith(".gpkg")
    assert layers[mask].source().endswith(".tif")
    # Readable order: polygons on top, the probability half transparent, the mask hidden below;
    # the input stays where it was, under the outputs.
    root = project.layerTreeRoot()
    assert [node.name() for node in root.children()] == [polygons, probability, mask, "scene"]
    assert [root.findLayer(layers[name].id()).isVisible() for name in
            (polygons, probability, mask, "scene")] == [True, True, False, True]
    assert layers[probability].renderer().opacity() == 0.5
    assert layers[polygons].opacity() == 1.0 and layers[mask].renderer().opacity() == 1.0
