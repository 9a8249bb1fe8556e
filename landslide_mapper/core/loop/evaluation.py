"""Scoring a landslide map against a reference inventory: pixel scores and object matching.

Pixel scores come from confusion counts over the scored pixels (inside ``area``, not nodata in
either input), with the definitions of the training module's metrics:

* precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2 TP / (2 TP + FP + FN),
  accuracy = (TP + TN) / (TP + FP + FN + TN);
* dataset IoU = sum TP / sum (TP + FP + FN) over all images; per-image IoU = mean of each image's
  TP / (TP + FP + FN), leaving out images with nothing in either (0 / 0); a zero denominator
  gives ``zero_division`` (0).

Objects: a predicted polygon *hits* a reference polygon when their IoU (area of intersection over
area of union, both clipped to ``area``) is at least ``iou_threshold``; pairs are matched one to
one, greedily by decreasing IoU. Unmatched predictions are *false alarms*, unmatched reference
polygons *misses*. Object precision = hits / predicted, recall = hits / reference.

Inputs are polygon files or rasters (a 0/1 mask or a probability raster, cut at ``threshold``).
The pixel grid is the predicted raster's, else the reference raster's, else (both polygons) the
polygons' extent at ``pixel_size`` (metres, converted to the CRS's units; a grid over
:data:`MAX_GRID_PIXELS` pixels is refused, so far-apart inputs cannot exhaust memory). A raster on another grid is reprojected onto it
(nearest neighbour). Nodata pixels, and 255 in a uint8 raster without nodata (the chips'
"unknown"), are not scored. The grid is read and counted in strips of rows
(:mod:`.evaluation_scan`): no full-size array is held, whatever the rasters' size.
"""

from __future__ import annotations

import html
import math
import os
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import rasterio
import shapely
from affine import Affine

from ..errors import CancelledError, InputError
from ..raster.io import check_georeferenced, open_input
from .annotations import area_geometry, read_polygon_layer
from .evaluation_outputs import Targets, check_outputs, write_layers, write_report
from .evaluation_scan import Grid as _Grid
from .evaluation_scan import PolygonStrips, RasterStrips, scan
from .metrics import scores

VECTOR_SUFFIXES = {".gpkg", ".shp", ".geojson", ".json", ".fgb", ".kml", ".gml", ".sqlite"}
PIXEL_KEYS = ("precision", "recall", "f1", "accuracy", "iou_dataset", "iou_per_image")
MAX_AUTO_PIXELS = 4000
#: A polygon grid (both inputs polygons) is refused above this many pixels (about 0.4 GB).
MAX_GRID_PIXELS = 25_000_000
#: ... and below this many pixels along its longer side (a pixel size near the extent).
MIN_GRID_PIXELS = 10


# ---------------------------------------------------------------------------------------------
# Pixel scores (the count-based definitions of .metrics, shared with training)


def pixel_scores(pred: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None,
                 zero_division: float = 0.0) -> dict[str, Any]:
    """All pixel scores for one image (H, W) or a stack (N, H, W) of boolean arrays."""
    return scores(pred, truth, valid, zero_division=zero_division)


# ---------------------------------------------------------------------------------------------
# Object matching


@dataclass
class Match:
    """One-to-one matching of predicted and reference polygons."""

    pred_match: list[int]          # index of the matched reference polygon, -1 for none
    pred_iou: list[float]          # IoU with the match, else the best IoU with any reference
    ref_match: list[int]
    ref_iou: list[float]

    @property
    def hits(self) -> int:
        return sum(1 for m in self.pred_match if m >= 0)


