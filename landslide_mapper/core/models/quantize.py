"""Compact models: static int8 quantization with onnxruntime, the model contract carried over.

:func:`quantize_int8` follows onnxruntime's recipe for CPUs: ``quant_pre_process`` (shape
inference and graph optimisation) first, then ``quantize_static`` in the QDQ format with
per-channel int8 weights and uint8 activations, whose ranges are calibrated (min/max) on real
tiles. The tiles are handed in already normalised, the way the engine feeds the network:
:mod:`..mapping.calibration` reads them from rasters through the contract's scaling, training
reads them from a config's training split. The int8 file keeps the source's contract, with its
``quantization`` field saying how it was made, and the source's held-out scores stay in
``metrics`` (what the int8 model itself scored belongs in ``quantization``, measured by whoever
quantized it).

Weights ``int8`` (onnxruntime's choice for CPUs with VNNI: AVX512-VNNI / AVX-VNNI, AMD Zen 4 and
later, recent Intel) are the fast kind. Without VNNI, onnxruntime's x86 kernels sum pairs of
uint8 x int8 products in 16 bits and may saturate; ``reduce_range`` (7-bit weights) avoids that at
some accuracy, and weights ``uint8`` avoid it exactly but run no faster than float.
"""

from __future__ import annotations

import hashlib
import itertools
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..contract import ModelContract, load_onnx, read_contract, set_contract
from ..errors import InputError, ModelError
from .runtime import create_session, run_batch, to_probability

WEIGHT_TYPES = ("int8", "uint8")


def quantize_int8(
    model_path: str | Path,
    out_path: str | Path,
    batches: Iterable[np.ndarray],
    *,
    calibration: Mapping[str, Any] | None = None,
    weight_type: str = "int8",
    reduce_range: bool = False,
    keep_input_float: bool = True,
) -> ModelContract:
    """Write an int8 (QDQ) copy of ``model_path`` to ``out_path``; returns its contract.

    ``batches``: normalised tiles, each (n, bands, height, width) float32, as the network gets
    them. ``calibration``: what they are (recorded in the contract). ``keep_input_float``: the
    operators reading the network input stay float. Real rasters can be brighter than anything
    in the calibration tiles (the contract's scaling does not clip raw values, and the float
    network extrapolates); a quantized input would clip them at the calibrated range. The output
    is written under a temporary name and renamed when complete.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, dst = Path(model_path), Path(out_path)
    contract = read_contract(src)
    if contract.quantization:
        raise ModelError(
            f"Model file {src}: is already quantized ({_describe(contract.quantization)}); "
            "quantize its float model instead.")
    if weight_type not in WEIGHT_TYPES:
        raise InputError(
            f"Weight type: expected one of {', '.join(WEIGHT_TYPES)}, found {weight_type!r}.")
    if dst.resolve() == src.resolve():
        raise InputError(f"Output model {dst}: is the input model itself; choose another path.")
    batches = iter(batches)
    first = next(batches, None)
    if first is None:
        raise InputError("Calibration data: no tile was read; expected at least one tile.")
    reader = _CalibrationReader(itertools.chain([first], batches), _input_name(src),
                                contract.band_count, src)
    with tempfile.TemporaryDirectory(prefix="landslide-quantize-") as work:
        prepared, quantized = Path(work) / "prepared.onnx", Path(work) / "int8.onnx"
        _pre_process(quant_pre_process, src, prepared)
        float_nodes = _input_consumers(prepared, reader.input_name) if keep_input_float else []
        try:
            quantize_static(
                str(prepared), str(quantized), reader, quant_format=QuantFormat.QDQ,
                per_channel=True, reduce_range=reduce_range, nodes_to_exclude=float_nodes,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8 if weight_type == "int8" else QuantType.QUInt8,
                # The min/max calibrator keeps only each tensor's min and max per batch (not
                # the activations), so memory stays small whatever the number of tiles.
                calibrate_method=CalibrationMethod.MinMax)
        except (InputError, ModelError):
            raise
        except Exception as exc:
            raise ModelError(
                f"Model file {src}: onnxruntime could not quantize it "
                f"({type(exc).__name__}: {exc}).") from exc
        record = quantization_record(src, reader.tiles, calibration, weight_type, reduce_range,
                                     float_nodes)
        compact = contract.with_updates(quantization=record)
        _save_with_contract(quantized, compact, dst)
    return compact


def quantization_record(src: Path, tiles: int, calibration: Mapping[str, Any] | None,
                        weight_type: str, reduce_range: bool,
                        float_nodes: Sequence[str] = ()) -> dict[str, Any]:
    """What the contract's ``quantization`` field says about an int8 copy."""
    import onnxruntime

    return {
        "format": "QDQ",
        "tool": f"onnxruntime {onnxruntime.__version__} quantize_static (after quant_pre_process)",
        "weights": f"{weight_type}, per channel" + (", reduced range (7 bits)" if reduce_range
                                                    else ""),
        "float_nodes": list(float_nodes),
        "activations": "uint8, per tensor",
        "calibration_method": "minmax",
        "calibration_tiles": int(tiles),
        "calibration": dict(calibration or {}),
        "source_model": src.name,
        "source_sha256": file_sha256(src),
        "source_graph_sha256": graph_sha256(src),
    }


