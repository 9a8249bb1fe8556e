"""Lock files: the exact versions and sha256 hashes that "Install Python packages" installs.

``landslide_mapper/requirements.txt`` (and ``requirements-training.txt``) say what the engine
needs; ``scripts/lock_requirements.py`` resolves them, per platform and Python version, into lock
files shipped in ``landslide_mapper/locks/``::

    <platform>-py<X.Y>-<variant>.txt     e.g. linux_x86_64-py3.11-cpu.txt

``platform`` is one of :data:`PLATFORMS`' keys, ``variant`` is ``cpu`` (onnxruntime), ``gpu``
(onnxruntime-gpu) or ``training`` (the training environment: the engine's packages, numpy and
PyTorch). Each line pins ``name==version`` with the sha256 of every wheel allowed for that platform;
pip installs them with ``--require-hashes --no-deps``, so nothing unlisted is installed and a file
with another hash (a rebuilt or tampered wheel, a mirror serving something else) is refused. The
engine's locks leave numpy out (QGIS's own numpy serves); they are resolved against the numpy the
oldest QGIS of that Python ships, written in the header, and after the install
:func:`host_conflicts` checks every installed package's requirements against the packages QGIS's
Python already has (they come first on ``sys.path``). Nothing here imports QGIS.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

PACKAGE = Path(__file__).resolve().parents[1]
LOCKS = PACKAGE / "locks"
REQUIREMENTS = PACKAGE / "requirements.txt"
TRAINING_REQUIREMENTS = PACKAGE / "requirements-training.txt"
VARIANTS = ("cpu", "gpu", "training")
GPU_RUNTIME = "onnxruntime-gpu"
#: Lock platform key -> what it is. The keys are what :func:`platform_key` names a host.
PLATFORMS = {
    "linux_x86_64": "Linux on x86-64 (glibc 2.28 or newer)",
    "linux_aarch64": "Linux on ARM64 (glibc 2.28 or newer)",
    "win_amd64": "Windows on x86-64",
    "macos_arm64": "macOS 13 or newer on Apple silicon",
    "macos_x86_64": "macOS 13 or newer on Intel",
}
_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
_HEADER = re.compile(r"^#\s*([a-z0-9-]+):\s*(.*?)\s*$")


def requirement_name(line: str) -> str:
    """The normalised project name of a requirement line (``onnxruntime-gpu>=1`` -> that name)."""
    match = _REQ_NAME.match(line)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else ""


def platform_key(platform: str = sys.platform, machine: str | None = None) -> str:
    """The lock platform of a host: ``sys.platform`` and ``platform.machine()``."""
    if machine is None:
        import platform as _platform

        machine = _platform.machine()
    arch = machine.lower()
    arch = {"amd64": "x86_64", "x64": "x86_64", "aarch64": "arm64"}.get(arch, arch or "unknown")
    if platform.startswith("win"):
        return "win_amd64" if arch == "x86_64" else f"win_{arch}"
    if platform == "darwin":
        return f"macos_{arch}"
    if platform.startswith("linux"):
        return f"linux_{'aarch64' if arch == 'arm64' else arch}"
    return f"{platform}_{arch}"


def lock_name(platform: str, python: str, variant: str) -> str:
    return f"{platform}-py{python}-{variant}.txt"


def requirement_lines(path: Path) -> list[str]:
    """The requirement lines of a requirements file, without comments and blank lines."""
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    return lines


def lock_inputs(variant: str, requirements: Path = REQUIREMENTS,
                training: Path = TRAINING_REQUIREMENTS) -> list[str]:
    """What a lock of ``variant`` is resolved from: the requirement lines, adapted."""
    lines = requirement_lines(requirements)
    if variant == "gpu":
        lines = [GPU_RUNTIME + line[len("onnxruntime"):]
                 if requirement_name(line) == "onnxruntime" else line for line in lines]
    if variant == "training":
        lines += requirement_lines(training)
    return lines


def inputs_digest(lines: Iterable[str]) -> str:
    """A short hash of requirement lines (order and spacing do not matter): written into each
    lock's header, so a lock made before the requirements changed is recognised as stale."""
    text = "\n".join(sorted(re.sub(r"\s+", "", line) for line in lines))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Lock:
    """A lock file read: its header fields and pinned packages (normalised name -> version)."""

    path: Path
    header: dict[str, str]
    packages: dict[str, str]
    sha256: str

    @property
    def runtime(self) -> str:
        return GPU_RUNTIME if GPU_RUNTIME in self.packages else "onnxruntime"

    @property
    def numpy(self) -> str:
        """The numpy the lock was resolved against (its header), '' when it does not say."""
        return self.header.get("numpy", "").split(" ", 1)[0]


