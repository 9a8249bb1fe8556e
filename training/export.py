"""Checkpoint -> ONNX model with its contract, checked against torch.

The contract's bands come from the config's ``contract.bands`` (name, description, aliases,
the affine ``scale``/``offset`` from raw raster values to the units the network was trained
on, and the raw ``value_range``/``dtype``, per band or for all bands from ``contract``) and the
run's per-band ``mean``/``std``; its ``metrics`` are the checkpoint's held-out
scores per source; ``training`` records data, split rules, epochs, config and hardware, and for
a run whose encoder started from pretrained weights ``encoder_weights`` (``imagenet`` or the
file's name and sha256 prefix) and ``input_statistics`` (how the bands' mean/std were chosen).

Imports: :mod:`training.models` (the network from the checkpoint) and
:mod:`landslide_mapper.core.contract`; not :mod:`training.loop`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from landslide_mapper.core.contract import ModelContract, validate, write_contract

from .models import TRAINING_KEYS, model_from_checkpoint

METRIC_KEYS = (
    "precision",
    "recall",
    "f1",
    "accuracy",
    "iou_dataset",
    "iou_per_image",
    "iou_per_image_empty_as_one",
    "images",
    "images_empty_both",
    "pixels",
)


def build_contract(
    ckpt: Mapping[str, Any], epochs_run: int | None = None, **changes: Any
) -> ModelContract:
    """The model contract for a checkpoint; ``changes`` override any field.

    ``epochs_run``: epochs the run trained in all (``best.pt`` only knows its own epoch).
    """
    cfg = ckpt["config"]
    c = dict(cfg.get("contract") or {})
    mean, std = ckpt["mean"], ckpt["std"]
    band_cfg = c.pop("bands", None) or [{"name": f"band{i + 1}"} for i in range(len(mean))]
    if len(band_cfg) != len(mean):
        raise ValueError(f"contract.bands lists {len(band_cfg)} bands, the model takes {len(mean)}")
    # The raw value range and data type: the config's, for every band that states none itself
    # (a band's own ``value_range: null`` opts it out of the engine's check).
    raw = {"value_range": c.pop("value_range", None), "dtype": c.pop("dtype", None) or ""}
    bands = [dict(raw, **b, mean=float(m), std=float(s)) for b, m, s in zip(band_cfg, mean, std)]
    scores = ckpt.get("scores") or {}
    metrics = {name: {k: s[k] for k in METRIC_KEYS if k in s} for name, s in scores.items()}
    tile = int(cfg["data"]["tile_size"])
    training = {
        "data": [
            {"name": s["name"], "format": s.get("format", "tiles"), "root": str(s["root"])}
            for s in cfg["data"]["sources"]
        ],
        "split": ckpt.get("split_rules", {}),
        "epochs": int(epochs_run or int(ckpt["epoch"]) + 1),
        "best_epoch": int(ckpt.get("best_epoch", ckpt["epoch"] + 1)),
        "config": Path(cfg.get("config_file", "")).name,
        "architecture_options": {
            k: v for k, v in cfg["model"].items() if v is not None and k not in TRAINING_KEYS
        },
        "loss": cfg.get("loss"),
        "optimizer": cfg.get("optimizer"),
        "augment": cfg.get("augment"),
        "batch_size": cfg.get("batch_size"),
        "seed": cfg.get("seed"),
        "hardware": c.pop("hardware", None) or ckpt.get("hardware") or "not recorded",
        "train_seconds": round(float(ckpt.get("train_seconds", 0.0)), 1),
        "world_size": ckpt.get("world_size", 1),
        "threshold_rule": "fixed before training (not tuned on held-out data)",
    }
    if ckpt.get("encoder_weights"):  # pretrained start: which weights, and how inputs are scaled
        training["encoder_weights"] = ckpt["encoder_weights"]
        training["input_statistics"] = _statistics_note(cfg)
    if cfg["model"].get("freeze_encoder"):
        training["freeze_encoder"] = True
    doc: dict[str, Any] = {
        "schema_version": 1,
        "name": cfg["name"],
        "title": c.pop("title", cfg["name"]),
        "description": c.pop("description", ""),
        "licence": c.pop("licence", ""),
        "architecture": cfg["model"]["architecture"],
        "encoder": cfg["model"]["encoder"],
        "bands": bands,
        "pixel_size_m": float(c.pop("pixel_size_m", 10.0)),
        "pixel_size_tolerance": float(c.pop("pixel_size_tolerance", 0.25)),
        "tile_size": int(c.pop("tile_size", tile)),
        "overlap": int(c.pop("overlap", tile // 4)),
        "output_kind": "sigmoid_logit",
        "threshold": float(cfg.get("threshold", 0.5)),
        "nodata_value": float(c.pop("nodata_value", 0.0)),
        "training": dict(training, **c.pop("training", {})),
        "metrics": metrics,
    }
    doc.update(changes)
    return validate(doc, source=f"contract of {cfg['name']}")


def _statistics_note(cfg: Mapping[str, Any]) -> str:
    """How the bands' mean/std were chosen (for a run whose encoder started pretrained)."""
    norm = cfg["data"].get("normalization", "auto")
    if isinstance(norm, Mapping):
        return "mean/std given in the config"
    if norm == "statistics":
        return "per-band mean/std of the training images"
    white = float(cfg["data"].get("rgb_white", 255.0))
    return (
        f"red/green/blue: ImageNet mean/std of the value / {white:g} "
        "(the network sees (x - mean) / std with x in 0..1); other bands: per-band mean/std "
        "of the training images"
    )


