"""One raster over several workers: blocks of rows mapped apart, result identical to one run.

The raster is cut into blocks of ``split_rows`` rows. The worker of block ``[r0, r1)`` runs every
tile that reaches into it (the tile overlap is its margin) and blends them exactly as a single run
does: the same batches (the single run's batches, so a model whose numbers depend on the batch
still gives the same bits), the same float64 weighted sums added in the same tile order, divided by
the same weight sums of the whole grid. It writes the finished probabilities of its own rows (and
their validity) to a part file on shared storage. The client then writes the parts, in order, into
the probability raster and the mask exactly as a single run writes its rows, and vectorizes the
mask once (the vectorizer already joins polygons across strip edges). Outputs appear only when
complete; part files are removed in every case.

The raster's values are checked against the model's range as a single run checks them (refused,
or with ``rescale`` mapped linearly onto it: the workers get the rescaled bands). A DEM or a slope
raster gives the polygons their terrain attributes, and ``min_slope_deg`` drops the flat ones, as
in a single run (the client reads them while vectorizing). Rasters that need resampling to the
model's pixel size, or terrain bands from a DEM, are refused: prepare them first
(``landslide-mapper prepare``), then split.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
from rasterio.windows import Window

from ..errors import CancelledError, InputError
from ..inputs.terrain import spec_terrain_kind, terrain_kind, terrain_sources

# The single run's own pre-flight checks, staging, row writers and vectorizing step: a split run
# checks, stages, writes and publishes its outputs exactly as it does (private to the mapping
# package, shared with this one run mode on purpose; the equality tests hold them together).
from ..mapping.engine import _input_reader as input_reader
from ..mapping.engine import _model_settings as model_settings
from ..mapping.engine import _Staging as Staging
from ..mapping.engine import _Writers as RowWriters
from ..mapping.inference import StripAccumulator
from ..mapping.model_choice import choose_model, is_auto
from ..mapping.request import check_request, other_inputs
from ..mapping.tiling import Tile, TileGrid
from ..mapping.vectorizing import polygons_step, terrain_note
from ..polygons.terrain_stats import check_min_slope
from ..raster import io as rio
from ..raster.bands import map_bands
from ..raster.values import check_input_values

_POLL_S = 0.2


@dataclass
class SplitResult:
    """What a split run wrote: the polygon count, the seconds, and the polygons dropped for a
    mean slope under ``min_slope_deg`` (count and hectares)."""

    polygon_count: int
    seconds: float
    slope_dropped_count: int = 0
    slope_dropped_area_ha: float = 0.0

_PART_PROFILE = {"driver": "GTiff", "count": 2, "dtype": "float32", "tiled": True,
                 "blockxsize": rio.BLOCK, "blockysize": rio.BLOCK, "compress": "deflate",
                 "predictor": 3, "bigtiff": "IF_SAFER"}


def row_blocks(height: int, split_rows: int) -> list[tuple[int, int]]:
    """``[r0, r1)`` blocks of ``split_rows`` rows covering ``height`` rows (the last shorter)."""
    if not isinstance(split_rows, int) or isinstance(split_rows, bool) or split_rows < 1:
        raise InputError(f"Split rows: expected a whole number of rows >= 1, found {split_rows!r}.")
    return [(r0, min(r0 + split_rows, height)) for r0 in range(0, height, split_rows)]


def touches(t: Tile, grid: TileGrid, r0: int, r1: int) -> bool:
    """Whether tile ``t`` covers any row of ``[r0, r1)``."""
    return t.row < r1 and min(t.row + grid.tile, grid.height) > r0


def block_batches(grid: TileGrid, batch_size: int, r0: int, r1: int) -> list[list[Tile]]:
    """The single run's batches that hold a tile reaching into rows ``[r0, r1)``."""
    tiles = list(grid.tiles())
    batches = [tiles[i:i + batch_size] for i in range(0, len(tiles), batch_size)]
    return [b for b in batches if any(touches(t, grid, r0, r1) for t in b)]


