"""Whether a raster is georeferenced as the engine needs it: a CRS and a geotransform.

One check for every raster the engine reads (input, DEM, mask, band files), so a raster placed
only by ground control points (GCPs) is reported as such, with the way out (warp it), and never
as a raster "without a CRS" (its CRS belongs to the GCPs, not to a grid).
"""

from __future__ import annotations

from affine import Affine

from .errors import InputError


def check_georeferenced(ds, source: str, what: str = "raster") -> None:
    """Raise InputError unless ``ds`` has a CRS and a real geotransform.

    ``source`` starts the message (e.g. ``"Input raster scene.tif"``); ``what`` says what kind of
    raster was expected (``"raster"``, ``"DEM"``, ``"band file"``).
    """
    gcps, gcp_crs = ds.gcps
    gridded = ds.transform != Affine.identity()
    if gcps and not gridded:
        crs = f" in {gcp_crs.to_string()}" if gcp_crs else ""
        raise InputError(
            f"{source}: expected a {what} on a grid (a geotransform and a CRS), found one "
            f"georeferenced only by {len(gcps)} ground control points (GCPs{crs}). Warp it, e.g. "
            "gdalwarp -r bilinear IN.tif WARPED.tif (or Raster > Projections > Warp in QGIS), "
            "and use the warped raster."
        )
    if ds.crs is None:
        raise InputError(
            f"{source}: has no coordinate reference system (CRS); expected a georeferenced "
            f"{what}, found none. Assign its CRS (e.g. with 'Assign projection' in QGIS or "
            "gdal_edit.py -a_srs) and retry."
        )
    if not gridded:
        raise InputError(
            f"{source}: has no geotransform (pixel size and origin are missing, found the identity "
            f"transform). Expected a georeferenced {what}; georeference it first (e.g. "
            "gdal_edit.py -a_ullr or the QGIS Georeferencer)."
        )
