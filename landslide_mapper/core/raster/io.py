"""Rasters in and out: validation, pixel size in metres, resampling plan, windowed reads, writers.

Reads are windowed and boundless: a tile reaching past the raster's edge is padded by reflection,
so the network sees plausible context and never a hard zero border. Masked pixels (nodata, NaN,
alpha or an internal mask) are fed as the contract's ``nodata_value`` after normalization and are
never scored. Outputs are tiled, compressed GeoTIFFs on exactly the input's grid.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp, Interleaving, MaskFlags, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window

from .. import staging
from ..contract import BandSpec, ModelContract
from ..errors import InputError, OutputError, read_failure, reading  # noqa: F401
from ..georeferencing import check_georeferenced  # noqa: F401  (one check for all)

#: A raster more than this factor off the model's pixel size is refused rather than resampled.
MAX_RESAMPLE_FACTOR = 8.0
#: Block size of the written GeoTIFFs; the engine flushes rows in multiples of it.
BLOCK = 256
#: With no nodata, alpha or mask declared, pixels 0 in all of at least this many bands are nodata.
ZERO_COLLAR_MIN_BANDS = 3
PROBABILITY_NODATA = float("nan")
UINT8_NODATA = 255
UINT8_SCALE = 1.0 / 254.0
#: GDAL block cache during a run. Fixed, so memory stays flat whatever the raster's size; tiles
#: overlapping their left and upper neighbours still find most of those blocks in it.
GDAL_CACHE_BYTES = 64 * 2**20


def gdal_env():
    """GDAL settings for a run (rasterio applies the cache size and restores it afterwards)."""
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES)


# ---------------------------------------------------------------------------------------------
# Input


def open_input(path: str | os.PathLike[str], what: str = "Input raster",
               expected: str = "a georeferenced raster such as a GeoTIFF"
               ) -> rasterio.io.DatasetReader:
    """Open ``path`` as a raster, or raise an InputError that says what the file is (the message
    starts with ``what`` and the path, and says ``expected``)."""
    p = Path(path)
    if not p.exists():
        raise InputError(
            f"{what} {p}: file not found. Give the path of a GeoTIFF or other raster.")
    if p.is_dir():
        raise InputError(f"{what} {p}: is a folder, expected a raster file (e.g. GeoTIFF).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(p)
    except RasterioIOError as exc:
        raise InputError(
            f"{what} {p}: expected {expected}, found a file that is not a raster GDAL can "
            f"read ({exc})."
        ) from exc


def crs_note(ds, source: str) -> str | None:
    """A note for the user when the CRS is local (engineering): neither projected nor geographic."""
    if ds.crs.is_projected or ds.crs.is_geographic:
        return None
    try:
        unit = ds.crs.linear_units
    except Exception:
        unit = "unknown"
    return (f"{source}: its CRS is a local (engineering) CRS, not tied to the Earth; pixel sizes "
            f"are read in its own unit ({unit}, taken as metres when unknown) and the outputs carry "
            "the same local CRS, so they will not line up with map data in other CRSs.")


def pixel_size_m(ds) -> tuple[float, float]:
    """(x, y) pixel size in metres.

    Projected CRS: the pixel size times the CRS's linear unit (feet, ...). Geographic CRS: the
    geodesic length of one pixel on the CRS's ellipsoid at the raster's centre, along each axis.
    """
    rx, ry = ds.res
    if ds.crs.is_geographic:
        from pyproj import CRS

        geod = CRS.from_wkt(ds.crs.to_wkt()).get_geod()
        lon, lat = ds.transform * (ds.width / 2.0, ds.height / 2.0)
        lat = max(-89.0, min(89.0, lat))
        _, _, dx = geod.inv(lon - rx / 2, lat, lon + rx / 2, lat)
        _, _, dy = geod.inv(lon, lat - ry / 2, lon, lat + ry / 2)
        return float(dx), float(dy)
    try:
        _, factor = ds.crs.linear_units_factor
    except Exception:  # CRS without a usable linear unit: assume metres
        factor = 1.0
    return float(rx * factor), float(ry * factor)


@dataclass(frozen=True)
class ResamplePlan:
    """The working grid the model runs on when the raster's pixel size is off."""

    transform: Affine
    width: int
    height: int
    factor: float  # raster pixel size / model pixel size (geometric mean)


