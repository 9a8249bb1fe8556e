#!/usr/bin/env python3
"""Build the installable QGIS plugin zip: ``dist/landslide_mapper-VERSION.zip``.

The zip holds one top folder, ``landslide_mapper/``, which is the Python package itself plus what
QGIS and the engine expect inside the installed plugin::

    landslide_mapper/__init__.py, plugin.py, core/, processing/, ...   the package (no caches)
    landslide_mapper/metadata.txt                                      from the repository root
    landslide_mapper/resources/{icons,styles,models}/                  from resources/
    landslide_mapper/LICENSE, README.md
    landslide_mapper/training/                                         the training module (run
                                                                       by the training environment)

The version comes from ``metadata.txt``. Entries are written in sorted order with a fixed
timestamp, so the same sources give the same zip. Python dependencies (rasterio, onnxruntime, ...)
are not bundled: the plugin's "Install Python packages" algorithm installs them from the lock files
of ``landslide_mapper/locks/`` (exact versions and hashes, made from
``landslide_mapper/requirements.txt``; both shipped as part of the package).

    python scripts/build_plugin_zip.py [--out-dir dist]
"""

from __future__ import annotations

import argparse
import configparser
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLUGIN = "landslide_mapper"
REQUIRED_METADATA = (
    "name", "qgisMinimumVersion", "description", "about", "version", "author", "email",
    "repository",
)
RESOURCE_DIRS = ("icons", "styles", "models")
SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
SKIP_SUFFIXES = {".pyc", ".pyo", ".partial", ".orig", ".rej", ".swp"}
FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def read_metadata(path: Path = REPO / "metadata.txt") -> dict[str, str]:
    """The ``[general]`` section of metadata.txt, checked for the keys QGIS requires."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are case-sensitive (qgisMinimumVersion)
    if not parser.read(path, encoding="utf-8"):
        raise SystemExit(f"metadata: {path} not found (expected the plugin's metadata.txt).")
    if "general" not in parser:
        raise SystemExit(f"metadata: {path} has no [general] section.")
    meta = dict(parser["general"])
    missing = [k for k in REQUIRED_METADATA if not meta.get(k, "").strip()]
    if missing:
        raise SystemExit(f"metadata: {path} lacks {', '.join(missing)} (QGIS requires them).")
    return meta


def _wanted(path: Path) -> bool:
    return (
        path.is_file()
        and not SKIP_DIRS.intersection(path.parts)
        and path.suffix not in SKIP_SUFFIXES
        and not path.name.startswith(".")
    )


def plugin_files(repo: Path = REPO) -> list[tuple[Path, str]]:
    """(source file, name in the zip) for everything the plugin ships, sorted by name."""
    entries: list[tuple[Path, str]] = []
    package = repo / PLUGIN
    for path in package.rglob("*"):
        if _wanted(path):
            entries.append((path, f"{PLUGIN}/{path.relative_to(package).as_posix()}"))
    for sub in RESOURCE_DIRS:
        folder = repo / "resources" / sub
        for path in folder.rglob("*") if folder.is_dir() else ():
            if _wanted(path):
                relative = path.relative_to(folder.parent).as_posix()
                entries.append((path, f"{PLUGIN}/resources/{relative}"))
    training = repo / "training"  # pure Python; run by the training environment's Python
    for path in training.rglob("*") if training.is_dir() else ():
        if _wanted(path):
            entries.append((path, f"{PLUGIN}/training/{path.relative_to(training).as_posix()}"))
    for name in ("metadata.txt", "LICENSE", "README.md"):
        path = repo / name
        if path.is_file():
            entries.append((path, f"{PLUGIN}/{name}"))
    return sorted(entries, key=lambda e: e[1])


def build(out_dir: Path = REPO / "dist", repo: Path = REPO) -> Path:
    """Write the zip and return its path."""
    meta = read_metadata(repo / "metadata.txt")
    if not (repo / "LICENSE").is_file():
        raise SystemExit(
            f"LICENSE: {repo / 'LICENSE'} not found; the plugin must ship its licence."
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{PLUGIN}-{meta['version'].strip()}.zip"
    tmp = target.with_name(f".{target.name}.partial")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path, arcname in plugin_files(repo):
            info = zipfile.ZipInfo(arcname, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes())
    tmp.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=REPO / "dist",
                        help="folder to write the zip into (default: dist/)")
    args = parser.parse_args(argv)
    target = build(args.out_dir)
    with zipfile.ZipFile(target) as zf:
        count = len(zf.namelist())
    print(f"{target} ({count} files, {target.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
