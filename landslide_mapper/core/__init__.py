"""The engine: numpy, rasterio, onnxruntime, shapely, fiona, pyproj. Never QGIS, PyQt or torch.

Sub-packages by concern, with the contract and the errors shared by all::

    batch     many rasters, or one raster in blocks of rows, on Dask distributed (map_many)
    mapping   running a model over a raster: the tiled, blended, pipelined run (map_landslides)
    loop      the annotator's loop: training chips, training in a separate process, evaluation
    report    the inventory report: overview map, area-frequency power law, largest landslides,
              the model's scores, as one offline HTML page (``map --report``)
    inputs    model-ready inputs: Sentinel-2 stacks, slope and elevation bands from a DEM
    polygons  mask -> polygons with ground areas; polygon files
    models    model files: the bundled ones, onnxruntime sessions, small exact test models
    raster    rasters in and out; which raster band feeds which model input
    contract  what a model file says about itself (errors: the typed errors of the engine)
    paths     the one check that no output lands on an input or another output (shared by all)
    georeferencing  the one check that a raster has a CRS and a grid (GCP-only rasters named)
    staging   outputs under temporary names, flushed and checked, then renamed into place; stale
              temporary files of killed runs swept (shared by every writer)

Dependencies point one way, down this list and never back up:

    batch   -> mapping, models, raster
    mapping -> inputs, polygons, report, models, raster
    report  -> polygons, raster
    loop    -> polygons, models, raster
    inputs  -> models, raster
    polygons, models, raster -> contract, errors

``processing/`` (QGIS), ``cli/`` and ``training/`` import from here; nothing here imports them.
"""
