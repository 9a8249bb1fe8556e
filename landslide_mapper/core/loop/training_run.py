"""Training a model on exported chips in a separate Python process (``landslide-train``).

Torch never loads into the calling process (QGIS stays responsive and light): a config is
written beside the run, ``python -m training.cli fit`` trains, ``python -m training.cli export``
writes the ONNX model with its contract and held-out scores. The interpreter is
``$LANDSLIDE_MAPPER_PYTHON``, else the project's ``.venv/bin/python`` beside the package, else the
training environment the QGIS plugin's installer makes in the profile
(``<profile>/python/landslide_mapper_training/venv``, see :func:`training_env_python`), else
``python3``; it must have torch and segmentation-models-pytorch.

Fine-tuning a bundled model: the bundled ``.onnx`` files carry no torch weights, so "fine-tuning"
means training with the bundled model's config (architecture, encoder, loss, optimiser, bands) on
the chips, initialised from a checkpoint (``best.pt`` of an earlier run) when one is given, else
from scratch. With a checkpoint, the network sees the same normalised inputs as before: the chips
hold raw raster values, so the model's ``scale``/``offset`` are folded into the mean/std.

The ``.onnx`` appears only when export finished (written under a hidden name, then renamed); a
cancelled or failed run leaves no model, only its run folder when it saved a checkpoint (the
folder of a run that failed before any checkpoint, holding only its config and log, is removed).
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from .. import staging
from ..errors import CancelledError, InputError, ModelError, OutputError
from ..models.registry import resolve_model
from ..paths import check_distinct
from .chips import chip_sources

_PACKAGE = Path(__file__).resolve().parents[2]  # the landslide_mapper package
REPO = _PACKAGE.parent
# The training module: beside the package in a checkout, inside it in the installed plugin.
CONFIG_DIR = next((d / "training" / "configs" for d in (REPO, _PACKAGE)
                   if (d / "training" / "configs").is_dir()), REPO / "training" / "configs")
_EPOCH_LINE = re.compile(r"^epoch (\d+) \|")
_TAIL = 30

_PROBE = (
    "import json, torch\n"
    "import segmentation_models_pytorch\n"
    "import training.cli\n"
    "gpu = torch.cuda.is_available()\n"
    "print(json.dumps({'torch': torch.__version__, 'cuda': gpu,\n"
    "  'gpu': torch.cuda.get_device_name(0) if gpu else None}))\n"
)


TRAINING_ENV = "landslide_mapper_training"


def training_env_python(python_dir: Path | None = None) -> Path:
    """The training environment's interpreter under a QGIS profile's ``python`` folder.

    The installed plugin sits in ``<profile>/python/plugins/landslide_mapper``, so by default
    ``python_dir`` is the folder two levels above the package.
    """
    venv = (python_dir or REPO.parent) / TRAINING_ENV / "venv"
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def find_python() -> str:
    """The interpreter that trains: env ``LANDSLIDE_MAPPER_PYTHON``, the project venv, the
    profile's training environment, python3."""
    env = os.environ.get("LANDSLIDE_MAPPER_PYTHON", "").strip()
    if env:
        return env
    for venv in (REPO / ".venv" / "bin" / "python", training_env_python()):
        if venv.is_file():
            return str(venv)
    return shutil.which("python3") or sys.executable


def _child_env(device: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    # The installed plugin ships the training module inside the package folder.
    shipped = str(_PACKAGE) if (_PACKAGE / "training" / "cli.py").is_file() else ""
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), shipped, env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def probe_python(python: str | None = None) -> dict[str, Any]:
    """torch version and GPU of the training interpreter; a clear error when it cannot train."""
    python = python or find_python()
    try:
        done = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True,
                              timeout=300, env=_child_env(), cwd=str(REPO))
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputError(
            f"Training interpreter {python}: cannot be run ({exc}). Set LANDSLIDE_MAPPER_PYTHON "
            "to a Python with torch and segmentation-models-pytorch (e.g. the project's "
            ".venv/bin/python after scripts/setup).") from exc
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise InputError(
            f"Training interpreter {python}: expected torch, segmentation-models-pytorch and "
            f"the project's training module, found they cannot be imported ({last[0]}). "
            "Install the project with its training extra (pip install -e '.[training]' in a "
            "checkout; in QGIS: Install Python packages with its training option) or set "
            "LANDSLIDE_MAPPER_PYTHON to a Python that has them.")
    return json.loads(done.stdout.strip().splitlines()[-1])


