"""A mapping run's progress: each step's own 0..1 mapped onto the run's 0..1, never going back."""

from __future__ import annotations

from typing import Callable


class RunProgress:
    """Maps each step's own 0..1 onto the run's 0..1 and keeps what is reported monotonic.

    Tiles take the first part, warping back (when resampled) the next, polygons the last 10 %.
    """

    def __init__(self, callback: Callable[[float], None] | None, polygons: bool, resampled: bool):
        self.callback, self.last = callback, 0.0
        self.polygon_start = 0.9 if polygons else 1.0
        self.warp_start = 0.8 * self.polygon_start if resampled else self.polygon_start

    def _report(self, f: float) -> None:
        f = min(1.0, f)
        if f > self.last:
            self.last = f
            if self.callback is not None:
                self.callback(f)

    def tiles(self, f: float) -> None:
        self._report(f * self.warp_start)

    def warp(self, f: float) -> None:
        self._report(self.warp_start + f * (self.polygon_start - self.warp_start))

    def polygons(self, f: float) -> None:
        self._report(self.polygon_start + f * (1.0 - self.polygon_start))

    def done(self) -> None:
        self._report(1.0)
