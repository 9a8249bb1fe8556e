"""``landslide-mapper models``, ``info`` and ``contract``: the model files and their contracts.

    landslide-mapper models                 bundled models and their held-out scores
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
def models_command(card_of: str | None) -> None:
    """List the bundled models (with their cards)."""
    from ..core.models.registry import bundled_models

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


@click.command("contract")
@click.argument("model_path", metavar="MODEL.onnx", type=IN_FILE)
@click.argument("contract_path", metavar="CONTRACT.json", type=IN_FILE)
@click.option("--output", "-o", type=OUT_FILE, help="Write a new file instead of changing MODEL.onnx.")
def contract_command(model_path: Path, contract_path: Path, output: Path | None) -> None:
    """Write a model contract (JSON) into an ONNX file, e.g. a third-party model."""
    from ..core.contract import validate, write_contract

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
