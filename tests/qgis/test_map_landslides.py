"""``landslide_mapper:map_landslides`` through ``processing.run`` on the two-rectangle scene.

Expected values come from the scene's construction (see conftest): rectangle sizes give the
polygon areas, the dummy model's formula gives the probabilities.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import processing
import pytest
import rasterio
from qgis.core import (
    QgsApplication,
    QgsPointXY,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsRasterLayer,
    QgsVectorLayer,
)

from landslide_mapper.core.errors import LandslideMapperError
from landslide_mapper.core.mapping.engine import map_landslides
from landslide_mapper.core.models.dummy import build_dummy_model
from tests.qgis.conftest import (
    BIAS,
    BIG,
    COLS,
    PIXEL_M,
    ROWS,
    SMALL,
    WEIGHTS,
    rect_area_m2,
    rect_perimeter_m,
    scene_data,
    sigmoid,
)
from tests.support import UTM_ORIGIN, make_raster

pytestmark = pytest.mark.qgis

ALG = "landslide_mapper:map_landslides"


def run(params: dict, feedback: QgsProcessingFeedback | None = None, context=None) -> dict:
    return processing.run(ALG, params, feedback=feedback, context=context)


def all_outputs(out_dir: Path) -> dict:
    return {
        "OUTPUT_PROBABILITY": str(out_dir / "probability.tif"),
        "OUTPUT_MASK": str(out_dir / "mask.tif"),
        "OUTPUT_POLYGONS": str(out_dir / "landslides.gpkg"),
    }


def features(path: str) -> list[dict]:
    layer = QgsVectorLayer(path, "polygons", "ogr")
    assert layer.isValid(), path
    return [
        {**dict(zip(layer.fields().names(), f.attributes())), "geometry_area": f.geometry().area()}
        for f in layer.getFeatures()
    ]


def test_maps_both_rectangles(provider, scene, model, out_dir):
    outputs = all_outputs(out_dir)
    result = run({"INPUT": str(scene), "MODEL": str(model), **outputs})

    assert result["POLYGON_COUNT"] == 2
    assert "CPU" in result["PROVIDER"] or "CUDA" in result["PROVIDER"]
    for key, path in outputs.items():
        assert result[key] == path
        assert Path(path).is_file()

    # Probability and mask on the input's grid, values from the model's formula.
    with rasterio.open(scene) as src, rasterio.open(outputs["OUTPUT_PROBABILITY"]) as prob, \
            rasterio.open(outputs["OUTPUT_MASK"]) as mask:
        for out in (prob, mask):
            assert (out.width, out.height) == (COLS, ROWS)
            assert out.transform == src.transform
            assert out.crs == src.crs
        p = prob.read(1)
        m = mask.read(1)
    inside = np.zeros((ROWS, COLS), bool)
    for r0, r1, c0, c1 in (BIG, SMALL):
        inside[r0:r1, c0:c1] = True
    expected = np.where(inside, sigmoid(WEIGHTS[0] + BIAS), sigmoid(BIAS))
    np.testing.assert_allclose(p, expected, atol=1e-5)
    np.testing.assert_array_equal(m, inside.astype(np.uint8))

    # QGIS reads the layers: the raster grid and the polygons with their area attributes.
    raster = QgsRasterLayer(outputs["OUTPUT_PROBABILITY"], "p")
    assert raster.isValid()
    assert (raster.width(), raster.height()) == (COLS, ROWS)
    assert raster.rasterUnitsPerPixelX() == pytest.approx(PIXEL_M)
    polys = sorted(features(outputs["OUTPUT_POLYGONS"]), key=lambda f: f["area_m2"])
    assert [f["area_m2"] for f in polys] == pytest.approx([rect_area_m2(SMALL), rect_area_m2(BIG)])
    assert [f["area_ha"] for f in polys] == pytest.approx(
        [rect_area_m2(SMALL) / 1e4, rect_area_m2(BIG) / 1e4])
    assert [f["perimeter_m"] for f in polys] == pytest.approx(
        [rect_perimeter_m(SMALL), rect_perimeter_m(BIG)])
    assert [f["geometry_area"] for f in polys] == pytest.approx([f["area_m2"] for f in polys])
    # One id column: the GeoPackage's feature id is named id (no fid beside it).
    assert [f["id"] for f in polys] == [2, 1] and "fid" not in polys[0]
    for f in polys:
        # Probabilities are written to 0.001.
        assert f["prob_mean"] == round(sigmoid(WEIGHTS[0] + BIAS), 3)
        assert f["model"] == "rectangles"


def test_min_area_drops_the_small_rectangle(provider, scene, model, out_dir):
    limit = (rect_area_m2(SMALL) + rect_area_m2(BIG)) / 2
    result = run({"INPUT": str(scene), "MODEL": str(model), "MIN_AREA_M2": limit,
                  "OUTPUT_POLYGONS": str(out_dir / "big_only.gpkg")})
    assert result["POLYGON_COUNT"] == 1
    [feature] = features(result["OUTPUT_POLYGONS"])
    assert feature["area_m2"] == pytest.approx(rect_area_m2(BIG))


def test_optional_rasters_are_skipped_when_not_asked_for(provider, scene, model, out_dir):
    result = run({"INPUT": str(scene), "MODEL": str(model),
                  "OUTPUT_POLYGONS": str(out_dir / "landslides.gpkg")})
    assert result["OUTPUT_PROBABILITY"] is None
    assert result["OUTPUT_MASK"] is None
    assert sorted(p.name for p in out_dir.iterdir()) == ["landslides.gpkg"]


def test_polygons_default_to_a_temporary_geopackage(provider, scene, model):
    result = run({"INPUT": str(scene), "MODEL": str(model)})
    assert result["OUTPUT_POLYGONS"].endswith(".gpkg")
    assert len(features(result["OUTPUT_POLYGONS"])) == 2


@pytest.fixture
def faint_scene(tmp_path: Path) -> Path:
    """BIG at probability ~0.993, SMALL at probability 0.4 (red = (logit(0.4) + 5) / 10)."""
    data = scene_data()
    r0, r1, c0, c1 = SMALL
    data[0, r0:r1, c0:c1] = (np.log(0.4 / 0.6) - BIAS) / WEIGHTS[0]
    return make_raster(tmp_path / "faint.tif", data, descriptions=["red", "green", "blue"])


@pytest.fixture
def low_threshold_model(tmp_path: Path) -> Path:
    path = tmp_path / "low.onnx"
    build_dummy_model(path, weights=WEIGHTS, bias=BIAS, name="low", threshold=0.3)
    return path


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [(None, 2), (0, 2), (-1, 2), (0.5, 1), (0.35, 2), (0.999, 0)],
)
def test_threshold_defaults_to_the_model_contract(
    provider, faint_scene, low_threshold_model, out_dir, threshold, expected
):
    """The contract says 0.3: SMALL (0.4) is mapped unless a higher threshold is given."""
    params = {"INPUT": str(faint_scene), "MODEL": str(low_threshold_model),
              "OUTPUT_POLYGONS": str(out_dir / "out.gpkg")}
    if threshold is not None:
        params["THRESHOLD"] = threshold
    assert run(params)["POLYGON_COUNT"] == expected


def test_tile_size_and_overlap_override_the_contract(provider, scene, model, out_dir):
    """Pointwise model: any valid tiling gives the same map; a bad one gets the core's message."""
    result = run({"INPUT": str(scene), "MODEL": str(model), "TILE_SIZE": 32, "OVERLAP": 0,
                  "OUTPUT_MASK": str(out_dir / "mask.tif"),
                  "OUTPUT_POLYGONS": str(out_dir / "out.gpkg")})
    assert result["POLYGON_COUNT"] == 2
    with pytest.raises(LandslideMapperError) as core:
        map_landslides(scene, model, polygons_path=out_dir / "core.gpkg", tile_size=40)
    with pytest.raises(QgsProcessingException, match="multiple of 32") as qgis_error:
        run({"INPUT": str(scene), "MODEL": str(model), "TILE_SIZE": 40,
             "OUTPUT_POLYGONS": str(out_dir / "bad.gpkg")})
    assert str(core.value) in str(qgis_error.value)


