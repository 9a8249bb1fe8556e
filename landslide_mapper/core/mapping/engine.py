"""Public entry point of the engine: map landslides on a raster with a model.

``map_landslides`` checks everything it can before working (outputs writable, model and contract,
tiling, raster georeferencing, bands, pixel size, not empty), runs the tiled pipeline of
:mod:`.inference`, optionally warps the probabilities back from the model's pixel size onto the
input grid, thresholds the mask on the input grid and vectorizes it; ``report_path`` adds an HTML
inventory report on the polygons (:mod:`..report`). Every output is written under a temporary name
beside its target and renamed only when the whole run succeeded.
"""

from __future__ import annotations

import math
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from rasterio.windows import Window

from ..contract import ModelContract, check_tiling, read_contract
from ..errors import CancelledError, InputError, LandslideMapperError
from ..inputs.terrain import augment_with_terrain, terrain_sources
from ..models.registry import resolve_model
from ..models.runtime import ModelSession, create_session, reader_threads
from ..polygons.terrain_stats import check_min_slope
from ..polygons.vector_io import publish_polygons
from ..raster import io as rio
from ..raster.bands import map_bands
from ..raster.values import check_input_values
from ..report import StagedReport
from ..staging import writing
from .inference import run_tiles
from .model_choice import choose_model, is_auto
from .progress import RunProgress
from .request import PROBABILITY_FORMATS, other_inputs, polygon_layer
from .request import check_request as _check_request
from .tiling import TileGrid
from .vectorizing import Terrain, polygons_step, terrain_note, vectorize_staged

#: Columns warped back at a time (whole output blocks): memory stays flat however wide the raster.
WARP_COLUMNS = 32 * rio.BLOCK


@dataclass
class MapResult:
    """What a run wrote and how: paths (None when not asked for), counts and notes."""

    probability_path: Path | None
    mask_path: Path | None
    polygons_path: Path | None
    polygon_count: int
    provider: str
    model_name: str
    band_indexes: list[int]
    resampled: bool
    tiles: int
    seconds: float
    messages: list[str] = field(default_factory=list)
    slope_dropped_count: int = 0        # polygons dropped for a mean slope under min_slope_deg
    slope_dropped_area_ha: float = 0.0  # and their area
    report_path: Path | None = None     # the HTML inventory report (:mod:`..report`)


