"""Datasets: Landslide4Sense HDF5, image/mask tile folders, georeferenced chip folders.

Every reader gives an image as float32 (bands, rows, cols) in the units it is stored in and a
mask as uint8 (rows, cols) holding 0 (background), 1 (landslide) and 255 (ignored).
"""

from .dataset import SegmentationDataset, band_statistics
from .labels import IGNORE, LabelRule
from .readers import Pair, chip_pairs, l4s_pairs, read_pair, tile_pairs
from .split import holdout_split, kfold_split

__all__ = [
    "IGNORE",
    "LabelRule",
    "Pair",
    "chip_pairs",
    "l4s_pairs",
    "tile_pairs",
    "read_pair",
    "holdout_split",
    "kfold_split",
    "SegmentationDataset",
    "band_statistics",
]
