"""Ground measurements of polygons in a raster's CRS: area, perimeter, centroid lon/lat.

A projected CRS is measured in the plane, in metres (coordinates times the CRS's linear unit,
e.g. 0.3048006 for US survey feet)::

    area_m2 = area_crs * unit_m ** 2        perimeter_m = length_crs * unit_m

A geographic CRS is measured on its own ellipsoid (``pyproj.Geod``), with edges longer than
:data:`GEODESIC_SEGMENT_DEG` split first, so that the long east-west edges of a pixel-grid polygon
follow their parallel instead of the geodesic chord.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Geod, Transformer

from ..errors import InputError

GEODESIC_SEGMENT_DEG = 0.01
LONLAT = "EPSG:4326"


def to_pyproj(crs: Any) -> CRS:
    """A rasterio/pyproj CRS, WKT or EPSG code as a pyproj CRS (a compound's horizontal part)."""
    if hasattr(crs, "to_wkt") and not isinstance(crs, CRS):
        crs = crs.to_wkt()
    out = CRS.from_user_input(crs)
    if out.is_compound and out.sub_crs_list:
        out = out.sub_crs_list[0]
    return out


@dataclass(frozen=True)
class GroundMeasure:
    """Measures CRS-space geometries in metres: planar (projected CRS) or geodesic (geographic CRS).

    Build it with :meth:`from_crs`. ``unit_m`` is metres per CRS unit (planar) or degrees per CRS
    angular unit (geodesic; 1.0 for degrees).
    """

    crs: CRS
    geodesic: bool
    unit_m: float
    geod: Geod | None
    to_lonlat: Transformer

    @classmethod
    def from_crs(cls, crs: Any, *, source: str = "raster") -> "GroundMeasure":
        """Planar or geodesic measures from the CRS; refuse a CRS that has neither."""
        pcrs = to_pyproj(crs)
        to_lonlat = Transformer.from_crs(pcrs, LONLAT, always_xy=True)
        axis = pcrs.axis_info[0] if pcrs.axis_info else None
        if pcrs.is_geocentric:
            raise InputError(
                f"{source}: expected a projected or geographic CRS, found the geocentric CRS "
                f"{pcrs.name!r}. Reproject the raster to a projected CRS (e.g. UTM) or to WGS 84."
            )
        if pcrs.is_geographic:
            factor = 1.0
            if axis is not None and not axis.unit_name.startswith("degree"):
                factor = math.degrees(axis.unit_conversion_factor)
            return cls(pcrs, True, factor, pcrs.get_geod(), to_lonlat)
        if axis is None or axis.unit_conversion_factor <= 0 or (
            axis.unit_name and "degree" in axis.unit_name
        ):
            raise InputError(
                f"{source}: expected a projected CRS in a linear unit or a geographic CRS, found "
                f"{pcrs.name!r} with axis unit {getattr(axis, 'unit_name', None)!r}. Reproject the "
                "raster to a projected CRS (e.g. UTM) or to WGS 84."
            )
        return cls(pcrs, False, float(axis.unit_conversion_factor), None, to_lonlat)

    def _in_degrees(self, geoms: np.ndarray) -> np.ndarray:
        if self.unit_m == 1.0:
            return geoms
        return shapely.transform(geoms, lambda xy: xy * self.unit_m)

    def area_perimeter(self, geoms: Any) -> tuple[np.ndarray, np.ndarray]:
        """Area (m2) and perimeter (m, holes included) of each polygon in CRS coordinates."""
        geoms = np.asarray(geoms, dtype=object).reshape(-1)
        if not self.geodesic:
            return (shapely.area(geoms) * self.unit_m**2, shapely.length(geoms) * self.unit_m)
        assert self.geod is not None
        geoms = shapely.segmentize(self._in_degrees(geoms), GEODESIC_SEGMENT_DEG)
        geoms = shapely.orient_polygons(geoms, exterior_cw=False)
        area = np.zeros(len(geoms))
        perimeter = np.zeros(len(geoms))
        for i, g in enumerate(geoms):
            if g is None or g.is_empty:
                continue
            for part in shapely.get_parts(g):
                # Exterior counter-clockwise (positive), holes clockwise (negative); every ring's
                # length counts towards the perimeter, as in the planar case.
                for ring in (part.exterior, *part.interiors):
                    x, y = ring.xy
                    a, p = self.geod.polygon_area_perimeter(x, y)
                    area[i] += a
                    perimeter[i] += p
        return np.abs(area), perimeter

    def area(self, geoms: Any) -> np.ndarray:
        """Area in m2 of each polygon in CRS coordinates."""
        return self.area_perimeter(geoms)[0]

    def centroid_lonlat(self, geoms: Any) -> tuple[np.ndarray, np.ndarray]:
        """Centroid of each geometry (taken in CRS coordinates) as WGS 84 longitude, latitude."""
        geoms = np.asarray(geoms, dtype=object).reshape(-1)
        if len(geoms) == 0:
            return np.empty(0), np.empty(0)
        xy = shapely.get_coordinates(shapely.centroid(geoms))
        # Lists, not arrays: pyproj treats a one-element array as a scalar point and numpy warns.
        lon, lat = self.to_lonlat.transform(xy[:, 0].tolist(), xy[:, 1].tolist())
        return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)

    def tolerance(self, metres: float, latitude: float = 0.0) -> float:
        """A distance in metres as CRS units.

        Geographic CRS: divided by the length of one degree of latitude at ``latitude``, the longer
        of the two degree lengths, so the tolerance never exceeds ``metres`` on the ground.
        """
        if metres <= 0:
            return 0.0
        if not self.geodesic:
            return metres / self.unit_m
        assert self.geod is not None
        lat = min(max(latitude, -89.0), 89.0)
        m_per_deg = self.geod.inv(0.0, lat - 0.5, 0.0, lat + 0.5)[2]
        return metres / m_per_deg / self.unit_m
