"""``landslide-mapper chips``, ``train`` and ``evaluate``: the annotator's loop without QGIS.

    landslide-mapper chips scene.tif landslides.gpkg chips/ --checked-area checked.gpkg
    landslide-mapper train chips/ new-model.onnx --base sentinel2-rgb --epochs 20
    landslide-mapper evaluate predicted.gpkg reference.gpkg --report report.html

Registered on the command group in :mod:`landslide_mapper.cli.main`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .options import IN_FILE, IN_LAYER, OUT_FILE, band_list, engine_run, layer_option


def _area(_ctx: Any, _param: Any, value: str | None) -> Any:
    """``xmin,ymin,xmax,ymax`` -> a tuple; anything else must be a polygon file."""
    if not value:
        return None
    parts = [p for p in value.replace(" ", "").split(",") if p]
    if len(parts) == 4:
        try:
            return tuple(float(p) for p in parts)
        except ValueError:
            pass
    if Path(value.split("|", 1)[0]).is_file():
        return value
    raise click.BadParameter(f"expected xmin,ymin,xmax,ymax or a polygon file, found {value!r}")


@click.command("chips")
@click.argument("raster", type=IN_FILE)
@click.argument("polygons", type=IN_LAYER)
@click.argument("out_dir", metavar="OUT_DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--checked-area", callback=_area, help="Area that was checked (polygon file or "
              "xmin,ymin,xmax,ymax in the raster's CRS); pixels outside are unknown "
              "[whole raster].")
@click.option("--tile-size", type=click.IntRange(min=8), default=128, show_default=True)
@click.option("--overlap", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--keep-empty", "keep_empty_fraction", type=click.FloatRange(0, 1), default=0.2,
              show_default=True, help="Share of chips without landslides to keep.")
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.2,
              show_default=True, help="Share of spatial blocks held out for validation.")
@click.option("--block-size", "block_size_tiles", type=click.IntRange(min=1), default=4,
              show_default=True, help="Validation block size in tiles (blocks x blocks).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--bands", callback=band_list, help="Raster bands to export, e.g. 1,2,3 [all].")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def chips_command(raster: Path, polygons: Path, out_dir: Path, quiet: bool, **options: Any) -> None:
    """Export training chips from RASTER and landslide POLYGONS into OUT_DIR."""
    from ..core.loop.chips import export_training_chips

    with engine_run(quiet, "Chips") as (progress, cancel):
        result = export_training_chips(raster, polygons, out_dir, progress=progress,
                                       is_canceled=cancel, **options)
    for message in result.messages:
        click.echo(message, err=True)
    px = result.pixels
    click.echo(f"chips: {result.out_dir} ({result.train_chips} train, {result.val_chips} val; "
               f"landslide pixels {px['train']['landslide']} train, {px['val']['landslide']} val)"
               f"\nmanifest: {result.manifest_path}")


@click.command("train")
@click.argument("chips_dir", metavar="CHIPS_DIR",
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out_model", metavar="OUT.onnx", type=OUT_FILE)
@click.option("--base", help="Bundled model, .onnx (its contract names a training config), "
              "config file or config name to train from [the training module's default U-Net].")
@click.option("--checkpoint", type=IN_FILE, help="Start from these weights (a run's best.pt).")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1))
@click.option("--lr", "learning_rate", type=click.FloatRange(min=0, min_open=True))
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for training.")
@click.option("--max-steps", type=click.IntRange(min=1), help="Stop each epoch after N steps.")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Run folder (log, checkpoints) [OUT_run beside the model].")
@click.option("--config-extra", type=IN_FILE, help="YAML file whose keys override the config "
              "(e.g. a smaller model).")
def train_command(chips_dir: Path, out_model: Path, config_extra: Path | None,
                  **options: Any) -> None:
    """Train (or fine-tune) a model on exported CHIPS_DIR; writes OUT.onnx with its contract."""
    from ..core.loop.training_run import train_on_chips

    extra = None
    if config_extra:
        import yaml

        extra = yaml.safe_load(config_extra.read_text(encoding="utf-8")) or {}
    with engine_run(True, "Training") as (progress, cancel):
        result = train_on_chips(chips_dir, out_model, extra_config=extra, progress=progress,
                                is_canceled=cancel, log=lambda m: click.echo(m, err=True),
                                **options)
    pooled = result.scores.get("all") or next(iter(result.scores.values()), {})
    scores = ", ".join(f"{k} {pooled[k]:.3f}" for k in ("precision", "recall", "f1",
                                                       "iou_dataset") if k in pooled)
    click.echo(f"model: {result.model_path} (trained on {result.device}, "
               f"{result.epochs_run} epochs; held-out {scores or 'none'})\nrun: {result.run_dir}")


@click.command("evaluate")
@click.argument("predicted", type=IN_LAYER)
@click.argument("reference", type=IN_LAYER)
@click.option("--area", callback=_area, help="Only pixels inside this area count (polygon file "
              "or xmin,ymin,xmax,ymax in the grid's CRS).")
@click.option("--iou-threshold", type=click.FloatRange(0, 1, min_open=True), default=0.5,
              show_default=True, help="Object IoU at or above which a landslide is found.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Probability threshold for probability rasters.")
@click.option("--pixel-size", type=click.FloatRange(min=0, min_open=True),
              help="Pixel size in metres when both inputs are polygons (converted to the "
              "CRS's units, also degrees) [1/4000 of the extent].")
@click.option("--polygons", "out_polygons", type=OUT_FILE, help="Predicted polygons with match "
              "attributes (a .gpkg also gets a 'reference' layer).")
@layer_option("predicted; the reference beside it as NAME_reference")
@click.option("--reference-out", "out_reference", type=OUT_FILE,
              help="Reference polygons with status hit/miss.")
@click.option("--report", "report_path", type=OUT_FILE, help="Report: .html or .md (+ .json).")
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON.")
def evaluate_command(predicted: Path, reference: Path, as_json: bool, **options: Any) -> None:
    """Score PREDICTED (polygons or raster) against REFERENCE: pixel and object scores."""
    from ..core.loop.evaluation import evaluate_landslides

    with engine_run(True, "Evaluating") as (progress, cancel):
        result = evaluate_landslides(predicted, reference, progress=progress,
                                     is_canceled=cancel, **options)
    for message in result.messages:
        click.echo(message, err=True)
    click.echo(json.dumps(result.as_dict(), indent=1) if as_json else result.markdown())

