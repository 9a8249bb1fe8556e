"""Reading Sentinel-2 sources: which file holds each band, and how its raw values are scaled.

Sources read:

* a Level-1C or Level-2A product: its ``.SAFE`` folder or the ``.zip`` holding it (read in place
  through GDAL's ``/vsizip/``, nothing extracted; members whose names lead outside the product,
  ``/x``, ``C:``, ``..``, or links, are ignored with a note); band files are taken from
  ``GRANULE/*/IMG_DATA`` (the finest resolution of each band for Level-2A, e.g.
  ``R10m/..._B02_10m.jp2``), the metadata from ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``;
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
The values are scaled as the stack is written (:mod:`.stack_writer`).

:func:`read_source` returns a :class:`ProductInfo` (a :class:`BandSource` per band, with its file,
band number, offset and quantification value; terrain bands of a described raster; notes for the
user); :func:`open_band` opens one band's file.
"""

from __future__ import annotations

import re
import stat
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any, Sequence

import rasterio
from rasterio.errors import RasterioIOError

from ..errors import InputError
from .s2_bands import S2_BANDS, band_from_filename, canonical_band
from .terrain import terrain_kind


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
    """A zipped product, read in place: the metadata into memory, the bands through /vsizip/
    (nothing is extracted). Members whose names lead outside the archive are ignored, noted."""
    try:
        with zipfile.ZipFile(path) as z:
            names, ignored = _safe_members(z.infolist())
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
    info = _product(label, _pick(found, label), meta)
    if ignored:
        shown = ", ".join(repr(n) for n in ignored[:5]) + (" ..." if len(ignored) > 5 else "")
        info.messages.insert(0, (
            f"{label}: {len(ignored)} zip member(s) ignored, as their names lead outside the "
            f"product (absolute, with a drive, '..' or a link): {shown}; only members inside "
            "the product are read."))
    return info


def _safe_members(members: Sequence[zipfile.ZipInfo]) -> tuple[list[str], list[str]]:
    """Member names to read, and those ignored: an absolute name (``/x``, ``\\x``), a drive
    (``C:``), a ``..`` part (``/`` or ``\\`` separating), or a symbolic link."""
    kept, ignored = [], []
    for m in members:
        win = PureWindowsPath(m.filename)
        link = stat.S_ISLNK(m.external_attr >> 16)
        if m.filename.startswith(("/", "\\")) or win.drive or ".." in win.parts or link:
            ignored.append(m.filename)
        else:
            kept.append(m.filename)
    return kept, ignored


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


def open_band(src: BandSource, label: str):
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
