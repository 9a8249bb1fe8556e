"""``map_many``: map many rasters on Dask distributed, then merge their polygons into one inventory.

One task per raster (:func:`.tasks.map_raster`), or with ``split_rows`` one raster at a time in
blocks of rows over all workers (:mod:`.split`). A raster that fails does not stop the others; the
summary (returned, and written to ``DIR/summary.csv``) lists every raster with its status, polygon
count, landslide area, the polygons (and hectares) dropped for a mean slope under ``min_slope_deg``,
seconds and error. Rasters whose outputs are complete for the same settings are skipped unless
``force``. Everything that can be checked before the work is: the inputs, the models, the minimum
slope, the inventory CRS, the output folder and the inventory GeoPackage (``layer_name`` is its
layer; its other layers are kept). The summary, the records and the inventory are written under
temporary names and published when complete (:mod:`..staging`).
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .. import staging
from ..contract import check_tiling, read_contract
from ..errors import CancelledError, InputError, OutputError
from ..mapping.model_choice import is_auto
from ..models.registry import resolve_model
from ..polygons import geopackage
from ..polygons.terrain_stats import check_min_slope
from ..raster import io as rio
from .cluster import open_cluster, received_progress
from .inventory import merge_inventory, target_crs
from .listing import BatchItem, expand_inputs
from .split import map_split, worker_model_ref
from .tasks import (
    CANCELLED,
    DONE,
    FAILED,
    RasterOutcome,
    completed,
    map_raster,
    one_line,
    output_paths,
    polygon_area_m2,
    run_settings,
    write_record,
)

INVENTORY = "landslides.gpkg"
SUMMARY = "summary.csv"
MAP_OPTIONS = ("threshold", "tile_size", "overlap", "batch_size", "device", "bands", "rescale",
               "dem", "slope", "probability_format", "min_area_m2", "fill_holes_m2", "simplify_m",
               "min_slope_deg", "tta")
#: Options added after the first batches were run, left out of the settings (and of the engine
#: call) when off: the settings of runs made before them still match.
_OFF = {"tta": False, "rescale": False, "slope": None, "min_slope_deg": 0.0}
_SPLIT_TASKS = 1 << 20  # a split run has as many tasks as blocks: size the cluster to the cores


@dataclass
class BatchResult:
    """What a batch did: one outcome per raster (input order), the merged inventory and notes."""

    outcomes: list[RasterOutcome]
    out_dir: Path
    inventory_path: Path | None = None
    inventory_count: int = 0
    inventory_crs: str | None = None
    summary_path: Path | None = None
    dashboard: str | None = None
    min_slope_deg: float = 0.0
    seconds: float = 0.0
    messages: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every raster was mapped (now or by an earlier run)."""
        return all(o.ok for o in self.outcomes)


def map_many(
    inputs: Sequence[str | os.PathLike[str]],
    model: str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str],
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    split_rows: int | None = None,
    force: bool = False,
    crs: str | None = None,
    layer_name: str | None = None,
    processes: bool = True,
    progress: Callable[[float], None] | None = None,
    is_canceled: Callable[[], bool] | None = None,
    log: Callable[[str], None] | None = None,
    **map_options: Any,
) -> BatchResult:
    """Map every raster of ``inputs`` (files, folders, glob patterns, .txt/.csv lists) into
    ``out_dir/NAME/`` and merge the polygons into ``out_dir/landslides.gpkg``.

    ``model`` is used for rasters a list file gives no model. ``scheduler``: a Dask scheduler's
    address (paths must then be readable and writable by the workers); without it a local cluster
    of ``workers`` x ``threads_per_worker`` model threads (see :mod:`.cluster`). ``map_options``
    are :func:`~landslide_mapper.core.mapping.engine.map_landslides`'s (:data:`MAP_OPTIONS`).
    ``layer_name``: the inventory's GeoPackage layer (default ``landslides``; other layers of
    ``out_dir/landslides.gpkg`` are kept). Raises InputError or OutputError before any work,
    CancelledError when cancelled (finished rasters are kept).
    """
    t0 = time.perf_counter()
    messages: list[str] = []

    def note(text: str) -> None:
        messages.append(text)
        if log is not None:
            log(text)

    unknown = sorted(set(map_options) - set(MAP_OPTIONS))
    if unknown:
        raise InputError(f"Options {', '.join(unknown)}: expected only {', '.join(MAP_OPTIONS)}.")
    items = expand_inputs(inputs)
    models = _models(items, model, map_options)
    min_slope = check_min_slope(map_options.get("min_slope_deg", 0.0),
                                map_options.get("slope") or map_options.get("dem"))
    if crs is not None:
        target_crs(crs, [])
    out = _prepare_out_dir(out_dir)
    options = {k: (str(v) if k in ("dem", "slope") and v is not None else v)
               for k, v in map_options.items() if k not in _OFF or v != _OFF[k]}
    # Split or not, the outputs are the same: split_rows is not part of the settings.
    settings = {i.name: run_settings(i.raster, models[i.name], options) for i in items}
    outcomes: dict[str, RasterOutcome] = {}
    todo: list[BatchItem] = []
    for item in items:
        done = None if force else completed(out, item.name, settings[item.name])
        if done is not None:
            outcomes[item.name] = done
        else:
            todo.append(item)
    if len(todo) < len(items):
        note(f"{len(items) - len(todo)} of {len(items)} rasters already mapped with the same "
             "settings: skipped (force to redo).")
    result = BatchResult([], out, messages=messages, min_slope_deg=min_slope)
    report = _Fraction(progress, len(items), len(items) - len(todo))
    if todo:
        n_tasks = _SPLIT_TASKS if split_rows else len(todo)
        with open_cluster(scheduler, n_tasks, workers=workers,
                          model_threads=threads_per_worker, processes=processes) as info:
            note(info.note)
            if info.dashboard:
                result.dashboard = info.dashboard
                note(f"Dask dashboard: {info.dashboard}")
            run = _run_split if split_rows else _run_tasks
            outcomes.update(run(todo, models, out, settings, options, info, split_rows,
                                report, is_canceled, note))
    result.outcomes = [outcomes[i.name] for i in items]
    result.summary_path = write_summary(out / SUMMARY, result.outcomes)
    if any(o.status == CANCELLED for o in result.outcomes):
        kept = sum(o.ok for o in result.outcomes)
        raise CancelledError(f"Cancelled by the user; {kept} of {len(items)} rasters are mapped "
                             f"and kept in {out}; the inventory was not written. Run the same "
                             "command again to go on.")
    parts = [(o.polygons_path, o.source) for o in result.outcomes if o.ok]
    if parts:
        result.inventory_path = out / INVENTORY
        result.inventory_count, result.inventory_crs = merge_inventory(
            parts, result.inventory_path, crs=crs, layer_name=layer_name,
            is_canceled=is_canceled)
        note(f"Inventory {result.inventory_path}: {result.inventory_count} polygons from "
             f"{len(parts)} rasters ({result.inventory_crs}){dropped_note(result)}.")
    report.finish()
    result.seconds = time.perf_counter() - t0
    return result


