"""Calibration tiles from rasters, read the way the engine reads them, and int8 models made from them.

:func:`calibration_batches` reads tiles of the model's size from raster files (or folders of
them) with the engine's own :class:`~..raster.io.BandReader`: bands matched as in a run (by
description, else by order, or as given), the contract's scaling applied, nodata fed as the
contract's ``nodata_value``, rasters off the model's pixel size resampled onto its grid. The tiles
are spread over all rasters by a fixed rule, so the same inputs give the same model.
:func:`quantize_with_rasters` hands them to :func:`~..models.quantize.quantize_int8`.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from ..contract import ModelContract, read_contract
from ..errors import InputError
from ..models.quantize import Agreement, compare_models, quantize_int8
from ..models.registry import resolve_model
from ..paths import check_distinct
from ..raster import io as rio
from ..raster.bands import map_bands
from .tiling import TileGrid

RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".img", ".jp2", ".png", ".jpg", ".jpeg")
#: A tile with fewer valid pixels than this share says little about the data: skipped.
MIN_VALID_SHARE = 0.5


@dataclass(frozen=True)
class CalibrationPlan:
    """The rasters and the tiles (raster index, row, col) chosen from them, in reading order."""

    rasters: tuple[Path, ...]
    tiles: tuple[tuple[int, int, int], ...]
    candidates: int


def calibration_rasters(sources: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Raster files, or folders whose raster files (any depth, sorted) are all used."""
    if not sources:
        raise InputError("Calibration data: none given (expected raster files or folders).")
    found: list[Path] = []
    for s in sources:
        p = Path(s)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*")
                           if f.is_file() and f.suffix.lower() in RASTER_SUFFIXES)
            if not files:
                raise InputError(
                    f"Calibration data {p}: the folder holds no raster file (expected "
                    f"{', '.join(RASTER_SUFFIXES)}).")
            found += files
        elif p.is_file():
            found.append(p)
        else:
            raise InputError(f"Calibration data {p}: not found (expected a raster file or folder).")
    return found


def plan_calibration(rasters: Sequence[Path], contract: ModelContract, tiles: int,
                     seed: int = 0) -> CalibrationPlan:
    """Choose ``tiles`` tiles of the model's size (no overlap) spread over all ``rasters``.

    Every raster's tile grid is listed; a seeded permutation picks the tiles, which are then
    read raster by raster.
    """
    if not isinstance(tiles, int) or tiles < 1:
        raise InputError(f"Calibration tiles: expected a whole number >= 1, found {tiles!r}.")
    size = contract.tile_size
    candidates: list[tuple[int, int, int]] = []
    for k, path in enumerate(rasters):
        with rio.open_input(path) as ds:
            grid = TileGrid.build(*_working_shape(ds, contract, path), size, 0)
        candidates += [(k, t.row, t.col) for t in grid.tiles()]
    order = np.random.default_rng(seed).permutation(len(candidates))
    # Twice as many as asked for, so tiles skipped for nodata can be replaced.
    chosen = sorted(candidates[i] for i in order[:2 * tiles])
    return CalibrationPlan(tuple(rasters), tuple(chosen), len(candidates))


def calibration_batches(plan: CalibrationPlan, contract: ModelContract, tiles: int, *,
                        batch_size: int = 4, bands: Sequence[int] | None = None,
                        log: Callable[[str], None] | None = None) -> Iterator[np.ndarray]:
    """Normalised tiles (n, bands, tile, tile) float32 from ``plan``: at most ``tiles``, skipping
    tiles with less than :data:`MIN_VALID_SHARE` valid pixels."""
    size = contract.tile_size
    batch = np.empty((batch_size, contract.band_count, size, size), np.float32)
    n = taken = 0
    for k, path in enumerate(plan.rasters):
        mine = [(r, c) for kk, r, c in plan.tiles if kk == k]
        if not mine or taken >= tiles:
            continue
        with ExitStack() as stack:
            stack.enter_context(rio.gdal_env())
            reader = _reader(stack, path, contract, bands, log)
            for r, c in mine:
                valid = reader.read_tile(r, c, size, batch[n])
                if valid.mean() < MIN_VALID_SHARE:
                    continue
                n, taken = n + 1, taken + 1
                if n == batch_size:
                    yield batch.copy()
                    n = 0
                if taken >= tiles:
                    break
    if n:
        yield batch[:n].copy()


def quantize_with_rasters(
    model: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    sources: Sequence[str | os.PathLike[str]],
    *,
    tiles: int = 64,
    bands: Sequence[int] | None = None,
    weight_type: str = "int8",
    reduce_range: bool = False,
    log: Callable[[str], None] | None = None,
) -> tuple[ModelContract, Agreement]:
    """Quantize ``model`` (a bundled name or .onnx) to int8, calibrated on tiles of ``sources``.

    Returns the int8 model's contract and how it agrees with the float model on the same tiles.
    """
    src = resolve_model(model)
    contract = read_contract(src)
    rasters = calibration_rasters(sources)
    check_distinct([("Model file", src), *(("Calibration raster", r) for r in rasters)],
                   [("Int8 model", out_path)])
    plan = plan_calibration(rasters, contract, tiles)
    names = sorted({p.name for p in rasters})
    calibration = {
        "rasters": names if len(names) <= 12 else [*names[:12], f"... {len(names) - 12} more"],
        "reading": "landslide-mapper's tile reader, through the contract's band scaling",
        "tile_size": contract.tile_size,
    }

    def batches() -> Iterator[np.ndarray]:
        return calibration_batches(plan, contract, tiles, bands=bands, log=log)

    compact = quantize_int8(src, out_path, batches(), calibration=calibration,
                            weight_type=weight_type, reduce_range=reduce_range)
    agreement = compare_models(src, out_path, batches())
    return compact, agreement


def _georeferenced(ds) -> bool:
    from affine import Affine

    return ds.crs is not None and ds.transform != Affine.identity()


def _working_shape(ds, contract: ModelContract, path: Path) -> tuple[int, int]:
    """(height, width) of the grid the model runs on for this raster."""
    if _georeferenced(ds):
        plan = rio.plan_resampling(ds, contract, f"Calibration raster {path}")
        if plan is not None:
            return plan.height, plan.width
    return ds.height, ds.width


def _reader(stack: ExitStack, path: Path, contract: ModelContract,
            bands: Sequence[int] | None, log: Callable[[str], None] | None) -> rio.BandReader:
    """The engine's band reader on ``path`` (resampled onto the model's grid when needed)."""
    source = f"Calibration raster {path}"
    ds = stack.enter_context(rio.open_input(path))
    mapping = map_bands(contract.bands, list(ds.descriptions), explicit=bands, source=source)
    if log is not None and mapping.method == "order":
        log(f"{source}: " + " ".join(mapping.messages))
    if _georeferenced(ds):
        plan = rio.plan_resampling(ds, contract, source)
        if plan is not None:
            ds = stack.enter_context(rio.working_dataset(ds, plan))
    return rio.BandReader(ds, mapping.indexes, contract.bands, contract.nodata_value)
