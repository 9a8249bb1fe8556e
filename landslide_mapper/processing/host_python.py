"""The Python interpreter that QGIS embeds, found from inside QGIS on Linux, Windows and macOS.

Inside QGIS ``sys.executable`` is the QGIS program (``/usr/bin/qgis``, ``qgis-ltr-bin.exe``,
``QGIS.app/Contents/MacOS/QGIS``, ``qgis_process.bin``), not a Python, so pip cannot be run with
it. The interpreter that shares QGIS's Python (same version, same standard library, same
``site-packages``) sits somewhere the platform's QGIS packaging puts it:

- Linux (distribution packages, conda): ``{exec_prefix}/bin/python3.X``, ``/usr/bin/python3.X``.
- Windows (OSGeo4W and the standalone installer, which share one layout): ``sys.exec_prefix`` is
  ``<root>\\apps\\Python3X``, holding ``python.exe``; ``<root>\\bin\\python-qgis*.bat`` sets up the
  same environment when the bare interpreter cannot start.
- macOS (the official bundle): ``QGIS.app/Contents/MacOS/bin/python3.X`` (or ``python3``), or the
  bundled framework ``Contents/Frameworks/Python.framework/Versions/3.X/bin/python3.X``.

:func:`python_candidates` lists the places in order for a described host (pure: unit-tested per
platform on fake file trees); :func:`find_host_python` keeps the first that exists and reports
QGIS's Python version. Nothing here imports QGIS.
"""

from __future__ import annotations

import ntpath
import os
import platform
import posixpath
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

VERSION_PROBE = "import sys; print('%d.%d' % sys.version_info[:2])"


@dataclass(frozen=True)
class Host:
    """What the running QGIS says about its Python (``sys`` and ``os.environ`` values)."""

    platform: str  # sys.platform: "linux", "win32", "darwin"
    executable: str
    prefix: str
    exec_prefix: str
    version: tuple[int, int]
    environ: Mapping[str, str] = field(default_factory=dict)
    machine: str = ""  # platform.machine(): x86_64, AMD64, arm64, aarch64 (picks the lock file)

    @property
    def version_text(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"

    @property
    def windows(self) -> bool:
        return self.platform.startswith("win")


def current_host() -> Host:
    """The running process as a :class:`Host`."""
    return Host(sys.platform, sys.executable or "", sys.prefix, sys.exec_prefix,
                (sys.version_info[0], sys.version_info[1]), dict(os.environ),
                platform.machine())


def _is_python(path: str, pathmod) -> bool:
    name = pathmod.basename(path).lower()
    return name.startswith("python") and not name.endswith((".bat", ".cmd"))


def python_candidates(host: Host) -> list[list[str]]:
    """Commands that may start QGIS's Python, most likely first (existence not checked).

    Each entry is a command prefix: ``[python]``, or ``["cmd", "/c", bat]`` for the OSGeo4W
    ``python-qgis*.bat`` launchers.
    """
    ver = host.version_text
    pathmod = ntpath if host.windows else posixpath
    join = pathmod.join
    found: list[list[str]] = []

    def add(*parts: str) -> None:
        path = join(*parts)
        if [path] not in found:
            found.append([path])

    if host.executable and _is_python(host.executable, pathmod):
        add(host.executable)  # QGIS's Python imported by a plain interpreter (PyQGIS scripts)
    exe_dir = pathmod.dirname(host.executable) if host.executable else ""
    if host.windows:
        for prefix in (host.exec_prefix, host.prefix, host.environ.get("PYTHONHOME", "")):
            if prefix:
                add(prefix, "python.exe")
        nodot = ver.replace(".", "")
        roots = []
        if pathmod.basename(pathmod.dirname(host.exec_prefix)).lower() == "apps":
            roots.append(pathmod.dirname(pathmod.dirname(host.exec_prefix)))
        if exe_dir:
            roots.append(pathmod.dirname(exe_dir))  # <root>\bin\qgis-bin.exe -> <root>
        if host.environ.get("OSGEO4W_ROOT"):
            roots.append(host.environ["OSGEO4W_ROOT"])
        for root in dict.fromkeys(roots):
            add(root, "apps", f"Python{nodot}", "python.exe")
            add(root, "bin", "python.exe")
            add(root, "bin", "python3.exe")
        for root in dict.fromkeys(roots):
            for bat in ("python-qgis-ltr.bat", "python-qgis.bat", "python-qgis-dev.bat"):
                entry = ["cmd", "/c", join(root, "bin", bat)]
                if entry not in found:
                    found.append(entry)
        return found
    if host.platform == "darwin":
        if exe_dir:  # QGIS.app/Contents/MacOS/QGIS
            add(exe_dir, "bin", f"python{ver}")
            add(exe_dir, "bin", "python3")
        for prefix in (host.exec_prefix, host.prefix):
            if prefix:
                add(prefix, "bin", f"python{ver}")
                add(prefix, "bin", "python3")
        if exe_dir:
            contents = pathmod.dirname(exe_dir)
            add(contents, "Frameworks", "Python.framework", "Versions", ver, "bin",
                f"python{ver}")
            add(contents, "Resources", "python", "bin", f"python{ver}")
        return found
    for prefix in (host.exec_prefix, host.prefix):  # /usr, a conda environment, /app (flatpak)
        if prefix:
            add(prefix, "bin", f"python{ver}")
            add(prefix, "bin", "python3")
    for folder in ("/usr/bin", "/usr/local/bin"):
        add(folder, f"python{ver}")
    add("/usr/bin", "python3")
    return found


def probe_version(command: Sequence[str], env: Mapping[str, str] | None = None) -> str | None:
    """``X.Y`` of the Python ``command`` starts, or None when it does not start."""
    try:
        done = subprocess.run([*command, "-c", VERSION_PROBE], capture_output=True, text=True,
                              timeout=60, env=dict(env) if env is not None else None,
                              **_no_window())
    except (OSError, subprocess.SubprocessError):
        return None
    lines = done.stdout.strip().splitlines()
    return lines[-1].strip() if done.returncode == 0 and lines else None


def find_host_python(
    host: Host | None = None,
    *,
    is_file: Callable[[str], bool] = os.path.isfile,
    version_of: Callable[[Sequence[str]], str | None] = probe_version,
) -> list[str]:
    """The command starting QGIS's Python: the first candidate that exists and has its version.

    Raises :class:`LookupError` naming the places looked at when none fits.
    """
    host = host or current_host()
    looked: list[str] = []
    for command in python_candidates(host):
        path = command[-1]
        if not is_file(path):
            looked.append(path)
            continue
        found = version_of(command)
        if found == host.version_text:
            return command
        looked.append(f"{path} (Python {found or 'not starting'})")
    raise LookupError(
        f"QGIS's Python {host.version_text}: no interpreter of that version found (looked at "
        f"{'; '.join(looked)})."
    )


def _no_window() -> dict:
    """Keep a console window from flashing up on Windows."""
    flag = getattr(subprocess, "CREATE_NO_WINDOW", 0)
    return {"creationflags": flag} if flag else {}
