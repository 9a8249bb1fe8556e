"""Which model fits a raster: ranking model contracts by bands and pixel size (``--model auto``).

A model fits a raster when the engine can feed it the right bands at a workable pixel size:

* **bands** (:func:`..raster.bands.map_bands`): every model band matched by a band description
  is best; bands taken in order are next, better when the raster has exactly the model's band
  count; a raster whose described bands would be fed by order as something else (``sentinel2:B04``
  as ``red`` of an 8-bit aerial model, say) does not fit. A raster with fewer bands than the model
  needs is refused, unless a DEM supplies the missing slope/elevation bands.
* **pixel size**: within the contract's ``pixel_size_tolerance`` is best; up to
  :data:`..raster.io.MAX_RESAMPLE_FACTOR` times off the raster is resampled (ranked by how far
  off); beyond that the engine refuses it.

Ranking is lexicographic on (fits, band match, pixel size within tolerance, closeness of the pixel
size, number of the raster's bands used), then by name, so a 14-band Landslide4Sense stack goes to
the 14-band model and its 3-band subset to the RGB one. :func:`rank_models` is pure (facts and
contracts in, fits out); :func:`choose_model` reads the raster and the bundled models.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..contract import BandSpec, ModelContract
from ..errors import InputError, ModelError
from ..inputs.terrain import spec_terrain_kind, terrain_kind
from ..models.registry import bundled_models
from ..raster.bands import band_keys, map_bands, spec_keys
from ..raster.io import MAX_RESAMPLE_FACTOR

AUTO_MODEL = "auto"

# Band-match tiers, best last.
_CONTRARY, _ORDER_EXTRA, _ORDER_EXACT, _DESCRIPTION = 0, 1, 2, 3


def is_auto(model: object) -> bool:
    """True when ``model`` asks for the model that fits the raster (the text ``auto``)."""
    return isinstance(model, str) and model.strip().lower() == AUTO_MODEL


@dataclass(frozen=True)
class RasterFacts:
    """What the choice looks at: band count and descriptions, pixel size, a DEM at hand."""

    name: str
    descriptions: tuple[str | None, ...]
    pixel_size_m: float | None
    terrain_from_dem: bool = False

    @property
    def band_count(self) -> int:
        return len(self.descriptions)

    def summary(self) -> str:
        described = [d for d in self.descriptions if d and d.strip()]
        bands = f"{self.band_count} band{'s' if self.band_count != 1 else ''}"
        if described:
            shown = ", ".join(described[:6]) + (", …" if len(described) > 6 else "")
            bands += f" described {shown}"
        else:
            bands += " without descriptions"
        size = (f"{self.pixel_size_m:.3g} m pixels" if self.pixel_size_m is not None
                else "unknown pixel size")
        return f"{self.name} ({bands}; {size})"


@dataclass(frozen=True)
class ModelFit:
    """How well one model fits the raster, and why, in words a user can check."""

    name: str
    title: str
    path: Path | None
    fits: bool
    rank: tuple[float, ...]
    reasons: tuple[str, ...] = field(default_factory=tuple)

    def summary(self) -> str:
        verdict = "fits" if self.fits else "does not fit"
        return f"{self.name} ({self.title}) {verdict}: {'; '.join(self.reasons)}"


def assess(facts: RasterFacts, contract: ModelContract, path: Path | None = None) -> ModelFit:
    """One model against the raster: fits or not, the rank key and the reasons."""
    descriptions, reasons = _with_terrain(facts, contract.bands)
    band_tier, band_reason = _band_fit(facts, contract.bands, descriptions)
    reasons.insert(0, band_reason)
    pixel_tier, closeness, pixel_reason = _pixel_fit(facts.pixel_size_m, contract)
    reasons.append(pixel_reason)
    fits = band_tier is not None and band_tier > _CONTRARY and pixel_tier is not None
    rank = (float(fits), float(band_tier if band_tier is not None else -1),
            float(pixel_tier if pixel_tier is not None else -1), closeness,
            float(contract.band_count))
    return ModelFit(contract.name, contract.title, path, fits, rank, tuple(reasons))


def rank_models(facts: RasterFacts,
                candidates: Sequence[tuple[ModelContract, Path | None]]) -> list[ModelFit]:
    """Every candidate assessed, best first (see the module docstring for the order)."""
    fits = [assess(facts, contract, path) for contract, path in candidates]
    return sorted(fits, key=lambda f: (tuple(-v for v in f.rank), f.name))


@dataclass(frozen=True)
class ModelChoice:
    """The chosen model and the whole ranking, for the log."""

    chosen: ModelFit
    ranking: tuple[ModelFit, ...]
    facts: RasterFacts

    def explanation(self) -> list[str]:
        lines = [(f"Model auto: {self.chosen.name} chosen for {self.facts.summary()}: "
                  f"{'; '.join(self.chosen.reasons)}.")]
        others = [f.summary() for f in self.ranking if f is not self.chosen]
        if others:
            lines.append("Other models: " + " | ".join(others) + ".")
        return lines


def choose(facts: RasterFacts,
           candidates: Sequence[tuple[ModelContract, Path | None]],
           unreadable: Sequence[str] = ()) -> ModelChoice:
    """The best fitting candidate, or a ModelError saying why each one was refused."""
    ranking = rank_models(facts, candidates)
    if ranking and ranking[0].fits:
        return ModelChoice(ranking[0], tuple(ranking), facts)
    why = [f.summary() for f in ranking] + list(unreadable)
    listed = " | ".join(why) if why else "no bundled model is installed"
    raise ModelError(
        f"Model auto: no bundled model fits {facts.summary()}. {listed}. Choose a model made "
        "for this raster's bands and pixel size (a bundled one, or a custom .onnx file), give "
        "the bands explicitly, or prepare a stack with the bands a model needs."
    )


def raster_facts(input_path: str | os.PathLike[str], *, terrain_from_dem: bool = False,
                 bands: Sequence[int] | None = None) -> RasterFacts:
    """Band descriptions and ground pixel size (geometric mean of x and y) of a raster file.

    With ``bands`` (1-based, as given to the engine) only those bands count, in that order.
    """
    from ..raster import io as rio

    with rio.gdal_env(), rio.open_input(input_path) as ds:
        size = None
        if ds.crs is not None and not ds.transform.is_identity:
            px, py = rio.pixel_size_m(ds)
            size = math.sqrt(px * py)
        descriptions = tuple(ds.descriptions)
    if bands:
        descriptions = tuple(descriptions[b - 1] if 1 <= b <= len(descriptions) else None
                             for b in bands)
    return RasterFacts(Path(input_path).stem, descriptions, size, terrain_from_dem)


def choose_model(input_path: str | os.PathLike[str], *, terrain_from_dem: bool = False,
                 bands: Sequence[int] | None = None) -> ModelChoice:
    """The bundled model that fits the raster best (ModelError when none does)."""
    facts = raster_facts(input_path, terrain_from_dem=terrain_from_dem, bands=bands)
    candidates, unreadable = [], []
    for model in bundled_models():
        try:
            candidates.append((model.contract, model.path))
        except ModelError as exc:
            unreadable.append(f"{model.name}: its contract cannot be read ({exc})")
    return choose(facts, candidates, unreadable)


# ---------------------------------------------------------------------------------------------


def _with_terrain(facts: RasterFacts,
                  specs: Sequence[BandSpec]) -> tuple[list[str | None], list[str]]:
    """The raster's descriptions plus the slope/elevation bands a DEM would add (as the engine
    stacks them), and a note when it would."""
    descriptions = list(facts.descriptions)
    if not facts.terrain_from_dem:
        return descriptions, []
    present = {terrain_kind(d or "") for d in descriptions} - {None}
    added: list[str] = []
    for spec in specs:
        kind = spec_terrain_kind(spec)
        if kind is not None and kind not in present and kind not in added:
            added.append(kind)
    return descriptions + added, ([f"{' and '.join(added)} derived from the DEM"] if added else [])


def _band_fit(facts: RasterFacts, specs: Sequence[BandSpec],
              descriptions: list[str | None]) -> tuple[int | None, str]:
    n_model, n_raster = len(specs), len(descriptions)
    names = ", ".join(s.name for s in specs)
    try:
        mapping = map_bands(specs, descriptions, source=facts.name)
    except InputError:
        terrain = [s.name for s in specs if spec_terrain_kind(s)]
        dem_helps = terrain and n_raster + len(terrain) >= n_model
        hint = (f" (a DEM would add {', '.join(terrain)})"
                if dem_helps and not facts.terrain_from_dem else "")
        return None, (f"needs {n_model} bands ({_short(names)}), the raster has {n_raster}"
                      f"{hint}")
    if mapping.method == "description":
        return _DESCRIPTION, f"all {n_model} bands matched by their descriptions"
    contrary = [(i + 1, d, s.name) for i, (d, s) in enumerate(zip(descriptions, specs))
                if (d or "").strip() and not band_keys(d or "") & spec_keys(s)]
    if contrary:
        shown = ", ".join(f"band {i} '{d}' as {name}" for i, d, name in contrary[:3])
        more = f" and {len(contrary) - 3} more" if len(contrary) > 3 else ""
        return _CONTRARY, (f"its bands would be fed in order against their descriptions "
                           f"({shown}{more})")
    if n_raster == n_model:
        return _ORDER_EXACT, f"{n_model} bands, taken in order ({_short(names)})"
    return _ORDER_EXTRA, (f"bands 1..{n_model} of {n_raster} taken in order as {_short(names)}")


def _pixel_fit(size: float | None,
               contract: ModelContract) -> tuple[int | None, float, str]:
    target = contract.pixel_size_m
    if size is None or not size > 0:
        return None, 0.0, "the raster's pixel size is unknown (no georeferencing)"
    factor = size / target
    closeness = -abs(math.log(factor))
    if abs(factor - 1.0) <= contract.pixel_size_tolerance:
        return 1, closeness, f"pixel size {size:.3g} m suits the model's {target:g} m"
    if 1.0 / MAX_RESAMPLE_FACTOR <= factor <= MAX_RESAMPLE_FACTOR:
        return 0, closeness, (f"pixel size {size:.3g} m is resampled to the model's {target:g} m "
                              f"({_times(factor)})")
    return None, closeness, (f"pixel size {size:.3g} m is {_times(factor)} than the model's "
                             f"{target:g} m (at most {MAX_RESAMPLE_FACTOR:g} times can be "
                             "resampled)")


def _times(factor: float) -> str:
    return f"{factor:.3g} times coarser" if factor > 1 else f"{1 / factor:.3g} times finer"


def _short(names: str, limit: int = 60) -> str:
    return names if len(names) <= limit else names[:limit].rsplit(", ", 1)[0] + ", …"