def graph_sha256(path: Path) -> str:
    """Digest of a model's network alone (operators and weights, not its metadata), so the float
    source stays identifiable after its contract is edited."""
    graph = load_onnx(path, load_external_data=True).graph
    return hashlib.sha256(graph.SerializeToString(deterministic=True)).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Agreement:
    """How closely two models agree on the same tiles: probabilities and thresholded masks."""

    tiles: int
    pixels: int
    max_abs_probability: float
    mean_abs_probability: float
    mask_agreement: float  # share of pixels on the same side of the threshold
    landslide_pixels_float: int
    landslide_pixels_compact: int


def compare_models(float_path: str | Path, compact_path: str | Path,
                   batches: Iterable[np.ndarray], *, threshold: float | None = None,
                   threads: int | None = None) -> Agreement:
    """Run both models on ``batches`` (normalised tiles) and measure how far apart they are."""
    a_contract, b_contract = read_contract(float_path), read_contract(compact_path)
    thr = np.float32(a_contract.threshold if threshold is None else threshold)
    a = create_session(Path(float_path), a_contract, device="cpu", threads=threads)
    b = create_session(Path(compact_path), b_contract, device="cpu", threads=threads)
    tiles = pixels = mask_same = pos_a = pos_b = 0
    worst, total = 0.0, 0.0
    for batch in batches:
        pa = to_probability(run_batch(a, batch), a_contract.output_kind)
        pb = to_probability(run_batch(b, batch), b_contract.output_kind)
        diff = np.abs(pa - pb)
        worst = max(worst, float(diff.max()))
        total += float(diff.sum(dtype=np.float64))
        ma, mb = pa >= thr, pb >= thr
        mask_same += int((ma == mb).sum())
        pos_a, pos_b = pos_a + int(ma.sum()), pos_b + int(mb.sum())
        tiles += batch.shape[0]
        pixels += pa.size
    if not pixels:
        raise InputError("Comparison data: no tile was given; expected at least one tile.")
    return Agreement(tiles, pixels, worst, total / pixels, mask_same / pixels, pos_a, pos_b)


class _CalibrationReader:
    """onnxruntime's CalibrationDataReader over normalised batches (checked as they come)."""

    def __init__(self, batches: Iterable[np.ndarray], input_name: str, bands: int, src: Path):
        self.batches: Iterator[np.ndarray] = iter(batches)
        self.input_name, self.bands, self.src = input_name, bands, src
        self.tiles = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        if batch is None:
            return None
        x = np.asarray(batch, np.float32)
        if x.ndim != 4 or x.shape[1] != self.bands:
            raise InputError(
                f"Calibration data for {self.src.name}: expected tiles of shape (n, {self.bands}, "
                f"height, width), found {tuple(x.shape)}.")
        self.tiles += x.shape[0]
        return {self.input_name: np.ascontiguousarray(x)}

    def __iter__(self):  # onnxruntime's reader protocol also allows iteration
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item


def _pre_process(quant_pre_process, src: Path, prepared: Path) -> None:
    """onnxruntime's recommended pre-processing: symbolic shape inference (needs sympy, which
    the engine alone does not install: then ONNX's own shape inference), graph optimisation."""
    try:
        import sympy  # noqa: F401
        symbolic = True
    except ImportError:
        symbolic = False
    try:
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=not symbolic)
    except Exception as exc:  # shape inference or the optimiser failing on this graph
        raise ModelError(
            f"Model file {src}: onnxruntime's pre-processing for quantization failed "
            f"({type(exc).__name__}: {exc}).") from exc


def _input_consumers(path: Path, input_name: str) -> list[str]:
    """Names of the nodes that read the network input (named first, where unnamed)."""
    import onnx

    model = load_onnx(path, load_external_data=True)
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"node_{i}"
    consumers = [n.name for n in model.graph.node if input_name in n.input]
    onnx.save_model(model, str(path))
    return consumers


def _input_name(path: Path) -> str:
    graph = load_onnx(path).graph
    inits = {i.name for i in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise ModelError(f"Model file {path}: expected one input tensor, found {len(inputs)}.")
    return inputs[0]


def _save_with_contract(model_file: Path, contract: ModelContract, dst: Path) -> None:
    import onnx

    model = load_onnx(model_file, load_external_data=True)
    set_contract(model, contract)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.partial")
    try:
        onnx.save_model(model, str(tmp))
        tmp.replace(dst)
    finally:
        if tmp.exists():
            tmp.unlink()


def _describe(record: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {record[k]}" for k in ("format", "weights") if k in record) or "int8"
