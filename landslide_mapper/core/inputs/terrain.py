"""Terrain bands from a DEM: slope by Horn's method, and DEM/slope bands aligned to a raster.

Slope (degrees) uses Horn's (1981) 3x3 finite differences, the method of ``gdaldem slope``::

    dz/dx = ((c + 2f + i) - (a + 2d + g)) / (8 dx)      a b c
    dz/dy = ((g + 2h + i) - (a + 2b + c)) / (8 dy)      d e f
    slope = atan(sqrt(dz/dx^2 + dz/dy^2)) * 180 / pi   g h i

``dx`` and ``dy`` are the pixel sizes in metres: in a projected CRS the pixel size times the CRS's
linear unit (feet, ...); in a geographic CRS the length of one degree of longitude and of latitude
on the CRS's ellipsoid at each row's latitude, times the pixel size in degrees. Elevations are
taken as metres (``z_factor`` converts others, e.g. 0.3048 for feet).

Voids: a pixel whose 3x3 neighbourhood holds a nodata (or NaN) elevation gets slope nodata; no
slope is invented next to a void. Raster edges: with ``edges="extrapolate"`` (default) the missing
row/column beyond the DEM's edge is extrapolated linearly from the two nearest ones (exact on a
plane, so edge pixels keep a slope); with ``edges="nodata"`` edge pixels are nodata, as with
``gdaldem`` without ``-compute_edges``.

The DEM is read in blocks with a one-pixel halo and the slope written block by block, so memory
stays bounded whatever the DEM's size. Outputs are float32 GeoTIFFs with nodata
:data:`TERRAIN_NODATA`, written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import math
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.windows import Window

from ..contract import BandSpec, ModelContract
from ..errors import CancelledError, InputError, OutputError
from ..georeferencing import check_georeferenced
from ..paths import check_distinct
from ..raster.bands import band_keys, spec_keys
from ..raster.io import (
    check_written,
    gdal_env,
    open_input,
    publish_raster,
    reading,
    remove_quietly,
    temporary_sibling,
)
from ..staging import write_failure, writing

#: Nodata of the slope and warped DEM rasters written here.
TERRAIN_NODATA = -9999.0
SLOPE_BAND = "slope_deg"
DEM_BAND = "dem_m"
#: Block size (pixels a side) of the windowed slope computation and of the warps.
TERRAIN_BLOCK = 512
EDGE_MODES = ("extrapolate", "nodata")

_SLOPE_KEYS = {"slope_deg", "slope", "slope_degrees"}
_DEM_KEYS = {"dem_m", "dem", "elevation", "elevation_m", "dsm", "dtm", "height"}


# ---------------------------------------------------------------------------------------------
# Horn's slope


def horn_slope(padded: np.ndarray, dx: float | np.ndarray, dy: float | np.ndarray) -> np.ndarray:
    """Slope in degrees of the inner ``(h, w)`` pixels of a ``(h + 2, w + 2)`` elevation block.

    ``padded`` holds elevations in metres with NaN for voids (a NaN anywhere in a pixel's 3x3
    neighbourhood gives NaN). ``dx``/``dy`` are pixel sizes in metres: scalars, or one value per
    inner row (shape ``(h,)``) for a geographic DEM.
    """
    z = np.asarray(padded, np.float64)
    a, b, c = z[:-2, :-2], z[:-2, 1:-1], z[:-2, 2:]
    d, f = z[1:-1, :-2], z[1:-1, 2:]
    g, h, i = z[2:, :-2], z[2:, 1:-1], z[2:, 2:]
    dx = np.asarray(dx, np.float64)
    dy = np.asarray(dy, np.float64)
    if dx.ndim == 1:
        dx = dx[:, None]
    if dy.ndim == 1:
        dy = dy[:, None]
    dzdx = ((c + 2 * f + i) - (a + 2 * d + g)) / (8.0 * dx)
    dzdy = ((g + 2 * h + i) - (a + 2 * b + c)) / (8.0 * dy)
    with np.errstate(invalid="ignore"):
        slope = np.degrees(np.arctan(np.hypot(dzdx, dzdy)))
    # a void in a neighbour that carries weight 0 (the centre) must still void the pixel
    slope[np.isnan(z[1:-1, 1:-1])] = np.nan
    return slope


def metres_per_degree(lat_deg: np.ndarray, a: float, f: float) -> tuple[np.ndarray, np.ndarray]:
    """(metres per degree of longitude, of latitude) at ``lat_deg`` on an ellipsoid (a, 1/f).

    Longitude: ``pi/180 * N cos(lat)``, latitude: ``pi/180 * M``, with the prime-vertical radius
    ``N = a / sqrt(1 - e2 sin^2 lat)`` and the meridian radius ``M = a (1 - e2) / (1 - e2
    sin^2 lat)^1.5``, ``e2 = f (2 - f)``.
    """
    phi = np.radians(np.asarray(lat_deg, np.float64))
    e2 = f * (2.0 - f)
    w = 1.0 - e2 * np.sin(phi) ** 2
    n = a / np.sqrt(w)
    m = a * (1.0 - e2) / w ** 1.5
    k = math.pi / 180.0
    return k * n * np.cos(phi), k * m


def _pixel_metres(ds, source: str, z_factor: float):
    """A function row0, nrows -> (dx, dy) in metres (per row for geographic DEMs)."""
    t: Affine = ds.transform
    if t.b != 0 or t.d != 0:
        raise InputError(
            f"{source}: the DEM is rotated or sheared (geotransform {tuple(t)[:6]}); expected a "
            "north-up grid. Warp it first (gdalwarp, or Warp (reproject) in QGIS).")
    rx, ry = abs(t.a), abs(t.e)
    if ds.crs.is_geographic:
        from pyproj import CRS

        ell = CRS.from_wkt(ds.crs.to_wkt()).ellipsoid
        a, inv_f = ell.semi_major_metre, ell.inverse_flattening
        flat = 0.0 if not inv_f else 1.0 / inv_f

        def geographic(row0: int, nrows: int):
            lat = t.f + t.e * (np.arange(row0, row0 + nrows) + 0.5)
            mx, my = metres_per_degree(np.clip(lat, -89.9, 89.9), a, flat)
            return rx * mx / z_factor, ry * my / z_factor
        return geographic
    try:
        _, unit = ds.crs.linear_units_factor
    except Exception:  # a CRS without a usable linear unit: assume metres
        unit = 1.0
    dx, dy = rx * unit / z_factor, ry * unit / z_factor
    return lambda row0, nrows: (dx, dy)


def _read_elevations(ds, window: Window) -> np.ndarray:
    """Elevations of a window (inside the raster) as float64, voids (nodata, mask, NaN) as NaN."""
    m = ds.read(1, window=window, masked=True)
    z = np.ma.filled(m.astype(np.float64), np.nan)
    return z


def _pad_block(ds, r0: int, c0: int, h: int, w: int, edges: str) -> np.ndarray:
    """Elevations of rows r0-1..r0+h, cols c0-1..c0+w; cells past the DEM's edge per ``edges``."""
    R0, C0 = max(r0 - 1, 0), max(c0 - 1, 0)
    R1, C1 = min(r0 + h + 1, ds.height), min(c0 + w + 1, ds.width)
    z = _read_elevations(ds, Window(C0, R0, C1 - C0, R1 - R0))
    top, left = R0 - (r0 - 1), C0 - (c0 - 1)
    bottom, right = (r0 + h + 1) - R1, (c0 + w + 1) - C1
    if top or left or bottom or right:
        z = np.pad(z, ((top, bottom), (left, right)), constant_values=np.nan)
        if edges == "extrapolate":
            # linear extrapolation 2*z1 - z2 (exact on a plane); a 1-pixel DEM axis stays flat
            if top:
                z[0] = 2 * z[1] - z[2] if z.shape[0] > 3 else z[1]
            if bottom:
                z[-1] = 2 * z[-2] - z[-3] if z.shape[0] > 3 else z[-2]
            if left:
                z[:, 0] = 2 * z[:, 1] - z[:, 2] if z.shape[1] > 3 else z[:, 1]
            if right:
                z[:, -1] = 2 * z[:, -2] - z[:, -3] if z.shape[1] > 3 else z[:, -2]
    return z


