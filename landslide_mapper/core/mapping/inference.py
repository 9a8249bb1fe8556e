"""The tiled inference pipeline: read -> infer -> blend/write, three stages overlapping in time.

* Reader threads read and normalize the next batches of tiles into bounded queues.
* The calling thread runs the model (onnxruntime releases the GIL while it computes).
* A writer thread turns outputs into probabilities, blends them into a strip of rows and flushes
  finished rows.

Only the strip of rows that tiles may still touch is held in memory (tile size + one block of
rows), so peak memory does not grow with the raster's height; queues hold at most a few batches.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..errors import CancelledError
from ..models.runtime import ModelSession, run_batch, to_probability
from ..raster.io import BLOCK, BandReader
from .tiling import Tile, TileGrid, tile_weights, weight_sums

Sink = Callable[[int, np.ndarray, np.ndarray], None]
"""sink(row0, probability (rows, width) float32, valid (rows, width) bool): write finished rows."""

#: Memory for input batch buffers beyond the two that pipelining needs (small batches get more).
_BUFFER_BYTES = 64 * 2**20
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


class StripAccumulator:
    """Weighted sums of probabilities for the rows still being written, flushed in row blocks."""

    def __init__(self, grid: TileGrid, sink: Sink, block: int = BLOCK):
        self.grid, self.sink, self.block = grid, sink, block
        self.cap = grid.tile + block
        w = grid.width
        # A float64 sum: a constant field then blends back to exactly the same float32 value.
        # The weight sums factorize over rows and columns (tiling.weight_sums): no per-pixel sum.
        self.acc = np.zeros((self.cap, w), np.float64)
        self.row_sums, self.col_sums = weight_sums(grid)
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
        h, w = min(g.tile, g.height - t.row), min(g.tile, g.width - t.col)
        r = t.row - self.base
        wt = self._weights(t)[:h, :w]
        self.acc[r:r + h, t.col:t.col + w] += np.multiply(prob[:h, :w], wt, dtype=np.float64)
        self.valid[r:r + h, t.col:t.col + w] = valid[:h, :w]
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
        self.sink(self.base, prob, valid)
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
) -> RunStats:
    """Run the model over every tile of ``grid`` and hand finished rows to ``sink``.

    ``readers``: one :class:`BandReader` per reader thread, each on its own dataset handle (GDAL
    handles are not shared between threads); reader ``i`` prepares batches ``i, i + n, ...`` and
    the model takes them in order. ``progress`` receives the fraction of tiles done (0..1,
    monotonic) from the calling thread. Raises CancelledError when ``is_canceled()`` turns true;
    the caller removes partial outputs.
    """
    readers = [readers] if isinstance(readers, BandReader) else list(readers)
    pipe = _Pipeline()
    tiles = list(grid.tiles())
    batches = [tiles[i:i + batch_size] for i in range(0, len(tiles), batch_size)]
    size = grid.tile
    pools, n_buffers = _buffer_pools(len(readers), batch_size, len(readers[0].indexes), size)
    ready = [queue.Queue(maxsize=n_buffers) for _ in readers]
    to_writer: queue.Queue = queue.Queue(maxsize=n_buffers)
    acc = StripAccumulator(grid, sink)

    threads = [threading.Thread(target=pipe.guarded(_read_stage), daemon=True,
                                args=(pipe, readers[i], batches[i::len(readers)], pools[i],
                                      ready[i], size),
                                name=f"landslide-mapper-read-{i}") for i in range(len(readers))]
    writer = threading.Thread(target=pipe.guarded(_write_stage), name="landslide-mapper-write",
                              args=(pipe, to_writer, acc, output_kind), daemon=True)
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
            out = run_batch(model, buf[:len(batch)])
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


def _read_stage(pipe: _Pipeline, reader: BandReader, batches: list[list[Tile]],
                pool: queue.Queue, ready: queue.Queue, size: int) -> None:
    """A reader thread: read and normalize ``batches`` into buffers of ``pool``, in order."""
    for batch in batches:
        buf = pipe.get(pool)
        valid = np.empty((len(batch), size, size), bool)
        for k, t in enumerate(batch):
            valid[k] = reader.read_tile(t.row, t.col, size, buf[k])
        pipe.put(ready, (batch, buf, valid))


def _write_stage(pipe: _Pipeline, to_writer: queue.Queue, acc: StripAccumulator,
                 output_kind: str) -> None:
    """The writer thread: model outputs -> probabilities, blended into the strip (None ends)."""
    while True:
        item = pipe.get(to_writer)
        if item is None:
            return
        batch, out, valid = item
        prob = to_probability(out, output_kind)
        for k, t in enumerate(batch):
            acc.add(t, prob[k], valid[k])
