"""The ``landslide-mapper`` command: the engine without QGIS.

    landslide-mapper map SCENE.tif --model sentinel2-rgb --polygons landslides.gpkg
    landslide-mapper vectorize MASK.tif --polygons landslides.gpkg
    landslide-mapper models
    landslide-mapper info MODEL.onnx
    landslide-mapper contract THIRD_PARTY.onnx CONTRACT.json -o MODEL.onnx

Bad input ends with a one-line reason and exit code 1; Ctrl-C cancels cleanly (exit code 130) and
leaves no half-written output.
"""

from __future__ import annotations

import json
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import click

from .core.errors import CancelledError, LandslideMapperError

_OUT = click.Path(dir_okay=False, path_type=Path)
_IN = click.Path(exists=True, dir_okay=False, path_type=Path)


class _Cancel:
    """Ctrl-C sets a flag the engine polls; a second Ctrl-C stops at once."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        return self.requested

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        click.echo("\nCancelling (press Ctrl-C again to stop at once)...", err=True)


@contextmanager
def _engine_run(quiet: bool, label: str) -> Iterator[tuple[Callable[[float], None], _Cancel]]:
    """Progress bar + cancel flag for one engine call; engine errors become one-line messages."""
    from tqdm import tqdm

    cancel = _Cancel()
    previous = signal.signal(signal.SIGINT, cancel._handler)
    bar = tqdm(total=100, desc=label, unit="%", disable=quiet, file=sys.stderr,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")

    def progress(fraction: float) -> None:
        bar.update(max(0.0, min(100.0, 100.0 * fraction)) - bar.n)

    try:
        yield progress, cancel
    except CancelledError as exc:
        bar.close()
        click.echo(f"landslide-mapper: cancelled: {exc}", err=True)
        sys.exit(130)
    except LandslideMapperError as exc:
        bar.close()
        raise click.ClickException(str(exc)) from None
    finally:
        bar.close()
        signal.signal(signal.SIGINT, previous)


def _band_list(_ctx: Any, _param: Any, value: str | None) -> list[int] | None:
    if not value:
        return None
    try:
        bands = [int(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError:
        raise click.BadParameter(f"expected 1-based band numbers separated by commas, found {value!r}")
    if not bands or min(bands) < 1:
        raise click.BadParameter(f"band numbers start at 1, found {value!r}")
    return bands


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="landslide-mapper")
def main() -> None:
    """Map landslides on georeferenced rasters with segmentation models (ONNX)."""


def _vector_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--simplify", "simplify_m", type=click.FloatRange(min=0), default=0.0,
                     show_default=True, help="Simplification tolerance in metres (topology kept).")(f)
    f = click.option("--fill-holes", "fill_holes_m2", type=click.FloatRange(min=0), default=0.0,
                     show_default=True, help="Fill holes inside polygons smaller than this (m2).")(f)
    f = click.option("--min-area", "min_area_m2", type=click.FloatRange(min=0), default=0.0,
                     show_default=True, help="Drop polygons smaller than this (m2).")(f)
    return f


@main.command("map")
@click.argument("input_path", metavar="INPUT", type=_IN)
@click.option("--model", "-m", required=True, help="A bundled model's name (see 'models') or an .onnx file.")
@click.option("--polygons", type=_OUT, help="Landslide polygons (.gpkg, .shp, .geojson, .fgb).")
@click.option("--probability", type=_OUT, help="Probability GeoTIFF (0-1).")
@click.option("--mask", type=_OUT, help="Binary mask GeoTIFF (1 landslide, 0 not, 255 no data).")
@click.option("--threshold", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Probability above which a pixel is a landslide [model's default].")
@click.option("--tile-size", type=click.IntRange(min=32), help="Tile size in pixels, a multiple of 32 [model's].")
@click.option("--overlap", type=click.IntRange(min=0), help="Overlap between tiles in pixels [model's].")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for the model [all cores].")
@click.option("--bands", callback=_band_list, help="Raster bands for the model's inputs, e.g. 4,3,2 "
              "[matched by band description, else in order].")
@click.option("--dem", type=_IN, help="DEM (metres, any CRS) for models with slope/elevation bands "
              "the raster lacks: derived and aligned on the fly.")
@click.option("--slope", type=_IN, help="A ready slope raster (degrees) to use instead of one "
              "derived from --dem.")
@click.option("--probability-format", type=click.Choice(["float32", "uint8"]), default="float32",
              show_default=True)
@_vector_options
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def map_command(input_path: Path, model: str, polygons: Path | None, probability: Path | None,
                mask: Path | None, quiet: bool, **options: Any) -> None:
    """Map landslides on INPUT: probability, mask and polygons with areas."""
    if not (polygons or probability or mask):
        raise click.UsageError("give at least one output: --polygons, --probability or --mask")
    from .core.engine import map_landslides

    with _engine_run(quiet, "Mapping") as (progress, cancel):
        result = map_landslides(
            input_path, model, probability_path=probability, mask_path=mask, polygons_path=polygons,
            progress=progress, is_canceled=cancel, log=None if quiet else _log, **options,
        )
    lines = [f"model {result.model_name} on {result.provider}, bands {result.band_indexes}, "
             f"{result.tiles} tiles in {result.seconds:.1f} s"]
    for label, path in (("probability", result.probability_path), ("mask", result.mask_path),
                        ("polygons", result.polygons_path)):
        if path:
            extra = f" ({result.polygon_count} landslides)" if label == "polygons" else ""
            lines.append(f"{label}: {path}{extra}")
    click.echo("\n".join(lines))


def _log(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


@main.command("vectorize")
@click.argument("mask_path", metavar="MASK", type=_IN)
@click.option("--polygons", type=_OUT, required=True, help="Output polygons (.gpkg, .shp, .geojson, .fgb).")
@click.option("--probability", "probability_path", type=_IN,
              help="Probability raster on the same grid, for the probability attributes.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Used when MASK is a probability raster.")
@click.option("--model-name", default="", help="Value of the 'model' attribute.")
@_vector_options
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def vectorize_command(mask_path: Path, polygons: Path, quiet: bool, **options: Any) -> None:
    """Turn a landslide mask (or probability raster) into polygons with areas."""
    from .core.vectorize import vectorize_mask

    with _engine_run(quiet, "Vectorizing") as (progress, cancel):
        result = vectorize_mask(mask_path, polygons, progress=progress, is_canceled=cancel, **options)
    click.echo(f"polygons: {result.polygons_path} ({result.count} landslides, "
               f"{result.total_area_m2 / 10_000:.2f} ha in all)")


@main.command("models")
@click.option("--card", "card_of", metavar="NAME", help="Print the full model card of NAME.")
def models_command(card_of: str | None) -> None:
    """List the bundled models (with their cards)."""
    from .core.models import bundled_models

    models = bundled_models()
    if card_of:
        for m in models:
            if m.name == card_of:
                click.echo(m.card() or f"{m.name}: no model card.")
                return
        raise click.ClickException(
            f"model {card_of!r} is not bundled; bundled: {', '.join(m.name for m in models) or 'none'}")
    if not models:
        click.echo("No bundled models found.")
        return
    for m in models:
        try:
            c = m.contract
        except LandslideMapperError as exc:
            click.echo(f"{m.name}: INVALID ({exc})")
            continue
        bands = ", ".join(b.name for b in c.bands)
        scores = _scores(c.metrics)
        click.echo(f"{m.name}: {c.title}\n  bands: {bands}\n  pixel size {c.pixel_size_m:g} m, "
                   f"tile {c.tile_size}, overlap {c.overlap}, threshold {c.threshold:g}"
                   + (f"\n  held-out scores: {scores}" if scores else "")
                   + f"\n  file: {m.path}" + (f"\n  card: {m.card_path}" if m.card_path else ""))


def _scores(metrics: Any) -> str:
    flat = {k: v for k, v in dict(metrics).items() if isinstance(v, (int, float))}
    return ", ".join(f"{k} {v:.3f}" for k, v in flat.items())


@main.command("info")
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Print the contract as JSON.")
def info_command(model: str, as_json: bool) -> None:
    """Show the contract of MODEL (a bundled name or an .onnx file)."""
    from .core.contract import read_contract
    from .core.models import resolve_model

    try:
        path = resolve_model(model)
        c = read_contract(path)
    except LandslideMapperError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(c.to_json())
        return
    click.echo(f"{c.name}: {c.title}\nfile: {path}")
    if c.description:
        click.echo(c.description)
    click.echo(f"architecture: {c.architecture or '?'} / encoder {c.encoder or '?'}; output {c.output_kind}")
    click.echo(f"pixel size {c.pixel_size_m:g} m (tolerance {c.pixel_size_tolerance:.0%}); tile "
               f"{c.tile_size}, overlap {c.overlap}; threshold {c.threshold:g}")
    click.echo("bands:")
    for i, b in enumerate(c.bands, start=1):
        click.echo(f"  {i}. {b.name}{' (' + b.description + ')' if b.description else ''}: "
                   f"(raw * {b.scale:g} + {b.offset:g} - {b.mean:g}) / {b.std:g}")
    if c.metrics:
        click.echo("held-out scores: " + json.dumps(dict(c.metrics)))
    if c.training:
        click.echo("training: " + json.dumps(dict(c.training)))


@main.command("contract")
@click.argument("model_path", metavar="MODEL.onnx", type=_IN)
@click.argument("contract_path", metavar="CONTRACT.json", type=_IN)
@click.option("--output", "-o", type=_OUT, help="Write a new file instead of changing MODEL.onnx.")
def contract_command(model_path: Path, contract_path: Path, output: Path | None) -> None:
    """Write a model contract (JSON) into an ONNX file, e.g. a third-party model."""
    from .core.contract import validate, write_contract

    try:
        try:
            doc = json.loads(contract_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise click.ClickException(f"contract file {contract_path}: not valid JSON ({exc})") from None
        contract = validate(doc, source=f"contract file {contract_path}")
        written = write_contract(model_path, contract, output)
    except LandslideMapperError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"contract of {contract.name!r} written to {written}")


# Commands that prepare model-ready inputs (Sentinel-2 stacks, slope), defined in cli_prepare.
from .cli_prepare import COMMANDS as _PREPARE_COMMANDS  # noqa: E402

for _command in _PREPARE_COMMANDS:
    main.add_command(_command)

# The annotator's loop (training chips, training, evaluation), defined in cli_loop.
from .cli_loop import COMMANDS as _LOOP_COMMANDS  # noqa: E402

for _command in _LOOP_COMMANDS:
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    main()
