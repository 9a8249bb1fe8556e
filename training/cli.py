"""The ``landslide-train`` command: ``fit``, ``evaluate``, ``export``, ``quantize``."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Train, evaluate and export landslide segmentation models."""


@main.command()
@click.option(
    "--config", "config", required=True, help="YAML config file, or a bundled config's name."
)
@click.option(
    "--run-dir", type=click.Path(path_type=Path), help="Run folder (default runs/NAME/TIMESTAMP)."
)
@click.option(
    "--resume", type=click.Path(exists=True, path_type=Path), help="Continue from a run's last.pt."
)
@click.option("--epochs", type=int, help="Override the config's epochs.")
@click.option("--batch-size", type=int, help="Override the config's batch size.")
@click.option("--threads", type=int, help="CPU threads for torch.")
@click.option("--fold", type=int, help="k-fold: train fold FOLD of data.kfold.k (0-based).")
@click.option("--max-steps", type=int, help="Stop each epoch after this many steps (quick checks).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def fit(config, run_dir, resume, epochs, batch_size, threads, fold, max_steps, quiet) -> None:
    """Train a model as CONFIG says; prints the run folder."""
    from .config import load_config
    from .loop import fit as run_fit

    overrides = {
        "epochs": epochs,
        "batch_size": batch_size,
        "threads": threads,
        "max_steps_per_epoch": max_steps,
    }
    cfg = load_config(config, **overrides)
    if fold is not None:
        kf = dict(cfg["data"].get("kfold") or {"k": 5})
        kf["fold"] = fold
        cfg["data"]["kfold"] = kf
    run = _guard(lambda: run_fit(cfg, run_dir=run_dir, resume=resume, progress=not quiet))
    click.echo(str(run))


@main.command()
@click.option(
    "--model", "model", required=True, help="Bundled model name, .onnx file or .pt checkpoint."
)
@click.option(
    "--data",
    "data",
    type=click.Path(exists=True, path_type=Path),
    help="Folder of images and masks.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["l4s-h5", "tiles", "chips"]),
    default="tiles",
    show_default=True,
)
@click.option(
    "--config",
    "config",
    help="Score the held-out split of every source of this config instead of --data.",
)
@click.option("--images", default="images", show_default=True, help="tiles: image subfolder.")
@click.option("--masks", default="masks", show_default=True, help="tiles: mask subfolder.")
@click.option(
    "--label",
    default=None,
    help="tiles: label rule, e.g. 'value=1', 'threshold=127', 'colour=200:128:0', "
    "'value=1,ignore=255'. Default: non-zero = landslide.",
)
@click.option(
    "--channels", default=None, help="Image bands to use, 0-based, e.g. '0,1,2' (drops alpha)."
)
@click.option(
    "--split", default="ValidData", show_default=True, help="l4s-h5 official layout: subfolder."
)
@click.option(
    "--units",
    type=click.Choice(["training", "raw"]),
    default="training",
    show_default=True,
    help="training: files hold what the model was trained on; "
    "raw: raw raster values (full contract scaling).",
)
@click.option("--threshold", type=float, help="Probability threshold (default: the model's).")
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--threads", type=int, help="CPU threads.")
@click.option(
    "--json", "json_out", type=click.Path(path_type=Path), help="Write the scores as JSON here."
)
@click.option(
    "--tta",
    is_flag=True,
    help="Test-time augmentation: score each image in its 8 orientations (rotations, flips) "
    "and average the probabilities, as 'landslide-mapper map --tta' does.",
)
def evaluate(
    model,
    data,
    fmt,
    config,
    images,
    masks,
    label,
    channels,
    split,
    units,
    threshold,
    batch_size,
    threads,
    json_out,
    tta,
) -> None:
    """Score MODEL on held-out images: precision, recall, F1, accuracy, dataset and per-image IoU.

    Pixel counts are pooled over all images. Per-image IoU leaves out images with no landslide
    in the reference and none predicted (0/0); they are counted in images_empty_both, and
    iou_per_image_empty_as_one scores them 1.0.
    """
    from .evaluate import evaluate as run_eval
    from .evaluate import format_table, write_json

    if (data is None) == (config is None):
        raise click.UsageError("give either --data DIR or --config CONFIG")
    if config is not None:
        from .config import build_sources, load_config

        sources = build_sources(load_config(config))
        target = list(sources.val.items())
    else:
        target = data
    ch = [int(c) for c in channels.split(",")] if channels else None
    opts = {"images": images, "masks": masks, "label": label, "channels": ch, "split": split}
    results = _guard(
        lambda: run_eval(
            model,
            target,
            fmt=fmt,
            units=units,
            threshold=threshold,
            batch_size=batch_size,
            threads=threads,
            options=opts,
            tta=tta,
        )
    )
    click.echo(format_table(results))
    if json_out:
        write_json(results, json_out)
        click.echo(f"scores written to {json_out}")


@main.command()
@click.option(
    "--checkpoint",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="A run's best.pt.",
)
@click.option(
    "--out", "out", required=True, type=click.Path(path_type=Path), help="Output .onnx file."
)
@click.option("--opset", type=int, default=17, show_default=True)
@click.option(
    "--atol", type=float, default=1e-4, show_default=True, help="Parity tolerance (probabilities)."
)
@click.option(
    "--metrics-json",
    "metrics_json",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Scores written by 'evaluate --json' to add to the contract's metrics (per source).",
)
@click.option(
    "--int8",
    is_flag=True,
    help="Write an int8 model (onnxruntime static quantization, QDQ, per-channel weights).",
)
@click.option(
    "--calibration",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="--int8: rasters (raw values) or folders to calibrate on [the run's training split].",
)
@click.option(
    "--calibration-tiles", type=int, default=64, show_default=True, help="--int8: tiles used."
)
def export(checkpoint, out, opset, atol, metrics_json, int8, calibration,
           calibration_tiles) -> None:
    """Export a checkpoint to ONNX with its model contract, checked against torch."""
    from .export import export_onnx, extra_metrics

    extra = extra_metrics(metrics_json)
    contract, err = _guard(
        lambda: export_onnx(checkpoint, out, opset=opset, atol=atol, extra_metrics=extra,
                            int8=int8, calibration=list(calibration),
                            calibration_tiles=calibration_tiles)
    )
    size = out.stat().st_size / 1e6
    click.echo(
        f"{out}: {contract.name}, {contract.band_count} bands, tile {contract.tile_size}, "
        f"{size:.1f} MB, onnxruntime-torch max difference {err:.1e}"
        + (" (float export; then quantized to int8)" if int8 else "")
    )
    if int8 and contract.quantization.get("heldout"):
        _print_heldout(contract.quantization["heldout"])


@main.command()
@click.option("--model", "model", required=True, help="Bundled model name or .onnx file (float).")
@click.option("--config", "config", required=True, help="Config whose training split calibrates "
              "and whose held-out split scores (YAML file or bundled config's name).")
@click.option(
    "--out", "out", required=True, type=click.Path(path_type=Path), help="Output .onnx file."
)
@click.option("--tiles", type=int, default=64, show_default=True,
              help="Training images to calibrate on (fixed seeded choice).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--calibration", multiple=True, type=click.Path(exists=True, path_type=Path),
              metavar="RASTER_OR_FOLDER", help="Real rasters (raw values) whose tiles join the "
              "calibration, read through the contract's scaling. Repeat for several.")
@click.option("--calibration-tiles", type=int, default=32, show_default=True,
              help="Tiles taken from the --calibration rasters.")
@click.option("--reduce-range", is_flag=True,
              help="7-bit weights (no saturation on x86 CPUs without VNNI).")
@click.option("--threads", type=int, help="CPU threads.")
@click.option(
    "--json", "json_out", type=click.Path(path_type=Path), help="Write held-out scores here."
)
def quantize(model, config, out, tiles, seed, calibration, calibration_tiles, reduce_range,
             threads, json_out) -> None:
    """int8 copy of MODEL calibrated on CONFIG's training split; float vs int8 held-out scores."""
    from .evaluate import write_json
    from .quantize import quantize_for_config

    contract, agreement, scores = _guard(
        lambda: quantize_for_config(model, out, config, tiles=tiles, seed=seed,
                                    reduce_range=reduce_range, threads=threads,
                                    rasters=list(calibration), raster_tiles=calibration_tiles)
    )
    q = contract.quantization
    click.echo(f"{out}: {contract.name}, {q['weights']} weights, {q['calibration_tiles']} "
               f"calibration tiles, {out.stat().st_size / 1e6:.1f} MB; masks agree with the "
               f"float model on {100 * agreement.mask_agreement:.2f} % of calibration pixels")
    _print_heldout(scores)
    if json_out:
        write_json(scores, json_out)
        click.echo(f"scores written to {json_out}")


def _print_heldout(scores) -> None:
    click.echo(f"{'held-out source':<26}{'F1 float':>10}{'F1 int8':>10}{'change (points)':>17}")
    for name, row in scores.items():
        click.echo(f"{name:<26}{row['float']['f1']:>10.4f}{row['int8']['f1']:>10.4f}"
                   f"{row['f1_change_points']:>+17.2f}")


def _guard(fn):
    """Turn expected errors into a one-line message and exit code 1."""
    from landslide_mapper.core.errors import LandslideMapperError

    try:
        return fn()
    except (LandslideMapperError, FileNotFoundError, ValueError) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
