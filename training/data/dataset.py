"""The torch dataset over image/mask pairs, and per-band statistics for normalisation."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .augment import Augment, crop_or_pad, random_tile
from .readers import Pair, read_image, read_pair


class SegmentationDataset(Dataset):
    """Normalised tiles from image/mask pairs.

    Training (``train=True``): each item is a random augmented ``tile_size`` crop; every pair is
    visited ``repeats`` times an epoch (large tiles give several crops). Evaluation: the whole
    image, padded to a multiple of 32 (padding ignored in the mask). Returns
    ``(image float32 (bands, H, W), mask uint8 (H, W))``; image = (stored - mean) / std.
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        mean: Sequence[float],
        std: Sequence[float],
        *,
        tile_size: int = 128,
        train: bool = False,
        augment: Augment | None = None,
        repeats: Sequence[int] | int = 1,
        seed: int = 0,
    ) -> None:
        self.pairs = list(pairs)
        self.mean = np.asarray(mean, np.float32).reshape(-1, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(-1, 1, 1)
        self.tile_size, self.train = tile_size, train
        self.augment = augment or Augment()
        reps = [repeats] * len(self.pairs) if isinstance(repeats, int) else list(repeats)
        self.index = (
            [i for i, r in enumerate(reps) for _ in range(max(1, int(r)))]
            if train
            else list(range(len(self.pairs)))
        )
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Reseeds augmentation, so runs are reproducible with any number of loader workers."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        pair = self.pairs[self.index[i]]
        image, mask = read_pair(pair)
        if image.shape[0] != self.mean.shape[0]:
            raise ValueError(
                f"{pair.image}: has {image.shape[0]} bands, the model takes {self.mean.shape[0]} "
                "(check the source's 'channels' setting)"
            )
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            image, mask = random_tile(image, mask, self.tile_size, self.augment, rng)
        else:
            h, w = mask.shape
            size_h, size_w = -(-h // 32) * 32, -(-w // 32) * 32
            if (size_h, size_w) != (h, w):
                image, mask = pad_to(image, mask, size_h, size_w)
        image = (image - self.mean) / self.std
        return torch.from_numpy(np.ascontiguousarray(image, np.float32)), torch.from_numpy(
            np.ascontiguousarray(mask)
        )


def pad_to(
    image: np.ndarray, mask: np.ndarray, rows: int, cols: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pad at the bottom/right (image by reflection, mask with the ignore value)."""
    from .labels import IGNORE

    h, w = mask.shape
    mode = "reflect" if (h > rows - h and w > cols - w) else "edge"
    image = np.pad(image, ((0, 0), (0, rows - h), (0, cols - w)), mode=mode)
    mask = np.pad(mask, ((0, rows - h), (0, cols - w)), constant_values=IGNORE)
    return image, mask


def band_statistics(
    pairs: Sequence[Pair], max_images: int = 500, seed: int = 0
) -> tuple[list[float], list[float]]:
    """Per-band mean and standard deviation in stored units over (a sample of) the images."""
    if not pairs:
        raise ValueError("band statistics: no images given")
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(pairs))[:max_images]
    total = total_sq = None
    count = 0
    for i in idx:
        img = read_image(pairs[int(i)]).astype(np.float64)
        flat = img.reshape(img.shape[0], -1)
        s, sq = flat.sum(1), (flat**2).sum(1)
        total = s if total is None else total + s
        total_sq = sq if total_sq is None else total_sq + sq
        count += flat.shape[1]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 1e-12))
    return mean.tolist(), std.tolist()


__all__ = ["SegmentationDataset", "band_statistics", "crop_or_pad", "pad_to"]
