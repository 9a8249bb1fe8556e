"""The engine's compiled packages work inside a process that already exports QGIS's GEOS and GDAL.

The QGIS application and ``qgis_process`` link GEOS, GDAL and PROJ into their executables, so those
symbols are global; wheels of shapely/rasterio/fiona bundle their own copies. A subprocess with
the system GEOS and GDAL preloaded reproduces that host; after the plugin's
``load_native_packages()`` the engine must vectorize a mask correctly there.
"""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from landslide_mapper.processing.dependencies import (
    host_exports_geo_libraries,
    load_native_packages,
)
from tests.support import make_raster

pytestmark = pytest.mark.qgis

GEOS = ctypes.util.find_library("geos_c")
GDAL = ctypes.util.find_library("gdal")

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from landslide_mapper.processing.dependencies import (
        host_exports_geo_libraries, load_native_packages)
    report = {"host": host_exports_geo_libraries()}
    report["loaded"] = len(load_native_packages())
    import shapely
    from landslide_mapper.core.polygons.vectorize import vectorize_mask
    box = shapely.box(0, 0, 30, 20)
    report["wkb_roundtrip"] = shapely.from_wkb(shapely.to_wkb(box)).equals(box)
    result = vectorize_mask(sys.argv[1], sys.argv[2])
    report["count"] = result.count
    report["area"] = result.total_area_m2
    print("REPORT " + json.dumps(report))
    """
)


def test_not_needed_in_a_python_host():
    """Here QGIS's libraries are loaded privately by the qgis module: nothing to do."""
    assert not host_exports_geo_libraries()
    assert load_native_packages() == []


@pytest.mark.skipif(not (sys.platform.startswith("linux") and GEOS and GDAL),
                    reason="needs Linux with the system GEOS and GDAL libraries QGIS uses")
def test_engine_works_where_qgis_libraries_are_global(tmp_path):
    mask = np.zeros((12, 12), np.uint8)
    mask[2:5, 2:5] = 1      # 3 x 3 pixels at 10 m: 900 m2
    mask[7:11, 6:11] = 1    # 4 x 5 pixels: 2000 m2
    path = make_raster(tmp_path / "mask.tif", mask, nodata=255)
    env = dict(os.environ, LD_PRELOAD=f"{GEOS} {GDAL}", PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(path), str(tmp_path / "p.gpkg")],
                          capture_output=True, text=True, env=env, timeout=120)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("REPORT ")]
    assert done.returncode == 0 and lines, done.stdout[-2000:] + done.stderr[-3000:]
    report = json.loads(lines[-1][len("REPORT "):])
    assert report["host"] is True
    assert report["wkb_roundtrip"] is True
    assert report["count"] == 2
    assert report["area"] == pytest.approx(2900.0)
