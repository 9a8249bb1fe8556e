"""Sentinel-2 products (and DEMs) -> one model-ready GeoTIFF stack.

Sources read:

* a Level-1C or Level-2A product: its ``.SAFE`` folder or the ``.zip`` holding it (read through
  GDAL's ``/vsizip/``); band files are taken from ``GRANULE/*/IMG_DATA`` (the finest resolution of
  each band for Level-2A, e.g. ``R10m/..._B02_10m.jp2``), the metadata from ``MTD_MSIL1C.xml`` /
  ``MTD_MSIL2A.xml``;
* a folder, or a list, of band files (JP2 or GeoTIFF), the band read from the file name
  (``..._B02.jp2``, ``..._B02_10m.jp2``, ``B2.tif``, ``scene.B8A.tif``); an ``MTD_MSI*.xml`` in
  the folder is read when present;
* one multi-band raster whose bands are described (``B02``, ``sentinel2:B04``, ``slope_deg``...).

A product's ``MTD_MSIL*.xml`` or one of its band files stands for the whole product (or folder),
as a file dialog can pick only files.

Radiometric offset (processing baseline 04.00 and later): such products store
``DN = reflectance * QUANTIFICATION_VALUE - offset`` with ``RADIO_ADD_OFFSET`` (L1C) or
``BOA_ADD_OFFSET`` (L2A), usually -1000. Every band is brought to the pre-04.00 scale, on which
models trained on older data (Landslide4Sense, ...) expect their input::

    value = max(raw + offset, 0) * 10000 / QUANTIFICATION_VALUE     (raw 0 = nodata stays nodata)

so a baseline 04.00 pixel of raw 2000 becomes 1000, and a pre-04.00 product (no offset list,
quantification 10000) passes unchanged. Files without product metadata are taken as they are.

Level-2A has no B10 (cirrus): when a requested B10 is missing it is filled with the constant
``b10_fill`` (default 0.0) wherever the reference band is valid, and a message says so.

The output is one float32, tiled, deflate-compressed GeoTIFF on B02's 10 m grid (or on the chosen
CRS at 10 m, cropped to an area of interest), bands in the asked order, each described
(``sentinel2:B02``, ``slope_deg``, ``dem_m``) with its rule in the band metadata; nodata is
:data:`STACK_NODATA` (product nodata, DEM voids, outside an AOI polygon). 20 m and 60 m bands are
resampled bilinearly (reflectance is continuous; the warper leaves nodata out of the weights), the
DEM bilinearly, and slope is computed by Horn's method on the DEM's own grid, then warped. Work is
done block by block; the file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from .bands import band_keys, spec_keys
from .contract import BandSpec, ModelContract
from .errors import CancelledError, InputError, OutputError
from .raster import check_writable, remove_quietly, temporary_sibling
from .terrain import (
    DEM_BAND,
    SLOPE_BAND,
    TERRAIN_NODATA,
    check_overlap,
    compute_slope,
    spec_terrain_kind,
    terrain_kind,
)

#: Sentinel-2 MSI bands in product order (the ``band_id`` of the metadata is the index here).
S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11",
            "B12")
#: The Landslide4Sense order: B1..B12 without B8A, then slope and DEM.
L4S_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12",
             SLOPE_BAND, DEM_BAND)
STACK_NODATA = TERRAIN_NODATA
REFERENCE_BAND = "B02"
BLOCK = 512
PREFIX = "sentinel2:"

# Common names of the bands, so contracts naming "red" or "nir" are served.
_COMMON = {"coastal": "B01", "aerosol": "B01", "blue": "B02", "green": "B03", "red": "B04",
           "rededge1": "B05", "red_edge_1": "B05", "rededge2": "B06", "red_edge_2": "B06",
           "rededge3": "B07", "red_edge_3": "B07", "nir": "B08", "nir08": "B8A",
           "narrow_nir": "B8A", "nir09": "B09", "water_vapour": "B09", "watervapor": "B09",
           "cirrus": "B10", "swir1": "B11", "swir16": "B11", "swir2": "B12", "swir22": "B12"}
_FILE_BAND = re.compile(r"(?:^|[^a-z0-9])b(0?[1-9]|1[0-2]|8a)(?:_(\d+)m)?$", re.IGNORECASE)
_RASTER_SUFFIXES = (".jp2", ".tif", ".tiff")


@dataclass(frozen=True)
class BandSource:
    """Where one Sentinel-2 band comes from and how its raw values become the stack's."""

    name: str          # B01..B12, B8A
    path: str          # a file path or a GDAL /vsizip/ path
    index: int = 1     # band number in that file
    offset: float = 0.0
    quantification: float = 10000.0
    resolution: float = 0.0


