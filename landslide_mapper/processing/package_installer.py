"""Installing the engine's Python packages with pip into the plugin's folder in the QGIS profile.

The design (see ``docs/installer.md``): QGIS's own Python (found by :mod:`.host_python`) runs
``pip install --target <profile>/python/landslide_mapper_deps/pyX.Y --no-deps --require-hashes``
with the lock file for the host (:mod:`.locks`: exact versions and sha256 hashes, made from
``landslide_mapper/requirements.txt``); :func:`.dependencies.use_deps_folder` appends that folder to
``sys.path`` at start-up, and :func:`.dependencies.load_native_packages` binds the compiled wheels
to their own GEOS/GDAL/PROJ. QGIS's numpy is never replaced: the locks leave numpy out, and after
pip the requirements of every installed package are checked against what QGIS's Python already
has (:func:`.locks.host_conflicts`). pip writes into a temporary sibling folder that replaces the
old one only when everything succeeded, so a failed, refused or cancelled install leaves QGIS and
the plugin as they were. Nothing here imports QGIS.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime
import importlib.metadata
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from ..core.errors import CancelledError
from ..core.staging import temporary_sibling
from .dependencies import BATCH_MODULES, REQUIRED_MODULES, missing_modules
from .host_python import Host, _no_window
from .locks import (
    GPU_RUNTIME,
    REQUIREMENTS,
    conflicts_paragraph,
    explain_hash_failure,
    host_conflicts,
    platform_key,
    read_lock,
    requirement_lines,
    requirement_name,
)

RECORD = "landslide_mapper_install.json"
# Packages the QGIS Python loads itself: never in the locks; a copy pip put there is removed.
HOST_PACKAGES = ("numpy",)


class InstallError(Exception):
    """The install did not succeed; the message is one paragraph: the cause and the next step."""


@dataclass(frozen=True)
class InstallPlan:
    """Everything one pip run needs, decided before it starts."""

    python: list[str]
    target: Path
    requirements: list[str]  # the top-level requirements (what the summary names)
    host: Host
    lock: Path  # what pip installs: exact versions and hashes (:mod:`.locks`)
    numpy_version: str | None = None
    wheels: Path | None = None
    index_url: str | None = None
    gpu_reason: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    # What QGIS's Python already has, found before the package folder (name -> version).
    host_packages: Mapping[str, str] = field(default_factory=dict)

    @property
    def runtime(self) -> str:
        return read_lock(self.lock).runtime


def read_requirements(
    path: Path = REQUIREMENTS, *, gpu: bool = False, host_numpy: str | None = None
) -> list[str]:
    """The top-level requirement lines of the shipped file, adapted to this QGIS: what the
    install's summary names (pip installs the lock file, :mod:`.locks`).

    onnxruntime becomes onnxruntime-gpu with a GPU. With ``host_numpy`` (the numpy QGIS loads)
    the numpy line is dropped: QGIS's own numpy serves, the locks leave it out.
    """
    lines = []
    for line in requirement_lines(path):
        if host_numpy and requirement_name(line) in HOST_PACKAGES:
            continue
        if gpu and requirement_name(line) == "onnxruntime":
            line = GPU_RUNTIME + line[len("onnxruntime"):]
        lines.append(line)
    return lines


def nvidia_gpu(
    platform: str = sys.platform,
    run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
    load_library: Callable[[str], object] = ctypes.CDLL,
) -> tuple[bool, str]:
    """Whether an NVIDIA GPU with its driver is present, and why that was concluded.

    ``nvidia-smi -L`` listing a GPU decides; without nvidia-smi the driver's CUDA library
    (``libcuda.so.1``, ``nvcuda.dll``) must load. macOS has no CUDA.
    """
    if platform == "darwin":
        return False, "macOS has no CUDA; the CPU build of onnxruntime is used"
    try:
        done = run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20,
                   **_no_window())
        gpus = [line for line in done.stdout.splitlines() if line.startswith("GPU ")]
        if done.returncode == 0 and gpus:
            return True, f"NVIDIA GPU found by nvidia-smi: {gpus[0].split(' (UUID')[0]}"
        smi = f"nvidia-smi lists no GPU (exit code {done.returncode})"
    except (OSError, subprocess.SubprocessError):
        smi = "nvidia-smi not found"
    library = "nvcuda.dll" if platform.startswith("win") else "libcuda.so.1"
    try:
        load_library(library)
    except OSError:
        return False, f"no NVIDIA GPU driver ({smi}, {library} not found)"
    return True, f"NVIDIA driver library {library} present ({smi})"


def pip_environment(environ: Mapping[str, str], *, isolated: bool) -> dict[str, str]:
    """The environment pip runs in; ``isolated`` drops the user's pip configuration.

    With a wheel folder or an explicit index, pip must use that source alone, so pip's
    configuration files and ``PIP_*`` variables (other indexes, find-links) are ignored. Proxy
    variables stay: pip honours ``HTTPS_PROXY`` either way.
    """
    env = {k: v for k, v in environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONNOUSERSITE"] = "1"
    if isolated:
        env = {k: v for k, v in env.items() if not k.upper().startswith("PIP_")}
        env["PIP_CONFIG_FILE"] = os.devnull
    return env


def pip_command(plan: InstallPlan, staging: Path) -> list[str]:
    """``python -m pip install --target STAGING ... -r LOCK`` for the plan."""
    command = [
        *plan.python, "-m", "pip", "install", "--target", str(staging),
        "--only-binary=:all:",  # never build from source: no compiler or GDAL headers needed
        "--no-deps", "--require-hashes",  # exactly the lock's files: nothing else, nothing changed
        "--no-input", "--disable-pip-version-check", "--no-warn-script-location",
        "--progress-bar", "off", "--no-color",
    ]
    if plan.wheels is not None:
        command += ["--no-index", "--find-links", str(plan.wheels)]
    elif plan.index_url:
        command += ["--index-url", plan.index_url]
    return command + ["-r", str(plan.lock)]


def installed_packages(folder: Path) -> dict[str, str]:
    """Project name -> version of every distribution pip put in ``folder``."""
    found = {}
    for info in sorted(folder.glob("*.dist-info")):
        name, _, version = info.name[: -len(".dist-info")].partition("-")
        found[requirement_name(name)] = version
    return found


def read_record(target: Path) -> dict | None:
    try:
        return json.loads((target / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def up_to_date(plan: InstallPlan) -> dict | None:
    """The earlier install's record when it already does what the plan asks, else None."""
    record = read_record(plan.target)
    if not record or record.get("lock_sha256") != read_lock(plan.lock).sha256:
        return None
    if record.get("numpy") != plan.numpy_version:
        return None
    if missing_modules(REQUIRED_MODULES + BATCH_MODULES):
        return None
    return record


