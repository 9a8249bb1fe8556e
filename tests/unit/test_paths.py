"""No output lands on an input or on another output: the shared check and every engine entry.

Each case names the input the output would have destroyed, is refused before anything is written,
and leaves the input byte for byte as it was.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from landslide_mapper.core.errors import OutputError
from landslide_mapper.core.paths import Place, check_distinct, split_layer
from tests.support import make_raster, pixel_box, write_polygons


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------------------------------------
# The check itself


def test_split_layer():
    assert split_layer("inv.gpkg|layername=roads") == ("inv.gpkg", "roads")
    assert split_layer(Path("inv.gpkg")) == ("inv.gpkg", None)
    assert split_layer("inv.gpkg|layerid=0|layername=x") == ("inv.gpkg", "x")


def test_same_file_by_another_spelling_is_refused(tmp_path, monkeypatch):
    dem = tmp_path / "dem.tif"
    dem.write_bytes(b"dem")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputError) as e:
        check_distinct([("DEM", dem)], [("Mask raster", "./sub/../dem.tif")])
    msg = str(e.value)
    assert "Mask raster sub/../dem.tif" in msg and "found the same file as the DEM" in msg
    assert str(dem) in msg and "\n" not in msg


def test_a_symlink_to_an_input_is_refused(tmp_path):
    dem = tmp_path / "dem.tif"
    dem.write_bytes(b"dem")
    (tmp_path / "link.tif").symlink_to(dem)
    with pytest.raises(OutputError, match=r"link\.tif.*same file as the DEM.*both lead to"):
        check_distinct([("DEM", dem)], [("Slope raster", tmp_path / "link.tif")])


def test_a_hard_link_to_an_input_is_refused(tmp_path):
    dem = tmp_path / "dem.tif"
    dem.write_bytes(b"dem")
    os.link(dem, tmp_path / "hard.tif")
    with pytest.raises(OutputError, match="same file as the DEM"):
        check_distinct([("DEM", dem)], [("Slope raster", tmp_path / "hard.tif")])


def test_shapefile_side_cars_count(tmp_path):
    with pytest.raises(OutputError, match="same file as the reference"):
        check_distinct([("Reference", tmp_path / "ref.shp")],
                       [("Evaluation polygons", tmp_path / "ref.SHP")])


def test_geopackage_layers_are_separate_outputs_and_inputs(tmp_path):
    inv = write_polygons(tmp_path / "inv.gpkg", [pixel_box(0, 2, 0, 2)])  # one layer: "inv"
    # another layer of the input's file: allowed
    check_distinct([("Reference", f"{inv}|layername=inv")], [Place("Polygons", inv, "landslides")])
    # the input's layer itself (names compare without case), also when the input names none
    for given in (f"{inv}|layername=INV", inv):
        with pytest.raises(OutputError, match=r"found the same GeoPackage layer as the reference"):
            check_distinct([("Reference", given)], [Place("Polygons", inv, "inv")])
    # two outputs in one GeoPackage: different layers only
    check_distinct([], [Place("Predicted", inv, "a"), Place("Reference out", inv, "b")])
    with pytest.raises(OutputError, match="its own path"):
        check_distinct([], [Place("Predicted", inv, "a"), Place("Reference out", inv, "A")])


def test_outputs_equal_to_each_other(tmp_path):
    with pytest.raises(OutputError, match=r"Mask raster .*p\.tif: .*same file as the "
                                          r"probability raster"):
        check_distinct([], [("Probability raster", tmp_path / "p.tif"),
                            ("Mask raster", tmp_path / "x" / ".." / "p.tif")])


def test_an_output_folder_may_not_hold_an_input(tmp_path):
    raster = tmp_path / "data" / "scene.tif"
    with pytest.raises(OutputError, match=r"Chip folder .*data: .*holds the input raster"):
        check_distinct([("Input raster", raster)],
                       [Place("Chip folder", tmp_path / "data", folder=True)])
    check_distinct([("Input raster", raster)], [Place("Chip folder", tmp_path / "chips",
                                                      folder=True)])


def test_missing_paths_are_skipped_and_distinct_ones_pass(tmp_path):
    check_distinct([("DEM", None), ("Slope raster", "")], [("Mask raster", tmp_path / "m.tif")])


# ---------------------------------------------------------------------------------------------
# Every entry of the engine calls it before writing


@pytest.fixture
def scene(tmp_path):
    data = np.random.default_rng(0).integers(1, 500, (3, 64, 80)).astype(np.uint16)
    return make_raster(tmp_path / "scene.tif", data, descriptions=["red", "green", "blue"])


@pytest.fixture
def model(tmp_path):
    from landslide_mapper.core.models.dummy import build_dummy_model

    path = tmp_path / "m.onnx"
    build_dummy_model(path, weights=[0.01, 0.0, 0.0], bias=-1.0, tile_size=32, overlap=8)
    return path


@pytest.fixture
def dem(tmp_path):
    z = np.add.outer(np.arange(64.0), np.arange(80.0)).astype("float32")
    return make_raster(tmp_path / "dem.tif", z)


def test_map_mask_onto_the_dem(tmp_path, scene, model, dem):
    from landslide_mapper.core.mapping.engine import map_landslides

    before, listing = digest(dem), files(tmp_path)
    with pytest.raises(OutputError, match=r"Mask raster .*dem\.tif: .*same file as the DEM"):
        map_landslides(scene, model, mask_path=dem, dem=dem)
    assert digest(dem) == before and files(tmp_path) == listing


def test_map_polygons_onto_the_model_and_probability_onto_the_mask(tmp_path, scene, model):
    from landslide_mapper.core.mapping.engine import map_landslides

    before = digest(model)
    with pytest.raises(OutputError, match="model file"):
        map_landslides(scene, model, probability_path=model)
    with pytest.raises(OutputError, match="same file as the probability raster"):
        map_landslides(scene, model, probability_path=tmp_path / "p.tif",
                       mask_path=tmp_path / "p.tif")
    assert digest(model) == before and not (tmp_path / "p.tif").exists()


def test_slope_over_its_dem(tmp_path, dem):
    from landslide_mapper.core.inputs.terrain import compute_slope

    before = digest(dem)
    with pytest.raises(OutputError, match=r"Slope raster .*dem\.tif: .*same file as the DEM"):
        compute_slope(dem, dem)
    assert digest(dem) == before and files(tmp_path) == ["dem.tif"]


def test_prepare_over_one_of_its_band_files(tmp_path):
    from landslide_mapper.core.inputs.sentinel2 import prepare_sentinel2_stack

    bands = tmp_path / "bands"
    bands.mkdir()
    for name in ("B02", "B03", "B04"):
        make_raster(bands / f"T54SUE_20180906T013651_{name}.tif",
                    np.full((1, 20, 20), 1000, np.uint16))
    target = bands / "T54SUE_20180906T013651_B03.tif"
    before, listing = digest(target), files(bands)
    with pytest.raises(OutputError, match=r"Output stack .*B03\.tif: .*same file as the "
                                          r"band B03 file"):
        prepare_sentinel2_stack(bands, target, bands=["B02", "B03", "B04"])
    assert digest(target) == before and files(bands) == listing


def test_evaluate_outputs_over_its_inputs(tmp_path, scene):
    from landslide_mapper.core.loop.evaluation import evaluate_landslides

    ref = write_polygons(tmp_path / "ref.gpkg", [pixel_box(0, 10, 0, 10)])
    mask = make_raster(tmp_path / "pred.tif", np.zeros((1, 64, 80), np.uint8))
    geojson = tmp_path / "truth.json"
    geojson.write_text('{"type": "FeatureCollection", "features": []}')
    cases = [
        (dict(report_path=ref), r"Report .*ref\.gpkg: .*same file as the reference"),
        (dict(out_reference=f"{ref}|layername=ref"),
         r"Reference polygons output .*ref\.gpkg\|layername=ref: .*same GeoPackage layer as "
         "the reference"),
        (dict(out_polygons=tmp_path / "pred.tif"), "extensions"),  # checked before any work
        (dict(report_path=tmp_path / "pred.tif"), "same file as the predicted"),
    ]
    before = {p: digest(p) for p in (ref, mask, geojson)}
    for kw, pattern in cases:
        with pytest.raises(OutputError, match=pattern):
            evaluate_landslides(mask, ref, **kw)
    # the report's .json twin over a GeoJSON reference
    with pytest.raises(OutputError, match=r"Report JSON .*truth\.json: .*same file as the "
                                          "reference"):
        evaluate_landslides(mask, geojson, report_path=tmp_path / "truth.md")
    assert {p: digest(p) for p in before} == before
    assert files(tmp_path) == sorted(["ref.gpkg", "pred.tif", "truth.json", "scene.tif"])


def test_train_over_its_base(tmp_path, model):
    from landslide_mapper.core.loop.training_run import train_on_chips

    chips = tmp_path / "chips"
    chips.mkdir()
    before = digest(model)
    with pytest.raises(OutputError, match=r"Model output .*m\.onnx: .*same file as the base"):
        train_on_chips(chips, model, base=str(model))
    assert digest(model) == before and files(chips) == []


def test_chips_into_the_folder_of_the_raster(tmp_path, scene):
    from landslide_mapper.core.loop.chips import export_training_chips

    polys = write_polygons(tmp_path / "ls.gpkg", [pixel_box(0, 10, 0, 10)])
    listing = files(tmp_path)
    with pytest.raises(OutputError, match=r"Chip folder .*: .*holds the input raster .*scene\.tif"):
        export_training_chips(scene, polys, tmp_path)
    assert files(tmp_path) == listing