def read_lock(path: Path) -> Lock:
    """Parse a lock file (``# key: value`` header lines, then ``name==version`` lines)."""
    data = Path(path).read_bytes()
    header: dict[str, str] = {}
    packages: dict[str, str] = {}
    for line in data.decode("utf-8").splitlines():
        match = _HEADER.match(line)
        if match and not packages:
            header.setdefault(match.group(1), match.group(2))
            continue
        pin = _PIN.match(line.strip())
        if pin:
            packages[requirement_name(pin.group(1))] = pin.group(2)
    return Lock(Path(path), header, packages, hashlib.sha256(data).hexdigest())


def _version_key(python: str) -> tuple[int, ...]:
    return tuple(int(p) for p in python.split(".") if p.isdigit())


def shipped_summary(folder: Path = LOCKS) -> str:
    """Which hosts the lock files of ``folder`` cover, in words."""
    names = [p.name for p in sorted(folder.glob("*-py*-*.txt"))] if folder.is_dir() else []
    parts = [n[:-len(".txt")].split("-") for n in names]
    platforms = sorted({p[0] for p in parts if len(p) == 3})
    pythons = sorted({p[1][2:] for p in parts if len(p) == 3}, key=_version_key)
    if not platforms:
        return "no host at all (the folder holds no lock file)"
    return f"Python {', '.join(pythons)} on {', '.join(platforms)}"


def find_lock(platform: str, python: str, variant: str, folder: Path = LOCKS) -> Path:
    """The lock file for a host; LookupError with the paragraph to show when there is none."""
    path = folder / lock_name(platform, python, variant)
    if path.is_file():
        return path
    what = {"cpu": "CPU build of onnxruntime", "gpu": "GPU build, onnxruntime-gpu",
            "training": "training packages"}.get(variant, variant)
    raise LookupError(
        f"No lock file for Python {python} on {platform} ({what}): the installer installs only "
        f"the exact, hash-checked versions a lock file lists, and the plugin's lock files "
        f"({folder}) cover {shipped_summary(folder)}. Make one on a computer with internet and "
        f"the plugin's source code: 'python scripts/lock_requirements.py --platform {platform} "
        f"--python {python} --variant {variant}' (see docs/installer.md), give the file it "
        "writes as the 'Lock file' option (advanced parameters) and run the installer again. "
        "Nothing was changed.")


# --- what QGIS's Python already has ------------------------------------------------------------

def host_distributions(exclude: Sequence[os.PathLike[str] | str] = ()) -> dict[str, str]:
    """Normalised name -> version of the distributions this Python finds on ``sys.path``.

    The first one found wins, as for imports; folders in ``exclude`` (the plugin's package
    folders) are left out, so this is what QGIS's Python has before the plugin's packages.
    """
    skip = [os.path.normcase(os.path.abspath(p)) for p in exclude]
    paths = []
    for entry in sys.path:
        full = os.path.normcase(os.path.abspath(entry)) if entry else ""
        if full and not any(full == s or full.startswith(s + os.sep) for s in skip):
            paths.append(entry)
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions(path=paths):
        name = dist.metadata["Name"] if dist.metadata else None
        if name:
            found.setdefault(requirement_name(name), dist.version)
    return found


def _packaging():
    """packaging's Requirement and InvalidVersion: QGIS's own, else the copy inside pip."""
    try:
        from packaging.requirements import InvalidRequirement, Requirement
        from packaging.version import InvalidVersion
    except ImportError:
        try:
            from pip._vendor.packaging.requirements import InvalidRequirement, Requirement
            from pip._vendor.packaging.version import InvalidVersion
        except ImportError:
            return None
    return Requirement, (InvalidRequirement, InvalidVersion)


