"""Algorithm ``landslide_mapper:vectorize_mask``: mask or probability raster -> polygons."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
)

from ..core.errors import LandslideMapperError
from .algorithm import (
    DOUBLE,
    VECTOR_POLYGON,
    LandslideMapperAlgorithm,
    feedback_callbacks,
    tr,
    with_help,
)
from .destinations import polygon_result
from .styling import style_on_completion


class VectorizeMaskAlgorithm(LandslideMapperAlgorithm):
    """Turns a landslide mask (or a probability raster cut at a threshold) into polygons."""

    INPUT = "INPUT"
    THRESHOLD = "THRESHOLD"
    PROBABILITY = "PROBABILITY"
    DEM = "DEM"
    SLOPE = "SLOPE"
    MIN_SLOPE = "MIN_SLOPE"
    MIN_AREA_M2 = "MIN_AREA_M2"
    FILL_HOLES_M2 = "FILL_HOLES_M2"
    SIMPLIFY_M = "SIMPLIFY_M"
    OUTPUT_POLYGONS = "OUTPUT_POLYGONS"
    POLYGON_COUNT = "POLYGON_COUNT"
    TOTAL_AREA_M2 = "TOTAL_AREA_M2"

    def name(self) -> str:
        return "vectorize_mask"

    def displayName(self) -> str:
        return tr("Vectorize landslide mask")

    def tags(self) -> list[str]:
        return [tr(t) for t in ("landslide", "polygonize", "vectorize", "mask", "inventory")]

    def shortHelpString(self) -> str:
        return tr(
            "<p>Turns a landslide raster into polygons, one per connected landslide patch, with "
            "their area (m², ha), perimeter, centroid and, when a probability raster is given, "
            "mean and max probability.</p>"
            "<p><b>Input</b>: a binary mask (1 = landslide), e.g. one you corrected by hand, or a "
            "probability raster (0–1, or 0–255 with its scale recorded); pixels at or above the "
            "threshold are landslide. Nodata pixels are never landslide.</p>"
            "<p>With a <b>DEM</b> (any CRS and resolution) each polygon also gets its mean and "
            "maximum slope (degrees) and lowest and highest elevation (metres), and <i>Minimum "
            "mean slope</i> drops the polygons on flat ground.</p>"
            "<p>Areas are planar in a projected CRS and geodesic (on the ellipsoid) in a "
            "geographic one. Minimum area, hole filling and outline simplification clean the "
            "result as in <i>Map landslides</i>.</p>"
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.addParameter(with_help(
            QgsProcessingParameterRasterLayer(self.INPUT, tr("Mask or probability raster")),
            "A binary landslide mask (1 = landslide, 0 = not) or a probability raster, read "
            "from a file.",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterNumber(
                self.THRESHOLD, tr("Threshold"), type=DOUBLE, defaultValue=0.5,
                minValue=0.0, maxValue=1.0,
            ),
            "Pixels with a value at or above this are landslide. 0.5 suits a 0/1 mask and a "
            "0–1 probability raster alike.",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterRasterLayer(
                self.PROBABILITY, tr("Probability raster (for the probability attributes)"),
                optional=True,
            ),
            "Optional: a probability raster on the same grid; each polygon then gets its mean "
            "and max probability.",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterRasterLayer(self.DEM, tr("DEM (for slope and elevation "
                                                          "attributes)"), optional=True),
            "Optional: a digital elevation model in metres, any CRS and resolution; each polygon "
            "then gets slope_mean, slope_max (degrees, Horn's method), elev_min and elev_max.",
        ))
        self.add_polygon_parameters()
        self.add_slope_parameters()
        self.addParameter(with_help(
            QgsProcessingParameterVectorDestination(
                self.OUTPUT_POLYGONS, tr("Landslide polygons"), type=VECTOR_POLYGON,
                defaultValue="TEMPORARY_OUTPUT",
            ),
            "One polygon per landslide with its area attributes (GeoPackage).",
        ))
        self.addOutput(QgsProcessingOutputNumber(self.POLYGON_COUNT, tr("Number of polygons")))
        self.addOutput(QgsProcessingOutputNumber(self.TOTAL_AREA_M2, tr("Total area (m²)")))

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        from ..core.mapping.vectorizing import vectorize_with_terrain

        mask_path = self.raster_path(parameters, self.INPUT, context)
        probability_path = self.raster_path(parameters, self.PROBABILITY, context)
        polygons_path = self.output_path(parameters, self.OUTPUT_POLYGONS, context)
        if polygons_path is None:
            raise QgsProcessingException(
                "OUTPUT_POLYGONS: no destination given; expected a GeoPackage path "
                "(or TEMPORARY_OUTPUT)."
            )
        progress, is_canceled, log = feedback_callbacks(feedback)
        try:
            result = vectorize_with_terrain(
                mask_path,
                polygons_path,
                dem=self.raster_path(parameters, self.DEM, context),
                **self.slope_options(parameters, context),
                log=log,
                probability_path=probability_path,
                threshold=self.parameterAsDouble(parameters, self.THRESHOLD, context),
                **self.polygon_options(parameters, context),
                progress=progress,
                is_canceled=is_canceled,
            )
        except LandslideMapperError as exc:
            raise QgsProcessingException(str(exc)) from exc
        feedback.pushInfo(
            f"{result.count} landslide polygon(s), {result.total_area_m2:,.0f} m² in total."
        )
        polygons_path = polygon_result(polygons_path, context)  # its layer named when needed
        outputs = {
            self.OUTPUT_POLYGONS: polygons_path,
            self.POLYGON_COUNT: int(result.count),
            self.TOTAL_AREA_M2: float(result.total_area_m2),
        }
        style_on_completion(context, polygons_path, "polygons")
        return outputs
