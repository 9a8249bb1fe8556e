"""The ``landslide-mapper`` command: the engine (:mod:`landslide_mapper.core`) without QGIS.

One module per command, or per close family of commands; what they share (path types, common
options, the progress bar and Ctrl-C plumbing) lives once in :mod:`.options`::

    main  ->  map, vectorize, models, prepare, loop  ->  options  ->  core

The commands import :mod:`.options` and :mod:`landslide_mapper.core`, never each other or
:mod:`.main`; :mod:`.main` only gathers them into the command group (entry point
``landslide_mapper.cli.main:main``).
"""
