"""The engine's Python dependencies inside QGIS: which are missing, and loading the compiled ones.

QGIS runs the plugin in its own Python; rasterio, onnxruntime, fiona, shapely and pyproj are not
in the plugin zip. "Install Python packages" (``processing/install_dependencies.py``) puts them in
a folder the plugin owns in the QGIS profile, ``python/landslide_mapper_deps/pyX.Y``, which
:func:`use_deps_folder` appends to ``sys.path`` at start-up (after QGIS's own entries, so QGIS's
numpy and GDAL bindings always win). The plugin checks for the packages at start-up and points at
the installer when one is missing. Inside the QGIS application and ``qgis_process`` the compiled
ones also need care: see :func:`load_native_packages`. Nothing here imports QGIS.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
import os
import sys
from pathlib import Path

REQUIRED_MODULES = ("numpy", "rasterio", "onnxruntime", "onnx", "fiona", "shapely", "pyproj")
# Needed by "Map landslides (many rasters)" only (a local Dask cluster); installed with the rest.
BATCH_MODULES = ("dask", "distributed")
DEPS_FOLDER = "landslide_mapper_deps"
INSTALL_HINT = (
    "Run Plugins > Landslide Mapper > Install Python packages (or the Processing algorithm "
    "landslide_mapper:install_dependencies): it installs them into the QGIS profile, leaving "
    "QGIS's own packages alone."
)


def deps_dir(profile_dir: str | os.PathLike[str], version: str | None = None) -> Path:
    """The plugin's package folder for this Python in a QGIS profile folder.

    ``<profile>/python/landslide_mapper_deps/pyX.Y``: one folder per Python version, so a QGIS
    upgrade that brings a new Python never loads compiled packages built for the old one.
    """
    version = version or f"{sys.version_info[0]}.{sys.version_info[1]}"
    return Path(profile_dir) / "python" / DEPS_FOLDER / f"py{version}"


def use_deps_folder(profile_dir: str | os.PathLike[str]) -> Path | None:
    """Append the profile's package folder to ``sys.path`` when it exists; returns it or None.

    Appended, not prepended: a package QGIS's Python already provides (numpy, GDAL's ``osgeo``,
    a distribution's pyproj) is found first, so the folder only adds what is missing.
    """
    folder = deps_dir(profile_dir)
    if not folder.is_dir():
        return None
    if str(folder) not in sys.path:
        sys.path.append(str(folder))
        importlib.invalidate_caches()
    return folder


def missing_modules(names: tuple[str, ...] = REQUIRED_MODULES) -> list[str]:
    """Python packages of ``names`` (default: what the engine needs) this Python cannot find."""
    missing = []
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # e.g. a broken install, or a module blocked as None
            found = False
        if not found:
            missing.append(name)
    return missing


# Compiled packages that carry their own GDAL, GEOS, PROJ or protobuf in their wheels.
NATIVE_PACKAGES = ("shapely", "pyproj", "rasterio", "fiona", "onnx", "onnxruntime")
# A symbol of each library QGIS itself links (GEOS, GDAL, PROJ).
HOST_SYMBOLS = ("GEOSversion", "GDALVersionInfo", "proj_context_create")


def host_exports_geo_libraries() -> bool:
    """True when this process's global symbol scope already holds GEOS, GDAL or PROJ.

    That is the case inside the QGIS application and ``qgis_process`` (their executables link
    QGIS's libraries), not in a Python interpreter that imports ``qgis`` as a module.
    """
    if not hasattr(os, "RTLD_DEEPBIND"):
        return False
    try:
        scope = ctypes.CDLL(None)
    except OSError:
        return False
    return any(hasattr(scope, symbol) for symbol in HOST_SYMBOLS)


def load_native_packages() -> list[str]:
    """Import the engine's compiled packages bound to the libraries they were built with.

    Wheels of shapely, rasterio, fiona and pyproj bundle their own GEOS, GDAL and PROJ, often
    newer than QGIS's. Inside QGIS those names are already in the global scope, so without
    ``RTLD_DEEPBIND`` a wheel's calls land in QGIS's copy: wrong results (e.g. empty polygons,
    "WKB output dimension must be 2 or 3") and heap corruption. Loading every compiled module of
    those packages with ``RTLD_DEEPBIND`` makes each prefer its own bundled library. Linux only
    (macOS and Windows resolve symbols per library); returns the modules it loaded.
    """
    if not host_exports_geo_libraries():
        return []
    loaded: list[str] = []
    flags = sys.getdlopenflags()
    sys.setdlopenflags(flags | os.RTLD_DEEPBIND)
    try:
        for package in NATIVE_PACKAGES:
            if package in sys.modules:
                continue  # already loaded by someone else: nothing left to choose
            try:
                module = importlib.import_module(package)
            except ImportError:
                continue
            root = Path(module.__file__).parent
            for ext in sorted(root.rglob("*.so")):
                parts = ext.relative_to(root).with_name(ext.name.split(".", 1)[0]).parts
                name = ".".join((package, *parts))
                if "tests" in parts or name in sys.modules:
                    continue
                try:
                    importlib.import_module(name)
                    loaded.append(name)
                except Exception:  # an optional extension that cannot load here is not needed
                    continue
    finally:
        sys.setdlopenflags(flags)
    return loaded
