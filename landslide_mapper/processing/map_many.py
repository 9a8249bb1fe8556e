"""Algorithm ``landslide_mapper:map_many``: many rasters + model -> one merged landslide inventory.

Runs the command line's batch code (:func:`landslide_mapper.core.batch.run.map_many`) on a local
Dask cluster, with the toolbox's progress bar and cancel button. Dask distributed is installed with
the engine's other packages ("Install Python packages"); without it the algorithm refuses with the
same hint as for them. The workers are Python processes where this process can start them (see
:func:`_worker_processes`), else threads of QGIS.
"""

from __future__ import annotations

import multiprocessing.spawn
import subprocess
import sys
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterCrs,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
)

from ..core.errors import LandslideMapperError
from .algorithm import (
    DOUBLE,
    FILE,
    INTEGER,
    LandslideMapperAlgorithm,
    feedback_callbacks,
    layer_file,
    text_enum,
    tr,
    with_help,
)
from .dependencies import BATCH_MODULES, INSTALL_HINT, REQUIRED_MODULES, missing_modules
from .host_python import VERSION_PROBE, _no_window
from .map_landslides import CUSTOM_MODEL, model_options, model_path
from .styling import style_on_completion

try:
    RASTER = QgsProcessing.SourceType.TypeRaster
except AttributeError:  # QGIS < 3.36
    RASTER = QgsProcessing.TypeRaster