@dataclass
class ProductInfo:
    """What was found in a source: bands, level, baseline, and notes."""

    source: str
    bands: dict[str, BandSource]
    level: str = ""
    baseline: str = ""
    terrain: dict[str, tuple[str, int]] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)


@dataclass
class PrepareResult:
    """The written stack: its path, band names in order, grid, and notes for the user."""

    path: Path
    bands: list[str]
    crs: str
    width: int
    height: int
    pixel_size: tuple[float, float]
    level: str
    baseline: str
    offsets: dict[str, float]
    messages: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Names


def canonical_band(text: str) -> str | None:
    """``B2``, ``b02``, ``sentinel2:B02``, ``blue`` -> ``B02``; ``8a`` -> ``B8A``; else None."""
    t = text.strip().lower()
    if ":" in t:
        t = t.rsplit(":", 1)[1].strip()
    if t in _COMMON:
        return _COMMON[t]
    m = re.fullmatch(r"b?(0?[1-9]|1[0-2]|8a)", t)
    if not m:
        return None
    n = m.group(1).upper()
    return "B8A" if n == "8A" else f"B{int(n):02d}"


def band_from_filename(name: str) -> tuple[str, int | None] | None:
    """(band, resolution in m or None) from a band file's name, e.g. ``T33_..._B8A_20m.jp2``."""
    stem = Path(name).name
    for suffix in _RASTER_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    else:
        return None
    if stem.upper().startswith("MSK_"):
        return None
    m = _FILE_BAND.search(stem)
    if not m:
        return None
    band = canonical_band(m.group(1))
    return (band, int(m.group(2)) if m.group(2) else None) if band else None


def requested_bands(bands) -> list[str]:
    """The output band names (``B02``..., ``slope_deg``, ``dem_m``) in order.

    ``bands``: None (every band found), a list of names, a :class:`ModelContract`, or a bundled
    model's name / an ``.onnx`` path (its contract's bands).
    """
    if bands is None:
        return []
    if isinstance(bands, (str, os.PathLike)):
        from .contract import read_contract
        from .models import resolve_model

        bands = read_contract(resolve_model(bands))
    specs = list(bands.bands) if isinstance(bands, ModelContract) else [
        b if isinstance(b, BandSpec) else BandSpec(name=str(b)) for b in bands]
    out: list[str] = []
    unknown: list[str] = []
    for spec in specs:
        kind = spec_terrain_kind(spec)
        name = kind or _spec_band(spec)
        if name is None:
            unknown.append(spec.name)
        else:
            out.append(name)
    if unknown:
        raise InputError(
            f"Bands: {', '.join(unknown)} are neither Sentinel-2 bands (B01..B12, B8A, or names "
            "such as red, nir) nor slope_deg / dem_m. Use a model made for Sentinel-2 (with "
            "optional slope and DEM bands), or list the bands yourself.")
    dupes = sorted({n for n in out if out.count(n) > 1})
    if dupes:
        raise InputError(f"Bands: {', '.join(dupes)} asked for more than once.")
    return out


def _spec_band(spec: BandSpec) -> str | None:
    for text in (spec.name, *spec.aliases):
        band = canonical_band(text)
        if band:
            return band
    keys = spec_keys(spec)
    for b in S2_BANDS:
        if keys & band_keys(PREFIX + b):
            return b
    return None


