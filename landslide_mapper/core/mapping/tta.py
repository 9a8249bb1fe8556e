"""Test-time augmentation (TTA): each batch of tiles scored in the 8 orientations of the square.

The orientations are the dihedral group D4: the identity, rotations by 90, 180 and 270 degrees,
and each of those followed by a left-right flip. Each orientation of the batch goes through the
model, its probabilities are turned back (the flip undone, then the rotation), and the 8 maps are
averaged, per tile, before the tiles are blended. A landslide has no preferred orientation in the
image, so a model that learned one anyway (as it does from finite data) is evened out.

Probabilities are averaged, not logits: the mean of probabilities is a probability whatever the
model's output kind (a sigmoid logit, a probability, two softmax logits), and one orientation's
extreme logit cannot outvote the other seven. Tiles are square, so every orientation keeps their
shape; the orientations run one after the other with the run's batch size (a model exported with
a fixed batch size still takes them), so memory is one batch and one float64 sum, and the model
runs 8 times as long.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..models.runtime import ModelSession, run_batch, to_probability

#: ``(quarter turns, flipped)`` of each orientation; the first is the identity.
D4: tuple[tuple[int, bool], ...] = tuple((k, flip) for flip in (False, True) for k in range(4))
#: The output kind of averaged probabilities (what the blending stage then takes as they are).
PROBABILITY_KIND = "sigmoid_probability"

Predict = Callable[[np.ndarray], np.ndarray]
"""(n, bands, h, w) -> landslide probability (n, h, w)."""


def orient(x: np.ndarray, k: int, flip: bool) -> np.ndarray:
    """``x`` turned ``k`` quarter turns counter-clockwise in its last two axes, then flipped
    left-right when ``flip``."""
    y = np.rot90(x, k, axes=(-2, -1))
    return y[..., ::-1] if flip else y


def unorient(y: np.ndarray, k: int, flip: bool) -> np.ndarray:
    """The inverse of :func:`orient`: ``unorient(orient(x, k, f), k, f) == x``."""
    if flip:
        y = y[..., ::-1]
    return np.rot90(y, -k, axes=(-2, -1))


def tta_probability(predict: Predict, batch: np.ndarray,
                    orientations: Sequence[tuple[int, bool]] = D4) -> np.ndarray:
    """Mean over ``orientations`` of ``predict`` on the oriented batch, turned back: (n, h, w)
    float32 probabilities."""
    total = None
    for k, flip in orientations:
        prob = predict(np.ascontiguousarray(orient(batch, k, flip)))
        back = unorient(np.asarray(prob, np.float64), k, flip)
        total = back.copy() if total is None else total + back
    if total is None:
        raise ValueError("orientations: expected at least one")
    return (total / len(orientations)).astype(np.float32)


def score_batch(model: ModelSession, batch: np.ndarray, output_kind: str,
                tta: bool) -> tuple[np.ndarray, str]:
    """The model's output for ``batch`` and its output kind: as the network gives it, or with
    ``tta`` the averaged probabilities of the 8 orientations (kind :data:`PROBABILITY_KIND`)."""
    if not tta:
        return run_batch(model, batch), output_kind
    return tta_probability(lambda b: to_probability(run_batch(model, b), output_kind),
                           batch), PROBABILITY_KIND
