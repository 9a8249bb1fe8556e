"""What a worker does for one raster of a batch, and the record that says its outputs are complete.

Each raster's outputs go to ``DIR/NAME/`` (``probability.tif``, ``mask.tif``, ``landslides.gpkg``),
written by :func:`~landslide_mapper.core.mapping.engine.map_landslides` with its guarantees
(atomic outputs, bounded memory, cancel). ``result.json`` is written last, staged like every output
(:mod:`..staging`): it holds the outcome and the settings of the run (raster, its size and time
stamp, model, options, and the size and time stamp of a DEM or slope raster), so a re-run skips a
raster whose record matches and whose outputs are all there.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .. import staging
from ..errors import CancelledError, LandslideMapperError

RECORD = "result.json"
OUTPUTS = {"probability": "probability.tif", "mask": "mask.tif", "polygons": "landslides.gpkg"}
DONE, SKIPPED, FAILED, CANCELLED = "done", "skipped", "failed", "cancelled"


@dataclass
class RasterOutcome:
    """One raster's line of the batch summary."""

    name: str
    source: str
    status: str
    polygons: int = 0
    area_m2: float = 0.0
    seconds: float = 0.0
    error: str | None = None
    folder: str | None = None
    started: float = 0.0  # when its worker began it (seconds since the epoch)
    slope_dropped: int = 0         # polygons dropped for a mean slope under min_slope_deg
    slope_dropped_ha: float = 0.0  # and their area

    @property
    def ok(self) -> bool:
        return self.status in (DONE, SKIPPED)

    @property
    def polygons_path(self) -> Path | None:
        return Path(self.folder) / OUTPUTS["polygons"] if self.folder else None


def output_paths(out_dir: Path, name: str) -> dict[str, Path]:
    """The probability, mask and polygon files of the raster called ``name``."""
    folder = Path(out_dir) / name
    return {key: folder / file for key, file in OUTPUTS.items()}


def run_settings(raster: Path, model: str, options: dict[str, Any]) -> dict[str, Any]:
    """What decides a raster's outputs: if any of it changes, a re-run maps the raster again
    (a DEM or slope raster replaced by another of the same name too)."""
    stat = Path(raster).stat()
    settings = {"raster": str(Path(raster).resolve()), "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns, "model": str(model),
                "options": {k: (list(v) if isinstance(v, tuple) else v)
                            for k, v in options.items()}}
    terrain = {k: _stamp(options[k]) for k in ("dem", "slope") if options.get(k)}
    if terrain:  # only then: the settings of runs without them stay as they were
        settings["terrain_files"] = terrain
    return settings


def _stamp(path: Any) -> list[int] | None:
    """Size and modification time of an input file (None when it cannot be read: the run will
    say why)."""
    try:
        stat = Path(str(path)).stat()
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def completed(out_dir: Path, name: str, settings: dict[str, Any]) -> RasterOutcome | None:
    """The recorded outcome when the raster was mapped with these settings and its outputs are
    all there; None when it must be (re)mapped."""
    folder = Path(out_dir) / name
    try:
        record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if record.get("settings") != json.loads(json.dumps(settings)):
        return None
    if record.get("outcome", {}).get("status") != DONE:
        return None
    if not all(p.is_file() for p in output_paths(out_dir, name).values()):
        return None
    outcome = RasterOutcome(**record["outcome"])
    outcome.status, outcome.folder = SKIPPED, str(folder)
    return outcome


def write_record(folder: Path, outcome: RasterOutcome, settings: dict[str, Any]) -> None:
    """Write ``result.json`` under a temporary name and publish it (last step of a raster);
    raises OutputError."""
    staging.write_text(folder / RECORD, json.dumps({"outcome": asdict(outcome),
                                                    "settings": settings}, indent=1), "Record")


def polygon_area_m2(path: Path) -> float:
    """Sum of ``area_m2`` over a polygon file written by the engine."""
    import fiona

    with fiona.open(path) as layer:
        return float(sum(f["properties"].get("area_m2") or 0.0 for f in layer))


def one_line(exc: BaseException, source: str | None = None) -> str:
    """An error as one line: the engine's own message, else its type and text, prefixed with
    ``source`` (the raster) when the message does not name it."""
    text = str(exc) if isinstance(exc, LandslideMapperError) else f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split()) or type(exc).__name__
    if source and source not in text:
        text = f"Input raster {source}: {text}"
    return text


def map_raster(raster: str, model: str, out_dir: str, name: str, settings: dict[str, Any],
               options: dict[str, Any], cancel_event: str | None = None,
               model_threads: int | None = None,
               progress_queue: str | None = None) -> RasterOutcome:
    """Map one raster into ``out_dir/name/`` (on a worker); never raises for a bad raster: the
    outcome carries the error, so the other rasters go on."""
    from ..mapping.engine import map_landslides
    from .cluster import cancel_flag, progress_sender, worker_model_threads

    t0 = time.perf_counter()
    folder = Path(out_dir) / name
    outcome = RasterOutcome(name=name, source=str(raster), status=FAILED, folder=str(folder),
                            started=time.time())
    is_canceled = cancel_flag(cancel_event) if cancel_event else None
    if is_canceled is not None and is_canceled():
        outcome.status, outcome.error = CANCELLED, "Cancelled before it started."
        return outcome
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / RECORD).unlink(missing_ok=True)
        paths = output_paths(Path(out_dir), name)
        result = map_landslides(
            raster, model, probability_path=paths["probability"], mask_path=paths["mask"],
            polygons_path=paths["polygons"], threads=worker_model_threads(model_threads),
            progress=progress_sender(progress_queue, name) if progress_queue else None,
            is_canceled=is_canceled, **options)
        outcome.polygons = int(result.polygon_count)
        outcome.area_m2 = polygon_area_m2(paths["polygons"])
        outcome.slope_dropped = int(result.slope_dropped_count)
        outcome.slope_dropped_ha = float(result.slope_dropped_area_ha)
        outcome.status = DONE
    except CancelledError as exc:
        outcome.status, outcome.error = CANCELLED, one_line(exc)
    except Exception as exc:  # any failure of this raster is reported, the batch goes on
        outcome.error = one_line(exc, str(raster))
    outcome.seconds = time.perf_counter() - t0
    if outcome.status != DONE:
        try:
            folder.rmdir()  # only when empty: nothing of a failed raster is left behind
        except OSError:
            pass
    else:
        try:
            write_record(folder, outcome, settings)
        except (OSError, LandslideMapperError) as exc:
            outcome.status, outcome.error = FAILED, one_line(exc)  # names the record
    return outcome
