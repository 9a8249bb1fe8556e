"""Small, exactly predictable ONNX models, built from ONNX operators (no training framework).

They carry a full model contract, so the whole chain (contract, engine, polygons, QGIS provider,
command line) runs on them: tests use them, and ``scripts/make_dummy_model.py`` writes one for a
quick try without a trained model. Their output is a known function of the input:

* ``linear``: one 1x1 convolution, ``logit = sum_c weight_c * x_c + bias`` (pointwise, so a tiled
  run must equal an untiled one exactly);
* ``conv3``: a 3x3 convolution with zero padding (its tile edges differ; blending must hide them);
* ``softmax2``: two-channel logits ``[0, linear]``, i.e. softmax[1] == sigmoid(linear).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..contract import ModelContract, set_contract, validate


def build_dummy_model(
    path: str | Path,
    *,
    kind: str = "linear",
    bands: Sequence[Any] = ("red", "green", "blue"),
    weights: Sequence[float] | None = None,
    bias: float = 0.0,
    pixel_size_m: float = 10.0,
    tile_size: int = 64,
    overlap: int = 16,
    threshold: float = 0.5,
    name: str = "dummy",
    **contract_fields: Any,
) -> ModelContract:
    """Write a dummy model with its contract to ``path`` and return the contract."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n_bands = len(bands)
    w = np.zeros(n_bands, np.float32) if weights is None else np.asarray(weights, np.float32)
    if w.shape != (n_bands,):
        raise ValueError(f"weights: expected {n_bands} values, found {w.shape}")
    if kind == "linear":
        kernel = w.reshape(1, n_bands, 1, 1)
        b = np.array([bias], np.float32)
        pads, out_ch, output_kind = [0, 0, 0, 0], 1, "sigmoid_logit"
    elif kind == "conv3":
        kernel = np.repeat(w.reshape(1, n_bands, 1, 1) / 9.0, 3, axis=2).repeat(3, axis=3)
        b = np.array([bias], np.float32)
        pads, out_ch, output_kind = [1, 1, 1, 1], 1, "sigmoid_logit"
    elif kind == "softmax2":
        kernel = np.stack([np.zeros_like(w), w]).reshape(2, n_bands, 1, 1)
        b = np.array([0.0, bias], np.float32)
        pads, out_ch, output_kind = [0, 0, 0, 0], 2, "softmax2"
    else:
        raise ValueError(f"kind: expected linear, conv3 or softmax2, found {kind!r}")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "weight", "bias"], ["output"], pads=pads)],
        f"{name}-{kind}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", n_bands, "height", "width"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", out_ch, "height", "width"])],
        [
            numpy_helper.from_array(kernel.astype(np.float32), "weight"),
            numpy_helper.from_array(b.astype(np.float32), "bias"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    doc = {
        "schema_version": 1,
        "name": name,
        "title": f"Dummy {kind} model (for tests, not for mapping)",
        "description": "A fixed function of the input bands, built from ONNX operators.",
        "licence": "GPL-2.0-or-later",
        "architecture": f"dummy-{kind}",
        "encoder": "none",
        "bands": [b if isinstance(b, dict) else {"name": b} for b in bands],
        "pixel_size_m": pixel_size_m,
        "tile_size": tile_size,
        "overlap": overlap,
        "output_kind": output_kind,
        "threshold": threshold,
        **contract_fields,
    }
    contract = validate(doc)
    set_contract(model, contract)
    path = Path(path)
    onnx.save_model(model, str(path))
    return contract
