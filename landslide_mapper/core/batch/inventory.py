"""One inventory from many rasters: every polygon in one GeoPackage layer, in one CRS.

Each feature keeps its attributes (areas are ground areas, whatever the CRS) and gains ``source``,
the raster it was mapped on. The CRS is the user's choice, else the rasters' common CRS, else
EPSG:4326 when they differ. Features are streamed file by file, never all held at once; the
GeoPackage appears only when complete.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import CancelledError, InputError, OutputError

LAYER = "landslides"
SOURCE_FIELD = "source"
FALLBACK_CRS = "EPSG:4326"


def target_crs(crs, part_crs: Sequence):
    """The inventory's CRS (a pyproj CRS): ``crs`` when given, else the parts' common CRS, else
    EPSG:4326."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    if crs is not None and str(crs).strip():
        try:
            return CRS.from_user_input(str(crs).strip())
        except CRSError as exc:
            raise InputError(f"Inventory CRS {crs!r}: expected an EPSG code (EPSG:4326), WKT or "
                             f"PROJ string, found one pyproj does not know ({exc}).") from exc
    if not part_crs:
        return CRS.from_user_input(FALLBACK_CRS)
    first = part_crs[0]
    if all(c == first for c in part_crs[1:]):
        return first
    return CRS.from_user_input(FALLBACK_CRS)


def merge_inventory(parts: Sequence[tuple[Path, str]], target: Path, *, crs=None,
                    is_canceled=None) -> tuple[int, str]:
    """Write the polygons of every ``(polygon file, source raster)`` into ``target`` (one layer
    ``landslides`` with a ``source`` attribute); returns the feature count and the CRS's name."""
    import fiona
    from pyproj import CRS

    target = Path(target)
    schemas, crs_list = [], []
    for path, _ in parts:
        with fiona.open(path) as layer:
            schemas.append(dict(layer.schema))
            crs_list.append(CRS.from_wkt(layer.crs_wkt))
    out_crs = target_crs(crs, crs_list)
    properties = dict(schemas[0]["properties"]) if schemas else {}
    properties[SOURCE_FIELD] = "str:1024"
    schema = {"geometry": "MultiPolygon", "properties": properties}
    tmp = target.with_name(f".{target.stem}.partial{target.suffix}")
    _remove(tmp)
    count = 0
    try:
        with fiona.open(tmp, "w", driver="GPKG", layer=LAYER, schema=schema,
                        crs_wkt=out_crs.to_wkt()) as dst:
            for (path, source), part_crs in zip(parts, crs_list):
                if is_canceled is not None and is_canceled():
                    raise CancelledError("Cancelled by the user; the inventory was not written.")
                count += _copy(path, str(source), part_crs, out_crs, dst, properties)
        os.replace(tmp, target)
    except (OSError, fiona.errors.FionaError) as exc:
        raise OutputError(f"Inventory {target}: cannot be written ({exc}). Check the folder "
                          "and the disk space.") from exc
    finally:
        _remove(tmp)
    return count, out_crs.name


def _copy(path: Path, source: str, part_crs, out_crs, dst, properties: dict) -> int:
    """Copy one polygon file's features into ``dst``, reprojected; returns how many."""
    import fiona
    import shapely
    from pyproj import Transformer
    from shapely.geometry import mapping, shape

    transform = None
    if part_crs != out_crs:
        transformer = Transformer.from_crs(part_crs, out_crs, always_xy=True)

        def transform(xy: np.ndarray) -> np.ndarray:
            return np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))
    n = 0
    batch = []
    with fiona.open(path) as layer:
        for f in layer:
            geom = shape(f["geometry"])
            if transform is not None:
                geom = shapely.transform(geom, transform)
            if geom.geom_type == "Polygon":
                geom = shapely.MultiPolygon([geom])
            props = {k: f["properties"].get(k) for k in properties if k != SOURCE_FIELD}
            props[SOURCE_FIELD] = source
            batch.append({"geometry": mapping(geom), "properties": props})
            if len(batch) >= 2000:
                dst.writerecords(batch)
                n, batch = n + len(batch), []
    if batch:
        dst.writerecords(batch)
        n += len(batch)
    return n


def _remove(tmp: Path) -> None:
    for p in tmp.parent.glob(tmp.name + "*"):
        try:
            p.unlink()
        except OSError:
            pass
