"""GeoPackage layer destinations from QGIS: "Save to GeoPackage…" and ``|layername=``.

The algorithms write our layer into the GeoPackage and keep its others; QGIS's load-on-completion
entry follows the destination to ``file.gpkg|layername=NAME`` so the right layer is loaded.
"""

from __future__ import annotations

import fiona
import processing
import pytest
from qgis.core import QgsProcessingContext, QgsProject
from shapely.geometry import mapping

from landslide_mapper.processing.destinations import layer_destination, polygon_result
from tests.support import UTM, pixel_box

ALG = "landslide_mapper:map_landslides"


def _inventory(path):
    for name in ("roads", "landslides_2017"):
        with fiona.open(path, "w", driver="GPKG", layer=name, crs=UTM,
                        schema={"geometry": "Polygon", "properties": {"name": "str"}}) as dst:
            dst.write({"geometry": mapping(pixel_box(0, 2, 0, 2)), "properties": {"name": name}})
    return path


def test_ogr_uri_becomes_the_engines_spelling_and_the_load_entry_follows(tmp_path):
    context = QgsProcessingContext()
    uri = f"ogr:dbname='{tmp_path / 'inv.gpkg'}' table=\"scars\" (geom)"
    context.addLayerToLoadOnCompletion(
        uri, QgsProcessingContext.LayerDetails("scars", QgsProject.instance(), "OUTPUT"))
    assert layer_destination(uri, context) == f"{tmp_path / 'inv.gpkg'}|layername=scars"
    assert context.willLoadLayerOnCompletion(f"{tmp_path / 'inv.gpkg'}|layername=scars")
    assert not context.willLoadLayerOnCompletion(uri)
    assert layer_destination("/data/x.gpkg", context) == "/data/x.gpkg"


def test_result_names_our_layer_when_the_geopackage_holds_others(tmp_path):
    inv = _inventory(tmp_path / "inv.gpkg")
    context = QgsProcessingContext()
    assert polygon_result(str(inv), context) == f"{inv}|layername=landslides"
    alone = tmp_path / "alone.gpkg"
    with fiona.open(alone, "w", driver="GPKG", layer="landslides", crs=UTM,
                    schema={"geometry": "Polygon", "properties": {}}) as dst:
        dst.write({"geometry": mapping(pixel_box(0, 2, 0, 2)), "properties": {}})
    assert polygon_result(str(alone), context) == str(alone)


@pytest.mark.parametrize("spelling", ["ogr", "layername"])
def test_map_into_a_geopackage_keeps_its_layers(provider, scene, model, tmp_path, spelling):
    inv = _inventory(tmp_path / "inv.gpkg")
    others = {n: [dict(f.properties) for f in fiona.open(inv, layer=n)]
              for n in fiona.listlayers(inv)}
    dest = (f"ogr:dbname='{inv}' table=\"mapped\" (geom)" if spelling == "ogr"
            else f"{inv}|layername=mapped")
    result = processing.run(ALG, {"INPUT": str(scene), "MODEL": str(model), "DEVICE": "cpu",
                                  "OUTPUT_POLYGONS": dest})
    assert result["OUTPUT_POLYGONS"] == f"{inv}|layername=mapped"
    assert result["POLYGON_COUNT"] == 2
    assert fiona.listlayers(inv) == ["roads", "landslides_2017", "mapped"]
    assert {n: [dict(f.properties) for f in fiona.open(inv, layer=n)] for n in others} == others
