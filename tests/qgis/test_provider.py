"""The provider loads into QGIS Processing with its algorithms, documented as a geologist needs."""

from __future__ import annotations

import pytest
from qgis.core import QgsApplication, QgsProcessingParameterDefinition

pytestmark = pytest.mark.qgis

ALGORITHMS = {
    "landslide_mapper:map_landslides": "Map landslides",
    "landslide_mapper:map_many": "Map landslides (many rasters)",
    "landslide_mapper:vectorize_mask": "Vectorize landslide mask",
    "landslide_mapper:prepare_sentinel2_stack": "Prepare Sentinel-2 stack",
    "landslide_mapper:export_training_chips": "Export training chips",
    "landslide_mapper:train_model": "Train landslide model",
    "landslide_mapper:evaluate_landslides": "Evaluate landslide map",
    "landslide_mapper:install_dependencies": "Install Python packages",
}
ADVANCED = {
    "landslide_mapper:map_landslides": {
        "TILE_SIZE", "OVERLAP", "BATCH_SIZE", "DEVICE", "FILL_HOLES_M2", "BANDS",
        "PROBABILITY_FORMAT", "RESCALE", "SLOPE", "MIN_SLOPE", "TTA",
    },
    "landslide_mapper:map_many": {"WORKERS", "FORCE", "FILL_HOLES_M2", "SLOPE", "MIN_SLOPE"},
    "landslide_mapper:vectorize_mask": {"FILL_HOLES_M2", "SLOPE", "MIN_SLOPE"},
    "landslide_mapper:prepare_sentinel2_stack": {"B10_FILL"},
    "landslide_mapper:export_training_chips": {"BLOCK_SIZE", "SEED", "BANDS"},
    "landslide_mapper:train_model": {"BATCH_SIZE", "LEARNING_RATE", "DEVICE", "THREADS",
                                     "MAX_STEPS"},
    "landslide_mapper:evaluate_landslides": {"PIXEL_SIZE"},
    "landslide_mapper:install_dependencies": {"RUNTIME", "INDEX_URL", "PYTHON", "REINSTALL",
                                              "LOCK"},
}


def test_provider_is_registered_with_both_algorithms(provider):
    registry = QgsApplication.processingRegistry()
    assert registry.providerById("landslide_mapper") is provider
    assert provider.name() == "Landslide Mapper"
    assert not provider.icon().isNull()
    ids = {alg.id() for alg in provider.algorithms()}
    assert ids == set(ALGORITHMS)
    for alg_id, title in ALGORITHMS.items():
        alg = registry.algorithmById(alg_id)
        assert alg is not None, alg_id
        assert alg.displayName() == title
        assert alg.group() == "Landslide mapping"
        assert len(alg.shortHelpString()) > 200


@pytest.mark.parametrize("alg_id", sorted(ALGORITHMS))
def test_every_parameter_has_help_and_expert_options_are_advanced(provider, alg_id):
    alg = QgsApplication.processingRegistry().algorithmById(alg_id)
    advanced = set()
    for param in alg.parameterDefinitions():
        assert param.name() == param.name().upper()
        assert len(param.help()) > 20, f"{alg_id} {param.name()} has no help text"
        if param.flags() & QgsProcessingParameterDefinition.FlagAdvanced:
            advanced.add(param.name())
    assert advanced == ADVANCED[alg_id]


def test_map_landslides_parameters_and_outputs(provider):
    alg = QgsApplication.processingRegistry().algorithmById("landslide_mapper:map_landslides")
    params = {p.name(): p for p in alg.parameterDefinitions()}
    assert set(params) == {
        "INPUT", "DEM", "MODEL", "MODEL_FILE", "THRESHOLD", "TILE_SIZE", "OVERLAP", "BATCH_SIZE",
        "DEVICE", "MIN_AREA_M2", "SIMPLIFY_M", "FILL_HOLES_M2", "BANDS", "PROBABILITY_FORMAT",
        "RESCALE", "OUTPUT_PROBABILITY", "OUTPUT_MASK", "OUTPUT_POLYGONS", "SLOPE", "MIN_SLOPE",
        "TTA", "OUTPUT_REPORT",
    }
    optional = {n for n, p in params.items()
                if p.flags() & QgsProcessingParameterDefinition.FlagOptional}
    assert {"DEM", "THRESHOLD", "TILE_SIZE", "OVERLAP", "MODEL_FILE", "BANDS",
            "OUTPUT_PROBABILITY", "OUTPUT_MASK", "SLOPE", "OUTPUT_REPORT"} <= optional
    assert "OUTPUT_POLYGONS" not in optional and "INPUT" not in optional
    assert params["MODEL"].options()[-1] == "Custom .onnx file…"
    assert params["DEVICE"].options() == ["auto", "cpu", "cuda"]
    outputs = {o.name() for o in alg.outputDefinitions()}
    assert outputs == {"OUTPUT_PROBABILITY", "OUTPUT_MASK", "OUTPUT_POLYGONS",
                       "OUTPUT_REPORT", "POLYGON_COUNT", "PROVIDER"}
    assert provider.defaultVectorFileExtension(True) == "gpkg"
    assert provider.defaultRasterFileExtension() == "tif"


def test_map_many_parameters_and_outputs(provider):
    alg = QgsApplication.processingRegistry().algorithmById("landslide_mapper:map_many")
    params = {p.name(): p for p in alg.parameterDefinitions()}
    assert set(params) == {
        "INPUT", "MODEL", "MODEL_FILE", "THRESHOLD", "MIN_AREA_M2", "SIMPLIFY_M", "FILL_HOLES_M2",
        "SLOPE", "MIN_SLOPE", "CRS", "WORKERS", "FORCE", "OUTPUT_FOLDER",
    }
    optional = {n for n, p in params.items()
                if p.flags() & QgsProcessingParameterDefinition.FlagOptional}
    assert {"SLOPE", "MODEL_FILE", "THRESHOLD", "CRS"} <= optional
    assert params["MIN_SLOPE"].defaultValue() == 0.0
    assert {o.name() for o in alg.outputDefinitions()} == {
        "OUTPUT_FOLDER", "OUTPUT_POLYGONS", "OUTPUT_SUMMARY", "MAPPED", "FAILED", "POLYGON_COUNT"}


def test_vectorize_mask_parameters_and_outputs(provider):
    alg = QgsApplication.processingRegistry().algorithmById("landslide_mapper:vectorize_mask")
    assert {p.name() for p in alg.parameterDefinitions()} == {
        "INPUT", "THRESHOLD", "PROBABILITY", "MIN_AREA_M2", "FILL_HOLES_M2", "SIMPLIFY_M",
        "OUTPUT_POLYGONS", "DEM", "SLOPE", "MIN_SLOPE",
    }
    assert {o.name() for o in alg.outputDefinitions()} == {
        "OUTPUT_POLYGONS", "POLYGON_COUNT", "TOTAL_AREA_M2"}


def test_help_lists_the_bundled_models(provider, model, monkeypatch):
    monkeypatch.setenv("LANDSLIDE_MAPPER_MODELS", str(model.parent))
    alg = QgsApplication.processingRegistry().createAlgorithmById("landslide_mapper:map_landslides")
    text = alg.shortHelpString()
    assert "<b>rectangles</b>: Dummy linear model" in text
    model_param = alg.parameterDefinition("MODEL")
    options = model_param.options()  # folders in LANDSLIDE_MAPPER_MODELS come first
    assert options[0].startswith("auto — ") and options[-1] == "Custom .onnx file…"
    assert options[1] == "rectangles — Dummy linear model (for tests · not for mapping)"
    assert model_param.defaultValue() == options[0]
