"""One inventory from many rasters: every polygon in one GeoPackage layer, in one CRS.

Each feature keeps its attributes (areas are ground areas, whatever the CRS) and gains ``source``,
the raster it was mapped on. The CRS is the user's choice, else the rasters' common CRS, else
EPSG:4326 when they differ. Features are streamed file by file, never all held at once, into a
temporary GeoPackage beside the target (:mod:`..staging`); only when it is complete does it take
the target's place, or, when the target holds other layers, its layer is merged in and those are
kept (:mod:`..polygons.geopackage`). A failed or cancelled merge leaves the previous inventory as
it was and no temporary file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import staging
from ..errors import CancelledError, InputError, OutputError
from ..polygons import geopackage

LAYER = "landslides"
SOURCE_FIELD = "source"
FALLBACK_CRS = "EPSG:4326"
#: The temporary name of earlier versions (no process id in it), removed when found.
_LEGACY_TMP = ".{stem}.partial{suffix}"


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
                    layer_name: str | None = None, is_canceled=None) -> tuple[int, str]:
    """Write the polygons of every ``(polygon file, source raster)`` into the GeoPackage
    ``target``, layer ``layer_name`` (default ``landslides``; the file's other layers are kept),
    with a ``source`` attribute; returns the feature count and the CRS's name."""
    import fiona
    from pyproj import CRS

    target = Path(target)
    layer = layer_name or LAYER
    schemas, crs_list = [], []
    for path, _ in parts:
        with fiona.open(path) as src:
            schemas.append(dict(src.schema))
            crs_list.append(CRS.from_wkt(src.crs_wkt))
    out_crs = target_crs(crs, crs_list)
    properties = dict(schemas[0]["properties"]) if schemas else {}
    for schema in schemas[1:]:  # terrain attributes of some rasters only: every column kept
        properties.update((k, v) for k, v in schema["properties"].items() if k not in properties)
    properties[SOURCE_FIELD] = "str:1024"
    schema = {"geometry": "MultiPolygon", "properties": properties}
    _remove(target.with_name(_LEGACY_TMP.format(stem=target.stem, suffix=target.suffix)))
    tmp = staging.temporary_sibling(target)
    count = 0
    try:
        with staging.writing("Inventory", tmp):
            with fiona.open(tmp, "w", driver="GPKG", layer=layer, schema=schema,
                            crs_wkt=out_crs.to_wkt()) as dst:
                for (path, source), part_crs in zip(parts, crs_list):
                    if is_canceled is not None and is_canceled():
                        raise CancelledError("Cancelled by the user; the inventory was not "
                                             "written.")
                    count += _copy(path, str(source), part_crs, out_crs, dst, properties)
        geopackage.publish(tmp, target, [layer], "Inventory")
    except fiona.errors.FionaError as exc:
        raise OutputError(f"Inventory {target}: cannot be written ({exc}). Check the folder "
                          "and the disk space; the previous inventory is unchanged.") from exc
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
    """A temporary GeoPackage and what SQLite keeps beside it."""
    for p in (tmp, *(tmp.with_name(tmp.name + s) for s in ("-wal", "-shm", "-journal"))):
        staging.remove_path(p)
