"""The report's pictures, drawn with matplotlib's Agg canvas into PNG bytes.

Figures are built with matplotlib's object interface (``Figure`` + ``FigureCanvasAgg``), never
``pyplot``: no GUI backend is chosen or touched, so drawing is the same in a terminal, on a server
and inside QGIS (whose own matplotlib backend is left as it is).
"""

from __future__ import annotations

import io
import math
from typing import Any, Sequence

import numpy as np

from .overview import Overview
from .powerlaw import PowerLawFit, log_binned_density
from .units import format_area

DPI = 110
WIDTH_IN = 10.0
OUTLINE = "#ff2a2a"
FILL = (1.0, 0.16, 0.16, 0.18)
MARKERS = "#1f4e79"
FIT = "#d62728"


def _figure(width_in: float, height_in: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Any) -> bytes:
    """The figure as PNG (metadata without the software's version, so output is reproducible)."""
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI, metadata={"Software": None})
    return out.getvalue()


def overview_figure(overview: Overview, geometries: Sequence[Any], *, geographic: bool,
                    labels: Sequence[tuple[int, Any]] = ()) -> bytes:
    """The scene with the landslide polygons outlined and ``labels`` (rank, geometry) numbered."""
    import shapely
    from matplotlib import patheffects
    from matplotlib.collections import LineCollection, PolyCollection
    from matplotlib.patches import Patch

    left, bottom, right, top = overview.bounds
    cols = overview.rgba.shape[1]
    # A lon/lat picture is stretched north-south so a metre looks the same both ways.
    aspect = 1.0 / max(0.05, math.cos(math.radians((top + bottom) / 2))) if geographic else 1.0
    ratio = (top - bottom) * aspect / max(right - left, 1e-12)
    plot_w = WIDTH_IN - 1.3
    fig = _figure(WIDTH_IN, min(13.0, max(3.0, plot_w * ratio + 1.0)))
    ax = fig.add_axes([0.11, 0.08, 0.86, 0.9])
    ax.set_facecolor("#d9d9d9")
    ax.imshow(overview.rgba, extent=(left, right, bottom, top), interpolation="bilinear",
              origin="upper")
    tolerance = 0.5 * (right - left) / cols
    simple = shapely.simplify(np.asarray(list(geometries), dtype=object), tolerance,
                              preserve_topology=True) if len(geometries) else []
    shells, rings = [], []
    for g in simple:
        for part in shapely.get_parts(g):
            if part.is_empty or part.geom_type != "Polygon":
                continue
            shells.append(np.asarray(part.exterior.coords)[:, :2])
            rings += [np.asarray(r.coords)[:, :2] for r in (part.exterior, *part.interiors)]
    ax.add_collection(PolyCollection(shells, facecolors=FILL,
                                     edgecolors="none"))
    ax.add_collection(LineCollection(rings, colors=OUTLINE, linewidths=0.9))
    halo = [patheffects.withStroke(linewidth=3, foreground="black")]
    for rank, geom in labels:
        p = geom.representative_point()
        ax.annotate(str(rank), (p.x, p.y), xytext=(4, 4), textcoords="offset points",
                    color="white", fontsize=9, fontweight="bold", path_effects=halo)
    ax.set_xlim(left, right)
    ax.set_ylim(bottom, top)
    ax.set_aspect(aspect)
    unit = ("Longitude (°)", "Latitude (°)") if geographic else ("Easting (m)", "Northing (m)")
    ax.set_xlabel(unit[0])
    ax.set_ylabel(unit[1])
    ax.ticklabel_format(useOffset=False, style="plain")
    ax.tick_params(labelsize=8)
    ax.legend(handles=[Patch(facecolor=FILL, edgecolor=OUTLINE,
                             label=f"mapped landslides ({len(geometries)})")],
              loc="lower right", fontsize=9, framealpha=0.85)
    return png_bytes(fig)


def area_frequency_figure(areas_m2: np.ndarray, fit: PowerLawFit | None) -> bytes:
    """Probability density of landslide areas in logarithmic bins (log-log), with the fitted
    power-law tail and its cutoff."""
    fig = _figure(8.0, 5.2)
    ax = fig.add_axes([0.12, 0.12, 0.84, 0.8])
    centres, density, _ = log_binned_density(areas_m2)
    ax.loglog(centres, density, "o", color=MARKERS, markersize=6, label="mapped landslides")
    if fit is not None:
        span = np.geomspace(fit.cutoff, max(float(np.max(areas_m2)), fit.cutoff * 1.01), 50)
        label = (f"power law: β = {fit.beta:.2f} ± {fit.beta_error:.2f}, "
                 f"$A_{{min}}$ = {format_area(fit.cutoff)} ({fit.n_tail} of {fit.n})")
        ax.loglog(span, fit.density(span), "-", color=FIT, linewidth=2, label=label)
        ax.axvline(fit.cutoff, color=FIT, linestyle=":", linewidth=1.2)
    ax.set_xlabel("Landslide area A (m²)")
    ax.set_ylabel("Probability density p(A) (1/m²)")
    ax.grid(True, which="major", color="#dddddd", linewidth=0.6)
    ax.legend(loc="lower left", fontsize=9, framealpha=0.9)
    return png_bytes(fig)


def histograms_figure(panels: Sequence[tuple[str, dict[str, np.ndarray], str]]) -> bytes:
    """Side-by-side histograms: per panel ``(x label, {series name: values}, unit)``."""
    fig = _figure(WIDTH_IN, 3.8)
    colours = ("#8c564b", "#1f77b4", "#2ca02c")
    width = 0.84 / len(panels)
    for k, (xlabel, series, unit) in enumerate(panels):
        ax = fig.add_axes([0.08 + k * (width + 0.04), 0.16, width - 0.04, 0.68])
        joined = np.concatenate([v for v in series.values() if v.size]) if series else np.zeros(0)
        edges = _bins(joined, unit)
        for (name, values), colour in zip(series.items(), colours):
            ax.hist(values, bins=edges, histtype="step" if len(series) > 1 else "stepfilled",
                    color=colour, alpha=1.0 if len(series) > 1 else 0.75, linewidth=1.6,
                    label=f"{name} (n = {values.size})")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Landslides")
        ax.grid(True, axis="y", color="#dddddd", linewidth=0.6)
        ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.01), frameon=False,
                  ncol=len(series))
    return png_bytes(fig)


def _bins(values: np.ndarray, unit: str) -> np.ndarray:
    """Histogram edges: 2.5-degree steps for slopes, about 20 round steps otherwise."""
    if values.size == 0:
        return np.linspace(0, 1, 2)
    lo, hi = float(values.min()), float(values.max())
    if unit == "°":
        return np.arange(2.5 * math.floor(lo / 2.5), 2.5 * math.floor(hi / 2.5) + 2.6, 2.5)
    step = _round_step((hi - lo) / 20 if hi > lo else 1.0)
    return np.arange(step * math.floor(lo / step), step * math.floor(hi / step) + 1.01 * step,
                     step)


def _round_step(raw: float) -> float:
    """1, 2 or 5 times a power of ten, at least ``raw``."""
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