# ---------------------------------------------------------------------------------------------
# Reading sources


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_product_metadata(text: str | bytes, source: str) -> dict[str, Any]:
    """Level, processing baseline, quantification value and offsets per band from MTD_MSI*.xml.

    Returns ``{"level", "baseline", "quantification", "offsets": {band: offset}}``; offsets are
    empty for products before baseline 04.00.
    """
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise InputError(f"{source}: product metadata is not valid XML ({exc}).") from exc
    info: dict[str, Any] = {"level": "", "baseline": "", "quantification": 10000.0, "offsets": {}}
    ids: dict[str, str] = {}
    for el in root.iter():
        tag = _local(el.tag)
        text_ = (el.text or "").strip()
        if tag == "PROCESSING_LEVEL":
            info["level"] = text_
        elif tag == "PROCESSING_BASELINE":
            info["baseline"] = text_
        elif tag in ("QUANTIFICATION_VALUE", "BOA_QUANTIFICATION_VALUE") and text_:
            info["quantification"] = float(text_)
        elif tag == "Spectral_Information" and el.get("bandId") is not None:
            ids[el.get("bandId")] = el.get("physicalBand", "")
    for el in root.iter():
        if _local(el.tag) in ("RADIO_ADD_OFFSET", "BOA_ADD_OFFSET"):
            bid = el.get("band_id", "")
            name = ids.get(bid) or (S2_BANDS[int(bid)] if bid.isdigit() and int(bid) < 13
                                    else "")
            band = canonical_band(name)
            if band:
                info["offsets"][band] = float((el.text or "0").strip())
    if info["quantification"] <= 0:
        raise InputError(f"{source}: QUANTIFICATION_VALUE is {info['quantification']}; "
                         "expected a positive number.")
    return info


def _pick(found: dict[str, list[tuple[int | None, str]]], source: str) -> dict[str, str]:
    """The finest-resolution file of each band; two files of one band at one resolution: error."""
    chosen: dict[str, str] = {}
    for band, files in found.items():
        files = sorted(files, key=lambda f: (f[0] or 0))
        best = [f for f in files if (f[0] or 0) == (files[0][0] or 0)]
        if len(best) > 1:
            raise InputError(
                f"{source}: band {band} is in more than one file ({', '.join(p for _, p in best)})."
                " Keep one file per band (e.g. one date), or list the files to use.")
        chosen[band] = files[0][1]
    return chosen


def _sources(chosen: dict[str, str], meta: dict[str, Any] | None) -> dict[str, BandSource]:
    out = {}
    for band, path in chosen.items():
        offset = meta["offsets"].get(band, 0.0) if meta else 0.0
        q = meta["quantification"] if meta else 10000.0
        out[band] = BandSource(band, path, 1, offset, q)
    return out


def read_source(source) -> ProductInfo:
    """Find the bands (and metadata) of a product, folder, list of files or described raster."""
    if isinstance(source, (list, tuple)):
        files = [Path(p) for p in source]
        label = f"Band files {', '.join(str(p) for p in files)}"
        return _from_files(files, label, meta=None)
    path = Path(source)
    label = f"Sentinel-2 input {path}"
    if not path.exists():
        raise InputError(f"{label}: not found. Give a .SAFE folder, its .zip, a folder of band "
                         "files, or a multi-band raster with named bands.")
    if path.is_dir():
        mtd = sorted(path.glob("MTD_MSIL*.xml"))
        if mtd or list(path.glob("GRANULE")):
            return _from_safe_folder(path, label, mtd)
        files = sorted(p for p in path.iterdir() if p.is_file())
        meta_files = sorted(path.glob("MTD_MSI*.xml"))
        meta = parse_product_metadata(meta_files[0].read_bytes(), str(meta_files[0])) \
            if meta_files else None
        return _from_files(files, label, meta)
    if path.suffix.lower() == ".zip":
        return _from_zip(path, label)
    if re.fullmatch(r"MTD_MSIL(1C|2A)\.xml", path.name, re.IGNORECASE):
        return read_source(path.parent)  # the metadata file picked in a file dialog
    if band_from_filename(path.name) is not None:
        # one band file picked in a file dialog stands for its product or folder
        safe = next((p for p in path.parents if p.suffix.upper() == ".SAFE"), None)
        return read_source(safe or path.parent)
    return _from_raster(path, label)


def _product(label: str, chosen: dict[str, str], meta: dict[str, Any] | None) -> ProductInfo:
    info = ProductInfo(label, _sources(chosen, meta))
    if meta:
        info.level, info.baseline = meta["level"], meta["baseline"]
        offs = {b: s.offset for b, s in info.bands.items() if s.offset}
        if offs:
            info.messages.append(
                f"Processing baseline {meta['baseline'] or '?'}: radiometric offsets applied "
                f"({', '.join(f'{b} {o:+g}' for b, o in sorted(offs.items()))}), so values are "
                "on the pre-04.00 scale (value = max(raw + offset, 0)).")
        else:
            info.messages.append(f"Processing baseline {meta['baseline'] or '?'}: no radiometric "
                                 "offset in the metadata; values taken as they are.")
    else:
        info.messages.append(f"{label}: no product metadata (MTD_MSI*.xml) found; values taken "
                             "as they are, no radiometric offset applied.")
    return info


