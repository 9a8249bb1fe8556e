"""Landslide Mapper: QGIS plugin entry point (the engine lives in ``landslide_mapper.core``)."""


def classFactory(iface):  # noqa: N802 (name fixed by QGIS)
    """Called by QGIS to create the plugin; the import is lazy so the engine loads without QGIS."""
    from .plugin import LandslideMapperPlugin

    return LandslideMapperPlugin(iface)
