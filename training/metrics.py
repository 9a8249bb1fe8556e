"""Segmentation metrics: the definitions live in :mod:`landslide_mapper.core.loop.metrics`."""

from __future__ import annotations

from typing import Any

from landslide_mapper.core.loop.metrics import SegmentationScores, scores

__all__ = ["SegmentationScores", "format_table", "scores"]


def format_table(results: dict[str, dict[str, Any]]) -> str:
    """A plain-text table, one row per source."""
    cols = ("precision", "recall", "f1", "accuracy", "iou_dataset", "iou_per_image", "images")
    head = f"{'source':<22}" + "".join(f"{c:>14}" for c in cols)
    lines = [head, "-" * len(head)]
    for name, s in results.items():
        cells = "".join(f"{s[c]:>14d}" if isinstance(s[c], int) else f"{s[c]:>14.4f}" for c in cols)
        lines.append(f"{name:<22}" + cells)
    return "\n".join(lines)
