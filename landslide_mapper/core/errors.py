"""Typed errors of the engine.

Every message names the input, what was expected, what was found and, where there is one, what to
do. The QGIS provider turns these into ``QgsProcessingException`` and the command line into a
one-line message with a non-zero exit code.
"""

from __future__ import annotations


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
