"""QGIS glue: registers the Processing provider; a "Map landslides" menu entry and button."""

from __future__ import annotations

from typing import Any

from qgis.core import Qgis, QgsApplication, QgsMessageLog

from .processing.dependencies import INSTALL_HINT, load_native_packages, missing_modules

PLUGIN_NAME = "Landslide Mapper"
MENU = "&Landslide Mapper"


class LandslideMapperPlugin:
    """The plugin object QGIS creates through ``classFactory``."""

    def __init__(self, iface: Any) -> None:
        self.iface = iface
        self.provider = None
        self.action = None

    def initProcessing(self) -> None:  # noqa: N802 (QGIS hook)
        """Register the provider (also called by qgis_process, which has no GUI)."""
        if self.provider is not None:
            return
        missing = missing_modules()
        if missing:
            self._report_missing(missing)
            return
        load_native_packages()
        from .processing.provider import LandslideMapperProvider

        self.provider = LandslideMapperProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802 (QGIS hook)
        self.initProcessing()
        if self.iface is None or self.provider is None:
            return
        from qgis.PyQt.QtGui import QIcon

        try:
            from qgis.PyQt.QtGui import QAction  # Qt6 (QGIS 4)
        except ImportError:
            from qgis.PyQt.QtWidgets import QAction  # Qt5

        from .processing.algorithm import icon_path

        self.action = QAction(QIcon(str(icon_path())), "Map landslides…", self.iface.mainWindow())
        self.action.setObjectName("landslideMapperMapLandslides")
        self.action.setToolTip("Map landslides on a raster with a segmentation model")
        self.action.triggered.connect(self.open_dialog)
        self.iface.addPluginToRasterMenu(MENU, self.action)
        self.iface.addToolBarIcon(self.action)

    def unload(self) -> None:
        if self.action is not None and self.iface is not None:
            self.iface.removePluginRasterMenu(MENU, self.action)
            self.iface.removeToolBarIcon(self.action)
            self.action.deleteLater()
            self.action = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None

    def open_dialog(self) -> None:
        """Open the "Map landslides" algorithm dialog."""
        import processing

        processing.execAlgorithmDialog("landslide_mapper:map_landslides")

    def _report_missing(self, missing: list[str]) -> None:
        message = (
            f"{PLUGIN_NAME} is not available: the Python package(s) {', '.join(missing)} "
            f"cannot be imported. {INSTALL_HINT}"
        )
        QgsMessageLog.logMessage(message, PLUGIN_NAME, Qgis.MessageLevel.Critical)
        if self.iface is not None:
            try:
                self.iface.messageBar().pushMessage(
                    PLUGIN_NAME, message, Qgis.MessageLevel.Critical, 0
                )
            except Exception:  # a stub iface (tests, headless) may lack a message bar
                pass
