"""Writing the stack: every band warped onto the output grid, scaled, and written block by block.

The output is one float32, tiled, deflate-compressed GeoTIFF, bands in the asked order, each
described (``sentinel2:B02``, ``slope_deg``, ``dem_m``) with its rule in the band metadata; nodata
is :data:`STACK_NODATA` (product nodata, DEM voids, outside an AOI polygon). 20 m and 60 m bands
are resampled bilinearly (reflectance is continuous; the warper leaves nodata out of the
weights), as are the slope and DEM rasters. Sentinel-2 values are brought to the pre-04.00 scale,
``value = max(raw + offset, 0) * 10000 / QUANTIFICATION_VALUE`` (raw 0 = nodata stays nodata);
an absent B10 is the constant ``b10_fill`` wherever the reference band is valid. Work is done
:data:`BLOCK` x :data:`BLOCK` pixels at a time.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from ..errors import CancelledError
from ..raster.io import reading
from ..staging import write_failure, writing
from .s2_bands import describe_band
from .s2_product import ProductInfo
from .stack_grid import Grid
from .terrain import SLOPE_BAND, TERRAIN_NODATA

STACK_NODATA = TERRAIN_NODATA
BLOCK = 512


def _warped(ds, grid: Grid, resampling: Resampling, src_nodata=None, terrain: bool = False):
    """``ds`` on the output grid: as it is when the grids match, else a WarpedVRT.

    Sentinel-2 bands: raw 0 is nodata (``src_nodata``). Terrain rasters are warped as float32
    with :data:`STACK_NODATA`, so the area outside their footprint reads as nodata, never as 0.
    """
    from rasterio.vrt import WarpedVRT

    same = (ds.crs == grid.crs and ds.transform.almost_equals(grid.transform)
            and (ds.width, ds.height) == (grid.width, grid.height))
    if same:
        return ds, None
    kw: dict[str, Any] = {}
    if src_nodata is not None and ds.nodata is None:
        kw["src_nodata"] = src_nodata
    if terrain:
        kw.update(nodata=STACK_NODATA, dtype="float32")
    vrt = WarpedVRT(ds, crs=grid.crs, transform=grid.transform, width=grid.width,
                    height=grid.height, resampling=resampling, **kw)
    return vrt, vrt


def write_stack(tmp: Path, grid: Grid, names, info: ProductInfo, opened, ref_name, ref_ds,
                terrain, polygon, b10_fill: float, stack: ExitStack, progress, is_canceled):
    """Write the bands ``names`` to ``tmp`` on ``grid``; files opened stay open in ``stack``."""
    readers: dict[str, Any] = {}
    for n, ds in opened.items():
        reader, vrt = _warped(ds, grid, Resampling.bilinear, src_nodata=0)
        if vrt is not None:
            stack.enter_context(vrt)
        readers[n] = reader
    ref_reader = readers.get(ref_name)
    if ref_reader is None:
        ref_reader, vrt = _warped(ref_ds, grid, Resampling.bilinear, src_nodata=0)
        if vrt is not None:
            stack.enter_context(vrt)
    for kind, (path, index) in terrain.items():
        ds = stack.enter_context(rasterio.open(path))
        reader, vrt = _warped(ds, grid, Resampling.bilinear, terrain=True)
        if vrt is not None:
            stack.enter_context(vrt)
        readers[kind] = (reader, index)
    profile = dict(driver="GTiff", width=grid.width, height=grid.height, count=len(names),
                   dtype="float32", crs=grid.crs, transform=grid.transform, nodata=STACK_NODATA,
                   tiled=True, blockxsize=256, blockysize=256, compress="deflate", predictor=3,
                   interleave="band", bigtiff="IF_SAFER")
    try:
        dst = stack.enter_context(rasterio.open(tmp, "w", **profile))
    except RasterioIOError as exc:
        raise write_failure("Output stack", tmp, f"a file that cannot be created ({exc})") \
            from None
    dst.update_tags(product=info.source, processing_level=info.level,
                    processing_baseline=info.baseline,
                    offset_rule="value = max(raw + offset, 0) * 10000 / QUANTIFICATION_VALUE; "
                                "raw 0 = nodata")
    for k, n in enumerate(names, start=1):
        dst.set_band_description(k, describe_band(n))
        if n in info.bands:
            s = info.bands[n]
            dst.update_tags(k, source=s.path, offset=f"{s.offset:g}",
                            quantification=f"{s.quantification:g}",
                            rule=f"value = max(raw + ({s.offset:g}), 0) * 10000 / "
                                 f"{s.quantification:g}; pre-04.00 scale (reflectance x 10000)",
                            resampling="bilinear")
        elif n == "B10":
            dst.update_tags(k, rule=f"absent from the product (Level-2A has no B10): filled "
                                    f"with {b10_fill:g}")
        elif n == SLOPE_BAND:
            dst.update_tags(k, units="degrees", rule="Horn (1981) slope of the DEM, bilinear",
                            source=str(terrain[n][0]))
        else:
            dst.update_tags(k, units="metres", rule="DEM warped bilinearly",
                            source=str(terrain[n][0]))
    blocks = [(r0, c0, min(BLOCK, grid.height - r0), min(BLOCK, grid.width - c0))
              for r0 in range(0, grid.height, BLOCK) for c0 in range(0, grid.width, BLOCK)]
    for k, (r0, c0, h, w) in enumerate(blocks):
        if is_canceled is not None and is_canceled():
            raise CancelledError("Cancelled by the user; no stack was written.")
        win = Window(c0, r0, w, h)
        inside = None
        if polygon is not None:
            from rasterio.features import geometry_mask

            inside = geometry_mask([polygon], out_shape=(h, w), invert=True,
                                   transform=grid.window_transform(win))
        ref_valid = None
        for i, n in enumerate(names, start=1):
            with reading(_band_source(n, info, terrain)):
                value, valid = _band_block(n, info, readers, ref_reader, ref_name, win, h, w,
                                           b10_fill, ref_valid)
            if n == "B10":
                ref_valid = valid
            if inside is not None:
                valid = valid & inside
            with writing("Output stack", tmp):
                dst.write(np.where(valid, value, STACK_NODATA).astype(np.float32), i, window=win)
        if progress is not None:
            progress((k + 1) / len(blocks))


def _band_source(n: str, info: ProductInfo, terrain) -> str:
    """How a band's file is named in a read error."""
    if n in info.bands:
        return f"Band {n} file {info.bands[n].path}"
    if n in terrain:
        return f"{'Slope raster' if n == SLOPE_BAND else 'DEM'} {terrain[n][0]}"
    return f"Band {n}"


def _band_block(n: str, info: ProductInfo, readers, ref_reader, ref_name, win: Window, h: int,
                w: int, b10_fill: float, ref_valid):
    """One block of band ``n`` on the grid: values (float64) and validity."""
    if n in info.bands:
        s = info.bands[n]
        raw = readers[n].read(s.index, window=win, masked=True)
        valid = ~np.ma.getmaskarray(raw) & (raw.data != 0)
        value = np.maximum(raw.data.astype(np.float64) + s.offset, 0.0)
        return value * (10000.0 / s.quantification), valid
    if n == "B10":
        if ref_valid is None:
            r = ref_reader.read(info.bands[ref_name].index, window=win, masked=True)
            ref_valid = ~np.ma.getmaskarray(r) & (r.data != 0)
        return np.full((h, w), b10_fill, np.float64), ref_valid
    reader, index = readers[n]
    m = reader.read(index, window=win, masked=True)
    return m.data.astype(np.float64), ~np.ma.getmaskarray(m) & np.isfinite(m.data)
