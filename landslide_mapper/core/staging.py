"""Files written under a temporary name beside their target, then published in one rename.

Every output of the engine (rasters, polygon files, reports, models, chip folders) is first
written to a hidden sibling named by :func:`temporary_sibling`, checked by its writer, flushed to
the disk (:func:`publish` fsyncs the file, renames it over the target and fsyncs the folder), so a
full disk, a quota or a network share that fails on close is caught before the previous file is
replaced, and a half-written file is never published.

A run killed hard (SIGKILL, power cut) cannot clean up after itself. The temporary names carry a
marker, the writing host and its process id::

    .landslides.lm-3fa2-12345-9c1d2e3f.partial.gpkg
     <stem>     lm-<host>-<pid>-<unique>.<tag><suffix>

and :func:`sweep_stale` (run by every :func:`temporary_sibling`, so before any output is written)
removes, in the folder being written to, only such files of ours that are stale: written on this
host by a process that is no longer alive, or untouched for :data:`STALE_AFTER_S` (a run on another
host sharing the folder, a process id reused since). Temporary names of earlier versions of the
engine (no process id) are removed by age only. Nothing else is ever touched.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import time
import uuid
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import OutputError, innermost_message

#: A temporary file not modified for this long is stale whoever wrote it (seconds).
STALE_AFTER_S = 24 * 3600
#: Tags of temporary names: file being written, intermediate, write probe, folder of parts,
#: copy of a GeoPackage our layers are merged into.
TAGS = ("partial", "work", "probe", "parts", "merge")

_TAG_GROUP = "|".join(TAGS)
_OURS = re.compile(
    rf"^\..+\.lm-(?P<host>[0-9a-f]{{4}})-(?P<pid>\d+)-[0-9a-f]{{8}}\.(?:{_TAG_GROUP})")
# Names written before the host and process id were part of them: removed by age only.
_LEGACY = re.compile(rf"^\..+\.(?:[0-9a-f]{{8}}\.(?:{_TAG_GROUP})|partial-[0-9a-f]{{8}})(?:\.|-|$)")


def host_tag() -> str:
    """Four hex digits naming this host in temporary names (a CRC of the host name)."""
    return f"{zlib.crc32(socket.gethostname().encode('utf-8')) & 0xFFFF:04x}"


def temporary_sibling(path: str | os.PathLike[str], tag: str = "partial") -> Path:
    """A hidden, unique name beside ``path`` keeping its suffix (so drivers can be guessed).

    Stale temporary files of earlier killed runs in that folder are removed first
    (:func:`sweep_stale`).
    """
    path = Path(path)
    if tag not in TAGS:
        raise ValueError(f"temporary tag {tag!r}: expected one of {TAGS}")
    sweep_stale(path.parent if str(path.parent) else Path("."))
    unique = uuid.uuid4().hex[:8]
    return path.with_name(f".{path.stem}.lm-{host_tag()}-{os.getpid()}-{unique}.{tag}{path.suffix}")


def published_path(path: str | os.PathLike[str]) -> Path:
    """Where ``path`` will be once published: every temporary name in it (the file's own, or a
    temporary folder's it lies in) replaced by its target's. For messages about a file being
    written, which should name the file the user asked for."""
    return Path(*(_target_name(part) for part in Path(path).parts))


def _target_name(name: str) -> str:
    """``.stem.lm-HOST-PID-UNIQUE.tag.suffix`` -> ``stem.suffix``; other names unchanged."""
    m = _OURS.match(name)
    while m is not None:  # a temporary name of a temporary name: unwrapped in turn
        name = name[1:m.start("host") - len(".lm-")] + name[m.end():]
        m = _OURS.match(name)
    return name


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return True
    return True


def is_stale(name: str, mtime: float, now: float | None = None) -> bool:
    """Whether ``name`` (a file or folder name, with its modification time) is a stale
    temporary file of ours: see the module docstring for the rule."""
    now = time.time() if now is None else now
    old = now - mtime > STALE_AFTER_S
    ours = _OURS.match(name)
    if ours is None:
        return bool(_LEGACY.match(name)) and old
    pid = int(ours.group("pid"))
    if ours.group("host") == host_tag():
        if pid == os.getpid():
            return False  # this process: a run going on in another thread (QGIS tasks)
        return old or not _alive(pid)
    return old


def sweep_stale(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove stale temporary files (and folders) of ours in ``folder``; returns what went.

    Never raises: a folder that cannot be listed or an entry that cannot be removed is left.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if not entry.name.startswith("."):
            continue
        try:
            mtime = entry.stat(follow_symlinks=False).st_mtime
            if not is_stale(entry.name, mtime, now):
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def sync_file(path: str | os.PathLike[str]) -> None:
    """Flush a closed file's data to the disk (where write errors of some file systems show)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the rename itself has happened
    finally:
        os.close(fd)


def write_failure(what: str, target: str | os.PathLike[str], found: str) -> OutputError:
    """The error for an output that could not be written completely (disk full, quota, I/O).

    ``found`` says what went wrong; the message adds the free space left and that any previous
    file at the target is unchanged.
    """
    target = published_path(target)
    folder = target.parent if str(target.parent) else Path(".")
    existing = next((p for p in (folder, *folder.parents) if p.is_dir()), Path("."))
    try:
        free = f"{shutil.disk_usage(existing).free / 2**20:.1f} MB free there"
    except OSError:
        free = "free space unknown"
    kept = " The previous file is unchanged." if target.exists() else ""
    return OutputError(
        f"{what} {target}: expected to write it completely in {folder}, found {found} "
        f"({free}). Free some space or choose another folder; nothing was written.{kept}")


def describe_os_error(exc: OSError) -> str:
    """A short description of an OSError (disk full named as such); for rasterio's, GDAL's
    reason (the innermost cause)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"the disk is full ({exc.strerror})"
    return exc.strerror or innermost_message(exc)


@contextmanager
def writing(what: str, target: str | os.PathLike[str]) -> Iterator[None]:
    """Writes inside that fail (an OSError, rasterio's RasterioIOError among them) raise
    :func:`write_failure`'s error for ``target`` (a temporary name is fine: the message names
    the file it stands for)."""
    try:
        yield
    except OSError as exc:
        raise write_failure(what, target, f"a write that failed ({describe_os_error(exc)})") \
            from None


def publish(tmp: str | os.PathLike[str], target: str | os.PathLike[str], what: str,
            *, sync: bool = True) -> None:
    """Flush ``tmp`` to the disk and rename it over ``target`` (the same folder), atomically.

    On failure ``tmp`` is removed, ``target`` is left as it was and an OutputError says why.
    """
    tmp, target = Path(tmp), Path(target)
    try:
        if sync and tmp.is_file():
            sync_file(tmp)
        os.replace(tmp, target)
    except OSError as exc:
        remove_path(tmp)
        raise write_failure(what, target, describe_os_error(exc)) from exc
    if sync:
        _sync_folder(target.parent if str(target.parent) else Path("."))


def write_text(target: str | os.PathLike[str], text: str, what: str) -> Path:
    """Write a UTF-8 text file under a temporary name and publish it; returns ``target``."""
    target = Path(target)
    tmp = temporary_sibling(target)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        remove_path(tmp)
        raise write_failure(what, target, describe_os_error(exc)) from exc
    publish(tmp, target, what)
    return target


def remove_path(path: str | os.PathLike[str]) -> None:
    """Remove a temporary file or folder if it is there; never raises."""
    p = Path(path)
    try:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
    except OSError:
        pass