class _Fraction:
    """Progress over the batch: rasters finished (skipped ones count as finished), then the
    inventory's last 5 %."""

    def __init__(self, callback, total: int, already: int):
        self.callback, self.total, self.done, self.last = callback, max(1, total), already, 0.0
        self.part(0.0)

    def part(self, fraction_of_current: float) -> None:
        """``fraction_of_current``: what is done of the rasters being mapped, summed."""
        self._report(0.95 * (self.done + fraction_of_current) / self.total)

    def finished(self, n: int = 1) -> None:
        self.done += n
        self.part(0.0)

    def finish(self) -> None:
        self._report(1.0)

    def _report(self, f: float) -> None:
        if self.callback is not None and f > self.last:
            self.last = min(1.0, f)
            self.callback(self.last)


def _prepare_out_dir(out_dir) -> Path:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"Output folder {out}: expected a folder, found a file.")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"Output folder {out}: cannot be created ({exc.strerror}). Choose a "
                          "folder you can write to.") from exc
    rio.check_writable(out / INVENTORY, "Inventory")
    geopackage.check_container(out / INVENTORY, "Inventory")  # its other layers will be kept
    return out


def dropped_note(result: BatchResult) -> str:
    """``; N polygons (X ha) dropped for a mean slope under D degrees`` over the mapped rasters
    (their split per raster is in the summary); empty when the minimum slope is off."""
    if not result.min_slope_deg > 0:
        return ""
    mapped = [o for o in result.outcomes if o.ok]
    n = sum(o.slope_dropped for o in mapped)
    area = sum(o.slope_dropped_ha for o in mapped)
    return (f"; {n} polygon{'s' if n != 1 else ''} ({area:.2f} ha) dropped for a mean slope "
            f"under {result.min_slope_deg:g} degrees")


def _models(items: list[BatchItem], model, map_options: dict) -> dict[str, str]:
    """Each raster's model, as the workers will resolve it; every model checked once here."""
    checked: dict[str, str] = {}
    out = {}
    for item in items:
        chosen = item.model or (str(model) if model not in (None, "") else None)
        if chosen is None:
            raise InputError(f"Raster {item.raster}: no model; expected --model, or a model "
                             "column in the list file naming one for this raster.")
        if is_auto(chosen):  # each raster gets the bundled model that fits it, on its worker
            checked[chosen] = chosen
        if chosen not in checked:
            path = resolve_model(chosen)
            contract = read_contract(path)
            check_tiling(map_options.get("tile_size") or contract.tile_size,
                         contract.overlap if map_options.get("overlap") is None
                         else map_options["overlap"])
            checked[chosen] = worker_model_ref(chosen, path)
        out[item.name] = checked[chosen]
    return out


