"""QGIS glue: the Processing provider; "Map landslides" and "Install Python packages" entries.

The provider registers even when the engine's Python packages are missing, so the installer
(``landslide_mapper:install_dependencies``) and every dialog and help text are there; a message
bar with an install button says what is missing.
"""

from __future__ import annotations

from html import escape
from typing import Any

from qgis.core import Qgis, QgsApplication, QgsMessageLog

from .processing.dependencies import (
    INSTALL_HINT,
    load_native_packages,
    missing_modules,
    use_deps_folder,
)

PLUGIN_NAME = "Landslide Mapper"
MENU = "&Landslide Mapper"
INSTALL_ALGORITHM = "landslide_mapper:install_dependencies"


class LandslideMapperPlugin:
    """The plugin object QGIS creates through ``classFactory``."""

    def __init__(self, iface: Any) -> None:
        self.iface = iface
        self.provider = None
        self.action = None
        self.install_action = None
        self.missing_item = None

    def initProcessing(self) -> None:  # noqa: N802 (QGIS hook)
        """Register the provider (also called by qgis_process, which has no GUI)."""
        if self.provider is not None:
            return
        use_deps_folder(QgsApplication.qgisSettingsDirPath())  # packages the installer put there
        missing = missing_modules()
        if missing:
            self._report_missing(missing)
        else:
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
        self.install_action = QAction("Install Python packages…", self.iface.mainWindow())
        self.install_action.setObjectName("landslideMapperInstallDependencies")
        self.install_action.setToolTip(
            "Install the Python packages Landslide Mapper needs into the QGIS profile")
        self.install_action.triggered.connect(self.open_installer)
        self.iface.addPluginToMenu(MENU, self.install_action)
        missing = missing_modules()
        if missing:
            self._show_missing_bar(missing)

    def unload(self) -> None:
        if self.action is not None and self.iface is not None:
            self.iface.removePluginRasterMenu(MENU, self.action)
            self.iface.removeToolBarIcon(self.action)
            self.action.deleteLater()
            self.action = None
        if self.install_action is not None and self.iface is not None:
            self.iface.removePluginMenu(MENU, self.install_action)
            self.install_action.deleteLater()
            self.install_action = None
        self._close_missing_bar()
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None

    def open_dialog(self) -> None:
        """Open the "Map landslides" algorithm dialog."""
        import processing

        processing.execAlgorithmDialog("landslide_mapper:map_landslides")

    def open_installer(self) -> None:
        """Open the "Install Python packages" dialog; drop the warning once nothing is missing."""
        import processing

        processing.execAlgorithmDialog(INSTALL_ALGORITHM)
        if not missing_modules():
            self._close_missing_bar()

    def _report_missing(self, missing: list[str]) -> None:
        QgsMessageLog.logMessage(missing_message(missing), PLUGIN_NAME,
                                 Qgis.MessageLevel.Critical)

    def _show_missing_bar(self, missing: list[str]) -> None:
        """A red message bar with an install button; the text is a plain-text, word-wrapped
        label (the bar's own text box is rich text two lines high), so it is shown whole."""
        try:
            from qgis.PyQt.QtCore import Qt
            from qgis.PyQt.QtWidgets import QLabel, QPushButton, QSizePolicy

            bar = self.iface.messageBar()
            item = bar.createMessage(PLUGIN_NAME, "")
            label = QLabel(bar_message(missing), item)
            label.setObjectName("landslideMapperMissingText")
            label.setTextFormat(Qt.TextFormat.PlainText)
            label.setWordWrap(True)
            label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
            item.layout().addWidget(label, 3)  # the text gets most of the width
            button = QPushButton("Install Python packages…", item)
            button.setObjectName("landslideMapperInstallButton")
            button.setToolTip(missing_message(missing))
            button.clicked.connect(self.open_installer)
            item.layout().addWidget(button)
            self.missing_item = bar.pushWidget(item, Qgis.MessageLevel.Critical, 0)
        except Exception:  # a minimal iface (stubs, other front ends): the plain message
            self.missing_item = None
            try:
                self.iface.messageBar().pushMessage(
                    PLUGIN_NAME, escape(missing_message(missing)), Qgis.MessageLevel.Critical, 0)
            except Exception:  # no message bar at all (headless)
                pass

    def _close_missing_bar(self) -> None:
        if self.missing_item is not None and self.iface is not None:
            try:
                self.iface.messageBar().popWidget(self.missing_item)
            except (RuntimeError, AttributeError):  # already closed by the user
                pass
        self.missing_item = None


def bar_message(missing: list[str]) -> str:
    """The message bar's text (plain text, wrapped): what is missing and what to do."""
    return (f"the Python packages {', '.join(missing)} are missing. Install them with the "
            "button (also in Plugins > Landslide Mapper); QGIS's own packages stay as they are.")


def missing_message(missing: list[str]) -> str:
    """The plain-text message naming the missing packages and the way to install them."""
    return (f"{PLUGIN_NAME} needs the Python package(s) {', '.join(missing)}, which cannot be "
            f"imported. {INSTALL_HINT}")
