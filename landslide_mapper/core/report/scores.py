"""What the model's contract records about its held-out scores, as table rows.

The contract keeps them under ``metrics``: either one flat set (``{"f1": 0.8, ...}``, as a
third-party contract may) or one set per held-out source (``{"cas_iburi_rgb": {...}, "all":
{...}}``, as training writes them). An int8 copy adds, under ``quantization.heldout``, the F1 of
the float model and of the copy on the same data. Nothing recorded is reported as "not recorded".
"""

from __future__ import annotations

from typing import Any, Mapping

#: Columns of the scores table, in order, with their headings.
COLUMNS = (("images", "images"), ("precision", "precision"), ("recall", "recall"),
           ("f1", "F1"), ("accuracy", "accuracy"), ("iou_dataset", "IoU (dataset)"),
           ("iou_per_image", "IoU (per image)"))
_SCORES = {"precision", "recall", "f1", "accuracy", "iou_dataset", "iou_per_image", "iou"}


def score_rows(metrics: Mapping[str, Any] | None) -> tuple[list[str], list[tuple[str, dict]]]:
    """``(columns present, [(held-out set, {column: value})])``; both empty when none recorded.
    The pooled set ``all`` comes last."""
    metrics = dict(metrics or {})
    rows: list[tuple[str, dict]] = []
    flat = {k: v for k, v in metrics.items() if _is_number(v)}
    if set(flat) & _SCORES:
        rows.append(("held-out data", flat))
    for name, value in metrics.items():
        if isinstance(value, Mapping) and set(value) & _SCORES:
            rows.append((str(name), {k: v for k, v in value.items() if _is_number(v)}))
    rows.sort(key=lambda r: r[0] == "all")
    present = [key for key, _ in COLUMNS if any(key in r for _, r in rows)]
    return present, rows


def int8_notes(quantization: Mapping[str, Any] | None) -> list[str]:
    """One line per held-out set on which an int8 copy was scored against its float model."""
    heldout = dict((quantization or {}).get("heldout") or {})
    notes = []
    for name, value in heldout.items():
        if not isinstance(value, Mapping):
            continue
        f_float = (value.get("float") or {}).get("f1")
        f_int8 = (value.get("int8") or {}).get("f1")
        if _is_number(f_float) and _is_number(f_int8):
            notes.append(f"{name}: F1 {f_float:.3f} (float model) → {f_int8:.3f} (this int8 "
                         f"copy), {100 * (f_int8 - f_float):+.2f} points")
    return notes


def training_facts(training: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """``(label, text)`` of how the model was trained: data, split, epochs, hardware."""
    t = dict(training or {})
    facts = []
    data = t.get("data")
    if isinstance(data, list) and data:
        names = [d.get("name", "?") if isinstance(d, Mapping) else str(d) for d in data]
        facts.append(("training data", ", ".join(names)))
    elif data:
        facts.append(("training data", str(data)))
    split = t.get("split")
    if isinstance(split, Mapping) and split:
        facts.append(("held-out split", "; ".join(f"{k}: {v}" for k, v in split.items())))
    elif split:
        facts.append(("held-out split", str(split)))
    if t.get("epochs") is not None:
        best = f" (best: epoch {t['best_epoch']})" if t.get("best_epoch") is not None else ""
        facts.append(("epochs", f"{t['epochs']}{best}"))
    for key, label in (("threshold_rule", "threshold"), ("hardware", "hardware")):
        if t.get(key):
            facts.append((label, str(t[key])))
    return facts


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
