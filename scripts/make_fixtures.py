#!/usr/bin/env python3
"""Seeded generator of the Sentinel-2, DEM and orthophoto test fixtures.

    scripts/make_fixtures.py OUT_FOLDER

Writes, all small (seconds to make), nothing committed:

* ``S2A_MSIL1C_..._N0209_....SAFE``: a minimal Level-1C product of processing baseline 02.09 (no
  radiometric offsets), all 13 bands (10 m, 20 m, 60 m JP2), ``MTD_MSIL1C.xml``;
* ``S2B_MSIL2A_..._N0400_....SAFE`` (and its ``.zip``): a Level-2A product of baseline 04.00 with
  ``BOA_ADD_OFFSET`` -1000 on every band and no B10, bands in ``R10m``/``R20m``/``R60m`` (each band
  at its native and at coarser resolutions, as ESA ships them), ``MTD_MSIL2A.xml``;
* ``dem_utm.tif`` (a plane rising 1 m per 1 m eastwards: 45 degrees everywhere, one void),
  ``dem_geographic.tif`` (the scene's area in EPSG:4326 with a north-facing plane of known
  slope), ``dem_far.tif`` (a DEM elsewhere on Earth);
* ``ortho_rgba.tif`` (8-bit RGBA at 0.5 m, alpha 0 on a 0-valued collar), ``ortho_rgb16.tif``
  (16-bit RGB at 0.5 m, 0-valued collar, nodata 0), ``ortho_nocrs.tif`` (no CRS).

Band values follow :func:`field`, a plane in map coordinates whose value is a whole number at
every 10, 20 and 60 m pixel centre, so bilinear resampling onto the 10 m grid is exact inside the
scene and tests can compute every expected value independently. The Level-2A product stores
``field + 1000`` (the baseline 04.00 offset), so both products give the same stack. The top-left
60 x 60 m is 0 (Sentinel-2's nodata) in every band.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import from_origin

CRS = "EPSG:32654"
X0, Y0 = 500000.0, 4_000_000.0
SCENE_M = 600.0  # 60 px at 10 m, 30 at 20 m, 10 at 60 m
RESOLUTION = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
              "B08": 10, "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20}
BANDS = tuple(RESOLUTION)
L2A_OFFSET = -1000
NODATA_BLOCK_M = 60.0
#: A pixel of B03 (10 m grid row, col) whose Level-2A raw value is below -offset: clipped to 0.
CLIPPED_PIXEL = (20, 20)
GX, GY = 0.2, 0.4  # value per metre east and per metre south
SEED = 20180906


def field(band: str, x, y):
    """The value of ``band`` (pre-04.00 scale) at map coordinates x, y (a plane)."""
    base = 1000.0 + 100.0 * BANDS.index(band)
    return base + GX * (np.asarray(x) - X0) + GY * (Y0 - np.asarray(y))


def band_values(band: str, res: float) -> np.ndarray:
    """The field at the centres of a ``res`` m grid over the scene, nodata block set to 0."""
    n = int(round(SCENE_M / res))
    cols, rows = np.meshgrid(np.arange(n), np.arange(n))
    x, y = X0 + (cols + 0.5) * res, Y0 - (rows + 0.5) * res
    v = field(band, x, y)
    v[(x < X0 + NODATA_BLOCK_M) & (y > Y0 - NODATA_BLOCK_M)] = 0
    return v


def _jp2(path: Path, data: np.ndarray, res: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.atleast_3d(data) if data.ndim == 3 else data[None]
    with rasterio.open(path, "w", driver="JP2OpenJPEG", width=data.shape[2],
                       height=data.shape[1], count=data.shape[0], dtype=data.dtype, crs=CRS,
                       transform=from_origin(X0, Y0, res, res), QUALITY=100,
                       REVERSIBLE="YES") as dst:
        dst.write(data)


def _spectral_list() -> str:
    return "".join(
        f'<Spectral_Information bandId="{i}" physicalBand="{b.replace("B0", "B")}">'
        f"<RESOLUTION>{RESOLUTION[b]}</RESOLUTION></Spectral_Information>"
        for i, b in enumerate(BANDS))


def _mtd_l1c(baseline: str) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-1C_User_Product
 xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-1C.xsd">
 <n1:General_Info>
  <Product_Info>
   <PROCESSING_LEVEL>Level-1C</PROCESSING_LEVEL>
   <PRODUCT_TYPE>S2MSI1C</PRODUCT_TYPE>
   <PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
  </Product_Info>
  <Product_Image_Characteristics>
   <QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>
   <Spectral_Information_List>{_spectral_list()}</Spectral_Information_List>
  </Product_Image_Characteristics>
 </n1:General_Info>
</n1:Level-1C_User_Product>
"""


