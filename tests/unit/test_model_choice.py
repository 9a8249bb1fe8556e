"""Which model fits a raster (``--model auto``): ranking by bands and pixel size, and the reasons.

The candidates mirror the bundled models' contracts (bands, aliases, pixel size, tolerance) so the
ranking is tested without reading the model files; one test runs the whole choice on files.
"""

from __future__ import annotations

import numpy as np
import pytest
from rasterio.transform import from_origin

from landslide_mapper.core.contract import BandSpec, ModelContract
from landslide_mapper.core.errors import ModelError
from landslide_mapper.core.mapping.engine import map_landslides
from landslide_mapper.core.mapping.model_choice import (
    RasterFacts,
    choose,
    choose_model,
    is_auto,
    rank_models,
    raster_facts,
)
from landslide_mapper.core.models.dummy import build_dummy_model
from tests.support import make_raster

S2 = [f"B{i:02d}" for i in range(1, 13)]


def contract(name: str, bands: list[BandSpec], pixel_size_m: float,
             tolerance: float) -> ModelContract:
    return ModelContract(name=name, title=f"{name} title", bands=tuple(bands),
                         pixel_size_m=pixel_size_m, tile_size=64, overlap=16,
                         pixel_size_tolerance=tolerance)


AERIAL = contract("aerial-rgb", [BandSpec("red", aliases=("R", "band1")),
                                 BandSpec("green", aliases=("G", "band2")),
                                 BandSpec("blue", aliases=("B", "band3"))], 1.0, 4.0)
S2_RGB = contract("sentinel2-rgb", [BandSpec("red", aliases=("sentinel2:B04", "B04", "B4")),
                                    BandSpec("green", aliases=("sentinel2:B03", "B03", "B3")),
                                    BandSpec("blue", aliases=("sentinel2:B02", "B02", "B2"))],
                  10.0, 0.25)
L4S = contract("sentinel2-l4s",
               [BandSpec(f"sentinel2:{b}", aliases=(b,)) for b in S2]
               + [BandSpec("slope_deg", aliases=("slope",)),
                  BandSpec("dem_m", aliases=("dem", "elevation"))], 10.0, 0.25)
BUNDLED = [(AERIAL, None), (S2_RGB, None), (L4S, None)]


def names(facts: RasterFacts) -> list[str]:
    return [f.name for f in rank_models(facts, BUNDLED) if f.fits]


def test_sentinel2_true_colour_stack_gets_the_sentinel2_rgb_model():
    facts = RasterFacts("iburi_stack", ("sentinel2:B04", "sentinel2:B03", "sentinel2:B02"), 10.0)
    ranking = rank_models(facts, BUNDLED)
    assert [f.name for f in ranking if f.fits] == ["sentinel2-rgb"]
    best = ranking[0]
    assert best.name == "sentinel2-rgb" and "matched by their descriptions" in best.summary()
    aerial = next(f for f in ranking if f.name == "aerial-rgb")
    # Why aerial-rgb (the old default) is refused: its bands and its pixel size.
    assert "against their descriptions" in aerial.summary()
    assert "10 times coarser" in aerial.summary()
    l4s = next(f for f in ranking if f.name == "sentinel2-l4s")
    assert "needs 14 bands" in l4s.summary() and "the raster has 3" in l4s.summary()


def test_landslide4sense_stack_gets_the_14_band_model_and_its_rgb_subset_the_rgb_one():
    full = RasterFacts("l4s", tuple(f"sentinel2:{b}" for b in S2) + ("slope_deg", "dem_m"), 10.0)
    assert names(full) == ["sentinel2-l4s", "sentinel2-rgb"]
    undescribed = RasterFacts("l4s", (None,) * 14, 10.0)
    assert names(undescribed)[0] == "sentinel2-l4s"      # the band count matches exactly
    twelve_with_dem = RasterFacts("s2", tuple(S2), 10.0, terrain_from_dem=True)
    best = rank_models(twelve_with_dem, BUNDLED)[0]
    assert best.name == "sentinel2-l4s" and "derived from the DEM" in best.summary()
    twelve = RasterFacts("s2", tuple(S2), 10.0)
    refused = next(f for f in rank_models(twelve, BUNDLED) if f.name == "sentinel2-l4s")
    assert not refused.fits and "a DEM would add slope_deg, dem_m" in refused.summary()


@pytest.mark.parametrize("descriptions", [(None, None, None), ("Red", "Green", "Blue"),
                                          (None, None, None, None)])
