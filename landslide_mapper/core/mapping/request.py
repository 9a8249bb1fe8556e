"""Pre-flight of a mapping run's request, before any work: outputs, probability format, batch size.

The outputs must be writable, none may be an input (the raster, the DEM, the model file, ...) or
another output (:func:`..paths.check_distinct`), and polygons go to a checked format and, in a
GeoPackage, a layer (:func:`..polygons.vector_io.polygon_target`). Shared by the single-machine run
(:mod:`.engine`) and the split run of :mod:`..batch`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..errors import InputError, OutputError
from ..paths import Place, check_distinct
from ..polygons.vector_io import polygon_target
from ..raster import io as rio
from ..report import check_report_target

PROBABILITY_FORMATS = ("float32", "uint8")


def other_inputs(dem: Any, slope: Any, model: Any) -> tuple[tuple[str, Any], ...]:
    """``(role, path)`` of a run's inputs besides the raster; a bundled model's name is no path."""
    return (("DEM", dem), ("Slope raster", slope),
            ("Model file", model if model is not None and Path(str(model)).is_file() else None))


def polygon_layer(polygons_path: Any, layer_name: str | None) -> str | None:
    """The GeoPackage layer the polygons go to; None without polygons or in a one-layer format."""
    if polygons_path is None or str(polygons_path) == "":
        return None
    return polygon_target(polygons_path, layer_name)[1]


def check_request(input_path, paths: Sequence, probability_format: str,
                   batch_size, *, inputs: Sequence = (),
                   layer_name: str | None = None) -> list[Path | None]:
    """The output targets (normalized), once the outputs, the format and the batch size pass.

    ``inputs``: ``(role, path)`` of the inputs besides the raster (DEM, model file, ...), which no
    output may overwrite either; ``layer_name``: the polygons' GeoPackage layer."""
    targets = check_outputs(input_path, *paths, inputs=inputs, layer_name=layer_name)
    if probability_format not in PROBABILITY_FORMATS:
        raise InputError(
            f"Probability format: expected float32 or uint8, found {probability_format!r}.")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InputError(f"Batch size: expected a whole number >= 1, found {batch_size!r}.")
    return targets


def check_outputs(input_path, *paths, inputs: Sequence = (),
                   layer_name: str | None = None) -> list[Path | None]:
    """Normalize output paths (probability, mask, polygons and, optionally, the HTML report; one
    target per path given) and fail early (before any work) when one cannot be written or would
    overwrite an input or another output (:func:`..paths.check_distinct`); a report needs
    polygons."""
    named = ("Probability raster", "Mask raster", "Polygons", "Report")
    given = {what: p for what, p in zip(named, paths) if p is not None and str(p) != ""}
    if not given:
        raise OutputError("Outputs: none given. Give at least one of probability_path, mask_path "
                          "or polygons_path.")
    if "Report" in given:
        check_report_target(given["Report"])
        if "Polygons" not in given:
            raise OutputError(f"Report {given['Report']}: expected polygons to report on, found "
                              "no polygon output. Give a polygon output too (--polygons, "
                              "OUTPUT_POLYGONS).")
    places = {what: Place(what, *(polygon_target(p, layer_name) if what == "Polygons" else
                                  (Path(p), None))) for what, p in given.items()}
    check_distinct([("Input raster", input_path), *inputs], places.values())
    for what in set(places) - {"Polygons"}:
        rio.check_writable(places[what].path, what)
    return [places[what].path if what in places else None for what in named[:len(paths)]]
