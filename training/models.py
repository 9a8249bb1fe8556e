"""Segmentation networks from segmentation-models-pytorch, built without downloading anything."""

from __future__ import annotations

from typing import Any, Sequence

import torch

#: Architecture names accepted in configs -> smp class names.
ARCHITECTURES = {
    "unet": "Unet",
    "unetplusplus": "UnetPlusPlus",
    "fpn": "FPN",
    "pspnet": "PSPNet",
    "manet": "MAnet",
    "linknet": "Linknet",
    "deeplabv3plus": "DeepLabV3Plus",
    "segformer": "Segformer",
}


def canonical_architecture(name: str) -> str:
    """Normalise an architecture name (``U-Net++`` -> ``unetplusplus``); errors list valid ones."""
    key = name.strip().lower()
    for old, new in (("_", ""), ("-", ""), (" ", ""), ("++", "plusplus"), ("+", "plus")):
        key = key.replace(old, new)
    if key not in ARCHITECTURES:
        raise ValueError(
            f"architecture {name!r}: not known; expected one of {', '.join(ARCHITECTURES)}."
        )
    return key


def build_model(
    architecture: str = "unet",
    encoder: str = "mobilenet_v2",
    in_channels: int = 3,
    *,
    encoder_weights: str | None = None,
    decoder_channels: Sequence[int] | None = None,
    **kwargs: Any,
) -> torch.nn.Module:
    """A one-channel (logit) segmentation network.

    ``encoder_weights`` stays ``None`` by default: no weights can be fetched at run time. Any smp
    encoder name works; an unknown one raises smp's error listing the valid names.
    """
    import segmentation_models_pytorch as smp

    arch = canonical_architecture(architecture)
    cls = getattr(smp, ARCHITECTURES[arch])
    if decoder_channels is not None and arch in ("unet", "unetplusplus", "manet"):
        kwargs["decoder_channels"] = tuple(decoder_channels)
    return cls(
        encoder_name=encoder,
        encoder_weights=encoder_weights,
        in_channels=in_channels,
        classes=1,
        **kwargs,
    )


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