def _from_files(files: Sequence[Path], label: str, meta: dict[str, Any] | None) -> ProductInfo:
    found: dict[str, list[tuple[int | None, str]]] = {}
    for f in files:
        if not Path(f).exists():
            raise InputError(f"{label}: band file {f} not found.")
        parsed = band_from_filename(str(f))
        if parsed:
            found.setdefault(parsed[0], []).append((parsed[1], str(f)))
    if not found:
        raise InputError(
            f"{label}: no Sentinel-2 band file found (expected names such as T33UUP_..._B02.jp2, "
            "..._B02_10m.jp2 or B2.tif).")
    return _product(label, _pick(found, label), meta)


def _from_safe_folder(path: Path, label: str, mtd: list[Path]) -> ProductInfo:
    meta = parse_product_metadata(mtd[0].read_bytes(), str(mtd[0])) if mtd else None
    files = [p for p in path.glob("GRANULE/*/IMG_DATA/**/*") if p.is_file()]
    found: dict[str, list[tuple[int | None, str]]] = {}
    for f in files:
        parsed = band_from_filename(f.name)
        if parsed:
            found.setdefault(parsed[0], []).append((parsed[1], str(f)))
    if not found:
        raise InputError(f"{label}: no band files in GRANULE/*/IMG_DATA; expected a complete "
                         ".SAFE product (download it again, or unzip it fully).")
    if not mtd:
        raise InputError(f"{label}: MTD_MSIL1C.xml / MTD_MSIL2A.xml is missing; expected the "
                         "product metadata at the top of the .SAFE folder.")
    return _product(label, _pick(found, label), meta)


def _from_zip(path: Path, label: str) -> ProductInfo:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            mtd = [n for n in names if re.search(r"(^|/)MTD_MSIL(1C|2A)\.xml$", n)]
            meta = parse_product_metadata(z.read(mtd[0]), f"{path}!{mtd[0]}") if mtd else None
    except zipfile.BadZipFile as exc:
        raise InputError(f"{label}: not a readable zip file ({exc}); download it again.") from exc
    found: dict[str, list[tuple[int | None, str]]] = {}
    for n in names:
        if "/IMG_DATA/" not in f"/{n}":
            continue
        parsed = band_from_filename(n)
        if parsed:
            found.setdefault(parsed[0], []).append((parsed[1], f"/vsizip/{path.resolve()}/{n}"))
    if not found:
        raise InputError(f"{label}: the zip holds no Sentinel-2 band files under IMG_DATA; "
                         "expected a zipped .SAFE product.")
    if meta is None:
        raise InputError(f"{label}: the zip has no MTD_MSIL1C.xml / MTD_MSIL2A.xml; expected a "
                         "zipped .SAFE product.")
    return _product(label, _pick(found, label), meta)


def _from_raster(path: Path, label: str) -> ProductInfo:
    try:
        with rasterio.open(path) as ds:
            descriptions = list(ds.descriptions)
    except RasterioIOError as exc:
        raise InputError(f"{label}: not a raster GDAL can read ({exc}).") from exc
    bands: dict[str, BandSource] = {}
    terrain: dict[str, tuple[str, int]] = {}
    for i, d in enumerate(descriptions, start=1):
        if not d:
            continue
        kind = terrain_kind(d)
        band = canonical_band(d)
        if kind:
            terrain.setdefault(kind, (str(path), i))
        elif band:
            bands.setdefault(band, BandSource(band, str(path), i))
    if not bands:
        raise InputError(
            f"{label}: none of its {len(descriptions)} bands is described as a Sentinel-2 band "
            f"(found descriptions {descriptions}). Describe the bands (B02, sentinel2:B04, ...) or "
            "give the band files.")
    info = ProductInfo(label, bands, terrain=terrain)
    info.messages.append(f"{label}: bands taken by description; no radiometric offset applied.")
    return info


# ---------------------------------------------------------------------------------------------
# Output grid


@dataclass(frozen=True)
class Grid:
    crs: Any
    transform: Affine
    width: int
    height: int

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        t = self.transform
        return t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f

    def window_transform(self, win: Window) -> Affine:
        return rasterio.windows.transform(win, self.transform)