def plan_resampling(ds, contract: ModelContract, source: str) -> ResamplePlan | None:
    """None when the pixel size is within tolerance, else the working grid at the model's size.

    The raster's pixel size is the geometric mean of x and y in metres; it is compared with the
    contract's ``pixel_size_m`` with relative tolerance ``pixel_size_tolerance``.
    """
    px, py = pixel_size_m(ds)
    size = math.sqrt(px * py)
    target = contract.pixel_size_m
    factor = size / target
    if abs(factor - 1.0) <= contract.pixel_size_tolerance:
        return None
    if not 1.0 / MAX_RESAMPLE_FACTOR <= factor <= MAX_RESAMPLE_FACTOR:
        raise InputError(
            f"{source}: pixel size is {size:.3g} m but the model '{contract.name}' works at "
            f"{target:g} m ({factor:.3g} times {'coarser' if factor > 1 else 'finer'}; at most "
            f"{MAX_RESAMPLE_FACTOR:g} times off can be resampled). Use a raster at about "
            f"{target:g} m or a model trained for this resolution."
        )
    rx, ry = ds.res
    new_rx, new_ry = rx * target / px, ry * target / py
    left, bottom, right, top = ds.bounds
    width = max(1, int(math.ceil((right - left) / new_rx - 1e-9)))
    height = max(1, int(math.ceil((top - bottom) / new_ry - 1e-9)))
    transform = Affine(new_rx, 0.0, left, 0.0, -new_ry, top)
    return ResamplePlan(transform, width, height, factor)


def working_dataset(ds, plan: ResamplePlan):
    """A WarpedVRT of ``ds`` on the plan's grid (average when shrinking, bilinear when growing)."""
    from rasterio.vrt import WarpedVRT

    resampling = Resampling.average if plan.factor < 1 else Resampling.bilinear
    kw = {}
    if ds.nodata is None and ColorInterp.alpha not in ds.colorinterp:
        kw["add_alpha"] = True  # marks the source's footprint (and its mask) on the working grid
    return WarpedVRT(ds, crs=ds.crs, transform=plan.transform, width=plan.width, height=plan.height,
                     resampling=resampling, **kw)


