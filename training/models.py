"""Segmentation networks from segmentation-models-pytorch, built without downloading anything.

What lives here: building a network from an architecture name (:func:`build_model`), from a
run's config (:func:`make_model`) or from a checkpoint (:func:`model_from_checkpoint`), and
copying weights between checkpoints (:func:`transfer_weights`). Training
(:mod:`training.loop`), scoring (:mod:`training.evaluate`) and export (:mod:`training.export`)
all build their networks here. Checkpoints are read with :mod:`training.checkpoints` (no code
in them runs); pretrained encoder weights go into the networks built here through
:mod:`training.pretrained` (called by :mod:`training.trainer`). From :mod:`training` this
module imports only :mod:`training.checkpoints`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from .checkpoints import load_checkpoint

#: Config keys of the ``model`` section that are not smp keywords: how the encoder starts and
#: trains (see :mod:`training.pretrained`), never part of the network's shape.
TRAINING_KEYS = ("encoder_weights", "freeze_encoder")

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


def make_model(cfg: Mapping[str, Any], in_channels: int) -> torch.nn.Module:
    """The network a run's config (its ``model`` section) describes, for ``in_channels`` bands."""
    m = dict(cfg["model"])
    skip = ("architecture", "encoder", "decoder_channels", *TRAINING_KEYS)
    extra = {k: v for k, v in m.items() if k not in skip}
    return build_model(
        m["architecture"],
        m["encoder"],
        in_channels,
        decoder_channels=m.get("decoder_channels"),
        **extra,
    )


def model_from_checkpoint(path: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The network stored in a training checkpoint (``best.pt``/``last.pt``) and the checkpoint.

    The file is read without running code (:func:`training.checkpoints.load_checkpoint`); one
    whose weights do not fit the network its config describes is refused with a one-line error.
    """
    ckpt = load_checkpoint(path, "model")
    try:
        model = make_model(ckpt["config"], len(ckpt["mean"]))
    except (ValueError, KeyError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ValueError(
            f"checkpoint {path}: expected a config that describes a network, found one that "
            f"cannot be built ({first})"
        ) from None
    problem = mismatch(model.state_dict(), ckpt["model"])
    if problem:
        raise ValueError(
            f"checkpoint {path}: expected the weights of the network its config describes, "
            f"found {problem}"
        )
    model.load_state_dict(ckpt["model"])
    return model, ckpt


def mismatch(own: Mapping[str, torch.Tensor], other: Mapping[str, torch.Tensor]) -> str | None:
    """What keeps ``other`` from loading into a network whose state dict is ``own``, or None.

    Names the first missing, unexpected and differently shaped tensors.
    """
    missing = [k for k in own if k not in other]
    extra = [k for k in other if k not in own]
    shapes = [
        f"{k} {tuple(other[k].shape)} (network: {tuple(own[k].shape)})"
        for k in own
        if k in other and tuple(other[k].shape) != tuple(own[k].shape)
    ]
    parts = []
    for label, keys in (("missing", missing), ("unexpected", extra), ("wrong shape", shapes)):
        if keys:
            more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
            parts.append(f"{label}: {', '.join(keys[:3])}{more}")
    return "; ".join(parts) or None


def transfer_weights(
    model: torch.nn.Module, path: str | Path, channels: list[tuple[int, int]] | None = None
) -> list[str]:
    """Load matching weights from another checkpoint (e.g. an RGB model into a 14-band one).

    Tensors of equal shape are copied. A 4-D tensor whose input channels differ (the first
    convolution) gets, for each ``(own_channel, source_channel)`` in ``channels`` (default: the
    first channels in order), the source weights; its other channels start at zero.
    """
    src = load_checkpoint(path, "weights")["model"]
    own = model.state_dict()
    loaded = []
    for key, val in src.items():
        if key not in own:
            continue
        if own[key].shape == val.shape:
            own[key] = val
            loaded.append(key)
        elif (
            val.dim() == 4
            and own[key].dim() == 4
            and own[key].shape[0] == val.shape[0]
            and own[key].shape[2:] == val.shape[2:]
        ):
            w = torch.zeros_like(own[key])
            pairs = channels or [(c, c) for c in range(min(w.shape[1], val.shape[1]))]
            for dst_c, src_c in pairs:
                w[:, int(dst_c)] = val[:, int(src_c)]
            own[key] = w
            loaded.append(key)
    model.load_state_dict(own)
    return loaded