def export_onnx(
    checkpoint: str | Path,
    out_path: str | Path,
    *,
    opset: int = 17,
    check: bool = True,
    atol: float = 1e-4,
    extra_metrics: Mapping[str, Any] | None = None,
    int8: bool = False,
    calibration: Sequence[str | Path] | None = None,
    calibration_tiles: int = 64,
    **changes: Any,
) -> tuple[ModelContract, float]:
    """Write ``out_path`` (.onnx with contract); returns the contract and the parity error.

    Height and width are dynamic (any multiple of 32), batch too. Parity: probabilities from
    onnxruntime and torch on random tiles must agree within ``atol``, else ``RuntimeError``.
    ``int8``: the checked float export is then quantized (:mod:`training.quantize`), calibrated
    on ``calibration`` rasters (raw values, read through the contract's scaling) or, without
    them, on the run's training split, and scored against the float model on the held-out split.
    """
    model, ckpt = model_from_checkpoint(checkpoint)
    model.eval()
    summary = Path(checkpoint).with_name("summary.json")
    epochs_run = None
    if summary.is_file():  # the whole run, where best.pt only knows the epochs up to itself
        import json

        doc = json.loads(summary.read_text(encoding="utf-8"))
        epochs_run = doc.get("epochs_run")
        if doc.get("train_seconds"):
            ckpt = dict(ckpt, train_seconds=doc["train_seconds"])
    contract = build_contract(ckpt, epochs_run, **changes)
    if extra_metrics:
        contract = contract.with_updates(metrics={**contract.metrics, **extra_metrics})
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tile = contract.tile_size
    dummy = torch.zeros(1, contract.band_count, tile, tile)
    tmp = out.with_name(f".{out.stem}.export.onnx")
    try:
        with warnings.catch_warnings():
            # the TorchScript exporter is deprecated but needs no extra packages (onnxscript)
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                model,
                (dummy,),
                str(tmp),
                input_names=["input"],
                output_names=["logits"],
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
                dynamic_axes={
                    "input": {0: "batch", 2: "height", 3: "width"},
                    "logits": {0: "batch", 2: "height", 3: "width"},
                },
            )
        write_contract(tmp, contract, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    err = parity_error(model, out, contract.band_count, tile) if check else float("nan")
    if check and not err <= atol:
        out.unlink()
        raise RuntimeError(
            f"export of {checkpoint}: onnxruntime and torch differ by {err:.2e} "
            f"(> {atol:.0e}); removed {out}"
        )
    if int8:
        contract = to_int8(out, ckpt["config"], calibration, calibration_tiles)
    return contract, err


def to_int8(path: Path, config: Mapping[str, Any], calibration: Sequence[str | Path] | None,
            tiles: int) -> ModelContract:
    """Replace the float model at ``path`` by its int8 copy (the float one is removed)."""
    from .quantize import quantize_for_config

    float_path = path.with_name(f".{path.stem}.float.onnx")
    path.replace(float_path)
    try:
        if calibration:
            from landslide_mapper.core.mapping.calibration import quantize_with_rasters

            contract, _ = quantize_with_rasters(float_path, path, list(calibration), tiles=tiles)
        else:
            contract, _, _ = quantize_for_config(float_path, path, config, tiles=tiles)
    finally:
        float_path.unlink()
    record = dict(contract.quantization, source_model=f"{path.name} (float export, not kept)")
    contract = contract.with_updates(quantization=record)
    write_contract(path, contract)
    return contract


def parity_error(
    model: torch.nn.Module, onnx_path: str | Path, bands: int, tile: int, seed: int = 0
) -> float:
    """Largest |p_onnxruntime - p_torch| over random tiles (batch 2, and a 2x-wide tile)."""
    from landslide_mapper.core.models.runtime import open_session

    session = open_session(onnx_path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    worst = 0.0
    for shape in ((2, bands, tile, tile), (1, bands, tile, 2 * tile)):
        x = rng.standard_normal(shape).astype(np.float32)
        with torch.no_grad():
            ref = torch.sigmoid(model(torch.from_numpy(x))).numpy()
        got = 0.5 * (1.0 + np.tanh(0.5 * session.run(None, {session.get_inputs()[0].name: x})[0]))
        worst = max(worst, float(np.abs(got - ref).max()))
    return worst


def extra_metrics(json_paths) -> dict[str, Any]:
    """Per-source scores from ``evaluate --json`` files, keyed by source (``all`` rows dropped)."""
    import json

    out: dict[str, Any] = {}
    for path in json_paths:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        for name, s in doc.items():
            if name == "all" and len(doc) > 1:
                continue
            out[name] = {k: s[k] for k in (*METRIC_KEYS, "threshold") if k in s}
            out[name]["scored_with"] = "onnxruntime (landslide-train evaluate)"
    return out