def _run_tasks(todo, models, out: Path, settings, options, info, _split_rows, report,
               is_canceled, note) -> dict[str, RasterOutcome]:
    """One task per raster on the cluster; outcomes as they finish."""
    client = info.client
    futures = [client.submit(map_raster, str(i.raster), models[i.name], str(out), i.name,
                             settings[i.name], options, info.cancel_event, info.model_threads,
                             info.progress_queue, key=f"map-raster-{i.name}-{os.urandom(4).hex()}", pure=False)
               for i in todo]
    pending = dict(zip(futures, todo))
    outcomes: dict[str, RasterOutcome] = {}
    running: dict[str, float] = {}  # fraction done of the rasters being mapped
    cancelled = False
    while pending:
        running.update(received_progress(client, info.progress_queue))
        finished = [f for f in pending if f.done()]
        for f in finished:
            item = pending.pop(f)
            outcomes[item.name] = _outcome(f, item)
            o = outcomes[item.name]
            running.pop(item.name, None)
            report.finished()
            note(_progress_line(len(outcomes), len(todo), o))
        if pending and not cancelled and is_canceled is not None and is_canceled():
            from distributed import Event

            Event(info.cancel_event, client=client).set()  # running tasks stop and clean up
            cancelled = True
        report.part(sum(v for k, v in running.items() if k not in outcomes))
        if pending and not finished:
            time.sleep(0.2)
    return outcomes


def _progress_line(k: int, n: int, o: RasterOutcome) -> str:
    """``[k/n] NAME: done, 12 polygons (3 dropped for their slope, 0.41 ha), 1.2 s``."""
    if not o.ok:
        return f"[{k}/{n}] {o.name}: {o.status}: {o.error}"
    dropped = (f" ({o.slope_dropped} dropped for their slope, {o.slope_dropped_ha:.2f} ha)"
               if o.slope_dropped else "")
    return f"[{k}/{n}] {o.name}: {o.status}, {o.polygons} polygons{dropped}, {o.seconds:.1f} s"


def _outcome(future, item: BatchItem) -> RasterOutcome:
    """A finished task's outcome; a task that died (its worker killed) is a failed raster."""
    try:
        return future.result()
    except Exception as exc:  # KilledWorker, a lost worker, ...: reported, the batch goes on
        return RasterOutcome(item.name, str(item.raster), FAILED,
                             error=one_line(exc, str(item.raster)))


def _run_split(todo, models, out: Path, settings, options, info, split_rows, report,
               is_canceled, note) -> dict[str, RasterOutcome]:
    """One raster after the other, each in blocks of rows over all workers."""
    outcomes: dict[str, RasterOutcome] = {}
    for item in todo:
        folder = out / item.name
        o = RasterOutcome(item.name, str(item.raster), FAILED, folder=str(folder),
                          started=time.time())
        t0 = time.perf_counter()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            paths = output_paths(out, item.name)
            split = map_split(
                item.raster, models[item.name], info.client, info.cancel_event, split_rows,
                probability_path=paths["probability"], mask_path=paths["mask"],
                polygons_path=paths["polygons"], model_threads=info.model_threads,
                progress=report.part, is_canceled=is_canceled, log=note, **options)
            o.polygons, o.area_m2 = split.polygon_count, polygon_area_m2(paths["polygons"])
            o.slope_dropped = split.slope_dropped_count
            o.slope_dropped_ha, o.status = split.slope_dropped_area_ha, DONE
        except CancelledError as exc:
            o.status, o.error = CANCELLED, one_line(exc)
        except Exception as exc:  # reported in the summary; the next raster goes on
            o.error = one_line(exc, str(item.raster))
        o.seconds = time.perf_counter() - t0
        if o.status == DONE:
            try:
                write_record(folder, o, settings[item.name])
            except Exception as exc:  # the outputs stay; the next run maps this raster again
                o.status, o.error = FAILED, one_line(exc)
        outcomes[item.name] = o
        report.finished()
        note(_progress_line(len(outcomes), len(todo), o))
        if o.status == CANCELLED:
            for rest in todo[len(outcomes):]:
                outcomes[rest.name] = RasterOutcome(rest.name, str(rest.raster), CANCELLED,
                                                    error="Cancelled before it started.")
            break
    return outcomes


#: The columns of ``summary.csv``; ``slope_dropped`` and ``slope_dropped_ha``: the polygons (and
#: their area) a minimum slope dropped (0 when it is off).
SUMMARY_COLUMNS = ("raster", "name", "status", "polygons", "area_ha", "slope_dropped",
                   "slope_dropped_ha", "seconds", "error")


def write_summary(path: Path, outcomes: list[RasterOutcome]) -> Path:
    """The summary as CSV (written under a temporary name, then published)."""
    text = io.StringIO()
    w = csv.writer(text, lineterminator="\n")
    w.writerow(SUMMARY_COLUMNS)
    for o in outcomes:
        w.writerow([o.source, o.name, o.status, o.polygons, f"{o.area_m2 / 1e4:.4f}",
                    o.slope_dropped, f"{o.slope_dropped_ha:.2f}", f"{o.seconds:.2f}",
                    o.error or ""])
    return staging.write_text(path, text.getvalue(), "Summary")


__all__ = ["INVENTORY", "SUMMARY", "BatchResult", "map_many"]
