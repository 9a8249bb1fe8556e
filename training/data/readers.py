"""Finding image/mask pairs on disk and reading them.

Layouts:

* ``l4s-h5``: Landslide4Sense HDF5, official (``TrainData/img/image_N.h5`` +
  ``TrainData/mask/mask_N.h5``, likewise ``ValidData``) or flat (``images/image_N.h5`` +
  ``masks/mask_N.h5``); image key ``img`` (rows, cols, 14), mask key ``mask``.
* ``tiles``: ``images/`` + ``masks/`` (names configurable) paired by file name stem; a mask
  named like its image with ``image``/``img`` replaced by ``mask`` also pairs. PNG, JPEG or TIFF.
* ``chips``: georeferenced GeoTIFF chips, ``images/*.tif`` + ``masks/*.tif`` paired by stem;
  mask 1 = landslide, 0 = background, the mask's nodata value (or 255) = ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .labels import IGNORE, LabelRule

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".h5")
FORMATS = ("l4s-h5", "tiles", "chips")

#: Landslide4Sense values are raw values divided by this per-band vector (stated by the dataset
#: authors); order B1..B12 (with B10, no B8A), slope, DEM.
L4S_VECTOR = (
    1111.81236406,
    824.63171476,
    663.41636217,
    445.17289745,
    645.8582926,
    1547.73508126,
    1960.44401001,
    1941.32229668,
    674.07572865,
    9.04787384,
    1113.98338755,
    519.90397929,
    20.29228266,
    772.83144788,
)


@dataclass(frozen=True)
class Pair:
    """One image and its mask, with how to read them."""

    image: Path
    mask: Path | None
    format: str = "tiles"
    label: LabelRule = field(default_factory=LabelRule)
    channels: tuple[int, ...] | None = None
    source: str = ""

    @property
    def name(self) -> str:
        return f"{self.source}/{self.image.stem}" if self.source else self.image.stem

    def __str__(self) -> str:  # sort key for splits
        return self.name


def _folder(root: Path, name: str) -> Path:
    """``root/name``, matched case-insensitively (``Images`` vs ``images``)."""
    direct = root / name
    if direct.is_dir():
        return direct
    if root.is_dir():
        for child in root.iterdir():
            if child.is_dir() and child.name.lower() == name.lower():
                return child
    raise FileNotFoundError(f"{root}: no folder {name!r} (expected image and mask folders there)")


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _mask_keys(stem: str) -> list[str]:
    keys = [stem]
    for word in ("image", "img"):
        if word in stem:
            keys.append(stem.replace(word, "mask", 1))
    return keys


def _pair_by_name(images: list[Path], masks: list[Path], where: str) -> list[tuple[Path, Path]]:
    by_stem = {m.stem: m for m in masks}
    pairs, missing = [], []
    for img in images:
        match = next((by_stem[k] for k in _mask_keys(img.stem) if k in by_stem), None)
        if match is None:
            missing.append(img.name)
        else:
            pairs.append((img, match))
    if missing:
        raise FileNotFoundError(
            f"{where}: no mask found for {len(missing)} image(s), e.g. {', '.join(missing[:3])} "
            "(masks pair with images by file name; 'image_N' also pairs with 'mask_N')."
        )
    return pairs


def l4s_pairs(
    root: str | Path,
    split: str = "TrainData",
    source: str = "",
    channels: Sequence[int] | None = None,
) -> list[Pair]:
    """Pairs of a Landslide4Sense folder, official layout (``split`` subfolder) or flat."""
    root = Path(root)
    if (root / split / "img").is_dir():
        img_dir, mask_dir = root / split / "img", root / split / "mask"
    elif (root / "images").is_dir():
        img_dir, mask_dir = root / "images", root / "masks"
    elif (root / "img").is_dir():
        img_dir, mask_dir = root / "img", root / "mask"
    else:
        raise FileNotFoundError(
            f"{root}: not a Landslide4Sense folder (expected {split}/img + {split}/mask, "
            "or images/ + masks/, holding image_N.h5 and mask_N.h5)."
        )
    ch = tuple(channels) if channels is not None else None
    images = [p for p in _files(img_dir) if p.suffix == ".h5"]
    if not mask_dir.is_dir():
        return [Pair(p, None, "l4s-h5", channels=ch, source=source) for p in images]
    masks = [p for p in _files(mask_dir) if p.suffix == ".h5"]
    return [
        Pair(i, m, "l4s-h5", channels=ch, source=source)
        for i, m in _pair_by_name(images, masks, str(root))
    ]


def tile_pairs(
    root: str | Path,
    images: str = "images",
    masks: str = "masks",
    *,
    label: LabelRule | None = None,
    channels: Sequence[int] | None = None,
    source: str = "",
) -> list[Pair]:
    """Pairs of an image/mask tile folder."""
    root = Path(root)
    img_dir, mask_dir = _folder(root, images), _folder(root, masks)
    found = _pair_by_name(_files(img_dir), _files(mask_dir), str(root))
    ch = tuple(channels) if channels is not None else None
    return [Pair(i, m, "tiles", label or LabelRule(), ch, source) for i, m in found]


def chip_pairs(
    root: str | Path, *, channels: Sequence[int] | None = None, source: str = ""
) -> list[Pair]:
    """Pairs of a georeferenced chip folder (``images/*.tif`` + ``masks/*.tif``)."""
    root = Path(root)
    found = _pair_by_name(
        _files(_folder(root, "images")), _files(_folder(root, "masks")), str(root)
    )
    ch = tuple(channels) if channels is not None else None
    return [Pair(i, m, "chips", LabelRule(value=1, ignore=IGNORE), ch, source) for i, m in found]


def find_pairs(fmt: str, root: str | Path, **options) -> list[Pair]:
    """Pairs of ``root`` in format ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "l4s-h5":
        return l4s_pairs(
            root,
            options.get("split", "ValidData"),
            options.get("source", ""),
            options.get("channels"),
        )
    if fmt == "tiles":
        return tile_pairs(
            root,
            options.get("images", "images"),
            options.get("masks", "masks"),
            label=options.get("label"),
            channels=options.get("channels"),
            source=options.get("source", ""),
        )
    if fmt == "chips":
        return chip_pairs(root, channels=options.get("channels"), source=options.get("source", ""))
    raise ValueError(f"data format {fmt!r}: not known; expected one of {', '.join(FORMATS)}.")


def _read_raster(path: Path) -> tuple[np.ndarray, float | None]:
    """(bands, rows, cols) and the nodata value; TIFF through rasterio, others through Pillow."""
    if path.suffix.lower() in (".tif", ".tiff"):
        import warnings

        import rasterio
        from rasterio.errors import NotGeoreferencedWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)  # plain TIFF tiles are fine
            with rasterio.open(path) as src:
                return src.read(), src.nodata
    from PIL import Image

    with Image.open(path) as im:
        if im.mode == "P":
            arr = np.asarray(im)  # palette indices are the labels
        else:
            arr = np.asarray(im)
    return (arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)), None


def read_image(pair: Pair) -> np.ndarray:
    """float32 (bands, rows, cols) in stored units."""
    if pair.format == "l4s-h5":
        import h5py

        with h5py.File(pair.image, "r") as f:
            arr = np.moveaxis(np.asarray(f["img"], dtype=np.float32), -1, 0)
    else:
        arr, _ = _read_raster(pair.image)
        arr = arr.astype(np.float32)
    if pair.channels is not None:
        if max(pair.channels) >= arr.shape[0]:
            raise ValueError(
                f"{pair.image}: has {arr.shape[0]} bands, channels {pair.channels} asked"
            )
        arr = arr[list(pair.channels)]
    return np.ascontiguousarray(arr)


def read_mask(pair: Pair) -> np.ndarray:
    """uint8 (rows, cols): 0 background, 1 landslide, 255 ignored."""
    if pair.mask is None:
        raise FileNotFoundError(
            f"{pair.image}: has no mask (a test split without labels cannot be scored)"
        )
    if pair.format == "l4s-h5":
        import h5py

        with h5py.File(pair.mask, "r") as f:
            return (np.asarray(f["mask"]) == 1).astype(np.uint8)
    raw, nodata = _read_raster(pair.mask)
    if pair.format == "chips":
        plane = raw[0]
        out = (plane == 1).astype(np.uint8)
        out[plane == IGNORE] = IGNORE
        if nodata is not None and nodata not in (0, 1):
            out[plane == nodata] = IGNORE
        return out
    return pair.label.apply(raw[0] if raw.shape[0] == 1 else np.moveaxis(raw, 0, -1))


def read_pair(pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    image, mask = read_image(pair), read_mask(pair)
    if image.shape[1:] != mask.shape:
        raise ValueError(
            f"{pair.image}: image is {image.shape[1:]} pixels "
            f"but its mask {pair.mask} is {mask.shape}"
        )
    return image, mask
