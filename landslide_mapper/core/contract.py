"""The model contract: what a model file says about itself.

A model is an ONNX file whose ``metadata_props`` hold one JSON document under the key
:data:`METADATA_KEY`. The document is defined here, once, and validated on load: the engine refuses
a model without a valid contract, training writes it, and :func:`write_contract` adds it to any
third-party ONNX file.

Input scaling, per band ``i`` (raw raster value ``x``)::

    y = (x * scale + offset - mean) / std        # mean = 0 and std = 1 when not given

Raw values a band expects (optional, schema version 1 reads contracts without them):
``value_range`` ``[low, high]``, the range correct input spans (Sentinel-2 digital numbers
``[0, 10000]``, 8-bit imagery ``[0, 255]``), and ``dtype``, the data type it usually comes in
(``uint16``, ``uint8``, ``float32``). The engine samples the raster against them before a run.

Output kinds:

* ``sigmoid_logit``: one channel of logits; probability = sigmoid(logit).
* ``sigmoid_probability``: one channel already in 0..1.
* ``softmax2``: two channels of logits (background, landslide); probability = softmax[1].

A compact (int8) copy of a model carries its source's contract plus an optional ``quantization``
object saying how it was made (format, weight and activation types, calibration data, the source
model's digest). Readers that predate the field ignore it, so the schema version stays 1.

Model files are opened through :func:`load_onnx` (onnx) and ``models.runtime.open_session``
(onnxruntime), both behind :func:`check_external_data`: weights kept in separate files must lie
in the model's own folder, checked before any of them is read.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Iterator, Mapping, Sequence

from .errors import ModelError

METADATA_KEY = "landslide_mapper"
SCHEMA = "landslide_mapper.model"
SCHEMA_VERSION = 1
OUTPUT_KINDS = ("sigmoid_logit", "sigmoid_probability", "softmax2")
TILE_MULTIPLE = 32
#: Data types a band's ``dtype`` may name.
DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64")


@dataclass(frozen=True)
class BandSpec:
    """One input band of the network, in order.

    ``name`` is a stable identifier such as ``sentinel2:B04``, ``slope_deg``, ``dem_m`` or ``red``;
    the engine maps it to a raster band by the band's description (see :mod:`.bands`).
    """

    name: str
    description: str = ""
    scale: float = 1.0
    offset: float = 0.0
    mean: float = 0.0
    std: float = 1.0
    aliases: tuple[str, ...] = ()
    value_range: tuple[float, float] | None = None
    dtype: str = ""

    def normalize(self, raw: Any) -> Any:
        """Raw raster values (numpy array) -> what the network expects."""
        return (raw * self.scale + self.offset - self.mean) / self.std


@dataclass(frozen=True)
class ModelContract:
    """Everything the engine needs to run a model, and what a user needs to trust it."""

    name: str
    title: str
    bands: tuple[BandSpec, ...]
    pixel_size_m: float
    tile_size: int
    overlap: int
    output_kind: str = "sigmoid_logit"
    threshold: float = 0.5
    pixel_size_tolerance: float = 0.25
    description: str = ""
    licence: str = ""
    architecture: str = ""
    encoder: str = ""
    nodata_value: float = 0.0
    training: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    quantization: Mapping[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @property
    def band_count(self) -> int:
        return len(self.bands)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bands"] = [_band_dict(b) for b in self.bands]
        d["training"] = dict(self.training)
        d["metrics"] = dict(self.metrics)
        if self.quantization:
            d["quantization"] = dict(self.quantization)
        else:  # optional: a float model's contract reads exactly as before the field existed
            del d["quantization"]
        return {"schema": SCHEMA, **d}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=False)

    def with_updates(self, **changes: Any) -> "ModelContract":
        return validate(replace(self, **changes).to_dict())


_REQUIRED = ("name", "title", "bands", "pixel_size_m", "tile_size", "overlap")
_NUMBERS = ("pixel_size_m", "threshold", "pixel_size_tolerance", "nodata_value")


def validate(doc: Mapping[str, Any], source: str = "model contract") -> ModelContract:
    """Check a contract document and build a :class:`ModelContract`.

    Collects every problem before raising, so the user sees them all at once.
    """
    if not isinstance(doc, Mapping):
        raise ModelError(f"{source}: expected a JSON object, found {type(doc).__name__}.")
    problems: list[str] = []
    version = doc.get("schema_version")
    if version is None:
        problems.append("'schema_version' is missing")
    elif version != SCHEMA_VERSION:
        problems.append(
            f"'schema_version' is {version!r}; this version of Landslide Mapper reads "
            f"{SCHEMA_VERSION} (update the plugin, or re-export the model)"
        )
    for key in _REQUIRED:
        if key not in doc:
            problems.append(f"'{key}' is missing")
    for key in ("name", "title"):
        if key in doc and (not isinstance(doc[key], str) or not doc[key].strip()):
            problems.append(f"'{key}' must be a non-empty string, found {doc[key]!r}")
    for key in _NUMBERS:
        if key in doc and not _is_number(doc[key]):
            problems.append(f"'{key}' must be a number, found {doc[key]!r}")
    if _is_number(doc.get("pixel_size_m")) and doc["pixel_size_m"] <= 0:
        problems.append(f"'pixel_size_m' must be > 0, found {doc['pixel_size_m']}")
    if _is_number(doc.get("threshold")) and not 0 < doc["threshold"] < 1:
        problems.append(f"'threshold' must be between 0 and 1, found {doc['threshold']}")
    tile, overlap = doc.get("tile_size"), doc.get("overlap")
    if "tile_size" in doc:
        problems += check_tiling(tile, overlap if isinstance(overlap, int) else 0, raise_=False)
    if "overlap" in doc and not (isinstance(overlap, int) and overlap >= 0):
        problems.append(f"'overlap' must be a whole number >= 0, found {overlap!r}")
    kind = doc.get("output_kind", "sigmoid_logit")
    if kind not in OUTPUT_KINDS:
        problems.append(f"'output_kind' must be one of {', '.join(OUTPUT_KINDS)}, found {kind!r}")
    bands: list[BandSpec] = []
    raw_bands = doc.get("bands")
    if "bands" in doc:
        if not isinstance(raw_bands, Sequence) or isinstance(raw_bands, str) or not raw_bands:
            problems.append(f"'bands' must be a non-empty list, found {raw_bands!r}")
        else:
            for i, b in enumerate(raw_bands):
                band, band_problems = _band(i, b)
                problems += band_problems
                if band is not None:
                    bands.append(band)
            names = [b.name for b in bands]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                problems.append(f"band names must be unique, found {', '.join(dupes)} twice")
    for key in ("training", "metrics", "quantization"):
        if key in doc and not isinstance(doc[key], Mapping):
            problems.append(f"'{key}' must be an object, found {doc[key]!r}")
    if problems:
        raise ModelError(f"{source} is not valid: " + "; ".join(problems) + ".")
    known = {f for f in ModelContract.__dataclass_fields__}
    kwargs = {k: v for k, v in doc.items() if k in known}
    kwargs["bands"] = tuple(bands)
    kwargs["training"] = dict(doc.get("training", {}))
    kwargs["metrics"] = dict(doc.get("metrics", {}))
    kwargs["quantization"] = dict(doc.get("quantization", {}))
    return ModelContract(**kwargs)


def check_tiling(tile_size: Any, overlap: Any, raise_: bool = True) -> list[str]:
    """Tile size must be a multiple of 32 (encoders downsample by 32); 0 <= overlap < tile / 2."""
    problems = []
    if not isinstance(tile_size, int) or isinstance(tile_size, bool) or tile_size <= 0:
        problems.append(f"tile size must be a positive whole number, found {tile_size!r}")
    elif tile_size % TILE_MULTIPLE:
        lower = max(TILE_MULTIPLE, tile_size // TILE_MULTIPLE * TILE_MULTIPLE)
        problems.append(
            f"tile size must be a multiple of {TILE_MULTIPLE}, found {tile_size} "
            f"(try {lower} or {lower + TILE_MULTIPLE})"
        )
    elif not isinstance(overlap, int) or overlap < 0 or overlap >= tile_size:
        problems.append(
            f"overlap must be a whole number of pixels from 0 to {tile_size - 1} "
            f"(less than the tile size {tile_size}), found {overlap!r}"
        )
    if problems and raise_:
        from .errors import InputError

        raise InputError("; ".join(problems) + ".")
    return problems


def _band_dict(b: BandSpec) -> dict[str, Any]:
    """A band as JSON; the optional raw-value fields only when set (older readers see no change)."""
    d = dict(asdict(b), aliases=list(b.aliases))
    if b.value_range is None:
        del d["value_range"]
    else:
        d["value_range"] = list(b.value_range)
    if not b.dtype:
        del d["dtype"]
    return d


def _value_fields(where: str, b: Mapping[str, Any]) -> list[str]:
    """Problems with a band's optional ``value_range`` and ``dtype``."""
    problems = []
    vr = b.get("value_range")
    if vr is not None and not (isinstance(vr, (list, tuple)) and len(vr) == 2
                               and all(_is_number(v) for v in vr) and vr[0] < vr[1]):
        problems.append(f"{where}.value_range must be [low, high] with low < high, found {vr!r}")
    dt = b.get("dtype", "")
    if dt not in ("", *DTYPES):
        problems.append(f"{where}.dtype must be one of {', '.join(DTYPES)}, found {dt!r}")
    return problems