def _float_output(path: Path, ref, description: str, *, crs=None, transform=None,
                  width=None, height=None):
    profile = dict(driver="GTiff", width=width or ref.width, height=height or ref.height, count=1,
                   dtype="float32", crs=crs if crs is not None else ref.crs,
                   transform=transform if transform is not None else ref.transform,
                   nodata=TERRAIN_NODATA, tiled=True, blockxsize=256, blockysize=256,
                   compress="deflate", predictor=3, bigtiff="IF_SAFER")
    try:
        dst = rasterio.open(path, "w", **profile)
    except rasterio.errors.RasterioIOError as exc:
        raise write_failure("Output raster", path, f"a file that cannot be created ({exc})") \
            from None
    dst.set_band_description(1, description)
    return dst


def _blocks(height: int, width: int, size: int):
    for r0 in range(0, height, size):
        for c0 in range(0, width, size):
            yield r0, c0, min(size, height - r0), min(size, width - c0)


def compute_slope(
    dem_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    z_factor: float = 1.0,
    edges: str = "extrapolate",
    block_size: int = TERRAIN_BLOCK,
    progress: Callable[[float], None] | None = None,
    is_canceled: Callable[[], bool] | None = None,
) -> Path:
    """Slope in degrees (Horn) of ``dem_path`` on the DEM's own grid, written to ``output_path``.

    See the module docstring for units, voids and edges. Returns ``output_path``.
    """
    if edges not in EDGE_MODES:
        raise InputError(f"Slope edges: expected one of {', '.join(EDGE_MODES)}, found {edges!r}.")
    if not (isinstance(z_factor, (int, float)) and z_factor > 0):
        raise InputError(f"Slope z factor: expected a number > 0, found {z_factor!r}.")
    out = Path(output_path)
    check_distinct([("DEM", dem_path)], [("Slope raster", out)])
    source = f"DEM {dem_path}"
    tmp = temporary_sibling(out)
    try:
        with ExitStack() as stack:
            stack.enter_context(gdal_env())  # a fixed block cache: memory flat for any DEM
            ds = stack.enter_context(open_input(dem_path))
            _check_dem(ds, source)
            metres = _pixel_metres(ds, source, z_factor)
            dst = stack.enter_context(_float_output(tmp, ds, SLOPE_BAND))
            dst.update_tags(1, units="degrees", method="Horn (1981) 3x3", edges=edges,
                            source=str(dem_path))
            blocks = list(_blocks(ds.height, ds.width, block_size))
            for k, (r0, c0, h, w) in enumerate(blocks):
                if is_canceled is not None and is_canceled():
                    raise CancelledError("Cancelled by the user; no slope raster was written.")
                with reading(source):
                    z = _pad_block(ds, r0, c0, h, w, edges)
                dx, dy = metres(r0, h)
                s = horn_slope(z, dx, dy)
                with writing("Slope raster", out):
                    dst.write(np.where(np.isnan(s), TERRAIN_NODATA, s).astype(np.float32)[None],
                              window=Window(c0, r0, w, h))
                if progress is not None:
                    progress((k + 1) / len(blocks))
        publish_raster(tmp, out, "Slope raster")
    finally:
        remove_quietly(tmp)
    return out


