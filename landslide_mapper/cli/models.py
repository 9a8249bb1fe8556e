"""``landslide-mapper models``, ``info`` and ``contract``: the model files and their contracts.

    landslide-mapper models                 bundled models and their held-out scores
    landslide-mapper models --for SCENE.tif the bundled models ranked by how they fit SCENE.tif
    landslide-mapper info MODEL.onnx        a model's contract
    landslide-mapper contract THIRD_PARTY.onnx CONTRACT.json -o MODEL.onnx
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..core.errors import LandslideMapperError
from .options import IN_FILE, OUT_FILE


@click.command("models")
@click.option("--card", "card_of", metavar="NAME", help="Print the full model card of NAME.")
@click.option("--for", "for_raster", type=IN_FILE, metavar="RASTER",
              help="Rank the bundled models by how they fit RASTER (bands, pixel size), with "
              "the reasons: what 'map --model auto' chooses.")
@click.option("--dem", is_flag=True, help="With --for: a DEM will be given (slope/elevation "
              "bands can be derived).")
def models_command(card_of: str | None, for_raster: Path | None, dem: bool) -> None:
    """List the bundled models (with their cards)."""
    from ..core.models.registry import bundled_models

    if for_raster is not None:
        _rank_for(for_raster, dem)
        return
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


def _rank_for(raster: Path, dem: bool) -> None:
    from ..core.mapping.model_choice import choose_model

    try:
        choice = choose_model(raster, terrain_from_dem=dem)
    except LandslideMapperError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{choice.facts.summary()}:")
    for k, fit in enumerate(choice.ranking, 1):
        mark = " (auto's choice)" if fit is choice.chosen else ""
        click.echo(f"{k}. {fit.summary()}{mark}")


def _scores(metrics: Any) -> str:
    flat = {k: v for k, v in dict(metrics).items() if isinstance(v, (int, float))}
    return ", ".join(f"{k} {v:.3f}" for k, v in flat.items())


@click.command("info")
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Print the contract as JSON.")
def info_command(model: str, as_json: bool) -> None:
    """Show the contract of MODEL (a bundled name or an .onnx file)."""
    from ..core.contract import read_contract
    from ..core.models.registry import resolve_model

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
    if c.quantization:
        click.echo("quantization: " + json.dumps(dict(c.quantization)))


@click.command("contract")
@click.argument("model_path", metavar="MODEL.onnx", type=IN_FILE)
@click.argument("contract_path", metavar="CONTRACT.json", type=IN_FILE)
@click.option("--output", "-o", type=OUT_FILE, help="Write a new file instead of changing MODEL.onnx.")
def contract_command(model_path: Path, contract_path: Path, output: Path | None) -> None:
    """Write a model contract (JSON) into an ONNX file, e.g. a third-party model."""
    from ..core.contract import validate, write_contract
    from ..core.paths import check_distinct

    try:
        # -o MODEL.onnx is the same as no -o: the contract is written into the model in place.
        check_distinct([("Contract file", contract_path)], [("Model output", output)])
        try:
            doc = json.loads(contract_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise click.ClickException(f"contract file {contract_path}: not valid JSON ({exc})") from None
        except UnicodeDecodeError as exc:
            raise click.ClickException(
                f"contract file {contract_path}: expected JSON text in UTF-8, found a byte "
                f"{exc.object[exc.start]:#04x} at position {exc.start} that is not UTF-8 (a "
                "binary file, or text saved in another encoding: save it as UTF-8).") from None
        contract = validate(doc, source=f"contract file {contract_path}")
        written = write_contract(model_path, contract, output)
    except LandslideMapperError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"contract of {contract.name!r} written to {written}")
