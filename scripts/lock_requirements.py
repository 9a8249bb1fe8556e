#!/usr/bin/env python3
"""Make the installer's lock files: exact versions and sha256 hashes per platform and Python.

"Install Python packages" installs only what a lock file of ``landslide_mapper/locks/`` lists,
with ``pip install --no-deps --require-hashes --only-binary=:all:``. This script resolves
``landslide_mapper/requirements.txt`` (plus ``requirements-training.txt`` for the training
variant) for each platform, Python version and variant with uv, which resolves for another
platform than its own (``uv pip compile --python-platform ... --python-version ...``), and keeps
the hashes of the wheels that platform can install::

    landslide_mapper/locks/<platform>-py<X.Y>-<cpu|gpu|training>.txt

- ``cpu``/``gpu``: the engine's packages with onnxruntime or onnxruntime-gpu (Linux and Windows
  on x86-64 only). numpy is left out, since QGIS's own numpy serves, but resolved against the
  numpy the oldest QGIS of that Python ships (:data:`NUMPY_FLOOR`, or ``--numpy``), so every
  package chosen works with it and anything newer below 2; the header records it.
- ``training``: the engine's and the training packages, numpy and PyTorch included (they go into
  a separate virtual environment).

Run it after changing a requirements file, and from time to time to pick up new releases; then
check the diff and commit the locks. uv is needed (``pip install uv``); the index is PyPI unless
``--index-url`` says otherwise. Examples::

    python scripts/lock_requirements.py                       # every default lock
    python scripts/lock_requirements.py --platform linux_x86_64 --python 3.11 --variant cpu
    python scripts/lock_requirements.py --platform linux_aarch64 --python 3.12 --numpy 1.26.4 \\
        --out-dir /tmp/locks                                  # a host the plugin does not ship
    python scripts/lock_requirements.py --check               # are the locks up to date?
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from landslide_mapper.processing.locks import (  # noqa: E402
    LOCKS,
    PLATFORMS,
    VARIANTS,
    inputs_digest,
    lock_inputs,
    lock_name,
    read_lock,
    requirement_name,
)

#: Lock platform -> uv's --python-platform, and the environment uv reads the minimum OS from.
UV_TARGETS = {
    "linux_x86_64": ("x86_64-manylinux_2_28", {}),
    "linux_aarch64": ("aarch64-manylinux_2_28", {}),
    "win_amd64": ("x86_64-pc-windows-msvc", {}),
    "macos_arm64": ("aarch64-apple-darwin", {"MACOSX_DEPLOYMENT_TARGET": "13.0"}),
    "macos_x86_64": ("x86_64-apple-darwin", {"MACOSX_DEPLOYMENT_TARGET": "13.0"}),
}
#: What the plugin ships: the platforms QGIS users have, the Python versions QGIS 3.22+ ships.
DEFAULT_PLATFORMS = ("linux_x86_64", "win_amd64", "macos_arm64", "macos_x86_64")
DEFAULT_PYTHONS = ("3.9", "3.10", "3.11", "3.12")
GPU_PLATFORMS = ("linux_x86_64", "win_amd64")  # where onnxruntime-gpu has wheels
#: The oldest numpy a QGIS (3.22 or newer) of each Python ships, which the engine's locks are
#: resolved against: Debian 12 has numpy 1.24.2 (Python 3.11), Ubuntu 24.04 1.26.4 (3.12).
#: Ubuntu 22.04's 1.21.5 (3.10) is below what every onnxruntime >= 1.16 declares (numpy>=1.21.6),
#: so 1.21.6 is the floor for 3.9 and 3.10 (OSGeo4W, macOS and Ubuntu builds).
NUMPY_FLOOR = {"3.9": "1.21.6", "3.10": "1.21.6", "3.11": "1.24.2", "3.12": "1.26.4"}
INDEX = "https://pypi.org/simple"


def find_uv() -> list[str]:
    """The uv command: on PATH, next to this Python, or as ``python -m uv``."""
    for candidate in (shutil.which("uv"), str(Path(sys.executable).with_name("uv"))):
        if candidate and Path(candidate).is_file():
            return [candidate]
    done = subprocess.run([sys.executable, "-m", "uv", "--version"], capture_output=True)
    if done.returncode == 0:
        return [sys.executable, "-m", "uv"]
    raise SystemExit("uv: not found (looked on PATH and next to this Python). Install it, e.g. "
                     "'pip install uv' in a virtual environment, and run this script again.")


def _toml(path: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib  # type: ignore[no-redef]
    with path.open("rb") as f:
        return tomllib.load(f)


def resolve(uv: list[str], platform: str, python: str, variant: str, numpy: str | None,
            index: str, work: Path) -> list[dict]:
    """uv's resolution (pylock.toml packages, only the wheels the target can install)."""
    target, env = UV_TARGETS[platform]
    inputs = work / "requirements.in"
    inputs.write_text("\n".join(lock_inputs(variant)) + "\n", encoding="utf-8")
    out = work / "pylock.toml"
    command = [*uv, "pip", "compile", str(inputs), "--format", "pylock.toml", "-o", str(out),
               "--python-platform", target, "--python-version", python,
               "--only-binary", ":all:", "--index-url", index, "--no-config", "--quiet"]
    if variant != "training":
        constraints = work / "constraints.txt"
        constraints.write_text(f"numpy=={numpy}\n", encoding="utf-8")
        command += ["-c", str(constraints), "--no-emit-package", "numpy"]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env})
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
        raise RuntimeError(" ".join(ln.strip() for ln in lines[-6:]) or "uv failed")
    return _toml(out).get("packages", [])