def test_explicit_bands_and_uint8_probability(provider, tmp_path, model, out_dir):
    """Bands stored as (blue, green, red): BANDS=[3, 2, 1] feeds red first."""
    data = scene_data()[::-1].copy()
    reordered = make_raster(tmp_path / "bgr.tif", data)  # no descriptions: order would be wrong
    result = run({"INPUT": str(reordered), "MODEL": str(model), "BANDS": [3, 2, 1],
                  "PROBABILITY_FORMAT": "uint8",
                  "OUTPUT_PROBABILITY": str(out_dir / "p.tif"),
                  "OUTPUT_POLYGONS": str(out_dir / "out.gpkg")})
    assert result["POLYGON_COUNT"] == 2
    with rasterio.open(result["OUTPUT_PROBABILITY"]) as ds:
        assert ds.dtypes[0] == "uint8"
    # QGIS applies the recorded scale, so the 0..1 probability style fits this raster too.
    layer = QgsRasterLayer(result["OUTPUT_PROBABILITY"], "p")
    r0, _, c0, _ = BIG
    x, y = UTM_ORIGIN * (c0 + 0.5, r0 + 0.5)
    value, ok = layer.dataProvider().sample(QgsPointXY(x, y), 1)
    assert ok and value == pytest.approx(sigmoid(WEIGHTS[0] + BIAS), abs=1 / 254)


