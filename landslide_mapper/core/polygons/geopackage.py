"""Our layers into a GeoPackage that may already hold others (``roads``, an older inventory, ...).

A GeoPackage is a container: writing ``landslides`` into ``inventory.gpkg`` replaces that layer
(when it exists) and never touches another. It is done without risk to the file: a consistent copy
of the GeoPackage (SQLite's backup API, so a database in WAL mode is copied whole) is made beside
it under a hidden name, the finished layers are copied into the copy, the copy is checked (every
other layer still there with its features, ours complete), and only then does it replace the
original in one rename. A failure at any point removes the copy and leaves the original
byte-identical.

A file at the target that is not a GeoPackage (not an SQLite database) holds no layers and is
replaced like any output. A GeoPackage another program has open for writing (a ``-wal`` or
``-journal`` file beside it) is refused rather than replaced under that program's feet. Layer
names are compared without regard to case, as SQLite compares table names.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any, Sequence

from .. import staging
from ..errors import OutputError

SQLITE_HEADER = b"SQLite format 3\x00"
#: Files SQLite keeps beside a database while it is open or after it was not closed cleanly.
JOURNALS = ("-wal", "-journal")
_BATCH = 2000


def is_geopackage(path: Path) -> bool:
    """Whether ``path`` is a non-empty SQLite file (GeoPackages are SQLite databases)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


def layer_names(path: Path) -> list[str]:
    import fiona

    return list(fiona.listlayers(str(path)))


def matching_layer(names: Sequence[str], layer: str) -> str | None:
    """The existing layer ``layer`` names (ignoring case), or None."""
    for name in names:
        if name.lower() == layer.lower():
            return name
    return None


def check_container(target: Path, what: str) -> None:
    """Refuse, before any work, an existing GeoPackage at ``target`` whose layers could be lost.

    A file that is not an SQLite database holds no layers: it is replaced like any output."""
    if not is_geopackage(target):
        return
    for suffix in JOURNALS:
        journal = target.with_name(target.name + suffix)
        if journal.exists():
            raise OutputError(
                f"{what} {target}: is open in another program or was not closed cleanly (found "
                f"{journal.name} beside it); expected a GeoPackage nobody is writing to. Close "
                "it there (in QGIS: remove its layers from the project) and run again, or write "
                "to another GeoPackage.")
    try:
        layer_names(target)
    except Exception as exc:  # fiona raises several unrelated types
        raise OutputError(
            f"{what} {target}: exists but cannot be read as a GeoPackage ({exc}); its layers "
            "would be lost. Repair it or choose another path.") from exc


def publish(staged: Path, target: Path, layers: Sequence[str], what: str) -> None:
    """Move the finished GeoPackage ``staged`` (holding ``layers``) into place at ``target``.

    A target that is absent, empty, or holds none but our layers is replaced by a rename; one
    holding other layers gets ours merged in (:func:`merge_into`). ``staged`` is gone afterwards.
    """
    try:
        check_container(target, what)
        others = [n for n in layer_names(target) if not matching_layer(layers, n)] if (
            is_geopackage(target)) else []
        if others:
            merge_into(staged, target, layers, what)
        else:
            staging.publish(staged, target, what)
    finally:
        for p in (staged, *(staged.with_name(staged.name + s) for s in (*JOURNALS, "-shm"))):
            p.unlink(missing_ok=True)


def merge_into(staged: Path, target: Path, layers: Sequence[str], what: str) -> None:
    """Put ``layers`` of the finished GeoPackage ``staged`` into ``target``, keeping the others.

    ``target`` must exist and pass :func:`check_container`. ``staged`` is left for the caller to
    remove. Raises OutputError, with ``target`` unchanged, when anything goes wrong.
    """
    check_container(target, what)
    work = staging.temporary_sibling(target, "merge")
    try:
        before = _snapshot(target, work)
        existing = layer_names(work)
        replaced = {matching_layer(existing, name) for name in layers} - {None}
        for name in replaced:
            _remove_layer(work, name)
        written = {name: _copy_layer(staged, work, name) for name in layers}
        _check_merged(work, before, replaced, written)
        shutil.copymode(target, work)
        staging.publish(work, target, what)
    except OutputError:
        raise
    except Exception as exc:
        raise OutputError(
            f"{what} {target}: writing the layer{'s' if len(layers) > 1 else ''} "
            f"{', '.join(layers)} into the GeoPackage failed ({exc}); the GeoPackage was left as "
            "it was. Check the disk space and the folder.") from exc
    finally:
        for p in (work, *(work.with_name(work.name + s) for s in (*JOURNALS, "-shm"))):
            p.unlink(missing_ok=True)


def _snapshot(target: Path, work: Path) -> dict[str, int]:
    """Copy ``target`` whole to ``work``; return its layers and their feature counts."""
    source = _read_only(target)
    try:
        copy = sqlite3.connect(str(work))
        try:
            source.backup(copy)
        finally:
            copy.close()
    finally:
        source.close()
    return _counts(work)


def _read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection (the URI escapes any odd character of the path)."""
    return sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=ro", uri=True)


def _counts(path: Path) -> dict[str, int]:
    import fiona

    counts = {}
    for name in layer_names(path):
        with fiona.open(str(path), layer=name) as layer:
            counts[name] = len(layer)
    return counts


def _remove_layer(path: Path, name: str) -> None:
    import fiona

    fiona.remove(str(path), layer=name, driver="GPKG")


def _copy_layer(staged: Path, work: Path, name: str) -> int:
    """Stream layer ``name`` from ``staged`` into ``work``; return the features copied."""
    import fiona

    count = 0
    with fiona.open(str(staged), layer=name) as src:
        profile: dict[str, Any] = {"driver": "GPKG", "schema": src.schema, "layer": name,
                                   "crs_wkt": src.crs_wkt, "FID": _fid_column(staged, name)}
        with fiona.open(str(work), "w", **profile) as dst:
            batch = []
            for feature in src:
                batch.append(feature)
                if len(batch) >= _BATCH:
                    dst.writerecords(batch)
                    count += len(batch)
                    batch = []
            if batch:
                dst.writerecords(batch)
                count += len(batch)
    return count


def _fid_column(path: Path, name: str) -> str:
    """The feature id column of a layer (its integer primary key), kept by the copy."""
    con = _read_only(path)
    try:
        rows = con.execute(f'PRAGMA table_info("{name.replace(chr(34), chr(34) * 2)}")').fetchall()
    finally:
        con.close()
    return next((row[1] for row in rows if row[5]), "fid")


def _check_merged(work: Path, before: dict[str, int], replaced: set[Any],
                  written: dict[str, int]) -> None:
    """Every layer that was there is still there with all its features; ours are complete."""
    after = _counts(work)
    lost = [f"{name} ({count} features)" for name, count in before.items()
            if name not in replaced and after.get(name) != count]
    short = [name for name, count in written.items()
             if after.get(name, after.get(matching_layer(list(after), name) or "", -1)) != count]
    if lost or short:
        raise RuntimeError(f"check of the copy failed: layers changed: {', '.join(lost) or 'none'}"
                           f"; layers incomplete: {', '.join(short) or 'none'}")
