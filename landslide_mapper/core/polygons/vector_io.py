"""Writing landslide polygons: driver by extension, under a temporary name, renamed at the end.

A failed or cancelled write removes its temporary files and leaves any existing file at the target
untouched. Every feature is written as a MultiPolygon so one schema fits them all.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import fiona
import numpy as np
import shapely

from .. import staging
from ..errors import OutputError, brief_message
from ..paths import split_layer
from . import geopackage

DRIVERS = {
    ".gpkg": "GPKG",
    ".shp": "ESRI Shapefile",
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".fgb": "FlatGeobuf",
}

#: Polygon attributes, in order, with their fiona types. In a GeoPackage ``id`` is the feature id
#: column itself (numbered 1.. in write order), so the table has no second id next to ``fid``.
POLYGON_FIELDS: dict[str, str] = {
    "id": "int",
    "area_m2": "float",
    "area_ha": "float",
    "perimeter_m": "float",
    "prob_mean": "float",
    "prob_max": "float",
    "centroid_lon": "float",
    "centroid_lat": "float",
    "model": "str:254",
    "pixels": "int",
}

#: Terrain attributes (:mod:`.terrain_stats`), written after ``prob_max`` only when a slope or
#: elevation raster is given.
TERRAIN_FIELDS: dict[str, str] = {"slope_mean": "float", "slope_max": "float",
                                  "elev_min": "float", "elev_max": "float"}


def polygon_fields(terrain_fields: Sequence[str] = ()) -> dict[str, str]:
    """The attributes written, in order: :data:`POLYGON_FIELDS` with ``terrain_fields`` (of
    :data:`TERRAIN_FIELDS`) after ``prob_max``."""
    fields: dict[str, str] = {}
    for name, kind in POLYGON_FIELDS.items():
        fields[name] = kind
        if name == "prob_max":
            fields.update((t, TERRAIN_FIELDS[t]) for t in TERRAIN_FIELDS if t in terrain_fields)
    return fields


#: The attribute a GeoPackage stores as its feature id column.
FID_FIELD = "id"

#: Shapefile field names are limited to 10 characters: these are shortened on purpose.
SHAPEFILE_NAMES = {"perimeter_m": "perim_m", "centroid_lon": "cent_lon", "centroid_lat": "cent_lat"}

_SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")
DEFAULT_LAYER = "landslides"
_STALE_SHAPEFILE_INDEXES = (".qix", ".sbn", ".sbx")


def driver_for(path: str | os.PathLike[str]) -> str:
    """The OGR driver for an output path, chosen by its extension."""
    suffix = Path(path).suffix.lower()
    try:
        return DRIVERS[suffix]
    except KeyError:
        raise OutputError(
            f"Polygon output {str(path)!r}: expected one of the extensions "
            f"{', '.join(sorted(DRIVERS))}, found {suffix or 'no extension'!r}. Use .gpkg "
            "(GeoPackage, the default) or another listed format."
        ) from None


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Refuse, before any work starts, an output that cannot be written; return it as a Path."""
    path = Path(path)
    driver_for(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(
            f"Polygon output {str(path)!r}: the folder {str(folder)!r} does not exist"
            f"{' (it is a file)' if folder.exists() else ''}. Create the folder or choose another "
            "path."
        )
    if path.is_dir():
        raise OutputError(
            f"Polygon output {str(path)!r}: expected a file name, found a folder. Add a file name "
            "such as landslides.gpkg."
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(
            f"Polygon output {str(path)!r}: the folder {str(folder)!r} is not writable. Choose a "
            "folder you can write to."
        )
    return path


def polygon_target(path: str | os.PathLike[str], layer_name: str | None = None
                   ) -> tuple[Path, str | None]:
    """The file and (in a GeoPackage) the layer a polygon output names, checked before any work.

    ``path`` may end in ``|layername=NAME`` (the QGIS spelling); ``layer_name`` wins over it. A
    GeoPackage gets :data:`DEFAULT_LAYER` when no layer is named, and an existing one must be a
    GeoPackage nobody is writing to (its other layers are kept). Shapefiles, GeoJSON and
    FlatGeobuf hold one layer each and take no name.
    """
    text, named = split_layer(path)
    layer = layer_name or named
    target = check_writable(text)
    if driver_for(target) != "GPKG":
        if layer:
            raise OutputError(
                f"Polygon output {text!r}: expected a GeoPackage (.gpkg) for the layer name "
                f"{layer!r}, found a {target.suffix} file, which holds one layer. Write to a .gpkg "
                "or leave the layer name out.")
        return target, None
    geopackage.check_container(target, "Polygon output")
    return target, layer or DEFAULT_LAYER


def publish_polygons(tmp: Path, target: Path, layers: Sequence[str] = ()) -> None:
    """Move a finished polygon file into place at ``target``.

    A GeoPackage target holding other layers keeps them (:func:`.geopackage.publish`); a shapefile
    moves with its side-cars (stale spatial indexes of an older one removed); anything else is
    renamed.
    """
    driver = driver_for(target)
    if driver == "GPKG":
        geopackage.publish(tmp, target, list(layers) or geopackage.layer_names(tmp),
                           "Polygon output")
        return
    if driver != "ESRI Shapefile":
        staging.publish(tmp, target, "Polygon output")
        return
    for ext in _STALE_SHAPEFILE_INDEXES:
        target.with_suffix(ext).unlink(missing_ok=True)
    for ext in _SHAPEFILE_PARTS:
        part = tmp.with_suffix(ext)
        if part.exists():
            staging.publish(part, target.with_suffix(ext), "Polygon output")


def field_names(driver: str, fields: Mapping[str, str] = POLYGON_FIELDS) -> dict[str, str]:
    """Attribute name -> field name in the file (shortened for shapefiles; a GeoPackage's ``id``
    is its feature id column, not a field)."""
    if driver == "ESRI Shapefile":
        return {k: SHAPEFILE_NAMES.get(k, k) for k in fields}
    if driver == "GPKG":
        return {k: k for k in fields if k != FID_FIELD}
    return {k: k for k in fields}


def _multipolygon_dicts(geometries: Sequence[Any]) -> list[dict[str, Any]]:
    """GeoJSON-like MultiPolygon mappings of polygonal geometries (non-polygon parts dropped)."""
    geoms = np.asarray(list(geometries), dtype=object).reshape(-1)
    if len(geoms) == 0:
        return []
    parts, owner = shapely.get_parts(geoms, return_index=True)
    is_polygon = shapely.get_type_id(parts) == shapely.GeometryType.POLYGON
    parts, owner = parts[is_polygon], owner[is_polygon]
    _, coords, (ring_end, poly_end) = shapely.to_ragged_array(parts)
    xy = coords.tolist()
    polygons: list[list[list[Any]]] = [[] for _ in range(len(geoms))]
    for p, k in enumerate(owner.tolist()):
        rings = range(poly_end[p], poly_end[p + 1])
        polygons[k].append([xy[ring_end[r]:ring_end[r + 1]] for r in rings])
    return [{"type": "MultiPolygon", "coordinates": c} for c in polygons]


class PolygonWriter:
    """Context manager writing polygon features to a temporary file, renamed on success.

    ``write(geometry, attributes)`` takes attributes keyed by :data:`POLYGON_FIELDS` names
    (and ``terrain_fields``, see :func:`polygon_fields`). Features are buffered and written in
    batches (one transaction each in a GeoPackage).
    """

    def __init__(self, path: str | os.PathLike[str], *, crs_wkt: str,
                 layer_name: str | None = None, batch: int = 2000,
                 terrain_fields: Sequence[str] = ()) -> None:
        self.path, self.layer_name = polygon_target(path, layer_name)
        self.driver = driver_for(self.path)
        self.fields = polygon_fields(terrain_fields)
        self.names = field_names(self.driver, self.fields)
        self.crs_wkt = crs_wkt
        self.batch = batch
        self.count = 0
        self._tmp = staging.temporary_sibling(self.path)
        self._buffer: list[dict[str, Any]] = []
        self._collection: Any = None

    def __enter__(self) -> "PolygonWriter":
        schema = {"geometry": "MultiPolygon",
                  "properties": {self.names[k]: self.fields[k] for k in self.names}}
        kwargs: dict[str, Any] = {}
        if self.driver == "GPKG":
            kwargs["layer"] = self.layer_name
            kwargs["FID"] = FID_FIELD  # layer creation option: the id column is the fid
        try:
            self._collection = fiona.open(self._tmp, "w", driver=self.driver, schema=schema,
                                          crs_wkt=self.crs_wkt, **kwargs)
        except Exception as err:  # fiona raises several unrelated types here
            self._remove_temporaries()
            raise staging.write_failure(
                "Polygon output", self.path,
                f"a {self.driver} file that cannot be created ({_short(err)})") from None
        return self

    def write(self, geometry: Any, attributes: Mapping[str, Any]) -> None:
        """Queue one feature; it is written with the next batch."""
        self.write_many([geometry], [attributes])

    def write_many(self, geometries: Sequence[Any],
                   attributes: Sequence[Mapping[str, Any]]) -> None:
        """Queue features (polygonal geometries and their attributes), converted in one pass."""
        for geometry, attrs in zip(_multipolygon_dicts(geometries), attributes):
            props = {name: attrs.get(k) for k, name in self.names.items()}
            self._buffer.append({"geometry": geometry, "properties": props})
            self.count += 1
            if len(self._buffer) >= self.batch:
                self.flush()

    def flush(self) -> None:
        if self._buffer:
            try:
                self._collection.writerecords(self._buffer)
            except Exception as err:
                raise staging.write_failure(
                    "Polygon output", self.path, f"writing features failed ({_short(err)})"
                ) from None
            self._buffer = []

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self._abort()
            return
        try:
            self.flush()
            self._close()
            self._check_written()
            self._commit()
        except BaseException:
            self._abort()
            raise

    def _close(self) -> None:
        """Close the temporary file; a failure here (the last transaction, the index, the
        header) is a write failure like any other."""
        collection, self._collection = self._collection, None
        try:
            collection.close()
        except Exception as err:
            raise staging.write_failure(
                "Polygon output", self.path, f"closing the file failed ({_short(err)})") from None

    def _check_written(self) -> None:
        """Read the closed temporary file back: it must open and hold every feature written."""
        kwargs = {"layer": self.layer_name} if self.driver == "GPKG" else {}
        try:
            with fiona.open(self._tmp, **kwargs) as layer:
                try:
                    found = len(layer)
                except Exception:  # some drivers cannot count a layer (an empty FlatGeobuf)
                    found = sum(1 for _ in layer)
        except Exception as err:
            raise staging.write_failure(
                "Polygon output", self.path,
                f"a file that cannot be read back ({_short(err)})") from None
        if found != self.count:
            raise staging.write_failure(
                "Polygon output", self.path,
                f"{found} of the {self.count} polygons in the written file")

    def _abort(self) -> None:
        if self._collection is not None:
            try:
                self._collection.close()
            except Exception:
                pass
            self._collection = None
        self._remove_temporaries()

    def _temporaries(self) -> list[Path]:
        folder = self._tmp.parent
        return [p for p in folder.iterdir() if p.name.startswith(self._tmp.stem)]

    def _remove_temporaries(self) -> None:
        for p in self._temporaries():
            try:
                p.unlink()
            except OSError:
                pass

    def _commit(self) -> None:
        publish_polygons(self._tmp, self.path, [self.layer_name] if self.layer_name else [])
        self._remove_temporaries()


def _short(err: BaseException) -> str:
    """An OGR/SQLite error in a few words (some quote whole SQL statements)."""
    return brief_message(err)


def write_polygons(path: str | os.PathLike[str],
                   features: Iterable[tuple[Any, Mapping[str, Any]]], *,
                   crs_wkt: str, layer_name: str | None = None) -> int:
    """Write (geometry, attributes) pairs in one go; returns the number of features."""
    with PolygonWriter(path, crs_wkt=crs_wkt, layer_name=layer_name) as writer:
        for geometry, attributes in features:
            writer.write(geometry, attributes)
    return writer.count
