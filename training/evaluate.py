"""Scoring a model on held-out image/mask pairs: an ONNX file (onnxruntime) or a checkpoint (torch).

Each image is scored whole (padded to a multiple of 32, padding not scored), probability >=
threshold is landslide, and :class:`~training.metrics.SegmentationScores` pools the counts per
source. Inputs are normalised the way the model expects: with ``units="training"`` the files
hold what the model saw in training (e.g. Landslide4Sense values, 8-bit tiles) and only the
contract's mean/std apply; with ``units="raw"`` they hold raw raster values and the contract's
full scaling applies (for ``l4s-h5`` the stored values are first multiplied back by the dataset's
per-band vector, so a Sentinel-2 model is scored on raw digital numbers).

:func:`score_pairs` is also what training's validation (:func:`training.loop.validate`) runs
every epoch. Imports: :mod:`training.data`, :mod:`training.metrics`, :mod:`training.models` (a
checkpoint's network, imported lazily with torch) and :mod:`landslide_mapper.core`; never
:mod:`training.loop`, which imports this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from .data.dataset import SegmentationDataset
from .data.labels import IGNORE, LabelRule
from .data.readers import L4S_VECTOR, Pair, find_pairs
from .metrics import SegmentationScores, format_table

Predictor = Callable[[np.ndarray], np.ndarray]  # (N, C, H, W) normalised -> probabilities (N, H, W)


def iter_batches(
    ds: SegmentationDataset, batch_size: int
) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    """Batches of same-shaped items, in order (images of different sizes go in separate batches)."""
    images: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    for i in range(len(ds)):
        img, msk = ds[i]
        img, msk = img.numpy(), msk.numpy()
        if images and (img.shape != images[0].shape or len(images) == batch_size):
            yield np.stack(images), np.stack(masks)
            images, masks = [], []
        images.append(img)
        masks.append(msk)
    if images:
        yield np.stack(images), np.stack(masks)


def score_pairs(
    predict: Predictor,
    pairs: Sequence[Pair],
    mean: Sequence[float],
    std: Sequence[float],
    *,
    threshold: float = 0.5,
    batch_size: int = 8,
    on_batch: Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None = None,
) -> SegmentationScores:
    ds = SegmentationDataset(pairs, mean, std, train=False)
    acc = SegmentationScores()
    for images, masks in iter_batches(ds, batch_size):
        prob = predict(images)
        if on_batch is not None:
            on_batch(images, masks, prob)
        acc.update_batch(prob >= threshold, masks == 1, masks != IGNORE)
    return acc


@dataclass
class LoadedModel:
    predict: Predictor
    mean: list[float]
    std: list[float]
    scale: list[float]
    offset: list[float]
    threshold: float
    description: str

    def normalisation(
        self, units: str, stored_to_raw: Sequence[float] | None = None
    ) -> tuple[list[float], list[float]]:
        """(mean, std) to apply to stored values, for ``units`` 'training' or 'raw'.

        With 'raw' the full contract applies: ``(raw * scale + offset - mean) / std`` with
        ``raw = stored * stored_to_raw`` (1 unless the format says otherwise, e.g. L4S), folded
        into one mean and std.
        """
        if units == "training":
            return self.mean, self.std
        if units == "raw":
            f = list(stored_to_raw) if stored_to_raw is not None else [1.0] * len(self.mean)
            k = [s * r for s, r in zip(self.scale, f)]
            mean = [(m - o) / kk for m, o, kk in zip(self.mean, self.offset, k)]
            std = [d / kk for d, kk in zip(self.std, k)]  # a negative k flips the sign: kept in std
            return mean, std
        raise ValueError(f"units {units!r}: expected 'training' or 'raw'")


def load_model(name_or_path: str | Path, threads: int | None = None) -> LoadedModel:
    """A bundled model's name or an .onnx file (onnxruntime), or a .pt checkpoint (torch)."""
    text = str(name_or_path)
    if text.endswith((".pt", ".pth", ".ckpt")):
        return _load_checkpoint(Path(text), threads)
    from landslide_mapper.core.contract import read_contract
    from landslide_mapper.core.models.registry import resolve_model
    from landslide_mapper.core.models.runtime import open_session

    path = resolve_model(text)
    contract = read_contract(path)
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    session = open_session(path, opts, ort.get_available_providers())
    in_name = session.get_inputs()[0].name
    kind = contract.output_kind

    def predict(x: np.ndarray) -> np.ndarray:
        out = session.run(None, {in_name: x.astype(np.float32)})[0]
        if kind == "softmax2":
            e = np.exp(out - out.max(axis=1, keepdims=True))
            return e[:, 1] / e.sum(axis=1)
        if kind == "sigmoid_probability":
            return out[:, 0]
        return 0.5 * (1.0 + np.tanh(0.5 * out[:, 0]))  # sigmoid, without overflow

    b = contract.bands
    return LoadedModel(
        predict,
        [x.mean for x in b],
        [x.std for x in b],
        [x.scale for x in b],
        [x.offset for x in b],
        contract.threshold,
        f"{path} (onnxruntime)",
    )


