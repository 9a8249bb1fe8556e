"""Outputs loaded on completion (as from the toolbox) get the plugin's QML styles."""

from __future__ import annotations

import gc

import numpy as np
import processing
import pytest
from qgis.core import (
    QgsApplication,
    QgsPalettedRasterRenderer,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
    QgsSingleBandPseudoColorRenderer,
    QgsSingleSymbolRenderer,
    QgsVectorLayer,
)

from landslide_mapper.processing.styling import STYLE_KINDS, apply_style, style_path
from tests.support import make_raster

pytestmark = pytest.mark.qgis

EXPECTED_RENDERER = {
    "OUTPUT_PROBABILITY": QgsSingleBandPseudoColorRenderer,
    "OUTPUT_MASK": QgsPalettedRasterRenderer,
    "OUTPUT_POLYGONS": QgsSingleSymbolRenderer,
}


def check_probability(renderer):
    shader = renderer.shader().rasterShaderFunction()
    items = shader.colorRampItemList()
    assert (items[0].value, items[-1].value) == (0.0, 1.0)
    assert items[0].color.alpha() == 0, "probability 0 must be transparent"
    top = items[-1].color
    assert top.alpha() == 255 and top.red() > 150 and top.green() < 50, "probability 1 is red"
    assert renderer.opacity() == 0.5, "the layer is half transparent: image and polygons show"


def check_mask(renderer):
    classes = {c.value: c.color for c in renderer.classes()}
    assert set(classes) == {1.0}, "only value 1 (landslide) is drawn; 0 stays transparent"
    assert classes[1.0].alpha() == 255


def check_polygons(renderer):
    fill = renderer.symbol().symbolLayer(0)
    assert fill.strokeColor().alpha() == 255
    assert fill.color().alpha() <= 80, "polygons: outline with at most a light fill"


@pytest.mark.parametrize("kind", STYLE_KINDS)
def test_qml_files_exist_and_declare_qgis_3_22(kind):
    text = style_path(kind).read_text(encoding="utf-8")
    assert "<qgis" in text and 'version="3.22' in text


def test_apply_style_to_layers(tmp_path):
    prob = QgsRasterLayer(str(make_raster(tmp_path / "p.tif", np.zeros((4, 4), np.float32))), "p")
    mask = QgsRasterLayer(str(make_raster(tmp_path / "m.tif", np.zeros((4, 4), np.uint8))), "m")
    polys = QgsVectorLayer("Polygon?crs=EPSG:32654", "v", "memory")
    assert apply_style(prob, "probability")
    assert apply_style(mask, "mask")
    assert apply_style(polys, "polygons")
    check_probability(prob.renderer())
    check_mask(mask.renderer())
    check_polygons(polys.renderer())
    with pytest.raises(ValueError, match="expected one of"):
        style_path("hillshade")


def run_as_the_toolbox_does(scene, model, out_dir) -> dict:
    """Layers to load on completion, the algorithm, then QGIS's own result handling."""
    from processing.gui.Postprocessing import handleAlgorithmResults

    project = QgsProject.instance()
    feedback = QgsProcessingFeedback()
    context = QgsProcessingContext()
    context.setProject(project)
    context.setFeedback(feedback)
    outputs = {
        "OUTPUT_PROBABILITY": str(out_dir / "probability.tif"),
        "OUTPUT_MASK": str(out_dir / "mask.tif"),
        "OUTPUT_POLYGONS": str(out_dir / "landslides.gpkg"),
    }
    for name, path in outputs.items():
        context.addLayerToLoadOnCompletion(
            path, QgsProcessingContext.LayerDetails(name.lower(), project, name))
    registry = QgsApplication.processingRegistry()
    alg = registry.createAlgorithmById("landslide_mapper:map_landslides")
    _results, ok = alg.run({"INPUT": str(scene), "MODEL": str(model), **outputs}, context,
                           feedback)
    assert ok, feedback.textLog()
    for path in outputs.values():
        assert context.layerToLoadOnCompletionDetails(path).postProcessor() is not None
    gc.collect()  # the post-processors must survive a collection (QGIS holds raw pointers)

    assert handleAlgorithmResults(alg, context, feedback, showResults=False)
    loaded = {layer.source().split("|")[0]: layer for layer in project.mapLayers().values()}
    assert set(outputs.values()) <= set(loaded)
    return {name: loaded[path] for name, path in outputs.items()}


def test_post_processors_style_the_loaded_outputs(provider, scene, model, tmp_path,
                                                  qgis_new_project):
    # Twice: the first run's context (which owns and deletes its post-processors) is gone
    # before the second run starts.
    for attempt in ("first", "second"):
        out_dir = tmp_path / attempt
        out_dir.mkdir()
        layers = run_as_the_toolbox_does(scene, model, out_dir)
        gc.collect()
        for name, layer in layers.items():
            assert isinstance(layer.renderer(), EXPECTED_RENDERER[name]), (attempt, name)
        check_probability(layers["OUTPUT_PROBABILITY"].renderer())
        check_mask(layers["OUTPUT_MASK"].renderer())
        check_polygons(layers["OUTPUT_POLYGONS"].renderer())


def test_arrange_puts_a_runs_layers_in_order_where_the_topmost_was(qgis_new_project):
    from landslide_mapper.processing.styling import arrange

    project = QgsProject.instance()
    layers = {}
    for name in ("oldest", "mask", "between", "polygons", "probability"):
        layers[name] = QgsVectorLayer("Polygon?crs=EPSG:32654", name, "memory")
        project.addMapLayer(layers[name])        # each new layer goes on top
    root = project.layerTreeRoot()

    def names() -> list[str]:
        return [n.name() for n in root.children()]

    assert names() == ["probability", "polygons", "between", "mask", "oldest"]
    root.findLayer(layers["mask"].id()).setItemVisibilityChecked(False)
    arrange(root, [root.findLayer(layers[k].id()) for k in ("polygons", "probability", "mask")])
    assert names() == ["polygons", "probability", "mask", "between", "oldest"]
    assert set(project.mapLayers()) == {layer.id() for layer in layers.values()}, "none removed"
    assert not root.findLayer(layers["mask"].id()).isVisible(), "the moved node keeps its state"
    arrange(root, [root.findLayer(layers[k].id()) for k in ("polygons", "probability", "mask")])
    assert names() == ["polygons", "probability", "mask", "between", "oldest"]


def test_plain_processing_run_attaches_no_post_processor(provider, scene, model, out_dir):
    context = QgsProcessingContext()
    path = str(out_dir / "landslides.gpkg")
    processing.run("landslide_mapper:map_landslides",
                   {"INPUT": str(scene), "MODEL": str(model), "OUTPUT_POLYGONS": path},
                   context=context)
    assert not context.willLoadLayerOnCompletion(path)

