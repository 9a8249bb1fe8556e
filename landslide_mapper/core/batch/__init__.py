"""Many rasters at once, or one raster over several machines, on Dask distributed.

    listing    INPUT arguments (files, folders, glob patterns, list files) -> the rasters to map
    cluster    a Dask client: a local cluster sized to the cores, or a scheduler by address
    tasks      what one worker does for one raster: map it, record the outcome beside its outputs
    split      one raster in blocks of rows on several workers, identical to a single run
    inventory  every raster's polygons in one layer with a ``source`` attribute, in one CRS
    run        :func:`map_many`: the batch, its progress, cancel, summary and merged inventory
"""