def _check_dem(ds, source: str) -> None:
    check_georeferenced(ds, source, "DEM")


# ---------------------------------------------------------------------------------------------
# DEM and slope aligned to a raster


def terrain_kind(name: str) -> str | None:
    """``slope_deg`` or ``dem_m`` when a band name means slope or elevation, else None."""
    return _kind_of(band_keys(name))


def spec_terrain_kind(spec: BandSpec) -> str | None:
    """``slope_deg`` or ``dem_m`` when a model band (its name or an alias) means slope or elevation."""
    return _kind_of(spec_keys(spec))


def _kind_of(keys: set[str]) -> str | None:
    if keys & _SLOPE_KEYS:
        return SLOPE_BAND
    if keys & _DEM_KEYS:
        return DEM_BAND
    return None


def _as_specs(contract) -> list[BandSpec]:
    if isinstance(contract, ModelContract):
        return list(contract.bands)
    return [b if isinstance(b, BandSpec) else BandSpec(name=str(b)) for b in contract]


def check_overlap(ref_crs, ref_bounds, ds, ref_source: str, source: str) -> None:
    """InputError naming both rasters when ``ds`` does not overlap ``ref_bounds`` (in ref_crs)."""
    from rasterio.warp import transform_bounds

    try:
        x0, y0, x1, y1 = transform_bounds(ds.crs, ref_crs, *ds.bounds, densify_pts=21)
    except Exception as exc:
        raise InputError(f"{source}: its extent cannot be transformed to the CRS of {ref_source} "
                         f"({exc}).") from exc
    rx0, ry0, rx1, ry1 = ref_bounds
    finite = all(map(math.isfinite, (x0, y0, x1, y1)))
    if not (finite and x0 < rx1 and x1 > rx0 and y0 < ry1 and y1 > ry0):
        raise InputError(
            f"{source} does not overlap {ref_source}: it covers {x0:.6g}, {y0:.6g}, {x1:.6g}, "
            f"{y1:.6g} but the raster covers {rx0:.6g}, {ry0:.6g}, {rx1:.6g}, {ry1:.6g} (in "
            f"{ref_crs}). Use a DEM (or raster) that covers the scene's area.")


