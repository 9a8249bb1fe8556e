"""Algorithm ``landslide_mapper:evaluate_landslides``: a landslide map against a reference."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsMapLayer,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMapLayer,
    QgsProcessingParameterNumber,
    QgsProcessingParameterVectorDestination,
)

from ..core.errors import LandslideMapperError
from .algorithm import (
    DOUBLE,
    VECTOR_POLYGON,
    LandslideMapperAlgorithm,
    feedback_callbacks,
    layer_file,
    tr,
    with_help,
)
from .destinations import polygon_result
from .export_training_chips import extent_in, vector_source_path


class EvaluateLandslidesAlgorithm(LandslideMapperAlgorithm):
    """Pixel scores and object matching of predicted landslides against a reference inventory."""

    PREDICTED = "PREDICTED"
    REFERENCE = "REFERENCE"
    AREA = "AREA"
    AREA_EXTENT = "AREA_EXTENT"
    IOU_THRESHOLD = "IOU_THRESHOLD"
    THRESHOLD = "THRESHOLD"
    PIXEL_SIZE = "PIXEL_SIZE"
    OUTPUT_POLYGONS = "OUTPUT_POLYGONS"
    OUTPUT_REFERENCE = "OUTPUT_REFERENCE"
    OUTPUT_REPORT = "OUTPUT_REPORT"
    NUMBERS = ("PRECISION", "RECALL", "F1", "IOU", "HITS", "MISSES", "FALSE_ALARMS",
               "OBJECT_PRECISION", "OBJECT_RECALL", "OBJECT_F1")

    def name(self) -> str:
        return "evaluate_landslides"

    def displayName(self) -> str:
        return tr("Evaluate landslide map")

    def tags(self) -> list[str]:
        return [tr(t) for t in ("landslide", "evaluation", "accuracy", "IoU", "F1", "inventory")]

    def shortHelpString(self) -> str:
        return tr(
            "<p>Compares a landslide map (polygons, a mask or a probability raster) with a "
            "reference inventory (polygons or a mask) and reports how well they agree.</p>"
            "<p><b>Pixel scores</b> (as in training): precision = TP/(TP+FP), recall = "
            "TP/(TP+FN), F1, accuracy and IoU = TP/(TP+FP+FN), counted on the predicted "
            "raster's grid (else the reference's; for two polygon layers, at the pixel size "
            "given). Only pixels inside the <b>area</b> count, and nodata pixels never do.</p>"
            "<p><b>Objects</b>: a predicted landslide is a <i>hit</i> when its overlap IoU "
            "with a reference landslide reaches the IoU threshold (pairs matched one to one, "
            "best first); unmatched predictions are <i>false alarms</i>, unmatched reference "
            "landslides <i>misses</i>. The output layers carry <code>status</code>, "
            "<code>match_id</code> and <code>match_iou</code> per polygon; the report (HTML) "
            "holds the table.</p>"
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.addParameter(with_help(
            QgsProcessingParameterMapLayer(self.PREDICTED, tr("Predicted landslides")),
            "The map to score: landslide polygons, a 0/1 mask or a probability raster.",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterMapLayer(self.REFERENCE, tr("Reference inventory")),
            "The reference: landslide polygons or a 0/1 mask (255 or nodata = unknown).",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterFeatureSource(self.AREA, tr("Evaluation area (polygons)"),
                                                [VECTOR_POLYGON], optional=True),
            "Optional: only pixels and landslides inside these polygons count (e.g. the area "
            "the reference inventory covers).",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterExtent(self.AREA_EXTENT, tr("Evaluation area (extent)"),
                                         optional=True),
            "Optional: the evaluation area as an extent, used when no area layer is given.",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterNumber(self.IOU_THRESHOLD, tr("Object IoU threshold"),
                                         type=DOUBLE, defaultValue=0.5, minValue=0.01,
                                         maxValue=1.0),
            "A predicted landslide counts as found when its overlap IoU with a reference "
            "landslide is at least this.",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterNumber(self.THRESHOLD, tr("Probability threshold"),
                                         type=DOUBLE, defaultValue=0.5, minValue=0.0,
                                         maxValue=1.0),
            "For raster inputs: pixels at or above this are landslide (0.5 suits a 0/1 mask).",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterNumber(self.PIXEL_SIZE, tr("Pixel size for two polygon "
                                                            "layers (metres)"),
                                         type=DOUBLE, defaultValue=0.0, minValue=0.0),
            "When both inputs are polygons they are rasterized at this pixel size in metres "
            "(converted to the layers' CRS units, degrees too); 0 picks one (1/4000 of the "
            "extent). A grid of more than 25 million pixels is refused.", advanced=True,
        ))
        self.addParameter(with_help(
            QgsProcessingParameterVectorDestination(
                self.OUTPUT_POLYGONS, tr("Predicted landslides with matches"),
                type=VECTOR_POLYGON, defaultValue="TEMPORARY_OUTPUT"),
            "Predicted polygons with status (hit/false_alarm), match_id, match_iou, area_m2.",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterVectorDestination(
                self.OUTPUT_REFERENCE, tr("Reference landslides with matches"),
                type=VECTOR_POLYGON, defaultValue="TEMPORARY_OUTPUT"),
            "Reference polygons with status (hit/miss), match_id, match_iou, area_m2.",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterFileDestination(
                self.OUTPUT_REPORT, tr("Report"), fileFilter="HTML files (*.html)",
                defaultValue="TEMPORARY_OUTPUT"),
            "The scores as an HTML table (a JSON file with the same numbers is written beside "
            "it).",
        ))
        for key in self.NUMBERS:
            self.addOutput(QgsProcessingOutputNumber(key, tr(key.replace("_", " ").lower())))

    def _input(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext,
               feedback: QgsProcessingFeedback) -> str:
        layer = self.parameterAsLayer(parameters, name, context)
        if layer is None:
            raise QgsProcessingException(
                f"{name}: expected a polygon layer or a raster, found "
                f"{parameters.get(name)!r}, which QGIS cannot open.")
        if layer.type() == QgsMapLayer.RasterLayer:
            return layer_file(layer, name)
        if layer.providerType() == "ogr":
            parts = layer.source().split("|")
            named = [p for p in parts[1:] if p.startswith("layername=")]
            return parts[0] + (f"|{named[0]}" if named else "")
        # a memory layer or a database table: QGIS writes it to a temporary file first
        return vector_source_path(self, parameters, name, context, feedback) or ""

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from ..core.loop.evaluation import evaluate_landslides

        predicted = self._input(parameters, self.PREDICTED, context, feedback)
        reference = self._input(parameters, self.REFERENCE, context, feedback)
        area: Any = vector_source_path(self, parameters, self.AREA, context, feedback)
        if area is None:
            grid_layer = self.parameterAsLayer(parameters, self.PREDICTED, context)
            area = extent_in(self, parameters, self.AREA_EXTENT, context,
                             grid_layer.crs().toWkt())
        polygons = self.output_path(parameters, self.OUTPUT_POLYGONS, context)
        reference_out = self.output_path(parameters, self.OUTPUT_REFERENCE, context)
        report = self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context)
        if report and not report.lower().endswith((".html", ".htm")):
            report += ".html"
        pixel_size = self.parameterAsDouble(parameters, self.PIXEL_SIZE, context)
        progress, is_canceled, _log = feedback_callbacks(feedback)
        try:
            result = evaluate_landslides(
                predicted, reference, area=area,
                iou_threshold=self.parameterAsDouble(parameters, self.IOU_THRESHOLD, context),
                threshold=self.parameterAsDouble(parameters, self.THRESHOLD, context),
                out_polygons=polygons, out_reference=reference_out, report_path=report or None,
                pixel_size=pixel_size if pixel_size > 0 else None,
                progress=progress, is_canceled=is_canceled)
        except LandslideMapperError as exc:
            raise QgsProcessingException(str(exc)) from exc
        for message in result.messages:
            feedback.pushInfo(message)
        feedback.pushInfo(result.markdown())
        p = result.pixel
        return {
            self.OUTPUT_POLYGONS: polygons and polygon_result(polygons, context, "predicted"),
            self.OUTPUT_REFERENCE: reference_out and polygon_result(reference_out, context,
                                                                    "reference"),
            self.OUTPUT_REPORT: report, "PRECISION": p["precision"], "RECALL": p["recall"],
            "F1": p["f1"], "IOU": p["iou_dataset"], "HITS": result.hits,
            "MISSES": result.misses, "FALSE_ALARMS": result.false_alarms,
            "OBJECT_PRECISION": result.object_precision,
            "OBJECT_RECALL": result.object_recall, "OBJECT_F1": result.object_f1,
        }
