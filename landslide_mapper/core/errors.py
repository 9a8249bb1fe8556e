"""Typed errors of the engine.

Every message names the input, what was expected, what was found and, where there is one, what to
do. The QGIS provider turns these into ``QgsProcessingException`` and the command line into a
one-line message with a non-zero exit code.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


class LandslideMapperError(Exception):
    """Base class of every error the engine raises on purpose."""


class InputError(LandslideMapperError):
    """A raster, vector or parameter given by the user cannot be used as it is."""


class ModelError(LandslideMapperError):
    """A model file is missing, unreadable, or lacks a valid model contract."""


class OutputError(LandslideMapperError):
    """An output cannot be written where the user asked."""


class CancelledError(LandslideMapperError):
    """The run was cancelled by the user; nothing half-written is left behind."""


def innermost_message(exc: BaseException) -> str:
    """The message of the innermost cause of ``exc`` (rasterio says "Read failed. See previous
    exception"; GDAL's own reason is the cause of the cause), without a final full stop."""
    detail, cause = str(exc), exc.__cause__ or exc.__context__
    for _ in range(8):
        if cause is None:
            break
        detail, cause = str(cause), cause.__cause__ or cause.__context__
    return (detail.strip().splitlines() or [type(exc).__name__])[0].rstrip(".")


def brief_message(exc: BaseException, limit: int = 200) -> str:
    """:func:`innermost_message` in a few words: OGR quotes a failed SQLite script whole
    (``sqlite3_exec(CREATE TABLE ...) failed: database or disk is full``), which is cut to its
    reason; anything else to ``limit`` characters."""
    text = innermost_message(exc)
    if text.startswith("sqlite3_exec(") and ") failed: " in text:
        text = "SQLite: " + text.rsplit(") failed: ", 1)[1]
    return text if len(text) <= limit else text[:limit] + "..."


def read_failure(source: str, exc: BaseException) -> InputError:
    """The error for a read failing in the middle of a run: a truncated or damaged file.

    rasterio says only "Read failed"; GDAL's own reason is the innermost cause of ``exc``.
    """
    detail = innermost_message(exc)
    return InputError(
        f"{source}: expected a complete file that can be read to the end, found a truncated or "
        f"damaged one ({detail}). Re-export, re-download or repair it (e.g. gdal_translate).")


@contextmanager
def reading(source: str) -> Iterator[None]:
    """Reads inside that fail (rasterio's RasterioIOError is an OSError) raise
    :func:`read_failure`'s error naming ``source``."""
    try:
        yield
    except OSError as exc:
        raise read_failure(source, exc) from None
