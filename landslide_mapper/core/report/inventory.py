"""What the report states: the polygons and their numbers, and the scene they were mapped on.

:func:`read_inventory` reads a polygon file (any layer, any of the engine's formats; a shapefile's
shortened field names read back under their full names) into an :class:`Inventory`; areas come
from ``area_m2`` where the polygons carry it, else they are measured (planar or geodesic, as the
vectorizer does). :func:`read_scene` reads a raster's grid, CRS, extent and acquisition date (when
its metadata or name says one) without reading its pixels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..paths import split_layer
from ..polygons.geometry import GroundMeasure, to_pyproj
from ..polygons.vector_io import SHAPEFILE_NAMES

#: Attributes of terrain that the report plots when the polygons carry them, by concern, with
#: what they mean.
SLOPE_FIELDS = {"slope_mean": "mean slope", "slope_max": "steepest slope"}
ELEVATION_FIELDS = {"elev_min": "lowest point", "elev_mean": "mean elevation",
                    "elev_max": "highest point"}
#: Metadata items that may hold the acquisition date (GDAL / Sentinel-2 / Landsat spellings).
DATE_TAGS = ("ACQUISITION_DATE", "DATE_ACQUIRED", "SENSING_TIME", "DATATAKE_SENSING_START",
             "PRODUCT_START_TIME", "ACQUISITION_START_TIME", "DATE")
_DATE = re.compile(r"(?<!\d)(\d{4})[-:/]?(\d{2})[-:/]?(\d{2})(?!\d)")
_PRODUCT_DATE = re.compile(r"_(\d{4})(\d{2})(\d{2})T\d{6}")


@dataclass
class Inventory:
    """Landslide polygons (in ``crs``) with their attributes and ground areas (m2)."""

    geometries: list[Any]
    attributes: list[dict[str, Any]]
    areas_m2: np.ndarray
    crs: Any
    source: str

    @property
    def count(self) -> int:
        return len(self.geometries)

    @property
    def total_m2(self) -> float:
        return float(self.areas_m2.sum()) if self.count else 0.0

    def fields(self) -> set[str]:
        """Attributes with a value on at least one polygon."""
        return {k for a in self.attributes for k, v in a.items() if v is not None}

    def values(self, name: str) -> np.ndarray:
        """The finite values of attribute ``name`` (NULLs and NaN left out)."""
        out = [a.get(name) for a in self.attributes]
        arr = np.array([float(v) for v in out if isinstance(v, (int, float))], dtype=float)
        return arr[np.isfinite(arr)]

    def largest(self, n: int = 10) -> list[tuple[int, dict[str, Any]]]:
        """The ``n`` largest polygons: (index, attributes with ``area_m2``), largest first."""
        order = np.argsort(-self.areas_m2, kind="stable")[:n]
        return [(int(i), dict(self.attributes[i], area_m2=float(self.areas_m2[i])))
                for i in order]


def read_inventory(path: Any, layer: str | None = None, *, source: str | None = None) -> Inventory:
    """Polygons of ``path`` (``FILE|layername=NAME`` or ``layer``) as an :class:`Inventory`."""
    import fiona
    import shapely
    from shapely.geometry import shape

    text, named = split_layer(path)
    layer = layer or named
    source = source or f"Polygons {text}"
    renamed = {short: full for full, short in SHAPEFILE_NAMES.items()}
    try:
        with fiona.open(text, layer=layer) if layer else fiona.open(text) as src:
            crs = src.crs_wkt or None
            geometries, attributes = [], []
            for feature in src:
                if feature.geometry is None:
                    continue
                geometries.append(shape(feature.geometry))
                props = {renamed.get(k, k): v for k, v in (feature.properties or {}).items()}
                if props.get("id") is None and str(feature.id).isdigit():
                    props["id"] = int(feature.id)  # a GeoPackage's id is its feature id
                attributes.append(props)
    except (fiona.errors.FionaError, OSError) as exc:
        raise InputError(f"{source}: expected a readable polygon file, found an error "
                         f"({exc}).") from None
    areas = [a.get("area_m2") for a in attributes]
    if all(isinstance(a, (int, float)) for a in areas):
        areas_m2 = np.asarray(areas, dtype=float)
    elif crs is None:
        raise InputError(f"{source}: expected polygons with an area_m2 attribute or a CRS to "
                         "measure them in, found neither.")
    else:
        geoms = np.asarray(shapely.make_valid(np.asarray(geometries, dtype=object)), dtype=object)
        areas_m2 = GroundMeasure.from_crs(crs, source=source).area(geoms) if geometries \
            else np.zeros(0)
    return Inventory(geometries, attributes, areas_m2, crs, source)


@dataclass(frozen=True)
class Scene:
    """A raster's grid and place on the Earth, as the report states them."""

    path: Path
    width: int
    height: int
    count: int
    crs_name: str
    epsg: int | None
    geographic: bool
    bounds: tuple[float, float, float, float]         # in the raster's CRS
    lonlat_bounds: tuple[float, float, float, float]  # west, south, east, north
    pixel_size_m: tuple[float, float]
    area_m2: float
    date: str | None
    date_source: str | None


def read_scene(path: Any) -> Scene:
    """The grid, CRS, extent, footprint area and acquisition date of raster ``path``."""
    import rasterio
    from rasterio.warp import transform_bounds
    from shapely.geometry import box

    from ..raster.io import pixel_size_m

    with rasterio.open(path) as ds:
        if ds.crs is None:
            raise InputError(f"Input raster {path}: expected a CRS, found none.")
        crs = to_pyproj(ds.crs)
        lonlat = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds, densify_pts=21)
        measure = GroundMeasure.from_crs(ds.crs, source=f"Input raster {path}")
        area = float(measure.area([box(*ds.bounds)])[0])
        date, where = scene_date(ds.tags(), Path(path).name)
        return Scene(Path(path), ds.width, ds.height, ds.count, crs.name, crs.to_epsg(),
                     bool(crs.is_geographic), tuple(ds.bounds), tuple(lonlat),
                     pixel_size_m(ds), area, date, where)


def scene_date(tags: dict[str, str], name: str = "") -> tuple[str | None, str | None]:
    """The acquisition date (``YYYY-MM-DD``) a raster's metadata or name states, and where it was
    found; ``(None, None)`` when none does. A file's own creation time (``TIFFTAG_DATETIME``) is
    not an acquisition date and is never used."""
    upper = {k.upper(): str(v) for k, v in tags.items()}
    for key in DATE_TAGS:
        if key in upper:
            found = _valid_date(_DATE.search(upper[key]))
            if found:
                return found, f"metadata item {key}"
    for where, text in (("product name in the metadata", upper.get("PRODUCT", "")),
                        ("file name", name)):
        found = _valid_date(_PRODUCT_DATE.search(Path(text).name if text else ""))
        if found:
            return found, where
    return None, None


def _valid_date(match: re.Match | None) -> str | None:
    if match is None:
        return None
    y, m, d = (int(g) for g in match.groups()[:3])
    if not (1950 <= y <= 2200 and 1 <= m <= 12 and 1 <= d <= 31):
        return None
    return f"{y:04d}-{m:02d}-{d:02d}"
