"""Model-ready inputs: Sentinel-2 products to a band stack, terrain bands from a DEM.

    sentinel2  ``prepare_sentinel2_stack``: .SAFE folders/zips or band files -> one GeoTIFF in the
               model's band order, on B02's 10 m grid (the entry point)
    s2_bands   Sentinel-2 band names, common names, band file names, asked-for band lists
    s2_product reading a product, folder, file list or described raster; metadata and offsets
    stack_grid the output grid: reference grid, output CRS, area of interest
    stack_writer
               warping every band onto the grid and writing the stack block by block
    terrain    slope by Horn's method; DEM/slope bands aligned to a raster for a model

May import :mod:`..models`, :mod:`..raster`, :mod:`..contract` and :mod:`..errors`.
"""