def warp_to_grid(src_path, out_path: Path, *, crs, transform: Affine, width: int, height: int,
                 description: str, resampling: Resampling = Resampling.bilinear,
                 is_canceled: Callable[[], bool] | None = None,
                 progress: Callable[[float], None] | None = None) -> Path:
    """Warp band 1 of ``src_path`` onto a grid, block by block, as float32 with TERRAIN_NODATA.

    Source voids (nodata, mask) stay voids: the warper leaves them out of the bilinear weights and
    writes nodata where no valid source pixel contributes.
    """
    from rasterio.vrt import WarpedVRT

    with gdal_env(), rasterio.open(src_path) as src, WarpedVRT(
            src, crs=crs, transform=transform, width=width, height=height,
            resampling=resampling, nodata=TERRAIN_NODATA, dtype="float32") as vrt, \
            _float_output(out_path, src, description, crs=crs, transform=transform,
                          width=width, height=height) as dst:
        blocks = list(_blocks(height, width, TERRAIN_BLOCK))
        for k, (r0, c0, h, w) in enumerate(blocks):
            if is_canceled is not None and is_canceled():
                raise CancelledError("Cancelled by the user; no output was written.")
            win = Window(c0, r0, w, h)
            with reading(f"Raster {src_path}"):
                values = vrt.read(1, window=win)
            with writing(f"Temporary {description} raster", out_path):
                dst.write(values, 1, window=win)
            if progress is not None:
                progress((k + 1) / len(blocks))
    check_written(out_path, out_path, f"Temporary {description} raster")
    return out_path


