"""What every Landslide Mapper algorithm shares: group, icon, flags, and the bridge to the engine.

The algorithms are thin: they turn Processing parameters into plain Python values, call the engine
in :mod:`landslide_mapper.core`, and turn its results back into Processing outputs. This module
holds the pieces both algorithms need, so each behaves the same way from the toolbox, the batch
dialog, the modeler, ``processing.run`` and ``qgis_process``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

from qgis.core import (
    Qgis,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProperty,
    QgsRasterLayer,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from ..core.models.registry import resources_dir
from ..core.polygons import DEFAULT_MIN_PIXELS
from .dependencies import INSTALL_HINT, missing_modules
from .destinations import layer_destination

# Enum spellings moved into ``Qgis`` in later QGIS versions (and the old ones go with Qt6).
try:
    ADVANCED = Qgis.ProcessingParameterFlag.Advanced
    OPTIONAL = Qgis.ProcessingParameterFlag.Optional
except AttributeError:  # QGIS < 3.36
    ADVANCED = QgsProcessingParameterDefinition.FlagAdvanced
    OPTIONAL = QgsProcessingParameterDefinition.FlagOptional
try:
    INTEGER = Qgis.ProcessingNumberParameterType.Integer
    DOUBLE = Qgis.ProcessingNumberParameterType.Double
except AttributeError:  # QGIS < 3.36
    INTEGER = QgsProcessingParameterNumber.Integer
    DOUBLE = QgsProcessingParameterNumber.Double
try:
    FILE = Qgis.ProcessingFileParameterBehavior.File
except AttributeError:  # QGIS < 3.36
    FILE = QgsProcessingParameterFile.File
try:
    VECTOR_POLYGON = Qgis.ProcessingSourceType.VectorPolygon
except AttributeError:  # QGIS < 3.36
    VECTOR_POLYGON = QgsProcessing.TypeVectorPolygon

GROUP_ID = "landslide_mapping"


def icon_path() -> Path:
    """The plugin's SVG icon (inside the installed plugin, or beside the package in a checkout)."""
    return resources_dir() / "icons" / "landslide_mapper.svg"


def tr(text: str) -> str:
    return QCoreApplication.translate("LandslideMapper", text)


def with_help(param: QgsProcessingParameterDefinition, text: str, *, advanced: bool = False):
    """Attach the tooltip/help text to a parameter and mark expert options as advanced."""
    param.setHelp(tr(text))
    if advanced:
        param.setFlags(param.flags() | ADVANCED)
    return param


def text_enum(name: str, description: str, options: Sequence[str]) -> QgsProcessingParameterEnum:
    """A single-choice list whose value is the option's text (stable in saved models and scripts).

    Its first option is the default. The option's index is accepted too (see
    :meth:`LandslideMapperAlgorithm.checkParameterValues`), as older scripts pass it.
    """
    param = QgsProcessingParameterEnum(
        name, description, options=list(options), allowMultiple=False, defaultValue=options[0]
    )
    param.setUsesStaticStrings(True)
    return param


def is_unset(parameters: dict[str, Any], name: str) -> bool:
    """True when an optional parameter was left empty (absent, None or an empty string)."""
    value = parameters.get(name)
    if isinstance(value, QgsProperty):
        return False
    return value is None or (isinstance(value, str) and not value.strip())