def _band(i: int, b: Any) -> tuple[BandSpec | None, list[str]]:
    where = f"bands[{i}]"
    if isinstance(b, str):
        b = {"name": b}
    if not isinstance(b, Mapping):
        return None, [f"{where} must be an object with at least 'name', found {b!r}"]
    problems = []
    name = b.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{where}.name must be a non-empty string, found {name!r}")
    for key in ("scale", "offset", "mean", "std"):
        if key in b and not _is_number(b[key]):
            problems.append(f"{where}.{key} must be a number, found {b[key]!r}")
    if _is_number(b.get("std", 1.0)) and b.get("std", 1.0) == 0:
        problems.append(f"{where}.std must not be 0")
    if _is_number(b.get("scale", 1.0)) and b.get("scale", 1.0) == 0:
        problems.append(f"{where}.scale must not be 0")
    aliases = b.get("aliases", [])
    if not isinstance(aliases, (list, tuple)) or not all(isinstance(a, str) for a in aliases):
        problems.append(f"{where}.aliases must be a list of strings, found {aliases!r}")
    problems += _value_fields(where, b)
    if problems:
        return None, problems
    known = {f for f in BandSpec.__dataclass_fields__}
    kwargs = {k: v for k, v in b.items() if k in known}
    kwargs["aliases"] = tuple(aliases)
    if b.get("value_range") is not None:
        kwargs["value_range"] = (float(b["value_range"][0]), float(b["value_range"][1]))
    return BandSpec(**kwargs), []


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def read_contract(model_path: str | Path) -> ModelContract:
    """Read and validate the contract of an ONNX model file (without building a session)."""
    path = Path(model_path)
    if path.is_dir():
        raise ModelError(f"Model file {path}: expected an .onnx model file, found a folder.")
    if not path.is_file():
        raise ModelError(f"Model file {path}: not found (expected an .onnx file).")
    model = load_onnx(path)
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in props:
        found = ", ".join(sorted(props)) or "none"
        raise ModelError(
            f"Model file {path}: has no Landslide Mapper contract (metadata key "
            f"'{METADATA_KEY}' is missing; metadata keys found: {found}). Add one with "
            f"'landslide-mapper contract {path.name} CONTRACT.json'."
        )
    try:
        doc = json.loads(props[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise ModelError(f"Model file {path}: the contract is not valid JSON ({exc}).") from exc
    return validate(doc, source=f"Model file {path}: contract")


def write_contract(
    model_path: str | Path, contract: ModelContract | Mapping[str, Any], out_path: str | Path | None = None
) -> Path:
    """Write ``contract`` into the ONNX file's metadata (in place, or to ``out_path``).

    The contract is validated first; the file is written under a temporary name and renamed.
    """
    if not isinstance(contract, ModelContract):
        contract = validate(contract)
    src = Path(model_path)
    dst = Path(out_path) if out_path is not None else src
    model = load_onnx(src, load_external_data=True)
    inputs = model.graph.input
    if inputs:
        dims = inputs[0].type.tensor_type.shape.dim
        if len(dims) == 4 and dims[1].HasField("dim_value") and dims[1].dim_value != contract.band_count:
            raise ModelError(
                f"Model file {src}: the network takes {dims[1].dim_value} input channels but the "
                f"contract lists {contract.band_count} bands."
            )
    set_contract(model, contract)
    import onnx

    from . import staging

    tmp = staging.temporary_sibling(dst)
    try:
        onnx.save_model(model, str(tmp))
        staging.publish(tmp, dst, "Model output")
    except OSError as exc:  # onnx writes with Python's own file objects
        raise staging.write_failure("Model output", dst, staging.describe_os_error(exc)) from None
    finally:
        staging.remove_path(tmp)
    return dst


def set_contract(model: Any, contract: ModelContract) -> None:
    """Put ``contract`` into an in-memory ONNX ``ModelProto``, replacing any earlier one."""
    kept = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = contract.to_json()


def load_onnx(path: str | Path, load_external_data: bool = False) -> Any:
    """An ONNX file as a ``ModelProto``, after :func:`check_external_data` passed.

    The graph is parsed without its external data first; tensors kept in other files are read
    (``load_external_data``) only once every one of their locations lies inside the model's folder.
    """
    path = Path(path)
    model = _parse(path)
    check_external_data(path, model)
    if load_external_data:
        from onnx.external_data_helper import load_external_data_for_model

        try:
            load_external_data_for_model(model, str(path.parent))
        except Exception as exc:  # a data file missing, or shorter than the graph says
            raise ModelError(
                f"Model file {path}: its external data cannot be read ({type(exc).__name__}: "
                f"{exc}). Expected the data files named in the model next to it.") from exc
    return model


def check_external_data(model_path: str | Path, model: Any = None) -> None:
    """Refuse a model whose tensors keep their values in a file outside the model's folder.

    ONNX lets a tensor name another file holding its values (``external_data`` ``location``,
    relative to the model file's folder); onnx and onnxruntime open whatever it names. A model
    may only name files inside its own folder: a relative path without ``..``, no absolute path or
    drive, and no link that resolves outside. Checked on the graph alone (``model``, or the file
    parsed without its external data), before any data file is opened or a session is created.
    """
    path = Path(model_path)
    if model is None:
        model = _parse(path)
    folder = path.absolute().parent
    for tensor in _model_tensors(model):
        for entry in tensor.external_data:
            if entry.key == "location" and _leaves_folder(folder, entry.value):
                raise ModelError(
                    f"Model file {path}: tensor {tensor.name!r} keeps its values in "
                    f"{entry.value!r}, outside the model's folder; expected a relative path to a "
                    f"file inside {folder} (no '..', no absolute path, no link leading out).")


def _parse(path: Path) -> Any:
    """The graph of an ONNX file, its external data left unread."""
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, ValueError, ... on a corrupt file
        raise ModelError(
            f"Model file {path}: cannot be read as ONNX ({type(exc).__name__}: {exc}). "
            "Expected a valid .onnx model; the file may be corrupt or incomplete."
        ) from exc


def _leaves_folder(folder: Path, location: str) -> bool:
    """Whether an external-data ``location`` names anything but a file inside ``folder``
    (read by Windows rules too, where ``\\`` separates and ``C:`` starts a path)."""
    win = PureWindowsPath(location)
    if (not location.strip() or "\0" in location or win.drive or win.root
            or PurePosixPath(location).is_absolute() or ".." in win.parts):
        return True
    try:
        return not (folder / location).resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError, ValueError):  # a link loop, an unreadable folder
        return True


def _model_tensors(model: Any) -> Iterator[Any]:
    """Every tensor: initializers, sparse ones, node attributes, sub-graphs, functions."""
    yield from _graph_tensors(model.graph)
    for function in model.functions:
        for node in function.node:
            yield from _attribute_tensors(node)


def _graph_tensors(graph: Any) -> Iterator[Any]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        yield from _attribute_tensors(node)


def _attribute_tensors(node: Any) -> Iterator[Any]:
    for attr in node.attribute:
        if attr.HasField("t"):
            yield attr.t
        yield from attr.tensors
        sparse = ([attr.sparse_tensor] if attr.HasField("sparse_tensor") else [])
        for s in [*sparse, *attr.sparse_tensors]:
            yield from (s.values, s.indices)
        if attr.HasField("g"):
            yield from _graph_tensors(attr.g)
        for g in attr.graphs:
            yield from _graph_tensors(g)