def _mtd_l2a(baseline: str, offset: int) -> str:
    offsets = "".join(f'<BOA_ADD_OFFSET band_id="{i}">{offset}</BOA_ADD_OFFSET>'
                      for i in range(len(BANDS)))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-2A_User_Product
 xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd">
 <n1:General_Info>
  <Product_Info>
   <PROCESSING_LEVEL>Level-2A</PROCESSING_LEVEL>
   <PRODUCT_TYPE>S2MSI2A</PRODUCT_TYPE>
   <PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
  </Product_Info>
  <Product_Image_Characteristics>
   <QUANTIFICATION_VALUES_LIST>
    <BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>
    <AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>
    <WVP_QUANTIFICATION_VALUE unit="cm">1000.0</WVP_QUANTIFICATION_VALUE>
   </QUANTIFICATION_VALUES_LIST>
   <BOA_ADD_OFFSET_VALUES_LIST>{offsets}</BOA_ADD_OFFSET_VALUES_LIST>
   <Spectral_Information_List>{_spectral_list()}</Spectral_Information_List>
  </Product_Image_Characteristics>
 </n1:General_Info>
</n1:Level-2A_User_Product>
"""


def make_l1c(out: Path) -> Path:
    """Level-1C, baseline 02.09: raw values are the field, all 13 bands, no offsets."""
    safe = out / "S2A_MSIL1C_20180906T013651_N0209_R117_T54TWN_20180906T042919.SAFE"
    img = safe / "GRANULE" / "L1C_T54TWN_A016710_20180906T013650" / "IMG_DATA"
    for band, res in RESOLUTION.items():
        _jp2(img / f"T54TWN_20180906T013651_{band}.jp2",
             band_values(band, res).astype(np.uint16), res)
    tci = np.zeros((3, 60, 60), np.uint8)
    _jp2(img / "T54TWN_20180906T013651_TCI.jp2", tci, 10)  # true colour: not a band
    (safe / "MTD_MSIL1C.xml").write_text(_mtd_l1c("02.09"), encoding="utf-8")
    return safe


def make_l2a(out: Path) -> Path:
    """Level-2A, baseline 04.00: raw = field - offset (field + 1000), no B10."""
    safe = out / "S2B_MSIL2A_20220906T013651_N0400_R117_T54TWN_20220906T042919.SAFE"
    img = safe / "GRANULE" / "L2A_T54TWN_A028710_20220906T013650" / "IMG_DATA"
    for band, native in RESOLUTION.items():
        if band == "B10":
            continue
        for res in (10, 20, 60):
            if res < native or (res == 10 and band not in ("B02", "B03", "B04", "B08")) or (
                    res > 10 and band == "B08"):
                continue
            v = band_values(band, res)
            raw = np.where(v > 0, v - L2A_OFFSET, 0)
            if band == "B03" and res == 10:
                raw[CLIPPED_PIXEL] = 500  # darker than the offset: clipped to 0, still valid
            _jp2(img / f"R{res}m" / f"T54TWN_20220906T013651_{band}_{res}m.jp2",
                 raw.astype(np.uint16), res)
    _jp2(img / "R20m" / "T54TWN_20220906T013651_SCL_20m.jp2", np.full((30, 30), 4, np.uint8), 20)
    (safe / "MTD_MSIL2A.xml").write_text(_mtd_l2a("04.00", L2A_OFFSET), encoding="utf-8")
    return safe


def zip_product(safe: Path) -> Path:
    z = safe.with_suffix(".zip")
    with zipfile.ZipFile(z, "w", zipfile.ZIP_STORED) as zf:
        for p in sorted(safe.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(safe.parent).as_posix())
    return z


def make_dems(out: Path) -> dict[str, Path]:
    """A projected plane at 45 degrees (with a void), a geographic plane, a far-away DEM."""
    paths = {}
    # Projected: 30 m pixels over the scene and a margin; z = x - X0 (1 m per 1 m east).
    res, n = 30.0, 24
    x = X0 - 60 + (np.arange(n) + 0.5) * res
    z = np.tile(x - X0, (n, 1)).astype(np.float32)
    z[12, 12] = -9999.0
    paths["utm"] = _tif(out / "dem_utm.tif", z, CRS, from_origin(X0 - 60, Y0 + 60, res, res),
                        -9999.0)
    # Geographic: the scene's area (~36.1 N, 141 E) at 1 arc-second, elevation rising 0.1 m per m
    # southwards along the meridian (metres measured on WGS84 by the tests).
    from pyproj import Geod, Transformer

    to_geo = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    lon0, lat0 = to_geo.transform(X0 - 100, Y0 + 100)
    lon1, lat1 = to_geo.transform(X0 + SCENE_M + 100, Y0 - SCENE_M - 100)
    d = 1.0 / 3600.0
    w, h = int(np.ceil((lon1 - lon0) / d)), int(np.ceil((lat0 - lat1) / d))
    lats = lat0 - (np.arange(h) + 0.5) * d
    geod = Geod(ellps="WGS84")
    _, _, south = geod.inv(np.full(h, lon0), np.full(h, lat0), np.full(h, lon0), lats)
    zg = np.repeat((100.0 + 0.1 * south)[:, None], w, axis=1).astype(np.float32)
    zg[h // 2, w // 2] = -32768
    paths["geographic"] = _tif(out / "dem_geographic.tif", zg, "EPSG:4326",
                               from_origin(lon0, lat0, d, d), -32768.0)
    paths["far"] = _tif(out / "dem_far.tif", np.ones((10, 10), np.float32), "EPSG:4326",
                        from_origin(10.0, 50.0, 0.001, 0.001), -9999.0)
    return paths


def _tif(path: Path, data: np.ndarray, crs, transform, nodata, **kw) -> Path:
    data = data if data.ndim == 3 else data[None]
    profile = dict(driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                   dtype=data.dtype, transform=transform, nodata=nodata, **kw)
    if crs is not None:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


COLLAR_PX = 16
ORTHO_PX = 256
ORTHO_RES = 0.5


def make_orthophotos(out: Path) -> dict[str, Path]:
    """RGBA 8-bit (alpha = 0 on the collar) and RGB 16-bit (nodata 0) at 0.5 m; one without CRS.

    Inside the collar the red band is 200 (8-bit) / 51400 (16-bit) on the left half and 40 / 10280
    on the right, green and blue vary randomly (seeded).
    """
    rng = np.random.default_rng(SEED)
    n, c = ORTHO_PX, COLLAR_PX
    inside = np.zeros((n, n), bool)
    inside[c:-c, c:-c] = True
    red = np.where(np.arange(n)[None, :] < n // 2, 200, 40).repeat(n, 0)
    rgb8 = np.stack([red, rng.integers(1, 255, (n, n)), rng.integers(1, 255, (n, n))])
    rgb8 = np.where(inside, rgb8, 0).astype(np.uint8)
    alpha = np.where(inside, 255, 0).astype(np.uint8)
    t = from_origin(X0, Y0, ORTHO_RES, ORTHO_RES)
    paths = {}
    rgba = out / "ortho_rgba.tif"
    with rasterio.open(rgba, "w", driver="GTiff", width=n, height=n, count=4, dtype="uint8",
                       crs=CRS, transform=t, photometric="RGB", alpha="YES") as dst:
        dst.write(np.concatenate([rgb8, alpha[None]]))
        for i, d in enumerate(("red", "green", "blue", "alpha"), start=1):
            dst.set_band_description(i, d)
    paths["rgba"] = rgba
    rgb16 = (rgb8.astype(np.uint16) * 257)
    paths["rgb16"] = _tif(out / "ortho_rgb16.tif", rgb16, CRS, t, 0)
    with rasterio.open(paths["rgb16"], "r+") as dst:
        for i, d in enumerate(("red", "green", "blue"), start=1):
            dst.set_band_description(i, d)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        paths["nocrs"] = _tif(out / "ortho_nocrs.tif", rgb8, None, None, None)
    return paths


def make_all(out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    l1c, l2a = make_l1c(out), make_l2a(out)
    paths = {"l1c": l1c, "l2a": l2a, "l2a_zip": zip_product(l2a)}
    paths.update({f"dem_{k}": v for k, v in make_dems(out).items()})
    paths.update({f"ortho_{k}": v for k, v in make_orthophotos(out).items()})
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="folder to write the fixtures into")
    parser.add_argument("--clean", action="store_true", help="empty the folder first")
    args = parser.parse_args(argv)
    if args.clean and args.output.exists():
        shutil.rmtree(args.output)
    for name, path in make_all(args.output).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
