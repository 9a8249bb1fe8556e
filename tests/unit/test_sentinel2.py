"""Sentinel-2 products -> model-ready stacks; orthophotos through the engine.

Fixtures come from ``scripts/make_fixtures.py`` (seeded, written into tmp folders). Band values are
the plane :func:`make_fixtures.field`, so the expected value of every output pixel is computed here
from the pixel's map coordinates, independently of the code under test.
"""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from landslide_mapper.core.errors import CancelledError, InputError
from landslide_mapper.core.inputs.sentinel2 import (
    L4S_BANDS,
    STACK_NODATA,
    band_from_filename,
    canonical_band,
    parse_product_metadata,
    prepare_sentinel2_stack,
)
from landslide_mapper.core.models.dummy import build_dummy_model
from tests.support import REPO, UTM, make_raster, shared_data

sys.path.insert(0, str(REPO))
from scripts import make_fixtures as fx  # noqa: E402

N10 = int(fx.SCENE_M / 10)  # the 10 m grid is 60 x 60


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> dict[str, Path]:
    return fx.make_all(tmp_path_factory.mktemp("fixtures"))


def _expected(band: str) -> np.ndarray:
    """The field at the 10 m pixel centres (what a perfect stack holds), nodata block as NaN."""
    cols, rows = np.meshgrid(np.arange(N10), np.arange(N10))
    x, y = fx.X0 + (cols + 0.5) * 10, fx.Y0 - (rows + 0.5) * 10
    v = fx.field(band, x, y)
    v[(x < fx.X0 + fx.NODATA_BLOCK_M) & (y > fx.Y0 - fx.NODATA_BLOCK_M)] = np.nan
    return v


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.descriptions, ds.transform, ds.crs, [ds.tags(i) for i in
                                                                    range(1, ds.count + 1)]


NODATA_PX = int(fx.NODATA_BLOCK_M / 10)


