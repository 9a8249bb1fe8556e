"""Pretrained encoder weights: loading them, fitting the first convolution, freezing the encoder.

A config's ``model.encoder_weights`` is ``null`` (random initialisation), ``imagenet`` (smp's
own ImageNet weights, downloaded by smp: needs internet) or the path of a local state dict file
(``.pth``/``.pt``, read with ``weights_only=True``, so nothing in it runs). A relative path is
taken from the folder of the config file that names it (from the working folder for a config
given as a dict); ``$VARS`` and ``~`` are expanded. The file's keys may carry a prefix
(``encoder.``, ``module.``, ``backbone.``...): the prefix under which most keys match the
encoder's is stripped; a file wrapping its state dict under ``state_dict`` or ``model`` (a
run's ``best.pt``) works too. Keys the encoder lacks (a classifier head, a decoder) are ignored;
an encoder tensor the file lacks, or one of another shape, is an error naming the file and the
first offending keys.

First convolution: ImageNet weights take red, green, blue. For a network whose bands differ,
the bands named red/green/blue (by the config's ``contract.bands`` names and aliases: ``red``,
``R``, ``sentinel2:B04``/``B4``; green ``B3``; blue ``B2``) get the red/green/blue kernels, every
other band their mean, and the whole kernel is scaled by 3 / number of bands (so a pixel with
the same value in every band gives the convolution the same response). A three-band network
whose bands are named in another order gets the kernels permuted; one without band names is
taken as red, green, blue.

Input statistics: ImageNet weights expect ``(x - mean) / std`` with x the RGB value in 0..1 and
ImageNet's mean/std. :func:`imagenet_normalisation` gives the per-band (mean, std) in stored
units that produce exactly that: for red/green/blue ``mean = m * white`` and ``std = s * white``
where ``white`` (``data.rgb_white``, default 255) is the stored value of full brightness; other
bands keep the training data's own statistics.

``model.freeze_encoder: true`` trains the decoder only: encoder parameters get no gradient and
the encoder's batch norm layers stay in eval mode (their running statistics do not move).
"""

from __future__ import annotations

import hashlib
import types
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from landslide_mapper.core.raster.bands import band_keys

from .checkpoints import load_plain, state_dict_problem
from .config import expand_path

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RGB = ("red", "green", "blue")
#: Band names (compared as :func:`~landslide_mapper.core.raster.bands.band_keys`) per colour.
_COLOUR_KEYS = {
    "red": {"red", "r", "b4"},
    "green": {"green", "g", "b3"},
    "blue": {"blue", "b", "b2"},
}


def weights_setting(cfg: Mapping[str, Any]) -> str | None:
    """The config's ``model.encoder_weights`` (None when the encoder starts random)."""
    value = (cfg.get("model") or {}).get("encoder_weights")
    return None if value in (None, "", False) else str(value)


def rgb_bands(cfg: Mapping[str, Any], n_bands: int) -> dict[str, int]:
    """Index of the red, green and blue bands among the network's ``n_bands`` inputs.

    From the names and aliases in ``contract.bands``; a three-band network without band names
    (or with none named red/green/blue) is taken as red, green, blue in that order.
    """
    bands = (cfg.get("contract") or {}).get("bands") or []
    found: dict[str, int] = {}
    for i, band in enumerate(bands[:n_bands]):
        names = [str(band.get("name", ""))] + [str(a) for a in band.get("aliases") or []]
        keys = set().union(*(band_keys(n) for n in names))
        for colour, wanted in _COLOUR_KEYS.items():
            if colour not in found and keys & wanted:
                found[colour] = i
                break
    if not found and n_bands == 3:
        return {"red": 0, "green": 1, "blue": 2}
    return found


def adapt_first_conv(weight: torch.Tensor, n_bands: int, rgb: Mapping[str, int]) -> torch.Tensor:
    """An RGB first-convolution kernel ``(out, 3, kh, kw)`` made into ``(out, n_bands, kh, kw)``.

    Bands in ``rgb`` get their colour's kernel, the others the mean of the three; all times
    3 / n_bands (1 for three bands, so an RGB network in red, green, blue order gets the kernel
    as it is).
    """
    mean = weight.mean(dim=1, keepdim=True)
    out = mean.repeat(1, n_bands, 1, 1)
    for c, colour in enumerate(RGB):
        if colour in rgb:
            out[:, rgb[colour]] = weight[:, c]
    return out * (3.0 / n_bands)


