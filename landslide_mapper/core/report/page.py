"""The report as one HTML page: its own styles, pictures inlined as base64 PNG, no links out.

Nothing is fetched when the page is opened (no scripts, style sheets, fonts or images from
elsewhere), so it reads the same offline, attached to an e-mail or printed.
"""

from __future__ import annotations

import base64
import datetime
from dataclasses import dataclass, field
from html import escape
from typing import Any, Sequence

from .inventory import Inventory, Scene
from .powerlaw import MIN_AREAS, PowerLawFit
from .scores import COLUMNS, int8_notes, score_rows, training_facts
from .units import format_area, format_number

#: Rows of the largest-landslides table.
LARGEST_ROWS = 10
#: Tails smaller than this give an uncertain exponent (Clauset et al. 2009 suggest about 50).
FEW_TAIL = 50

STYLE = """
body{font-family:"Segoe UI",Helvetica,Arial,sans-serif;color:#1a1a1a;margin:0;background:#fafafa}
main{max-width:1100px;margin:0 auto;padding:24px 32px 48px;background:#fff}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 10px;border-bottom:1px solid
#ccc;padding-bottom:4px}.sub{color:#555;margin:0 0 18px;font-size:14px}
table{border-collapse:collapse;font-size:14px;margin:6px 0 10px}
th,td{padding:4px 10px;border-bottom:1px solid #e2e2e2;text-align:left;vertical-align:top}
th{background:#f0f0f0;font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
table.facts th{background:none;width:230px;font-weight:600;color:#333}
.key{font-size:22px;font-weight:600}.keys{display:flex;gap:36px;margin:10px 0 4px}
.keys div{min-width:150px}.keys .lbl{font-size:13px;color:#555}
img{max-width:100%;height:auto;display:block;margin:8px 0}
figcaption,.note{font-size:13px;color:#555}code{font-size:13px}
"""


@dataclass
class Report:
    """Everything the page shows, gathered by :func:`.build.build_report`."""

    inventory: Inventory
    scene: Scene
    fit: PowerLawFit | None
    facts: list[tuple[str, str]]
    model: Any = None  # the ModelContract, or None when unknown
    model_file: str | None = None
    threshold: float | None = None
    pictures: dict[str, bytes] = field(default_factory=dict)
    terrain_fields: dict[str, list[str]] = field(default_factory=dict)
    overview_bands: Sequence[int] = ()
    written: str = ""


def render(report: Report) -> str:
    """The whole page."""
    inv, scene = report.inventory, report.scene
    title = f"Landslide inventory — {scene.path.name}"
    model = report.model.name if report.model is not None else "model unknown"
    written = report.written or datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    parts = [
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body><main>",
        f"<h1>{escape(title)}</h1><p class='sub'>Mapped with {escape(model)}; "
        f"written {escape(written)} by Landslide Mapper.</p>",
        _key_numbers(report),
        "<h2>Summary</h2>", _facts_table(report.facts),
        _overview_section(report),
        _area_frequency_section(report),
        _largest_section(inv),
        _terrain_section(report),
        _model_section(report),
        "</main></body></html>\n",
    ]
    return "\n".join(p for p in parts if p)


def _key_numbers(report: Report) -> str:
    inv, fit = report.inventory, report.fit
    keys = [("landslides", format_number(inv.count)),
            (f"total area ({format_number(inv.total_m2 / 1e6, 3)} km²)",
             f"{format_number(inv.total_m2 / 10_000, 2)} ha")]
    if fit is not None:
        keys.append(("power-law exponent β", f"{fit.beta:.2f} ± {fit.beta_error:.2f}"))
        keys.append(("power-law cutoff A_min", format_area(fit.cutoff)))
    cells = "".join(f"<div><div class='key'>{escape(v)}</div><div class='lbl'>{escape(k)}"
                    f"</div></div>" for k, v in keys)
    return f"<div class='keys'>{cells}</div>"


def _facts_table(facts: Sequence[tuple[str, str]]) -> str:
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in facts)
    return f"<table class='facts'>{rows}</table>"


def _img(report: Report, key: str, alt: str) -> str:
    data = report.pictures.get(key)
    if not data:
        return ""
    encoded = base64.b64encode(data).decode("ascii")
    return f"<img src='data:image/png;base64,{encoded}' alt='{escape(alt)}'>"


def _overview_section(report: Report) -> str:
    bands = ", ".join(str(b) for b in report.overview_bands)
    colour = "red, green, blue" if len(report.overview_bands) == 3 else "grey"
    return (f"<h2>Overview</h2><figure>{_img(report, 'overview', 'overview map')}"
            f"<figcaption>Input raster bands {escape(bands)} as {colour}, each stretched between "
            "its 2nd and 98th percentile; mapped landslides outlined in red, the largest "
            f"numbered as in the table below.</figcaption></figure>")