class MapManyAlgorithm(LandslideMapperAlgorithm):
    """Maps every raster of a list into a folder and merges the polygons into one inventory."""

    INPUT = "INPUT"
    MODEL = "MODEL"
    MODEL_FILE = "MODEL_FILE"
    THRESHOLD = "THRESHOLD"
    WORKERS = "WORKERS"
    CRS = "CRS"
    FORCE = "FORCE"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    OUTPUT_POLYGONS = "OUTPUT_POLYGONS"
    OUTPUT_SUMMARY = "OUTPUT_SUMMARY"
    MAPPED = "MAPPED"
    FAILED = "FAILED"
    POLYGON_COUNT = "POLYGON_COUNT"

    def name(self) -> str:
        return "map_many"

    def displayName(self) -> str:
        return tr("Map landslides (many rasters)")

    def tags(self) -> list[str]:
        return [tr(t) for t in ("landslide", "batch", "many", "inventory", "dask", "region",
                                "mosaic", "segmentation")]

    def shortHelpString(self) -> str:
        return tr(
            "<p>Maps landslides on many rasters with one model (e.g. all Sentinel-2 scenes or "
            "UAV orthophotos of a region after an earthquake or a typhoon) and merges every "
            "landslide into <b>one inventory</b>: a GeoPackage layer whose <tt>source</tt> "
            "attribute names the raster each polygon came from.</p>"
            "<p>Each raster gets its own probability raster, mask and polygons in a sub-folder "
            "of the output folder, named after the raster. Rasters are mapped in parallel on a "
            "local Dask cluster sized to this computer's cores. A raster that cannot be mapped "
            "does not stop the others: the log and <tt>summary.csv</tt> say which failed and "
            "why. Running again into the same folder skips the rasters already mapped with the "
            "same settings (tick <i>Map again</i> to redo them).</p>"
            "<p>With a slope raster (advanced), the polygons get slope_mean and slope_max, and "
            "<i>Minimum mean slope</i> drops those on flat ground: <tt>summary.csv</tt> says "
            "how many and how much area for each raster.</p>"
            "<p>The inventory is in the CRS you choose, else the rasters' own CRS, or EPSG:4326 "
            "when they differ. The same run from a terminal, also on a cluster of machines: "
            "<tt>landslide-mapper batch RASTERS... --model MODEL --out-dir FOLDER</tt>.</p>"
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.addParameter(with_help(
            QgsProcessingParameterMultipleLayers(self.INPUT, tr("Input rasters"),
                                                 layerType=RASTER),
            "The rasters to map, each read from a file: all with the bands the model needs.",
        ))
        self.addParameter(with_help(
            text_enum(self.MODEL, tr("Model"), model_options()),
            "A bundled model, or 'Custom .onnx file…' to use the file given in 'Model file'. "
            "Scripts may also pass a bundled model's name or the path of an .onnx file.",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterFile(self.MODEL_FILE, tr("Model file (for 'Custom .onnx "
                                                          "file…')"), behavior=FILE,
                                       extension="onnx", optional=True),
            "An ONNX model with a Landslide Mapper contract. Used when Model is 'Custom .onnx "
            "file…' or not given.",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterNumber(self.THRESHOLD, tr("Probability threshold (empty = "
                                                           "model's default)"), type=DOUBLE,
                                         defaultValue=None, optional=True, minValue=-1.0,
                                         maxValue=1.0),
            "Pixels whose landslide probability is at least this value are mapped as "
            "landslide. Empty (or 0 / -1): the threshold recommended by the model.",
        ))
        self.add_polygon_parameters()
        self.addParameter(with_help(
            QgsProcessingParameterCrs(self.CRS, tr("Inventory CRS (empty = the rasters' own)"),
                                      optional=True),
            "CRS of the merged inventory. Empty: the rasters' CRS when they share one, else "
            "EPSG:4326. Areas are ground areas whatever the CRS.",
        ))
        self.add_slope_parameters()
        self.addParameter(with_help(
            QgsProcessingParameterNumber(self.WORKERS, tr("Parallel workers (0 = automatic)"),
                                         type=INTEGER, defaultValue=0, minValue=0),
            "How many rasters are mapped at the same time. 0: one per core, the model's "
            "threads shared out so the cores are not oversubscribed.",
            advanced=True,
        ))
        self.addParameter(with_help(
            QgsProcessingParameterBoolean(self.FORCE, tr("Map again rasters already mapped"),
                                          defaultValue=False),
            "Off: rasters whose outputs in the folder are complete for the same settings are "
            "skipped. On: every raster is mapped again.",
            advanced=True,
        ))
        self.addParameter(with_help(
            QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, tr("Output folder")),
            "One sub-folder per raster (probability.tif, mask.tif, landslides.gpkg), and the "
            "merged landslides.gpkg and summary.csv.",
        ))
        self.addOutput(QgsProcessingOutputVectorLayer(self.OUTPUT_POLYGONS,
                                                      tr("Landslide inventory")))
        self.addOutput(QgsProcessingOutputFile(self.OUTPUT_SUMMARY, tr("Summary (CSV)")))
        self.addOutput(QgsProcessingOutputNumber(self.MAPPED, tr("Rasters mapped")))
        self.addOutput(QgsProcessingOutputNumber(self.FAILED, tr("Rasters failed")))
        self.addOutput(QgsProcessingOutputNumber(self.POLYGON_COUNT, tr("Number of polygons")))

    def checkParameterValues(self, parameters: dict[str, Any],
                             context: QgsProcessingContext) -> tuple[bool, str]:
        """Accept a model name or .onnx path for MODEL too, and check the model can be found."""
        missing = missing_modules(REQUIRED_MODULES + BATCH_MODULES)
        if missing:
            return False, _missing_message(self.displayName(), ", ".join(missing))
        try:
            self._model(parameters, context)
        except (LandslideMapperError, QgsProcessingException) as exc:
            return False, str(exc)
        checked = dict(parameters)
        checked[self.MODEL] = CUSTOM_MODEL  # validated above; the enum only knows its options
        return super().checkParameterValues(checked, context)

    def _model(self, parameters: dict[str, Any], context: QgsProcessingContext) -> Path:
        return model_path(parameters, self.parameterAsString(parameters, self.MODEL_FILE, context),
                          self.parameterAsString(parameters, self.MODEL, context))

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        try:
            import distributed  # noqa: F401  (imported by the batch code only when it runs)

            from ..core.batch.run import map_many
        except ImportError as exc:
            raise QgsProcessingException(
                _missing_message(self.displayName(), f"dask, distributed ({exc})")) from exc

        layers = self.parameterAsLayerList(parameters, self.INPUT, context)
        if not layers:
            raise QgsProcessingException("INPUT: expected at least one raster, found none.")
        rasters = [layer_file(layer, self.INPUT) for layer in layers]
        out_dir = self.parameterAsString(parameters, self.OUTPUT_FOLDER, context)
        crs = self.parameterAsCrs(parameters, self.CRS, context)
        workers = self.parameterAsInt(parameters, self.WORKERS, context) or None
        threshold = self.optional_number(parameters, self.THRESHOLD, context, integer=False,
                                         unset_below=1e-9)
        progress, is_canceled, log = feedback_callbacks(feedback)
        processes, why = _worker_processes()
        feedback.pushInfo(f"Dask workers: {why}.")
        try:
            model = self._model(parameters, context)
            result = map_many(
                rasters, str(model), out_dir, workers=workers,
                crs=crs.toWkt() if crs.isValid() else None,
                force=self.parameterAsBool(parameters, self.FORCE, context),
                processes=processes, threshold=threshold,
                **self.polygon_options(parameters, context),
                **self.slope_options(parameters, context),
                progress=progress, is_canceled=is_canceled, log=log)
        except LandslideMapperError as exc:
            raise QgsProcessingException(str(exc)) from exc
        failed = [o for o in result.outcomes if not o.ok]
        for o in failed:
            feedback.reportError(f"{o.source}: {o.status}: {o.error}", fatalError=False)
        if result.inventory_path is None:
            raise QgsProcessingException(
                f"INPUT: none of the {len(rasters)} rasters could be mapped; see the log and "
                f"{result.summary_path}.")
        inventory = str(result.inventory_path)
        if context.project() is not None:
            context.addLayerToLoadOnCompletion(inventory, QgsProcessingContext.LayerDetails(
                tr("Landslide inventory"), context.project(), self.OUTPUT_POLYGONS))
            style_on_completion(context, inventory, "polygons")
        feedback.pushInfo(f"{len(result.outcomes) - len(failed)} of {len(result.outcomes)} "
                          f"rasters mapped; {result.inventory_count} landslide polygons in "
                          f"{inventory} ({result.inventory_crs}).")
        return {self.OUTPUT_FOLDER: out_dir, self.OUTPUT_POLYGONS: inventory,
                self.OUTPUT_SUMMARY: str(result.summary_path),
                self.MAPPED: len(result.outcomes) - len(failed), self.FAILED: len(failed),
                self.POLYGON_COUNT: int(result.inventory_count)}


