"""The rasters of a batch: INPUT arguments expanded, each with its model and its output name.

An INPUT is a raster file, a folder (the rasters directly inside it), a glob pattern (``**``
recurses), or a list file (``.txt``: one path a line, ``#`` comments; ``.csv``: a ``raster``
column, optionally a ``model`` column choosing that raster's model). Relative paths in a list
file are relative to the list file's folder. Every raster gets an output name derived from its
file name; two rasters with the same file name get a short, stable hash of their path appended,
so re-running the same command finds the same names.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".img", ".jp2")
LIST_SUFFIXES = (".txt", ".csv", ".lst")
_RASTER_COLUMNS = ("raster", "path", "input", "file")
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class BatchItem:
    """One raster of the batch: its file, its model (None: the batch's) and its output name."""

    raster: Path
    model: str | None
    name: str


def expand_inputs(inputs: Sequence[str | os.PathLike[str]]) -> list[BatchItem]:
    """The rasters named by ``inputs``, in order, each once, with unique output names.

    Raises InputError naming the first input that is missing, matches nothing or is unreadable.
    """
    if not inputs:
        raise InputError("Inputs: none given; expected raster files, folders, glob patterns or "
                         "a .txt/.csv list of rasters.")
    found: list[tuple[Path, str | None]] = []
    for item in inputs:
        found.extend(_expand_one(str(item)))
    seen: set[Path] = set()
    unique = []
    for raster, model in found:
        key = raster.resolve()
        if key not in seen:
            seen.add(key)
            unique.append((raster, model))
    names = output_names([r for r, _ in unique])
    return [BatchItem(r, m, n) for (r, m), n in zip(unique, names)]


def output_names(rasters: Sequence[Path]) -> list[str]:
    """A folder name per raster: its file name without suffix, made unique by a path hash."""
    stems = [_safe(Path(r).stem) for r in rasters]
    counts: dict[str, int] = {}
    for s in stems:
        counts[s.lower()] = counts.get(s.lower(), 0) + 1
    names = []
    for raster, stem in zip(rasters, stems):
        if counts[stem.lower()] > 1:
            digest = hashlib.sha1(str(Path(raster).resolve()).encode()).hexdigest()[:8]
            stem = f"{stem}-{digest}"
        names.append(stem)
    return names


def _safe(stem: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")
    return safe or "raster"


def _expand_one(item: str) -> list[tuple[Path, str | None]]:
    path = Path(item)
    if path.is_dir():
        rasters = sorted(p for p in path.iterdir()
                         if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES
                         and not p.name.startswith("."))
        if not rasters:
            raise InputError(f"Input folder {item}: expected raster files "
                             f"({', '.join(RASTER_SUFFIXES)}) inside it, found none.")
        return [(p, None) for p in rasters]
    if path.is_file():
        if path.suffix.lower() in LIST_SUFFIXES:
            return _read_list(path)
        return [(path, None)]
    if _GLOB_CHARS.search(item):
        matches = sorted(Path(p) for p in glob.glob(item, recursive=True)
                         if Path(p).is_file() and not Path(p).name.startswith("."))
        if not matches:
            raise InputError(f"Input pattern {item}: expected at least one matching file, "
                             "found none.")
        return [(p, None) for p in matches]
    raise InputError(f"Input {item}: expected a raster file, a folder, a glob pattern or a list "
                     "file, found no such file or folder.")


def _read_list(path: Path) -> list[tuple[Path, str | None]]:
    """Rasters (and models) of a .txt or .csv list; relative paths from the list's folder."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"Input list {path}: expected a readable text file of raster paths, "
                         f"found an unreadable file ({exc}).") from exc
    if path.suffix.lower() == ".csv":
        rows = _csv_rows(path, text)
    else:
        rows = [(line.strip(), None) for line in text.splitlines()
                if line.strip() and not line.strip().startswith("#")]
    if not rows:
        raise InputError(f"Input list {path}: expected at least one raster path, found none.")
    out = []
    for number, (raster, model) in enumerate(rows, start=1):
        p = Path(raster).expanduser()
        if not p.is_absolute():
            p = path.parent / p
        if not p.is_file():
            raise InputError(f"Input list {path}, entry {number}: expected an existing raster "
                             f"file, found {raster!r}, which does not exist.")
        out.append((p, model or None))
    return out


def _csv_rows(path: Path, text: str) -> list[tuple[str, str | None]]:
    rows = [r for r in csv.reader(text.splitlines()) if any(c.strip() for c in r)]
    if not rows:
        return []
    header = [c.strip().lower() for c in rows[0]]
    column = next((header.index(c) for c in _RASTER_COLUMNS if c in header), None)
    if column is None:
        if "model" in header:
            raise InputError(f"Input list {path}: expected a column named raster (or path), "
                             f"found columns {', '.join(rows[0])}.")
        return [(r[0].strip(), _cell(r, 1)) for r in rows]  # no header: raster[, model]
    model_column = header.index("model") if "model" in header else None
    return [(r[column].strip() if column < len(r) else "",
             _cell(r, model_column) if model_column is not None else None)
            for r in rows[1:]]


def _cell(row: Iterable[str], index: int) -> str | None:
    row = list(row)
    return row[index].strip() or None if index < len(row) else None
