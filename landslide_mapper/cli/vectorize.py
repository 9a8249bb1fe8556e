"""``landslide-mapper vectorize``: a mask (or probability raster) -> polygons with areas.

    landslide-mapper vectorize MASK.tif --polygons landslides.gpkg --probability probability.tif
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .options import IN_FILE, OUT_FILE, engine_run, layer_option, log, vector_options


@click.command("vectorize")
@click.argument("mask_path", metavar="MASK", type=IN_FILE)
@click.option("--polygons", type=OUT_FILE, required=True, help="Output polygons (.gpkg, .shp, .geojson, .fgb).")
@layer_option("landslides")
@click.option("--probability", "probability_path", type=IN_FILE,
              help="Probability raster on the same grid, for the probability attributes.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Used when MASK is a probability raster.")
@click.option("--model-name", default="", help="Value of the 'model' attribute.")
@click.option("--dem", type=IN_FILE, help="DEM (metres, any CRS and resolution): polygons get "
              "slope_mean, slope_max (degrees, Horn's method), elev_min and elev_max.")
@click.option("--slope", type=IN_FILE, help="A ready slope raster (degrees) to use instead of one "
              "derived from --dem.")
@click.option("--min-slope", "min_slope_deg", type=click.FloatRange(0, 90), default=0.0,
              show_default=True, help="Drop polygons whose mean slope is under this many degrees; "
              "needs --dem or --slope. 0 keeps all.")
@vector_options
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def vectorize_command(mask_path: Path, polygons: Path, quiet: bool, **options: Any) -> None:
    """Turn a landslide mask (or probability raster) into polygons with areas."""
    from ..core.mapping.vectorizing import vectorize_with_terrain

    with engine_run(quiet, "Vectorizing") as (progress, cancel):
        result = vectorize_with_terrain(mask_path, polygons, progress=progress, is_canceled=cancel,
                                        log=None if quiet else log, **options)
    dropped = (f"; {result.flat_count} dropped for a mean slope under "
               f"{options['min_slope_deg']:g} degrees ({result.flat_area_m2 / 10_000:.2f} ha)"
               if options["min_slope_deg"] else "")
    click.echo(f"polygons: {result.polygons_path} ({result.count} landslides, "
               f"{result.total_area_m2 / 10_000:.2f} ha in all{dropped})")