def augment_with_terrain(input_path, dem_path, contract, workdir, slope_path=None) -> Path:
    """The input raster plus the slope/DEM bands ``contract`` wants and the raster lacks.

    ``contract`` is a :class:`ModelContract` (or a list of band names / BandSpecs). Bands whose
    names mean slope (``slope_deg``) or elevation (``dem_m``) and that no raster band description
    matches are derived: the DEM (and the slope computed by Horn's method on the DEM's own grid, or
    the given ``slope_path``) is warped bilinearly onto the input raster's exact grid, written to
    float32 GeoTIFFs in ``workdir``, and stacked after the input's bands in a float32 VRT
    (returned; the input's values and nodata unchanged) whose new bands are described
    ``slope_deg`` / ``dem_m`` so :mod:`.bands` maps them by name. Returns
    ``input_path`` unchanged when nothing is missing. Voids and the area outside the DEM are nodata.
    """
    workdir = Path(workdir)
    source = f"Input raster {input_path}"
    specs = _as_specs(contract)
    with open_input(input_path) as ds:
        check_georeferenced(ds, source)  # the DEM is aligned to its grid
        present = {terrain_kind(d or "") for d in ds.descriptions} - {None}
        missing: list[str] = []
        for spec in specs:
            kind = spec_terrain_kind(spec)
            if kind is not None and kind not in present and kind not in missing:
                missing.append(kind)
        if not missing:
            return Path(input_path)
        if dem_path is None and not (missing == [SLOPE_BAND] and slope_path is not None):
            raise InputError(
                f"{source}: the model needs {' and '.join(missing)} but the raster has no band "
                "described so. Give a DEM (it is warped onto the raster's grid), or a raster "
                "stacked with those bands.")
        grid = dict(crs=ds.crs, transform=ds.transform, width=ds.width, height=ds.height)
        ref_bounds = ds.bounds
        n_in = ds.count
        in_meta = [(ds.dtypes[i], ds.nodatavals[i], ds.descriptions[i], ds.colorinterp[i],
                    _masked_without_nodata(ds.mask_flag_enums[i]))
                   for i in range(ds.count)]
        block = ds.block_shapes[0]
    if not workdir.is_dir():
        raise OutputError(f"Work folder {workdir}: does not exist. Create it or choose another.")
    stem = Path(input_path).stem
    derived: dict[str, Path] = {}
    for kind in missing:
        given = slope_path if kind == SLOPE_BAND and slope_path is not None else dem_path
        label = "Slope raster" if given is slope_path and slope_path is not None else "DEM"
        with open_input(given) as src:
            _check_dem(src, f"{label} {given}")
            check_overlap(grid["crs"], ref_bounds, src, source, f"{label} {given}")
        if kind == SLOPE_BAND and slope_path is None:
            given = compute_slope(dem_path, workdir / f"{stem}.slope_native.tif")
        derived[kind] = warp_to_grid(given, workdir / f"{stem}.{kind}.tif", description=kind,
                                     **grid)
    vrt = workdir / f"{stem}.terrain.vrt"
    _write_stack_vrt(vrt, Path(input_path), n_in, in_meta, derived, grid, block)
    return vrt


def terrain_sources(input_path, dem_path, workdir, slope_path=None,
                    is_canceled: Callable[[], bool] | None = None) -> tuple[Path | None,
                                                                           Path | None]:
    """(slope, elevation) rasters for the polygons of ``input_path`` (each None when not given).

    The slope is ``slope_path`` as given, else computed by Horn's method on the DEM's own grid
    into ``workdir`` (as :func:`augment_with_terrain` does before warping); both stay in their
    own CRS and resolution, read on the mask's grid by :mod:`..polygons.terrain_stats`. Each
    must be georeferenced and overlap the input raster.
    """
    if dem_path is None and slope_path is None:
        return None, None
    source = f"Input raster {input_path}"
    with open_input(input_path) as ds:
        check_georeferenced(ds, source)
        crs, bounds = ds.crs, ds.bounds
    for label, given in (("DEM", dem_path), ("Slope raster", slope_path)):
        if given is not None:
            with open_input(given, label) as src:
                _check_dem(src, f"{label} {given}")
                check_overlap(crs, bounds, src, source, f"{label} {given}")
    if slope_path is None:
        slope_path = compute_slope(dem_path, Path(workdir) / f"{Path(dem_path).stem}.slope.tif",
                                   is_canceled=is_canceled)
    return Path(slope_path), None if dem_path is None else Path(dem_path)


