"""Gathering a report: the polygons read back, the scene, the fit, the pictures; then the page.

:func:`check_report_target` runs before a mapping run does any work; :func:`write_report` writes
the page to the path it is given; :class:`StagedReport` gives it a temporary name and publishes it
with a run's other outputs when the whole run succeeded; :func:`publish_report` writes and
publishes in one go.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import staging
from ..contract import ModelContract
from ..errors import OutputError
from .inventory import ELEVATION_FIELDS, SLOPE_FIELDS, read_inventory, read_scene
from .overview import read_overview, rgb_band_indexes
from .page import LARGEST_ROWS, Report, render
from .powerlaw import fit_power_law
from .units import format_area, format_number

#: File name endings a report may have.
REPORT_SUFFIXES = (".html", ".htm")


@dataclass(frozen=True)
class ReportRun:
    """What a report is about: the input raster, the polygons written from it, and the model.

    ``band_indexes``: the raster band feeding each model band (the overview shows the model's red,
    green and blue bands when it has them); ``threshold``: the one the run used."""

    raster: Path
    polygons: Path
    layer: str | None = None
    contract: ModelContract | None = None
    model_file: Path | None = None
    band_indexes: Sequence[int] | None = None
    threshold: float | None = None
    dem: Path | None = None


def check_report_target(path: Any, what: str = "Report") -> Path:
    """Refuse, before any work, a report path that is not an .html file, or a report that cannot
    be drawn (matplotlib missing). Whether it may be written there is checked with the other
    outputs."""
    path = Path(path)
    if path.suffix.lower() not in REPORT_SUFFIXES:
        raise OutputError(f"{what} {path}: expected an .html file name, found "
                          f"{path.suffix or 'no extension'!r}. Name it e.g. report.html.")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise OutputError(f"{what} {path}: drawing its charts needs the Python package "
                          "matplotlib, which is not installed. Install it (pip install "
                          "matplotlib, or in QGIS: Install Python packages), or leave the report "
                          "out.") from None
    return path


def build_report(run: ReportRun) -> str:
    """The report's HTML."""
    from .figures import area_frequency_figure, histograms_figure, overview_figure

    shown = staging.published_path(run.polygons)
    inventory = read_inventory(run.polygons, run.layer, source=f"Polygons {shown}")
    scene = read_scene(run.raster)
    names = [(b.name, *b.aliases) for b in run.contract.bands] if run.contract else None
    bands = rgb_band_indexes(names, run.band_indexes, scene.count)
    overview = read_overview(run.raster, bands)
    fit = fit_power_law(inventory.areas_m2)
    labels = [(rank, inventory.geometries[i])
              for rank, (i, _) in enumerate(inventory.largest(LARGEST_ROWS), 1)]
    pictures = {"overview": overview_figure(overview, inventory.geometries,
                                            geographic=scene.geographic, labels=labels)}
    if inventory.count:
        pictures["area_frequency"] = area_frequency_figure(inventory.areas_m2, fit)
    terrain = _terrain_panels(inventory)
    if terrain:
        pictures["terrain"] = histograms_figure([p for p, _ in terrain.values()])
    facts = _facts(run, inventory, scene, fit, overview.valid_fraction, shown)
    return render(Report(
        inventory=inventory, scene=scene, fit=fit, facts=facts, model=run.contract,
        model_file=str(run.model_file) if run.model_file else None, threshold=run.threshold,
        pictures=pictures, terrain_fields={k: v for k, (_, v) in terrain.items()},
        overview_bands=bands))


def write_report(path: Any, run: ReportRun) -> Path:
    """Write the report of ``run`` to ``path`` as it is (a temporary name the caller publishes)."""
    text = build_report(run)
    with staging.writing("Report", path):
        Path(path).write_text(text, encoding="utf-8")
    return Path(path)


def publish_report(target: Any, run: ReportRun) -> Path:
    """Write the report under a temporary name and publish it at ``target``."""
    return staging.write_text(check_report_target(target), build_report(run), "Report")


