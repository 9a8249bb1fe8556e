"""Ground measures: planar in projected CRSs (unit-aware), geodesic in geographic ones."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from pyproj import CRS, Transformer
from shapely.geometry import Polygon, box

from landslide_mapper.core.errors import InputError
from landslide_mapper.core.polygons.geometry import GroundMeasure

US_FOOT = 1200.0 / 3937.0  # metres per US survey foot, by definition


def laea_area(geom_lonlat):
    """Independent check: area in a Lambert azimuthal equal-area CRS centred on the polygon."""
    c = geom_lonlat.centroid
    laea = CRS.from_proj4(f"+proj=laea +lat_0={c.y} +lon_0={c.x} +datum=WGS84 +units=m")
    t = Transformer.from_crs("EPSG:4326", laea, always_xy=True)
    def project(xy):
        return np.column_stack(t.transform(xy[:, 0], xy[:, 1]))

    projected = shapely.transform(geom_lonlat, project)
    return projected.area


def test_square_3x3_pixels_at_10m_is_900_m2_and_120_m():
    m = GroundMeasure.from_crs("EPSG:32654")
    area, perimeter = m.area_perimeter([box(500000, 3999970, 500030, 4000000)])
    assert not m.geodesic
    assert area[0] == pytest.approx(900.0, abs=1e-9)
    assert perimeter[0] == pytest.approx(120.0, abs=1e-9)


def test_hole_is_subtracted_and_its_rim_counted_in_the_perimeter():
    m = GroundMeasure.from_crs("EPSG:32654")
    ring = Polygon(box(0, 0, 30, 30).exterior, [box(10, 10, 20, 20).exterior])
    area, perimeter = m.area_perimeter([ring])
    assert area[0] == pytest.approx(800.0)
    assert perimeter[0] == pytest.approx(160.0)


def test_projected_crs_in_us_survey_feet_is_converted_to_metres():
    m = GroundMeasure.from_crs("EPSG:2263")  # NY Long Island, US survey feet
    assert m.unit_m == pytest.approx(US_FOOT, rel=1e-12)
    area, perimeter = m.area_perimeter([box(1_000_000, 200_000, 1_000_100, 200_100)])
    assert area[0] == pytest.approx((100 * US_FOOT) ** 2, rel=1e-12)
    assert perimeter[0] == pytest.approx(400 * US_FOOT, rel=1e-12)
    assert m.tolerance(10.0) == pytest.approx(10.0 / US_FOOT)


@pytest.mark.parametrize("lat", [0.0, 36.0, 62.5, -45.0])
def test_geodesic_area_matches_an_equal_area_projection(lat):
    m = GroundMeasure.from_crs("EPSG:4326")
    assert m.geodesic
    # 37 x 23 pixels of 0.0001 degree with a 5 x 4 pixel hole: the shape of a mapped scar.
    outer = box(141.0, lat, 141.0037, lat + 0.0023)
    poly = Polygon(outer.exterior, [box(141.001, lat + 0.001, 141.0015, lat + 0.0014).exterior])
    area, perimeter = m.area_perimeter([poly])
    expected = laea_area(poly)
    assert area[0] == pytest.approx(expected, rel=1e-4)
    # Perimeter: four sides of the outer box plus the hole, each checked against an independent
    # spherical approximation (degree lengths at the mid-latitude) to 0.5 %.
    r = 6371008.8
    def side(dx, dy, y):
        return math.hypot(math.radians(dx) * r * math.cos(math.radians(y)), math.radians(dy) * r)
    approx = (2 * side(0.0037, 0, lat + 0.00115) + 2 * side(0, 0.0023, 0)
              + 2 * side(0.0005, 0, lat + 0.0012) + 2 * side(0, 0.0004, 0))
    assert perimeter[0] == pytest.approx(approx, rel=5e-3)


def test_geodesic_area_of_a_large_polygon_follows_the_parallels():
    """A 1 x 1 degree cell: long east-west edges must follow their parallels."""
    m = GroundMeasure.from_crs("EPSG:4326")
    cell = box(10.0, 45.0, 11.0, 46.0)
    area = m.area([cell])[0]
    assert area == pytest.approx(laea_area(shapely.segmentize(cell, 0.001)), rel=1e-4)


def test_centroid_lonlat_on_the_utm_central_meridian_and_equator():
    m = GroundMeasure.from_crs("EPSG:32654")  # zone 54N: central meridian 141 E
    lon, lat = m.centroid_lonlat([box(499990, -10, 500010, 10)])
    assert lon[0] == pytest.approx(141.0, abs=1e-9)
    assert lat[0] == pytest.approx(0.0, abs=1e-9)


def test_tolerance_in_degrees_in_a_geographic_crs():
    m = GroundMeasure.from_crs("EPSG:4326")
    # One degree of latitude is 110.57 km at the equator and 111.69 km at the poles.
    assert m.tolerance(1000.0, 0.0) == pytest.approx(1000.0 / 110574.0, rel=1e-3)
    assert m.tolerance(1000.0, 60.0) == pytest.approx(1000.0 / 111412.0, rel=1e-3)
    assert m.tolerance(0.0, 60.0) == 0.0


def test_a_crs_in_degrees_that_is_not_geographic_is_refused():
    # A geocentric CRS has no planar unit for areas.
    with pytest.raises(InputError, match="geocentric"):
        GroundMeasure.from_crs("EPSG:4978", source="Mask raster 'x.tif'")
