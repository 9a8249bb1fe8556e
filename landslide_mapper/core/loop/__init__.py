"""The annotator's loop: edited polygons -> training chips -> a trained model -> its scores.

    chips         image/mask chips and a manifest from a raster and landslide polygons
    annotations   the annotator's polygon layers and checked area, read in the raster's CRS
    chip_grid     the chips' tile grid and its spatial split into training/validation blocks
    training_run  training and export in a separate Python process (torch never loads here)
    evaluation    a landslide map against a reference inventory: pixel and object scores, reports
    metrics       the segmentation metrics of the literature, from pixel counts (also used by
                  ``training/``)

May import :mod:`..polygons`, :mod:`..models`, :mod:`..raster`, :mod:`..contract` and
:mod:`..errors`.
"""