def host_conflicts(folder: Path, host: Mapping[str, str]) -> list[str] | None:
    """Requirements of the packages in ``folder`` that will not be met once it is in use.

    The folder comes after QGIS's own packages (``host``: name -> version) on ``sys.path``, so a
    package both have is QGIS's: its version must satisfy every package of the folder that is
    used, and a package nobody provides (numpy, left out of the lock, where QGIS has none) is
    missing. Each problem is one phrase; None when packaging cannot be imported to check.
    """
    tools = _packaging()
    if tools is None:
        return None
    requirement_type, invalid = tools
    installed = {}
    for dist in importlib.metadata.distributions(path=[str(folder)]):
        name = dist.metadata["Name"] if dist.metadata else None
        if name:
            installed[requirement_name(name)] = dist
    problems = []
    for key, dist in sorted(installed.items()):
        if key in host:
            continue  # QGIS's copy is the one imported: this one's requirements never apply
        who = f"{dist.metadata['Name']} {dist.version}"
        for text in dist.requires or ():
            try:
                req = requirement_type(text)
                if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                    continue
                wanted = requirement_name(req.name)
                if wanted in host:
                    version, where = host[wanted], "QGIS's Python has"
                elif wanted in installed:
                    version, where = installed[wanted].version, "the lock has"
                else:
                    problems.append(f"{who} needs {req.name}{req.specifier}, which neither "
                                    "QGIS's Python nor the lock provides")
                    continue
                if not req.specifier.contains(version, prereleases=True):
                    problems.append(f"{who} needs {req.name}{req.specifier} but {where} "
                                    f"{req.name} {version}")
            except invalid:
                continue
    return problems


def conflicts_paragraph(problems: Sequence[str], lock: Lock, platform: str, python: str,
                        host_numpy: str | None) -> str:
    """The failure paragraph for :func:`host_conflicts`' problems."""
    resolved = f" was resolved against numpy {lock.numpy}" if lock.numpy else ""
    numpy = f" --numpy {host_numpy}" if host_numpy else ""
    return (
        f"The packages of the lock file {lock.path.name} do not work with the packages QGIS's "
        f"own Python already has, which are imported first: {'; '.join(problems)}. The lock "
        f"file{resolved}. Make a lock for this QGIS on a computer with internet and the "
        f"plugin's source code: 'python scripts/lock_requirements.py --platform {platform} "
        f"--python {python}{numpy}' (see docs/installer.md), give the file it writes as the "
        "'Lock file' option (advanced parameters) and run the installer again. Nothing was "
        "changed.")


# --- pip's hash errors -------------------------------------------------------------------------

_MISMATCH = re.compile(r"^\s+(\S+?)==(\S+) from (\S+)")
_EXPECTED = re.compile(r"^\s+Expected sha256 ([0-9a-f]+)")
_GOT = re.compile(r"^\s+Got\s+([0-9a-f]+)")


def explain_hash_failure(lines: Sequence[str], lock: Path, source: str) -> str | None:
    """The paragraph for pip's hash errors in ``lines``, None when there are none."""
    text = "\n".join(lines)
    if "THESE PACKAGES DO NOT MATCH THE HASHES" in text:
        found: list[str] = []
        start = next(i for i, ln in enumerate(lines) if "DO NOT MATCH THE HASHES" in ln)
        for i, line in enumerate(lines[start + 1:], start + 1):
            match = _MISMATCH.match(line)
            if not match:
                continue
            file = match.group(3).split("#", 1)[0].rstrip(":").rsplit("/", 1)[-1]
            expected = next((m.group(1) for ln in lines[i + 1:i + 6]
                             if (m := _EXPECTED.match(ln))), "")
            got = next((m.group(1) for ln in lines[i + 1:i + 8] if (m := _GOT.match(ln))), "")
            found.append(f"{match.group(1)}=={match.group(2)} ({file}: sha256 {got[:16]}…, the "
                         f"lock lists {expected[:16]}…)")
        packages = "; ".join(found) or "see pip's log above"
        return (
            f"Refused: {source} offered a file that is not the one the lock file {lock.name} "
            f"lists, for {packages}. The file was changed or rebuilt, or the source serves "
            "something other than the files the plugin was released with. Install from "
            "pypi.org, or from wheels downloaded from it ('Offline install' in the plugin's "
            "README); if a mirror serves this file, ask its administrator. Do not edit the lock "
            "file to accept it. Nothing was changed.")
    if ("Hashes are required in --require-hashes mode" in text
            or "must have their versions pinned with ==" in text):
        return (
            f"The lock file {lock} lists a package without its exact version and sha256 hash "
            "(pip's log above names it); every line must be 'name==version --hash=sha256:...'. "
            "Make the file with scripts/lock_requirements.py, then run the installer again. "
            "Nothing was changed.")
    return None