def _masked_without_nodata(flags) -> bool:
    """True when a band's invalid pixels come from an alpha band or a mask, not a nodata value."""
    from rasterio.enums import MaskFlags

    return MaskFlags.nodata not in flags and (MaskFlags.alpha in flags
                                              or MaskFlags.per_dataset in flags)


def _write_stack_vrt(vrt: Path, input_path: Path, n_in: int, in_meta, derived: dict[str, Path],
                     grid: dict, block: Sequence[int]) -> None:
    """A float32 VRT of the input's bands (values unchanged) followed by the derived bands.

    GDAL does not take a float32 band as an alpha mask, so an input masked by an alpha band or an
    internal mask gets its masked pixels as :data:`TERRAIN_NODATA` instead (a ComplexSource with
    ``UseMaskBand``); the alpha band stays as a plain band.
    """
    from xml.sax.saxutils import escape

    gdal_types = {"uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16",
                  "uint32": "UInt32", "int32": "Int32", "float32": "Float32",
                  "float64": "Float64"}
    t = grid["transform"]
    lines = [f'<VRTDataset rasterXSize="{grid["width"]}" rasterYSize="{grid["height"]}">',
             f"  <SRS>{escape(grid['crs'].to_wkt())}</SRS>",
             f"  <GeoTransform>{t.c!r}, {t.a!r}, {t.b!r}, {t.f!r}, {t.d!r}, {t.e!r}"
             "</GeoTransform>"]

    def band(idx: int, dtype: str, nodata, desc: str, ci: str | None, path: Path, src_band: int,
             bx: int, by: int, use_mask: bool = False) -> None:
        source = "ComplexSource" if use_mask else "SimpleSource"
        if use_mask:
            nodata = TERRAIN_NODATA
        # one data type for every band: rasterio reads several bands at once only then
        lines.append(f'  <VRTRasterBand dataType="Float32" band="{idx}">')
        if nodata is not None:
            lines.append(f"    <NoDataValue>{nodata!r}</NoDataValue>")
        if desc:
            lines.append(f"    <Description>{escape(desc)}</Description>")
        if ci:
            lines.append(f"    <ColorInterp>{ci}</ColorInterp>")
        lines.extend([
            f"    <{source}>",
            f'      <SourceFilename relativeToVRT="0">{escape(str(path.resolve()))}'
            "</SourceFilename>",
            f"      <SourceBand>{src_band}</SourceBand>",
            f'      <SourceProperties RasterXSize="{grid["width"]}" '
            f'RasterYSize="{grid["height"]}" DataType="{gdal_types.get(dtype, "Float32")}" '
            f'BlockXSize="{bx}" BlockYSize="{by}"/>',
            f'      <SrcRect xOff="0" yOff="0" xSize="{grid["width"]}" ySize="{grid["height"]}"/>',
            f'      <DstRect xOff="0" yOff="0" xSize="{grid["width"]}" ySize="{grid["height"]}"/>',
            *(["      <UseMaskBand>true</UseMaskBand>"] if use_mask else []),
            f"    </{source}>",
            "  </VRTRasterBand>"])

    for i, (dtype, nodata, desc, ci, masked) in enumerate(in_meta, start=1):
        ci_name = ci.name.capitalize() if ci is not None else None
        ci_name = {"Undefined": None, "Alpha": None}.get(ci_name, ci_name)
        is_alpha = ci is not None and ci.name == "alpha"
        band(i, dtype, nodata, desc or "", ci_name, input_path, i, block[1], block[0],
             use_mask=masked and not is_alpha)
    for k, (kind, path) in enumerate(derived.items(), start=n_in + 1):
        band(k, "float32", TERRAIN_NODATA, kind, None, path, 1, 256, 256)
    lines.append("</VRTDataset>")
    vrt.write_text("\n".join(lines) + "\n", encoding="utf-8")


__all__ = ["augment_with_terrain", "terrain_sources", "compute_slope", "horn_slope",
           "metres_per_degree", "terrain_kind", "warp_to_grid", "check_overlap", "TERRAIN_NODATA",
           "SLOPE_BAND", "DEM_BAND"]
