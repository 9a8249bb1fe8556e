"""``landslide-mapper batch``: many rasters (or one huge one) on Dask distributed.

    landslide-mapper batch scenes/*.tif --model sentinel2-rgb --out-dir out/
    landslide-mapper batch rasters.csv --out-dir /shared/out --scheduler tcp://10.0.0.5:8786
    landslide-mapper batch huge.tif --model sentinel2-rgb --out-dir out/ --split-rows 2048

Exit code 0 when every raster was mapped, 1 when any failed (the summary says which and why).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .options import IN_FILE, band_list, engine_run, log, vector_options


@click.command("batch")
@click.argument("inputs", metavar="INPUT...", nargs=-1, required=True)
@click.option("--model", "-m", help="A bundled model's name, an .onnx file, or 'auto' (the "
              "bundled model that fits each raster); a list file's 'model' column overrides it "
              "per raster.")
@click.option("--out-dir", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder of the outputs: NAME/probability.tif, NAME/mask.tif, "
              "NAME/landslides.gpkg per raster, landslides.gpkg (all polygons) and summary.csv.")
@click.option("--scheduler", help="A Dask scheduler's address (tcp://HOST:8786); without it, a "
              "local cluster. Inputs and outputs must then be on storage the workers share.")
@click.option("--workers", type=click.IntRange(min=1), help="Local cluster: worker processes "
              "[cores / threads per worker, at most one per raster].")
@click.option("--threads-per-worker", type=click.IntRange(min=1),
              help="CPU threads of the model in each worker [cores / workers].")
@click.option("--split-rows", type=click.IntRange(min=1), help="Map each raster in blocks of "
              "this many rows on different workers (for a raster too large for one machine); "
              "the result is identical.")
@click.option("--force", is_flag=True, help="Map again rasters whose outputs are complete.")
@click.option("--crs", help="CRS of the merged inventory (e.g. EPSG:32645) [the rasters' CRS, "
              "or EPSG:4326 when they differ].")
@click.option("--layer", "layer_name", metavar="NAME", help="Layer of the merged inventory in "
              "OUT_DIR/landslides.gpkg [landslides]; the GeoPackage's other layers are kept and "
              "only this one is replaced.")
@click.option("--threshold", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Probability above which a pixel is a landslide [model's default].")
@click.option("--tile-size", type=click.IntRange(min=32), help="Tile size in pixels [model's].")
@click.option("--overlap", type=click.IntRange(min=0), help="Overlap between tiles [model's].")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True)
@click.option("--bands", callback=band_list, help="Raster bands for the model's inputs, e.g. "
              "4,3,2 [matched by band description, else in order].")
@click.option("--dem", type=IN_FILE, help="DEM (metres, any CRS) covering the rasters, for "
              "models with slope/elevation bands the rasters lack. Polygons then get slope_mean, "
              "slope_max (degrees), elev_min and elev_max (metres), whatever the model.")
@click.option("--slope", type=IN_FILE, help="A ready slope raster (degrees) covering the rasters, "
              "to use instead of one derived from --dem (polygons get slope_mean and slope_max "
              "from it).")
@click.option("--min-slope", "min_slope_deg", type=click.FloatRange(0, 90), default=0.0,
              show_default=True, help="Drop polygons whose mean slope is under this many degrees "
              "(flat fields, roads, river bars); needs --dem or --slope. The summary says how "
              "many and how much area per raster. 0 keeps all.")
@click.option("--probability-format", type=click.Choice(["float32", "uint8"]),
              default="float32", show_default=True)
@click.option("--tta", is_flag=True, help="Test-time augmentation: score each tile in its 8 "
              "orientations (rotations, flips) and average; the model runs 8 times as long.")
@click.option("--rescale", is_flag=True, help="Values far off the model's range (e.g. 0-1 "
              "reflectance or 8-bit into a 0-10000 model) are refused; with this flag each "
              "raster's values are mapped linearly onto it instead.")
@vector_options
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def batch_command(inputs: tuple[str, ...], model: str | None, out_dir: Path, quiet: bool,
                  **options: Any) -> None:
    """Map landslides on many rasters (files, folders, glob patterns or a .txt/.csv list) on
    Dask distributed, and merge their polygons into one inventory."""
    from ..core.batch.run import map_many

    batch = {k: options.pop(k) for k in ("scheduler", "workers", "threads_per_worker",
                                         "split_rows", "force", "crs", "layer_name")}
    with engine_run(quiet, "Batch") as (progress, cancel):
        result = map_many(list(inputs), model, out_dir, **batch, **options, progress=progress,
                          is_canceled=cancel, log=None if quiet else log)
    click.echo(summary_table(result))
    if not result.ok:
        sys.exit(1)


def summary_table(result: Any) -> str:
    """The batch summary: one line per raster (with a minimum slope, the polygons and hectares it
    dropped), then the inventory and the totals."""
    from ..core.batch.run import dropped_note

    slope = result.min_slope_deg > 0
    rows = [("raster", "status", "polygons", "area_ha", *(("dropped", "dropped_ha") * slope),
             "seconds", "error")]
    for o in result.outcomes:
        dropped = (str(o.slope_dropped), f"{o.slope_dropped_ha:.2f}") if slope else ()
        rows.append((o.name, o.status, str(o.polygons), f"{o.area_m2 / 1e4:.2f}", *dropped,
                     f"{o.seconds:.1f}", o.error or ""))
    n = len(rows[0]) - 1
    widths = [max(len(r[i]) for r in rows) for i in range(n)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:n], widths)) + ("  " + r[n] if r[n] else "")
             for r in rows]
    ok = sum(o.ok for o in result.outcomes)
    lines.append(f"{ok} of {len(result.outcomes)} rasters mapped in {result.seconds:.1f} s; "
                 f"summary: {result.summary_path}")
    if result.inventory_path:
        lines.append(f"inventory: {result.inventory_path} ({result.inventory_count} polygons, "
                     f"{result.inventory_crs}{dropped_note(result)})")
    if result.dashboard:
        lines.append(f"dashboard: {result.dashboard}")
    return "\n".join(line.rstrip() for line in lines)
