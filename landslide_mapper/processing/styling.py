"""Styling of the algorithms' outputs when QGIS adds them to the project.

Each output kind has a QML style in ``resources/styles``: ``probability`` (a 0..1 ramp from
transparent to yellow to red), ``mask`` (landslide pixels coloured, the rest transparent) and
``polygons`` (outlines with a light fill). An algorithm asks for a style with
:func:`style_on_completion`; QGIS applies it on the main thread once the layer is loaded.
"""

from __future__ import annotations

import threading
from pathlib import Path

from qgis.core import (
    QgsMapLayer,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
)
from qgis.PyQt import sip

from ..core.models.registry import resources_dir

STYLE_KINDS = ("probability", "mask", "polygons")


def style_path(kind: str) -> Path:
    """The QML file of an output kind (one of :data:`STYLE_KINDS`)."""
    if kind not in STYLE_KINDS:
        raise ValueError(f"style kind: expected one of {', '.join(STYLE_KINDS)}, found {kind!r}")
    return resources_dir() / "styles" / f"{kind}.qml"


def apply_style(layer: QgsMapLayer, kind: str) -> bool:
    """Load the QML style of ``kind`` into ``layer``; True when QGIS accepted it."""
    path = style_path(kind)
    if not path.is_file() or layer is None or not layer.isValid():
        return False
    _message, ok = layer.loadNamedStyle(str(path))
    if ok:
        layer.triggerRepaint()
    return bool(ok)


class LayerStyler(QgsProcessingLayerPostProcessorInterface):
    """Applies one output kind's style to a layer QGIS loaded on completion of an algorithm."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def postProcessLayer(
        self, layer: QgsMapLayer, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> None:
        if not apply_style(layer, self.kind) and feedback is not None:
            feedback.pushInfo(f"Could not apply the {self.kind} style ({style_path(self.kind)}).")


# The layer details take ownership of a post-processor and delete it with the context, while
# QGIS calls it through a pointer: the Python object must stay alive until then, or it is
# garbage-collected before QGIS calls it (the classic pitfall). So every run gets its own
# stylers, held here until QGIS has deleted them.
_LIVE: list[LayerStyler] = []
_LIVE_LOCK = threading.Lock()  # algorithms run on worker threads, possibly several at once


def styler(kind: str) -> LayerStyler:
    """A new post-processor for one output kind, kept alive until QGIS is done with it."""
    style_path(kind)  # validates the kind
    created = LayerStyler(kind)
    with _LIVE_LOCK:
        _LIVE[:] = [s for s in _LIVE if not sip.isdeleted(s)]
        _LIVE.append(created)
    return created


def style_on_completion(
    context: QgsProcessingContext, path: str | None, kind: str, layer_name: str | None = None
) -> bool:
    """If QGIS will load ``path`` when the algorithm finishes, style it (and name it) then.

    Returns True when a post-processor was attached (from the toolbox, not from a plain
    ``processing.run`` or ``qgis_process`` run, where nothing is loaded).
    """
    if not path or not context.willLoadLayerOnCompletion(path):
        return False
    details = context.layerToLoadOnCompletionDetails(path)
    if layer_name and not details.name:
        details.name = layer_name
    details.setPostProcessor(styler(kind))
    return True
