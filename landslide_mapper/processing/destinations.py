"""GeoPackage layer destinations as QGIS gives them, in the engine's spelling, and back.

QGIS's "Save to GeoPackage…" passes a polygon destination as an OGR URI,
``ogr:dbname='/data/inventory.gpkg' table="landslides" (geom)``; scripts and ``qgis_process``
may also write ``/data/inventory.gpkg|layername=landslides``. The engine takes the latter (the
file's other layers are kept, only that layer is replaced). :func:`layer_destination` turns the
former into it; :func:`polygon_result` names the layer in the result when the GeoPackage holds
other layers too, so QGIS loads ours and not the file's first. Both move the "load this layer on
completion" entry QGIS keyed by the destination, so the layer is still loaded (and styled).
"""

from __future__ import annotations

import re
from pathlib import Path

from qgis.core import QgsProcessingContext

_DBNAME = re.compile(r"""dbname\s*=\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"|(\S+))""")
_TABLE = re.compile(r"""table\s*=\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|([^\s(]+))""")


def layer_destination(destination: str, context: QgsProcessingContext) -> str:
    """``ogr:dbname='F.gpkg' table="T" (geom)`` -> ``F.gpkg|layername=T``; others unchanged."""
    if not destination.startswith("ogr:"):
        return destination
    db, table = _DBNAME.search(destination), _TABLE.search(destination)
    if db is None:
        return destination
    path = _unescape(next(g for g in db.groups() if g is not None))
    if not path.lower().endswith(".gpkg"):
        return destination
    layer = _unescape(next(g for g in table.groups() if g is not None)) if table else None
    converted = f"{path}|layername={layer}" if layer else path
    rekey(context, destination, converted)
    return converted


def polygon_result(destination: str, context: QgsProcessingContext,
                   default_layer: str | None = None) -> str:
    """The polygon output as QGIS should load it: with ``|layername=`` when the GeoPackage holds
    other layers besides ours (QGIS would otherwise load its first layer). ``default_layer``: the
    layer written when none was named (the engine's ``landslides`` unless given)."""
    from ..core.paths import split_layer
    from ..core.polygons.geopackage import layer_names
    from ..core.polygons.vector_io import DEFAULT_LAYER

    path, layer = split_layer(destination)
    if layer or not path.lower().endswith(".gpkg"):
        return destination
    try:
        if len(layer_names(Path(path))) < 2:
            return destination
    except Exception:  # unreadable: leave the destination as QGIS gave it
        return destination
    named = f"{path}|layername={default_layer or DEFAULT_LAYER}"
    rekey(context, destination, named)
    return named


def rekey(context: QgsProcessingContext, old: str, new: str) -> None:
    """Move QGIS's load-on-completion entry of ``old`` to ``new`` (nothing when there is none)."""
    if old == new or not context.willLoadLayerOnCompletion(old):
        return
    layers = context.layersToLoadOnCompletion()
    details = layers.pop(old)
    layers[new] = details
    context.setLayersToLoadOnCompletion(layers)


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)
