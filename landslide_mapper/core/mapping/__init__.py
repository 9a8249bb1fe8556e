"""Running a model over a raster: the tiled, blended, pipelined run.

    engine     ``map_landslides``: checks, the run, warping back, threshold, polygons (public entry)
    inference  the read -> infer -> blend/write pipeline over a tile grid, in bounded memory
    tiling     tile-grid math and the blending window (pure functions)
    model_choice  which bundled model fits a raster (bands, pixel size): ``--model auto``
    calibration   tiles read from rasters as a run reads them, to calibrate int8 copies
    tta        test-time augmentation: each batch in the 8 orientations of the square, averaged
    vectorizing   the run's polygons, with slope/elevation from a DEM; the minimum-slope filter
    progress   the run's progress over its steps

May import :mod:`..inputs` (terrain bands from a DEM), :mod:`..polygons`, :mod:`..report` (the
inventory report), :mod:`..models`, :mod:`..raster`, :mod:`..contract` and :mod:`..errors`; nothing
else in core imports this package.
"""