@pytest.mark.parametrize("device", ["cpu", 1, "1"])
def test_device_by_name_or_index(provider, scene, model, out_dir, device):
    result = run({"INPUT": str(scene), "MODEL": str(model), "DEVICE": device,
                  "OUTPUT_POLYGONS": str(out_dir / "out.gpkg")})
    assert result["PROVIDER"] == "CPUExecutionProvider"


def test_unknown_device_is_refused(provider, scene, model, out_dir):
    with pytest.raises(QgsProcessingException, match="DEVICE"):
        run({"INPUT": str(scene), "MODEL": str(model), "DEVICE": "tpu",
             "OUTPUT_POLYGONS": str(out_dir / "out.gpkg")})
    assert list(out_dir.iterdir()) == []


def test_model_by_bundled_name_index_and_custom_file(provider, scene, model, out_dir, monkeypatch):
    monkeypatch.setenv("LANDSLIDE_MAPPER_MODELS", str(model.parent))
    from landslide_mapper.processing.map_landslides import model_options

    options = model_options(auto=True)
    assert options[0].startswith("auto — ") and options[-1] == "Custom .onnx file…"
    assert options[1] == "rectangles — Dummy linear model (for tests · not for mapping)"
    base = {"INPUT": str(scene)}
    variants = [
        {"MODEL": "rectangles"},
        {"MODEL": options[1]},
        {"MODEL": 1},
        {"MODEL": "1"},
        {"MODEL": "Custom .onnx file…", "MODEL_FILE": str(model)},
        {"MODEL_FILE": str(model)},
    ]
    for i, variant in enumerate(variants):
        result = run({**base, **variant, "OUTPUT_POLYGONS": str(out_dir / f"v{i}.gpkg")})
        assert result["POLYGON_COUNT"] == 2, variant


class Log(QgsProcessingFeedback):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def pushInfo(self, info: str) -> None:
        self.lines.append(info)
        super().pushInfo(info)