def _area_frequency_section(report: Report) -> str:
    inv, fit = report.inventory, report.fit
    head = "<h2>Area–frequency distribution</h2>"
    if inv.count == 0:
        return head + "<p>No landslide was mapped.</p>"
    if fit is None:
        text = (f"<p>Too few landslides for a power-law fit ({inv.count}; at least {MIN_AREAS} "
                "are needed).</p>")
    else:
        text = (f"<p>Above the cutoff A<sub>min</sub> = {escape(format_area(fit.cutoff))}, the "
                f"probability density of landslide areas follows p(A) ∝ A<sup>−β</sup> with "
                f"<b>β = {fit.beta:.2f} ± {fit.beta_error:.2f}</b> ({fit.n_tail} of {fit.n} "
                f"landslides in the tail; Kolmogorov–Smirnov distance {fit.ks_distance:.3f}). "
                "Inventories of earthquake- and rainfall-triggered landslides typically give β "
                "of 2.3 to 2.5 (Malamud et al. 2004); smaller landslides roll over below "
                "A<sub>min</sub>, also because the smallest scars are near the pixel size."
                + (f" With fewer than {FEW_TAIL} landslides in the tail the exponent is "
                   "uncertain; read it with its error." if fit.n_tail < FEW_TAIL else "")
                + "</p>")
    note = ("<p class='note'>Probability density in logarithmic bins (5 per decade): landslides "
            "in a bin / (all landslides × bin width). β is the maximum-likelihood exponent of "
            "the areas ≥ A<sub>min</sub>, ± its standard error (β − 1)/√n; A<sub>min</sub> is the "
            "mapped area that minimises the Kolmogorov–Smirnov distance between those areas and "
            "the fitted power law (Clauset, Shalizi &amp; Newman 2009, SIAM Review 51:661).</p>")
    return head + text + _img(report, "area_frequency", "area-frequency distribution") + note


def _largest_section(inv: Inventory) -> str:
    if inv.count == 0:
        return ""
    rows = inv.largest(LARGEST_ROWS)
    slope = "slope_mean" in inv.fields()
    heads = ["#", "id", "area (ha)", "area (m²)", "perimeter (m)", "centroid lon (°)",
             "centroid lat (°)", "mean probability"] + (["mean slope (°)"] if slope else [])
    body = []
    for rank, (_, a) in enumerate(rows, 1):
        cells = [str(rank), _text(a.get("id")), format_number(a["area_m2"] / 10_000, 2),
                 format_number(a["area_m2"]), format_number(a.get("perimeter_m"), 1),
                 format_number(a.get("centroid_lon"), 5), format_number(a.get("centroid_lat"), 5),
                 format_number(a.get("prob_mean"), 3)]
        if slope:
            cells.append(format_number(a.get("slope_mean"), 1))
        body.append("<tr>" + "".join(f"<td class='n'>{escape(c)}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th class='n'>{escape(h)}</th>" for h in heads)
    shown = f"The {len(rows)} largest" if inv.count > len(rows) else "All"
    return (f"<h2>Largest landslides</h2><p>{shown} of {inv.count} mapped landslides.</p>"
            f"<table><tr>{head}</tr>{''.join(body)}</table>")


def _terrain_section(report: Report) -> str:
    if not report.terrain_fields:
        return ""
    listed = "; ".join(f"{k}: {', '.join(v)}" for k, v in report.terrain_fields.items())
    return (f"<h2>Terrain of the landslides</h2>"
            f"{_img(report, 'terrain', 'slope and elevation histograms')}"
            f"<p class='note'>From the polygons' attributes ({escape(listed)}).</p>")


def _model_section(report: Report) -> str:
    c = report.model
    head = "<h2>Model</h2>"
    if c is None:
        return head + ("<p>The model's contract was not available: held-out scores not "
                       "recorded.</p>")
    facts = [("name", f"{c.name} — {c.title}")]
    if report.model_file:
        facts.append(("file", report.model_file))
    if c.architecture or c.encoder:
        facts.append(("network", f"{c.architecture or '?'}, encoder {c.encoder or '?'}"))
    facts.append(("input bands", ", ".join(b.name for b in c.bands)))
    facts.append(("pixel size", f"{c.pixel_size_m:g} m"))
    used = report.threshold if report.threshold is not None else c.threshold
    facts.append(("probability threshold", f"{used:g} (the model's default: {c.threshold:g})"))
    if c.licence:
        facts.append(("licence", c.licence))
    facts += training_facts(c.training)
    columns, rows = score_rows(c.metrics)
    if not rows:
        scores = "<p>Held-out scores: not recorded in the model's contract.</p>"
    else:
        heads = "".join(f"<th class='n'>{escape(h)}</th>" for k, h in COLUMNS if k in columns)
        body = "".join(
            f"<tr><td>{escape(name)}</td>" + "".join(
                f"<td class='n'>{escape(_score(values.get(k), k))}</td>" for k in columns)
            + "</tr>" for name, values in rows)
        scores = (f"<p>Held-out scores recorded in the model's contract (pixels at threshold "
                  f"{c.threshold:g}):</p><table><tr><th>held-out set</th>{heads}</tr>{body}"
                  "</table>")
    notes = int8_notes(c.quantization)
    if notes:
        scores += ("<p class='note'>This file is an int8 copy of the model scored above; on "
                   "the same held-out data: " + escape("; ".join(notes)) + ".</p>")
    return head + _facts_table(facts) + scores


def _score(value: Any, key: str) -> str:
    if value is None:
        return "–"
    return format_number(value) if key == "images" else f"{float(value):.3f}"


def _text(value: Any) -> str:
    return "–" if value is None else str(value)