def match_polygons(predicted: Sequence[Any], reference: Sequence[Any],
                   iou_threshold: float = 0.5) -> Match:
    """Greedy one-to-one matching by decreasing IoU; pairs below ``iou_threshold`` never match."""
    pred = np.asarray(list(predicted), dtype=object)
    ref = np.asarray(list(reference), dtype=object)
    pred_match, ref_match = [-1] * len(pred), [-1] * len(ref)
    pred_best, ref_best = [0.0] * len(pred), [0.0] * len(ref)
    pairs: list[tuple[float, int, int]] = []
    if len(pred) and len(ref):
        tree = shapely.STRtree(ref)
        pi, ri = tree.query(pred, predicate="intersects")
        if len(pi):
            inter = shapely.area(shapely.intersection(pred[pi], ref[ri]))
            union = shapely.area(pred[pi]) + shapely.area(ref[ri]) - inter
            iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
            for p, r, v in zip(pi.tolist(), ri.tolist(), iou.tolist()):
                pred_best[p] = max(pred_best[p], v)
                ref_best[r] = max(ref_best[r], v)
                if v >= iou_threshold and v > 0:
                    pairs.append((v, p, r))
    pairs.sort(key=lambda t: (-t[0], t[1], t[2]))
    pred_iou, ref_iou = list(pred_best), list(ref_best)
    for v, p, r in pairs:
        if pred_match[p] < 0 and ref_match[r] < 0:
            pred_match[p], ref_match[r] = r, p
            pred_iou[p] = ref_iou[r] = v
    return Match(pred_match, pred_iou, ref_match, ref_iou)


# ---------------------------------------------------------------------------------------------
# Inputs


def is_vector(path: str | os.PathLike[str]) -> bool:
    """A polygon file (by extension, or a ``path|layername=`` source) rather than a raster."""
    text = str(path)
    return "|layername=" in text or Path(text.split("|", 1)[0]).suffix.lower() in VECTOR_SUFFIXES


def _open_raster(path: Any, what: str):
    return open_input(path, what, expected=f"a polygon file ({', '.join(sorted(VECTOR_SUFFIXES))}"
                      ") or a mask/probability raster")


def _raster_grid(path: Any, what: str) -> _Grid:
    with _open_raster(path, what) as ds:
        check_georeferenced(ds, f"{what} {path}")
        return _Grid(ds.crs, ds.transform, ds.width, ds.height)


@dataclass
class _Side:
    """One input: its polygons (grid CRS, clipped to the area) and their ids."""

    polygons: list[Any]
    ids: list[int]
    messages: list[str] = field(default_factory=list)


def _strips(path: Any, grid: _Grid, threshold: float, what: str, stack: ExitStack
            ) -> tuple[Any, list[int] | None, list[str]]:
    """How to read one input on the grid strip by strip; its feature ids (None for a raster)."""
    if is_vector(path):
        layer = read_polygon_layer(path, grid.crs, what=what)
        return PolygonStrips(layer.geometries), list(layer.ids), list(layer.messages)
    ds = stack.enter_context(_open_raster(path, f"{what} raster"))
    check_georeferenced(ds, f"{what} raster {path}")
    strips = RasterStrips(ds, grid, threshold, f"{what} raster {path}")
    stack.callback(strips.close)
    return strips, None, []


def _side(strips: Any, ids: list[int] | None, messages: list[str], clip: Any) -> _Side:
    polys = strips.polygons if ids is None else list(strips.geoms)
    ids = list(range(1, len(polys) + 1)) if ids is None else ids
    return _Side(*_clip(polys, ids, clip), messages)


def _clip(polys: list[Any], ids: list[int], clip: Any) -> tuple[list[Any], list[int]]:
    """Polygons clipped to the evaluated area; those wholly outside are left out."""
    if clip is None:
        return list(polys), list(ids)
    out, out_ids = [], []
    for g, i in zip(polys, ids):
        if g.intersects(clip):
            part = g.intersection(clip)
            if part.area > 0:
                out.append(part)
                out_ids.append(i)
    return out, out_ids


# ---------------------------------------------------------------------------------------------
# Result and report