def test_auto_is_the_default_and_logs_which_model_and_why(provider, scene, model, out_dir,
                                                          monkeypatch):
    monkeypatch.setenv("LANDSLIDE_MAPPER_MODELS", str(model.parent))
    alg = QgsApplication.processingRegistry().createAlgorithmById(ALG)
    assert alg.parameterDefinition("MODEL").defaultValue().startswith("auto — ")
    feedback = Log()
    result = run({"INPUT": str(scene), "OUTPUT_POLYGONS": str(out_dir / "auto.gpkg")},
                 feedback=feedback)
    assert result["POLYGON_COUNT"] == 2
    chosen = [line for line in feedback.lines if line.startswith("Model auto: ")]
    assert chosen and chosen[0].startswith(
        "Model auto: rectangles chosen for scene (3 bands described red, green, blue; 10 m "
        "pixels): all 3 bands matched by their descriptions; pixel size 10 m suits")
    assert any(line.startswith("Other models: ") for line in feedback.lines)


def test_auto_refuses_a_raster_no_model_fits_and_says_why(provider, out_dir, tmp_path):
    dem = make_raster(tmp_path / "dem.tif", np.ones((8, 8), np.float32), descriptions=["dem_m"])
    with pytest.raises(QgsProcessingException) as err:
        run({"INPUT": str(dem), "MODEL": "auto", "OUTPUT_POLYGONS": str(out_dir / "x.gpkg")})
    text = str(err.value)
    assert text.startswith("Model auto: no bundled model fits dem (1 band described dem_m; "
                           "10 m pixels).")
    assert "does not fit: needs 3 bands" in text and "Choose a model" in text
    assert list(out_dir.iterdir()) == []


def test_default_minimum_area_drops_specks_zero_keeps_them(provider, model, out_dir, tmp_path):
    from landslide_mapper.core.polygons import DEFAULT_MIN_PIXELS

    data = scene_data()
    data[0, 70, 5:5 + DEFAULT_MIN_PIXELS - 1] = 1.0          # a speck one pixel short
    speckled = make_raster(tmp_path / "speckled.tif", data, descriptions=["red", "green", "blue"])
    by_default = run({"INPUT": str(speckled), "MODEL": str(model),
                      "OUTPUT_POLYGONS": str(out_dir / "default.gpkg")})
    keep_all = run({"INPUT": str(speckled), "MODEL": str(model), "MIN_AREA_M2": 0,
                    "OUTPUT_POLYGONS": str(out_dir / "all.gpkg")})
    assert (by_default["POLYGON_COUNT"], keep_all["POLYGON_COUNT"]) == (2, 3)
    alg = QgsApplication.processingRegistry().createAlgorithmById(ALG)
    param = alg.parameterDefinition("MIN_AREA_M2")
    assert param.defaultValue() is None
    assert f"under {DEFAULT_MIN_PIXELS} pixels" in param.description()
    assert f"fewer than {DEFAULT_MIN_PIXELS} pixels" in alg.shortHelpString()


@pytest.mark.parametrize(
    ("model_value", "message"),
    [
        ("no_such_model", "not a bundled model"),
        ("/nowhere/model.onnx", "file not found"),
    ],
)
def test_unknown_model_is_refused_with_the_core_message(provider, scene, out_dir, model_value,
                                                         message):
    with pytest.raises(LandslideMapperError) as core:
        map_landslides(scene, model_value, polygons_path=out_dir / "core.gpkg")
    with pytest.raises(QgsProcessingException, match=message) as qgis_error:
        run({"INPUT": str(scene), "MODEL": model_value,
             "OUTPUT_POLYGONS": str(out_dir / "out.gpkg")})
    assert str(core.value) in str(qgis_error.value)
    assert list(out_dir.iterdir()) == []


def test_custom_model_without_a_file_is_refused(provider, scene, out_dir):
    with pytest.raises(QgsProcessingException, match="MODEL_FILE"):
        run({"INPUT": str(scene), "MODEL": "Custom .onnx file…",
             "OUTPUT_POLYGONS": str(out_dir / "out.gpkg")})