def map_landslides(
    input_path,
    model,
    *,
    probability_path=None,
    mask_path=None,
    polygons_path=None,
    layer_name: str | None = None,
    threshold: float | None = None,
    tile_size: int | None = None,
    overlap: int | None = None,
    batch_size: int = 4,
    device: str = "auto",
    threads: int | None = None,
    bands: Sequence[int] | None = None,
    rescale: bool = False,
    dem=None,
    slope=None,
    probability_format: str = "float32",
    min_area_m2: float | None = 0.0,
    fill_holes_m2: float = 0.0,
    simplify_m: float = 0.0,
    min_slope_deg: float = 0.0,
    tta: bool = False,
    report_path=None,
    progress: Callable[[float], None] | None = None,
    is_canceled: Callable[[], bool] | None = None,
    log: Callable[[str], None] | None = None,
) -> MapResult:
    """Map landslides on ``input_path`` with ``model`` (a bundled name, an .onnx path, or
    ``"auto"``: the bundled model that fits the raster, see :mod:`.model_choice`; the choice and
    its reasons go to ``log``).

    Writes any of: a probability raster (float32 0..1 with NaN nodata, or uint8 0..254 with 255
    nodata and scale 1/254), a uint8 mask (1 landslide, 0 not, 255 never scored; a pixel is a
    landslide when its probability >= ``threshold``) and polygons. When the model wants slope/DEM
    bands the raster lacks, ``dem`` (any CRS and resolution; optionally a ready ``slope`` raster)
    supplies them, derived and warped onto the input grid on the fly. ``min_area_m2=None`` drops
    specks (polygons of fewer than ``core.polygons.DEFAULT_MIN_PIXELS`` pixels: the default of the
    command line and the QGIS dialogs); 0 keeps every polygon. Polygons go to the GeoPackage layer
    ``layer_name`` (default ``landslides``), other layers kept; no output may be an input. With
    ``dem`` or ``slope`` polygons get slope (with ``dem`` also elevation) attributes, and
    ``min_slope_deg`` > 0 drops those of a lower mean slope (:mod:`.vectorizing`); ``tta``
    averages each tile over its 8 orientations (:mod:`.tta`). Raises InputError, ModelError,
    OutputError or CancelledError; a failed run leaves targets untouched; raw values far off the
    model's ``value_range`` are refused (``rescale``: mapped onto it).
    """
    t_start = time.perf_counter()
    messages: list[str] = []

    def note(text: str | None) -> None:
        if not text:
            return
        messages.append(text)
        if log is not None:
            log(text)

    source = f"Input raster {input_path}"
    prob_target, mask_target, poly_target, report = _checked(
        input_path, (probability_path, mask_path, polygons_path, report_path), probability_format,
        batch_size, inputs=other_inputs(dem, slope, model), layer_name=layer_name)
    min_slope_deg = check_min_slope(min_slope_deg, slope if slope is not None else dem)
    if is_auto(model):
        choice = choose_model(input_path, terrain_from_dem=dem is not None, bands=bands)
        for line in choice.explanation():
            note(line)
        model = choice.chosen.path
    model_path, contract, tile, ovl, thr = _model_settings(model, tile_size, overlap, threshold)

    with ExitStack() as stack:
        stack.enter_context(rio.gdal_env())
        input_path, terrain = _with_terrain(stack, input_path, dem, slope, contract,
                                            poly_target is not None, is_canceled, note)
        ds = stack.enter_context(rio.open_input(input_path))
        rio.check_georeferenced(ds, source)
        local = rio.crs_note(ds, source)
        if local:
            note(local)
        mapping = map_bands(contract.bands, list(ds.descriptions), explicit=bands, source=source)
        contract, checked = check_input_values(ds, mapping.indexes, contract, source, rescale)
        for m in (*mapping.messages, *checked):
            note(m)
        plan = rio.plan_resampling(ds, contract, source)
        session, batch_size = _start_session(model_path, contract, tile, batch_size, device,
                                             threads, note, tta)
        in_reader = _input_reader(ds, mapping.indexes, contract, source, note)
        n_readers = reader_threads(session.provider)
        readers = _tile_readers(stack, in_reader, input_path, plan, contract, n_readers)
        note(_resampled_note(ds, contract, plan))
        grid = TileGrid.build(readers[0].ds.height, readers[0].ds.width, tile, ovl)

        staging = _Staging(prob_target, mask_target, poly_target, resampled=plan is not None,
                           layer=polygon_layer(polygons_path, layer_name),
                           report=report.about(contract, model_path, mapping.indexes, thr, dem))
        steps = RunProgress(progress, polygons=poly_target is not None, resampled=plan is not None)
        writers = _Writers(thr, probability_format)
        try:
            stats = _map_rasters(in_reader, readers, plan, grid, session, contract.output_kind,
                                 staging, writers, batch_size, is_canceled, steps, tta)
            note(_tiles_note(stats, tile, ovl, n_readers))
            flat = None if poly_target is None else polygons_step(
                staging, contract.name, (min_area_m2, fill_holes_m2, simplify_m), terrain,
                min_slope_deg, is_canceled, steps.polygons, note)
            if is_canceled is not None and is_canceled():
                raise CancelledError("Cancelled by the user; no output was written.")
            staging.publish()
        except BaseException:
            staging.discard()
            raise
        steps.done()

    return MapResult(
        probability_path=prob_target, mask_path=mask_target, polygons_path=poly_target,
        polygon_count=int(flat.count) if flat else 0, provider=session.provider,
        model_name=contract.name, band_indexes=list(mapping.indexes), resampled=plan is not None,
        tiles=stats.tiles, seconds=time.perf_counter() - t_start, messages=messages,
        slope_dropped_count=int(flat.flat_count) if flat else 0, report_path=report.target,
        slope_dropped_area_ha=round(flat.flat_area_m2 / 10_000, 2) if flat else 0.0)


# ---------------------------------------------------------------------------------------------
# Pre-flight: arguments, model, session and input, checked before any work


def _model_settings(model, tile_size: int | None, overlap: int | None,
                    threshold: float | None) -> tuple[Path, ModelContract, int, int, float]:
    """The model's file and contract, and the tile size, overlap and threshold of the run (the
    contract's unless given), checked."""
    model_path = resolve_model(model)
    contract = read_contract(model_path)
    tile = contract.tile_size if tile_size is None else tile_size
    ovl = contract.overlap if overlap is None else overlap
    check_tiling(tile, ovl)
    thr = contract.threshold if threshold is None else threshold
    if not isinstance(thr, (int, float)) or not 0.0 < thr < 1.0:
        raise InputError(f"Threshold: expected a number between 0 and 1, found {thr!r}.")
    return model_path, contract, tile, ovl, thr