@dataclass
class TrainResult:
    """The new model, its run folder and held-out scores."""

    model_path: Path
    run_dir: Path
    device: str
    epochs_run: int
    scores: dict[str, Any]
    messages: list[str] = field(default_factory=list)


def _read_manifest(chips_dir: Path) -> dict[str, Any]:
    path = chips_dir / "manifest.json"
    if not path.is_file():
        raise InputError(f"Chip folder {chips_dir}: expected a manifest.json written by the chip "
                         "export, found none. Export training chips first.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"Chip folder {chips_dir}: manifest.json is not valid JSON ({exc}). "
                         "Export the chips again.") from exc


def resolve_base(base: str | None, messages: list[str]) -> tuple[Path | None, Any]:
    """A base given as a bundled model, an .onnx, a config file or a config name.

    Returns (config file or None, the model's contract or None).
    """
    if not base:
        return None, None
    text = str(base).strip()
    p = Path(text)
    if p.suffix.lower() in (".yaml", ".yml"):
        if not p.is_file():
            raise InputError(f"Training config {text}: file not found.")
        return p.resolve(), None
    if (CONFIG_DIR / f"{text}.yaml").is_file() and not p.suffix:
        from ..models.registry import bundled_models

        if text not in {m.name for m in bundled_models()}:
            return CONFIG_DIR / f"{text}.yaml", None
    from ..contract import read_contract

    path = resolve_model(text)
    contract = read_contract(path)
    config_name = str((contract.training or {}).get("config") or "").strip()
    run = path.with_name(f"{path.stem}_run")  # a model trained here keeps its run beside it
    candidates = [path.with_name(config_name), run / config_name, CONFIG_DIR / config_name,
                  CONFIG_DIR / f"{contract.name}.yaml"] if config_name else \
        [CONFIG_DIR / f"{contract.name}.yaml"]
    for c in candidates:
        if c.is_file() and c.suffix in (".yaml", ".yml"):
            messages.append(f"Model {contract.name}: training with its config {c.name}.")
            return c.resolve(), contract
    raise ModelError(
        f"Model {text}: cannot be fine-tuned: its contract names no training config that "
        f"exists here (found {config_name or 'none'!r}), and an ONNX file holds no trainable "
        "weights. Train from a config instead (a YAML file or one of: "
        f"{', '.join(sorted(x.stem for x in CONFIG_DIR.glob('*.yaml'))) or 'none'}).")


def _without_absent_encoder_weights(config_path: Path, messages: list[str]) -> dict[str, Any]:
    """``{"model": ...}`` starting the encoder from random weights when the base config names a
    pretrained-weights file that is not on this machine (a bundled model's recipe reads them from
    the project's shared folder, which an installed plugin does not have); else ``{}``."""
    import yaml

    try:
        doc = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return {}
    model = doc.get("model") if isinstance(doc, dict) else None
    weights = model.get("encoder_weights") if isinstance(model, dict) else None
    if not weights or str(weights).lower() == "imagenet":
        return {}
    path = Path(os.path.expandvars(os.path.expanduser(str(weights))))
    path = path if path.is_absolute() else config_path.parent / path
    if path.is_file():
        return {}
    messages.append(f"Config {config_path.name}: its encoder weights {path} are not on this "
                    "machine; the encoder starts from random weights (set model.encoder_weights "
                    "to a local copy, or to imagenet with internet access, to start from them).")
    return {"model": dict(model, encoder_weights=None)}


