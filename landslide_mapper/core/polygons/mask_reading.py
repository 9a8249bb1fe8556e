"""Reading the mask and probability rasters for vectorizing, strip by strip.

The mask is read strip by strip (``strip_rows`` rows at a time, never whole; by default about
:data:`STRIP_PIXELS` pixels, in whole blocks when they fit). A strip of the mask raster becomes a
boolean landslide mask, and a strip of the probability raster (or of the mask itself when it is a
probability raster) becomes probabilities as float64, NaN where nodata.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import rasterio
from affine import Affine
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from ..errors import InputError, reading
from ..georeferencing import check_georeferenced

#: Pixels per strip when ``strip_rows`` is not given (rounded down to whole blocks when they fit).
STRIP_PIXELS = 1_000_000
#: GDAL block cache while vectorizing. Strips of rows need a whole row of the raster's blocks in
#: it (else each block is decompressed again for every strip); a raster wider than that allows is
#: walked in strips of columns instead (:func:`strip_walk`), so memory stays flat.
CACHE_BYTES = 128 * 2**20
#: uint8 probability convention: 0..254 -> 0..1, 255 nodata.
UINT8_PROBABILITY_SCALE = 1.0 / 254.0
UINT8_PROBABILITY_NODATA = 255


@dataclass(frozen=True)
class _Band:
    """How to turn one strip of a single-band raster into a mask and/or a probability."""

    dataset: Any
    role: str
    probability: bool           # values are probabilities (float, or integers with a scale)
    scale: float = 1.0
    offset: float = 0.0
    nodata: float | None = None
    transposed: bool = False  # strips are columns, read and handed on transposed

    def read(self, row: int, height: int) -> np.ndarray:
        ds = self.dataset
        with reading(f"{self.role} {ds.name}"):
            if self.transposed:
                return np.ascontiguousarray(ds.read(1, window=Window(row, 0, height,
                                                                     ds.height)).T)
            return ds.read(1, window=Window(0, row, ds.width, height))

    def valid(self, raw: np.ndarray) -> np.ndarray:
        ok = np.ones(raw.shape, dtype=bool)
        if raw.dtype.kind == "f":
            ok &= ~np.isnan(raw)
        if self.nodata is not None and not math.isnan(self.nodata):
            ok &= raw != self.nodata
        return ok

    def to_probability(self, raw: np.ndarray) -> np.ndarray:
        """Probabilities as float64, NaN where nodata."""
        p = raw.astype(np.float64)
        if self.scale != 1.0 or self.offset != 0.0:
            p = p * self.scale + self.offset
        p[~self.valid(raw)] = np.nan
        return p

    def to_mask(self, raw: np.ndarray, threshold: float) -> np.ndarray:
        valid = self.valid(raw)
        if not self.probability:
            return valid & (raw != 0)
        if raw.dtype.kind == "f":
            with np.errstate(invalid="ignore"):
                return valid & (raw * self.scale + self.offset >= threshold)
        # Integer probabilities: compare raw counts, so 127 of 254 is exactly 0.5.
        lowest = math.ceil((threshold - self.offset) / self.scale - 1e-9)
        return valid & (raw >= lowest)


def _open(path: Any, role: str) -> Any:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{role} {str(p)!r}: the file does not exist. Check the path.")
    try:
        ds = rasterio.open(p)
    except RasterioIOError as err:
        raise InputError(
            f"{role} {str(p)!r}: expected a raster that GDAL can read (e.g. a GeoTIFF), found a "
            f"file it cannot open as one ({err}). Choose the mask or probability raster."
        ) from None
    try:
        if ds.count != 1:
            raise InputError(
                f"{role} {str(p)!r}: expected a single-band raster, found {ds.count} bands. Give "
                "the one-band mask (or probability) raster, or extract the band first."
            )
        check_georeferenced(ds, f"{role} {str(p)!r}")
        kind = np.dtype(ds.dtypes[0]).kind
        if kind not in "uif":
            raise InputError(
                f"{role} {str(p)!r}: expected integer or floating-point pixels, found "
                f"{ds.dtypes[0]}. Convert the raster to Byte or Float32."
            )
    except BaseException:
        ds.close()
        raise
    return ds


def _band(ds: Any, role: str, *, as_probability: bool) -> _Band:
    """How to read ``ds``: a mask, or a probability (float, or integer with a value scale)."""
    dtype = np.dtype(ds.dtypes[0])
    scale = float(ds.scales[0]) if ds.scales else 1.0
    offset = float(ds.offsets[0]) if ds.offsets else 0.0
    nodata = ds.nodata
    if dtype.kind == "f":
        return _Band(ds, role, True, scale, offset, nodata)
    if scale != 1.0 or offset != 0.0:
        if scale <= 0:
            raise InputError(f"{role} {ds.name!r}: expected a positive value scale, found {scale}.")
        if nodata is None and dtype == np.uint8 and abs(scale - UINT8_PROBABILITY_SCALE) < 1e-9:
            nodata = UINT8_PROBABILITY_NODATA
        return _Band(ds, role, True, scale, offset, nodata)
    if not as_probability:
        return _Band(ds, role, False, nodata=nodata)
    if dtype == np.uint8:
        nodata = UINT8_PROBABILITY_NODATA if nodata is None else nodata
        return _Band(ds, role, True, UINT8_PROBABILITY_SCALE, 0.0, nodata)
    raise InputError(
        f"{role} {ds.name!r}: expected probabilities (Float32 0..1, or Byte 0..254 with 255 as "
        f"nodata), found {dtype.name} without a value scale. Give the probability raster written "
        "by Map landslides, or leave the probability input empty."
    )


def _check_same_grid(mask: Any, prob: Any) -> None:
    found = []
    if (mask.width, mask.height) != (prob.width, prob.height):
        found.append(f"size {prob.width}x{prob.height} instead of {mask.width}x{mask.height}")
    if mask.crs != prob.crs:
        found.append(f"CRS {prob.crs} instead of {mask.crs}")
    a, b = np.array(mask.transform[:6]), np.array(prob.transform[:6])
    pixel = min(abs(mask.transform.a), abs(mask.transform.e)) or 1.0
    if not np.allclose(a, b, rtol=1e-9, atol=1e-6 * pixel):
        found.append(f"geotransform {tuple(b)} instead of {tuple(a)}")
    if found:
        raise InputError(
            f"Probability raster {prob.name!r}: expected the same grid as the mask raster "
            f"{mask.name!r}, found {'; '.join(found)}. Give the probability raster the mask was "
            "made from, or resample it onto the mask's grid."
        )


@dataclass(frozen=True)
class StripWalk:
    """The raster as the strips see it: rows of ``width`` pixels, ``height`` of them, and the
    geotransform of that pixel space (a raster walked in columns: transposed, x and y swapped)."""

    width: int
    height: int
    transform: Affine
    block_shapes: list[tuple[int, int]]
    transposed: bool
    cache_bytes: int  # the block cache the walk needs: one row of blocks, bounded


def strip_walk(ds: Any, *others: Any) -> StripWalk:
    """Strips of rows, unless a row of blocks of ``ds`` (and ``others`` on its grid) would not
    fit :data:`CACHE_BYTES` and the raster is wider than tall: then strips of columns."""
    block_h, block_w = ds.block_shapes[0] if ds.block_shapes else (1, ds.width)
    item = sum(np.dtype(d.dtypes[0]).itemsize for d in (ds, *others))
    row_bytes = ds.width * block_h * item

    def cache(need: int) -> int:
        return int(min(CACHE_BYTES, max(16 * 2**20, 1.25 * need)))

    if ds.width > ds.height and row_bytes > CACHE_BYTES:
        swap = Affine(0.0, 1.0, 0.0, 1.0, 0.0, 0.0)  # (x', y') = (row, col)
        return StripWalk(ds.height, ds.width, ds.transform * swap, [(block_w, block_h)], True,
                         cache(ds.height * block_w * item))
    return StripWalk(ds.width, ds.height, ds.transform, [(block_h, block_w)], False,
                     cache(row_bytes))


def _strip_rows(ds: Any, strip_rows: int | None) -> int:
    if strip_rows is not None:
        if int(strip_rows) < 1:
            raise InputError(f"strip_rows: expected a whole number >= 1, found {strip_rows!r}.")
        return int(strip_rows)
    rows = max(1, STRIP_PIXELS // max(1, ds.width))
    block = max(1, ds.block_shapes[0][0]) if ds.block_shapes else 1
    return rows // block * block if rows >= block else rows  # whole blocks when they fit


def _strips(height: int, rows: int) -> Iterator[tuple[int, int]]:
    for row in range(0, height, rows):
        yield row, min(rows, height - row)


def _read_strip(mask_band: _Band, prob_band: _Band | None, row: int, height: int,
                threshold: float) -> tuple[np.ndarray, np.ndarray | None]:
    """One strip: the landslide mask, and its probabilities (None without a probability band)."""
    raw = mask_band.read(row, height)
    mask = mask_band.to_mask(raw, threshold)
    prob = None
    if prob_band is mask_band:
        prob = mask_band.to_probability(raw)
    elif prob_band is not None:
        prob = prob_band.to_probability(prob_band.read(row, height))
    return mask, prob