class LandslideMapperAlgorithm(QgsProcessingAlgorithm):
    """Common base: group, icon, and helpers that turn parameters into engine arguments.

    Subclasses keep no state on ``self`` during ``processAlgorithm`` (it runs on a worker thread
    and the same instance may serve several runs).
    """

    needs_engine = True  # runs only with the engine's packages (rasterio, onnxruntime, ...)

    def group(self) -> str:
        return tr("Landslide mapping")

    def groupId(self) -> str:
        return GROUP_ID

    def icon(self) -> QIcon:
        return QIcon(str(icon_path()))

    def tr(self, text: str) -> str:
        return tr(text)

    def createInstance(self) -> LandslideMapperAlgorithm:
        return type(self)()

    def checkParameterValues(
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> tuple[bool, str]:
        """Let scripts leave out an output that has a default (a temporary GeoPackage).

        Refuses to run, with the way out, while the engine's Python packages are missing (the
        dialogs and help still open then).
        """
        if self.needs_engine:
            missing = missing_modules()
            if missing:
                return False, (
                    f"{self.displayName()} needs the Python package(s) {', '.join(missing)}, "
                    f"which cannot be imported. {INSTALL_HINT}"
                )
        checked = dict(parameters)
        for param in self.destinationParameterDefinitions():
            if is_unset(checked, param.name()) and param.defaultValue():
                checked[param.name()] = param.defaultValue()
        for param in self.parameterDefinitions():
            if isinstance(param, QgsProcessingParameterEnum) and param.usesStaticStrings():
                value = checked.get(param.name())
                index = _as_index(value)
                if index is not None and 0 <= index < len(param.options()):
                    checked[param.name()] = param.options()[index]
        return super().checkParameterValues(checked, context)

    def enum_text(
        self, parameters: dict[str, Any], name: str, context: QgsProcessingContext
    ) -> str:
        """The chosen option's text of a :func:`text_enum`, given as text or as an index."""
        param = self.parameterDefinition(name)
        options = param.options()
        text = self.parameterAsString(parameters, name, context).strip()
        index = _as_index(text)
        if index is not None:
            if not 0 <= index < len(options):
                raise QgsProcessingException(
                    f"{name}: option {index} does not exist; expected one of "
                    f"{', '.join(options)} (or 0 to {len(options) - 1})."
                )
            return options[index]
        if text not in options:
            raise QgsProcessingException(
                f"{name}: expected one of {', '.join(options)}, found {text!r}."
            )
        return text

    # --- parameters -> plain values -------------------------------------------------------

    def raster_path(
        self, parameters: dict[str, Any], name: str, context: QgsProcessingContext
    ) -> str | None:
        """The file behind a raster layer parameter; None when an optional one is left empty.

        The engine reads rasters with rasterio, so only layers GDAL opens from a file (or a
        GDAL virtual file system path) can be used; anything else is refused with a hint.
        """
        if is_unset(parameters, name):
            return None
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None:
            raise QgsProcessingException(
                f"{name}: expected a raster layer or a raster file, found "
                f"{parameters.get(name)!r}, which QGIS cannot open as a raster. Choose a "
                "GeoTIFF (or another file GDAL reads)."
            )
        return layer_file(layer, name)

    def optional_number(
        self,
        parameters: dict[str, Any],
        name: str,
        context: QgsProcessingContext,
        *,
        integer: bool,
        unset_below: float,
    ) -> float | int | None:
        """An optional number; None ("from the model") when empty or below ``unset_below``.

        Sentinels (0 or -1) let ``qgis_process`` and batch users say "from the model" explicitly.
        """
        if is_unset(parameters, name):
            return None
        if integer:
            value: float | int = self.parameterAsInt(parameters, name, context)
        else:
            value = self.parameterAsDouble(parameters, name, context)
        return None if value < unset_below else value

    def output_path(
        self, parameters: dict[str, Any], name: str, context: QgsProcessingContext
    ) -> str | None:
        """A file destination's path; None when an optional output is skipped.

        The engine writes files itself (under a temporary name, renamed when complete), so
        database or memory destinations are refused; a GeoPackage layer ("Save to GeoPackage…")
        comes back as ``file.gpkg|layername=NAME`` (:mod:`.destinations`).
        """
        path = self.parameterAsOutputLayer(parameters, name, context)
        if not path:
            return None
        path = layer_destination(path, context)
        if path.startswith(("memory:", "ogr:", "postgres:", "postgis:", "spatialite:")):
            raise QgsProcessingException(
                f"{name}: expected a file path (GeoTIFF for rasters, GeoPackage for polygons), "
                f"found {path!r}. Save the output to a file."
            )
        return path


    def add_polygon_parameters(self) -> None:
        """MIN_AREA_M2, SIMPLIFY_M and (advanced) FILL_HOLES_M2: the polygon clean-up options."""
        self.addParameter(with_help(
            QgsProcessingParameterNumber(
                "MIN_AREA_M2",
                tr("Minimum landslide area (m², empty = drop specks of under {n} pixels)").format(
                    n=DEFAULT_MIN_PIXELS),
                type=DOUBLE, defaultValue=None, optional=True, minValue=0.0,
            ),
            f"Polygons smaller than this area are dropped; 0 keeps all. Empty (the default): "
            f"specks are dropped, polygons of fewer than {DEFAULT_MIN_PIXELS} pixels "
            f"({DEFAULT_MIN_PIXELS * 100} m² at 10 m pixels, {DEFAULT_MIN_PIXELS * 0.25:g} m² at "
            "0.5 m).",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterNumber(
                "SIMPLIFY_M", tr("Simplify outlines (tolerance, m)"), type=DOUBLE,
                defaultValue=0.0, minValue=0.0,
            ),
            "Topology-preserving simplification of the polygon outlines; 0 keeps the pixel "
            "staircase edges. About half the pixel size gives smooth, faithful outlines.",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterNumber(
                "FILL_HOLES_M2", tr("Fill holes smaller than (m²)"), type=DOUBLE,
                defaultValue=0.0, minValue=0.0,
            ),
            "Holes inside a landslide polygon smaller than this area are filled (0 keeps all).",
            advanced=True,
        ))

    def add_report_parameter(self, name: str) -> None:
        """``name``: the optional HTML inventory report of a mapping run (core.report)."""
        self.addParameter(with_help(
            QgsProcessingParameterFileDestination(
                name, tr("Inventory report (HTML)"), fileFilter="HTML files (*.html)",
                optional=True, createByDefault=False),
            "One offline HTML file: overview map, count and total area, area-frequency power "
            "law, largest landslides, slope/elevation (with a DEM), the model's scores.",
        ))

    def polygon_options(
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> dict[str, float | None]:
        """The engine's keyword arguments for the options of :meth:`add_polygon_parameters`
        (``min_area_m2`` None: the engine's speck rule)."""
        return {
            "min_area_m2": self.optional_number(parameters, "MIN_AREA_M2", context,
                                                integer=False, unset_below=0.0),
            "fill_holes_m2": self.parameterAsDouble(parameters, "FILL_HOLES_M2", context),
            "simplify_m": self.parameterAsDouble(parameters, "SIMPLIFY_M", context),
        }


    def add_slope_parameters(self) -> None:
        """SLOPE (a ready slope raster) and MIN_SLOPE (the minimum mean slope of a polygon), both
        advanced; with the DEM parameter they give the polygons' terrain attributes."""
        self.addParameter(with_help(
            QgsProcessingParameterRasterLayer(
                "SLOPE", tr("Slope raster (degrees; instead of one derived from the DEM)"),
                optional=True),
            "A ready slope raster in degrees, any CRS and resolution, used instead of the slope "
            "derived from the DEM (for a model's slope band too) for the polygons' slope_mean "
            "and slope_max.",
            advanced=True,
        ))
        self.addParameter(with_help(
            QgsProcessingParameterNumber(
                "MIN_SLOPE", tr("Minimum mean slope (degrees)"), type=DOUBLE, defaultValue=0.0,
                minValue=0.0, maxValue=90.0),
            "Polygons whose mean slope is under this many degrees are dropped (flat fields, "
            "roads, river bars); the log says how many and how much area. Needs a DEM or a "
            "slope raster. 0 (the default) keeps all.",
            advanced=True,
        ))

    def slope_options(self, parameters: dict[str, Any],
                      context: QgsProcessingContext) -> dict[str, Any]:
        """The engine's keyword arguments for :meth:`add_slope_parameters`."""
        return {"slope": self.raster_path(parameters, "SLOPE", context),
                "min_slope_deg": self.parameterAsDouble(parameters, "MIN_SLOPE", context)}


def _as_index(value: Any) -> int | None:
    """An option index given as a number or as digits; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def layer_file(layer: QgsRasterLayer, name: str) -> str:
    """The file (or GDAL virtual path) behind a raster layer, or a clear refusal."""
    if layer.providerType() != "gdal":
        raise QgsProcessingException(
            f"{name}: layer '{layer.name()}' comes from the '{layer.providerType()}' data "
            "provider; expected a raster read from a file by GDAL (e.g. a GeoTIFF). Export the "
            "layer to a GeoTIFF (Raster > Conversion > Translate) and use that file."
        )
    source = layer.source()
    path = source.split("|", 1)[0]
    if not (Path(path).is_file() or path.startswith("/vsi")):
        raise QgsProcessingException(
            f"{name}: layer '{layer.name()}' is not backed by a single raster file (source "
            f"{source!r}). Export the layer to a GeoTIFF (Raster > Conversion > Translate) "
            "and use that file."
        )
    return path


def feedback_callbacks(
    feedback: QgsProcessingFeedback | None,
) -> tuple[Callable[[float], None], Callable[[], bool], Callable[[str], None]]:
    """The engine's plain callables (progress fraction, cancelled?, log) over a feedback."""
    if feedback is None:
        feedback = QgsProcessingFeedback()

    def progress(fraction: float) -> None:
        feedback.setProgress(100.0 * max(0.0, min(1.0, float(fraction))))

    def is_canceled() -> bool:
        return feedback.isCanceled()

    def log(message: str) -> None:
        feedback.pushInfo(str(message))

    return progress, is_canceled, log