def _checked(input_path, paths: Sequence, *args, **kwargs) -> tuple:
    """:func:`.request.check_request`'s targets, the report's as a :class:`..report.StagedReport`
    of the input as given (written from the staged polygons when the run publishes)."""
    *targets, report = _check_request(input_path, paths, *args, **kwargs)
    return (*targets, StagedReport(report, input_path))


def _tiles_note(stats, tile: int, ovl: int, n_readers: int) -> str:
    return (f"{stats.tiles} tiles of {tile} px (overlap {ovl}) in {stats.wall_seconds:.1f} s "
            f"with {n_readers} reader thread{'s' if n_readers != 1 else ''}; the model was busy "
            f"{100 * stats.model_busy:.0f} % of that time.")


def _resampled_note(ds, contract: ModelContract, plan: rio.ResamplePlan | None) -> str | None:
    if plan is None:
        return None
    px, py = rio.pixel_size_m(ds)
    return (f"Resampled: the raster's pixel size ({math.sqrt(px * py):.3g} m) differs from the "
            f"model's ({contract.pixel_size_m:g} m); the model runs on a {plan.width} x "
            f"{plan.height} grid and probabilities are warped back onto the input grid.")


def _with_terrain(stack: ExitStack, input_path, dem, slope, contract: ModelContract,
                  polygons: bool, is_canceled, note: Callable[[str], None]) -> tuple[Any, Terrain]:
    """The raster the model reads (with the slope/DEM bands it wants and the input lacks, see
    :func:`..inputs.terrain.augment_with_terrain`) and the terrain rasters of the polygons; the
    slope is computed from the DEM once, for both, in a folder removed with ``stack``."""
    if dem is None and slope is None:
        return input_path, (None, None)
    workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="landslide-terrain-"))
    terrain: Terrain = (None, None)
    if polygons:
        terrain = terrain_sources(input_path, dem, workdir, slope, is_canceled)
        note(terrain_note(terrain))
    augmented = augment_with_terrain(input_path, dem, contract, workdir,
                                     slope_path=terrain[0] or slope)
    if augmented != Path(input_path):
        note(f"Slope/elevation bands derived from the DEM {dem} on the input grid.")
    return augmented, terrain


def _start_session(model_path: Path, contract: ModelContract, tile: int, batch_size: int,
                   device: str, threads: int | None, note: Callable[[str], None],
                   tta: bool = False) -> tuple[ModelSession, int]:
    """The model session, and the batch size it takes (a model exported with a fixed batch size
    imposes it); refuses a tile size the model does not take."""
    session = create_session(model_path, contract, device=device, threads=threads)
    threads_note = (f" ({session.threads} thread{'s' if session.threads != 1 else ''})"
                    if session.provider == "CPUExecutionProvider" else "")
    note(f"Model '{contract.name}' runs on {session.provider}{threads_note}.")
    if tta:
        note("Test-time augmentation: each tile is scored in its 8 orientations (rotations "
             "and flips) and the probabilities averaged; the model runs 8 times as long.")
    if session.fixed_size is not None and session.fixed_size != (tile, tile):
        raise InputError(
            f"Tile size {tile}: the model {model_path.name} only takes tiles of "
            f"{session.fixed_size[0]} x {session.fixed_size[1]} px; use that tile size.")
    if session.fixed_batch is not None and batch_size != session.fixed_batch:
        note(f"Batch size {batch_size} -> {session.fixed_batch}: the model was exported with a "
             "fixed batch size.")
        batch_size = session.fixed_batch
    return session, batch_size


def _input_reader(ds, indexes: list[int], contract: ModelContract, source: str,
                  note: Callable[[str], None]) -> rio.BandReader:
    """The model's bands of the input raster, on its own grid; refuses a raster with no valid
    pixel."""
    in_reader = rio.BandReader(ds, indexes, contract.bands, contract.nodata_value)
    if in_reader.zero_is_nodata:
        note(f"{source}: declares no nodata value, alpha band or mask; pixels that are 0 in "
             "every band (a black collar) are treated as nodata and never mapped.")
    if not rio.has_valid_pixels(in_reader):
        raise InputError(
            f"{source}: every pixel of bands {indexes} is nodata (or NaN/masked); "
            "nothing to map. Check the raster's nodata value and extent."
        )
    return in_reader