def test_model_without_contract_is_refused_with_the_core_message(provider, scene, model,
                                                                 tmp_path, out_dir):
    import onnx

    bare = onnx.load(str(model))
    del bare.metadata_props[:]
    bare_path = tmp_path / "bare.onnx"
    onnx.save_model(bare, str(bare_path))
    with pytest.raises(LandslideMapperError) as core:
        map_landslides(scene, bare_path, polygons_path=out_dir / "core.gpkg")
    with pytest.raises(QgsProcessingException, match="no Landslide Mapper contract") as qgis_error:
        run({"INPUT": str(scene), "MODEL": str(bare_path),
             "OUTPUT_POLYGONS": str(out_dir / "out.gpkg")})
    assert str(core.value) in str(qgis_error.value)


def test_band_count_mismatch_is_refused_with_the_core_message(provider, tmp_path, model, out_dir):
    two_bands = make_raster(tmp_path / "two.tif", scene_data()[:2])
    with pytest.raises(LandslideMapperError) as core:
        map_landslides(two_bands, model, polygons_path=out_dir / "core.gpkg")
    with pytest.raises(QgsProcessingException) as qgis_error:
        run({"INPUT": str(two_bands), "MODEL": str(model),
             "OUTPUT_POLYGONS": str(out_dir / "out.gpkg")})
    assert str(core.value) in str(qgis_error.value)
    assert list(out_dir.iterdir()) == []


def test_cancel_leaves_no_outputs(provider, tmp_path, model, out_dir):
    """Cancelled from the progress signal, as the dialog's Cancel button does mid-run."""
    big = np.zeros((3, 512, 512), np.float32)
    big[0, 100:300, 100:300] = 1.0
    scene = make_raster(tmp_path / "big.tif", big, descriptions=["red", "green", "blue"])
    feedback = QgsProcessingFeedback()
    seen = []

    def cancel_once_started(percent: float) -> None:
        seen.append(percent)
        if percent > 0:
            feedback.cancel()

    feedback.progressChanged.connect(cancel_once_started)
    with pytest.raises(QgsProcessingException, match="(?i)cancel"):
        run({"INPUT": str(scene), "MODEL": str(model), "TILE_SIZE": 32, "OVERLAP": 0,
             **all_outputs(out_dir)}, feedback=feedback)
    assert seen, "the run reported no progress before being cancelled"
    assert list(out_dir.iterdir()) == []


def test_cancel_before_start_leaves_no_outputs(provider, scene, model, out_dir):
    feedback = QgsProcessingFeedback()
    feedback.cancel()
    with pytest.raises(QgsProcessingException):
        run({"INPUT": str(scene), "MODEL": str(model), **all_outputs(out_dir)},
            feedback=feedback)
    assert list(out_dir.iterdir()) == []


def test_progress_reaches_100_and_is_monotonic(provider, scene, model, out_dir):
    feedback = QgsProcessingFeedback()
    seen: list[float] = []
    feedback.progressChanged.connect(seen.append)
    run({"INPUT": str(scene), "MODEL": str(model), **all_outputs(out_dir)}, feedback=feedback)
    assert seen and seen[-1] == pytest.approx(100.0)
    assert all(b >= a - 1e-9 for a, b in zip(seen, seen[1:]))


def test_raster_layer_object_as_input(provider, scene, model, out_dir):
    layer = QgsRasterLayer(str(scene), "scene")
    result = run({"INPUT": layer, "MODEL": str(model),
                  "OUTPUT_POLYGONS": str(out_dir / "out.gpkg")})
    assert result["POLYGON_COUNT"] == 2


