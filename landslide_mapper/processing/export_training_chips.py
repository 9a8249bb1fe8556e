"""Algorithm ``landslide_mapper:export_training_chips``: raster + edited polygons -> chips."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..core.errors import LandslideMapperError
from .algorithm import (
    DOUBLE,
    INTEGER,
    VECTOR_POLYGON,
    LandslideMapperAlgorithm,
    feedback_callbacks,
    is_unset,
    tr,
    with_help,
)


def vector_source_path(alg: LandslideMapperAlgorithm, parameters: dict[str, Any], name: str,
                       context: QgsProcessingContext, feedback: QgsProcessingFeedback
                       ) -> str | None:
    """A polygon layer parameter as a file the engine reads (``path|layername=NAME``).

    Layers that are not plain files (memory layers, unsaved edits of a database layer, a
    selection) are written to a temporary GeoPackage by QGIS first.
    """
    if is_unset(parameters, name):
        return None
    path, layer_name = alg.parameterAsCompatibleSourceLayerPathAndLayerName(
        parameters, name, context, ["gpkg", "shp", "geojson", "fgb"], "gpkg", feedback)
    if not path:
        raise QgsProcessingException(f"{name}: expected a polygon layer, found "
                                     f"{parameters.get(name)!r}, which QGIS cannot open.")
    return f"{path}|layername={layer_name}" if layer_name else path


def extent_in(alg: LandslideMapperAlgorithm, parameters: dict[str, Any], name: str,
              context: QgsProcessingContext, crs_wkt: str) -> tuple[float, ...] | None:
    """An extent parameter in the raster's CRS as (xmin, ymin, xmax, ymax); None when unset."""
    if is_unset(parameters, name):
        return None
    rect = alg.parameterAsExtent(parameters, name, context,
                                 QgsCoordinateReferenceSystem.fromWkt(crs_wkt))
    if rect.isNull() or rect.isEmpty():
        return None
    return (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())