def _tile_readers(stack: ExitStack, in_reader: rio.BandReader, input_path,
                  plan: rio.ResamplePlan | None, contract: ModelContract,
                  n_readers: int) -> list[rio.BandReader]:
    """One reader per reader thread, each on its own dataset handle, on the model's grid (the
    input reader itself first when there is no resampling); handles close with ``stack``."""

    def tile_reader(dataset) -> rio.BandReader:
        if plan is not None:
            dataset = stack.enter_context(rio.working_dataset(dataset, plan))
        return rio.BandReader(dataset, in_reader.indexes, contract.bands, contract.nodata_value)

    return [in_reader if plan is None else tile_reader(in_reader.ds)] + [
        tile_reader(stack.enter_context(rio.open_input(input_path)))
        for _ in range(n_readers - 1)]


# ---------------------------------------------------------------------------------------------
# The run and its outputs


class _Staging:
    """The run's files under temporary names beside their targets: published or discarded.

    A probability or mask nobody asked for (needed by the polygons) stays temporary and is removed.
    """

    def __init__(self, prob_target: Path | None, mask_target: Path | None,
                 poly_target: Path | None, resampled: bool, layer: str | None = None,
                 report: StagedReport | None = None):
        self.targets = (prob_target, mask_target, poly_target)
        self.report = report or StagedReport(None, None)  # an HTML report on the polygons
        self.layer = layer  # the polygons' GeoPackage layer (None: the default / one-layer file)
        anchor = next(p for p in self.targets if p is not None).with_suffix(".tif")
        want_polygons = poly_target is not None
        self.prob = rio.temporary_sibling(prob_target or anchor) if (
            prob_target is not None or want_polygons) else None
        self.mask = rio.temporary_sibling(mask_target or anchor) if (
            mask_target is not None or want_polygons) else None
        self.polygons = rio.temporary_sibling(poly_target) if want_polygons else None
        self.work = rio.temporary_sibling(anchor, "work") if resampled else None

    def check_rasters(self) -> None:
        """Raise OutputError unless the closed probability and mask rasters are complete on the
        disk (a full disk is caught here, before anything reads them or replaces a target)."""
        prob_target, mask_target, poly_target = self.targets
        for tmp, target, what in ((self.prob, prob_target, "Probability raster"),
                                  (self.mask, mask_target, "Mask raster")):
            if tmp is not None:
                rio.check_written(tmp, target or poly_target, what if target else "Polygons")

    def publish(self) -> None:
        """Every output checked (and the report written) first, then each renamed over its
        target."""
        self.check_rasters()
        self.report.write(self.polygons, self.layer)
        prob_target, mask_target, poly_target = self.targets
        if prob_target is not None:
            rio.publish_raster(self.prob, prob_target, "Probability raster")
        if mask_target is not None:
            rio.publish_raster(self.mask, mask_target, "Mask raster")
        if poly_target is not None:
            _publish_vector(self.polygons, poly_target, self.layer)
        self.report.publish()
        self._remove_rasters()

    def discard(self) -> None:
        self._remove_rasters()
        self.report.discard()
        if self.polygons is not None:
            _remove_vector(self.polygons)

    def _remove_rasters(self) -> None:
        for p in (self.prob, self.mask, self.work):
            if p is not None:
                rio.remove_quietly(p)


def _map_rasters(in_reader: rio.BandReader, readers: list[rio.BandReader],
                 plan: rio.ResamplePlan | None,
                 grid: TileGrid, session, output_kind: str, staging: _Staging, writers: "_Writers",
                 batch_size: int, is_canceled, steps: RunProgress, tta: bool = False):
    """Run the tiles and write the probability and mask rasters (temporary names) on the input grid.

    Without resampling, finished rows go straight to the outputs. With it, the model's grid gets a
    temporary float32 probability raster that is then warped back onto the input grid.
    """
    ds = in_reader.ds
    with ExitStack() as outs:
        def create(path: Path, dtype: str, nodata, desc: str, scale=None, grid_of=ds):
            return outs.enter_context(rio.create_output(
                path, crs=ds.crs, transform=grid_of.transform, width=grid_of.width,
                height=grid_of.height, dtype=dtype, nodata=nodata, description=desc, scale=scale))

        def open_outputs() -> None:
            if staging.prob is not None:
                if writers.uint8:
                    writers.prob = create(staging.prob, "uint8", rio.UINT8_NODATA,
                                          "landslide probability (x 1/254)", scale=rio.UINT8_SCALE)
                else:
                    writers.prob = create(staging.prob, "float32", rio.PROBABILITY_NODATA,
                                          "landslide probability")
            if staging.mask is not None:
                writers.mask = create(staging.mask, "uint8", rio.UINT8_NODATA, "landslide mask")

        if plan is None:
            open_outputs()
            return run_tiles(readers, grid, session, output_kind, writers.write, tta=tta,
                             batch_size=batch_size, is_canceled=is_canceled, progress=steps.tiles)
        with rio.create_output(staging.work, crs=ds.crs, transform=plan.transform,
                               width=plan.width, height=plan.height, dtype="float32",
                               nodata=rio.PROBABILITY_NODATA, description="probability") as work:
            def sink(row0: int, prob: np.ndarray, valid: np.ndarray, col0: int = 0) -> None:
                with writing("Temporary probability raster", staging.work):
                    work.write(prob[None],
                               window=Window(col0, row0, prob.shape[1], prob.shape[0]))

            stats = run_tiles(readers, grid, session, output_kind, sink, batch_size=batch_size,
                              is_canceled=is_canceled, progress=steps.tiles, tta=tta)
        open_outputs()
        _warp_back(staging.work, in_reader, writers, is_canceled, steps.warp)
        return stats


