"""Algorithm ``landslide_mapper:install_dependencies``: install the engine's Python packages.

Runs pip with QGIS's own Python into ``<profile>/python/landslide_mapper_deps/pyX.Y`` (see
:mod:`.package_installer` and ``docs/installer.md``), installing exactly the versions and sha256
hashes of the lock file for this platform, Python and onnxruntime build (:mod:`.locks`); pip's
log goes to the Processing log, cancel stops pip, a failure (a file whose hash differs from the
lock included) is one paragraph naming the cause and the next step. A second run finds the
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
from .dependencies import (
    BATCH_MODULES,
    REQUIRED_MODULES,
    deps_dir,
    load_native_packages,
    missing_modules,
    use_deps_folder,
)
from .host_python import Host, current_host, find_host_python
from .locks import find_lock, host_distributions, platform_key
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
    LOCK = "LOCK"

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
            "shapely, fiona, pyproj, dask for many rasters at once, matplotlib for the report) "
            "into a folder of your QGIS profile "
            "(<tt>python/landslide_mapper_deps</tt>). QGIS's own packages, such as its numpy "
            "and GDAL, are never replaced. Run it once after installing the plugin; no restart "
            "is needed. Running it again only reports what is installed.</p>"
            "<p><b>onnxruntime</b>: the GPU build where an NVIDIA GPU and its driver are "
            "present, the CPU build otherwise; the log says which and why.</p>"
            "<p>Only the exact versions listed in the plugin's lock file for this platform and "
            "Python are installed, each checked against its sha256 hash: a file that differs "
            "(changed, rebuilt, or served by a mirror in its place) is refused.</p>"
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
            QgsProcessingParameterFile(self.LOCK, tr("Lock file"), behavior=FILE,
                                       extension="txt", optional=True),
            "A lock file (exact versions and sha256 hashes) to install instead of the plugin's "
            "own for this platform and Python, e.g. one made with the plugin's "
            "scripts/lock_requirements.py for a platform it does not ship.", advanced=True,
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
        lock, gpu, reason = self._lock(parameters, context, host, gpu, reason, runtime)
        training = self.parameterAsBoolean(parameters, self.TRAINING, context)
        training_lock = _found_lock(host, "training") if training else None  # before any change
        python = self.parameterAsFile(parameters, self.PYTHON, context).strip()
        numpy_version = _qgis_numpy()
        plan = InstallPlan(
            python=[python] if python else _host_python(host),
            target=deps_dir(profile, host.version_text),
            requirements=read_requirements(gpu=gpu, host_numpy=numpy_version), host=host,
            lock=lock, numpy_version=numpy_version, wheels=wheels, index_url=index_url,
            gpu_reason=reason, host_packages=host_distributions([deps_dir(profile).parent]),
            env=pip_environment(host.environ, isolated=bool(wheels or index_url)),
        )
        build = "CPU build" if plan.runtime == "onnxruntime" else "GPU build (onnxruntime-gpu)"
        feedback.pushInfo(f"onnxruntime: {build} ({reason}).")
        feedback.pushInfo(f"QGIS's Python {host.version_text}: {' '.join(plan.python)}; "
                          f"packages go to {plan.target}; lock file {lock}.")
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
        if training_lock is not None:
            from .training_env import install_training_env

            try:
                results[self.TRAINING_PYTHON] = str(install_training_env(
                    plan, profile, training_lock, log=log, is_canceled=is_canceled,
                    reinstall=reinstall))
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
        missing = missing_modules(REQUIRED_MODULES + BATCH_MODULES)
        if missing:
            feedback.reportError(
                f"Still not importable in this QGIS session: {', '.join(missing)} (package "
                f"folder {folder}). Restart QGIS; if they are still missing, run the installer "
                "again with 'Reinstall even if up to date'.")
        else:
            feedback.pushInfo("The Landslide Mapper algorithms are ready to use.")
        return {}


    def _lock(self, parameters: dict[str, Any], context: QgsProcessingContext, host: Host,
              gpu: bool, reason: str, runtime: str) -> tuple[Path, bool, str]:
        """The lock file to install (given, or the plugin's for this host), and the build."""
        if not is_unset(parameters, self.LOCK):
            lock = Path(self.parameterAsFile(parameters, self.LOCK, context))
            if not lock.is_file():
                raise QgsProcessingException(
                    f"LOCK: expected a lock file, found {str(lock)!r} (no such file).")
            return lock, gpu, f"{reason}; lock file given"
        if gpu and runtime == "auto":
            try:
                return _found_lock(host, "gpu", quiet=True), gpu, reason
            except LookupError:  # no onnxruntime-gpu lock for this host: the CPU build serves
                reason += "; no lock file of onnxruntime-gpu for this Python, so the CPU build"
                gpu = False
        return _found_lock(host, "gpu" if gpu else "cpu"), gpu, reason


def _found_lock(host: Host, variant: str, quiet: bool = False) -> Path:
    try:
        return find_lock(platform_key(host.platform, host.machine), host.version_text, variant)
    except LookupError as exc:
        if quiet:
            raise
        raise QgsProcessingException(str(exc)) from exc


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
