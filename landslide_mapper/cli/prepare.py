"""``landslide-mapper prepare`` and ``landslide-mapper slope``: model-ready inputs.

    landslide-mapper prepare S2B_MSIL2A_....SAFE stack.tif --dem dem.tif --model l4s-unet
    landslide-mapper prepare bands/ stack.tif --aoi 520000,4080000,530000,4090000
    landslide-mapper slope dem.tif slope.tif

Registered on the command group in :mod:`landslide_mapper.cli.main`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .options import OUT_FILE, engine_run


def _aoi(_ctx: Any, _param: Any, value: str | None):
    """``x0,y0,x1,y1`` -> a bounds tuple; a vector file path -> that path."""
    if not value:
        return None
    parts = [p for p in value.replace(" ", "").split(",") if p]
    if len(parts) == 4:
        try:
            x0, y0, x1, y1 = (float(p) for p in parts)
        except ValueError:
            raise click.BadParameter(f"expected xmin,ymin,xmax,ymax or a polygon file, found "
                                     f"{value!r}") from None
        if not (x0 < x1 and y0 < y1):
            raise click.BadParameter(f"expected xmin < xmax and ymin < ymax, found {value!r}")
        return (x0, y0, x1, y1)
    if Path(value).is_file():
        return Path(value)
    raise click.BadParameter(f"expected xmin,ymin,xmax,ymax or a polygon file, found {value!r}")


@click.command("prepare")
@click.argument("source", metavar="SOURCE", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path))
@click.argument("output", metavar="OUTPUT.tif", type=OUT_FILE)
@click.option("--dem", "dem_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="DEM (any CRS and resolution) for slope_deg / dem_m bands.")
@click.option("--slope", "slope_path", type=click.Path(exists=True, dir_okay=False,
                                                       path_type=Path),
              help="A slope raster (degrees) to use instead of computing it from the DEM.")
@click.option("--model", "-m", help="Take the bands and their order from this model (a bundled "
              "name or an .onnx file) [every band found].")
@click.option("--bands", help="Bands in order, e.g. B02,B03,B04,B08,slope_deg,dem_m.")
@click.option("--aoi", callback=_aoi, help="Area of interest: xmin,ymin,xmax,ymax (in --aoi-crs) "
              "or a polygon file.")
@click.option("--aoi-crs", help="CRS of the --aoi bounds, e.g. EPSG:4326 [the output's].")
@click.option("--crs", help="Output CRS, e.g. EPSG:32654 [B02's].")
@click.option("--b10-fill", type=float, default=0.0, show_default=True,
              help="Value of B10 (cirrus) when the product has none (Level-2A).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def prepare_command(source: tuple[Path, ...], output: Path, dem_path: Path | None,
                    slope_path: Path | None, model: str | None, bands: str | None, aoi: Any,
                    aoi_crs: str | None, crs: str | None, b10_fill: float, quiet: bool) -> None:
    """Stack a Sentinel-2 product (.SAFE, .zip, band files) and a DEM into OUTPUT.tif.

    SOURCE is a .SAFE folder, its .zip, a folder of band files, several band files, or a
    multi-band raster with named bands. Radiometric offsets (baseline 04.00+) are applied.
    """
    from ..core.inputs.sentinel2 import prepare_sentinel2_stack

    if model and bands:
        raise click.UsageError("give --model or --bands, not both")
    wanted: Any = model or ([b.strip() for b in bands.split(",") if b.strip()] if bands else None)
    src: Any = source[0] if len(source) == 1 else list(source)
    with engine_run(quiet, "Preparing") as (progress, cancel):
        result = prepare_sentinel2_stack(
            src, output, bands=wanted, dem_path=dem_path, slope_path=slope_path, aoi=aoi,
            aoi_crs=aoi_crs, crs=crs, b10_fill=b10_fill, progress=progress, is_canceled=cancel)
    if not quiet:
        for message in result.messages[:-1]:
            click.echo(message, err=True)
    click.echo(f"stack: {result.path} ({len(result.bands)} bands: {', '.join(result.bands)}; "
               f"{result.width} x {result.height} px in {result.crs})")


@click.command("slope")
@click.argument("dem", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("output", metavar="OUT.tif", type=OUT_FILE)
@click.option("--z-factor", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True, help="Elevation unit in metres (0.3048 for feet).")
@click.option("--edges", type=click.Choice(["extrapolate", "nodata"]), default="extrapolate",
              show_default=True, help="Edge pixels: extrapolated (exact on a plane) or nodata.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def slope_command(dem: Path, output: Path, z_factor: float, edges: str, quiet: bool) -> None:
    """Slope in degrees of DEM (Horn's method), on the DEM's grid, written to OUT.tif."""
    from ..core.inputs.terrain import compute_slope
    from ..core.raster.io import check_writable

    with engine_run(quiet, "Slope") as (progress, cancel):
        check_writable(output, "Slope raster")
        compute_slope(dem, output, z_factor=z_factor, edges=edges, progress=progress,
                      is_canceled=cancel)
    click.echo(f"slope: {output}")

