"""Tests with a real QGIS (pytest-qgis): the Processing provider, its algorithms, the plugin."""
