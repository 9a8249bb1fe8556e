"""QGIS Processing glue: the provider and one module per algorithm, thin over ``core``.

``provider.py`` registers the algorithms; ``algorithm.py`` holds what they share (parameters ->
core call -> outputs, progress and cancel bridged to ``QgsProcessingFeedback``); ``styling.py``
styles the outputs; ``dependencies.py`` checks and loads the engine's compiled packages. Modules
here import ``landslide_mapper.core`` and QGIS; ``core`` never imports them.
"""