def build_config(chips_dir: Path, *, base: str | None = None, checkpoint: str | None = None,
                 name: str | None = None, epochs: int = 10, batch_size: int | None = None,
                 learning_rate: float | None = None, device: str | None = None,
                 threads: int | None = None, max_steps: int | None = None,
                 extra: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
    """The training config (a plain dict for YAML) and messages for the user."""
    messages: list[str] = []
    manifest = _read_manifest(chips_dir)
    snippet = chip_sources(manifest["training_config"], chips_dir, messages)
    config_path, contract = resolve_base(base, messages)
    n_bands = len(snippet["contract"]["bands"])
    named = str(((contract.training or {}) if contract is not None else {})
                .get("checkpoint") or "").strip()
    if contract is not None and not named and base:
        own_run = f"{resolve_model(base).stem}_run/best.pt"  # a model trained here: its weights
        named = own_run if (resolve_model(base).parent / own_run).is_file() else ""
    if named and not checkpoint and base:
        # a relative checkpoint path is taken from the model file's folder
        found = Path(named) if Path(named).is_absolute() else \
            resolve_model(base).parent / named
        if found.is_file():
            checkpoint = str(found)
            messages.append(f"Model {contract.name}: its training weights are {found}.")
    cfg: dict[str, Any] = {}
    if config_path is not None:
        cfg["extends"] = str(config_path)
    cfg["name"] = name or (f"{contract.name}-finetuned" if contract is not None else "chips-model")
    bands = [dict(b) for b in snippet["contract"]["bands"]]
    normalization: Any = "auto"
    if contract is not None:
        if contract.band_count != n_bands:
            raise InputError(
                f"Chips in {chips_dir}: hold {n_bands} band(s), the model {contract.name} takes "
                f"{contract.band_count} ({', '.join(b.name for b in contract.bands)}). Export "
                "chips with the model's bands, in its order.")
        for b, spec in zip(bands, contract.bands):
            aliases = list(spec.aliases) + ([b["name"]] if b["name"] != spec.name else [])
            b.update(name=spec.name, description=spec.description or b.get("description", ""),
                     aliases=aliases, dtype=spec.dtype or b.get("dtype", ""),
                     value_range=list(spec.value_range) if spec.value_range else
                     b.get("value_range"))
        if checkpoint:
            # raw -> (raw * scale + offset - mean) / std == (raw - mean') / std'
            normalization = {
                "mean": [(s.mean - s.offset) / s.scale for s in contract.bands],
                "std": [s.std / abs(s.scale) for s in contract.bands],
            }
    if checkpoint:
        ck = Path(checkpoint)
        if not ck.is_file():
            raise InputError(f"Checkpoint {checkpoint}: file not found (expected a run's best.pt "
                             "or last.pt).")
        cfg["init_from"] = {"checkpoint": str(ck.resolve())}
        messages.append(f"Starting from the weights of {ck}.")
    elif contract is not None:
        messages.append(
            f"Model {contract.name} ships as ONNX only (no torch weights): training starts from "
            "scratch with its config's settings. Give a checkpoint (a run's best.pt) to start "
            "from trained weights.")
    if config_path is not None and not checkpoint:
        cfg.update(_without_absent_encoder_weights(config_path, messages))
    cfg["data"] = {"tile_size": int(snippet["data"]["tile_size"]),
                   "sources": snippet["data"]["sources"], "normalization": normalization,
                   "kfold": None}
    c = dict(snippet["contract"], bands=bands)
    c["title"] = f"{contract.title} (fine-tuned on {chips_dir.name})" if contract is not None \
        else f"Model trained on {chips_dir.name}"
    c["description"] = (
        f"Trained on chips exported from {manifest.get('raster')} with the landslide polygons "
        f"{manifest.get('polygons')}; raw raster values ({n_bands} band(s)).")
    if contract is None:
        c.setdefault("licence", "")
    else:
        tile = int(snippet["data"]["tile_size"])
        c["overlap"] = int(contract.overlap) if contract.overlap < tile else tile // 4
    cfg["contract"] = c
    cfg["epochs"] = int(epochs)
    cfg["early_stopping"] = {"metric": "f1", "patience": max(int(epochs), 1)}
    if batch_size:
        cfg["batch_size"] = int(batch_size)
    if learning_rate:
        cfg["optimizer"] = {"name": "adam", "lr": float(learning_rate), "weight_decay": 0.0001}
    if device:
        cfg["device"] = device
    if threads:
        cfg["threads"] = int(threads)
    if max_steps:
        cfg["max_steps_per_epoch"] = int(max_steps)
    for key, val in dict(extra or {}).items():
        cfg[key] = val
    return cfg, messages


def _stream(cmd: list[str], env: dict[str, str], log: Callable[[str], None],
            is_canceled: Callable[[], bool], on_line: Callable[[str], None],
            tail: deque[str], log_file: Path) -> int:
    """Run ``cmd``, passing each output line on; terminate it when cancelled."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            bufsize=1, env=env, cwd=str(REPO), errors="replace")
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    with open(log_file, "a", encoding="utf-8") as out:
        finished = False
        while not finished:
            if is_canceled():
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                raise CancelledError("Training cancelled; the training process was stopped and "
                                     "no model was written.")
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                finished = True
                continue
            # tqdm redraws with carriage returns: keep the last state of each line
            text = line.rstrip("\n").split("\r")[-1].rstrip()
            if not text:
                continue
            out.write(text + "\n")
            tail.append(text)
            log(text)
            on_line(text)
    return proc.wait()


def train_on_chips(
    chips_dir: str | os.PathLike[str],
    out_model: str | os.PathLike[str],
    *,
    base: str | None = None,
    checkpoint: str | None = None,
    epochs: int = 10,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    device: str = "auto",
    threads: int | None = None,
    max_steps: int | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    name: str | None = None,
    extra_config: Mapping[str, Any] | None = None,
    python: str | None = None,
    progress: Callable[[float], None] | None = None,
    is_canceled: Callable[[], bool] | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train on the chips in ``chips_dir`` and write ``out_model`` (.onnx with its contract).

    ``base``: a bundled model, an .onnx whose contract names its training config, a config
    file or a config name; None trains the training module's default U-Net. ``device``:
    ``auto`` (the GPU when there is one), ``cuda`` or ``cpu``.
    """
    progress = progress or (lambda f: None)
    is_canceled = is_canceled or (lambda: False)
    log = log or (lambda m: None)
    chips_dir = Path(chips_dir).resolve()  # the training process runs in the repository
    out_model = Path(out_model).resolve()
    if out_model.suffix.lower() != ".onnx":
        raise OutputError(f"Model output {out_model}: expected a file name ending in .onnx, found "
                          f"{out_model.suffix or 'no extension'!r}.")
    if not out_model.parent.is_dir():
        raise OutputError(f"Model output {out_model}: the folder {out_model.parent} does not "
                          "exist. Create it or choose another path.")
    if not chips_dir.is_dir():
        raise InputError(f"Chip folder {chips_dir}: not found. Export training chips first.")
    if device not in ("auto", "cpu", "cuda"):
        raise InputError(f"Device: expected auto, cpu or cuda, found {device!r}.")
    check_distinct([("Base model", base if base and Path(str(base)).is_file() else None),
                    ("Checkpoint", checkpoint)], [("Model output", out_model)])
    run = Path(run_dir).resolve() if run_dir else out_model.with_name(f"{out_model.stem}_run")
    if run.exists() and any(run.iterdir()):
        run = run.with_name(f"{run.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    python = python or find_python()
    log(f"Training interpreter: {python}")
    use, messages = _training_device(device, probe_python(python), python)
    cfg, cfg_messages = build_config(
        chips_dir, base=base, checkpoint=checkpoint, name=name, epochs=epochs,
        batch_size=batch_size, learning_rate=learning_rate, device=use, threads=threads,
        max_steps=max_steps, extra=extra_config)
    messages += cfg_messages
    for m in messages:
        log(m)
    created = not run.exists()
    run.mkdir(parents=True, exist_ok=True)
    try:
        return _fit_and_export(cfg, run, out_model, python, use, epochs, messages, progress,
                               is_canceled, log)
    except BaseException:
        _drop_failed_run(run, created)
        raise


def _fit_and_export(cfg: dict[str, Any], run: Path, out_model: Path, python: str, use: str,
                    epochs: int, messages: list[str], progress: Callable[[float], None],
                    is_canceled: Callable[[], bool], log: Callable[[str], None]) -> TrainResult:
    """Write the config into ``run``, train, and export the best checkpoint to ``out_model``."""
    import yaml

    config_path = run / "train_config.yaml"
    config_path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    log_file = run / "output.log"
    tail: deque[str] = deque(maxlen=_TAIL)
    env = _child_env(use)
    progress(0.02)

    def on_fit_line(text: str) -> None:
        m = _EPOCH_LINE.match(text)
        if m:
            progress(0.02 + 0.88 * min(1.0, int(m.group(1)) / max(1, epochs)))

    fit_cmd = [python, "-u", "-m", "training.cli", "fit", "--config", str(config_path),
               "--run-dir", str(run), "--quiet"]
    code = _stream(fit_cmd, env, log, is_canceled, on_fit_line, tail, log_file)
    if code != 0 or not (run / "best.pt").is_file():
        raise ModelError(_died("Training", code, run, tail))
    progress(0.9)
    tmp = staging.temporary_sibling(out_model)
    try:
        export_cmd = [python, "-u", "-m", "training.cli", "export", "--checkpoint",
                      str(run / "best.pt"), "--out", str(tmp)]
        code = _stream(export_cmd, env, log, is_canceled, lambda t: None, tail, log_file)
        if code != 0 or not tmp.is_file():
            raise ModelError(_died("Export to ONNX", code, run, tail))
        staging.publish(tmp, out_model, "Model output")
    finally:
        tmp.unlink(missing_ok=True)
    summary: dict[str, Any] = {}
    if (run / "summary.json").is_file():
        summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    progress(1.0)
    return TrainResult(out_model, run, use, int(summary.get("epochs_run", 0)),
                       dict(summary.get("scores") or {}), messages)


def _training_device(device: str, info: Mapping[str, Any], python: str) -> tuple[str, list[str]]:
    """The device to train on (``cuda`` or ``cpu``) for the one asked and what ``python``'s torch
    sees (``info``, from :func:`probe_python`), with a note for the user."""
    messages: list[str] = []
    if device == "cuda" and not info["cuda"]:
        raise InputError(f"Device cuda: asked for the GPU, found none usable by torch "
                         f"{info['torch']} in {python}. Choose auto or cpu.")
    use = "cuda" if (device in ("auto", "cuda") and info["cuda"]) else "cpu"
    if use == "cuda":
        messages.append(f"Training on the GPU ({info['gpu']}).")
    elif device == "auto":
        messages.append(f"No GPU found (torch {info['torch']} sees no CUDA device): training on "
                        "the CPU, which is much slower.")
    else:
        messages.append("Training on the CPU, as asked.")
    return use, messages


def _died(what: str, code: int, run: Path, tail: deque[str]) -> str:
    """The error of a training process that failed; its log stays in ``run`` to be read."""
    last = "\n".join(list(tail)[-12:]) or "(no output)"
    where = f"The full log is {run / 'output.log'}"
    return (f"{what} failed: the training process exited with code {code}. Its last lines:\n"
            f"{last}\n{where}; no model was written.")


def _has_checkpoint(run: Path) -> bool:
    return any(run.glob("*.pt"))


def _drop_failed_run(run: Path, created: bool) -> None:
    """Remove the run folder of a run that failed before its training process wrote anything
    (only its config: nothing worth keeping); a log or a checkpoint stays for the user to read."""
    if created and run.is_dir() and not _has_checkpoint(run) and not (run / "output.log").is_file():
        shutil.rmtree(run, ignore_errors=True)