def _missing_message(name: str, missing: str) -> str:
    return f"{name} needs the Python package(s) {missing}, which cannot be imported. {INSTALL_HINT}"


def _worker_processes() -> tuple[bool, str]:
    """Whether the local workers can be Python processes, and why (one phrase for the log).

    Worker processes are started by multiprocessing's spawn, running its executable
    (``sys.executable``). In a plain Python that is the interpreter itself. In a program that
    embeds Python it is whatever Python derived: QGIS on Windows reports its own executable
    (``qgis-bin.exe``, which would start another QGIS); ``qgis_process.bin`` on Linux reports
    the ``python3`` found on ``PATH`` (``/usr/bin/python3`` for Debian's QGIS), which is QGIS's
    Python only when nothing else comes first on ``PATH``. So the executable must be a Python
    that reports this very version; else the workers run as threads of QGIS.
    """
    executable = multiprocessing.spawn.get_executable()
    if isinstance(executable, bytes):
        executable = executable.decode()
    if not executable or not Path(executable).name.lower().startswith("python"):
        return False, (f"threads of this process ({executable or 'no executable'} is not a "
                       "Python that can start worker processes)")
    want = f"{sys.version_info[0]}.{sys.version_info[1]}"
    try:
        done = subprocess.run([executable, "-c", VERSION_PROBE], capture_output=True, text=True,
                              timeout=60, **_no_window())
        found = done.stdout.strip() if done.returncode == 0 else "not starting"
    except (OSError, subprocess.SubprocessError):
        found = "not starting"
    if found != want:
        return False, (f"threads of this process ({executable} is Python {found}, not this "
                       f"process's {want})")
    return True, f"separate Python processes ({executable}, Python {want})"
