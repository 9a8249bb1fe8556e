"""The annotator's polygon layers: landslide polygons and areas, read into the raster's CRS.

``read_polygon_layer`` reads the polygons of a vector file (reprojected, repaired, counted);
``area_geometry`` turns an area given as a polygon file or an extent into one geometry (the
*checked area* of a chip export, the evaluation area of a scoring run); ``polygonal_part`` keeps
the polygonal part of a geometry.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from ..errors import InputError


@dataclass
class PolygonLayer:
    """Polygons of a vector file in a target CRS, with what happened on the way."""

    path: Path
    geometries: list[Any]
    features_read: int = 0
    repaired: int = 0
    dropped: int = 0
    reprojected_from: str | None = None
    ids: list[int] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


def polygonal_part(geom: Any) -> Any:
    """The polygonal part of a geometry (lines and points of a repaired geometry dropped)."""
    if geom is None or geom.is_empty:
        return None
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else shapely.union_all(parts)


def read_polygon_layer(path: str | os.PathLike[str], target_crs: Any, *, what: str) -> PolygonLayer:
    """Read a polygon file (first layer, or ``path|layername=NAME``) in ``target_crs``.

    Geometries in another CRS are reprojected (pyproj); invalid ones are repaired with
    ``shapely.make_valid`` and counted; empty, null and non-polygonal ones are dropped and counted.
    A file without a CRS is taken to be in ``target_crs`` (with a message).
    """
    import fiona
    from pyproj import CRS, Transformer

    text = str(path)
    layer = None
    if "|layername=" in text:
        text, layer = text.split("|layername=", 1)
        layer = layer.split("|", 1)[0]
    p = Path(text.split("|", 1)[0])
    if not p.exists():
        raise InputError(f"{what} {p}: file not found. Give a polygon file (GeoPackage, "
                         "shapefile, GeoJSON).")
    try:
        src = fiona.open(p, layer=layer) if layer else fiona.open(p)
    except Exception as exc:  # fiona raises several unrelated types
        raise InputError(f"{what} {p}: not a vector file OGR can read ({exc}). Expected a "
                         "polygon layer (GeoPackage, shapefile, GeoJSON).") from exc
    out = PolygonLayer(p, [])
    with src:
        geom_type = str(src.schema.get("geometry", "")).lower()
        if geom_type and not any(t in geom_type for t in ("polygon", "unknown", "any", "geometry")):
            raise InputError(f"{what} {p}: expected polygons, found a layer of "
                             f"{src.schema.get('geometry')} geometries. Choose a polygon layer.")
        source_wkt = src.crs_wkt or ""
        target = CRS.from_user_input(target_crs.to_wkt() if hasattr(target_crs, "to_wkt")
                                     else target_crs)
        transformer = None
        if not source_wkt:
            out.messages.append(f"{what} {p}: has no CRS; taken to be in the raster's CRS "
                                f"({target.name}).")
        else:
            source = CRS.from_wkt(source_wkt)
            if not source.equals(target, ignore_axis_order=True):
                transformer = Transformer.from_crs(source, target, always_xy=True)
                out.reprojected_from = source.to_string()
                out.messages.append(f"{what} {p}: reprojected from {source.name} to the raster's "
                                    f"CRS ({target.name}).")
        for i, feature in enumerate(src):
            out.features_read += 1
            g = feature.geometry
            if g is None:
                out.dropped += 1
                continue
            geom = shapely.geometry.shape(g)
            if transformer is not None and not geom.is_empty:
                geom = shapely.transform(geom, lambda xy: np.column_stack(
                    transformer.transform(xy[:, 0], xy[:, 1])))
            if not geom.is_valid:
                geom = shapely.make_valid(geom)
                out.repaired += 1
            geom = polygonal_part(geom)
            if geom is None:
                out.dropped += 1
                continue
            out.geometries.append(geom)
            out.ids.append(int(feature.id) if str(feature.id).lstrip("-").isdigit() else i)
    if out.repaired:
        out.messages.append(f"{what} {p}: {out.repaired} invalid geometr"
                            f"{'y' if out.repaired == 1 else 'ies'} repaired (make_valid).")
    if out.dropped:
        out.messages.append(f"{what} {p}: {out.dropped} empty or non-polygonal feature(s) "
                            "ignored.")
    return out


def area_geometry(area: Any, target_crs: Any, *, what: str) -> tuple[Any, list[str]]:
    """An area given as a polygon file or ``(xmin, ymin, xmax, ymax)`` (target CRS) -> geometry."""
    if isinstance(area, (tuple, list)) and len(area) == 4:
        x0, y0, x1, y1 = (float(v) for v in area)
        if not (x0 < x1 and y0 < y1):
            raise InputError(f"{what}: expected an extent xmin < xmax, ymin < ymax, found {area}.")
        return shapely.box(x0, y0, x1, y1), []
    layer = read_polygon_layer(area, target_crs, what=what)
    if not layer.geometries:
        raise InputError(f"{what} {layer.path}: holds no polygons. Draw the area that was "
                         "checked, or leave it empty to count the whole raster as checked.")
    return shapely.union_all(layer.geometries), layer.messages