class ExportTrainingChipsAlgorithm(LandslideMapperAlgorithm):
    """Cuts a raster and its landslide polygons into image/mask chips for training."""

    INPUT = "INPUT"
    POLYGONS = "POLYGONS"
    CHECKED_AREA = "CHECKED_AREA"
    CHECKED_EXTENT = "CHECKED_EXTENT"
    TILE_SIZE = "TILE_SIZE"
    OVERLAP = "OVERLAP"
    KEEP_EMPTY = "KEEP_EMPTY"
    VAL_FRACTION = "VAL_FRACTION"
    BLOCK_SIZE = "BLOCK_SIZE"
    SEED = "SEED"
    BANDS = "BANDS"
    OUTPUT = "OUTPUT"
    MANIFEST = "MANIFEST"
    TRAIN_CHIPS = "TRAIN_CHIPS"
    VAL_CHIPS = "VAL_CHIPS"

    def name(self) -> str:
        return "export_training_chips"

    def displayName(self) -> str:
        return tr("Export training chips")

    def tags(self) -> list[str]:
        return [tr(t) for t in ("landslide", "training", "chips", "annotation", "fine-tune")]

    def shortHelpString(self) -> str:
        return tr(
            "<p>Turns a raster and your landslide polygons (edited or drawn) into training "
            "chips: georeferenced image tiles and mask tiles (1 = landslide, 0 = no landslide, "
            "255 = unknown), plus a <i>manifest.json</i> that <i>Train landslide model</i> "
            "reads.</p>"
            "<p><b>Checked area</b>: the part of the raster you actually looked at (a polygon "
            "layer or an extent). Pixels outside it are <i>unknown</i>, not 'no landslide', so "
            "unchecked ground never teaches the model that a landslide is background. Leave it "
            "empty when you checked the whole raster. A polygon you drew counts as landslide "
            "even outside the checked area. An empty polygon layer is accepted only with a "
            "checked area (then every chip says 'no landslide here').</p>"
            "<p><b>Validation</b>: whole blocks of tiles are held out (not random chips), and "
            "training chips touching a held-out block are dropped, so the held-out scores are "
            "measured on ground the model never saw.</p>"
            "<p>Polygons in another CRS are reprojected; invalid geometries are repaired and "
            "counted; polygons outside the raster are reported. The output folder must be new "
            "or empty.</p>"
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.addParameter(with_help(
            QgsProcessingParameterRasterLayer(self.INPUT, tr("Raster")),
            "The raster the polygons were drawn on (e.g. a Sentinel-2 stack), read from a file.",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterFeatureSource(self.POLYGONS, tr("Landslide polygons"),
                                                [VECTOR_POLYGON]),
            "Landslide polygons: the mapped ones after your corrections, or drawn by hand. Any "
            "CRS (reprojected to the raster's).",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterFeatureSource(self.CHECKED_AREA, tr("Checked area (polygons)"),
                                                [VECTOR_POLYGON], optional=True),
            "Optional: polygons of the area you checked; outside it pixels are unknown. Leave "
            "empty (and the extent too) when the whole raster was checked.",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterExtent(self.CHECKED_EXTENT, tr("Checked area (extent)"),
                                         optional=True),
            "Optional: the checked area as an extent, used when no checked-area layer is given.",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterNumber(self.TILE_SIZE, tr("Chip size (pixels)"), type=INTEGER,
                                         defaultValue=128, minValue=8),
            "Width and height of each chip in pixels; use the model's tile size (128 for the "
            "bundled models).",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterNumber(self.OVERLAP, tr("Overlap (pixels)"), type=INTEGER,
                                         defaultValue=0, minValue=0),
            "Pixels shared by neighbouring chips; 0 gives chips that do not overlap.",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterNumber(self.KEEP_EMPTY, tr("Share of chips without landslides "
                                                            "to keep"), type=DOUBLE,
                                         defaultValue=0.2, minValue=0.0, maxValue=1.0),
            "Chips with no landslide pixel are kept with this probability (0 drops them all, 1 "
            "keeps them all); they teach the model what is not a landslide.",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterNumber(self.VAL_FRACTION, tr("Validation share (of blocks)"),
                                         type=DOUBLE, defaultValue=0.2, minValue=0.0,
                                         maxValue=0.9),
            "Share of spatial blocks held out to score the model on ground it never saw.",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterNumber(self.BLOCK_SIZE, tr("Validation block size (chips)"),
                                         type=INTEGER, defaultValue=4, minValue=1),
            "Held-out blocks are this many chips across and down.", advanced=True,
        ))
        self.addParameter(with_help(
            QgsProcessingParameterNumber(self.SEED, tr("Random seed"), type=INTEGER,
                                         defaultValue=0),
            "Seed of the block choice and of the empty-chip sampling (same seed, same chips).",
            advanced=True,
        ))
        self.addParameter(with_help(
            QgsProcessingParameterString(self.BANDS, tr("Bands (e.g. 1,2,3)"), optional=True),
            "Optional: the raster bands to export, 1-based, in order; empty exports all bands.",
            advanced=True,
        ))
        self.addParameter(with_help(
            QgsProcessingParameterFolderDestination(self.OUTPUT, tr("Chip folder")),
            "A new (or empty) folder for train/ and val/ chips and manifest.json.",
        ))
        self.addOutput(QgsProcessingOutputFile(self.MANIFEST, tr("Manifest")))
        self.addOutput(QgsProcessingOutputNumber(self.TRAIN_CHIPS, tr("Training chips")))
        self.addOutput(QgsProcessingOutputNumber(self.VAL_CHIPS, tr("Validation chips")))

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from ..core.loop.chips import export_training_chips

        raster = self.raster_path(parameters, self.INPUT, context)
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        polygons = vector_source_path(self, parameters, self.POLYGONS, context, feedback)
        checked: Any = vector_source_path(self, parameters, self.CHECKED_AREA, context, feedback)
        if checked is None:
            checked = extent_in(self, parameters, self.CHECKED_EXTENT, context,
                                layer.crs().toWkt())
        text = self.parameterAsString(parameters, self.BANDS, context).strip()
        try:
            bands = [int(b) for b in text.replace(" ", "").split(",") if b] if text else None
        except ValueError:
            raise QgsProcessingException(
                f"BANDS: expected 1-based band numbers such as 1,2,3, found {text!r}.") from None
        out_dir = self.parameterAsString(parameters, self.OUTPUT, context)
        progress, is_canceled, _log = feedback_callbacks(feedback)
        try:
            result = export_training_chips(
                raster, polygons, out_dir, checked_area=checked,
                tile_size=self.parameterAsInt(parameters, self.TILE_SIZE, context),
                overlap=self.parameterAsInt(parameters, self.OVERLAP, context),
                keep_empty_fraction=self.parameterAsDouble(parameters, self.KEEP_EMPTY, context),
                val_fraction=self.parameterAsDouble(parameters, self.VAL_FRACTION, context),
                block_size_tiles=self.parameterAsInt(parameters, self.BLOCK_SIZE, context),
                seed=self.parameterAsInt(parameters, self.SEED, context), bands=bands,
                progress=progress, is_canceled=is_canceled)
        except LandslideMapperError as exc:
            raise QgsProcessingException(str(exc)) from exc
        for message in result.messages:
            feedback.pushWarning(message)
        px = result.pixels
        feedback.pushInfo(
            f"{result.train_chips} training and {result.val_chips} validation chips; landslide "
            f"pixels {px['train']['landslide']:,} / {px['val']['landslide']:,}, unknown pixels "
            f"{px['train']['unknown']:,} / {px['val']['unknown']:,}; {result.skipped_empty} "
            f"empty chips skipped, {result.dropped_next_to_val} dropped next to validation "
            "blocks.")
        return {self.OUTPUT: str(result.out_dir), self.MANIFEST: str(result.manifest_path),
                self.TRAIN_CHIPS: result.train_chips, self.VAL_CHIPS: result.val_chips}
