"""Writing landslide polygons: driver by extension, under a temporary name, renamed at the end.

A failed or cancelled write removes its temporary files and leaves any existing file at the target
untouched. Every feature is written as a MultiPolygon so one schema fits them all.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import fiona
import numpy as np
import shapely

from ..errors import OutputError

DRIVERS = {
    ".gpkg": "GPKG",
    ".shp": "ESRI Shapefile",
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".fgb": "FlatGeobuf",
}

#: Polygon attributes, in order, with their fiona types.
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

#: Shapefile field names are limited to 10 characters: these are shortened on purpose.
SHAPEFILE_NAMES = {"perimeter_m": "perim_m", "centroid_lon": "cent_lon", "centroid_lat": "cent_lat"}

_SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")
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


def field_names(driver: str) -> dict[str, str]:
    """Attribute name -> field name in the file (shortened for shapefiles)."""
    if driver == "ESRI Shapefile":
        return {k: SHAPEFILE_NAMES.get(k, k) for k in POLYGON_FIELDS}
    return {k: k for k in POLYGON_FIELDS}


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

    ``write(geometry, attributes)`` takes attributes keyed by :data:`POLYGON_FIELDS` names.
    Features are buffered and written in batches (one transaction each in a GeoPackage).
    """

    def __init__(self, path: str | os.PathLike[str], *, crs_wkt: str,
                 layer_name: str = "landslides", batch: int = 2000) -> None:
        self.path = check_writable(path)
        self.driver = driver_for(self.path)
        self.names = field_names(self.driver)
        self.layer_name = layer_name
        self.crs_wkt = crs_wkt
        self.batch = batch
        self.count = 0
        tag = uuid.uuid4().hex[:8]
        self._tmp = self.path.with_name(f".{self.path.stem}.partial-{tag}{self.path.suffix}")
        self._buffer: list[dict[str, Any]] = []
        self._collection: Any = None

    def __enter__(self) -> "PolygonWriter":
        schema = {"geometry": "MultiPolygon",
                  "properties": {self.names[k]: v for k, v in POLYGON_FIELDS.items()}}
        kwargs: dict[str, Any] = {}
        if self.driver == "GPKG":
            kwargs["layer"] = self.layer_name
        try:
            self._collection = fiona.open(self._tmp, "w", driver=self.driver, schema=schema,
                                          crs_wkt=self.crs_wkt, **kwargs)
        except Exception as err:  # fiona raises several unrelated types here
            self._remove_temporaries()
            raise OutputError(
                f"Polygon output {str(self.path)!r}: cannot create a {self.driver} file in "
                f"{str(self.path.parent)!r} ({err}). Check the folder and the disk space."
            ) from err
        return self

    def write(self, geometry: Any, attributes: Mapping[str, Any]) -> None:
        """Queue one feature; it is written with the next batch."""
        self.write_many([geometry], [attributes])

    def write_many(self, geometries: Sequence[Any],
                   attributes: Sequence[Mapping[str, Any]]) -> None:
        """Queue features (polygonal geometries and their attributes), converted in one pass."""
        for geometry, attrs in zip(_multipolygon_dicts(geometries), attributes):
            props = {self.names[k]: attrs.get(k) for k in POLYGON_FIELDS}
            self._buffer.append({"geometry": geometry, "properties": props})
            self.count += 1
            if len(self._buffer) >= self.batch:
                self.flush()

    def flush(self) -> None:
        if self._buffer:
            try:
                self._collection.writerecords(self._buffer)
            except Exception as err:
                raise OutputError(
                    f"Polygon output {str(self.path)!r}: writing features failed ({err}). Check "
                    "the disk space and the folder."
                ) from err
            self._buffer = []

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self._abort()
            return
        try:
            self.flush()
            self._collection.close()
            self._collection = None
            self._commit()
        except BaseException:
            self._abort()
            raise

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
        if self.driver != "ESRI Shapefile":
            os.replace(self._tmp, self.path)
            return
        for ext in _STALE_SHAPEFILE_INDEXES:
            self.path.with_suffix(ext).unlink(missing_ok=True)
        for ext in _SHAPEFILE_PARTS:
            part = self._tmp.with_suffix(ext)
            if part.exists():
                os.replace(part, self.path.with_suffix(ext))
        self._remove_temporaries()


def write_polygons(path: str | os.PathLike[str],
                   features: Iterable[tuple[Any, Mapping[str, Any]]], *,
                   crs_wkt: str, layer_name: str = "landslides") -> int:
    """Write (geometry, attributes) pairs in one go; returns the number of features."""
    with PolygonWriter(path, crs_wkt=crs_wkt, layer_name=layer_name) as writer:
        for geometry, attributes in features:
            writer.write(geometry, attributes)
    return writer.count
