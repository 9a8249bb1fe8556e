"""Landslide polygons: mask -> polygons with ground areas and attributes, and polygon files.

    vectorize     the strip-by-strip vectorizer (public entry ``vectorize_mask``); built from:
      mask_reading  reading the mask and probability rasters strip by strip
      strips        polygon pieces of one strip, joined across strip edges
      components    connected components in pixel space and their write order
      holes         filling small holes and the islands inside them
      attributes    clean-up (simplify, repair), minimum area, attribute records
      terrain_stats slope and elevation of each polygon, read beside the mask; minimum slope
      finishing     ordering and writing finished polygons
    geometry      ground area, perimeter and centroid of polygons in a raster's CRS
    vector_io     writing polygon files (driver by extension, temporary name, renamed at the end)
    geopackage    our layer into a GeoPackage that holds others: copy, write, check, rename

Imports only the shared modules (:mod:`..contract`, :mod:`..errors`, :mod:`..paths`,
:mod:`..staging`, :mod:`..georeferencing`) from the rest of core.
"""

#: The speck rule when no minimum area is given (``min_area_m2=None``): polygons of fewer
#: landslide pixels than this are dropped (4 pixels: 400 m2 at 10 m, 1 m2 at 0.5 m). Kept here,
#: free of imports, so help texts can state it without loading the vectorizer.
DEFAULT_MIN_PIXELS = 4
