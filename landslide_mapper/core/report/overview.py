"""A small true-colour picture of the scene, read in bounded memory.

The raster is read once, decimated by GDAL to at most :data:`OVERVIEW_SIZE` pixels along its long
side (``out_shape`` with average resampling: GDAL reads it chunk by chunk and uses the file's
overviews when it has them; its block cache is held to the engine's), so memory depends on the
picture's size, never the raster's. Each
band is stretched between its 2nd and 98th percentile of valid pixels; nodata (the raster's
nodata value or mask, NaN, or, when it declares none, pixels that are 0 in every band, as the
engine treats them) is transparent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

#: The overview's long side, in pixels.
OVERVIEW_SIZE = 1400
#: Percentiles of each band's valid values mapped to black and white.
STRETCH = (2.0, 98.0)


@dataclass(frozen=True)
class Overview:
    """An RGBA picture (rows, cols, 4; uint8) and its extent in the raster's CRS."""

    rgba: np.ndarray
    bounds: tuple[float, float, float, float]  # left, bottom, right, top
    bands: tuple[int, ...]
    valid_fraction: float


def rgb_band_indexes(band_names: Sequence[Sequence[str]] | None,
                     band_indexes: Sequence[int] | None, count: int) -> list[int]:
    """Raster bands (1-based) to show as red, green, blue: the model's bands named so (their names
    and aliases, e.g. ``red``, ``sentinel2:B04``), else the raster's first three, else band 1.

    ``band_names``: per model band, its name and aliases; ``band_indexes``: the raster band that
    feeds each model band."""
    wanted = ({"red", "r", "b04", "b4"}, {"green", "g", "b03", "b3"}, {"blue", "b", "b02", "b2"})
    if band_names and band_indexes and len(band_names) == len(band_indexes):
        picked = []
        for colour in wanted:
            for names, index in zip(band_names, band_indexes):
                if any(n.split(":")[-1].strip().lower() in colour for n in names):
                    picked.append(int(index))
                    break
        if len(picked) == 3:
            return picked
    return [1, 2, 3] if count >= 3 else [1]


def read_overview(path: Any, bands: Sequence[int], size: int = OVERVIEW_SIZE) -> Overview:
    """The decimated, stretched picture of ``bands`` of raster ``path`` (one band: grey)."""
    import rasterio
    from rasterio.enums import MaskFlags, Resampling

    from ..raster.io import gdal_env

    with gdal_env(), rasterio.open(path) as ds:
        scale = max(1.0, max(ds.width, ds.height) / size)
        shape = (len(bands), max(1, round(ds.height / scale)), max(1, round(ds.width / scale)))
        data = ds.read(list(bands), out_shape=shape, resampling=Resampling.average, masked=True)
        declared = any(MaskFlags.all_valid not in ds.mask_flag_enums[b - 1] for b in bands)
        bounds = (ds.bounds.left, ds.bounds.bottom, ds.bounds.right, ds.bounds.top)
    values = np.ma.filled(data.astype(np.float64), np.nan)
    valid = np.isfinite(values).all(axis=0)
    if not declared:
        valid &= (np.nan_to_num(values) != 0).any(axis=0)
    rgba = np.zeros(values.shape[1:] + (4,), np.uint8)
    for k in range(3):
        band = values[min(k, len(bands) - 1)]
        rgba[..., k] = _stretch(band, valid)
    rgba[..., 3] = np.where(valid, 255, 0)
    return Overview(rgba, bounds, tuple(int(b) for b in bands), float(valid.mean()))


def _stretch(band: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``band`` between its :data:`STRETCH` percentiles of valid pixels, as 0..255."""
    if not valid.any():
        return np.zeros(band.shape, np.uint8)
    lo, hi = np.percentile(band[valid], STRETCH)
    if hi <= lo:
        hi = lo + 1.0
    scaled = np.clip((np.nan_to_num(band, nan=lo) - lo) / (hi - lo), 0.0, 1.0)
    return np.rint(scaled * 255).astype(np.uint8)
