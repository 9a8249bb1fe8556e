"""Algorithm ``landslide_mapper:prepare_sentinel2_stack``: Sentinel-2 product + DEM -> stack."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputString,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingUtils,
    QgsVectorLayer,
    QgsWkbTypes,
)

from ..core.errors import LandslideMapperError
from ..core.models.registry import bundled_models, resolve_model
from .algorithm import (
    DOUBLE,
    FILE,
    LandslideMapperAlgorithm,
    feedback_callbacks,
    is_unset,
    text_enum,
    tr,
    with_help,
)

EVERY_BAND = "Every band found (+ slope and DEM when a DEM is given)"
L4S_ORDER = "Landslide4Sense order (B1–B12, slope, DEM)"


def band_choices() -> list[str]:
    """The MODEL choices: every band, the L4S order, then each bundled model by name."""
    return [EVERY_BAND, L4S_ORDER] + [m.name for m in bundled_models()]


class PrepareSentinel2StackAlgorithm(LandslideMapperAlgorithm):
    """Stacks a Sentinel-2 product (and a DEM) into the bands a model asks for."""

    INPUT = "INPUT"
    DEM = "DEM"
    SLOPE = "SLOPE"
    AOI = "AOI"
    MODEL = "MODEL"
    B10_FILL = "B10_FILL"
    OUTPUT = "OUTPUT"
    BANDS = "BANDS"

    def name(self) -> str:
        return "prepare_sentinel2_stack"

    def displayName(self) -> str:
        return tr("Prepare Sentinel-2 stack")

    def tags(self) -> list[str]:
        return [tr(t) for t in ("sentinel-2", "SAFE", "stack", "DEM", "slope", "landslide",
                                "Landslide4Sense", "Level-1C", "Level-2A")]

    def shortHelpString(self) -> str:
        return tr(
            "<p>Turns a Sentinel-2 product and a DEM into one GeoTIFF with the bands a landslide "
            "model needs, in its order, ready for <i>Map landslides</i>.</p>"
            "<p><b>Input</b>: a Level-1C or Level-2A product (pick its .zip, or the "
            "MTD_MSIL1C.xml / MTD_MSIL2A.xml inside the .SAFE folder), one band file of a "
            "folder of band files (…_B02.jp2, B2.tif), or a multi-band raster whose bands are "
            "named (B02, sentinel2:B04, …).</p>"
            "<p>Products of processing baseline 04.00 and later carry a radiometric offset "
            "(usually −1000); it is applied so values are on the older 0–10000 scale models "
            "were trained on (value = max(raw + offset, 0)). Level-2A has no B10: it is filled "
            "with <i>B10 fill value</i>. 20 m and 60 m bands are resampled onto B02's 10 m "
            "grid.</p>"
            "<p><b>DEM</b>: any CRS and resolution; it is warped onto the 10 m grid (dem_m) and "
            "its slope (degrees, Horn's method, metres per degree at each latitude for a "
            "geographic DEM) becomes slope_deg. DEM voids stay nodata. A slope raster can be "
            "given instead.</p>"
            "<p><b>Bands</b>: every band found, the Landslide4Sense order, or a model's bands. "
            "From scripts MODEL also takes the path of an .onnx model.</p>"
            "<p><b>Area of interest</b>: an extent, or a polygon layer (pixels outside the "
            "polygons are nodata).</p>"
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.addParameter(with_help(
            QgsProcessingParameterFile(self.INPUT, tr("Sentinel-2 product or band file"),
                                       behavior=FILE),
            "A .SAFE product's .zip, its MTD_MSIL1C.xml / MTD_MSIL2A.xml (for the unzipped "
            "folder), one of its band files (the folder's bands are used), or a raster with "
            "named bands. Scripts may pass a folder.",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterRasterLayer(self.DEM, tr("DEM"), optional=True),
            "Elevation model in metres, any CRS and resolution, covering the scene. Needed for "
            "the slope_deg and dem_m bands.",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterRasterLayer(self.SLOPE, tr("Slope raster (degrees)"),
                                              optional=True),
            "Optional: a slope raster in degrees to use instead of the slope computed from the "
            "DEM.",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterExtent(self.AOI, tr("Area of interest"), optional=True),
            "Optional: an extent, or a polygon layer (the stack is cut to its extent and pixels "
            "outside its polygons are nodata). Empty: the whole scene.",
        ))
        self.addParameter(with_help(
            text_enum(self.MODEL, tr("Bands for"), band_choices()),
            "Which bands, in which order: every band found, the Landslide4Sense order, or the "
            "bands of a bundled model. Scripts may pass the path of an .onnx model.",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterNumber(self.B10_FILL, tr("B10 fill value"), type=DOUBLE,
                                         defaultValue=0.0),
            "Value of B10 (cirrus) when the product has none (Level-2A products never do).",
            advanced=True,
        ))
        self.addParameter(with_help(
            QgsProcessingParameterRasterDestination(self.OUTPUT, tr("Stack")),
            "The model-ready stack (float32 GeoTIFF, each band described).",
        ))
        self.addOutput(QgsProcessingOutputString(self.BANDS, tr("Bands, in order")))

    def checkParameterValues(
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> tuple[bool, str]:
        """Accept an .onnx path or a bundled name for MODEL too."""
        checked = dict(parameters)
        value = parameters.get(self.MODEL)
        if isinstance(value, str) and value.strip() and value not in band_choices() \
                and not value.strip().isdigit():
            try:
                resolve_model(value.strip())
            except LandslideMapperError as exc:
                return False, str(exc)
            checked[self.MODEL] = EVERY_BAND
        return super().checkParameterValues(checked, context)

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        from ..core.inputs.sentinel2 import L4S_BANDS, prepare_sentinel2_stack

        source = self.parameterAsFile(parameters, self.INPUT, context)
        if not source:
            raise QgsProcessingException("INPUT: expected a Sentinel-2 product, band file or "
                                         "folder, found nothing.")
        dem = self.raster_path(parameters, self.DEM, context)
        slope = self.raster_path(parameters, self.SLOPE, context)
        bands = self._bands(parameters, context, L4S_BANDS)
        aoi, aoi_crs = self._aoi(parameters, context)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        progress, is_canceled, log = feedback_callbacks(feedback)
        try:
            result = prepare_sentinel2_stack(
                source, output, bands=bands, dem_path=dem, slope_path=slope, aoi=aoi,
                aoi_crs=aoi_crs, b10_fill=self.parameterAsDouble(parameters, self.B10_FILL,
                                                                 context),
                progress=progress, is_canceled=is_canceled)
        except LandslideMapperError as exc:
            raise QgsProcessingException(str(exc)) from exc
        for message in result.messages:
            log(message)
        return {self.OUTPUT: output, self.BANDS: ",".join(result.bands)}

    def _bands(self, parameters: dict[str, Any], context: QgsProcessingContext, l4s) -> Any:
        value = parameters.get(self.MODEL)
        if is_unset(parameters, self.MODEL):
            return None
        if isinstance(value, str) and value not in band_choices() and not value.isdigit():
            return value.strip()  # an .onnx path or a bundled name (checked already)
        choice = self.enum_text(parameters, self.MODEL, context)
        if choice == EVERY_BAND:
            return None
        if choice == L4S_ORDER:
            return list(l4s)
        try:
            return str(resolve_model(choice))
        except LandslideMapperError as exc:
            raise QgsProcessingException(str(exc)) from exc

    def _aoi(self, parameters: dict[str, Any], context: QgsProcessingContext):
        """(bounds or shapely polygon, its CRS as WKT) or (None, None)."""
        if is_unset(parameters, self.AOI):
            return None, None
        value = parameters[self.AOI]
        layer = value if isinstance(value, QgsVectorLayer) else (
            QgsProcessingUtils.mapLayerFromString(value, context)
            if isinstance(value, str) else None)
        if isinstance(layer, QgsVectorLayer) and \
                layer.geometryType() == QgsWkbTypes.PolygonGeometry:
            from shapely import wkb
            from shapely.ops import unary_union

            parts = [wkb.loads(bytes(f.geometry().asWkb())) for f in layer.getFeatures()
                     if f.hasGeometry()]
            if not parts:
                raise QgsProcessingException(f"AOI: layer '{layer.name()}' has no polygons.")
            return unary_union(parts), layer.crs().toWkt()
        extent = self.parameterAsExtent(parameters, self.AOI, context)
        crs: QgsCoordinateReferenceSystem = self.parameterAsExtentCrs(parameters, self.AOI,
                                                                      context)
        if extent.isNull() or extent.isEmpty():
            return None, None
        bounds = (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum())
        return bounds, crs.toWkt() if crs.isValid() else None