class _Writers:
    """Writes finished rows to the probability and mask rasters (on the input grid)."""

    def __init__(self, threshold: float, probability_format: str):
        self.threshold = np.float32(threshold)
        self.uint8 = probability_format == "uint8"
        self.prob = None
        self.mask = None

    def write(self, row0: int, prob: np.ndarray, valid: np.ndarray, col0: int = 0) -> None:
        window = Window(col0, row0, prob.shape[1], prob.shape[0])
        if self.prob is not None:
            if self.uint8:
                q = np.full(prob.shape, rio.UINT8_NODATA, np.uint8)
                q[valid] = np.rint(np.clip(prob[valid], 0, 1) * 254).astype(np.uint8)
            else:
                q = prob
            with writing("Probability raster", self.prob.name):
                self.prob.write(q[None], window=window)
        if self.mask is not None:
            m = np.full(prob.shape, rio.UINT8_NODATA, np.uint8)
            m[valid] = prob[valid] >= self.threshold
            with writing("Mask raster", self.mask.name):
                self.mask.write(m[None], window=window)


def _warp_back(work_path: Path, in_reader: rio.BandReader, writers: _Writers,
               is_canceled, progress) -> None:
    """Probabilities on the working grid -> the input grid, one block of rows (and of at most
    :data:`WARP_COLUMNS` columns, so memory does not grow with the width) at a time.

    Pixels masked in the input stay nodata even when the warped probability covers them.
    """
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    ds = in_reader.ds
    with rasterio.open(work_path) as work, WarpedVRT(
            work, crs=ds.crs, transform=ds.transform, width=ds.width, height=ds.height,
            resampling=Resampling.bilinear, src_nodata=rio.PROBABILITY_NODATA,
            nodata=rio.PROBABILITY_NODATA) as back:
        for row0 in range(0, ds.height, rio.BLOCK):
            for col0 in range(0, ds.width, WARP_COLUMNS):
                if is_canceled is not None and is_canceled():
                    raise CancelledError("Cancelled by the user; no output was written.")
                window = Window(col0, row0, min(WARP_COLUMNS, ds.width - col0),
                                min(rio.BLOCK, ds.height - row0))
                prob = back.read(1, window=window).astype(np.float32, copy=False)
                valid = in_reader.read_valid(window) & np.isfinite(prob)
                prob = np.where(valid, prob, np.float32(np.nan))
                writers.write(row0, prob, valid, col0)
            progress(min(1.0, (row0 + rio.BLOCK) / ds.height))


def _vectorize(staging: _Staging, *args) -> int:
    """Polygons from the (temporary) mask (:func:`.vectorizing.vectorize_staged`); their count."""
    return int(vectorize_staged(staging, *args).count)


def _vector_parts(tmp: Path) -> list[Path]:
    """The temporary vector file and its side-cars (a shapefile's .shx, .dbf, ...; -wal, -shm)."""
    prefix = tmp.stem + "."
    return [p for p in tmp.parent.iterdir() if p.name.startswith(prefix)]


def _publish_vector(tmp: Path, target: Path, layer: str | None = None) -> None:
    """Into place (a GeoPackage keeps its other layers, a shapefile moves with its side-cars)."""
    publish_polygons(tmp, target, [layer] if layer else [])
    _remove_vector(tmp)  # what is left of the temporary file (a journal), not part of the result


def _remove_vector(tmp: Path) -> None:
    for part in _vector_parts(tmp):
        part.unlink(missing_ok=True)


__all__ = ["MapResult", "map_landslides", "LandslideMapperError", "PROBABILITY_FORMATS"]
