"""What an evaluation writes: matched polygon layers and the report, checked before any work.

:func:`check_outputs` runs first: every output must be writable and none may be an input or another
output (:func:`...paths.check_distinct`; the report's ``.json`` twin counts too). Polygon layers go
to a GeoPackage's layers ``predicted`` and ``reference`` (or the names asked for), keeping the
file's other layers, or to one-layer files; all are written under temporary names and published
when complete (:func:`...polygons.vector_io.publish_polygons`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import staging
from ..errors import InputError, OutputError, brief_message
from ..paths import Place, check_distinct, split_layer
from ..polygons.vector_io import polygon_target

PREDICTED_LAYER = "predicted"
REFERENCE_LAYER = "reference"
SCHEMA = {"geometry": "MultiPolygon",
          "properties": {"id": "int", "status": "str:16", "match_id": "int", "match_iou": "float",
                         "area_m2": "float"}}


@dataclass(frozen=True)
class Targets:
    """Where an evaluation writes: (path, layer) of each polygon output, and the report."""

    polygons: tuple[Path, str | None] | None
    reference_layer: str | None  # the reference layer beside the predicted one in a GeoPackage
    reference: tuple[Path, str | None] | None
    report: Path | None

    @property
    def report_json(self) -> Path | None:
        if self.report is None or self.report.suffix.lower() == ".json":
            return None
        return self.report.with_suffix(".json")


def _target(path: Any, layer_name: str | None, default: str) -> tuple[Path, str | None]:
    text, named = split_layer(path)
    gpkg = Path(text).suffix.lower() == ".gpkg"
    return polygon_target(text, layer_name or named or (default if gpkg else None))


def check_outputs(predicted: Any, reference: Any, area: Any, *, out_polygons: Any,
                  out_reference: Any, report_path: Any, layer_name: str | None) -> Targets:
    """The evaluation's outputs, refused before any work when one cannot be written or would land
    on an input or on another output."""
    polygons = _target(out_polygons, layer_name, PREDICTED_LAYER) if out_polygons else None
    ref_layer = None
    if polygons is not None and polygons[1] is not None and not out_reference:
        ref_layer = f"{layer_name}_{REFERENCE_LAYER}" if layer_name else REFERENCE_LAYER
    reference_out = _target(out_reference, None, REFERENCE_LAYER) if out_reference else None
    report = Path(report_path) if report_path else None
    if report is not None and not report.parent.is_dir():
        raise OutputError(f"Report {report}: the folder {report.parent} does not exist. Create it "
                          "or choose another path.")
    targets = Targets(polygons, ref_layer, reference_out, report)
    outputs = [Place("Evaluation polygons", *polygons) if polygons else None,
               Place("Evaluation reference layer", polygons[0], ref_layer) if ref_layer else None,
               Place("Reference polygons output", *reference_out) if reference_out else None,
               Place("Report", report) if report else None,
               Place("Report JSON", targets.report_json) if targets.report_json else None]
    inputs = [("Predicted", predicted), ("Reference", reference)]
    if area is not None and not isinstance(area, (tuple, list)):
        inputs.append(("Evaluation area", area))
    check_distinct(inputs, [o for o in outputs if o is not None])
    return targets


def write_layers(path: Path, crs: Any, layers: list[tuple[str | None, list[tuple[Any, dict]]]],
                 what: str = "Evaluation polygons") -> None:
    """Write one or more layers under a temporary name, then publish them at ``path``."""
    import fiona

    from ..polygons.geometry import GroundMeasure
    from ..polygons.vector_io import _multipolygon_dicts, driver_for, publish_polygons

    driver = driver_for(path)
    measure = GroundMeasure.from_crs(crs, source="evaluation grid")
    tmp = staging.temporary_sibling(path)
    crs_wkt = crs.to_wkt() if hasattr(crs, "to_wkt") else str(crs)
    try:
        for name, features in layers:
            kwargs = {"layer": name} if driver == "GPKG" else {}
            geoms = [g for g, _ in features]
            areas = measure.area(geoms) if geoms else []
            with fiona.open(tmp, "w", driver=driver, schema=SCHEMA, crs_wkt=crs_wkt,
                            **kwargs) as dst:
                dst.writerecords([
                    {"geometry": gd, "properties": dict(attrs, area_m2=float(a))}
                    for gd, (_, attrs), a in zip(_multipolygon_dicts(geoms), features, areas)])
        publish_polygons(tmp, path, [n for n, _ in layers if n] if driver == "GPKG" else [])
    except Exception as exc:
        if isinstance(exc, (OutputError, InputError)):
            raise
        raise staging.write_failure(what, path, f"a write that failed ({brief_message(exc)})") \
            from None
    finally:
        for part in tmp.parent.glob(f"{tmp.stem}*"):
            part.unlink(missing_ok=True)


def write_report(targets: Targets, result: Any) -> None:
    """The report (HTML, else markdown) and its numbers as JSON beside it."""
    report = targets.report
    html = report.suffix.lower() in (".html", ".htm")
    staging.write_text(report, result.html() if html else result.markdown(), "Report")
    if targets.report_json is not None:
        staging.write_text(targets.report_json, json.dumps(result.as_dict(), indent=1),
                           "Report JSON")
