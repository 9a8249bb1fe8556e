"""Augmentations applied identically to an image and its mask.

Geometric ones (flips, 90-degree rotations, scale) move image and mask together; radiometric
ones (brightness gain, contrast) touch the image only. Values stay in stored units: the
per-band normalisation comes after, so it ends up unchanged in the exported contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from .labels import IGNORE


@dataclass(frozen=True)
class Augment:
    """Augmentation settings; ``Augment()`` does nothing."""

    flips: bool = False
    rotate90: bool = False
    brightness: tuple[float, float] = (1.0, 1.0)  # multiplicative gain, drawn per image
    contrast: tuple[float, float] = (1.0, 1.0)  # stretch about the image mean, per image
    scale: tuple[float, float] = (1.0, 1.0)  # zoom factor: > 1 magnifies, < 1 shows more ground
    positive_crop: float = 0.0  # chance that a random crop is centred on a landslide pixel

    @classmethod
    def parse(cls, spec: Mapping[str, Any] | None) -> "Augment":
        if not spec:
            return cls()
        kw = dict(spec)
        for key in ("brightness", "contrast", "scale"):
            if key in kw:
                val = kw[key]
                kw[key] = (
                    (float(val), float(val))
                    if isinstance(val, (int, float))
                    else tuple(map(float, val))
                )
        unknown = set(kw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"augment: unknown keys {sorted(unknown)}; "
                f"expected {sorted(cls.__dataclass_fields__)}"
            )
        return cls(**kw)


def crop_or_pad(
    image: np.ndarray,
    mask: np.ndarray,
    size: int,
    rng: np.random.Generator | None,
    positive_crop: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """A ``size`` x ``size`` window: random when ``rng`` is given, else centred.

    Smaller images are padded (image by reflection, mask with the ignore value, so padding is
    never scored).
    """
    _, h, w = image.shape
    ph, pw = max(0, size - h), max(0, size - w)
    if ph or pw:
        top, left = ph // 2, pw // 2
        mode = "reflect" if (h > ph and w > pw) else "edge"
        image = np.pad(image, ((0, 0), (top, ph - top), (left, pw - left)), mode=mode)
        mask = np.pad(mask, ((top, ph - top), (left, pw - left)), constant_values=IGNORE)
        h, w = mask.shape
    if rng is None:
        r0, c0 = (h - size) // 2, (w - size) // 2
    else:
        r0, c0 = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        if positive_crop > 0 and rng.random() < positive_crop:
            rows, cols = np.nonzero(mask == 1)
            if rows.size:
                k = int(rng.integers(rows.size))
                r0 = int(np.clip(rows[k] - size // 2, 0, h - size))
                c0 = int(np.clip(cols[k] - size // 2, 0, w - size))
    return image[:, r0 : r0 + size, c0 : c0 + size], mask[r0 : r0 + size, c0 : c0 + size]


def _resize(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    img = F.interpolate(
        torch.from_numpy(np.ascontiguousarray(image))[None],
        size=(size, size),
        mode="bilinear",
        align_corners=False,
    )[0].numpy()
    msk = (
        F.interpolate(
            torch.from_numpy(np.ascontiguousarray(mask))[None, None].float(),
            size=(size, size),
            mode="nearest",
        )[0, 0]
        .numpy()
        .astype(np.uint8)
    )
    return img, msk


def random_tile(
    image: np.ndarray, mask: np.ndarray, size: int, aug: Augment, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A training tile: scaled random crop, flips, rotation, brightness and contrast."""
    zoom = float(rng.uniform(*aug.scale)) if aug.scale != (1.0, 1.0) else 1.0
    window = max(8, int(round(size / zoom)))
    image, mask = crop_or_pad(image, mask, window, rng, aug.positive_crop)
    if window != size:
        image, mask = _resize(image, mask, size)
    if aug.flips:
        if rng.random() < 0.5:
            image, mask = image[:, :, ::-1], mask[:, ::-1]
        if rng.random() < 0.5:
            image, mask = image[:, ::-1, :], mask[::-1, :]
    if aug.rotate90:
        k = int(rng.integers(4))
        image, mask = np.rot90(image, k, axes=(1, 2)), np.rot90(mask, k)
    image = np.array(image, dtype=np.float32)
    if aug.contrast != (1.0, 1.0):
        c = float(rng.uniform(*aug.contrast))
        m = image.mean(axis=(1, 2), keepdims=True)
        image = (image - m) * c + m
    if aug.brightness != (1.0, 1.0):
        image = image * float(rng.uniform(*aug.brightness))
    return image, np.ascontiguousarray(mask)