def _check_bands(data, names, *, skip=()):
    """Each Sentinel-2 band equals the field: exactly at 10 m; inside the scene (where bilinear
    has all four neighbours) exactly at 20/60 m; within one coarse pixel's gradient at edges."""
    for k, name in enumerate(names):
        band = name.split(":")[-1]
        if not name.startswith("sentinel2:") or band in skip:
            continue
        exp = _expected(band)
        got = data[k]
        nod = np.isnan(exp)
        assert (got[nod] == STACK_NODATA).all(), band
        res = fx.RESOLUTION[band]
        margin = res // 10 + NODATA_PX  # away from the edge and from the nodata block
        inner = np.zeros_like(nod)
        inner[margin:-res // 10 or None, margin:-res // 10 or None] = True
        inner[:margin + NODATA_PX, :margin + NODATA_PX] = False
        np.testing.assert_allclose(got[inner], exp[inner], atol=1e-3, err_msg=band)
        edge_tol = (fx.GX + fx.GY) * res / 2 + 1e-3
        np.testing.assert_allclose(got[~nod], exp[~nod], atol=edge_tol, err_msg=band)


# ---------------------------------------------------------------------------------------------
# Names and metadata


@pytest.mark.parametrize("name, band", [
    ("T54TWN_20180906T013651_B02.jp2", ("B02", None)),
    ("T54TWN_20220906T013651_B8A_20m.jp2", ("B8A", 20)),
    ("T54TWN_20220906T013651_B01_60m.jp2", ("B01", 60)),
    ("B2.tif", ("B02", None)),
    ("download.B12.tif", ("B12", None)),
    ("scene_b8a.TIFF", ("B8A", None)),
    ("download.B2_uint8.tif", None),
    ("T54TWN_20220906T013651_TCI_10m.jp2", None),
    ("T54TWN_20220906T013651_SCL_20m.jp2", None),
    ("MSK_DETFOO_B02.jp2", None),
    ("B13.tif", None),
    ("B02.xml", None),
])
def test_band_from_filename(name, band):
    assert band_from_filename(name) == band


def test_canonical_band_names():
    assert [canonical_band(t) for t in ("sentinel2:B4", "b04", "Red", "8a", "nir", "slope")] == [
        "B04", "B04", "B04", "B8A", "B08", None]


def test_metadata_of_a_level1c_baseline_04_product():
    xml = """<?xml version="1.0"?><n1:Level-1C_User_Product xmlns:n1="x"><n1:General_Info>
    <Product_Info><PROCESSING_LEVEL>Level-1C</PROCESSING_LEVEL>
    <PROCESSING_BASELINE>05.09</PROCESSING_BASELINE></Product_Info>
    <Product_Image_Characteristics><QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>
    <Radiometric_Offset_List><RADIO_ADD_OFFSET band_id="0">-1000</RADIO_ADD_OFFSET>
    <RADIO_ADD_OFFSET band_id="8">-1000</RADIO_ADD_OFFSET>
    <RADIO_ADD_OFFSET band_id="12">-900</RADIO_ADD_OFFSET></Radiometric_Offset_List>
    <Spectral_Information_List><Spectral_Information bandId="0" physicalBand="B1"/>
    <Spectral_Information bandId="8" physicalBand="B8A"/>
    <Spectral_Information bandId="12" physicalBand="B12"/></Spectral_Information_List>
    </Product_Image_Characteristics></n1:General_Info></n1:Level-1C_User_Product>"""
    meta = parse_product_metadata(xml, "MTD_MSIL1C.xml")
    assert meta["level"] == "Level-1C" and meta["baseline"] == "05.09"
    assert meta["quantification"] == 10000.0
    assert meta["offsets"] == {"B01": -1000.0, "B8A": -1000.0, "B12": -900.0}
    with pytest.raises(InputError, match="MTD_MSIL1C.xml.*not valid XML"):
        parse_product_metadata("<a>", "MTD_MSIL1C.xml")


# ---------------------------------------------------------------------------------------------
# Both baselines


def test_level1c_pre_04_stack_in_l4s_order(fixtures, tmp_path):
    out = tmp_path / "l1c.tif"
    r = prepare_sentinel2_stack(fixtures["l1c"], out, bands=list(L4S_BANDS),
                                dem_path=fixtures["dem_utm"])
    data, desc, transform, crs, tags = _read(out)
    assert desc == tuple(f"sentinel2:{b}" for b in L4S_BANDS[:12]) + ("slope_deg", "dem_m")
    assert r.bands == list(desc) and r.level == "Level-1C" and r.baseline == "02.09"
    assert transform == from_origin(fx.X0, fx.Y0, 10, 10) and crs.to_string() == UTM
    assert data.shape == (14, N10, N10) and data.dtype == np.float32
    assert all(v == 0 for v in r.offsets.values())
    _check_bands(data, desc)  # B10 included: Level-1C has it
    slope, dem = data[12], data[13]
    np.testing.assert_allclose(slope[slope != STACK_NODATA], 45.0, atol=1e-3)
    x = (np.arange(N10) + 0.5) * 10  # DEM z = x - X0
    np.testing.assert_allclose(dem[20], x, atol=1e-3)
    assert "max(raw + (0)" in tags[1]["rule"]
    assert not list(tmp_path.glob(".*"))  # no temporary file or work folder left


def test_level2a_04_offsets_bring_values_to_the_old_scale(fixtures, tmp_path):
    out = tmp_path / "l2a.tif"
    r = prepare_sentinel2_stack(fixtures["l2a"], out, bands=list(L4S_BANDS[:12]))
    data, desc, transform, _, tags = _read(out)
    assert r.level == "Level-2A" and r.baseline == "04.00"
    assert set(r.offsets.values()) == {-1000.0}
    assert transform == from_origin(fx.X0, fx.Y0, 10, 10)
    clipped = fx.CLIPPED_PIXEL
    b03 = desc.index("sentinel2:B03")
    assert data[b03][clipped] == 0.0  # raw 500 - 1000 clipped at 0, and still valid
    data[b03][clipped] = _expected("B03")[clipped]
    _check_bands(data, desc, skip=("B10",))
    assert "-1000" in tags[b03]["rule"] and tags[b03]["offset"] == "-1000"
    # the finest resolution file of each band is used (B02 also ships at 20 and 60 m)
    assert tags[desc.index("sentinel2:B02")]["source"].endswith("_B02_10m.jp2")
    assert tags[desc.index("sentinel2:B05")]["source"].endswith("_B05_20m.jp2")
    assert any("offsets applied" in m for m in r.messages)


def test_both_baselines_give_the_same_stack(fixtures, tmp_path):
    bands = ["B02", "B05", "B09", "B8A"]
    a = prepare_sentinel2_stack(fixtures["l1c"], tmp_path / "a.tif", bands=bands)
    b = prepare_sentinel2_stack(fixtures["l2a"], tmp_path / "b.tif", bands=bands)
    np.testing.assert_array_equal(_read(a.path)[0], _read(b.path)[0])


def test_level2a_b10_fill_rule(fixtures, tmp_path):
    r = prepare_sentinel2_stack(fixtures["l2a"], tmp_path / "f.tif", bands=["B02", "B10"])
    data = _read(r.path)[0]
    nod = np.isnan(_expected("B02"))
    assert (data[1][~nod] == 0.0).all() and (data[1][nod] == STACK_NODATA).all()
    assert any("B10" in m and "Level-2A" in m and "constant 0" in m for m in r.messages)
    r = prepare_sentinel2_stack(fixtures["l2a"], tmp_path / "g.tif", bands=["B10"],
                                b10_fill=7.5)
    data, _, _, _, tags = _read(r.path)
    assert (data[0][~nod] == 7.5).all()
    assert "filled with 7.5" in tags[0]["rule"]
    with pytest.raises(InputError, match="B10 fill"):
        prepare_sentinel2_stack(fixtures["l2a"], tmp_path / "h.tif", bands=["B10"],
                                b10_fill=float("nan"))


def test_band_order_from_a_model_contract(fixtures, tmp_path):
    model = tmp_path / "m.onnx"
    contract = build_dummy_model(
        model, bands=["sentinel2:B8A", {"name": "red"}, "slope_deg", "sentinel2:B2",
                      {"name": "elevation", "aliases": ["dem_m"]}])
    r = prepare_sentinel2_stack(fixtures["l2a"], tmp_path / "c.tif", bands=contract,
                                dem_path=fixtures["dem_utm"])
    assert r.bands == ["sentinel2:B8A", "sentinel2:B04", "slope_deg", "sentinel2:B02", "dem_m"]
    data, desc, *_ = _read(r.path)
    _check_bands(data, desc)
    # the same from the model file itself
    r2 = prepare_sentinel2_stack(fixtures["l2a"], tmp_path / "d.tif", bands=str(model),
                                 dem_path=fixtures["dem_utm"])
    assert r2.bands == r.bands
    from landslide_mapper.core.raster.bands import map_bands

    assert map_bands(contract.bands, list(desc)).indexes == [1, 2, 3, 4, 5]


def test_bands_default_to_every_band_found(fixtures, tmp_path):
    r = prepare_sentinel2_stack(fixtures["l2a"], tmp_path / "all.tif")
    assert r.bands == [f"sentinel2:{b}" for b in fx.BANDS]  # B10 filled
    r = prepare_sentinel2_stack(fixtures["l1c"], tmp_path / "all2.tif",
                                dem_path=fixtures["dem_utm"])
    assert r.bands[-2:] == ["slope_deg", "dem_m"] and len(r.bands) == 15


def test_zip_input_equals_the_safe_folder(fixtures, tmp_path):
    a = prepare_sentinel2_stack(fixtures["l2a"], tmp_path / "a.tif", bands=["B02", "B11"])
    b = prepare_sentinel2_stack(fixtures["l2a_zip"], tmp_path / "b.tif", bands=["B02", "B11"])
    np.testing.assert_array_equal(_read(a.path)[0], _read(b.path)[0])
    assert _read(b.path)[4][0]["source"].startswith("/vsizip/")


def test_folder_list_and_named_multiband_raster(fixtures, tmp_path):
    # GeoTIFF band files named like B2.tif in a folder, and the same as a list
    folder = tmp_path / "bands"
    folder.mkdir()
    for band, res in (("B02", 10), ("B05", 20), ("B01", 60)):
        v = fx.band_values(band, res).astype(np.uint16)
        make_raster(folder / f"scene.B{int(band[1:])}.tif", v,
                    transform=from_origin(fx.X0, fx.Y0, res, res))
    (folder / "notes.txt").write_text("not a band")
    r = prepare_sentinel2_stack(folder, tmp_path / "f.tif", bands=["B01", "B02", "B05"])
    data, desc, *_ = _read(r.path)
    _check_bands(data, desc)
    assert any("no product metadata" in m for m in r.messages)
    files = sorted(folder.glob("*.tif"))
    r2 = prepare_sentinel2_stack(files, tmp_path / "g.tif", bands=["B01", "B02", "B05"])
    np.testing.assert_array_equal(_read(r2.path)[0], data)
    # a multi-band raster whose bands are described
    stack = make_raster(tmp_path / "named.tif", np.stack(
        [fx.band_values("B04", 10), fx.band_values("B02", 10)]).astype(np.uint16),
        transform=from_origin(fx.X0, fx.Y0, 10, 10), descriptions=["Red", "sentinel2:B2"])
    r3 = prepare_sentinel2_stack(stack, tmp_path / "h.tif", bands=["B02", "B04"])
    data, desc, *_ = _read(r3.path)
    _check_bands(data, desc)


def test_aoi_bounds_and_polygon(fixtures, tmp_path):
    from shapely.geometry import Polygon

    aoi = (fx.X0 + 95, fx.Y0 - 405, fx.X0 + 301, fx.Y0 - 200)  # snapped outwards to the grid
    r = prepare_sentinel2_stack(fixtures["l1c"], tmp_path / "a.tif", bands=["B02"], aoi=aoi)
    data, _, transform, *_ = _read(r.path)
    assert transform == from_origin(fx.X0 + 90, fx.Y0 - 200, 10, 10)
    assert data.shape == (1, 21, 22)
    np.testing.assert_allclose(data[0], _expected("B02")[20:41, 9:31])
    tri = Polygon([(fx.X0 + 100, fx.Y0 - 100), (fx.X0 + 500, fx.Y0 - 100),
                   (fx.X0 + 100, fx.Y0 - 500)])
    r = prepare_sentinel2_stack(fixtures["l1c"], tmp_path / "p.tif", bands=["B02"], aoi=tri)
    data = _read(r.path)[0][0]
    assert data.shape == (40, 40)
    assert data[0, 0] != STACK_NODATA and data[-1, -1] == STACK_NODATA  # outside the triangle
    with pytest.raises(InputError, match="Area of interest.*does not overlap"):
        prepare_sentinel2_stack(fixtures["l1c"], tmp_path / "x.tif", bands=["B02"],
                                aoi=(0, 0, 10, 10))
    # bounds given in another CRS (lon/lat)
    from pyproj import Transformer

    lon, lat = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True).transform(
        [fx.X0 + 100, fx.X0 + 300], [fx.Y0 - 300, fx.Y0 - 100])
    r = prepare_sentinel2_stack(fixtures["l1c"], tmp_path / "ll.tif", bands=["B02"],
                                aoi=(lon[0], lat[0], lon[1], lat[1]), aoi_crs="EPSG:4326")
    assert 19 <= r.width <= 22 and 19 <= r.height <= 22


