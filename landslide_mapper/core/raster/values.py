"""Raw values against a model's expected range: a bounded sample, the check, the stated rescale.

Before a run the engine samples the model's bands of the raster (:func:`sample_values`: at most
:data:`SAMPLE_WINDOWS` x :data:`SAMPLE_WINDOWS` windows of :data:`SAMPLE_SIZE` pixels spread over
the raster, nodata and masked pixels left out) and compares their percentiles with the bands'
``value_range`` in the contract (:func:`check_values`). Bands sharing one range form a group
(Sentinel-2's bands all span 0..10000) and are judged together, so one legitimately dark band
(cirrus) does not decide. A group is clearly off when:

* too high: a band's 99th percentile lies beyond ``low + TOO_HIGH * (high - low)``
  (16-bit reflectance into an 8-bit model);
* too low: the brightest band's 99th percentile uses less than ``TOO_LOW`` of the range
  (0..1 floats or 8-bit values into a model for 0..10000).

Such input is refused, saying what was found and what to do, unless the user asks to rescale:
then the group's values are mapped linearly from the found range to the expected one. The found
range is the smallest of :data:`USUAL_RANGES` (0..1, 8-bit, 12-bit, reflectance x 10000, 16-bit)
holding the group's 99th percentiles, so a change of units (0..1 -> 0..10000, 16 -> 8 bits) is
undone exactly and the ratios between bands are kept. The rescale is folded into the bands'
``scale`` and ``offset``: ``x' = low + (x - found_low) * k`` with
``k = (high - low) / (found_high - found_low)``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
from rasterio.windows import Window

from ..contract import BandSpec, ModelContract
from ..errors import InputError
from .io import BandReader

SAMPLE_WINDOWS = 5
SAMPLE_SIZE = 256
TOO_HIGH = 2.0
TOO_LOW = 0.04
USUAL_RANGES = ((0.0, 1.0), (0.0, 255.0), (0.0, 4095.0), (0.0, 10000.0), (0.0, 65535.0))
PERCENTILES = (1, 50, 99)


@dataclass(frozen=True)
class ValueSample:
    """Percentiles (:data:`PERCENTILES`, one row per band) of the valid pixels sampled."""

    dtypes: tuple[str, ...]
    percentiles: np.ndarray  # (bands, 3)
    pixels: int
    windows: int


def check_input_values(ds, indexes: Sequence[int], contract: ModelContract, source: str,
                       rescale: bool = False) -> tuple[ModelContract, list[str]]:
    """``contract`` with its bands rescaled when asked and needed, and notes for the user.

    Samples the raster's bands ``indexes`` (those feeding the model) and checks them against the
    bands' ``value_range``; raises InputError when they are clearly off and ``rescale`` is false.
    """
    if not any(b.value_range is not None for b in contract.bands):
        unchecked = (f"{source}: the model '{contract.name}' states no value range, so its "
                     "values were not rescaled.")
        return contract, [unchecked] if rescale else []
    reader = BandReader(ds, indexes, contract.bands, contract.nodata_value)
    specs, notes = check_values(sample_values(reader), contract.bands, source, contract.name,
                                rescale)
    if rescale and not notes:
        notes.append(f"{source}: values already within the range the model '{contract.name}' "
                     "expects; not rescaled.")
    return replace(contract, bands=tuple(specs)), notes


def sample_values(reader: BandReader, windows: int = SAMPLE_WINDOWS, size: int = SAMPLE_SIZE
                  ) -> ValueSample | None:
    """A bounded sample of ``reader``'s bands: None when no pixel of it is valid."""
    ds = reader.ds
    h, w = min(size, ds.height), min(size, ds.width)
    rows = sorted({int(r) for r in np.linspace(0, ds.height - h, windows)})
    cols = sorted({int(c) for c in np.linspace(0, ds.width - w, windows)})
    parts = []
    for r in rows:
        for c in cols:
            raw, valid = reader.read_raw(Window(c, r, w, h))
            if valid.any():  # every 4th valid pixel is plenty for percentiles
                parts.append(raw[:, valid][:, ::4].astype(np.float32))
    if not parts:
        return None
    values = np.concatenate(parts, axis=1)
    return ValueSample(tuple(ds.dtypes[i - 1] for i in reader.indexes),
                       np.percentile(values, PERCENTILES, axis=1).T, values.shape[1],
                       len(rows) * len(cols))


