"""Label rules: how a mask file's values become landslide / background / ignored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

IGNORE = 255


@dataclass(frozen=True)
class LabelRule:
    """Which mask pixels are landslides, and which are not scored.

    Exactly one of ``value`` (pixel == value), ``colour`` (all channels equal) or ``threshold``
    (``channel`` > threshold) decides landslide; with none given, any non-zero value is a
    landslide. ``ignore`` pixels (compared on ``channel``, before the landslide test) are not
    scored. Examples: ``value=1`` for 0/1 masks, ``threshold=127`` for 0/255 masks,
    ``colour=(200,128,0)`` for a palette, ``ignore=255`` for a 0/1/255 mask.
    """

    value: int | None = None
    threshold: float | None = None
    colour: tuple[int, ...] | None = None
    channel: int = 0
    ignore: int | None = None

    @classmethod
    def parse(cls, spec: "str | Mapping[str, Any] | LabelRule | None") -> "LabelRule":
        """From a dict, or a string such as ``"value=1,ignore=255"`` or ``"colour=200:128:0"``."""
        if spec is None:
            return cls()
        if isinstance(spec, LabelRule):
            return spec
        if isinstance(spec, str):
            d: dict[str, Any] = {}
            for part in filter(None, (p.strip() for p in spec.split(","))):
                key, _, val = part.partition("=")
                d[key.strip()] = val.strip()
            spec = d
        kw: dict[str, Any] = {}
        for key, val in dict(spec).items():
            key = {"color": "colour"}.get(key, key)
            if key == "colour":
                if isinstance(val, str):
                    val = [int(v) for v in val.replace(":", " ").split()]
                kw[key] = tuple(int(v) for v in val)
            elif key in ("value", "channel", "ignore"):
                kw[key] = None if val is None else int(val)
            elif key == "threshold":
                kw[key] = float(val)
            else:
                raise ValueError(
                    f"label rule: unknown key {key!r}; "
                    "expected value, threshold, colour, channel, ignore."
                )
        given = [k for k in ("value", "threshold", "colour") if kw.get(k) is not None]
        if len(given) > 1:
            raise ValueError(
                f"label rule: give one of value, threshold, colour; found {', '.join(given)}."
            )
        return cls(**kw)

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Mask file values (rows, cols) or (rows, cols, channels) -> uint8 0 / 1 / 255."""
        raw = np.asarray(raw)
        plane = raw if raw.ndim == 2 else raw[..., min(self.channel, raw.shape[-1] - 1)]
        if self.colour is not None:
            if raw.ndim != 3 or raw.shape[-1] < len(self.colour):
                raise ValueError(
                    f"label rule colour={self.colour}: the mask has shape {raw.shape}, "
                    f"expected {len(self.colour)} channels."
                )
            positive = np.all(raw[..., : len(self.colour)] == np.asarray(self.colour), axis=-1)
        elif self.value is not None:
            positive = plane == self.value
        elif self.threshold is not None:
            positive = plane > self.threshold
        else:
            positive = plane != 0
        out = positive.astype(np.uint8)
        if self.ignore is not None:
            out[plane == self.ignore] = IGNORE
        return out