def test_chosen_crs_reprojects(fixtures, tmp_path):
    r = prepare_sentinel2_stack(fixtures["l1c"], tmp_path / "z53.tif", bands=["B02"],
                                crs="EPSG:32653")
    _, _, transform, crs, _ = _read(r.path)
    assert crs.to_epsg() == 32653 and abs(transform.a - 10) < 1e-6


# ---------------------------------------------------------------------------------------------
# Bad inputs


def test_safe_missing_bands(fixtures, tmp_path):
    safe = tmp_path / fixtures["l1c"].name
    shutil.copytree(fixtures["l1c"], safe)
    for f in safe.rglob("*_B05.jp2"):
        f.unlink()
    with pytest.raises(InputError) as err:
        prepare_sentinel2_stack(safe, tmp_path / "o.tif", bands=list(L4S_BANDS[:12]))
    assert safe.name in str(err.value) and "B05" in str(err.value) and "missing" in str(err.value)
    assert not (tmp_path / "o.tif").exists()
    # the product still serves a model that does not need B05
    prepare_sentinel2_stack(safe, tmp_path / "ok.tif", bands=["B02", "B04"])


def test_safe_without_metadata_or_band_files(fixtures, tmp_path):
    safe = tmp_path / "S2_nometa.SAFE"
    shutil.copytree(fixtures["l1c"], safe)
    (safe / "MTD_MSIL1C.xml").unlink()
    with pytest.raises(InputError, match="S2_nometa.SAFE.*MTD_MSIL1C.xml"):
        prepare_sentinel2_stack(safe, tmp_path / "o.tif")
    empty = tmp_path / "empty.SAFE" / "GRANULE"
    empty.mkdir(parents=True)
    with pytest.raises(InputError, match="empty.SAFE.*no band files"):
        prepare_sentinel2_stack(empty.parent, tmp_path / "o.tif")