def _open_band(src: BandSource, label: str):
    try:
        ds = rasterio.open(src.path)
        if ds.count < src.index:
            raise InputError(f"{label}: {src.path} has {ds.count} bands, expected band "
                             f"{src.index} ({src.name}).")
        return ds
    except RasterioIOError as exc:
        raise InputError(
            f"{label}: band {src.name} file {src.path} cannot be read ({exc}). The file may be "
            "truncated or corrupt; download or extract the product again.") from exc


def _reference_grid(ref, label: str) -> Grid:
    if ref.crs is None:
        raise InputError(f"{label}: {ref.name} has no CRS; expected georeferenced band files.")
    return Grid(ref.crs, ref.transform, ref.width, ref.height)


def _target_grid(ref: Grid, crs, aoi, aoi_crs, label: str):
    """The output grid: the reference grid (or reprojected to ``crs``), cropped to the AOI."""
    from rasterio.crs import CRS
    from rasterio.warp import calculate_default_transform, transform_bounds, transform_geom

    grid = ref
    if crs is not None:
        dst = CRS.from_user_input(crs)
        if dst != ref.crs:
            res = None
            if not dst.is_geographic:
                unit = dst.linear_units_factor[1] or 1.0
                res = 10.0 / unit
            t, w, h = calculate_default_transform(ref.crs, dst, ref.width, ref.height,
                                                  *ref.bounds, resolution=res)
            grid = Grid(dst, t, w, h)
    geometry = None
    if aoi is not None:
        src_crs = CRS.from_user_input(aoi_crs) if aoi_crs is not None else grid.crs
        if isinstance(aoi, (str, os.PathLike)):
            geometry, src_crs = _read_aoi_file(Path(aoi), label)
        if isinstance(aoi, (tuple, list)) and len(aoi) == 4:
            bounds = transform_bounds(src_crs, grid.crs, *map(float, aoi), densify_pts=21)
        else:
            geom = geometry if geometry is not None else aoi
            from shapely.geometry import mapping, shape

            geometry = shape(transform_geom(src_crs, grid.crs, mapping(geom)))
            bounds = geometry.bounds
        # snapped outwards to whole pixels of the grid, clipped to it
        t = grid.transform
        eps = 1e-6
        c0 = max(0, math.floor((bounds[0] - t.c) / t.a + eps))
        c1 = min(grid.width, math.ceil((bounds[2] - t.c) / t.a - eps))
        r0 = max(0, math.floor((bounds[3] - t.f) / t.e + eps))
        r1 = min(grid.height, math.ceil((bounds[1] - t.f) / t.e - eps))
        if c1 - c0 < 1 or r1 - r0 < 1:
            raise InputError(
                f"Area of interest {tuple(round(b, 6) for b in bounds)} (in {grid.crs}) does not "
                f"overlap {label} (extent {tuple(round(b, 6) for b in grid.bounds)}). Choose an "
                "area inside the scene.")
        win = Window(c0, r0, c1 - c0, r1 - r0)
        grid = Grid(grid.crs, grid.window_transform(win), win.width, win.height)
    return grid, geometry


def _read_aoi_file(path: Path, label: str):
    import fiona
    from rasterio.crs import CRS
    from shapely.geometry import shape
    from shapely.ops import unary_union

    try:
        with fiona.open(path) as src:
            geoms = [shape(f["geometry"]) for f in src if f["geometry"] is not None]
            crs = CRS.from_wkt(src.crs_wkt) if src.crs_wkt else None
    except Exception as exc:
        raise InputError(f"Area of interest {path}: cannot be read as a vector file ({exc}).") \
            from exc
    polys = [g for g in geoms if g.geom_type in ("Polygon", "MultiPolygon")]
    if not polys or crs is None:
        raise InputError(f"Area of interest {path}: expected polygons with a CRS, found "
                         f"{len(polys)} polygons{'' if crs else ' and no CRS'}.")
    return unary_union(polys), crs


# ---------------------------------------------------------------------------------------------
# The stack