def lock_text(packages: list[dict], platform: str, python: str, variant: str,
              numpy: str | None, uv_version: str) -> str:
    """The lock file: a header of ``# key: value`` lines, then one pinned line per package."""
    target = UV_TARGETS[platform][0]
    if variant == "training":
        numpy_line = next((f"{p['version']} (installed)" for p in packages
                           if requirement_name(p["name"]) == "numpy"), "none")
    else:
        numpy_line = f"{numpy} (resolved against, not installed: QGIS's own numpy serves)"
    lines = [
        "# Landslide Mapper lock file, made by scripts/lock_requirements.py: do not edit by hand.",
        "# \"Install Python packages\" installs exactly these files, with",
        "#   pip install --no-deps --require-hashes --only-binary=:all: -r THIS_FILE",
        f"# platform: {platform} ({PLATFORMS.get(platform, platform)}; uv target {target})",
        f"# python: {python}",
        f"# variant: {variant}",
        f"# numpy: {numpy_line}",
        f"# inputs: {inputs_digest(lock_inputs(variant))} (requirement lines it was made from)",
        f"# resolver: {uv_version}",
    ]
    for package in sorted(packages, key=lambda p: requirement_name(p["name"])):
        hashes = sorted({w["hashes"]["sha256"] for w in package.get("wheels", [])})
        if not hashes:
            raise RuntimeError(f"{package['name']} {package['version']}: no wheel for "
                               f"{platform}, Python {python}")
        marker = f" ; {package['marker']}" if package.get("marker") else ""
        lines.append(f"{requirement_name(package['name'])}=={package['version']}{marker} \\")
        lines += [f"    --hash=sha256:{h}" + (" \\" if i < len(hashes) - 1 else "")
                  for i, h in enumerate(hashes)]
    return "\n".join(lines) + "\n"


def combinations(platforms, pythons, variants) -> list[tuple[str, str, str]]:
    return [(pl, py, va) for pl in platforms for py in pythons for va in variants
            if va != "gpu" or pl in GPU_PLATFORMS]


def stale_locks(folder: Path = LOCKS) -> list[str]:
    """Lock files whose requirement lines changed since they were made."""
    stale = []
    for path in sorted(folder.glob("*.txt")):
        lock = read_lock(path)
        variant = lock.header.get("variant", "")
        wanted = inputs_digest(lock_inputs(variant)) if variant in VARIANTS else "?"
        if lock.header.get("inputs", "").split(" ", 1)[0] != wanted:
            stale.append(path.name)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--platform", action="append", choices=sorted(UV_TARGETS),
                        help=f"lock platform (repeatable; default: {', '.join(DEFAULT_PLATFORMS)})")
    parser.add_argument("--python", action="append",
                        help=f"Python X.Y (repeatable; default: {', '.join(DEFAULT_PYTHONS)})")
    parser.add_argument("--variant", action="append", choices=VARIANTS,
                        help="cpu, gpu or training (repeatable; default: all three)")
    parser.add_argument("--numpy", help="numpy version to resolve the cpu/gpu locks against "
                        "(default: the oldest a QGIS of that Python ships)")
    parser.add_argument("--index-url", default=INDEX, help=f"package index (default: {INDEX})")
    parser.add_argument("--out-dir", type=Path, default=LOCKS,
                        help="folder to write the locks into (default: landslide_mapper/locks)")
    parser.add_argument("--check", action="store_true",
                        help="only report locks made from requirement lines that changed since")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_locks(args.out_dir)
        for name in stale:
            print(f"stale: {name} (its requirements changed; run this script again)")
        print(f"{len(list(args.out_dir.glob('*.txt'))) - len(stale)} lock files up to date, "
              f"{len(stale)} stale")
        return 1 if stale else 0
    pythons = args.python or list(DEFAULT_PYTHONS)
    unknown = [py for py in pythons if py not in NUMPY_FLOOR and not args.numpy]
    if unknown:
        raise SystemExit(f"--python {unknown[0]}: no numpy floor known for it; give --numpy "
                         "(the numpy version the QGIS of that Python ships).")
    uv = find_uv()
    uv_version = subprocess.run([*uv, "--version"], capture_output=True, text=True,
                                check=True).stdout.strip()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    failed = []
    for platform, python, variant in combinations(args.platform or DEFAULT_PLATFORMS, pythons,
                                                  args.variant or VARIANTS):
        name = lock_name(platform, python, variant)
        numpy = args.numpy or NUMPY_FLOOR.get(python)
        try:
            with tempfile.TemporaryDirectory() as work:
                packages = resolve(uv, platform, python, variant, numpy, args.index_url,
                                   Path(work))
            text = lock_text(packages, platform, python, variant, numpy, uv_version)
        except RuntimeError as exc:
            failed.append(name)
            print(f"{name}: not made: {exc}", file=sys.stderr)
            continue
        target = args.out_dir / name
        partial = target.with_name(f".{name}.partial")
        partial.write_text(text, encoding="utf-8")
        partial.replace(target)
        print(f"{target} ({len(packages)} packages, {len(text.encode()) / 1024:.1f} KiB)")
    if failed:
        print(f"{len(failed)} lock file(s) not made: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
