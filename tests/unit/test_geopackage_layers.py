"""A GeoPackage is a container: our layer goes in, the others stay, a failure changes nothing.

``inventory.gpkg`` holds ``roads`` and ``landslides_2017``; map, vectorize and evaluate write their
layer into it (``landslides`` by default, or the one named), replace only that layer, and leave the
file byte-identical when anything fails. Also the misleading messages of item 9: a raster placed
only by ground control points, a folder given as the model, a bad polygon extension.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import fiona
import numpy as np
import pytest
import rasterio
from rasterio.control import GroundControlPoint
from shapely.geometry import mapping

from landslide_mapper.core.errors import InputError, ModelError, OutputError
from landslide_mapper.core.polygons import geopackage
from landslide_mapper.core.polygons.vectorize import vectorize_mask
from tests.support import UTM, make_raster, pixel_box

OTHERS = {"roads": 3, "landslides_2017": 2}


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def features(path: Path, layer: str) -> list[tuple]:
    with fiona.open(path, layer=layer) as src:
        return [(f.id, dict(f.properties), f.geometry["coordinates"]) for f in src]


@pytest.fixture
def inventory(tmp_path) -> Path:
    """A GeoPackage with two layers of somebody's work."""
    path = tmp_path / "inventory.gpkg"
    for name, n in OTHERS.items():
        schema = {"geometry": "Polygon", "properties": {"name": "str", "year": "int"}}
        with fiona.open(path, "w", driver="GPKG", layer=name, schema=schema, crs=UTM) as dst:
            for k in range(n):
                dst.write({"geometry": mapping(pixel_box(k, k + 1, 0, 2)),
                           "properties": {"name": f"{name}-{k}", "year": 2017}})
    return path


@pytest.fixture
def mask(tmp_path) -> Path:
    m = np.zeros((40, 40), np.uint8)
    m[5:10, 5:10] = 1
    m[20:30, 20:25] = 1
    return make_raster(tmp_path / "mask.tif", m)


def test_vectorize_adds_its_layer_and_keeps_the_others(inventory, mask):
    kept = {name: features(inventory, name) for name in OTHERS}
    result = vectorize_mask(mask, inventory)
    assert result.layer_name == "landslides" and result.count == 2
    assert fiona.listlayers(inventory) == [*OTHERS, "landslides"]
    assert {name: features(inventory, name) for name in OTHERS} == kept
    # again, with fewer landslides: only our layer is replaced
    result = vectorize_mask(mask, inventory, min_area_m2=3000)
    assert result.count == 1 and len(features(inventory, "landslides")) == 1
    assert {name: features(inventory, name) for name in OTHERS} == kept
    assert sorted(p.name for p in inventory.parent.iterdir()) == ["inventory.gpkg", "mask.tif"]


def test_the_layer_by_name_replaces_only_that_layer(inventory, mask):
    kept = features(inventory, "roads")
    vectorize_mask(mask, f"{inventory}|layername=LANDSLIDES_2017")  # names ignore case
    assert sorted(fiona.listlayers(inventory)) == ["LANDSLIDES_2017", "roads"]
    assert len(features(inventory, "LANDSLIDES_2017")) == 2
    assert features(inventory, "roads") == kept
    vectorize_mask(mask, inventory, layer_name="scars_2024")
    assert "scars_2024" in fiona.listlayers(inventory)


def test_a_failure_leaves_the_geopackage_byte_identical(inventory, mask, monkeypatch):
    before = digest(inventory)

    def broken(staged, work, name):
        with fiona.open(str(work), "w", driver="GPKG", layer=name,
                        schema={"geometry": "Polygon", "properties": {}}, crs=UTM) as dst:
            dst.write({"geometry": mapping(pixel_box(0, 1, 0, 1)), "properties": {}})
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(geopackage, "_copy_layer", broken)
    with pytest.raises(OutputError) as e:
        vectorize_mask(mask, inventory)
    msg = str(e.value)
    assert str(inventory) in msg and "left as it was" in msg and "partial" not in msg
    assert digest(inventory) == before
    assert sorted(p.name for p in inventory.parent.iterdir()) == ["inventory.gpkg", "mask.tif"]


def test_a_failed_check_of_the_copy_replaces_nothing(inventory, mask, monkeypatch):
    before = digest(inventory)
    monkeypatch.setattr(geopackage, "_remove_layer", lambda path, name: None)
    real_counts = geopackage._counts
    calls = []

    def lossy(path):  # the second count (after the merge) finds a layer shorter than before
        counts = real_counts(path)
        calls.append(1)
        if len(calls) > 1:
            counts["roads"] -= 1
        return counts

    monkeypatch.setattr(geopackage, "_counts", lossy)
    with pytest.raises(OutputError, match="roads"):
        vectorize_mask(mask, inventory)
    assert digest(inventory) == before