def test_unreadable_jp2_names_the_file(fixtures, tmp_path):
    safe = tmp_path / fixtures["l1c"].name
    shutil.copytree(fixtures["l1c"], safe)
    bad = next(safe.rglob("*_B03.jp2"))
    bad.write_bytes(bad.read_bytes()[:60])  # truncated download
    with pytest.raises(InputError) as err:
        prepare_sentinel2_stack(safe, tmp_path / "o.tif", bands=["B02", "B03"])
    assert bad.name in str(err.value) and "B03" in str(err.value)
    assert not (tmp_path / "o.tif").exists()


def test_dem_not_overlapping_names_both(fixtures, tmp_path):
    with pytest.raises(InputError) as err:
        prepare_sentinel2_stack(fixtures["l1c"], tmp_path / "o.tif", bands=["B02", "dem_m"],
                                dem_path=fixtures["dem_far"])
    msg = str(err.value)
    assert "dem_far.tif" in msg and fixtures["l1c"].name in msg and "does not overlap" in msg
    with pytest.raises(InputError, match="dem_m is asked for but no DEM"):
        prepare_sentinel2_stack(fixtures["l1c"], tmp_path / "o.tif", bands=["B02", "dem_m"])


def test_mismatched_crss(fixtures, tmp_path):
    # A geographic DEM is reprojected, not refused: the slope is computed in metres on its grid.
    r = prepare_sentinel2_stack(fixtures["l1c"], tmp_path / "g.tif",
                                bands=["B02", "slope_deg", "dem_m"],
                                dem_path=fixtures["dem_geographic"])
    slope = _read(r.path)[0][1]
    valid = slope != STACK_NODATA
    assert valid.mean() > 0.95
    np.testing.assert_allclose(slope[valid], math.degrees(math.atan(0.1)), atol=0.05)
    # A band file in another UTM zone is reprojected onto B02's grid, with a message.
    folder = tmp_path / "mixed"
    folder.mkdir()
    make_raster(folder / "B2.tif", fx.band_values("B02", 10).astype(np.uint16),
                transform=from_origin(fx.X0, fx.Y0, 10, 10))
    from rasterio.warp import transform_bounds

    west, _, _, north = transform_bounds(UTM, "EPSG:32653", fx.X0 - 200, fx.Y0 - 800,
                                         fx.X0 + 800, fx.Y0 + 200)
    make_raster(folder / "B3.tif", np.full((110, 110), 1234, np.uint16), crs="EPSG:32653",
                transform=from_origin(west, north, 10, 10))
    r = prepare_sentinel2_stack(folder, tmp_path / "m.tif", bands=["B02", "B03"])
    data = _read(r.path)[0]
    assert (data[1][data[1] != STACK_NODATA] == 1234).all()
    assert any("B03 is in EPSG:32653" in m and "reprojected" in m for m in r.messages)
    # A band file without a CRS cannot be placed: refused, naming it.
    make_raster(folder / "B4.tif", np.ones((60, 60), np.uint16), crs=None)
    with pytest.raises(InputError, match="B4.tif: has no coordinate reference system"):
        prepare_sentinel2_stack(folder, tmp_path / "n.tif", bands=["B02", "B04"])


