"""``landslide-mapper map``: probability, mask and polygons from a raster and a model.

    landslide-mapper map SCENE.tif --model sentinel2-rgb --polygons landslides.gpkg
    landslide-mapper map S2_STACK.tif --model sentinel2-l4s --dem dem.tif --polygons ls.gpkg
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .options import IN_FILE, OUT_FILE, band_list, engine_run, layer_option, log, vector_options


@click.command("map")
@click.argument("input_path", metavar="INPUT", type=IN_FILE)
@click.option("--model", "-m", default="auto", show_default=True,
              help="A bundled model's name (see 'models'), an .onnx file, or 'auto': the "
              "bundled model whose bands and pixel size fit INPUT; the choice and its reasons "
              "are printed ('models --for INPUT' ranks them all).")
@click.option("--polygons", type=OUT_FILE, help="Landslide polygons (.gpkg, .shp, .geojson, .fgb).")
@layer_option("landslides")
@click.option("--probability", type=OUT_FILE, help="Probability GeoTIFF (0-1).")
@click.option("--mask", type=OUT_FILE, help="Binary mask GeoTIFF (1 landslide, 0 not, 255 no data).")
@click.option("--report", "report_path", type=OUT_FILE, help="Inventory report (.html, one "
              "offline file): overview map, areas, area-frequency power law, largest landslides, "
              "the model's scores. Needs --polygons.")
@click.option("--threshold", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Probability above which a pixel is a landslide [model's default].")
@click.option("--tile-size", type=click.IntRange(min=32), help="Tile size in pixels, a multiple of 32 [model's].")
@click.option("--overlap", type=click.IntRange(min=0), help="Overlap between tiles in pixels [model's].")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for the model [all cores].")
@click.option("--bands", callback=band_list, help="Raster bands for the model's inputs, e.g. 4,3,2 "
              "[matched by band description, else in order].")
@click.option("--dem", type=IN_FILE, help="DEM (metres, any CRS) for models with slope/elevation bands "
              "the raster lacks: derived and aligned on the fly. Polygons then get slope_mean, "
              "slope_max (degrees), elev_min and elev_max (metres), whatever the model.")
@click.option("--slope", type=IN_FILE, help="A ready slope raster (degrees) to use instead of one "
              "derived from --dem (polygons get slope_mean and slope_max from it).")
@click.option("--min-slope", "min_slope_deg", type=click.FloatRange(0, 90), default=0.0,
              show_default=True, help="Drop polygons whose mean slope is under this many degrees "
              "(flat fields, roads, river bars); needs --dem or --slope. 0 keeps all.")
@click.option("--tta", is_flag=True, help="Test-time augmentation: score each tile in its 8 "
              "orientations (rotations, flips) and average; the model runs 8 times as long.")
@click.option("--probability-format", type=click.Choice(["float32", "uint8"]), default="float32",
              show_default=True)
@click.option("--rescale", is_flag=True, help="Values far off the model's range (e.g. 0-1 "
              "reflectance or 8-bit into a 0-10000 model) are refused; with this flag they are "
              "mapped linearly onto it instead, and the mapping is printed.")
@vector_options
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def map_command(input_path: Path, model: str, polygons: Path | None, probability: Path | None,
                mask: Path | None, quiet: bool, **options: Any) -> None:
    """Map landslides on INPUT: probability, mask and polygons with areas."""
    if not (polygons or probability or mask):
        raise click.UsageError("give at least one output: --polygons, --probability or --mask")
    if options.get("report_path") and not polygons:
        raise click.UsageError("--report needs --polygons: the report is about the polygons")
    from ..core.mapping.engine import map_landslides

    with engine_run(quiet, "Mapping") as (progress, cancel):
        result = map_landslides(
            input_path, model, probability_path=probability, mask_path=mask, polygons_path=polygons,
            progress=progress, is_canceled=cancel, log=None if quiet else log, **options,
        )
    lines = [f"model {result.model_name} on {result.provider}, bands {result.band_indexes}, "
             f"{result.tiles} tiles in {result.seconds:.1f} s"]
    for label, path in (("probability", result.probability_path), ("mask", result.mask_path),
                        ("polygons", result.polygons_path), ("report", result.report_path)):
        if path:
            extra = f" ({result.polygon_count} landslides)" if label == "polygons" else ""
            if label == "polygons" and options.get("min_slope_deg"):
                extra += (f"; {result.slope_dropped_count} dropped for a mean slope under "
                          f"{options['min_slope_deg']:g} degrees "
                          f"({result.slope_dropped_area_ha:.2f} ha)")
            lines.append(f"{label}: {path}{extra}")
    click.echo("\n".join(lines))
