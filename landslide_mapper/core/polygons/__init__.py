"""Landslide polygons: mask -> polygons with ground areas and attributes, and polygon files.

    vectorize     the strip-by-strip vectorizer (public entry ``vectorize_mask``); built from:
      mask_reading  reading the mask and probability rasters strip by strip
      strips        polygon pieces of one strip, joined across strip edges
      components    connected components in pixel space and their write order
      holes         filling small holes and the islands inside them
      attributes    clean-up (simplify, repair), minimum area, attribute records
      finishing     ordering and writing finished polygons
    geometry      ground area, perimeter and centroid of polygons in a raster's CRS
    vector_io     writing polygon files (driver by extension, temporary name, renamed at the end)

Imports only :mod:`..contract` and :mod:`..errors` from the rest of core.
"""
