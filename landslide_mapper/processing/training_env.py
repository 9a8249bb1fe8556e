"""The optional training environment: PyTorch and segmentation-models-pytorch, apart from QGIS.

Training runs in its own process (``core/loop/training_run.py``), so its packages need not load
into QGIS and must not: torch is large and brings its own native libraries. The installer makes a
virtual environment from QGIS's Python at ``<profile>/python/landslide_mapper_training/venv``
(:func:`..core.loop.training_run.training_env_python`, where ``train_model`` looks by itself)
and installs the training lock file into it (``<platform>-pyX.Y-training.txt``: the packages of
``requirements.txt`` and ``requirements-training.txt``, numpy and PyTorch included, exact versions
and sha256 hashes; :mod:`.locks`). As for the engine's packages, it is built in a temporary
sibling folder and moved into place only when complete. Nothing here imports QGIS.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Callable

from ..core.loop.training_run import training_env_python
from ..core.staging import temporary_sibling
from .host_python import _no_window
from .locks import read_lock
from .package_installer import InstallError, InstallPlan, explain_failure, run_pip

_PROBE = "import torch, segmentation_models_pytorch; print(torch.__version__)"
RECORD = "landslide_mapper_training.json"  # in the environment: the lock it was made from


def training_ready(python: Path, lock: Path | None = None) -> str | None:
    """torch's version when ``python`` can train (made from ``lock``, when given), else None."""
    if not python.is_file():
        return None
    if lock is not None:
        try:
            made = json.loads((python.parents[1] / RECORD).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if made.get("lock_sha256") != read_lock(lock).sha256:
            return None
    try:
        done = subprocess.run([str(python), "-c", _PROBE], capture_output=True, text=True,
                              timeout=300, **_no_window())
    except (OSError, subprocess.SubprocessError):
        return None
    lines = done.stdout.strip().splitlines()
    return lines[-1] if done.returncode == 0 and lines else None


def install_training_env(
    plan: InstallPlan,
    profile: Path,
    lock: Path,
    *,
    log: Callable[[str], None] = print,
    is_canceled: Callable[[], bool] = lambda: False,
    reinstall: bool = False,
) -> Path:
    """Make (or find up to date) the training environment; returns its Python."""
    python = training_env_python(Path(profile) / "python")
    venv = python.parents[1]
    version = None if reinstall else training_ready(python, lock)
    if version:
        log(f"Training environment already installed: torch {version} ({python}).")
        return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    staging = temporary_sibling(venv, "work")
    try:
        made = subprocess.run([*plan.python, "-m", "venv", str(staging)], capture_output=True,
                              text=True, timeout=600, env=dict(plan.env), **_no_window())
        if made.returncode != 0:
            last = (made.stderr or made.stdout).strip().splitlines()[-1:] or ["no output"]
            raise InstallError(
                f"A virtual environment cannot be made with QGIS's Python ({last[0]}). On "
                "Debian/Ubuntu install python3-venv ('sudo apt install python3-venv'), then run "
                "the installer again. Nothing was changed.")
        staged = staging / python.relative_to(venv)
        command = [str(staged), "-m", "pip", "install", "--only-binary=:all:", "--no-deps",
                   "--require-hashes", "--no-input", "--disable-pip-version-check",
                   "--progress-bar", "off", "--no-color", "-r", str(lock)]
        if plan.wheels is not None:
            command += ["--no-index", "--find-links", str(plan.wheels)]
        elif plan.index_url:
            command += ["--index-url", plan.index_url]
        log("Installing the training packages (several GB): " + " ".join(command))
        lines = run_pip(command, plan.env, log, lambda _f: None, is_canceled)
        code = int(lines.pop())
        if code != 0:
            raise InstallError(explain_failure(lines, replace(plan, lock=lock), code))
        (staging / RECORD).write_text(json.dumps(
            {"lock": lock.name, "lock_sha256": read_lock(lock).sha256}), encoding="utf-8")
        if venv.exists():
            shutil.rmtree(venv)
        staging.rename(venv)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"Training environment ready: {python}; Train landslide model uses it by itself.")
    return python
