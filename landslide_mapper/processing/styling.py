"""Styling of the algorithms' outputs when QGIS adds them to the project.

Each output kind has a QML style in ``resources/styles``: ``probability`` (a 0..1 ramp from
transparent to yellow to red), ``mask`` (landslide pixels coloured, the rest transparent) and
``polygons`` (outlines with a light fill). An algorithm asks for a style with
:func:`style_on_completion`; QGIS applies it on the main thread once the layer is loaded.

The outputs of one run also load in a readable order, whatever order QGIS loads them in: polygons
on top, the probability (half transparent, from its style) below, the mask (the same information
as the polygons) at the bottom and switched off (:data:`LAYER_ORDER`, :data:`HIDDEN_KINDS`). QGIS
3.32+ orders them itself by ``layerSortKey``; on older versions each post-processor moves its
layer into place among the run's layers already loaded.
"""

from __future__ import annotations

import threading
from pathlib import Path

from qgis.core import (
    QgsLayerTreeGroup,
    QgsLayerTreeLayer,
    QgsMapLayer,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsProject,
)
from qgis.PyQt import sip

from ..core.models.registry import resources_dir

STYLE_KINDS = ("probability", "mask", "polygons")
#: Top-to-bottom order of one run's outputs in the layers panel.
LAYER_ORDER = ("polygons", "probability", "mask")
#: Output kinds loaded switched off (the polygons show the same landslides).
HIDDEN_KINDS = ("mask",)


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


class RunLayers:
    """The layers one run loads, by kind: placed in :data:`LAYER_ORDER` as each one arrives."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}

    def place(self, kind: str, layer: QgsMapLayer, context: QgsProcessingContext) -> None:
        """Record ``layer``, switch it off when its kind is hidden, and order the run's nodes."""
        self.ids[kind] = layer.id()
        project = context.project() or QgsProject.instance()
        root = project.layerTreeRoot()
        node = root.findLayer(layer.id())
        if node is None:  # not in the layer tree (yet): nothing to place
            return
        if kind in HIDDEN_KINDS:
            node.setItemVisibilityChecked(False)
        ordered = [root.findLayer(self.ids[k]) for k in LAYER_ORDER if k in self.ids]
        arrange(node.parent(), [n for n in ordered if n is not None])


def arrange(parent: QgsLayerTreeGroup | None, nodes: list[QgsLayerTreeLayer]) -> None:
    """Put ``nodes`` (children of ``parent``) next to each other in this order, where the
    topmost of them was; other layers keep their places."""
    if parent is None or len(nodes) < 2 or any(not _same(n.parent(), parent) for n in nodes):
        return
    ids = [n.layerId() for n in nodes]
    children = [c.layerId() if isinstance(c, QgsLayerTreeLayer) else None
                for c in parent.children()]
    positions = [children.index(i) for i in ids]
    if positions == list(range(positions[0], positions[0] + len(nodes))):
        return
    start = min(positions)
    # Clones go in first: a layer whose last node leaves the tree is removed from the project.
    parent.insertChildNodes(start, [n.clone() for n in nodes])
    for node in nodes:
        parent.removeChildNode(node)


def _same(a: object, b: object) -> bool:
    """The same C++ object behind two wrappers."""
    return a is not None and b is not None and sip.unwrapinstance(a) == sip.unwrapinstance(b)


class LayerStyler(QgsProcessingLayerPostProcessorInterface):
    """Applies one output kind's style to a layer QGIS loaded on completion of an algorithm,
    and places it among the other layers of its run (see :class:`RunLayers`)."""

    def __init__(self, kind: str, run: RunLayers | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.run = run

    def postProcessLayer(
        self, layer: QgsMapLayer, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> None:
        if not apply_style(layer, self.kind) and feedback is not None:
            feedback.pushInfo(f"Could not apply the {self.kind} style ({style_path(self.kind)}).")
        if self.run is not None and layer is not None:
            self.run.place(self.kind, layer, context)


# The layer details take ownership of a post-processor and delete it with the context, while
# QGIS calls it through a pointer: the Python object must stay alive until then, or it is
# garbage-collected before QGIS calls it (the classic pitfall). So every run gets its own
# stylers, held here until QGIS has deleted them.
_LIVE: list[LayerStyler] = []
_LIVE_LOCK = threading.Lock()  # algorithms run on worker threads, possibly several at once


def styler(kind: str, run: RunLayers | None = None) -> LayerStyler:
    """A new post-processor for one output kind, kept alive until QGIS is done with it."""
    style_path(kind)  # validates the kind
    created = LayerStyler(kind, run)
    with _LIVE_LOCK:
        _LIVE[:] = [s for s in _LIVE if not sip.isdeleted(s)]
        _LIVE.append(created)
    return created


def style_on_completion(
    context: QgsProcessingContext, path: str | None, kind: str, layer_name: str | None = None,
    run: RunLayers | None = None,
) -> bool:
    """If QGIS will load ``path`` when the algorithm finishes, style it (and name it) then.

    ``layer_name`` replaces the name QGIS would give (the parameter's or the file's); ``run``
    (one :class:`RunLayers` shared by a run's outputs) orders them and hides the mask. Returns
    True when a post-processor was attached (from the toolbox, not from a plain
    ``processing.run`` or ``qgis_process`` run, where nothing is loaded).
    """
    if not path or not context.willLoadLayerOnCompletion(path):
        return False
    details = context.layerToLoadOnCompletionDetails(path)
    if layer_name:
        details.name = layer_name
        details.forceName = True  # over "use the file name as layer name"
    if run is not None and hasattr(details, "layerSortKey"):  # QGIS 3.32+
        details.layerSortKey = len(LAYER_ORDER) - LAYER_ORDER.index(kind)
    details.setPostProcessor(styler(kind, run))
    return True
