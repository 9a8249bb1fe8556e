"""Sentinel-2 products (and DEMs) -> one model-ready GeoTIFF stack: :func:`prepare_sentinel2_stack`.

A Level-1C or Level-2A product (``.SAFE`` folder or its ``.zip``), a folder or list of band files,
or one raster with described bands is read (:mod:`.s2_product`, band names in :mod:`.s2_bands`);
the bands a model (or a band list) asks for are warped onto one grid (:mod:`.stack_grid`) and
written (:mod:`.stack_writer`), with slope and DEM bands from a DEM (:mod:`.terrain`).

Level-2A has no B10 (cirrus): when a requested B10 is missing it is filled with the constant
``b10_fill`` (default 0.0) wherever the reference band is valid, and a message says so.

The output is one float32, tiled, deflate-compressed GeoTIFF on B02's 10 m grid (or on the chosen
CRS at 10 m, cropped to an area of interest), bands in the asked order, each described
(``sentinel2:B02``, ``slope_deg``, ``dem_m``) with its rule in the band metadata; nodata is
:data:`STACK_NODATA` (product nodata, DEM voids, outside an AOI polygon). 20 m and 60 m bands are
resampled bilinearly (reflectance is continuous; the warper leaves nodata out of the weights), the
DEM bilinearly, and slope is computed by Horn's method on the DEM's own grid, then warped. Work is
done block by block; the file is written under a temporary name and renamed when complete.

The names used elsewhere (band lists, metadata and file-name parsing, :data:`STACK_NODATA`) are
importable from here as well.
"""

from __future__ import annotations

import math
import shutil
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import rasterio

from ..errors import InputError
from ..georeferencing import check_georeferenced
from ..paths import check_distinct
from ..raster.io import check_writable, publish_raster, remove_quietly, temporary_sibling
from .s2_bands import (
    L4S_BANDS,
    S2_BANDS,
    band_from_filename,
    canonical_band,
    describe_band,
    requested_bands,
)
from .s2_product import ProductInfo, open_band, parse_product_metadata, read_source
from .stack_grid import Grid, reference_grid, target_grid
from .stack_writer import STACK_NODATA, write_stack
from .terrain import DEM_BAND, SLOPE_BAND, check_overlap, compute_slope

REFERENCE_BAND = "B02"


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
    sources = source if isinstance(source, (list, tuple)) else [source]
    check_distinct([*(("Sentinel-2 input", s) for s in sources),
                    *((f"Band {n} file", b.path) for n, b in info.bands.items()),
                    *((f"{kind} band file", p) for kind, (p, _) in info.terrain.items()),
                    ("DEM", dem_path), ("Slope raster", slope_path),
                    ("AOI", aoi if isinstance(aoi, (str, Path)) else None)],
                   [("Output stack", out)])
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
                opened[n] = stack.enter_context(open_band(info.bands[n], label))
        ref_ds = opened.get(ref_name) or stack.enter_context(
            open_band(info.bands[ref_name], label))
        ref = reference_grid(ref_ds, label)
        grid, polygon = target_grid(ref, crs, aoi, aoi_crs, label)
        for n, ds in opened.items():
            check_georeferenced(ds, f"{label}: band {n} file {info.bands[n].path}", "band file")
            check_overlap(grid.crs, grid.bounds, ds, label, f"Band {n} file {info.bands[n].path}")
            if ds.crs != ref.crs:
                messages.append(f"Band {n} is in {ds.crs}, not {ref.crs}: reprojected onto the "
                                "output grid.")
        if "B10" in s2_names and "B10" not in info.bands:
            messages.append(
                f"B10 (cirrus) is not in {label} (Level-2A products have none): filled with the "
                f"constant {b10_fill:g} wherever {ref_name} is valid.")
        workdir = temporary_sibling(out.with_suffix(""), "parts")  # swept if the run is killed
        workdir.mkdir()
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        terrain = _terrain_sources(names, info, dem_path, slope_path, grid, workdir, label,
                                   messages, is_canceled)
        tmp = temporary_sibling(out)
        try:
            with ExitStack() as writing:  # the stack is closed before it is checked and renamed
                write_stack(tmp, grid, names, info, opened, ref_name, ref_ds, terrain, polygon,
                            b10_fill, writing, progress, is_canceled)
            publish_raster(tmp, out, "Output stack")
        finally:
            remove_quietly(tmp)
    px = (abs(grid.transform.a), abs(grid.transform.e))
    messages.append(f"Stack written: {len(names)} bands ({', '.join(names)}), {grid.width} x "
                    f"{grid.height} px at {px[0]:g} x {px[1]:g} in {grid.crs}.")
    return PrepareResult(out, [describe_band(n) for n in names], str(grid.crs), grid.width,
                         grid.height, px, info.level, info.baseline,
                         {n: info.bands[n].offset for n in s2_names if n in info.bands},
                         messages)


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
    from ..raster.io import open_input

    try:
        ds = open_input(path)
    except InputError as exc:
        raise InputError(str(exc).replace("Input raster", what, 1)) from exc
    with ds:
        check_georeferenced(ds, f"{what} {path}", "DEM" if what == "DEM" else "raster")
        check_overlap(grid.crs, grid.bounds, ds, label, f"{what} {path}")


__all__ = ["prepare_sentinel2_stack", "PrepareResult", "read_source", "parse_product_metadata",
           "band_from_filename", "canonical_band", "requested_bands", "S2_BANDS", "L4S_BANDS",
           "STACK_NODATA"]