def describe(record: Mapping) -> str:
    """One line: what an install record says is installed."""
    packages = record.get("packages", {})
    wanted = [n for n in (requirement_name(r) for r in record.get("requirements", []))
              if n in packages] or sorted(packages)
    listed = ", ".join(f"{n} {packages[n]}{_shadowed(n, packages[n])}" for n in wanted)
    numpy = record.get("numpy")
    kept = f"; QGIS's own numpy {numpy} is used" if numpy else ""
    return f"{listed} (in {record.get('target', '?')}){kept}"


def _shadowed(name: str, version: str) -> str:
    """A note when QGIS's Python already has another version of ``name``, which then serves."""
    try:
        found = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return ""
    return "" if found == version else f" (QGIS's Python has its own {found}, which is used)"


def install(
    plan: InstallPlan,
    *,
    log: Callable[[str], None] = print,
    progress: Callable[[float], None] = lambda _f: None,
    is_canceled: Callable[[], bool] = lambda: False,
) -> dict:
    """Run pip for the plan into a temporary sibling folder, then put it in place; the record.

    Raises :class:`InstallError` (one paragraph) on failure and :class:`CancelledError` when
    cancelled; in both cases the folder in use before is untouched and the temporary one removed.
    """
    parent = plan.target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InstallError(
            f"The package folder {parent} cannot be created ({exc.strerror or exc}). Check that "
            "the QGIS profile folder is writable, then run the installer again.") from exc
    lock = read_lock(plan.lock)
    # A hidden sibling marked with host and process id; those of killed runs are swept away.
    staging = temporary_sibling(plan.target, "work")
    command = pip_command(plan, staging)
    log("Running: " + " ".join(_quote(c) for c in command))
    try:
        lines = run_pip(command, plan.env, log, progress, is_canceled)
        code = lines.pop()
        if code != "0":
            raise InstallError(explain_failure(lines, plan, int(code)))
        for name in HOST_PACKAGES if plan.numpy_version else ():  # QGIS's own copy serves
            for path in [staging / name, staging / f"{name}.libs", *staging.glob(f"{name}-*")]:
                shutil.rmtree(path, ignore_errors=True)
        _check_against_host(staging, lock, plan, log)
        record = {
            "python": plan.host.version_text, "platform": plan.host.platform,
            "interpreter": " ".join(plan.python), "requirements": list(plan.requirements),
            "lock": lock.path.name, "lock_sha256": lock.sha256,
            "numpy": plan.numpy_version, "onnxruntime": lock.runtime,
            "gpu": plan.gpu_reason, "target": str(plan.target),
            "source": str(plan.wheels or plan.index_url or "the configured package index"),
            "packages": installed_packages(staging),
            "installed": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
        }
        (staging / RECORD).write_text(json.dumps(record, indent=2), encoding="utf-8")
        _swap_into_place(staging, plan.target)
        progress(1.0)
        return record
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not any(parent.iterdir()):  # a first install that failed: leave no trace
            parent.rmdir()


