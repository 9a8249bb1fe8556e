"""The Processing provider ``landslide_mapper``: the toolbox group holding the algorithms."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithm import icon_path, tr
from .evaluate_landslides import EvaluateLandslidesAlgorithm
from .export_training_chips import ExportTrainingChipsAlgorithm
from .install_dependencies import InstallDependenciesAlgorithm
from .map_landslides import MapLandslidesAlgorithm
from .map_many import MapManyAlgorithm
from .prepare_sentinel2_stack import PrepareSentinel2StackAlgorithm
from .train_model import TrainModelAlgorithm
from .vectorize_mask import VectorizeMaskAlgorithm

PROVIDER_ID = "landslide_mapper"


class LandslideMapperProvider(QgsProcessingProvider):
    """Provides ``map_landslides`` and ``vectorize_mask``; the engine writes the output files."""

    def id(self) -> str:
        return PROVIDER_ID

    def name(self) -> str:
        return tr("Landslide Mapper")

    def longName(self) -> str:
        return tr("Landslide Mapper: landslide mapping with segmentation models")

    def icon(self) -> QIcon:
        return QIcon(str(icon_path()))

    def svgIconPath(self) -> str:
        return str(icon_path())

    def loadAlgorithms(self) -> None:
        self.addAlgorithm(MapLandslidesAlgorithm())
        self.addAlgorithm(MapManyAlgorithm())
        self.addAlgorithm(VectorizeMaskAlgorithm())
        self.addAlgorithm(PrepareSentinel2StackAlgorithm())
        self.addAlgorithm(ExportTrainingChipsAlgorithm())
        self.addAlgorithm(TrainModelAlgorithm())
        self.addAlgorithm(EvaluateLandslidesAlgorithm())
        self.addAlgorithm(InstallDependenciesAlgorithm())

    # The engine writes GeoTIFF rasters and GeoPackage (or another OGR file format) vectors itself.
    def supportsNonFileBasedOutput(self) -> bool:
        return False

    def defaultRasterFileExtension(self) -> str:
        return "tif"

    def defaultVectorFileExtension(self, hasGeometry: bool = True) -> str:
        return "gpkg"

    def supportedOutputRasterLayerExtensions(self) -> list[str]:
        return ["tif"]

    def supportedOutputVectorLayerExtensions(self) -> list[str]:
        try:
            from ..core.polygons.vector_io import (
                DRIVERS,  # the formats the engine writes, GeoPackage first
            )
        except ImportError:  # fiona/shapely not installed yet: GeoPackage until they are
            return ["gpkg"]
        others = sorted(s.lstrip(".") for s in DRIVERS if s != ".gpkg")
        return ["gpkg", *others]