@dataclass
class EvaluationResult:
    """Pixel scores, object counts and scores, and where the outputs were written."""

    pixel: dict[str, Any]
    hits: int
    misses: int
    false_alarms: int
    predicted_count: int
    reference_count: int
    iou_threshold: float
    threshold: float
    grid: dict[str, Any]
    polygons_path: Path | None = None
    reference_polygons_path: Path | None = None
    report_path: Path | None = None
    messages: list[str] = field(default_factory=list)

    @property
    def object_precision(self) -> float:
        return self.hits / self.predicted_count if self.predicted_count else 0.0

    @property
    def object_recall(self) -> float:
        return self.hits / self.reference_count if self.reference_count else 0.0

    @property
    def object_f1(self) -> float:
        den = self.predicted_count + self.reference_count
        return 2 * self.hits / den if den else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "pixel": self.pixel,
            "objects": {"predicted": self.predicted_count, "reference": self.reference_count,
                        "hits": self.hits, "misses": self.misses,
                        "false_alarms": self.false_alarms, "precision": self.object_precision,
                        "recall": self.object_recall, "f1": self.object_f1,
                        "iou_threshold": self.iou_threshold},
            "threshold": self.threshold,
            "grid": self.grid,
        }

    def _rows(self) -> list[tuple[str, str]]:
        p = self.pixel
        rows = [(f"pixel {k.replace('_', ' ')}", f"{p[k]:.4f}") for k in PIXEL_KEYS]
        rows += [("pixels scored", f"{p['pixels']:,}"),
                 ("TP / FP / FN / TN", f"{p['tp']:,} / {p['fp']:,} / {p['fn']:,} / {p['tn']:,}"),
                 ("predicted polygons", str(self.predicted_count)),
                 ("reference polygons", str(self.reference_count)),
                 (f"hits (IoU >= {self.iou_threshold:g})", str(self.hits)),
                 ("misses", str(self.misses)),
                 ("false alarms", str(self.false_alarms)),
                 ("object precision", f"{self.object_precision:.4f}"),
                 ("object recall", f"{self.object_recall:.4f}"),
                 ("object F1", f"{self.object_f1:.4f}")]
        return rows

    def markdown(self) -> str:
        lines = ["# Landslide map evaluation", "", "| measure | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in self._rows()]
        lines += ["", f"Grid: {self.grid.get('width')} x {self.grid.get('height')} pixels in "
                  f"{self.grid.get('crs')}; probability threshold {self.threshold:g}."]
        lines += [f"- {m}" for m in self.messages]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        body = "".join(f"<tr><td>{html.escape(k)}</td><td style='text-align:right'>"
                       f"{html.escape(v)}</td></tr>" for k, v in self._rows())
        notes = "".join(f"<li>{html.escape(m)}</li>" for m in self.messages)
        return ("<html><head><meta charset='utf-8'><title>Landslide map evaluation</title>"
                "</head><body><h2>Landslide map evaluation</h2>"
                "<table border='1' cellspacing='0' cellpadding='4'><tr><th>measure</th>"
                f"<th>value</th></tr>{body}</table>"
                f"<p>Grid: {self.grid.get('width')} x {self.grid.get('height')} pixels in "
                f"{html.escape(str(self.grid.get('crs')))}; probability threshold "
                f"{self.threshold:g}.</p>" + (f"<ul>{notes}</ul>" if notes else "")
                + "</body></html>\n")


# ---------------------------------------------------------------------------------------------
# The evaluation


def evaluate_landslides(
    predicted: str | os.PathLike[str],
    reference: str | os.PathLike[str],
    *,
    area: Any = None,
    iou_threshold: float = 0.5,
    threshold: float = 0.5,
    out_polygons: str | os.PathLike[str] | None = None,
    report_path: str | os.PathLike[str] | None = None,
    out_reference: str | os.PathLike[str] | None = None,
    pixel_size: float | None = None,
    layer_name: str | None = None,
    progress: Callable[[float], None] | None = None,
    is_canceled: Callable[[], bool] | None = None,
) -> EvaluationResult:
    """Score ``predicted`` against ``reference`` inside ``area`` (polygon file or extent).

    ``out_polygons``: predicted polygons with ``match_id``, ``match_iou``, ``status``
    (hit/false_alarm); the reference polygons (status hit/miss) go to ``out_reference``, or,
    when that is not given, to a ``reference`` layer of an ``out_polygons`` GeoPackage (layers
    ``layer_name`` and ``layer_name_reference`` when named; the file's other layers are kept).
    ``report_path``: ``.html`` or markdown (and the numbers as ``.json`` beside it). No output
    may be an input or another output (:mod:`.evaluation_outputs`).
    """
    progress = progress or (lambda f: None)
    is_canceled = is_canceled or (lambda: False)
    if not 0 < iou_threshold <= 1:
        raise InputError(f"IoU threshold: expected a value in (0, 1], found {iou_threshold}.")
    targets = check_outputs(predicted, reference, area, out_polygons=out_polygons,
                            out_reference=out_reference, report_path=report_path,
                            layer_name=layer_name)
    messages: list[str] = []
    if not is_vector(predicted):
        grid = _raster_grid(predicted, "Predicted raster")
    elif not is_vector(reference):
        grid = _raster_grid(reference, "Reference raster")
    else:
        grid = _polygon_grid(reference, predicted, area, pixel_size, messages)
    clip = None
    if area is not None:
        clip, area_msgs = area_geometry(area, grid.crs, what="Evaluation area")
        messages += area_msgs
    progress(0.1)
    with ExitStack() as stack:
        pred_in = _strips(predicted, grid, threshold, "Predicted", stack)
        ref_in = _strips(reference, grid, threshold, "Reference", stack)
        counts = scan(grid, pred_in[0], ref_in[0], clip, progress, is_canceled)
    pred, ref = _side(*pred_in, clip), _side(*ref_in, clip)
    messages += pred.messages + ref.messages
    if not counts.tp + counts.fp + counts.fn + counts.tn:
        raise InputError(
            f"Evaluation of {predicted} against {reference}: no pixel is scored (the inputs and "
            "the area do not overlap, or every pixel is nodata). Check the area, the CRSs and "
            "the extents.")
    pixel = counts.summary()
    if is_canceled():
        raise CancelledError("Evaluation cancelled; nothing was written.")
    progress(0.7)
    match = match_polygons(pred.polygons, ref.polygons, iou_threshold)
    hits = match.hits
    result = EvaluationResult(
        pixel=pixel, hits=hits, misses=len(ref.polygons) - hits,
        false_alarms=len(pred.polygons) - hits, predicted_count=len(pred.polygons),
        reference_count=len(ref.polygons), iou_threshold=iou_threshold, threshold=threshold,
        grid={"crs": grid.crs.to_string() if hasattr(grid.crs, "to_string") else str(grid.crs),
              "width": grid.width, "height": grid.height,
              "pixel_size": [abs(grid.transform.a), abs(grid.transform.e)]},
        messages=messages)
    if targets.polygons is not None:
        _write_matches(targets, grid.crs, pred, ref, match)
        result.polygons_path = targets.polygons[0]
    if targets.reference is not None:
        write_layers(targets.reference[0], grid.crs, [(targets.reference[1], _features(
            ref, match.ref_match, match.ref_iou, pred.ids, "miss"))], "Reference polygons output")
        result.reference_polygons_path = targets.reference[0]
    if targets.report is not None:
        write_report(targets, result)
        result.report_path = targets.report
    progress(1.0)
    return result


def _polygon_grid(reference: Any, predicted: Any, area: Any, pixel_size: float | None,
                  messages: list[str]) -> _Grid:
    """Both inputs polygons: a grid over the reference's (or the area's) extent."""
    ref_layer = read_polygon_layer(reference, _layer_crs(reference), what="Reference polygons")
    crs = rasterio.crs.CRS.from_wkt(ref_layer_crs_wkt(reference))
    extent_geoms = list(ref_layer.geometries)
    if area is not None:
        g, _ = area_geometry(area, crs, what="Evaluation area")
        extent_geoms = [g]
    else:
        extent_geoms += read_polygon_layer(predicted, crs, what="Predicted polygons").geometries
    if not extent_geoms:
        raise InputError(f"Reference polygons {reference}: holds no polygons and no area is "
                         "given; there is nothing to evaluate. Give the evaluation area.")
    x0, y0, x1, y1 = shapely.union_all(extent_geoms).bounds
    if pixel_size is None:
        px = py = max(x1 - x0, y1 - y0) / MAX_AUTO_PIXELS
        messages.append(f"Both inputs are polygons: rasterized at {px:.6g} CRS units a "
                        "pixel (give a pixel size in metres to choose it).")
    else:
        px, py = _pixel_in_crs(crs, pixel_size, (y0 + y1) / 2)
    width = max(1, math.ceil((x1 - x0) / px))
    height = max(1, math.ceil((y1 - y0) / py))
    if pixel_size is not None:
        _check_grid(width, height, pixel_size, ref_layer.geometries, area, predicted, crs)
    return _Grid(crs, Affine(px, 0, x0, 0, -py, y1), width, height)


def _pixel_in_crs(crs: Any, metres: float, latitude: float) -> tuple[float, float]:
    """A pixel size in metres as (x, y) CRS units; in a geographic CRS, at ``latitude``."""
    from ..polygons.geometry import GroundMeasure

    if not (isinstance(metres, (int, float)) and math.isfinite(metres) and metres > 0):
        raise InputError(f"Pixel size: expected a number of metres > 0, found {metres!r}.")
    measure = GroundMeasure.from_crs(crs, source="Reference polygons")
    if not measure.geodesic:
        return metres / measure.unit_m, metres / measure.unit_m
    lat = min(max(latitude, -89.0), 89.0)
    m_lat = measure.geod.inv(0.0, lat - 0.5, 0.0, lat + 0.5)[2]
    m_lon = max(measure.geod.inv(-0.5, lat, 0.5, lat)[2], 1e-3)
    return metres / m_lon / measure.unit_m, metres / m_lat / measure.unit_m


def _check_grid(width: int, height: int, metres: float, reference: list[Any], area: Any,
                predicted: Any, crs: Any) -> None:
    """Refuse a polygon grid too large for memory, or so coarse it is one or two pixels."""
    if width * height > MAX_GRID_PIXELS:
        apart = ""
        if area is None and reference:
            pred = read_polygon_layer(predicted, crs, what="Predicted polygons").geometries
            ref_box = shapely.box(*shapely.union_all(reference).bounds)
            if pred and not ref_box.intersects(shapely.box(*shapely.union_all(pred).bounds)):
                apart = (" The predicted and reference polygons do not overlap at all: check "
                         "that both are the same place (their CRSs and extents).")
        side = metres * math.sqrt(width * height / MAX_GRID_PIXELS)
        raise InputError(
            f"Pixel size {metres:g} m: the polygons' extent would make a grid of {width} x "
            f"{height} pixels, expected at most {MAX_GRID_PIXELS:,} (memory). Give a pixel size "
            f"of at least {side:.3g} m, or an evaluation area around the mapped region.{apart}")
    if max(width, height) < MIN_GRID_PIXELS:
        raise InputError(
            f"Pixel size {metres:g} m: expected a pixel size well below the polygons' extent, "
            f"found a grid of only {width} x {height} pixels. Give a smaller pixel size (in "
            "metres) or none to pick one.")


def _layer_crs(path: Any) -> Any:
    return rasterio.crs.CRS.from_wkt(ref_layer_crs_wkt(path))


def ref_layer_crs_wkt(path: Any) -> str:
    """The CRS (WKT) of a polygon file; refused when it has none (a grid needs one)."""
    import fiona

    text = str(path)
    layer = None
    if "|layername=" in text:
        text, layer = text.split("|layername=", 1)
    if not Path(text).exists():
        raise InputError(f"Reference polygons {text}: file not found.")
    try:
        src = fiona.open(text, layer=layer) if layer else fiona.open(text)
    except Exception as exc:  # fiona raises several unrelated types
        raise InputError(f"Reference polygons {text}: expected a polygon file OGR can read, "
                         f"found a file it cannot open ({exc}).") from None
    with src:
        if not src.crs_wkt:
            raise InputError(f"Reference polygons {text}: has no CRS; assign one (e.g. 'Assign "
                             "projection' in QGIS) and retry.")
        return src.crs_wkt


def _features(side: _Side, matches: list[int], ious: list[float], other_ids: list[int],
              unmatched: str) -> list[tuple[Any, dict[str, Any]]]:
    return [(g, {"id": side.ids[k], "status": "hit" if m >= 0 else unmatched,
                 "match_id": other_ids[m] if m >= 0 else -1, "match_iou": round(float(v), 6)})
            for k, (g, m, v) in enumerate(zip(side.polygons, matches, ious))]


def _write_matches(targets: Targets, crs: Any, pred: _Side, ref: _Side, match: Match) -> None:
    path, layer = targets.polygons
    layers = [(layer, _features(pred, match.pred_match, match.pred_iou, ref.ids, "false_alarm"))]
    if targets.reference_layer:
        layers.append((targets.reference_layer, _features(ref, match.ref_match, match.ref_iou,
                                                          pred.ids, "miss")))
    write_layers(path, crs, layers)
