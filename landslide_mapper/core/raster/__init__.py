"""Rasters in and out, and which raster band feeds which model input.

    io     opening and checking input rasters, pixel size in metres, windowed boundless reads,
           tiled GeoTIFF writers under a temporary name, renamed when complete
    bands  matching a contract's bands to a raster's bands (by description, by order, by hand)

Imports only :mod:`..contract` and :mod:`..errors`.
"""
