"""Losses for binary segmentation with an ignore value in the mask.

Every loss takes ``logits`` (N, 1, H, W) and ``mask`` (N, H, W) holding 0 (background), 1
(landslide) and :data:`IGNORE` (not scored: unlabelled or padding). Ignored pixels contribute
nothing, neither to the loss nor to its normalisation.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

IGNORE = 255


def _prepare(
    logits: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    logits = logits[:, 0] if logits.dim() == 4 else logits
    valid = (mask != IGNORE).to(logits.dtype)
    target = (mask == 1).to(logits.dtype)
    return logits, target, valid


def weighted_bce(logits: torch.Tensor, mask: torch.Tensor, pos_weight: float = 1.0) -> torch.Tensor:
    """Binary cross-entropy, landslide pixels weighted by ``pos_weight`` (class imbalance)."""
    logits, target, valid = _prepare(logits, mask)
    pw = torch.tensor(pos_weight, dtype=logits.dtype, device=logits.device)
    loss = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pw, reduction="none")
    return (loss * valid).sum() / valid.sum().clamp_min(1.0)


def dice_loss(logits: torch.Tensor, mask: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - soft Dice over the whole batch (pooled), on valid pixels."""
    logits, target, valid = _prepare(logits, mask)
    prob = torch.sigmoid(logits) * valid
    target = target * valid
    inter = (prob * target).sum()
    return 1.0 - (2.0 * inter + smooth) / (prob.sum() + target.sum() + smooth)


def focal_loss(
    logits: torch.Tensor, mask: torch.Tensor, gamma: float = 2.0, alpha: float | None = 0.25
) -> torch.Tensor:
    """Focal loss (Lin et al. 2017): BCE down-weighted by ``(1 - p_t) ** gamma``."""
    logits, target, valid = _prepare(logits, mask)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = torch.exp(-bce)
    loss = (1.0 - p_t) ** gamma * bce
    if alpha is not None:
        loss = loss * (alpha * target + (1.0 - alpha) * (1.0 - target))
    return (loss * valid).sum() / valid.sum().clamp_min(1.0)


def lovasz_hinge(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Lovasz hinge (Berman et al. 2018): a convex surrogate of 1 - IoU, over the valid pixels.

    Computed per image and averaged, as in the reference implementation's ``per_image=True``.
    """
    logits, target, valid = _prepare(logits, mask)
    losses = []
    for lg, tg, vd in zip(logits, target, valid):
        keep = vd.reshape(-1) > 0
        lg, tg = lg.reshape(-1)[keep], tg.reshape(-1)[keep]
        if lg.numel() == 0:
            continue
        signs = 2.0 * tg - 1.0
        errors = 1.0 - lg * signs
        errors_sorted, perm = torch.sort(errors, descending=True)
        gt_sorted = tg[perm]
        gts = gt_sorted.sum()
        intersection = gts - gt_sorted.cumsum(0)
        union = gts + (1.0 - gt_sorted).cumsum(0)
        jaccard = 1.0 - intersection / union
        if jaccard.numel() > 1:
            jaccard = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
        losses.append(torch.dot(F.relu(errors_sorted), jaccard))
    if not losses:
        return logits.sum() * 0.0
    return torch.stack(losses).mean()


def bce_dice(logits: torch.Tensor, mask: torch.Tensor, pos_weight: float = 1.0) -> torch.Tensor:
    return weighted_bce(logits, mask, pos_weight) + dice_loss(logits, mask)


def focal_lovasz(
    logits: torch.Tensor,
    mask: torch.Tensor,
    gamma: float = 2.0,
    alpha: float | None = 0.25,
    lovasz_weight: float = 1.0,
) -> torch.Tensor:
    return focal_loss(logits, mask, gamma, alpha) + lovasz_weight * lovasz_hinge(logits, mask)


LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "bce": weighted_bce,
    "weighted_bce": weighted_bce,
    "dice": dice_loss,
    "bce_dice": bce_dice,
    "focal": focal_loss,
    "lovasz": lovasz_hinge,
    "focal_lovasz": focal_lovasz,
}


def build_loss(
    name: str = "bce_dice", **params: Any
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A loss by name (see :data:`LOSSES`) with its keyword parameters bound."""
    key = name.strip().lower().replace("+", "_").replace("-", "_")
    if key not in LOSSES:
        raise ValueError(f"loss {name!r}: not known; expected one of {', '.join(LOSSES)}.")
    fn = LOSSES[key]

    def loss(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return fn(logits, mask, **params)

    loss.__name__ = key
    return loss