class BandReader:
    """Reads the model's bands of one window: normalized float32 values and a validity mask."""

    def __init__(self, ds, band_indexes: Sequence[int], specs: Sequence[BandSpec],
                 nodata_value: float):
        self.ds = ds
        self.source = f"Input raster {getattr(ds, 'src_dataset', ds).name}"
        self.indexes = list(band_indexes)
        self.nodata_value = np.float32(nodata_value)
        # y = (x * scale + offset - mean) / std, folded into one multiply-add: y = x * a + b
        self.a = np.array([s.scale / s.std for s in specs], np.float32)[:, None, None]
        self.b = np.array([(s.offset - s.mean) / s.std for s in specs], np.float32)[:, None, None]
        flags = [ds.mask_flag_enums[i - 1] for i in self.indexes]
        self.nodata = [ds.nodatavals[i - 1] if MaskFlags.nodata in fl else None
                       for i, fl in zip(self.indexes, flags)]
        # An alpha band or an internal mask: read through GDAL's mask (shared when per dataset).
        self.mask_bands: list[int] = []
        for i, fl in zip(self.indexes, flags):
            masked = MaskFlags.alpha in fl or MaskFlags.per_dataset in fl
            if MaskFlags.nodata not in fl and masked:
                if MaskFlags.per_dataset in fl:
                    if not self.mask_bands:
                        self.mask_bands.append(i)
                else:
                    self.mask_bands.append(i)
        self.is_float = any(np.issubdtype(np.dtype(ds.dtypes[i - 1]), np.floating)
                            for i in self.indexes)
        # Nothing declared (no nodata, alpha or mask) on a multi-band image: a pixel that is 0 in
        # every band is the black collar of an orthophoto or an unfilled scene edge, not data.
        declared = any(MaskFlags.all_valid not in fl for fl in flags)
        self.zero_is_nodata = not declared and len(self.indexes) >= ZERO_COLLAR_MIN_BANDS

    def read_raw(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Raw values (bands, h, w) and validity (h, w) of a window inside the raster."""
        with reading(self.source):
            raw = self.ds.read(self.indexes, window=window)
            masks = [self.ds.read_masks(i, window=window) for i in self.mask_bands]
        valid = np.ones(raw.shape[1:], bool)
        for k, nd in enumerate(self.nodata):
            if nd is not None:
                is_nan = isinstance(nd, float) and math.isnan(nd)
                valid &= ~np.isnan(raw[k]) if is_nan else raw[k] != nd
        for m in masks:
            valid &= m > 0
        if self.is_float:
            valid &= np.isfinite(raw).all(axis=0)
        if self.zero_is_nodata:
            valid &= raw.any(axis=0)
        return raw, valid

    def read_valid(self, window: Window) -> np.ndarray:
        return self.read_raw(window)[1]

    def read_tile(self, row: int, col: int, size: int, out: np.ndarray) -> np.ndarray:
        """Fill ``out`` (bands, size, size) with the normalized tile; return its validity mask.

        Parts past the raster's edge are reflected; the returned mask covers the whole tile.
        """
        h_all, w_all = self.ds.height, self.ds.width
        r0, c0 = max(row, 0), max(col, 0)
        r1, c1 = min(row + size, h_all), min(col + size, w_all)
        raw, valid = self.read_raw(Window(c0, r0, c1 - c0, r1 - r0))
        pads = ((r0 - row, row + size - r1), (c0 - col, col + size - c1))
        padded = any(p for pair in pads for p in pair)
        x = np.empty(raw.shape, np.float32) if padded else out
        np.multiply(raw, self.a, out=x, casting="unsafe")
        x += self.b
        if not valid.all():
            np.copyto(x, self.nodata_value, where=~valid[None])
        if padded:
            mode = "reflect" if min(x.shape[1:]) > 1 else "edge"
            out[...] = np.pad(x, ((0, 0), *pads), mode=mode)
            valid = np.pad(valid, pads, mode="constant", constant_values=False)
        return valid


def has_valid_pixels(reader: BandReader, samples: int = 3, size: int = 32) -> bool:
    """Whether any pixel of the mapped bands is valid: a few sample windows, then a full scan.

    The full, block-by-block scan (stopping at the first valid pixel) only runs when the samples
    found nothing, i.e. for empty or nearly empty rasters.
    """
    ds = reader.ds
    for fr in np.linspace(0, 1, samples):
        for fc in np.linspace(0, 1, samples):
            r = int(fr * max(ds.height - size, 0))
            c = int(fc * max(ds.width - size, 0))
            w = Window(c, r, min(size, ds.width - c), min(size, ds.height - r))
            if reader.read_valid(w).any():
                return True
    step = 1024
    for r in range(0, ds.height, step):
        for c in range(0, ds.width, step):
            w = Window(c, r, min(step, ds.width - c), min(step, ds.height - r))
            if reader.read_valid(w).any():
                return True
    return False


# ---------------------------------------------------------------------------------------------
# Output


def temporary_sibling(path: Path, tag: str = "partial") -> Path:
    """A hidden, unique name in the same folder, keeping the suffix (so drivers can be guessed);
    stale ones of earlier killed runs there are removed first (see :mod:`..staging`)."""
    return staging.temporary_sibling(path, tag)


def check_written(tmp: Path, target: Path, what: str) -> None:
    """Raise OutputError unless the closed GeoTIFF ``tmp`` is complete on the disk.

    GDAL reports a failed write (disk full, quota, I/O error) only as a log message and still
    closes the file: the file then lacks its directory (cannot be opened) or some of its blocks
    (offset 0, read back as nodata) or ends before the last block does. All three are checked
    from the TIFF's block index without reading the pixels (about 20 us a block).
    """
    try:
        size = tmp.stat().st_size
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            ds = rasterio.open(tmp)
    except (OSError, RasterioIOError) as exc:
        detail = str(exc).replace(str(tmp), "the written file")
        raise staging.write_failure(what, target, f"a file that cannot be read back ({detail})") \
            from None
    with ds:
        if ds.driver != "GTiff":
            return
        rows, cols = ds.block_shapes[0]
        nx, ny = -(-ds.width // cols), -(-ds.height // rows)
        bands = ds.indexes if ds.interleaving != Interleaving.pixel else [1]
        missing = 0
        for b in bands:
            for y in range(ny):
                for x in range(nx):
                    offset = ds.get_tag_item(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=b)
                    length = ds.get_tag_item(f"BLOCK_SIZE_{x}_{y}", "TIFF", bidx=b)
                    if not offset or int(offset) == 0 or int(offset) + int(length or 0) > size:
                        missing += 1
    if missing:
        raise staging.write_failure(
            what, target, f"{missing} of {nx * ny * len(bands)} blocks of the raster missing "
            "(the disk is probably full)")


def publish_raster(tmp: Path, target: Path, what: str) -> None:
    """Check the closed temporary raster ``tmp`` (:func:`check_written`) and rename it over
    ``target``; on failure ``tmp`` is removed and ``target`` left as it was."""
    try:
        check_written(tmp, target, what)
    except OutputError:
        remove_quietly(tmp)
        raise
    staging.publish(tmp, target, what)


def check_writable(path: Path, what: str) -> None:
    """Raise OutputError if ``path`` cannot be created (missing or read-only folder, a folder)."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise OutputError(f"{what} {path}: is a folder, expected a file name.")
    if not folder.is_dir():
        raise OutputError(
            f"{what} {path}: folder {folder} does not exist. Create it or choose another path.")
    probe = temporary_sibling(path, "probe")
    try:
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise OutputError(
            f"{what} {path}: folder {folder} is not writable ({exc.strerror}). Choose a folder you "
            "can write to."
        ) from exc
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"{what} {path}: the existing file is read-only. Choose another path.")


def create_output(path: Path, *, crs, transform: Affine, width: int, height: int, dtype: str,
                  nodata: float | None, description: str, scale: float | None = None):
    """Open a tiled, compressed single-band GeoTIFF for writing on the given grid."""
    predictor = 3 if np.issubdtype(np.dtype(dtype), np.floating) else 2
    profile = dict(driver="GTiff", width=width, height=height, count=1, dtype=dtype, crs=crs,
                   transform=transform, nodata=nodata, tiled=True, blockxsize=BLOCK,
                   blockysize=BLOCK, compress="deflate", predictor=predictor, zlevel=4,
                   bigtiff="IF_SAFER", num_threads="2", sparse_ok=False)
    try:
        dst = rasterio.open(path, "w", **profile)
    except RasterioIOError as exc:
        raise staging.write_failure("Output raster", path,
                                    f"a file that cannot be created ({exc})") from None
    dst.set_band_description(1, description)
    if scale is not None:
        dst.scales = (scale,)
        dst.offsets = (0.0,)
    return dst


def remove_quietly(path: Path) -> None:
    """Delete a temporary file and any side-car GDAL may have made for it."""
    for p in (path, path.with_name(path.name + ".aux.xml")):
        try:
            p.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            pass