def prepare_sentinel2_stack(
    source,
    output_path,
    *,
    bands=None,
    dem_path=None,
    slope_path=None,
    aoi=None,
    crs=None,
    b10_fill: float = 0.0,
    aoi_crs=None,
    progress: Callable[[float], None] | None = None,
    is_canceled: Callable[[], bool] | None = None,
) -> PrepareResult:
    """Write a model-ready stack of ``source`` (see the module docstring) to ``output_path``.

    ``bands``: None (every Sentinel-2 band found, B10 filled when absent, then slope and DEM when
    a DEM is given), a list of names (``B02``, ``sentinel2:B8A``, ``red``, ``slope_deg``,
    ``dem_m``), a :class:`ModelContract`, or a model (bundled name or ``.onnx`` path).
    ``aoi``: ``(xmin, ymin, xmax, ymax)``, a shapely polygon, or a polygon vector file; in
    ``aoi_crs`` (default: the output CRS). ``crs``: output CRS (default: B02's).
    """
    out = Path(output_path)
    check_writable(out, "Output stack")
    if not (isinstance(b10_fill, (int, float)) and math.isfinite(b10_fill)):
        raise InputError(f"B10 fill: expected a finite number, found {b10_fill!r}.")
    names = requested_bands(bands)
    info = read_source(source)
    messages = list(info.messages)
    if not names:
        names = [b for b in S2_BANDS if b in info.bands or b == "B10"]
        if dem_path is not None or slope_path is not None or SLOPE_BAND in info.terrain:
            names.append(SLOPE_BAND)
        if dem_path is not None or DEM_BAND in info.terrain:
            names.append(DEM_BAND)
    s2_names = [n for n in names if n not in (SLOPE_BAND, DEM_BAND)]
    missing = [n for n in s2_names if n not in info.bands and n != "B10"]
    if missing:
        found = ", ".join(b for b in S2_BANDS if b in info.bands) or "none"
        raise InputError(
            f"{info.source}: bands {', '.join(missing)} are missing (found {found}). Give a "
            "complete product, or a model/band list that needs only the bands present.")
    for kind in (SLOPE_BAND, DEM_BAND):
        if kind in names and kind not in info.terrain and dem_path is None and not (
                kind == SLOPE_BAND and slope_path is not None):
            raise InputError(
                f"{info.source}: {kind} is asked for but no DEM was given. Give a DEM "
                "(any CRS and resolution; it is warped onto the stack's grid).")
    label = info.source
    ref_name = REFERENCE_BAND if REFERENCE_BAND in info.bands else sorted(
        info.bands.values(), key=lambda s: s.name)[0].name
    with ExitStack() as stack:
        stack.enter_context(rasterio.Env(GDAL_CACHEMAX=64 * 2**20))
        opened = {}
        for n in s2_names:
            if n in info.bands:
                opened[n] = stack.enter_context(_open_band(info.bands[n], label))
        ref_ds = opened.get(ref_name) or stack.enter_context(
            _open_band(info.bands[ref_name], label))
        ref = _reference_grid(ref_ds, label)
        grid, polygon = _target_grid(ref, crs, aoi, aoi_crs, label)
        for n, ds in opened.items():
            if ds.crs is None:
                raise InputError(f"{label}: band {n} file {info.bands[n].path} has no CRS; "
                                 "expected georeferenced band files.")
            check_overlap(grid.crs, grid.bounds, ds, label, f"Band {n} file {info.bands[n].path}")
            if ds.crs != ref.crs:
                messages.append(f"Band {n} is in {ds.crs}, not {ref.crs}: reprojected onto the "
                                "output grid.")
        if "B10" in s2_names and "B10" not in info.bands:
            messages.append(
                f"B10 (cirrus) is not in {label} (Level-2A products have none): filled with the "
                f"constant {b10_fill:g} wherever {ref_name} is valid.")
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(
            prefix=".terrain-", dir=str(out.parent) or ".")))
        terrain = _terrain_sources(names, info, dem_path, slope_path, grid, workdir, label,
                                   messages, is_canceled)
        tmp = temporary_sibling(out)
        try:
            _write_stack(tmp, grid, names, info, opened, ref_name, ref_ds, terrain, polygon,
                         b10_fill, stack, progress, is_canceled)
            os.replace(tmp, out)
        finally:
            remove_quietly(tmp)
    px = (abs(grid.transform.a), abs(grid.transform.e))
    messages.append(f"Stack written: {len(names)} bands ({', '.join(names)}), {grid.width} x "
                    f"{grid.height} px at {px[0]:g} x {px[1]:g} in {grid.crs}.")
    return PrepareResult(out, [_describe(n) for n in names], str(grid.crs), grid.width,
                         grid.height, px, info.level, info.baseline,
                         {n: info.bands[n].offset for n in s2_names if n in info.bands},
                         messages)


