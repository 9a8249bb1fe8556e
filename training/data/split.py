"""Held-out and cross-validation splits, fixed by a seed.

Rule (documented in the model cards): items are sorted by name, shuffled with
``numpy.random.default_rng(seed).permutation``, and the first ``round(fraction * n)`` (at least
one when ``n > 1``) become the held-out set. k-fold uses the same shuffled order cut into ``k``
near-equal folds.
"""

from __future__ import annotations

from typing import Sequence, TypeVar

import numpy as np

T = TypeVar("T")


def _order(items: Sequence[T], seed: int, key=str) -> list[T]:
    ordered = sorted(items, key=key)
    perm = np.random.default_rng(seed).permutation(len(ordered))
    return [ordered[i] for i in perm]


def holdout_split(
    items: Sequence[T], fraction: float = 0.2, seed: int = 0, key=str
) -> tuple[list[T], list[T]]:
    """(train, held_out)."""
    if not 0 < fraction < 1:
        raise ValueError(f"held-out fraction must be between 0 and 1, found {fraction}")
    order = _order(items, seed, key)
    n_val = int(round(fraction * len(order)))
    if len(order) > 1:
        n_val = min(max(n_val, 1), len(order) - 1)
    return order[n_val:], order[:n_val]


def kfold_split(
    items: Sequence[T], k: int, fold: int, seed: int = 0, key=str
) -> tuple[list[T], list[T]]:
    """(train, validation) for fold ``fold`` (0-based) of ``k``."""
    if k < 2 or not 0 <= fold < k:
        raise ValueError(f"k-fold: need k >= 2 and 0 <= fold < k, found k={k}, fold={fold}")
    order = _order(items, seed, key)
    folds = np.array_split(np.arange(len(order)), k)
    val_idx = set(folds[fold].tolist())
    return (
        [x for i, x in enumerate(order) if i not in val_idx],
        [x for i, x in enumerate(order) if i in val_idx],
    )


def grid_block(name: str, columns: int, block: int) -> str:
    """Spatial block of a tile numbered ``K = row * columns + col`` (the last number in its name).

    Neighbouring tiles of one mosaic share ground near their edges; holding out whole
    ``block`` x ``block`` groups keeps the held-out set from leaking into training.
    """
    import re

    nums = re.findall(r"\d+", name)
    if not nums:
        raise ValueError(f"tile {name!r}: no tile number in its name (expected e.g. image_123)")
    k = int(nums[-1])
    return f"{(k // columns) // block}_{(k % columns) // block}"


def holdout_groups(
    items: Sequence[T], group, fraction: float = 0.2, seed: int = 0
) -> tuple[list[T], list[T]]:
    """(train, held_out): whole groups (``group(item) -> key``) held out up to ``fraction``."""
    keys = sorted({group(x) for x in items})
    order = _order(keys, seed)
    target = fraction * len(items)
    held: set = set()
    count = 0
    sizes = {k: 0 for k in keys}
    for x in items:
        sizes[group(x)] += 1
    for k in order:
        if count >= target:
            break
        held.add(k)
        count += sizes[k]
    return [x for x in items if group(x) not in held], [x for x in items if group(x) in held]
