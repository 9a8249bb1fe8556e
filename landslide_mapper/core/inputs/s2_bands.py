"""Sentinel-2 band names: the MSI bands, their common names, band file names, asked-for lists.

* :data:`S2_BANDS` is the product order (the ``band_id`` of the metadata indexes it),
  :data:`L4S_BANDS` the Landslide4Sense order (B1..B12 without B8A, then slope and DEM);
* :func:`canonical_band` reads ``B2``, ``b02``, ``sentinel2:B02`` or a common name (``blue``,
  ``nir``, ``swir16``...) as ``B02``-style names;
* :func:`band_from_filename` reads the band (and resolution) from a band file's name
  (``..._B02.jp2``, ``..._B02_10m.jp2``, ``B2.tif``, ``scene.B8A.tif``; ``MSK_*`` masks are not
  bands);
* :func:`requested_bands` turns a band list, a :class:`ModelContract` or a model into the stack's
  band names (``B02``..., ``slope_deg``, ``dem_m``), and :func:`describe_band` gives the
  description each of them carries in the stack (``sentinel2:B02``, ``slope_deg``, ``dem_m``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..contract import BandSpec, ModelContract
from ..errors import InputError
from ..raster.bands import band_keys, spec_keys
from .terrain import DEM_BAND, SLOPE_BAND, spec_terrain_kind

#: Sentinel-2 MSI bands in product order (the ``band_id`` of the metadata is the index here).
S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11",
            "B12")
#: The Landslide4Sense order: B1..B12 without B8A, then slope and DEM.
L4S_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12",
             SLOPE_BAND, DEM_BAND)
PREFIX = "sentinel2:"

# Common names of the bands, so contracts naming "red" or "nir" are served.
_COMMON = {"coastal": "B01", "aerosol": "B01", "blue": "B02", "green": "B03", "red": "B04",
           "rededge1": "B05", "red_edge_1": "B05", "rededge2": "B06", "red_edge_2": "B06",
           "rededge3": "B07", "red_edge_3": "B07", "nir": "B08", "nir08": "B8A",
           "narrow_nir": "B8A", "nir09": "B09", "water_vapour": "B09", "watervapor": "B09",
           "cirrus": "B10", "swir1": "B11", "swir16": "B11", "swir2": "B12", "swir22": "B12"}
_FILE_BAND = re.compile(r"(?:^|[^a-z0-9])b(0?[1-9]|1[0-2]|8a)(?:_(\d+)m)?$", re.IGNORECASE)
_RASTER_SUFFIXES = (".jp2", ".tif", ".tiff")


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
        from ..contract import read_contract
        from ..models.registry import resolve_model

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


def describe_band(name: str) -> str:
    """The description of a stack band: ``B02`` -> ``sentinel2:B02``; slope and DEM as they are."""
    return name if name in (SLOPE_BAND, DEM_BAND) else PREFIX + name
