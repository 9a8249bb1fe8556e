"""``landslide_mapper:prepare_sentinel2_stack`` through ``processing.run`` on the fixture products.

Expected values: the fixture bands are the plane ``make_fixtures.field`` (see that script).
"""

from __future__ import annotations

import sys
from pathlib import Path

import processing
import pytest
import rasterio
from qgis.core import QgsProcessingException, QgsVectorLayer

from landslide_mapper.processing.prepare_sentinel2_stack import PrepareSentinel2StackAlgorithm
from tests.support import REPO

sys.path.insert(0, str(REPO))
from scripts import make_fixtures as fx  # noqa: E402

pytestmark = pytest.mark.qgis


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> dict[str, Path]:
    return fx.make_all(tmp_path_factory.mktemp("s2"))


def run(params: dict) -> dict:
    return processing.run(PrepareSentinel2StackAlgorithm(), params)


def test_level2a_zip_with_dem_in_l4s_order(qgis_processing, fixtures, tmp_path):
    out = tmp_path / "stack.tif"
    result = run({"INPUT": str(fixtures["l2a_zip"]), "DEM": str(fixtures["dem_utm"]),
                  "MODEL": 1, "OUTPUT": str(out)})
    assert result["OUTPUT"] == str(out)
    names = result["BANDS"].split(",")
    assert names[:2] == ["sentinel2:B01", "sentinel2:B02"] and names[-2:] == ["slope_deg", "dem_m"]
    with rasterio.open(out) as ds:
        assert ds.count == 14 and ds.descriptions[9] == "sentinel2:B10"
        b02 = ds.read(2)
        slope = ds.read(13)
    # offset -1000 applied: B02 at pixel (30, 40) is the field at its centre
    x, y = fx.X0 + 405, fx.Y0 - 305
    assert b02[30, 40] == pytest.approx(float(fx.field("B02", x, y)))
    assert slope[30, 10] == pytest.approx(45.0, abs=1e-3)


def test_metadata_file_stands_for_the_safe_folder_and_polygon_aoi(qgis_processing, fixtures,
                                                                  tmp_path):
    aoi = tmp_path / "aoi.geojson"
    aoi.write_text(
        '{"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": '
        '"urn:ogc:def:crs:EPSG::32654"}}, "features": [{"type": "Feature", "properties": {}, '
        f'"geometry": {{"type": "Polygon", "coordinates": [[[{fx.X0 + 100}, {fx.Y0 - 100}], '
        f'[{fx.X0 + 300}, {fx.Y0 - 100}], [{fx.X0 + 100}, {fx.Y0 - 300}], '
        f'[{fx.X0 + 100}, {fx.Y0 - 100}]]]}}}}]}}')
    layer = QgsVectorLayer(str(aoi), "aoi", "ogr")
    assert layer.isValid()
    out = tmp_path / "cut.tif"
    run({"INPUT": str(fixtures["l1c"] / "MTD_MSIL1C.xml"), "AOI": layer,
         "MODEL": "Every band found (+ slope and DEM when a DEM is given)", "OUTPUT": str(out)})
    with rasterio.open(out) as ds:
        assert ds.shape == (20, 20) and ds.count == 13
        b = ds.read(2)
    assert b[0, 0] != ds.nodata and b[-1, -1] == ds.nodata  # outside the triangle


def test_extent_aoi_and_model_file(qgis_processing, fixtures, tmp_path):
    from landslide_mapper.core.models.dummy import build_dummy_model

    model = tmp_path / "m.onnx"
    build_dummy_model(model, bands=["sentinel2:B04", "sentinel2:B03", "sentinel2:B02"])
    out = tmp_path / "rgb.tif"
    extent = f"{fx.X0},{fx.X0 + 200},{fx.Y0 - 100},{fx.Y0} [EPSG:32654]"
    result = run({"INPUT": str(fixtures["l1c"]), "AOI": extent, "MODEL": str(model),
                  "OUTPUT": str(out)})
    assert result["BANDS"] == "sentinel2:B04,sentinel2:B03,sentinel2:B02"
    with rasterio.open(out) as ds:
        assert ds.shape == (10, 20)


def test_bad_input_becomes_a_processing_error(qgis_processing, fixtures, tmp_path):
    with pytest.raises(QgsProcessingException, match="dem_far.tif.*does not overlap"):
        run({"INPUT": str(fixtures["l1c"]), "DEM": str(fixtures["dem_far"]), "MODEL": 1,
             "OUTPUT": str(tmp_path / "x.tif")})
    assert not (tmp_path / "x.tif").exists()


def test_registered_documented_and_expert_options_advanced(provider):
    from qgis.core import QgsApplication, QgsProcessingParameterDefinition

    alg = QgsApplication.processingRegistry().algorithmById(
        "landslide_mapper:prepare_sentinel2_stack")
    assert alg is not None and alg.displayName() == "Prepare Sentinel-2 stack"
    assert alg.group() == "Landslide mapping" and len(alg.shortHelpString()) > 200
    params = {p.name(): p for p in alg.parameterDefinitions()}
    assert set(params) == {"INPUT", "DEM", "SLOPE", "AOI", "MODEL", "B10_FILL", "OUTPUT"}
    for p in params.values():
        assert len(p.help()) > 20, p.name()
    advanced = {n for n, p in params.items()
                if p.flags() & QgsProcessingParameterDefinition.FlagAdvanced}
    optional = {n for n, p in params.items()
                if p.flags() & QgsProcessingParameterDefinition.FlagOptional}
    assert advanced == {"B10_FILL"} and {"DEM", "SLOPE", "AOI"} <= optional