def test_not_a_product(tmp_path):
    with pytest.raises(InputError, match="not found"):
        prepare_sentinel2_stack(tmp_path / "nothing.SAFE", tmp_path / "o.tif")
    (tmp_path / "d").mkdir()
    with pytest.raises(InputError, match="no Sentinel-2 band file"):
        prepare_sentinel2_stack(tmp_path / "d", tmp_path / "o.tif")
    (tmp_path / "p.zip").write_bytes(b"PK not really")
    with pytest.raises(InputError, match="p.zip.*not a readable zip"):
        prepare_sentinel2_stack(tmp_path / "p.zip", tmp_path / "o.tif")
    with pytest.raises(InputError, match="neither Sentinel-2 bands"):
        prepare_sentinel2_stack(tmp_path / "d", tmp_path / "o.tif", bands=["B02", "ndvi"])


def test_cancel_and_progress_leave_nothing(fixtures, tmp_path):
    seen = []
    prepare_sentinel2_stack(fixtures["l1c"], tmp_path / "p.tif", bands=["B02"],
                            progress=seen.append)
    assert seen and seen[-1] == pytest.approx(1.0) and seen == sorted(seen)
    with pytest.raises(CancelledError):
        prepare_sentinel2_stack(fixtures["l1c"], tmp_path / "c.tif", bands=["B02"],
                                is_canceled=lambda: True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.tif"]


# ---------------------------------------------------------------------------------------------
# Real data


@pytest.mark.realdata
def test_iburi_bands_and_dsm_to_a_stack(tmp_path):
    """The shipped 10 m bands (EPSG:4326) + the 30 m DSM: a stack on B02's grid."""
    post = shared_data("sentinel2_iburi2018", "post-event")
    dsm = shared_data("sentinel2_iburi2018", "dem", "download.DSM.tif")
    r = prepare_sentinel2_stack(post, tmp_path / "iburi.tif",
                                bands=["B02", "B03", "B04", "slope_deg", "dem_m"], dem_path=dsm)
    with rasterio.open(post / "download.B2.tif") as b2, rasterio.open(r.path) as ds, \
            rasterio.open(dsm) as d:
        assert (ds.crs, ds.transform, ds.shape) == (b2.crs, b2.transform, b2.shape)
        np.testing.assert_array_equal(ds.read(1), np.where(
            b2.read(1) == 0, STACK_NODATA, b2.read(1)).astype(np.float32))
        slope, dem = ds.read(4), ds.read(5)
        # the DEM band at a DSM pixel's centre equals that pixel (bilinear at a node)
        row, col = 100, 200
        x, y = d.xy(row, col)
        r2, c2 = ds.index(x, y)
        assert abs(dem[r2, c2] - d.read(1)[row, col]) < 3.0
    valid = slope != STACK_NODATA
    assert valid.mean() > 0.97
    assert 5 < slope[valid].mean() < 30 and slope[valid].max() < 80


# ---------------------------------------------------------------------------------------------
# Orthophotos through the engine


def _rgb_model(path, *, scale=1.0, bias=-6.0, pixel_size_m=1.0):
    # logit = 0.05 * red + bias: red 200 -> +4 (landslide), red 40 -> -4 (not), 0 -> -6
    return build_dummy_model(path, bands=[{"name": "red", "scale": scale},
                                          {"name": "green", "scale": scale},
                                          {"name": "blue", "scale": scale}],
                             weights=[0.05, 0.0, 0.0], bias=bias, pixel_size_m=pixel_size_m,
                             tile_size=64, overlap=16)


def _check_ortho_result(ortho, prob_path, mask_path):
    with rasterio.open(ortho) as src, rasterio.open(prob_path) as p, rasterio.open(mask_path) as m:
        assert (p.crs, p.transform, p.shape) == (src.crs, src.transform, src.shape)
        prob, mask = p.read(1), m.read(1)
    c, n = fx.COLLAR_PX, fx.ORTHO_PX
    collar = np.ones((n, n), bool)
    collar[c:-c, c:-c] = False
    assert np.isnan(prob[collar]).all() and (mask[collar] == 255).all()
    # away from the collar and from the red edge (x = n/2), by two model pixels (4 px)
    left = mask[c + 4:-c - 4, c + 4:n // 2 - 4]
    right = mask[c + 4:-c - 4, n // 2 + 4:-c - 4]
    assert (left == 1).all() and (right == 0).all()
    s = 1 / (1 + math.exp(-4.0))
    np.testing.assert_allclose(prob[c + 4:-c - 4, c + 4:n // 2 - 4], s, atol=1e-3)


def test_rgba_8bit_orthophoto_at_the_model_pixel_size_alpha_is_nodata(fixtures, tmp_path):
    from landslide_mapper.core.mapping.engine import map_landslides

    model = tmp_path / "rgb05.onnx"
    _rgb_model(model, pixel_size_m=0.5)
    res = map_landslides(fixtures["ortho_rgba"], model, probability_path=tmp_path / "p.tif",
                         mask_path=tmp_path / "m.tif")
    assert not res.resampled and res.band_indexes == [1, 2, 3]
    _check_ortho_result(fixtures["ortho_rgba"], tmp_path / "p.tif", tmp_path / "m.tif")


def test_rgba_8bit_orthophoto_resampled_alpha_is_nodata(fixtures, tmp_path):
    from landslide_mapper.core.mapping.engine import map_landslides

    model = tmp_path / "rgb.onnx"
    _rgb_model(model)
    res = map_landslides(fixtures["ortho_rgba"], model, probability_path=tmp_path / "p.tif",
                         mask_path=tmp_path / "m.tif")
    assert res.resampled and res.band_indexes == [1, 2, 3]
    _check_ortho_result(fixtures["ortho_rgba"], tmp_path / "p.tif", tmp_path / "m.tif")


def test_rgb_16bit_orthophoto_with_nodata_collar(fixtures, tmp_path):
    from landslide_mapper.core.mapping.engine import map_landslides

    model = tmp_path / "rgb16.onnx"
    _rgb_model(model, scale=1 / 257)
    res = map_landslides(fixtures["ortho_rgb16"], model, probability_path=tmp_path / "p.tif",
                         mask_path=tmp_path / "m.tif")
    assert res.resampled
    _check_ortho_result(fixtures["ortho_rgb16"], tmp_path / "p.tif", tmp_path / "m.tif")


def test_zero_collar_without_nodata_is_never_mapped(fixtures, tmp_path):
    from landslide_mapper.core.mapping.engine import map_landslides

    with rasterio.open(fixtures["ortho_rgba"]) as src:
        rgb = src.read([1, 2, 3])
    plain = make_raster(tmp_path / "plain.tif", rgb, transform=from_origin(
        fx.X0, fx.Y0, fx.ORTHO_RES, fx.ORTHO_RES), descriptions=["red", "green", "blue"])
    model = tmp_path / "m.onnx"
    _rgb_model(model, bias=6.0)  # 0 would score as landslide: logit +6
    map_landslides(plain, model, mask_path=tmp_path / "m.tif")
    with rasterio.open(tmp_path / "m.tif") as m:
        mask = m.read(1)
    assert (mask[:fx.COLLAR_PX] == 255).all() and (mask[:, :fx.COLLAR_PX] == 255).all()


def test_orthophoto_without_crs_gets_a_clear_message(fixtures, tmp_path):
    from landslide_mapper.core.mapping.engine import map_landslides

    model = tmp_path / "m.onnx"
    _rgb_model(model)
    with pytest.raises(InputError) as err:
        map_landslides(fixtures["ortho_nocrs"], model, mask_path=tmp_path / "m.tif")
    assert "ortho_nocrs.tif" in str(err.value)
    assert "coordinate reference system" in str(err.value) or "geotransform" in str(err.value)


def test_orthophoto_with_a_local_crs_gets_a_clear_message(fixtures, tmp_path):
    from landslide_mapper.core.mapping.engine import map_landslides

    local = 'LOCAL_CS["site grid",LOCAL_DATUM["local",0],UNIT["metre",1],AXIS["X",EAST],' \
            'AXIS["Y",NORTH]]'
    with rasterio.open(fixtures["ortho_rgba"]) as src:
        rgb = src.read([1, 2, 3])
    path = make_raster(tmp_path / "local.tif", rgb, crs=local, transform=from_origin(
        0, 128, fx.ORTHO_RES, fx.ORTHO_RES), descriptions=["red", "green", "blue"])
    model = tmp_path / "m.onnx"
    _rgb_model(model)
    try:
        res = map_landslides(path, model, mask_path=tmp_path / "m.tif")
    except InputError as exc:
        assert "local.tif" in str(exc) and "local" in str(exc).replace("local.tif", "")
        return
    # mapped on the local grid: the outputs carry the same local CRS, and the user is told
    with rasterio.open(tmp_path / "m.tif") as m, rasterio.open(path) as src:
        assert m.crs == src.crs and m.transform == src.transform
    assert any("local" in m.lower() and "crs" in m.lower() for m in res.messages)


def test_model_pixel_size_tolerance_means_no_resampling(fixtures, tmp_path):
    from landslide_mapper.core.mapping.engine import map_landslides

    model = tmp_path / "m.onnx"
    _rgb_model(model, pixel_size_m=0.6)  # 0.5 m is within the default 25 % tolerance
    res = map_landslides(fixtures["ortho_rgba"], model, mask_path=tmp_path / "m.tif")
    assert not res.resampled


# ---------------------------------------------------------------------------------------------
# Command line


def test_cli_prepare_and_slope(fixtures, tmp_path):
    from click.testing import CliRunner

    from landslide_mapper.cli.main import main

    runner = CliRunner()
    out = tmp_path / "s.tif"
    res = runner.invoke(main, ["prepare", str(fixtures["l2a_zip"]), str(out), "--dem",
                               str(fixtures["dem_geographic"]), "--bands",
                               "B02,B10,slope_deg,dem_m", "--aoi",
                               f"{fx.X0},{fx.Y0 - 300},{fx.X0 + 300},{fx.Y0}", "-q"])
    assert res.exit_code == 0, res.output
    assert "4 bands: sentinel2:B02, sentinel2:B10, slope_deg, dem_m" in res.output
    with rasterio.open(out) as ds:
        assert ds.shape == (30, 30)
    res = runner.invoke(main, ["prepare", str(fixtures["l1c"]), str(tmp_path / "x.tif"),
                               "--dem", str(fixtures["dem_far"]), "--bands", "B02,dem_m", "-q"])
    assert res.exit_code == 1 and "does not overlap" in res.output
    assert not (tmp_path / "x.tif").exists()
    res = runner.invoke(main, ["prepare", str(fixtures["l1c"]), str(tmp_path / "y.tif"),
                               "--aoi", "1,2,3"])
    assert res.exit_code == 2 and "xmin,ymin,xmax,ymax" in res.output
    res = runner.invoke(main, ["slope", str(fixtures["dem_utm"]), str(tmp_path / "sl.tif"),
                               "-q"])
    assert res.exit_code == 0, res.output
    with rasterio.open(tmp_path / "sl.tif") as ds:
        s = ds.read(1)
    assert (s[s != STACK_NODATA] == pytest.approx(45.0, abs=1e-3))


def test_given_slope_without_nodata_covering_part_of_the_scene(fixtures, tmp_path):
    """Outside a terrain raster's footprint the stack is nodata, never 0 degrees."""
    part = make_raster(tmp_path / "half_slope.tif", np.full((60, 30), 20.0, np.float32),
                       transform=from_origin(fx.X0, fx.Y0, 10, 10))  # no nodata declared
    r = prepare_sentinel2_stack(fixtures["l1c"], tmp_path / "o.tif",
                                bands=["B02", "slope_deg", "dem_m"], slope_path=part,
                                dem_path=fixtures["dem_utm"])
    slope = _read(r.path)[0][1]
    assert (slope[:, :30] == 20.0).all()
    part2 = make_raster(tmp_path / "half_slope_20m.tif", np.full((30, 15), 20.0, np.float32),
                        transform=from_origin(fx.X0, fx.Y0, 20, 20))
    r = prepare_sentinel2_stack(fixtures["l1c"], tmp_path / "p.tif",
                                bands=["B02", "slope_deg"], slope_path=part2)
    slope = _read(r.path)[0][1]
    assert (slope[:, :29] == 20.0).all() and (slope[:, 31:] == STACK_NODATA).all()


def test_terrain_bands_of_a_named_raster_and_slope_alone(fixtures, tmp_path):
    t = from_origin(fx.X0, fx.Y0, 10, 10)
    named = make_raster(tmp_path / "named.tif", np.stack(
        [fx.band_values("B02", 10), np.full((N10, N10), 12.0), np.full((N10, N10), 321.0)]
    ).astype(np.float32), transform=t, descriptions=["B02", "slope", "dem_m"])
    r = prepare_sentinel2_stack(named, tmp_path / "a.tif")
    assert r.bands == ["sentinel2:B02", "sentinel2:B10", "slope_deg", "dem_m"]
    data = _read(r.path)[0]
    assert (data[2] == 12.0).all() and (data[3] == 321.0).all()
    slope = make_raster(tmp_path / "s.tif", np.full((N10, N10), 7.0, np.float32), transform=t)
    r = prepare_sentinel2_stack(fixtures["l1c"], tmp_path / "b.tif", slope_path=slope)
    assert r.bands[-1] == "slope_deg" and "dem_m" not in r.bands