def test_non_file_raster_layer_is_refused():
    """A layer not read by GDAL from a file gets a clear message instead of a rasterio error."""
    from landslide_mapper.processing.algorithm import layer_file

    class WmsLayer:
        def providerType(self):
            return "wms"

        def name(self):
            return "Basemap"

        def source(self):
            return "crs=EPSG:3857&format=image/png&type=xyz&url=https://tile.example/{z}/{x}/{y}.png"

    with pytest.raises(QgsProcessingException, match="Export the layer to a GeoTIFF"):
        layer_file(WmsLayer(), "INPUT")


def test_geographic_raster_areas_are_geodesic(provider, tmp_path, model, out_dir):
    """On EPSG:4326 the polygon areas are on the ellipsoid (checked with pyproj's Geod)."""
    from pyproj import Geod
    from rasterio.transform import from_origin

    step = 0.0001  # degrees, ~11 m
    transform = from_origin(138.0, 36.0, step, step)
    scene = make_raster(tmp_path / "geo.tif", scene_data(), crs="EPSG:4326", transform=transform,
                        descriptions=["red", "green", "blue"])
    contract_model = tmp_path / "geo.onnx"
    build_dummy_model(contract_model, weights=WEIGHTS, bias=BIAS, name="geo", pixel_size_m=10.0,
                      pixel_size_tolerance=0.5)
    result = run({"INPUT": str(scene), "MODEL": str(contract_model),
                  "OUTPUT_POLYGONS": str(out_dir / "geo.gpkg")})
    assert result["POLYGON_COUNT"] == 2
    geod = Geod(ellps="WGS84")
    expected = []
    for r0, r1, c0, c1 in (SMALL, BIG):
        x0, x1 = 138.0 + c0 * step, 138.0 + c1 * step
        y0, y1 = 36.0 - r1 * step, 36.0 - r0 * step
        area, _ = geod.polygon_area_perimeter([x0, x1, x1, x0], [y0, y0, y1, y1])
        expected.append(abs(area))
    polys = sorted(features(result["OUTPUT_POLYGONS"]), key=lambda f: f["area_m2"])
    assert [f["area_m2"] for f in polys] == pytest.approx(expected, rel=0.02)


def test_the_scene_fixture_is_what_the_tests_assume(scene):
    """Guards the hand calculations above against a change in the fixture."""
    with rasterio.open(scene) as ds:
        assert ds.transform == UTM_ORIGIN and ds.res == (PIXEL_M, PIXEL_M)
        red = ds.read(1)
    assert int(red.sum()) == (rect_area_m2(BIG) + rect_area_m2(SMALL)) / PIXEL_M**2


def test_device_and_format_choices_are_the_engines():
    from landslide_mapper.core.mapping import engine
    from landslide_mapper.core.models import runtime
    from landslide_mapper.processing import map_landslides as alg_module

    assert alg_module.DEVICES == runtime.DEVICES
    assert alg_module.PROBABILITY_FORMATS == engine.PROBABILITY_FORMATS


def test_cuda_device_runs_on_cuda_or_says_why_not(provider, scene, model, out_dir):
    import onnxruntime

    params = {"INPUT": str(scene), "MODEL": str(model), "DEVICE": "cuda",
              "OUTPUT_POLYGONS": str(out_dir / "out.gpkg")}
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        assert run(params)["PROVIDER"] == "CUDAExecutionProvider"
    else:
        with pytest.raises(QgsProcessingException, match="Device 'cuda'"):
            run(params)
        assert list(out_dir.iterdir()) == []