def _describe(name: str) -> str:
    return name if name in (SLOPE_BAND, DEM_BAND) else PREFIX + name


def _terrain_sources(names, info: ProductInfo, dem_path, slope_path, grid: Grid, workdir: Path,
                     label: str, messages: list[str], is_canceled) -> dict[str, tuple[str, int]]:
    """Paths (and band) of the slope and DEM rasters to warp onto the grid."""
    out: dict[str, tuple[str, int]] = {}
    for kind in (SLOPE_BAND, DEM_BAND):
        if kind not in names:
            continue
        if kind == SLOPE_BAND and slope_path is not None:
            out[kind] = (str(slope_path), 1)
        elif dem_path is not None:
            if kind == DEM_BAND:
                out[kind] = (str(dem_path), 1)
            else:
                out[kind] = (None, 1)  # computed below, once the DEM is checked
        else:
            out[kind] = info.terrain[kind]
            messages.append(f"{kind} taken from band {out[kind][1]} of {out[kind][0]}.")
    for kind, (path, _) in out.items():
        if path is None:
            continue
        what = "Slope raster" if kind == SLOPE_BAND else "DEM"
        _check_terrain(path, what, grid, label)
    if out.get(SLOPE_BAND, (1,))[0] is None:
        _check_terrain(dem_path, "DEM", grid, label)
        slope = compute_slope(dem_path, workdir / "slope.tif", is_canceled=is_canceled)
        out[SLOPE_BAND] = (str(slope), 1)
        messages.append(f"Slope computed from DEM {dem_path} (Horn's method, degrees) on the "
                        "DEM's grid, then warped bilinearly onto the stack's grid.")
    if DEM_BAND in out and dem_path is not None:
        messages.append(f"DEM {dem_path} warped bilinearly onto the stack's grid (metres).")
    return out


def _check_terrain(path, what: str, grid: Grid, label: str) -> None:
    from .raster import open_input

    try:
        ds = open_input(path)
    except InputError as exc:
        raise InputError(str(exc).replace("Input raster", what, 1)) from exc
    with ds:
        if ds.crs is None:
            raise InputError(f"{what} {path}: has no coordinate reference system (CRS); assign "
                             "it (Assign projection in QGIS, or gdal_edit.py -a_srs) and retry.")
        check_overlap(grid.crs, grid.bounds, ds, label, f"{what} {path}")


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


def _write_stack(tmp: Path, grid: Grid, names, info: ProductInfo, opened, ref_name, ref_ds,
                 terrain, polygon, b10_fill: float, stack: ExitStack, progress, is_canceled):
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
        raise OutputError(f"Output stack {tmp}: cannot be created ({exc}).") from exc
    dst.update_tags(product=info.source, processing_level=info.level,
                    processing_baseline=info.baseline,
                    offset_rule="value = max(raw + offset, 0) * 10000 / QUANTIFICATION_VALUE; "
                                "raw 0 = nodata")
    for k, n in enumerate(names, start=1):
        dst.set_band_description(k, _describe(n))
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
            if n in info.bands:
                s = info.bands[n]
                raw = readers[n].read(s.index, window=win, masked=True)
                valid = ~np.ma.getmaskarray(raw) & (raw.data != 0)
                value = np.maximum(raw.data.astype(np.float64) + s.offset, 0.0)
                value *= 10000.0 / s.quantification
            elif n == "B10":
                if ref_valid is None:
                    r = ref_reader.read(info.bands[ref_name].index, window=win, masked=True)
                    ref_valid = ~np.ma.getmaskarray(r) & (r.data != 0)
                valid = ref_valid
                value = np.full((h, w), b10_fill, np.float64)
            else:
                reader, index = readers[n]
                m = reader.read(index, window=win, masked=True)
                valid = ~np.ma.getmaskarray(m) & np.isfinite(m.data)
                value = m.data.astype(np.float64)
            if inside is not None:
                valid = valid & inside
            dst.write(np.where(valid, value, STACK_NODATA).astype(np.float32), i, window=win)
        if progress is not None:
            progress((k + 1) / len(blocks))


__all__ = ["prepare_sentinel2_stack", "PrepareResult", "read_source", "parse_product_metadata",
           "band_from_filename", "canonical_band", "requested_bands", "S2_BANDS", "L4S_BANDS",
           "STACK_NODATA"]
