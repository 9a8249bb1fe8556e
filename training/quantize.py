"""int8 copies of trained models, calibrated on a config's training split, scored on its held-out one.

Calibration tiles are training images (never held-out ones), chosen by a fixed rule (sorted
pairs, shuffled with ``numpy.random.default_rng(seed)``, the first ``tiles``), read and normalised
with the model contract's mean/std as evaluation does (whole images, padded to a multiple of 32).
:func:`quantize_for_config` then scores the float and the int8 model on the held-out split, the
way ``landslide-train evaluate --config`` does, and records both in the int8 contract's
``quantization`` field. The quantization itself is the engine's
(:func:`landslide_mapper.core.models.quantize.quantize_int8`).

Imports: :mod:`training.config`, :mod:`training.data`, :mod:`training.evaluate` and
:mod:`landslide_mapper.core`.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from landslide_mapper.core.contract import ModelContract, read_contract, write_contract
from landslide_mapper.core.models.quantize import Agreement, compare_models, quantize_int8
from landslide_mapper.core.models.registry import resolve_model

from .config import build_sources, load_config
from .data.readers import Pair

SCORE_KEYS = ("precision", "recall", "f1", "iou_dataset", "images")


def training_tiles(pairs: Sequence[Pair], mean: Sequence[float], std: Sequence[float],
                   tiles: int = 64, seed: int = 0) -> Iterator[np.ndarray]:
    """Batches of one normalised training image each: ``tiles`` images chosen by the fixed rule."""
    from .data.dataset import SegmentationDataset

    ordered = sorted(pairs, key=lambda p: str(p.image))
    idx = np.random.default_rng(seed).permutation(len(ordered))[:tiles]
    ds = SegmentationDataset([ordered[int(i)] for i in sorted(idx)], mean, std, train=False)
    for i in range(len(ds)):
        yield ds[i][0].numpy()[None]


def quantize_for_config(
    model: str | Path,
    out_path: str | Path,
    config: str | Path | Mapping[str, Any],
    *,
    tiles: int = 64,
    seed: int = 0,
    weight_type: str = "int8",
    reduce_range: bool = False,
    score: bool = True,
    threads: int | None = None,
    rasters: Sequence[str | Path] = (),
    raster_tiles: int = 32,
) -> tuple[ModelContract, Agreement, dict[str, dict[str, Any]]]:
    """Quantize ``model`` calibrated on ``config``'s training split; score float vs int8.

    ``rasters``: real rasters (raw values; files or folders) whose tiles, read by the engine
    through the contract's scaling, join the calibration: where the training images are a
    rendering of the data (8-bit, stretched), real scenes span ranges they do not.

    Returns the int8 contract, the agreement of the two models on the calibration tiles, and the
    held-out scores per source (``float`` and ``int8`` rows, empty when ``score`` is false).
    """
    cfg = load_config(config)
    src = resolve_model(str(model))
    contract = read_contract(src)
    mean, std = [b.mean for b in contract.bands], [b.std for b in contract.bands]
    sources = build_sources(cfg)
    if not sources.train:
        raise ValueError(f"config {cfg['name']}: its training split is empty; nothing to "
                         "calibrate on")
    n = min(tiles, len(sources.train))
    calibration = {
        "data": f"training split of config {Path(str(cfg.get('config_file', cfg['name']))).name}",
        "sources": [s["name"] for s in cfg["data"]["sources"]],
        "rule": f"pairs sorted by path, shuffled with numpy default_rng({seed}), first {n} "
                f"of {len(sources.train)}; whole images, contract mean/std (training units)",
    }

    plan = None
    if rasters:
        from landslide_mapper.core.mapping.calibration import (
            calibration_batches,
            calibration_rasters,
            plan_calibration,
        )

        found = calibration_rasters(rasters)
        plan = plan_calibration(found, contract, raster_tiles, seed)
        calibration["rasters"] = sorted({"/".join(Path(r).resolve().parts[-2:]) for r in rasters})
        calibration["raster_tiles"] = (f"up to {raster_tiles} of {plan.candidates} tiles of "
                                       f"{len(found)} rasters, through the contract's scaling")

    def batches() -> Iterator[np.ndarray]:
        images = training_tiles(sources.train, mean, std, n, seed)
        if plan is None:
            return images
        return itertools.chain(images, calibration_batches(plan, contract, raster_tiles))

    compact = quantize_int8(src, out_path, batches(), calibration=calibration,
                            weight_type=weight_type, reduce_range=reduce_range)
    agreement = compare_models(src, out_path, batches(), threads=threads)
    scores: dict[str, dict[str, Any]] = {}
    if score:
        scores = heldout_comparison(src, Path(out_path), sources.val, threads=threads)
        record = dict(compact.quantization, heldout=scores)
        compact = compact.with_updates(quantization=record)
        write_contract(out_path, compact)
    return compact, agreement, scores


def heldout_comparison(float_path: Path, int8_path: Path, val: Mapping[str, list[Pair]],
                       threads: int | None = None) -> dict[str, dict[str, Any]]:
    """Held-out scores of both models per source (and ``all``): float, int8 and the F1 change."""
    from .evaluate import evaluate

    groups = list(val.items())
    a = evaluate(str(float_path), groups, threads=threads)
    b = evaluate(str(int8_path), groups, threads=threads)
    out: dict[str, dict[str, Any]] = {}
    for name in a:
        out[name] = {
            "float": {k: _round(a[name][k]) for k in SCORE_KEYS if k in a[name]},
            "int8": {k: _round(b[name][k]) for k in SCORE_KEYS if k in b[name]},
            "f1_change_points": round(100 * (b[name]["f1"] - a[name]["f1"]), 2),
        }
    return out


def _round(v: Any) -> Any:
    return round(float(v), 4) if isinstance(v, float) else v
