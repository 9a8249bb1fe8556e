"""Mapping the contract's bands to raster bands."""

from __future__ import annotations

import pytest

from landslide_mapper.core.contract import BandSpec
from landslide_mapper.core.errors import InputError
from landslide_mapper.core.raster.bands import band_keys, map_bands

S2 = [BandSpec("sentinel2:B02", aliases=("blue",)), BandSpec("sentinel2:B04", aliases=("red",)),
      BandSpec("sentinel2:B8A"), BandSpec("slope_deg")]


def test_by_full_description_any_order_and_case():
    m = map_bands(S2, ["SLOPE_DEG", "Sentinel2:b8a", "sentinel2:B04", "sentinel2:B02"])
    assert m.indexes == [4, 3, 2, 1] and m.method == "description"


def test_by_short_name_zero_padding_and_alias():
    m = map_bands(S2, ["B8A", "Red", "B2", "slope_deg", "extra"])
    assert m.indexes == [3, 2, 1, 4] and m.method == "description"


def test_padding_does_not_confuse_distinct_bands():
    assert "b4" in band_keys("B04") and "b4" in band_keys("sentinel2:B4")
    assert band_keys("B8A") & band_keys("B8") == set()
    assert band_keys("B10") & band_keys("B1") == set()


def test_by_order_when_descriptions_missing():
    m = map_bands(S2, [None, "", None, None, None])
    assert m.indexes == [1, 2, 3, 4] and m.method == "order"
    assert "order" in m.messages[0] and "sentinel2:B02" in m.messages[0]
    assert "band 5" in m.messages[0] or "5..5" in m.messages[0]


def test_by_order_when_a_band_is_missing_by_name():
    m = map_bands(S2, ["B02", "B04", "B08", "slope_deg"])
    assert m.method == "order" and "sentinel2:B8A" in m.messages[0]


def test_ambiguous_descriptions_fall_back_to_order():
    specs = [BandSpec("red"), BandSpec("green")]
    m = map_bands(specs, ["red", "red", "green"])
    assert m.method == "order" and m.indexes == [1, 2]


def test_exact_full_name_beats_loose_match():
    specs = [BandSpec("sentinel2:B04")]
    m = map_bands(specs, ["landsat:B04", "sentinel2:B04"])
    assert m.indexes == [2]


def test_too_few_bands_names_counts_and_bands():
    with pytest.raises(InputError) as e:
        map_bands(S2, ["B02", "B04"], source="Input raster scene.tif")
    msg = str(e.value)
    assert "scene.tif" in msg and "needs 4 bands" in msg and "has 2 bands" in msg
    assert "sentinel2:B02" in msg and "slope_deg" in msg


def test_explicit_list_wins():
    m = map_bands(S2, ["slope_deg", "B8A", "B04", "B02"], explicit=[1, 1, 2, 3])
    assert m.indexes == [1, 1, 2, 3] and m.method == "explicit"


@pytest.mark.parametrize("explicit, words", [([1, 2], "2 bands were given"),
                                             ([1, 2, 3, 9], "[9] do not exist"),
                                             ([0, 1, 2, 3], "[0] do not exist")])
def test_explicit_list_checked(explicit, words):
    with pytest.raises(InputError) as e:
        map_bands(S2, [None] * 4, explicit=explicit, source="Input raster a.tif")
    assert words in str(e.value) and "a.tif" in str(e.value)