def map_rows(raster: str, model: str, indexes: Sequence[int], tile: int, overlap: int,
             batch_size: int, device: str, model_threads: int | None, r0: int, r1: int,
             part_path: str, cancel_event: str | None = None, tta: bool = False,
             band_specs: Sequence | None = None) -> int:
    """On a worker: blended probabilities of rows ``[r0, r1)`` into ``part_path`` (band 1 the
    probability, NaN where not scored; band 2 the validity, 1 or 0; ``tta``: each batch scored
    in the 8 orientations, as a single run does; ``band_specs``: the model's bands as the client
    checked them, rescaled when asked). Returns the tiles run."""
    import rasterio

    from ..contract import read_contract
    from ..models.registry import resolve_model
    from ..mapping.tta import score_batch
    from ..models.runtime import create_session, to_probability
    from .cluster import cancel_flag, worker_model_threads

    is_canceled = cancel_flag(cancel_event) if cancel_event else (lambda: False)
    model_path = resolve_model(model)
    contract = read_contract(model_path)
    if band_specs is not None:
        contract = replace(contract, bands=tuple(band_specs))
    with rio.gdal_env(), rio.open_input(raster) as ds:
        reader = rio.BandReader(ds, list(indexes), contract.bands, contract.nodata_value)
        session = create_session(model_path, contract, device=device,
                                 threads=worker_model_threads(model_threads))
        batch_size = session.fixed_batch or batch_size
        grid = TileGrid.build(ds.height, ds.width, tile, overlap)
        batches = block_batches(grid, batch_size, r0, r1)
        profile = dict(_PART_PROFILE, width=ds.width, height=r1 - r0, crs=ds.crs,
                       transform=ds.window_transform(Window(0, r0, ds.width, r1 - r0)))
        with rasterio.open(part_path, "w", **profile) as part:
            def sink(row0: int, prob: np.ndarray, valid: np.ndarray) -> None:
                a, b = max(row0, r0), min(row0 + prob.shape[0], r1)
                if a < b:
                    window = Window(0, a - r0, prob.shape[1], b - a)
                    part.write(np.stack([prob[a - row0:b - row0],
                                         valid[a - row0:b - row0].astype(np.float32)]),
                               window=window)

            # Block 1: every finished tile row is flushed whole, so nothing stays held at the end.
            acc = StripAccumulator(grid, sink, block=1)
            acc.base = min(t.row for b in batches for t in b if touches(t, grid, r0, r1))
            buf = np.empty((batch_size, len(reader.indexes), tile, tile), np.float32)
            for batch in batches:
                if is_canceled():
                    raise CancelledError("Cancelled by the user; no output was written.")
                valid = np.empty((len(batch), tile, tile), bool)
                for k, t in enumerate(batch):
                    valid[k] = reader.read_tile(t.row, t.col, tile, buf[k])
                prob = to_probability(*score_batch(session, buf[:len(batch)],
                                                   contract.output_kind, tta))
                for k, t in enumerate(batch):
                    if touches(t, grid, r0, r1):
                        acc.add(t, prob[k], valid[k])
    return sum(len(b) for b in batches)


def map_split(raster, model, client, cancel_event: str, split_rows: int, *,
              probability_path=None, mask_path=None, polygons_path=None,
              threshold: float | None = None, tile_size: int | None = None,
              overlap: int | None = None, batch_size: int = 4, device: str = "auto",
              model_threads: int | None = None, bands: Sequence[int] | None = None,
              rescale: bool = False, dem=None, slope=None, probability_format: str = "float32",
              min_area_m2: float | None = 0.0, fill_holes_m2: float = 0.0, simplify_m: float = 0.0,
              min_slope_deg: float = 0.0, tta: bool = False,
              progress: Callable[[float], None] | None = None,
              is_canceled: Callable[[], bool] | None = None,
              log: Callable[[str], None] | None = None) -> SplitResult:
    """Map ``raster`` in blocks of ``split_rows`` rows on the workers of ``client``; writes the
    same outputs as :func:`~landslide_mapper.core.mapping.engine.map_landslides` would."""
    t_start = time.perf_counter()
    report = progress or (lambda _f: None)
    note = log or (lambda _m: None)
    source = f"Input raster {raster}"
    targets = check_request(raster, (probability_path, mask_path, polygons_path),
                            probability_format, batch_size, inputs=other_inputs(dem, slope, model))
    min_slope_deg = check_min_slope(min_slope_deg, slope if slope is not None else dem)
    if is_auto(model):  # the bundled model that fits this raster, as a single run chooses it
        choice = choose_model(raster, bands=bands)
        for line in choice.explanation():
            note(line)
        model = choice.chosen.name
    model_path, contract, tile, ovl, thr = model_settings(model, tile_size, overlap, threshold)
    with ExitStack() as stack:
        with rio.gdal_env(), rio.open_input(raster) as ds:
            rio.check_georeferenced(ds, source)
            if dem is not None or slope is not None:
                _refuse_terrain_bands(ds, contract, source)
            mapping = map_bands(contract.bands, list(ds.descriptions), explicit=bands,
                                source=source)
            contract, checked = check_input_values(ds, mapping.indexes, contract, source,
                                                   rescale)
            for line in checked:
                note(line)
            if rio.plan_resampling(ds, contract, source) is not None:
                raise InputError(
                    f"{source}: its pixel size differs from the model's "
                    f"({contract.pixel_size_m:g} m), and a split run does not resample; resample "
                    "the raster to the model's pixel size first, or map it without splitting.")
            input_reader(ds, mapping.indexes, contract, source, note)  # refuses an empty raster
            height, width, crs, transform = ds.height, ds.width, ds.crs, ds.transform
        terrain = (None, None)
        if targets[2] is not None and (dem is not None or slope is not None):
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="landslide-terrain-"))
            terrain = terrain_sources(raster, dem, workdir, slope, is_canceled)
            note(terrain_note(terrain))
        blocks = row_blocks(height, split_rows)
        note(f"{source}: {len(blocks)} block{'s' if len(blocks) != 1 else ''} of up to "
             f"{split_rows} rows, tile overlap {ovl} px as margin.")
        staging = Staging(*targets, resampled=False)
        parts_dir = rio.temporary_sibling(next(p for p in targets if p is not None), "parts")
        try:
            parts_dir.mkdir()
            parts = [parts_dir / f"rows-{r0:09d}.tif" for r0, _ in blocks]
            futures = [client.submit(map_rows, str(raster), worker_model_ref(model, model_path),
                                     mapping.indexes, tile, ovl, batch_size, device,
                                     model_threads, r0, r1, str(part), cancel_event, tta,
                                     contract.bands, pure=False)
                       for (r0, r1), part in zip(blocks, parts)]
            wait_all(futures, client, cancel_event, is_canceled, lambda f: report(0.8 * f))
            for f in futures:
                f.result()  # a block's error, as the worker raised it
            writers = RowWriters(thr, probability_format)
            _assemble(parts, blocks, staging, writers, crs, transform, width, height,
                      is_canceled, lambda f: report(0.8 + 0.1 * f))
            flat = None if targets[2] is None else polygons_step(
                staging, contract.name, (min_area_m2, fill_holes_m2, simplify_m), terrain,
                min_slope_deg, is_canceled, lambda f: report(0.9 + 0.1 * f), note)
            if is_canceled is not None and is_canceled():
                raise CancelledError("Cancelled by the user; no output was written.")
            staging.publish()
        except BaseException:
            staging.discard()
            raise
        finally:
            shutil.rmtree(parts_dir, ignore_errors=True)
    report(1.0)
    return SplitResult(int(flat.count) if flat else 0, time.perf_counter() - t_start,
                       int(flat.flat_count) if flat else 0,
                       round(flat.flat_area_m2 / 10_000, 2) if flat else 0.0)