def _load_checkpoint(path: Path, threads: int | None) -> LoadedModel:
    import torch

    from .models import model_from_checkpoint

    if threads:
        torch.set_num_threads(threads)
    model, ckpt = model_from_checkpoint(path)
    model.eval()

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.sigmoid(model(torch.from_numpy(x))[:, 0]).numpy()

    n = len(ckpt["mean"])
    bands = ckpt["config"].get("contract", {}).get("bands") or [{}] * n
    return LoadedModel(
        predict,
        list(ckpt["mean"]),
        list(ckpt["std"]),
        [float(b.get("scale", 1.0)) for b in bands],
        [float(b.get("offset", 0.0)) for b in bands],
        float(ckpt["config"].get("threshold", 0.5)),
        f"{path} (torch checkpoint)",
    )


def evaluate(
    model: str | Path,
    data: str | Path | Sequence[tuple[str, Sequence[Pair]]],
    *,
    fmt: str = "tiles",
    units: str = "training",
    threshold: float | None = None,
    batch_size: int = 8,
    threads: int | None = None,
    options: Mapping[str, Any] | None = None,
    tta: bool = False,
) -> dict[str, dict[str, Any]]:
    """Scores per source (and ``all`` pooled when there are several) for ``model`` on ``data``.

    ``data`` is a folder in format ``fmt`` (``l4s-h5``, ``tiles``, ``chips``; ``options`` are
    the reader's: images, masks, label, channels, split) or a list of (source name, pairs).
    ``tta``: each image scored in the 8 orientations of the square and the probabilities
    averaged, as ``landslide-mapper map --tta`` does (:mod:`landslide_mapper.core.mapping.tta`).
    """
    loaded = load_model(model, threads)
    predict = loaded.predict
    if tta:
        from landslide_mapper.core.mapping.tta import tta_probability

        def predict(x: np.ndarray) -> np.ndarray:
            return tta_probability(loaded.predict, x)
    if isinstance(data, (str, Path)):
        opts = dict(options or {})
        opts["label"] = LabelRule.parse(opts.get("label"))
        groups = [(Path(data).name, find_pairs(fmt, data, **opts))]
    else:
        groups = list(data)
    stored_to_raw = None
    if fmt == "l4s-h5" and units == "raw":
        ch = (options or {}).get("channels") or range(len(L4S_VECTOR))
        stored_to_raw = [L4S_VECTOR[c] for c in ch]
    mean, std = loaded.normalisation(units, stored_to_raw)
    thr = loaded.threshold if threshold is None else threshold
    results: dict[str, dict[str, Any]] = {}
    total = SegmentationScores()
    for name, pairs in groups:
        if not pairs:
            raise FileNotFoundError(f"evaluation data {name}: no image/mask pairs found")
        acc = score_pairs(predict, pairs, mean, std, threshold=thr, batch_size=batch_size)
        results[name] = acc.summary()
        total.merge(acc)
    if len(groups) > 1:
        results["all"] = total.summary()
    for r in results.values():
        r["threshold"] = thr
    return results


def write_json(results: Mapping[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return path


__all__ = ["evaluate", "load_model", "score_pairs", "format_table", "write_json", "iter_batches"]
