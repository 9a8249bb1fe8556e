"""Which raster bands feed which model input: by description, by order, or as the user says.

A contract band ``sentinel2:B04`` (aliases ``red``) matches a raster band described as
``sentinel2:B04``, ``B04``, ``B4`` or ``Red`` (case-insensitive; zero padding of band numbers is
ignored, so ``B4`` == ``B04`` but ``B8A`` stays distinct from ``B8``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

from ..contract import BandSpec
from ..errors import InputError

_PADDED_NUMBER = re.compile(r"(?<![0-9])0+(?=[0-9])")


@dataclass
class BandMapping:
    """1-based raster band indexes in model order, how they were found, and notes for the user."""

    indexes: list[int]
    method: str  # "explicit", "description" or "order"
    messages: list[str] = field(default_factory=list)


def band_keys(name: str) -> set[str]:
    """Comparable forms of one band name: lower case, trimmed, with and without a ``prefix:``."""
    keys = set()
    text = name.strip().lower()
    if not text:
        return keys
    candidates = {text}
    if ":" in text:
        candidates.add(text.rsplit(":", 1)[1].strip())
    for c in candidates:
        if c:
            keys.add(c)
            keys.add(_PADDED_NUMBER.sub("", c))
    return keys


def spec_keys(spec: BandSpec) -> set[str]:
    keys = band_keys(spec.name)
    for alias in spec.aliases:
        keys |= band_keys(alias)
    return keys


def map_bands(
    specs: Sequence[BandSpec],
    descriptions: Sequence[str | None],
    *,
    explicit: Sequence[int] | None = None,
    source: str = "input raster",
) -> BandMapping:
    """Map the contract's bands to raster bands (see the module docstring for the matching rules).

    ``descriptions`` holds one entry per raster band (``None`` or ``""`` when undescribed).
    """
    n_raster, n_model = len(descriptions), len(specs)
    names = ", ".join(s.name for s in specs)
    if explicit is not None:
        return _explicit(list(explicit), n_raster, n_model, names, source)

    by_desc = _by_description(specs, descriptions)
    if by_desc is not None:
        pairs = ", ".join(f"{s.name}=band {i}" for s, i in zip(specs, by_desc))
        return BandMapping(by_desc, "description", [f"Bands matched by description: {pairs}."])

    if n_raster >= n_model:
        unmatched = [s.name for s in specs if not _matches_any(s, descriptions)]
        why = (f"no band description matches {', '.join(unmatched)}" if unmatched
               else "band descriptions are ambiguous")
        extra = f"; bands {n_model + 1}..{n_raster} are not used" if n_raster > n_model else ""
        msg = (f"Bands mapped by order ({why}): raster bands 1..{n_model} are fed as "
               f"{names}{extra}. Check that the raster's band order matches the model, or give "
               "the bands explicitly.")
        return BandMapping(list(range(1, n_model + 1)), "order", [msg])

    raise InputError(
        f"{source}: the model needs {n_model} bands ({names}) but the raster has {n_raster} "
        f"band{'s' if n_raster != 1 else ''}. Use a raster stacked with all the bands the model "
        "needs, or a model made for this raster's bands."
    )


def _explicit(bands: list[int], n_raster: int, n_model: int, names: str,
              source: str) -> BandMapping:
    if len(bands) != n_model:
        raise InputError(
            f"{source}: {len(bands)} bands were given ({bands}) but the model needs {n_model} "
            f"({names}). Give one raster band number per model band, in model order."
        )
    bad = [b for b in bands
           if not isinstance(b, int) or isinstance(b, bool) or not 1 <= b <= n_raster]
    if bad:
        raise InputError(
            f"{source}: band numbers {bad} do not exist; the raster has bands 1..{n_raster}. "
            "Band numbers start at 1."
        )
    return BandMapping(list(bands), "explicit",
                       [f"Bands given explicitly: {bands} fed as {names}."])


def _matches_any(spec: BandSpec, descriptions: Sequence[str | None]) -> bool:
    keys = spec_keys(spec)
    return any(keys & band_keys(d or "") for d in descriptions)


def _by_description(specs: Sequence[BandSpec],
                    descriptions: Sequence[str | None]) -> list[int] | None:
    """Every contract band matched to a distinct raster band, or None.

    An exact (case-insensitive) full-name match wins over a looser one, so a raster that carries
    both ``sentinel2:B04`` and ``landsat:B04`` still maps unambiguously.
    """
    desc_keys = [band_keys(d or "") for d in descriptions]
    exact = [(d or "").strip().lower() for d in descriptions]
    chosen: list[int] = []
    for spec in specs:
        full = spec.name.strip().lower()
        hits = [i for i, e in enumerate(exact) if e and e == full]
        if len(hits) != 1:
            keys = spec_keys(spec)
            hits = [i for i, k in enumerate(desc_keys) if keys & k]
        if len(hits) != 1:
            return None
        chosen.append(hits[0] + 1)
    if len(set(chosen)) != len(chosen):
        return None
    return chosen
