"""``landslide-mapper quantize``: an int8 copy of a model, calibrated on the user's own rasters.

    landslide-mapper quantize sentinel2-rgb s2rgb-int8.onnx --calibration scenes/
    landslide-mapper quantize model.onnx model-int8.onnx --calibration a.tif --calibration b.tif
"""

from __future__ import annotations

from pathlib import Path

import click

from .options import OUT_FILE, band_list, engine_run, log


@click.command("quantize")
@click.argument("model")
@click.argument("out", type=OUT_FILE)
@click.option("--calibration", "calibration", multiple=True, required=True,
              type=click.Path(exists=True, path_type=Path), metavar="RASTER_OR_FOLDER",
              help="Rasters like those the model will map (raw values, as for 'map'); a folder "
                   "gives all its rasters. Repeat for several.")
@click.option("--tiles", type=click.IntRange(min=1), default=64, show_default=True,
              help="Calibration tiles of the model's tile size, spread over the rasters.")
@click.option("--bands", callback=band_list, help="Raster bands in model order, e.g. 4,3,2 "
              "(default: matched by description, else in order).")
@click.option("--weights", "weight_type", type=click.Choice(["int8", "uint8"]), default="int8",
              show_default=True, help="int8: fast on CPUs with VNNI; uint8: no saturation on "
              "older x86 CPUs, but no faster than float.")
@click.option("--reduce-range", is_flag=True, help="7-bit int8 weights: no saturation on x86 "
              "CPUs without VNNI, at some accuracy.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
def quantize_command(model: str, out: Path, calibration: tuple[Path, ...], tiles: int,
                     bands: list[int] | None, weight_type: str, reduce_range: bool,
                     quiet: bool) -> None:
    """Write an int8 copy of MODEL (bundled name or .onnx) to OUT, with its contract.

    onnxruntime static quantization (QDQ, per-channel weights, min/max calibration) on tiles read
    from the calibration rasters through the model's own band scaling. Prints how the int8 model
    agrees with the float one on those tiles; score it on held-out data before trusting it.
    """
    from ..core.mapping.calibration import quantize_with_rasters

    with engine_run(True, "quantize"):
        contract, agreement = quantize_with_rasters(
            model, out, list(calibration), tiles=tiles, bands=bands, weight_type=weight_type,
            reduce_range=reduce_range, log=None if quiet else log)
    q = contract.quantization
    size = out.stat().st_size / 1e6
    click.echo(f"{out}: {contract.name}, {q['weights']} weights, {q['calibration_tiles']} "
               f"calibration tiles, {size:.1f} MB")
    click.echo(f"agreement with the float model on those tiles: masks "
               f"{100 * agreement.mask_agreement:.2f} % of pixels, probability difference max "
               f"{agreement.max_abs_probability:.3f}, mean {agreement.mean_abs_probability:.4f}")