def _refuse_terrain_bands(ds, contract, source: str) -> None:
    """A DEM or slope raster is only for the polygons in a split run: refuse a model that would
    need terrain bands derived from it (a single run derives them; a split run does not)."""
    present = {terrain_kind(d or "") for d in ds.descriptions} - {None}
    missing = sorted({k for k in map(spec_terrain_kind, contract.bands)
                      if k is not None and k not in present})
    if missing:
        raise InputError(
            f"{source}: the model '{contract.name}' needs {' and '.join(missing)} bands the "
            "raster lacks, and a split run does not derive them from a DEM or slope raster; add "
            "them to the raster first ('landslide-mapper prepare --dem'), or map without "
            "--split-rows.")


def worker_model_ref(model, model_path: Path) -> str:
    """What a worker resolves the model from: a bundled model's name as given (the worker has its
    own copy), else the file's absolute path (on storage the workers share)."""
    if Path(str(model)).is_file():
        return str(Path(model_path).resolve())
    return str(model)


def wait_all(futures: list, client, cancel_event: str, is_canceled, progress) -> None:
    """Wait for ``futures``, reporting the fraction done; on cancel, tell the workers (they stop
    at their next batch and clean up) and wait for them before raising CancelledError."""
    from distributed import Event

    total = max(1, len(futures))
    while True:
        done = sum(f.done() for f in futures)
        progress(done / total)
        if done == len(futures):
            return
        if is_canceled is not None and is_canceled():
            Event(cancel_event, client=client).set()
            client.gather(futures, errors="skip")
            raise CancelledError("Cancelled by the user; no output was written.")
        time.sleep(_POLL_S)


def _assemble(parts: list[Path], blocks, staging: Staging, writers: RowWriters, crs, transform,
              width: int, height: int, is_canceled, progress) -> None:
    """The parts' rows, in order, into the (temporary) probability and mask rasters."""
    import rasterio

    def create(path: Path, dtype: str, nodata, desc: str, scale=None):
        return rio.create_output(path, crs=crs, transform=transform, width=width, height=height,
                                 dtype=dtype, nodata=nodata, description=desc, scale=scale)

    opened = []
    try:
        if staging.prob is not None:
            writers.prob = create(staging.prob, "uint8", rio.UINT8_NODATA,
                                  "landslide probability (x 1/254)", rio.UINT8_SCALE) \
                if writers.uint8 else create(staging.prob, "float32", rio.PROBABILITY_NODATA,
                                             "landslide probability")
            opened.append(writers.prob)
        if staging.mask is not None:
            writers.mask = create(staging.mask, "uint8", rio.UINT8_NODATA, "landslide mask")
            opened.append(writers.mask)
        for part, (r0, r1) in zip(parts, blocks):
            with rasterio.open(part) as src:
                for a in range(0, r1 - r0, rio.BLOCK):
                    if is_canceled is not None and is_canceled():
                        raise CancelledError("Cancelled by the user; no output was written.")
                    n = min(rio.BLOCK, r1 - r0 - a)
                    data = src.read(window=Window(0, a, width, n))
                    writers.write(r0 + a, data[0], data[1] > 0.5)
            progress(r1 / height)
    finally:
        for dst in opened:
            dst.close()
