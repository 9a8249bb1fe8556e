"""The evaluation's pass over its grid, in strips of rows: confusion counts and raster polygons.

Memory stays flat whatever the grid: each input is read one strip at a time (a raster through a
nearest-neighbour ``WarpedVRT`` when it is on another grid; polygons rasterized on the strip's
transform) as boolean masks, the confusion counts are summed, and a raster input's landslide
pixels are joined into polygons across strips by the vectorizer's merger
(:mod:`..polygons.strips`, 4-connectivity). Only the polygons are kept: matching needs them.
A raster's polygons come in the vectorizer's write order (last row, then bounds).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.features import rasterize
from rasterio.windows import Window

from ..errors import CancelledError
from ..polygons.components import _finished, _pixels_to_crs
from ..polygons.mask_reading import CACHE_BYTES
from ..polygons.strips import _Merger
from ..raster.io import reading
from .metrics import SegmentationScores

#: Grid pixels per strip (rows = this // grid width, at least one).
STRIP_PIXELS = 1_000_000


@dataclass
class Grid:
    """The pixel grid scores are counted on."""

    crs: Any
    transform: Affine
    width: int
    height: int


class PolygonStrips:
    """Polygons (grid CRS) rasterized a strip at a time; every pixel of them is valid."""

    def __init__(self, geoms: list[Any]) -> None:
        self.geoms = np.asarray(list(geoms), dtype=object)
        self.tree = shapely.STRtree(self.geoms) if len(self.geoms) else None
        self.polygons: list[Any] | None = None

    def strip(self, grid: Grid, row: int, height: int) -> tuple[np.ndarray, np.ndarray | None]:
        return _burn(self.geoms, self.tree, grid, row, height), None


class RasterStrips:
    """A mask/probability raster read on the grid a strip at a time, ``>= threshold`` landslide;
    nodata (and 255 in a uint8 raster without nodata) is not valid. Its polygons are built as
    it is read (:attr:`polygons` once the pass is over)."""

    def __init__(self, ds: Any, grid: Grid, threshold: float, source: str) -> None:
        self.ds, self.threshold, self.source = ds, threshold, source
        self.vrt = None
        same = (ds.crs == grid.crs and ds.transform.almost_equals(grid.transform)
                and ds.width == grid.width and ds.height == grid.height)
        if not same:
            from rasterio.vrt import WarpedVRT
            from rasterio.warp import Resampling

            self.vrt = WarpedVRT(ds, crs=grid.crs, transform=grid.transform, width=grid.width,
                                 height=grid.height, resampling=Resampling.nearest,
                                 src_nodata=ds.nodata, add_alpha=ds.nodata is None)
        self.scale = (ds.scales[0] if ds.scales else 1.0) or 1.0
        self.offset = (ds.offsets[0] if ds.offsets else 0.0) or 0.0
        self.no_255 = ds.nodata is None and ds.dtypes[0] == "uint8"
        self.merger = _Merger(grid.width, source=source)
        self.finished: list[Any] = []
        self.polygons = None

    def close(self) -> None:
        if self.vrt is not None:
            self.vrt.close()

    def strip(self, grid: Grid, row: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        window = Window(0, row, grid.width, height)
        src = self.vrt if self.vrt is not None else self.ds
        with reading(self.source), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = src.read(1, window=window).astype("float64")
            valid = src.read_masks(1, window=window) > 0
        if self.no_255:
            valid &= data != 255
        valid &= np.isfinite(data)
        with np.errstate(invalid="ignore"):
            land = np.nan_to_num(data * self.scale + self.offset, nan=0.0) >= self.threshold
        land &= valid
        done = self.merger.add_strip(land, None, row, row + height >= grid.height)
        if done:
            self.finished += _finished(done)
        return land, valid

    def finish(self, grid: Grid) -> None:
        """The polygons, in the grid's CRS, in write order."""
        self.finished.sort()
        geoms = np.array([f.geometry for f in self.finished], dtype=object)
        self.polygons = list(_pixels_to_crs(geoms, grid.transform)) if len(geoms) else []
        self.finished = []


def _burn(geoms: np.ndarray, tree: Any, grid: Grid, row: int, height: int) -> np.ndarray:
    """The polygons ``geoms`` rasterized on rows ``row`` .. ``row + height`` of the grid."""
    shape = (height, grid.width)
    if tree is None:
        return np.zeros(shape, bool)
    t = grid.transform * Affine.translation(0, row)
    x0, y0 = t * (0, 0)
    x1, y1 = t * (grid.width, height)
    hits = tree.query(shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
    if not len(hits):
        return np.zeros(shape, bool)
    return rasterize([(g, 1) for g in geoms[np.sort(hits)]], out_shape=shape, transform=t,
                     fill=0, dtype="uint8").astype(bool)


def scan(grid: Grid, pred: Any, ref: Any, clip: Any, progress: Callable[[float], None],
         is_canceled: Callable[[], bool]) -> SegmentationScores:
    """Confusion counts over the grid (valid in both, inside ``clip``), as one image; the raster
    inputs' :attr:`polygons` are ready after it."""
    counts = SegmentationScores()
    rows = max(1, STRIP_PIXELS // max(1, grid.width))
    area = PolygonStrips([clip]) if clip is not None else None
    tp = fp = fn = tn = 0
    with rasterio.Env(GDAL_CACHEMAX=CACHE_BYTES):
        for row in range(0, grid.height, rows):
            if is_canceled():
                raise CancelledError("Evaluation cancelled; nothing was written.")
            height = min(rows, grid.height - row)
            p, p_valid = pred.strip(grid, row, height)
            r, r_valid = ref.strip(grid, row, height)
            valid = np.ones(p.shape, bool) if area is None else area.strip(grid, row, height)[0]
            for v in (p_valid, r_valid):
                if v is not None:
                    valid &= v
            tp += int(np.count_nonzero(p & r & valid))
            fp += int(np.count_nonzero(p & ~r & valid))
            fn += int(np.count_nonzero(~p & r & valid))
            tn += int(np.count_nonzero(~p & ~r & valid))
            progress(0.1 + 0.6 * (row + height) / grid.height)
    for side in (pred, ref):
        if isinstance(side, RasterStrips):
            side.finish(grid)
    counts.add_image(tp, fp, fn, tn)
    return counts
