"""The tiled inference pipeline: read -> infer -> blend/write, three stages overlapping in time.

* Reader threads read and normalize the next batches of tiles into bounded queues.
* The calling thread runs the model (onnxruntime releases the GIL while it computes).
* A writer thread turns outputs into probabilities, blends them into a strip of rows and flushes
  finished rows.

Only the strip of rows that tiles may still touch is held in memory (tile size + one block of
rows), so peak memory does not grow with the raster's height; and a raster wider than
:func:`strip_columns` allows is blended in column blocks, one after the other (the tiles reaching
across a block boundary run for both blocks), so it does not grow with the width either. Queues
hold at most a few batches.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..errors import CancelledError
from ..models.runtime import ModelSession, to_probability
from ..raster.io import BLOCK, BandReader
from .tiling import Tile, TileGrid, column_blocks, tile_weights, weight_sums
from .tta import PROBABILITY_KIND, score_batch

Sink = Callable[..., None]
"""sink(row0, probability (rows, cols) float32, valid (rows, cols) bool[, col0]): write finished
rows; ``col0``, the first column, is passed only when the raster is blended in column blocks."""

#: Memory for input batch buffers beyond the two that pipelining needs (small batches get more).
_BUFFER_BYTES = 64 * 2**20
#: Memory for the blending strip (its sums, validity and the rows being flushed).
STRIP_BYTES = 64 * 2**20
_POLL_S = 0.05


class _Stopped(Exception):
    """Another stage failed or the run was cancelled: stop this one quietly."""


@dataclass
class RunStats:
    """What a run did: tiles, scored pixels, and the time the model spent against the wall time."""

    tiles: int = 0
    valid_pixels: int = 0
    model_seconds: float = 0.0
    wall_seconds: float = 0.0

    @property
    def model_busy(self) -> float:
        return self.model_seconds / self.wall_seconds if self.wall_seconds else 0.0


def strip_columns(tile: int, block: int = BLOCK, budget: int | None = None) -> int:
    """The widest column block whose strip fits ``budget`` bytes (:data:`STRIP_BYTES`): per
    column, ``tile + block`` rows of a float64 sum and a validity flag, and ``block`` rows of
    flush buffers."""
    budget = STRIP_BYTES if budget is None else budget
    return max(block, budget // ((tile + block) * 9 + block * 16))


class StripAccumulator:
    """Weighted sums of probabilities for the rows still being written, flushed in row blocks.

    ``cols``: the column block ``(c0, c1)`` it blends (default: every column); a tile reaching
    past it adds only its columns inside.
    """

    def __init__(self, grid: TileGrid, sink: Sink, block: int = BLOCK,
                 cols: tuple[int, int] | None = None):
        self.grid, self.sink, self.block = grid, sink, block
        self.c0, self.c1 = cols or (0, grid.width)
        self.whole = (self.c0, self.c1) == (0, grid.width)
        self.cap = grid.tile + block
        w = self.c1 - self.c0
        # A float64 sum: a constant field then blends back to exactly the same float32 value.
        # The weight sums factorize over rows and columns (tiling.weight_sums): no per-pixel sum.
        self.acc = np.zeros((self.cap, w), np.float64)
        self.row_sums, col_sums = weight_sums(grid)
        self.col_sums = col_sums[self.c0:self.c1]
        self.valid = np.zeros((self.cap, w), bool)
        self.base = 0
        self.weights = {}
        self.valid_pixels = 0

    def _weights(self, t: Tile) -> np.ndarray:
        key = (t.top, t.bottom, t.left, t.right)
        if key not in self.weights:
            self.weights[key] = tile_weights(self.grid, t)
        return self.weights[key]

    def add(self, t: Tile, prob: np.ndarray, valid: np.ndarray) -> None:
        """Blend one tile's probabilities (tile x tile) into the strip."""
        g = self.grid
        h = min(g.tile, g.height - t.row)
        a, b = max(t.col, self.c0), min(t.col + g.tile, g.width, self.c1)  # columns kept
        r = t.row - self.base
        if b > a:
            ta, tb, sa, sb = a - t.col, b - t.col, a - self.c0, b - self.c0
            wt = self._weights(t)[:h, ta:tb]
            self.acc[r:r + h, sa:sb] += np.multiply(prob[:h, ta:tb], wt, dtype=np.float64)
            self.valid[r:r + h, sa:sb] = valid[:h, ta:tb]
        if t.last_in_row:
            self._flush(g.final_row_after(t.grid_row))

    def _flush(self, final: int) -> None:
        g = self.grid
        if final >= g.height:
            end = final
        else:  # whole blocks only: a GeoTIFF block is then compressed once, when complete
            end = self.base + (final - self.base) // self.block * self.block
        n = end - self.base
        if n <= 0:
            return
        blended = self.acc[:n]  # divided in place: these rows leave the strip now
        blended /= self.row_sums[self.base:end, None]
        blended /= self.col_sums[None, :]
        prob = blended.astype(np.float32)
        valid = self.valid[:n].copy()
        prob[~valid] = np.nan
        self.valid_pixels += int(valid.sum())
        if self.whole:
            self.sink(self.base, prob, valid)
        else:
            self.sink(self.base, prob, valid, self.c0)
        keep = self.cap - n
        for a in (self.acc, self.valid):
            a[:keep] = a[n:]
            a[keep:] = 0
        self.base = end