def describe_file(path: Path) -> str:
    """``name (sha256 PREFIX)``: how the contract records a weights file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return f"{path.name} (sha256 {h.hexdigest()[:16]})"


def load_encoder_weights(
    model: torch.nn.Module, cfg: Mapping[str, Any], n_bands: int
) -> str | None:
    """Load the config's ``encoder_weights`` into ``model.encoder``; how to record them (or None).

    The red/green/blue bands for the first convolution come from :func:`rgb_bands`.
    """
    setting = weights_setting(cfg)
    if setting is None:
        return None
    encoder = str(cfg["model"]["encoder"])
    if setting.lower() == "imagenet":
        state, label = _smp_imagenet(encoder), "imagenet"
        source = f"imagenet (smp's, for {encoder})"
    else:
        path = expand_path(setting, Path(cfg.get("_base") or "."))
        if not path.is_file():
            raise FileNotFoundError(
                f"encoder weights {path}: file not found (expected a state dict such as "
                "../shared/pretrained/mobilenet_v2_imagenet.pth; model.encoder_weights takes "
                "null, imagenet or a file path relative to the config's folder)"
            )
        state = _state_dict(load_plain(path, "encoder weights"), path)
        source, label = str(path), describe_file(path)
    load_into_encoder(model.encoder, state, rgb_bands(cfg, n_bands), source, encoder)
    return label


def _state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict) and state_dict_problem(obj) is not None:
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    problem = state_dict_problem(obj)
    if problem:
        raise ValueError(
            f"encoder weights {path}: expected a state dict (names -> tensors), found {problem}"
        )
    return obj


def _smp_imagenet(encoder: str) -> dict[str, torch.Tensor]:
    from segmentation_models_pytorch.encoders import get_encoder

    try:
        return get_encoder(encoder, in_channels=3, depth=5, weights="imagenet").state_dict()
    except Exception as exc:  # no internet, no such weights for this encoder, hub errors
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(
            f"encoder_weights imagenet: expected smp to download ImageNet weights for {encoder}, "
            f"found an error ({first[:200]}); give a local state dict file instead"
        ) from None


def load_into_encoder(
    encoder: torch.nn.Module,
    state: Mapping[str, torch.Tensor],
    rgb: Mapping[str, int],
    source: str,
    name: str = "",
) -> list[str]:
    """Copy ``state`` (keys mapped, first convolution fitted) into ``encoder``; the keys loaded."""
    own = encoder.state_dict()
    prefix, mapped = _match_keys(state, own)
    where, name = f"encoder weights {source}", f"the {name} encoder".replace("  ", " ")
    missing = [k for k in own if k not in mapped and not k.endswith("num_batches_tracked")]
    if missing:
        unused = [k for k in state if not (k.startswith(prefix) and k[len(prefix):] in own)]
        hint = f" (the file's unmatched keys: {_first(unused)})" if unused else ""
        raise ValueError(
            f"{where}: expected the tensors of {name}, found none for {_first(missing)}{hint}"
        )
    first_conv, n_bands = _first_conv(encoder)
    wrong = []
    for key, val in mapped.items():
        target = own[key].shape
        if key == first_conv and val.dim() == 4 and val.shape[1] == 3 and (
            val.shape[0], *val.shape[2:]) == (target[0], *target[2:]):
            mapped[key] = adapt_first_conv(val.float(), n_bands, rgb).to(own[key].dtype)
        elif val.shape != target:
            wrong.append(f"{prefix}{key} {tuple(val.shape)} (encoder: {tuple(target)})")
    if wrong:
        raise ValueError(f"{where}: expected tensors shaped as {name}'s, found {_first(wrong)}")
    encoder.load_state_dict({**own, **mapped})
    return list(mapped)


def _match_keys(state: Mapping[str, torch.Tensor], own: Mapping[str, Any]) -> tuple[str, dict]:
    """The key prefix (``''``, ``'encoder.'``...) under which most keys match, and the matches."""
    counts: Counter[str] = Counter()
    for key in state:
        parts = key.split(".")
        for i in range(len(parts)):
            if ".".join(parts[i:]) in own:
                counts[".".join(parts[:i]) + ("." if i else "")] += 1
    if not counts:
        return "", {}
    prefix = max(counts, key=lambda p: (counts[p], -len(p)))
    mapped = {
        k[len(prefix):]: v for k, v in state.items()
        if k.startswith(prefix) and k[len(prefix):] in own
    }
    return prefix, mapped


def _first_conv(encoder: torch.nn.Module) -> tuple[str | None, int]:
    """The state-dict key of the encoder's first convolution's weight, and its input bands."""
    for name, module in encoder.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            return f"{name}.weight", module.in_channels
    return None, 3


def _first(keys: Sequence[str], n: int = 3) -> str:
    more = f" and {len(keys) - n} more" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def freeze_encoder(model: torch.nn.Module) -> None:
    """Train the decoder only: no gradient for the encoder, its batch norm kept in eval mode."""
    encoder = model.encoder
    for p in encoder.parameters():
        p.requires_grad_(False)
    encoder.train = types.MethodType(_always_eval, encoder)  # model.train() reaches it too
    encoder.eval()


def _always_eval(self: torch.nn.Module, mode: bool = True) -> torch.nn.Module:
    return torch.nn.Module.train(self, False)


def imagenet_normalisation(
    cfg: Mapping[str, Any], statistics: Sequence[Sequence[float]] | None, n_bands: int
) -> tuple[list[float], list[float]]:
    """Per-band (mean, std) in stored units: ImageNet's for red/green/blue, else ``statistics``.

    ``statistics``: the training data's (mean, std) per band, needed when some band is not
    red, green or blue.
    """
    rgb = rgb_bands(cfg, n_bands)
    if not rgb:
        raise ValueError(
            "data.normalization imagenet: expected bands named red/green/blue (or B4/B3/B2) in "
            f"contract.bands, found none among {n_bands} bands"
        )
    white = float(cfg["data"].get("rgb_white", 255.0))
    if statistics is None:
        mean, std = [0.0] * n_bands, [1.0] * n_bands
    else:
        mean, std = [float(v) for v in statistics[0]], [float(v) for v in statistics[1]]
    for c, colour in enumerate(RGB):
        if colour in rgb:
            mean[rgb[colour]] = IMAGENET_MEAN[c] * white
            std[rgb[colour]] = IMAGENET_STD[c] * white
    return mean, std


__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "adapt_first_conv",
    "freeze_encoder",
    "imagenet_normalisation",
    "load_encoder_weights",
    "load_into_encoder",
    "rgb_bands",
    "weights_setting",
]
