"""Metrics against hand-computed confusion counts."""

from __future__ import annotations

import numpy as np
import pytest

from landslide_mapper.core.loop.metrics import SegmentationScores, scores


def test_one_image_hand_counts():
    truth = np.array([[1, 1, 0, 0], [1, 0, 0, 0]], bool)
    pred = np.array([[1, 0, 1, 0], [1, 0, 0, 0]], bool)
    # TP = 2, FP = 1, FN = 1, TN = 4
    s = scores(pred, truth)
    assert (s["tp"], s["fp"], s["fn"], s["tn"]) == (2, 1, 1, 4)
    assert s["precision"] == pytest.approx(2 / 3)
    assert s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / 3)
    assert s["accuracy"] == pytest.approx(6 / 8)
    assert s["iou_dataset"] == pytest.approx(2 / 4)
    assert s["iou_per_image"] == pytest.approx(2 / 4)


def test_dataset_iou_pools_pixels_per_image_iou_averages():
    # image A: TP 1, FP 0, FN 0 -> IoU 1; image B: TP 1, FP 3, FN 0 -> IoU 1/4
    a_t = np.array([[1, 0], [0, 0]], bool)
    a_p = a_t.copy()
    b_t = np.array([[1, 0], [0, 0]], bool)
    b_p = np.ones((2, 2), bool)
    s = scores(np.stack([a_p, b_p]), np.stack([a_t, b_t]))
    assert s["iou_per_image"] == pytest.approx((1 + 0.25) / 2)
    assert s["iou_dataset"] == pytest.approx(2 / 5)
    assert s["precision"] == pytest.approx(2 / 5)
    assert s["recall"] == pytest.approx(1.0)
    assert s["f1"] == pytest.approx(2 * 2 / (2 * 2 + 3 + 0))


def test_empty_vs_empty_image_is_left_out_of_per_image_iou_and_counted():
    empty = np.zeros((3, 3), bool)
    hit_t = np.zeros((3, 3), bool)
    hit_t[0, 0] = hit_t[0, 1] = True
    hit_p = np.zeros((3, 3), bool)
    hit_p[0, 0] = True  # IoU 1/2
    s = scores(np.stack([empty, hit_p]), np.stack([empty, hit_t]))
    assert s["images"] == 2
    assert s["images_empty_both"] == 1
    assert s["iou_per_image"] == pytest.approx(0.5)
    assert s["iou_per_image_empty_as_one"] == pytest.approx((0.5 + 1.0) / 2)


def test_ignored_pixels_are_not_counted():
    truth = np.array([[1, 0, 0]], bool)
    pred = np.array([[1, 1, 1]], bool)
    valid = np.array([[True, True, False]])
    s = scores(pred, truth, valid)
    assert (s["tp"], s["fp"], s["fn"], s["tn"], s["pixels"]) == (1, 1, 0, 0, 2)


def test_zero_division_is_explicit():
    truth = np.zeros((2, 2), bool)
    pred = np.zeros((2, 2), bool)
    assert scores(pred, truth)["precision"] == 0.0
    assert scores(pred, truth, zero_division=1.0)["precision"] == 1.0
    assert scores(pred, truth)["accuracy"] == 1.0


def test_agrees_with_an_independent_formula_on_random_masks():
    rng = np.random.default_rng(3)
    truth = rng.random((5, 16, 16)) < 0.2
    pred = rng.random((5, 16, 16)) < 0.3
    s = scores(pred, truth)
    inter = np.logical_and(pred, truth).sum()
    union = np.logical_or(pred, truth).sum()
    assert s["iou_dataset"] == pytest.approx(inter / union)
    per = [np.logical_and(p, t).sum() / np.logical_or(p, t).sum() for p, t in zip(pred, truth)]
    assert s["iou_per_image"] == pytest.approx(np.mean(per))
    dice = 2 * inter / (pred.sum() + truth.sum())
    assert s["f1"] == pytest.approx(dice)


def test_merge_equals_one_pass():
    rng = np.random.default_rng(4)
    truth = rng.random((4, 8, 8)) < 0.3
    pred = rng.random((4, 8, 8)) < 0.3
    a, b = SegmentationScores(), SegmentationScores()
    a.update_batch(pred[:2], truth[:2])
    b.update_batch(pred[2:], truth[2:])
    a.merge(b)
    assert a.summary() == scores(pred, truth)