def _check_against_host(staging: Path, lock, plan: InstallPlan,
                        log: Callable[[str], None]) -> None:
    """Refuse a set of packages whose requirements QGIS's own packages (found first) break."""
    problems = host_conflicts(staging, plan.host_packages)
    if problems is None:
        log("Requirements not checked against QGIS's own packages: this Python has neither "
            "packaging nor pip's copy of it.")
    elif problems:
        raise InstallError(conflicts_paragraph(
            problems, lock, platform_key(plan.host.platform, plan.host.machine),
            plan.host.version_text, plan.numpy_version))
    else:
        log(f"Checked: every installed package's requirements are met, QGIS's own packages "
            f"included{f' (numpy {plan.numpy_version})' if plan.numpy_version else ''}.")


def run_pip(command: list[str], env: Mapping[str, str], log: Callable[[str], None],
             progress: Callable[[float], None], is_canceled: Callable[[], bool]) -> list[str]:
    """pip's output lines (logged as they come) followed by its exit code as text."""
    try:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, errors="replace",
                                env=dict(env), **_no_window())
    except OSError as exc:
        raise InstallError(
            f"The Python that QGIS runs ({command[0]}) cannot be started ({exc.strerror or exc}). "
            "Choose its interpreter in the installer's 'Python interpreter' option.") from exc
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        with proc.stdout:  # type: ignore[union-attr]
            for line in proc.stdout:  # type: ignore[union-attr]
                lines.put(line.rstrip())
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    expected = 2 * (len(command) - command.index("install")) + 8  # rough: dependencies too
    collected = 0
    while True:
        if is_canceled():
            _stop(proc)
            raise CancelledError("Install cancelled: pip was stopped; nothing was changed.")
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        if line is None:
            break
        seen.append(line)
        log(line)
        if line.startswith("Collecting "):
            collected += 1
            progress(min(0.7, 0.7 * collected / expected))
        elif line.startswith("Installing collected packages"):
            progress(0.8)
    return [*seen, str(proc.wait())]


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _swap_into_place(staging: Path, target: Path) -> None:
    """Replace ``target`` by ``staging``; the old folder is restored if that fails."""
    old = temporary_sibling(target, "work")
    if target.exists():
        try:
            target.rename(old)
        except OSError as exc:
            raise InstallError(
                f"The installed packages in {target} are in use and cannot be replaced "
                f"({exc.strerror or exc}). Restart QGIS and run the installer again before "
                "using the plugin.") from exc
    try:
        staging.rename(target)
    except OSError as exc:
        if old.exists():
            old.rename(target)
        raise InstallError(f"The new packages could not be moved to {target} "
                           f"({exc.strerror or exc}); the previous ones are kept.") from exc
    # On Windows a library loaded from the old folder keeps it; a later run sweeps it away.
    shutil.rmtree(old, ignore_errors=True)


