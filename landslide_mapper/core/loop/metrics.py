"""Segmentation metrics from pixel counts, as the landslide mapping literature defines them.

Defined once, here: training (validation, ``landslide-train evaluate``) and the engine's
evaluation of a map against a reference inventory use the same counts and formulas.

All scores come from the same confusion counts over the scored pixels (ignored pixels excluded):

* precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2 P R / (P + R),
  accuracy = (TP + TN) / (TP + FP + FN + TN);
* dataset IoU (``iou_dataset``) = sum TP / sum (TP + FP + FN), pixels pooled over all images;
* per-image IoU (``iou_per_image``) = mean over images of TP_i / (TP_i + FP_i + FN_i).

Empty images: an image with no landslide in the reference and none predicted has an undefined
IoU (0 / 0). ``iou_per_image`` leaves such images out of the mean (they are counted in
``images_empty_both``); ``iou_per_image_empty_as_one`` scores them 1.0, as smp's
``micro-imagewise`` reduction does. A ratio whose denominator is 0 (e.g. precision with nothing
predicted) is reported as ``zero_division`` (0.0 by default).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class SegmentationScores:
    """Accumulates confusion counts image by image; :meth:`summary` gives every score."""

    zero_division: float = 0.0
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    image_iou: list[float] = field(default_factory=list)
    images_empty_both: int = 0

    def update(self, pred: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Add one image: ``pred`` and ``truth`` boolean (H, W); ``valid`` marks scored pixels."""
        pred = np.asarray(pred, bool)
        truth = np.asarray(truth, bool)
        if pred.shape != truth.shape:
            raise ValueError(f"prediction shape {pred.shape} differs from reference {truth.shape}")
        if valid is None:
            valid = np.ones(pred.shape, bool)
        valid = np.asarray(valid, bool)
        tp = int(np.count_nonzero(pred & truth & valid))
        fp = int(np.count_nonzero(pred & ~truth & valid))
        fn = int(np.count_nonzero(~pred & truth & valid))
        tn = int(np.count_nonzero(~pred & ~truth & valid))
        self.add_image(tp, fp, fn, tn)

    def add_image(self, tp: int, fp: int, fn: int, tn: int) -> None:
        """Add one image by its confusion counts (e.g. summed over its strips)."""
        self.tp, self.fp, self.fn, self.tn = self.tp + tp, self.fp + fp, self.fn + fn, self.tn + tn
        if tp + fp + fn == 0:
            self.images_empty_both += 1
        else:
            self.image_iou.append(tp / (tp + fp + fn))

    def update_batch(
        self, pred: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None
    ) -> None:
        for i in range(len(pred)):
            self.update(pred[i], truth[i], None if valid is None else valid[i])

    def merge(self, other: "SegmentationScores") -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.tn += other.tn
        self.image_iou += other.image_iou
        self.images_empty_both += other.images_empty_both

    def _ratio(self, num: float, den: float) -> float:
        return float(num / den) if den else float(self.zero_division)

    def summary(self) -> dict[str, Any]:
        precision = self._ratio(self.tp, self.tp + self.fp)
        recall = self._ratio(self.tp, self.tp + self.fn)
        f1 = self._ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)
        n_scored = len(self.image_iou)
        per_image = float(np.mean(self.image_iou)) if n_scored else float(self.zero_division)
        n_all = n_scored + self.images_empty_both
        empty_as_one = (
            (float(np.sum(self.image_iou)) + self.images_empty_both) / n_all
            if n_all
            else float(self.zero_division)
        )
        return {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "accuracy": self._ratio(self.tp + self.tn, self.tp + self.fp + self.fn + self.tn),
            "iou_dataset": self._ratio(self.tp, self.tp + self.fp + self.fn),
            "iou_per_image": per_image,
            "iou_per_image_empty_as_one": empty_as_one,
            "images": n_all,
            "images_empty_both": self.images_empty_both,
            "pixels": self.tp + self.fp + self.fn + self.tn,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
        }


def scores(
    pred: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None, zero_division: float = 0.0
) -> dict[str, Any]:
    """All scores for a stack of images (N, H, W) or one image (H, W)."""
    pred, truth = np.asarray(pred), np.asarray(truth)
    acc = SegmentationScores(zero_division=zero_division)
    if pred.ndim == 2:
        acc.update(pred, truth, valid)
    else:
        acc.update_batch(pred, truth, valid)
    return acc.summary()
