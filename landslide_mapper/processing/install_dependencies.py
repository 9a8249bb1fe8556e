"""Algorithm ``landslide_mapper:install_dependencies``: install the engine's Python packages.

Runs pip with QGIS's own Python into ``<profile>/python/landslide_mapper_deps/pyX.Y`` (see
:mod:`.package_installer` and ``docs/installer.md``); pip's log goes to the Processing log, cancel
stops pip, a failure is one paragraph naming the cause and the next step. A second run finds the
install up to date and only says what is installed. Optional: the training packages (PyTorch,
segmentation-models-pytorch) into their own environment (:mod:`.training_env`). This algorithm
never needs the engine's packages itself, so it runs when they are all missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsApplication,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterString,
)

from ..core.errors import CancelledError
from .algorithm import (
    FILE,
    LandslideMapperAlgorithm,
    feedback_callbacks,
    is_unset,
    text_enum,
    tr,
    with_help,
)
from .dependencies import deps_dir, load_native_packages, missing_modules, use_deps_folder
from .host_python import current_host, find_host_python
from .package_installer import (
    InstallError,
    InstallPlan,
    describe,
    install,
    nvidia_gpu,
    pip_environment,
    read_requirements,
    up_to_date,
)

try:
    from qgis.core import Qgis

    FOLDER = Qgis.ProcessingFileParameterBehavior.Folder
except AttributeError:  # QGIS < 3.36
    FOLDER = QgsProcessingParameterFile.Folder

RUNTIMES = ("auto", "cpu", "gpu")


class InstallDependenciesAlgorithm(LandslideMapperAlgorithm):
    """Installs rasterio, onnxruntime, onnx, shapely, fiona and pyproj for the plugin."""

    needs_engine = False

    WHEELS = "WHEELS"
    INDEX_URL = "INDEX_URL"
    RUNTIME = "RUNTIME"
    PYTHON = "PYTHON"
    REINSTALL = "REINSTALL"
    TRAINING = "TRAINING"
    FOLDER = "FOLDER"
    ONNXRUNTIME = "ONNXRUNTIME"
    INSTALLED = "INSTALLED"
    TRAINING_PYTHON = "TRAINING_PYTHON"

    def name(self) -> str:
        return "install_dependencies"

    def displayName(self) -> str:
        return tr("Install Python packages")

    def tags(self) -> list[str]:
        return [tr(t) for t in ("install", "dependencies", "packages", "pip", "offline", "gpu",
                                "onnxruntime", "rasterio", "setup")]

    def shortHelpString(self) -> str:
        return tr(
            "<p>Installs the Python packages the plugin needs (rasterio, onnxruntime, onnx, "
            "shapely, fiona, pyproj) into a folder of your QGIS profile "
            "(<tt>python/landslide_mapper_deps</tt>). QGIS's own packages, such as its numpy "
            "and GDAL, are never replaced. Run it once after installing the plugin; no restart "
            "is needed. Running it again only reports what is installed.</p>"
            "<p><b>onnxruntime</b>: the GPU build where an NVIDIA GPU and its driver are "
            "present, the CPU build otherwise; the log says which and why.</p>"
            "<p><b>Offline wheel folder</b>: without internet, point it at a folder of wheel "
            "files (.whl) downloaded on another computer; only that folder is used. The "
            "plugin's README (Offline install) gives the download command.</p>"
            "<p><b>Training packages</b>: PyTorch and segmentation-models-pytorch (several GB) "
            "go into a separate environment in the profile, used by <i>Train landslide "
            "model</i>; mapping does not need them.</p>"
            "<p>If the install fails (no network, a proxy, no pip, no package for this Python), "
            "the message says why and what to do; QGIS and the plugin stay as they were.</p>"
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.addParameter(with_help(
            QgsProcessingParameterFile(self.WHEELS, tr("Offline wheel folder"), behavior=FOLDER,
                                       optional=True),
            "A folder of .whl files to install from, without internet (pip --no-index "
            "--find-links). Leave empty to download from the package index.",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterBoolean(
                self.TRAINING, tr("Also install the training packages (PyTorch, several GB)"),
                defaultValue=False),
            "Installs PyTorch and segmentation-models-pytorch into a separate environment in "
            "the QGIS profile, for Train landslide model.",
        ))
        self.addParameter(with_help(
            text_enum(self.RUNTIME, tr("onnxruntime build"), RUNTIMES),
            "auto: the GPU build (onnxruntime-gpu) where an NVIDIA GPU and driver are present, "
            "else the CPU build; cpu or gpu choose yourself.", advanced=True,
        ))
        self.addParameter(with_help(
            QgsProcessingParameterString(self.INDEX_URL, tr("Package index URL"), optional=True),
            "A package index (mirror) to use instead of pip's configured one, e.g. "
            "https://pypi.org/simple.", advanced=True,
        ))
        self.addParameter(with_help(
            QgsProcessingParameterFile(self.PYTHON, tr("Python interpreter"), behavior=FILE,
                                       optional=True),
            "The Python executable of this QGIS, when the installer cannot find it itself "
            "(same Python version as QGIS).", advanced=True,
        ))
        self.addParameter(with_help(
            QgsProcessingParameterBoolean(self.REINSTALL, tr("Reinstall even if up to date"),
                                          defaultValue=False),
            "Install again even when the packages are already installed.", advanced=True,
        ))
        self.addOutput(QgsProcessingOutputString(self.FOLDER, tr("Package folder")))
        self.addOutput(QgsProcessingOutputString(self.ONNXRUNTIME, tr("onnxruntime build")))
        self.addOutput(QgsProcessingOutputString(self.INSTALLED, tr("Installed packages")))
        self.addOutput(QgsProcessingOutputString(self.TRAINING_PYTHON,
                                                 tr("Training environment's Python")))

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        progress, is_canceled, log = feedback_callbacks(feedback)
        host = current_host()
        profile = Path(QgsApplication.qgisSettingsDirPath())
        wheels = None
        if not is_unset(parameters, self.WHEELS):
            wheels = Path(self.parameterAsFile(parameters, self.WHEELS, context))
            if not wheels.is_dir() or not any(wheels.glob("*.whl")):
                raise QgsProcessingException(
                    f"WHEELS: expected a folder holding .whl files, found {str(wheels)!r} "
                    f"({'no .whl files in it' if wheels.is_dir() else 'no such folder'}).")
        index_url = self.parameterAsString(parameters, self.INDEX_URL, context).strip() or None
        runtime = self.enum_text(parameters, self.RUNTIME, context)
        if runtime == "auto":
            gpu, reason = nvidia_gpu(host.platform)
        else:
            gpu, reason = runtime == "gpu", f"onnxruntime build chosen: {runtime}"
        feedback.pushInfo(f"onnxruntime: {'GPU build (onnxruntime-gpu)' if gpu else 'CPU build'}"
                          f" ({reason}).")
        python = self.parameterAsFile(parameters, self.PYTHON, context).strip()
        numpy_version = _qgis_numpy()
        plan = InstallPlan(
            python=[python] if python else _host_python(host),
            target=deps_dir(profile, host.version_text),
            requirements=read_requirements(gpu=gpu, host_numpy=numpy_version), host=host,
            numpy_version=numpy_version, wheels=wheels, index_url=index_url, gpu_reason=reason,
            env=pip_environment(host.environ, isolated=bool(wheels or index_url)),
        )
        feedback.pushInfo(f"QGIS's Python {host.version_text}: {' '.join(plan.python)}; "
                          f"packages go to {plan.target}.")
        results = {self.FOLDER: str(plan.target), self.ONNXRUNTIME: plan.runtime,
                   self.TRAINING_PYTHON: ""}
        reinstall = self.parameterAsBoolean(parameters, self.REINSTALL, context)
        record = None if reinstall else up_to_date(plan)
        if record is not None:
            feedback.pushInfo(f"Already installed, nothing to do: {describe(record)}.")
        else:
            try:
                record = install(plan, log=log, progress=progress, is_canceled=is_canceled)
            except (InstallError, CancelledError) as exc:
                raise QgsProcessingException(str(exc)) from exc
            feedback.pushInfo(f"Installed: {describe(record)}.")
        results[self.INSTALLED] = describe(record)
        if self.parameterAsBoolean(parameters, self.TRAINING, context):
            from .training_env import install_training_env

            try:
                results[self.TRAINING_PYTHON] = str(install_training_env(
                    plan, profile, log=log, is_canceled=is_canceled, reinstall=reinstall))
            except (InstallError, CancelledError) as exc:
                raise QgsProcessingException(
                    f"The engine's packages are installed; the training packages are not: "
                    f"{exc}") from exc
        return results

    def postProcessAlgorithm(self, context: QgsProcessingContext,
                             feedback: QgsProcessingFeedback) -> dict[str, Any]:
        """Make the new packages usable in this QGIS session (main thread, after the run)."""
        folder = use_deps_folder(QgsApplication.qgisSettingsDirPath())
        load_native_packages()
        missing = missing_modules()
        if missing:
            feedback.reportError(
                f"Still not importable in this QGIS session: {', '.join(missing)} (package "
                f"folder {folder}). Restart QGIS; if they are still missing, run the installer "
                "again with 'Reinstall even if up to date'.")
        else:
            feedback.pushInfo("The Landslide Mapper algorithms are ready to use.")
        return {}


def _host_python(host) -> list[str]:
    try:
        return find_host_python(host)
    except LookupError as exc:
        raise QgsProcessingException(
            f"{exc} Give the Python executable of this QGIS in the 'Python interpreter' option "
            "(advanced parameters), then run the installer again. Nothing was changed.") from exc


def _qgis_numpy() -> str | None:
    """The numpy version QGIS's Python loads (pip is held to it), or None without numpy."""
    try:
        import numpy
    except ImportError:
        return None
    return numpy.__version__
