"""onnxruntime sessions: device choice, threads, model checks and output -> probability."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..contract import ModelContract, check_external_data
from ..errors import InputError, ModelError

DEVICES = ("auto", "cpu", "cuda")
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


@dataclass
class ModelSession:
    """A ready session with what the engine needs to feed it."""

    session: object
    input_name: str
    input_dtype: type
    provider: str
    threads: int
    fixed_batch: int | None = None  # set when the graph was exported with a static batch size
    fixed_size: tuple[int, int] | None = None  # set when it takes only one tile size


def create_session(model_path: Path, contract: ModelContract, *, device: str = "auto",
                   threads: int | None = None) -> ModelSession:
    """Build an onnxruntime session on the requested device and check it against the contract.

    ``auto`` takes CUDA when onnxruntime offers it, else the CPU; ``cuda`` without a working CUDA
    provider is an error rather than a silent fall-back. CPU intra-op threads default to the number
    of cores (inter-op parallelism stays 1: these graphs are one chain of operators).
    """
    import onnxruntime as ort

    if device not in DEVICES:
        raise InputError(f"Device: expected one of {', '.join(DEVICES)}, found {device!r}.")
    available = ort.get_available_providers()
    if device == "cuda" and CUDA not in available:
        raise InputError(
            "Device 'cuda': onnxruntime has no CUDA provider here (available: "
            f"{', '.join(available)}). Install onnxruntime-gpu with a matching CUDA, or choose "
            "device 'auto' or 'cpu'."
        )
    providers = [CUDA, CPU] if device in ("auto", "cuda") and CUDA in available else [CPU]
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise InputError(f"Threads: expected a whole number >= 1, found {threads!r}.")
    n_threads = threads or usable_cores()
    options = ort.SessionOptions()
    options.intra_op_num_threads = n_threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # Idle intra-op threads would spin between batches, taking the cores the reader and writer
    # threads need to prepare the next batch and blend the last one.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = open_session(model_path, options, providers)
    provider = session.get_providers()[0]
    if device == "cuda" and provider != CUDA:
        raise InputError(
            "Device 'cuda': the CUDA provider failed to start (onnxruntime fell back to "
            f"{provider}); check the CUDA and cuDNN libraries, or choose device 'cpu'."
        )
    inp = session.get_inputs()
    if len(inp) != 1:
        raise ModelError(f"Model file {model_path}: expected one input tensor, found {len(inp)}.")
    shape = inp[0].shape
    if len(shape) != 4:
        raise ModelError(
            f"Model file {model_path}: expected an input of shape (batch, bands, height, width), "
            f"found {shape}."
        )
    if isinstance(shape[1], int) and shape[1] != contract.band_count:
        raise ModelError(
            f"Model file {model_path}: the network takes {shape[1]} input channels but its "
            f"contract lists {contract.band_count} bands "
            f"({', '.join(b.name for b in contract.bands)})."
        )
    dtype = {"tensor(float)": np.float32, "tensor(float16)": np.float16}.get(inp[0].type)
    if dtype is None:
        raise ModelError(
            f"Model file {model_path}: expected a float input tensor, found {inp[0].type}.")
    out = session.get_outputs()[0].shape
    want = 2 if contract.output_kind == "softmax2" else 1
    if len(out) == 4 and isinstance(out[1], int) and out[1] != want:
        raise ModelError(
            f"Model file {model_path}: output kind '{contract.output_kind}' needs {want} output "
            f"channel{'s' if want > 1 else ''}, the network gives {out[1]}."
        )
    fixed_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    fixed_size = (shape[2], shape[3]) if all(isinstance(d, int) for d in shape[2:]) else None
    return ModelSession(session, inp[0].name, dtype, provider, n_threads, fixed_batch, fixed_size)


def open_session(model_path: str | Path, options: object = None,
                 providers: list[str] | None = None) -> Any:
    """An onnxruntime ``InferenceSession`` of ``model_path``, the one place where one is made.

    The model's external data must lie in its folder (:func:`..contract.check_external_data`),
    checked before onnxruntime opens anything.
    """
    import onnxruntime as ort

    check_external_data(model_path)
    try:
        return ort.InferenceSession(str(model_path), sess_options=options,
                                    providers=providers or [CPU])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
        raise ModelError(
            f"Model file {model_path}: onnxruntime cannot load it ({type(exc).__name__}: {exc}). "
            "The file may be corrupt or use operators this onnxruntime does not support."
        ) from exc


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def reader_threads(provider: str, cores: int | None = None) -> int:
    """Reader threads that keep ``provider`` fed.

    On the CPU the model already uses every core, so one reader suffices on small machines; a GPU
    consumes tiles faster than one core can decode and normalize them.
    """
    cores = cores or usable_cores()
    if provider == CPU:
        return 1 if cores < 8 else 2
    return max(1, min(4, cores // 4))


def to_probability(output: np.ndarray, kind: str) -> np.ndarray:
    """Network output (batch, channels, h, w) -> landslide probability (batch, h, w) float32."""
    out = np.asarray(output, dtype=np.float32)
    if out.ndim == 3:
        out = out[:, None]
    if kind == "sigmoid_logit":
        x = out[:, 0]
        return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32)  # sigmoid without overflow
    if kind == "sigmoid_probability":
        return np.clip(out[:, 0], 0.0, 1.0)
    if kind == "softmax2":
        d = out[:, 1] - out[:, 0]  # softmax[1] of two logits == sigmoid of their difference
        return (0.5 * (1.0 + np.tanh(0.5 * d))).astype(np.float32)
    raise ModelError(
        f"Output kind: expected sigmoid_logit, sigmoid_probability or softmax2, found {kind!r}.")


def run_batch(model: ModelSession, batch: np.ndarray) -> np.ndarray:
    """Run one batch; raises ModelError when the output does not match the tile shape."""
    x = batch if batch.dtype == model.input_dtype else batch.astype(model.input_dtype)
    n = x.shape[0]
    if model.fixed_batch is not None and n < model.fixed_batch:  # the last, partial batch
        x = np.concatenate([x, np.zeros((model.fixed_batch - n, *x.shape[1:]), x.dtype)])
    out = model.session.run(None, {model.input_name: x})[0][:n]
    same_shape = out.shape[0] == batch.shape[0] and out.shape[-2:] == batch.shape[-2:]
    if out.ndim not in (3, 4) or not same_shape:
        raise ModelError(
            f"Model output has shape {tuple(out.shape)} for an input of {tuple(batch.shape)}; "
            "expected (batch, channels, height, width) at the input's height and width."
        )
    return out
