"""Finishing components: holes, islands, write order, geometry in the CRS, attributes.

The components a strip finished are keyed for writing (:mod:`.components`), have their small holes
filled and possible islands held back (:mod:`.holes`), and are written in key order as soon as no
pending island comes before them, moved to the CRS, cleaned and measured (:mod:`.attributes`).
"""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np

from .attributes import _cleaned, _records, _simplify_tolerance
from .components import _Component, _Finished, _finished, _pixels_to_crs
from .geometry import GroundMeasure
from .holes import _hold_rows, _HoleFiller, _PendingIslands
from .vector_io import PolygonWriter


class _Finisher:
    """Fills holes, absorbs islands, orders, measures and writes finished components."""

    def __init__(self, ds: Any, measure: GroundMeasure, writer: PolygonWriter, *,
                 min_area_m2: float, fill_holes_m2: float, simplify_m: float,
                 model_name: str, min_pixels: int = 0, terrain_fields: tuple[str, ...] = (),
                 min_slope_deg: float = 0.0) -> None:
        self.transform = ds.transform
        self.measure = measure
        self.writer = writer
        self.min_area_m2 = min_area_m2
        self.min_pixels = min_pixels
        self.fill_holes_m2 = fill_holes_m2
        self.model_name = model_name
        self.total_area_m2 = 0.0
        self.terrain_fields = terrain_fields
        self.min_slope_deg = min_slope_deg
        self.flat_count = 0          # polygons dropped for a mean slope under min_slope_deg
        self.flat_area_m2 = 0.0
        self.ready: list[_Finished] = []       # heap, written in key order
        self.next_fid = 1
        self.tolerance = _simplify_tolerance(ds, measure, simplify_m)
        self.islands = _PendingIslands(_hold_rows(ds, measure, fill_holes_m2))
        self.holes = _HoleFiller(measure, ds.transform, fill_holes_m2, self.islands)

    def add(self, done: list[tuple[Any, _Component]], rows_read: int,
            open_bounds: np.ndarray) -> None:
        """Take the components one strip finished; write every one that can no longer change."""
        if not done and not self.islands:
            return
        items = _finished(done)
        if self.fill_holes_m2 > 0:
            items = self.holes.fill_holes(sorted(items))
            self._queue(self.islands.release(rows_read, open_bounds))
        self._queue(items)
        self._write_ready()

    def close(self) -> None:
        self._queue(self.islands.drain())
        self._write_ready()

    def _queue(self, items: list[_Finished]) -> None:
        for item in items:
            heapq.heappush(self.ready, item)

    def _write_ready(self) -> None:
        limit = self.islands.first_key()
        batch = []
        while self.ready and (limit is None or self.ready[0].key < limit):
            batch.append(heapq.heappop(self.ready))
        if batch:
            self._write(batch)

    def _write(self, batch: list[_Finished]) -> None:
        geoms = _pixels_to_crs(np.array([b.geometry for b in batch], dtype=object), self.transform)
        geoms = _cleaned(geoms, self.tolerance)
        kept, records, flat = _records(batch, geoms, self.measure, min_area_m2=self.min_area_m2,
                                       model_name=self.model_name, first_fid=self.next_fid,
                                       min_pixels=self.min_pixels,
                                       terrain_fields=self.terrain_fields,
                                       min_slope_deg=self.min_slope_deg)
        self.flat_count += len(flat)
        self.flat_area_m2 += sum(flat)
        for record in records:
            self.next_fid += 1
            self.total_area_m2 += record["area_m2"]
        self.writer.write_many(kept, records)