def check_values(sample: ValueSample | None, specs: Sequence[BandSpec], source: str,
                 model_name: str, rescale: bool = False) -> tuple[list[BandSpec], list[str]]:
    """The bands to run with (rescaled when asked and needed) and notes for the user.

    Raises InputError when a group of bands is clearly off and ``rescale`` is false.
    """
    specs = list(specs)
    if sample is None:
        return specs, []
    notes = []
    for (low, high), members in _groups(specs).items():
        p = sample.percentiles[members]
        off = _off(p, low, high)
        if off is None:
            continue
        if not rescale:
            raise InputError(_refusal(sample, specs, members, off, source, model_name))
        found = _found_range(float(p[:, 2].max()))
        k = (high - low) / (found[1] - found[0])
        for i in members:
            s = specs[i]
            # raw x -> low + (x - found_low) * k, folded into the band's affine scaling
            specs[i] = replace(s, scale=s.scale * k,
                               offset=s.offset + s.scale * (low - found[0] * k))
        names = ", ".join(specs[i].name for i in members)
        notes.append(f"{source}: values of {names} rescaled linearly from {_span(found)} (found "
                     f"{_dtypes(sample, members)}, 99th percentile up to "
                     f"{_fmt(float(p[:, 2].max()))}) to the model's {_span((low, high))}: "
                     f"x' = {_fmt(low)} + (x - {_fmt(found[0])}) * {k:.6g}.")
    return specs, notes


def _groups(specs: Sequence[BandSpec]) -> dict[tuple[float, float], list[int]]:
    groups: dict[tuple[float, float], list[int]] = {}
    for i, s in enumerate(specs):
        if s.value_range is not None:
            groups.setdefault(tuple(s.value_range), []).append(i)
    return groups


def _off(p: np.ndarray, low: float, high: float) -> str | None:
    """'high' or 'low' when the group's percentiles ``p`` (bands, 3) are clearly off."""
    span = high - low
    if float(p[:, 2].max()) > low + TOO_HIGH * span:
        return "high"
    if float(p[:, 2].max()) < low + TOO_LOW * span:
        return "low"
    return None


def _found_range(top: float) -> tuple[float, float]:
    for r in USUAL_RANGES:
        if top <= r[1]:
            return r
    return (0.0, top)


def _refusal(sample: ValueSample, specs: Sequence[BandSpec], members: list[int], off: str,
             source: str, model_name: str) -> str:
    first = specs[members[0]]
    low, high = first.value_range
    expected = f"{first.dtype} " if first.dtype else ""
    found = "; ".join(f"{specs[i].name} {'/'.join(_fmt(v) for v in sample.percentiles[i])}"
                      for i in members)
    p99 = float(sample.percentiles[members, 2].max())
    hint = (f"they look like {_span(_found_range(p99))} data"
            if p99 <= USUAL_RANGES[-1][1] else "they exceed every usual range")
    what = "far above" if off == "high" else "far below"
    return (f"{source}: values {what} what the model '{model_name}' expects: expected "
            f"{expected}values {_span((low, high))} in {', '.join(specs[i].name for i in members)}"
            f", found {_dtypes(sample, members)} with 1st/50th/99th percentiles {found} "
            f"({sample.pixels} valid pixels sampled in {sample.windows} windows; {hint}). "
            f"Give the raster in the model's units (e.g. convert with gdal_translate -scale), "
            f"use a model made for these data, or rescale on the fly (--rescale; in QGIS the "
            f"advanced parameter 'Rescale input values'), which maps "
            f"{_span(_found_range(p99))} linearly to {_span((low, high))}.")


def _dtypes(sample: ValueSample, members: list[int]) -> str:
    return "/".join(sorted({sample.dtypes[i] for i in members}))


def _span(r: tuple[float, float]) -> str:
    return f"{_fmt(r[0])}..{_fmt(r[1])}"


def _fmt(v: float) -> str:
    if v == int(v) and abs(v) < 1e9:
        return str(int(v))
    return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"