def test_dem_supplies_the_slope_band_the_model_wants(provider, tmp_path, out_dir):
    """A model with a slope band maps a 1-band raster when given a DEM (slope derived on the fly)."""
    from rasterio.transform import from_origin

    red = make_raster(tmp_path / "red.tif", np.full((1, 64, 64), 50, np.uint8),
                      descriptions=["red"])
    x = 500000.0 - 100 + 20.0 * (np.arange(52) + 0.5)
    z = np.where(x < 500320, 100.0, 100.0 + (x - 500320))  # flat, then 45 degrees east of 500320
    make_raster(tmp_path / "dem.tif", np.tile(z, (44, 1)).astype(np.float32),
                transform=from_origin(499900, 4000100, 20, 20))
    model = tmp_path / "slope.onnx"
    build_dummy_model(model, bands=["red", "slope_deg"], weights=[0, 1], bias=-30,
                      tile_size=32, overlap=8)
    params = {"INPUT": str(red), "DEM": str(tmp_path / "dem.tif"), "MODEL": str(model),
              "OUTPUT_MASK": str(out_dir / "mask.tif"),
              "OUTPUT_POLYGONS": str(out_dir / "polygons.gpkg")}
    result = run(params)
    assert result["POLYGON_COUNT"] == 1
    with rasterio.open(out_dir / "mask.tif") as mask:
        m = mask.read(1)
    assert (m[:, :28] == 0).all() and (m[:, 36:] == 1).all()
    del params["DEM"]
    with pytest.raises(QgsProcessingException, match="slope_deg"):
        run(params)


def test_values_off_the_model_range_are_refused_unless_rescaled(provider, scene, tmp_path,
                                                               out_dir):
    """A 0..1 scene into a model stating 8-bit values: refused, or with RESCALE mapped x 255."""
    ranged = tmp_path / "ranged.onnx"
    build_dummy_model(ranged, weights=WEIGHTS, bias=BIAS, name="ranged", pixel_size_m=PIXEL_M,
                      tile_size=64, overlap=16,
                      bands=[{"name": n, "value_range": [0, 255], "dtype": "uint8"}
                             for n in ("red", "green", "blue")])
    params = {"INPUT": str(scene), "MODEL": str(ranged),
              "OUTPUT_POLYGONS": str(out_dir / "ls.gpkg")}
    with pytest.raises(QgsProcessingException, match="far below what the model 'ranged' expects"):
        run(params)
    assert not list(out_dir.iterdir())
    result = run(dict(params, RESCALE=True))
    assert result["POLYGON_COUNT"] == 2


def test_dem_gives_polygons_their_slope_and_minimum_slope_drops_the_flat_one(
        provider, scene, model, tmp_path, out_dir):
    """An RGB model with a DEM: flat west of column 50, a 30-degree plane east of it. The big
    rectangle (columns 20-40) lies on the flat, the small one (columns 60-68) on the plane."""
    x = 500000.0 + 10.0 * (np.arange(COLS) + 0.5)
    z = np.where(x < 500500, 100.0, 100.0 + (x - 500500) * np.tan(np.radians(30.0)))
    dem = make_raster(tmp_path / "dem.tif", np.tile(z, (ROWS, 1)).astype(np.float32))
    params = {"INPUT": str(scene), "MODEL": str(model), "DEM": str(dem),
              "OUTPUT_POLYGONS": str(out_dir / "all.gpkg")}
    result = run(params)
    slopes = sorted((f["slope_mean"], f["elev_min"] <= f["elev_max"])
                    for f in features(result["OUTPUT_POLYGONS"]))
    assert [s for s, _ in slopes] == [pytest.approx(0.0, abs=0.05), pytest.approx(30.0, abs=0.05)]
    assert all(ordered for _, ordered in slopes)

    feedback = QgsProcessingFeedback()
    logged = []
    feedback.pushInfo = logged.append
    result = run(dict(params, MIN_SLOPE=10.0, TTA=True,
                      OUTPUT_POLYGONS=str(out_dir / "steep.gpkg")), feedback=feedback)
    assert result["POLYGON_COUNT"] == 1
    [steep] = features(result["OUTPUT_POLYGONS"])
    assert steep["area_m2"] == pytest.approx(rect_area_m2(SMALL))
    assert any("1 polygon (" in line and "dropped" in line for line in logged)
    assert any("Test-time augmentation" in line for line in logged)
    del params["DEM"]
    with pytest.raises(QgsProcessingException, match="Minimum slope"):
        run(dict(params, MIN_SLOPE=10.0))