def run_tiles(
    readers: BandReader | Sequence[BandReader],
    grid: TileGrid,
    model: ModelSession,
    output_kind: str,
    sink: Sink,
    *,
    batch_size: int = 4,
    progress: Callable[[float], None] | None = None,
    is_canceled: Callable[[], bool] | None = None,
    tta: bool = False,
) -> RunStats:
    """Run the model over every tile of ``grid`` and hand finished rows to ``sink``.

    ``readers``: one :class:`BandReader` per reader thread, each on its own dataset handle (GDAL
    handles are not shared between threads); reader ``i`` prepares batches ``i, i + n, ...`` and
    the model takes them in order. ``progress`` receives the fraction of tiles done (0..1,
    monotonic) from the calling thread. ``tta``: each batch is scored in the 8 orientations of
    the square and the probabilities averaged (:mod:`.tta`). Raises CancelledError when
    ``is_canceled()`` turns true; the caller removes partial outputs.
    """
    readers = [readers] if isinstance(readers, BandReader) else list(readers)
    pipe = _Pipeline()
    blocks = column_blocks(grid.width, strip_columns(grid.tile), BLOCK)
    # (column block, tile): block by block, each in row-major order
    tiles = [(k, t) for k, (c0, c1) in enumerate(blocks) for t in grid.tiles_for_columns(c0, c1)]
    batches = [tiles[i:i + batch_size] for i in range(0, len(tiles), batch_size)]
    size = grid.tile
    pools, n_buffers = _buffer_pools(len(readers), batch_size, len(readers[0].indexes), size)
    ready = [queue.Queue(maxsize=n_buffers) for _ in readers]
    to_writer: queue.Queue = queue.Queue(maxsize=n_buffers)
    acc = _BlockedStrips(grid, sink, blocks)

    threads = [threading.Thread(target=pipe.guarded(_read_stage), daemon=True,
                                args=(pipe, readers[i], batches[i::len(readers)], pools[i],
                                      ready[i], size),
                                name=f"landslide-mapper-read-{i}") for i in range(len(readers))]
    writer = threading.Thread(target=pipe.guarded(_write_stage), name="landslide-mapper-write",
                              args=(pipe, to_writer, acc,
                                    PROBABILITY_KIND if tta else output_kind), daemon=True)
    threads.append(writer)
    stats = RunStats(tiles=len(tiles))
    reported = [0.0]

    def report(done: int) -> None:
        # Tiles through the model: deterministic steps; the writer lags by at most a few batches,
        # and 1.0 is reported only once every row is written.
        f = done / max(1, len(tiles))
        if progress is not None and f > reported[0]:
            reported[0] = f
            progress(f)

    def check_cancel() -> None:
        if is_canceled is not None and is_canceled():
            raise CancelledError("Cancelled by the user; no output was written.")

    inferred = 0
    t_start = time.perf_counter()
    for th in threads:
        th.start()
    try:
        for b in range(len(batches)):
            check_cancel()
            batch, buf, valid = pipe.get(ready[b % len(readers)])
            t0 = time.perf_counter()
            out, _ = score_batch(model, buf[:len(batch)], output_kind, tta)
            stats.model_seconds += time.perf_counter() - t0
            pools[b % len(readers)].put(buf)
            pipe.put(to_writer, (batch, out, valid))
            inferred += len(batch)
            report(min(inferred, len(tiles) - 1))
        pipe.put(to_writer, None)
        while writer.is_alive():
            writer.join(timeout=_POLL_S)
            check_cancel()
    except _Stopped:
        pass  # a stage failed: its error is raised below
    except BaseException:
        pipe.stop.set()
        raise
    finally:
        if pipe.stop.is_set():
            for th in threads:
                th.join()
    if pipe.errors:
        raise pipe.errors[0]
    for th in threads:
        th.join()
    stats.wall_seconds = time.perf_counter() - t_start
    stats.valid_pixels = acc.valid_pixels
    report(len(tiles))
    return stats


