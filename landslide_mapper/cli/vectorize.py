"""``landslide-mapper vectorize``: a mask (or probability raster) -> polygons with areas.

    landslide-mapper vectorize MASK.tif --polygons landslides.gpkg --probability probability.tif
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .options import IN_FILE, OUT_FILE, engine_run, layer_option, vector_options


@click.command("vectorize")
@click.argument("mask_path", metavar="MASK", type=IN_FILE)
@click.option("--polygons", type=OUT_FILE, required=True, help="Output polygons (.gpkg, .shp, .geojson, .fgb).")
@layer_option("landslides")
@click.option("--probability", "probability_path", type=IN_FILE,
              help="Probability raster on the same grid, for the probability attributes.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Used when MASK is a probability raster.")
@click.option("--model-name", default="", help="Value of the 'model' attribute.")
@vector_options
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def vectorize_command(mask_path: Path, polygons: Path, quiet: bool, **options: Any) -> None:
    """Turn a landslide mask (or probability raster) into polygons with areas."""
    from ..core.polygons.vectorize import vectorize_mask

    with engine_run(quiet, "Vectorizing") as (progress, cancel):
        result = vectorize_mask(mask_path, polygons, progress=progress, is_canceled=cancel, **options)
    click.echo(f"polygons: {result.polygons_path} ({result.count} landslides, "
               f"{result.total_area_m2 / 10_000:.2f} ha in all)")