class StagedReport:
    """A mapping run's report: written under a temporary name beside ``target`` from the staged
    polygons (:meth:`write`), then published or discarded with the run's other outputs. With
    ``target`` None every call does nothing. ``raster``: the input as the user gave it."""

    def __init__(self, target: Path | None, raster: Any):
        self.target, self.raster, self.tmp = target, raster, None
        self.run: dict[str, Any] = {}

    def about(self, contract: ModelContract, model_file: Any, band_indexes: Sequence[int],
              threshold: float, dem: Any = None) -> "StagedReport":
        """The run's model, bands, threshold and DEM, once known; returns itself."""
        self.run = dict(contract=contract, model_file=Path(model_file) if model_file else None,
                        band_indexes=list(band_indexes), threshold=threshold,
                        dem=Path(dem) if dem is not None else None)
        return self

    def write(self, polygons: Path | None, layer: str | None = None) -> None:
        if self.target is None or polygons is None:
            return
        self.tmp = staging.temporary_sibling(self.target)
        write_report(self.tmp, ReportRun(Path(self.raster), Path(polygons), layer, **self.run))

    def publish(self) -> None:
        if self.tmp is not None:
            staging.publish(self.tmp, self.target, "Report")
            self.tmp = None

    def discard(self) -> None:
        if self.tmp is not None:
            staging.remove_path(self.tmp)
            self.tmp = None


def _terrain_panels(inventory) -> dict[str, tuple[tuple[str, dict, str], list[str]]]:
    """Histogram panels of the slope and elevation attributes the polygons carry."""
    fields = inventory.fields()
    panels = {}
    for concern, names, label, unit in (
            ("slope", SLOPE_FIELDS, "Slope (°)", "°"),
            ("elevation", ELEVATION_FIELDS, "Elevation (m)", "m")):
        present = [n for n in names if n in fields and inventory.values(n).size]
        if concern == "slope":
            present = present[:1]  # the mean slope; the steepest would crowd it
        if present:
            series = {f"{names[n]} ({n})": inventory.values(n) for n in present}
            panels[concern] = ((label, series, unit), present)
    return panels


def _facts(run: ReportRun, inventory, scene, fit, valid_fraction: float,
           polygons: Path) -> list[tuple[str, str]]:
    """The summary table: the inventory's numbers, the scene, the inputs."""
    total = inventory.total_m2
    facts = [("landslides mapped", format_number(inventory.count)),
             ("total landslide area", f"{format_number(total / 10_000, 2)} ha = "
                                      f"{format_number(total / 1e6, 3)} km²")]
    mapped = scene.area_m2 * valid_fraction
    if mapped > 0:
        facts.append(("share of the mapped scene", f"{100 * total / mapped:.2f} % of "
                                                   f"{format_number(mapped / 1e6, 1)} km²"))
    if inventory.count:
        a = inventory.areas_m2
        facts.append(("landslide areas", f"smallest {format_area(float(a.min()))}, median "
                                         f"{format_area(float(np.median(a)))}, largest "
                                         f"{format_area(float(a.max()))}"))
    facts.append(("power-law tail", f"β = {fit.beta:.2f} ± {fit.beta_error:.2f} above A_min = "
                                    f"{format_area(fit.cutoff)} ({fit.n_tail} landslides)"
                  if fit else "not fitted (too few landslides)"))
    facts += _scene_facts(scene, run.dem)
    facts.append(("polygons", f"{polygons}" + (f" (layer {run.layer})" if run.layer else "")))
    if run.contract is not None:
        facts.append(("model", f"{run.contract.name} — {run.contract.title}"))
    return facts


def _scene_facts(scene, dem: Path | None) -> list[tuple[str, str]]:
    w, s, e, n = scene.lonlat_bounds
    px, py = scene.pixel_size_m
    crs = f"{scene.crs_name}" + (f" (EPSG:{scene.epsg})" if scene.epsg else "")
    date = (f"{scene.date} (from the {scene.date_source})" if scene.date else
            "not recorded in the raster")
    facts = [("input raster", str(scene.path)),
             ("grid", f"{format_number(scene.width)} × {format_number(scene.height)} pixels, "
                      f"{scene.count} band{'s' if scene.count != 1 else ''}, pixel size "
                      f"{px:.1f} × {py:.1f} m"),
             ("coordinate reference system", crs),
             ("extent", f"{_lon(w)} to {_lon(e)}, {_lat(s)} to {_lat(n)} "
                        f"({format_number(scene.area_m2 / 1e6, 1)} km²)"),
             ("acquisition date", date)]
    if dem is not None:
        facts.append(("DEM", str(dem)))
    return facts


def _lon(v: float) -> str:
    return f"{abs(v):.4f}° {'E' if v >= 0 else 'W'}" if math.isfinite(v) else "?"


def _lat(v: float) -> str:
    return f"{abs(v):.4f}° {'N' if v >= 0 else 'S'}" if math.isfinite(v) else "?"