class _Pipeline:
    """What the stages share: a stop flag, the errors that set it, and queue operations that give
    up (raise :class:`_Stopped`) once it is set instead of blocking for ever."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.errors: list[BaseException] = []

    def put(self, q: queue.Queue, item) -> None:
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                q.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                pass

    def get(self, q: queue.Queue):
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                pass

    def guarded(self, stage: Callable[..., None]) -> Callable[..., None]:
        """``stage`` for a thread: its error is kept for the calling thread and stops the others."""
        def run(*args) -> None:
            try:
                stage(*args)
            except _Stopped:
                pass
            except BaseException as exc:  # handed to the calling thread
                self.errors.append(exc)
                self.stop.set()
        return run


def _buffer_pools(n_readers: int, batch_size: int, n_bands: int,
                  size: int) -> tuple[list[queue.Queue], int]:
    """One pool of input batch buffers per reader, and the number of buffers in each.

    Each reader fills its own fixed pool (one being filled while the model runs on another; more
    when batches are small), recycled so memory stays flat.
    """
    batch_bytes = batch_size * n_bands * size * size * 4
    n_buffers = max(2, min(4, _BUFFER_BYTES // max(1, batch_bytes)))
    pools: list[queue.Queue] = []
    for _ in range(n_readers):
        pool: queue.Queue = queue.Queue()
        for _ in range(n_buffers):
            pool.put(np.empty((batch_size, n_bands, size, size), np.float32))
        pools.append(pool)
    return pools, n_buffers


def _read_stage(pipe: _Pipeline, reader: BandReader, batches: list[list[tuple[int, Tile]]],
                pool: queue.Queue, ready: queue.Queue, size: int) -> None:
    """A reader thread: read and normalize ``batches`` into buffers of ``pool``, in order."""
    for batch in batches:
        buf = pipe.get(pool)
        valid = np.empty((len(batch), size, size), bool)
        for n, (_, t) in enumerate(batch):
            valid[n] = reader.read_tile(t.row, t.col, size, buf[n])
        pipe.put(ready, (batch, buf, valid))


class _BlockedStrips:
    """One :class:`StripAccumulator` per column block, made when its first tile arrives (the
    previous block is then complete and flushed)."""

    def __init__(self, grid: TileGrid, sink: Sink, blocks: list[tuple[int, int]]):
        self.grid, self.sink, self.blocks = grid, sink, blocks
        self.current: StripAccumulator | None = None
        self.block = -1
        self.done_pixels = 0

    @property
    def valid_pixels(self) -> int:
        return self.done_pixels + (self.current.valid_pixels if self.current else 0)

    def add(self, block: int, t: Tile, prob: np.ndarray, valid: np.ndarray) -> None:
        if block != self.block:
            if self.current is not None:
                self.done_pixels += self.current.valid_pixels
            self.current = None  # its memory goes before the next block's comes
            cols = self.blocks[block] if len(self.blocks) > 1 else None
            self.current = StripAccumulator(self.grid, self.sink, cols=cols)
            self.block = block
        self.current.add(t, prob, valid)


def _write_stage(pipe: _Pipeline, to_writer: queue.Queue, acc: _BlockedStrips,
                 output_kind: str) -> None:
    """The writer thread: model outputs -> probabilities, blended into the strip (None ends)."""
    while True:
        item = pipe.get(to_writer)
        if item is None:
            return
        batch, out, valid = item
        prob = to_probability(out, output_kind)
        for n, (block, t) in enumerate(batch):
            acc.add(block, t, prob[n], valid[n])
