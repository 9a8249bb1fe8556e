"""Rasters in and out, and which raster band feeds which model input.

    io     opening and checking input rasters, pixel size in metres, windowed boundless reads,
           tiled GeoTIFF writers under a temporary name, renamed when complete
    bands  matching a contract's bands to a raster's bands (by description, by order, by hand)
    values a bounded sample of the raw values against the model's value range: refused, or
           rescaled linearly when asked

Imports only :mod:`..contract` and :mod:`..errors`.
"""