def test_half_metre_rgb_orthophoto_gets_the_aerial_model(descriptions):
    facts = RasterFacts("ortho", descriptions, 0.5)
    ranking = rank_models(facts, BUNDLED)
    assert ranking[0].name == "aerial-rgb" and ranking[0].fits
    assert [f.name for f in ranking if f.fits] == ["aerial-rgb"]
    s2 = next(f for f in ranking if f.name == "sentinel2-rgb")
    assert "20 times finer" in s2.summary()


def test_resampled_pixel_size_ranks_below_a_matching_one():
    # 3 undescribed bands at 4 m: both RGB models could take it; aerial-rgb (1 m +- 400 %)
    # without resampling, sentinel2-rgb only resampled 2.5 times.
    facts = RasterFacts("x", (None, None, None), 4.0)
    ranking = rank_models(facts, BUNDLED)
    assert [f.name for f in ranking if f.fits] == ["aerial-rgb", "sentinel2-rgb"]
    assert "resampled" in ranking[1].summary()


def test_nothing_fits_gives_every_models_reason():
    facts = RasterFacts("dem_only", ("elevation",), 30.0)
    with pytest.raises(ModelError) as err:
        choose(facts, BUNDLED)
    text = str(err.value)
    assert text.startswith("Model auto: no bundled model fits dem_only (1 band described "
                           "elevation; 30 m pixels).")
    for name in ("aerial-rgb", "sentinel2-rgb", "sentinel2-l4s"):
        assert f"{name} ({name} title) does not fit" in text
    assert "Choose a model" in text
    with pytest.raises(ModelError, match="no bundled model is installed"):
        choose(facts, [])


def test_unknown_pixel_size_fits_nothing():
    facts = RasterFacts("plain", (None, None, None), None)
    assert names(facts) == []
    assert "pixel size is unknown" in rank_models(facts, BUNDLED)[0].summary()


def test_is_auto():
    assert is_auto("auto") and is_auto(" Auto ")
    assert not is_auto("aerial-rgb") and not is_auto(None) and not is_auto("auto.onnx")


@pytest.fixture
def model_folder(tmp_path, monkeypatch):
    """Two small models standing in for the bundled ones: RGB at 10 m and RGB at 1 m."""
    folder = tmp_path / "models"
    folder.mkdir()
    build_dummy_model(folder / "coarse.onnx", name="coarse", weights=(10.0, 0.0, 0.0),
                      bias=-5.0, pixel_size_m=10.0,
                      bands=[{"name": "red", "aliases": ["B04"]},
                             {"name": "green", "aliases": ["B03"]},
                             {"name": "blue", "aliases": ["B02"]}])
    build_dummy_model(folder / "fine.onnx", name="fine", weights=(10.0, 0.0, 0.0), bias=-5.0,
                      pixel_size_m=1.0, pixel_size_tolerance=4.0)
    monkeypatch.setenv("LANDSLIDE_MAPPER_MODELS", str(folder))
    # Only these two: the models bundled in resources/ are left out of the choice.
    from landslide_mapper.core.mapping import model_choice
    from landslide_mapper.core.models.registry import bundled_models

    monkeypatch.setattr(model_choice, "bundled_models",
                        lambda: [m for m in bundled_models() if m.path.parent == folder])
    return folder


def test_choose_model_reads_the_raster_and_the_models(tmp_path, model_folder):
    data = np.zeros((3, 40, 40), np.float32)
    data[0, 5:20, 5:20] = 1.0
    coarse = make_raster(tmp_path / "s2.tif", data, descriptions=["B04", "B03", "B02"])
    fine = make_raster(tmp_path / "ortho.tif", data, transform=from_origin(500000, 4000000,
                                                                          0.5, 0.5))
    facts = raster_facts(coarse)
    assert facts.descriptions == ("B04", "B03", "B02") and facts.pixel_size_m == 10.0
    assert raster_facts(coarse, bands=[3, 1]).descriptions == ("B02", "B04")
    assert choose_model(coarse).chosen.name == "coarse"
    assert choose_model(fine).chosen.name == "fine"
    # The engine with model="auto" logs the choice and its reasons, and maps with it.
    notes: list[str] = []
    result = map_landslides(coarse, "auto", polygons_path=tmp_path / "ls.gpkg", log=notes.append)
    assert result.model_name == "coarse" and result.polygon_count == 1
    assert any(n.startswith("Model auto: coarse chosen for s2 (3 bands described B04, B03, B02; "
                            "10 m pixels)") for n in notes), notes
    assert any("Other models: fine" in n for n in notes), notes