def _quote(text: str) -> str:
    return f'"{text}"' if (" " in text or "<" in text or ">" in text) else text


_NETWORK = ("NewConnectionError", "Connection refused", "Max retries exceeded",
            "Temporary failure in name resolution", "Name or service not known",
            "getaddrinfo failed", "Network is unreachable", "timed out", "ConnectTimeout",
            "Failed to establish a new connection")


def explain_failure(lines: Sequence[str], plan: InstallPlan, code: int) -> str:
    """One paragraph from pip's output: what went wrong and what to do next."""
    text = "\n".join(lines)
    python = " ".join(plan.python)
    tag = f"Python {plan.host.version_text} on {plan.host.platform}"
    source = (f"the wheel folder {plan.wheels}" if plan.wheels else
              f"the package index {plan.index_url}" if plan.index_url else "the package index")
    unchanged = " Nothing was changed."
    refused = explain_hash_failure(lines, plan.lock, source)
    if refused:
        return refused
    missing = re.search(r"No matching distribution found for ([^\s]+)", text)
    if "No module named pip" in text:
        return (f"pip is not available for QGIS's Python ({python}). Install it (Debian/Ubuntu: "
                "'sudo apt install python3-pip'; OSGeo4W: the python3-pip package in the "
                "OSGeo4W setup), then run the installer again." + unchanged)
    if "ProxyError" in text or "407 Proxy" in text:
        return (f"The proxy refused the connection to {source}. Set HTTPS_PROXY (e.g. "
                "http://user:password@proxy:port) before starting QGIS, or install from a wheel "
                "folder (Offline wheel folder option)." + unchanged)
    if "SSLError" in text or "CERTIFICATE_VERIFY_FAILED" in text:
        return (f"The secure connection to {source} failed (certificate not trusted, often a "
                "company proxy). Ask for the proxy's certificate and set PIP_CERT to it, or "
                "install from a wheel folder (Offline wheel folder option)." + unchanged)
    if plan.wheels is None and any(k in text for k in _NETWORK):
        return (f"{source.capitalize()} cannot be reached (no network connection, or a proxy "
                "in between). Check the connection or set HTTPS_PROXY before starting QGIS, or "
                "install from a folder of wheels downloaded elsewhere (Offline wheel folder "
                "option; see 'Offline install' in the plugin's README)." + unchanged)
    if "No space left on device" in text:
        return (f"The disk holding {plan.target.parent} is full. Free some space (the packages "
                "take about 400 MB) and run the installer again." + unchanged)
    if missing:
        wanted = missing.group(1)
        where = (f"{source}" if plan.wheels else f"{source} for {tag}")
        hint = (f"Add a wheel of {wanted} for {tag} to the folder (the pip download command that "
                "fills it is in 'Offline install' of the plugin's README)" if plan.wheels else
                f"Check that {tag} is supported by {requirement_name(wanted)}'s releases, or "
                "install from a wheel folder")
        return (f"No installable wheel of {wanted} was found in {where}. {hint}, then run the "
                "installer again." + unchanged)
    if "Permission denied" in text:
        return (f"pip could not write to {plan.target.parent} (permission denied). Check that "
                "the QGIS profile folder is writable, then run the installer again." + unchanged)
    last = next((ln.strip() for ln in reversed(lines) if ln.strip()), "no output")
    return (f"pip failed (exit code {code}) installing into {plan.target}: {last[:300]}. The "
            "full log is above; run the installer again after fixing that." + unchanged)
