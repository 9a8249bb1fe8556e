"""``map_landslides(dem=...)``: slope/elevation bands the model wants are derived on the fly."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from landslide_mapper.core.errors import InputError
from landslide_mapper.core.mapping.engine import map_landslides
from landslide_mapper.core.models.dummy import build_dummy_model
from tests.support import make_raster


@pytest.fixture()
def scene(tmp_path):
    """A 1-band 'red' raster, 96 x 80 px at 10 m, and a DEM at 20 m covering it.

    The DEM is flat (100 m) on the western half and a plane rising 1 m per 1 m eastwards on the
    eastern half, so slope is 0 deg west and 45 deg east of x = 500400 m.
    """
    red = make_raster(tmp_path / "red.tif", np.full((1, 80, 96), 50, np.uint8),
                      descriptions=["red"])
    x = 500000.0 - 100 + 20.0 * (np.arange(70) + 0.5)  # DEM cell centres, 100 m beyond the raster
    z = np.where(x < 500400, 100.0, 100.0 + (x - 500400))
    dem = np.tile(z, (60, 1)).astype(np.float32)
    make_raster(tmp_path / "dem.tif", dem, transform=from_origin(499900, 4000100, 20, 20))
    return red, tmp_path / "dem.tif"


def test_slope_from_dem_drives_the_mask(tmp_path, scene):
    red, dem = scene
    model = tmp_path / "slope.onnx"
    # logit = slope - 30: landslide where the slope is steeper than 30 degrees
    build_dummy_model(model, bands=["red", "slope_deg", "dem_m"], weights=[0, 1, 0], bias=-30,
                      tile_size=32, overlap=8)
    result = map_landslides(red, model, mask_path=tmp_path / "mask.tif", dem=dem)
    assert result.band_indexes == [1, 2, 3]
    assert any("DEM" in m for m in result.messages)
    with rasterio.open(tmp_path / "mask.tif") as mask, rasterio.open(red) as src:
        assert (mask.transform, mask.shape, mask.crs) == (src.transform, src.shape, src.crs)
        m = mask.read(1)
    # raster columns: centre x = 500005 + 10 * col; the slope break is at 500400 (col 39.5)
    assert (m[:, :36] == 0).all()
    assert (m[:, 44:] == 1).all()


def test_model_wanting_terrain_without_dem_says_what_to_give(tmp_path, scene):
    red, _ = scene
    model = tmp_path / "slope.onnx"
    build_dummy_model(model, bands=["red", "slope_deg", "dem_m"], weights=[0, 1, 0])
    with pytest.raises(InputError) as err:
        map_landslides(red, model, mask_path=tmp_path / "mask.tif")
    assert "slope_deg" in str(err.value)
    assert not (tmp_path / "mask.tif").exists()