def test_a_geopackage_open_elsewhere_is_refused_up_front(inventory, mask):
    wal = inventory.with_name(inventory.name + "-wal")
    wal.write_bytes(b"")
    before = digest(inventory)
    with pytest.raises(OutputError, match=r"inventory\.gpkg: is open in another program .*-wal"):
        vectorize_mask(mask, inventory)
    assert digest(inventory) == before


def test_a_layer_name_needs_a_geopackage(tmp_path, mask):
    with pytest.raises(OutputError, match=r"out\.shp.*expected a GeoPackage .* layer name 'scars'"):
        vectorize_mask(mask, tmp_path / "out.shp", layer_name="scars")
    assert not (tmp_path / "out.shp").exists()


def test_map_and_evaluate_keep_the_other_layers(tmp_path, inventory):
    from landslide_mapper.core.loop.evaluation import evaluate_landslides
    from landslide_mapper.core.mapping.engine import map_landslides
    from landslide_mapper.core.models.dummy import build_dummy_model

    data = np.full((3, 64, 64), 10, np.uint16)
    data[:, 10:30, 10:30] = 200
    scene = make_raster(tmp_path / "scene.tif", data, descriptions=["red", "green", "blue"])
    model = tmp_path / "bright.onnx"
    build_dummy_model(model, weights=[1 / 30] * 3, bias=-10.0, tile_size=32, overlap=8)
    kept = {name: features(inventory, name) for name in OTHERS}
    result = map_landslides(scene, model, polygons_path=inventory, layer_name="mapped")
    assert result.polygon_count == 1
    assert fiona.listlayers(inventory) == [*OTHERS, "mapped"]
    evaluate_landslides(f"{inventory}|layername=mapped", f"{inventory}|layername=roads",
                        out_polygons=inventory, pixel_size=10.0)
    assert fiona.listlayers(inventory) == [*OTHERS, "mapped", "predicted", "reference"]
    assert {name: features(inventory, name) for name in OTHERS} == kept


# ---------------------------------------------------------------------------------------------
# Item 9: messages that say what is really wrong


def test_a_raster_with_ground_control_points_only(tmp_path):
    from landslide_mapper.core.mapping.engine import map_landslides
    from landslide_mapper.core.models.dummy import build_dummy_model

    path = tmp_path / "gcps.tif"
    gcps = [GroundControlPoint(0, 0, 500000, 4000000), GroundControlPoint(0, 40, 500400, 4000000),
            GroundControlPoint(40, 0, 500000, 3999600)]
    with rasterio.open(path, "w", driver="GTiff", width=40, height=40, count=3,
                       dtype="uint8") as dst:
        dst.write(np.ones((3, 40, 40), np.uint8))
        dst.gcps = (gcps, rasterio.crs.CRS.from_string(UTM))
    model = tmp_path / "m.onnx"
    build_dummy_model(model, weights=[0.01] * 3, bias=-1.0, tile_size=32, overlap=8)
    with pytest.raises(InputError) as e:
        map_landslides(path, model, mask_path=tmp_path / "m.tif")
    msg = str(e.value)
    assert "gcps.tif" in msg and "3 ground control points" in msg and "gdalwarp" in msg
    assert "no coordinate reference system" not in msg
    with pytest.raises(InputError, match="ground control points"):
        vectorize_mask(make_gcp_mask(tmp_path, gcps), tmp_path / "v.gpkg")


def make_gcp_mask(tmp_path: Path, gcps) -> Path:
    path = tmp_path / "gcp_mask.tif"
    with rasterio.open(path, "w", driver="GTiff", width=40, height=40, count=1,
                       dtype="uint8") as dst:
        dst.write(np.ones((1, 40, 40), np.uint8))
        dst.gcps = (gcps, rasterio.crs.CRS.from_string(UTM))
    return path


def test_a_folder_given_as_the_model(tmp_path):
    from landslide_mapper.core.models.registry import resolve_model

    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "scars.onnx").write_bytes(b"")
    with pytest.raises(ModelError) as e:
        resolve_model(folder)
    msg = str(e.value)
    assert "found a folder" in msg and "not found" not in msg and "scars.onnx" in msg


def test_a_bad_polygon_extension_is_refused_up_front_with_the_users_path(tmp_path):
    from landslide_mapper.core.mapping.engine import map_landslides

    scene = make_raster(tmp_path / "scene.tif", np.ones((3, 40, 40), np.uint16))
    with pytest.raises(OutputError) as e:  # the model does not even exist: checked before it
        map_landslides(scene, tmp_path / "missing.onnx", polygons_path=tmp_path / "ls.txt")
    msg = str(e.value)
    assert f"{tmp_path / 'ls.txt'}" in msg and ".gpkg" in msg and "partial" not in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]
