"""Algorithm ``landslide_mapper:map_landslides``: raster + model -> probability, mask, polygons."""

from __future__ import annotations

from functools import lru_cache
from html import escape
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBand,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
)

from ..core.contract import read_contract
from ..core.errors import LandslideMapperError
from ..core.models.registry import bundled_models, resolve_model
from ..core.models.runtime import DEVICES
from ..core.polygons import DEFAULT_MIN_PIXELS
from .algorithm import (
    DOUBLE,
    FILE,
    INTEGER,
    VECTOR_POLYGON,
    LandslideMapperAlgorithm,
    feedback_callbacks,
    is_unset,
    text_enum,
    tr,
    with_help,
)
from .destinations import polygon_result
from .styling import RunLayers, style_on_completion

CUSTOM_MODEL = "Custom .onnx file…"
# The engine's own spellings (core.engine.PROBABILITY_FORMATS and core.mapping.model_choice
# .AUTO_MODEL; importing the engine here would load rasterio whenever QGIS lists the algorithms).
PROBABILITY_FORMATS = ("float32", "uint8")
AUTO_MODEL = "auto"
AUTO_OPTION = "auto — the bundled model that fits the input raster (bands and pixel size)"
TITLE_SEPARATOR = " — "


def model_options(auto: bool = False) -> list[str]:
    """The MODEL choices: (with ``auto``) the automatic choice first, every bundled model as
    'name — title', then the custom-file entry."""
    labels = [model_label(m) for m in bundled_models()]
    return ([AUTO_OPTION] if auto else []) + labels + [CUSTOM_MODEL]


def model_label(model: Any) -> str:
    """'name — title' of a bundled model (the name alone when no title can be read).

    Without commas: QGIS reads a comma in an enum's text value as a list separator and refuses
    the choice ("Wrong or missing parameter value").
    """
    title = _title(model).replace(", ", " · ").replace(",", " · ")
    return f"{model.name}{TITLE_SEPARATOR}{title}" if title else model.name


def option_model(choice: str) -> str:
    """A MODEL option's text -> what the engine takes: ``auto``, a bundled name, or the text."""
    text = choice.strip()
    if text == AUTO_OPTION or text.lower() == AUTO_MODEL:
        return AUTO_MODEL
    name = text.split(TITLE_SEPARATOR, 1)[0]
    if name != text and any(m.name == name for m in bundled_models()):
        return name
    return text


class MapLandslidesAlgorithm(LandslideMapperAlgorithm):
    """Runs a segmentation model over a raster and writes probability, mask and polygons."""

    INPUT = "INPUT"
    DEM = "DEM"
    MODEL = "MODEL"
    MODEL_FILE = "MODEL_FILE"
    THRESHOLD = "THRESHOLD"
    TILE_SIZE = "TILE_SIZE"
    OVERLAP = "OVERLAP"
    BATCH_SIZE = "BATCH_SIZE"
    DEVICE = "DEVICE"
    MIN_AREA_M2 = "MIN_AREA_M2"
    SIMPLIFY_M = "SIMPLIFY_M"
    FILL_HOLES_M2 = "FILL_HOLES_M2"
    BANDS = "BANDS"
    PROBABILITY_FORMAT = "PROBABILITY_FORMAT"
    RESCALE = "RESCALE"
    SLOPE = "SLOPE"
    MIN_SLOPE = "MIN_SLOPE"
    TTA = "TTA"
    OUTPUT_PROBABILITY = "OUTPUT_PROBABILITY"
    OUTPUT_MASK = "OUTPUT_MASK"
    OUTPUT_POLYGONS = "OUTPUT_POLYGONS"
    OUTPUT_REPORT = "OUTPUT_REPORT"
    POLYGON_COUNT = "POLYGON_COUNT"
    PROVIDER = "PROVIDER"

    def name(self) -> str:
        return "map_landslides"

    def displayName(self) -> str:
        return tr("Map landslides")

    def tags(self) -> list[str]:
        return [tr(t) for t in ("landslide", "segmentation", "deep learning", "onnx", "mapping",
                                "inventory", "probability", "sentinel-2", "orthophoto")]

    def shortHelpString(self) -> str:
        models = bundled_models()
        listed = "".join(
            f"<li><b>{escape(m.name)}</b>: {escape(_title(m))}</li>" for m in models
        ) or tr(
            "<li>none installed: choose a custom .onnx file</li>"
        )
        return tr(
            "<p>Maps landslides on a raster with a segmentation model: it scores every pixel with "
            "the probability of being part of a landslide, marks the pixels at or above the "
            "threshold, "
            "and turns them into polygons with their area (m², ha), perimeter and mean/max "
            "probability.</p>"
            "<p><b>Input</b>: a raster with the bands the model was trained on, e.g. a "
            "Sentinel-2 stack (with slope/DEM bands where the model asks for them) or an RGB "
            "UAV/aerial orthophoto. Bands are matched to the model by their descriptions (e.g. "
            "B04, red, slope), else by order; set <i>Input bands</i> to choose them yourself. "
            "A raster whose pixel size differs from the model's is resampled on the fly; nodata "
            "pixels are never mapped as landslide. For models with slope/elevation bands, give a "
            "<b>DEM</b> and they are derived on the fly. With a DEM (any model) the polygons "
            "also get slope_mean, slope_max, elev_min and elev_max, and <i>Minimum mean "
            "slope</i> drops those on flat ground.</p>"
            "<p><b>Model</b>: <i>auto</i> (the default) takes the bundled model that fits the "
            "input raster: its bands matched by their descriptions (else the band count), and "
            "its pixel size within the model's tolerance (else the closest that can be "
            "resampled). The log names the model chosen and why, and why each other one was "
            "not; when none fits it says so and the run stops. Or pick a bundled model, or "
            "<i>Custom .onnx file…</i> with <i>Model file</i>. "
            "From <tt>processing.run</tt> or <tt>qgis_process</tt>, MODEL also accepts "
            "<tt>auto</tt>, a bundled model's name or the path of an .onnx file, e.g. "
            "<tt>MODEL=/data/my_model.onnx</tt>.</p>"
            "<p>Bundled models:</p><ul>{models}</ul>"
            "<p><b>Threshold, tile size and overlap</b> come from the model (its contract) when "
            "left empty; scripts may also pass 0 or -1 for the threshold and the tile size, and "
            "-1 for the overlap (0 means no overlap). Raise the threshold for fewer, more "
            "certain landslides; lower it to miss fewer.</p>"
            "<p><b>Minimum landslide area</b>: empty (the default) drops specks, polygons of "
            "fewer than {min_pixels} pixels ({min_pixels} × 100 m² at 10 m pixels, {min_pixels} "
            "× 0.25 m² at 0.5 m); 0 keeps every polygon; any other value drops polygons under "
            "that area in m².</p>"
            "<p><b>Outputs</b>: probability raster (0–1), binary mask (1 = landslide) and "
            "polygons (GeoPackage) with area_m2 (to 1 m²), area_ha (to 0.01 ha), perimeter_m "
            "(to 0.1 m), prob_mean and prob_max (to 0.001), centroid_lon/lat (to 1e-6°), the "
            "model and the pixel count; in a GeoPackage the feature id is the id. The "
            "probability raster and the mask can be skipped. Loaded into the project they are "
            "named after the input and the model (e.g. <i>landslides — scene (sentinel2-rgb)"
            "</i>): polygons on top, the probability half transparent below, the mask "
            "switched off at the bottom. Optional: an <b>inventory report</b> (HTML).</p>"
            "<p>From a terminal: <tt>qgis_process run landslide_mapper:map_landslides -- "
            "INPUT=scene.tif MODEL=model.onnx OUTPUT_POLYGONS=landslides.gpkg</tt></p>"
        ).format(models=listed, min_pixels=DEFAULT_MIN_PIXELS)

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        options = model_options(auto=True)
        self.addParameter(with_help(
            QgsProcessingParameterRasterLayer(self.INPUT, tr("Input raster")),
            "The raster to map: a multispectral stack or an RGB orthophoto, read from a file.",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterRasterLayer(self.DEM, tr("DEM (slope and elevation of each "
                                                          "landslide)"), optional=True),
            "A digital elevation model in metres, any CRS and resolution. When the model wants "
            "slope (degrees) or elevation bands the input raster lacks, they are derived from "
            "this DEM (slope by Horn's method) and warped onto the input grid on the fly. With "
            "any model (RGB too), the polygons then get slope_mean, slope_max (degrees), "
            "elev_min and elev_max (metres).",
        ))
        self.addParameter(with_help(
            text_enum(self.MODEL, tr("Model"), options),
            "auto: the bundled model whose bands and pixel size fit the input (the log says "
            "which and why); a bundled model; or 'Custom .onnx file…' with 'Model file'. "
            "Scripts may also pass auto, a bundled model's name or an .onnx path.",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterFile(
                self.MODEL_FILE, tr("Model file (for 'Custom .onnx file…')"), behavior=FILE,
                extension="onnx", optional=True,
            ),
            "An ONNX model with a Landslide Mapper contract (written by the training module, "
            "or added to any model with 'landslide-mapper contract'). Used when Model is "
            "'Custom .onnx file…' or not given.",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterNumber(
                self.THRESHOLD, tr("Probability threshold (empty = model's default)"), type=DOUBLE,
                defaultValue=None, optional=True, minValue=-1.0, maxValue=1.0,
            ),
            "Pixels whose landslide probability is at least this value are mapped as landslide. "
            "Empty (or 0 / -1): the threshold recommended by the model.",
        ))
        self.add_polygon_parameters()
        self._add_advanced_parameters()
        self.addParameter(with_help(
            QgsProcessingParameterRasterDestination(
                self.OUTPUT_PROBABILITY, tr("Landslide probability"), optional=True,
                createByDefault=True,
            ),
            "Probability of landslide per pixel (GeoTIFF). Optional.",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterRasterDestination(
                self.OUTPUT_MASK, tr("Landslide mask"), optional=True, createByDefault=True,
            ),
            "1 where the probability reaches the threshold, 0 elsewhere (GeoTIFF). Optional.",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterVectorDestination(
                self.OUTPUT_POLYGONS, tr("Landslide polygons"), type=VECTOR_POLYGON,
                defaultValue="TEMPORARY_OUTPUT",
            ),
            "One polygon per landslide with area_m2, area_ha, perimeter_m, mean and max "
            "probability and the model name (GeoPackage).",
        ))
        self.add_report_parameter(self.OUTPUT_REPORT)
        self.addOutput(QgsProcessingOutputNumber(self.POLYGON_COUNT, tr("Number of polygons")))
        self.addOutput(QgsProcessingOutputString(self.PROVIDER, tr("onnxruntime provider used")))

    def _add_advanced_parameters(self) -> None:
        """The expert options: terrain (slope raster, minimum slope), test-time augmentation,
        tiling, batch, device, bands, probability format, rescaling."""
        self.add_slope_parameters()
        self.addParameter(with_help(
            QgsProcessingParameterBoolean(self.TTA, tr("Test-time augmentation (slower)"),
                                          defaultValue=False),
            "Scores every tile in its 8 orientations (rotations by 90 degrees and flips) and "
            "averages the probabilities: a steadier map, and the model runs 8 times as long.",
            advanced=True,
        ))
        self.addParameter(with_help(
            QgsProcessingParameterNumber(
                self.TILE_SIZE, tr("Tile size (pixels, empty = model's default)"), type=INTEGER,
                defaultValue=None, optional=True, minValue=-1,
            ),
            "The raster is scored in square tiles of this many pixels (a multiple of 32). "
            "Empty (or 0 / -1): the model's tile size. Larger tiles need more memory.",
            advanced=True,
        ))
        self.addParameter(with_help(
            QgsProcessingParameterNumber(
                self.OVERLAP, tr("Tile overlap (pixels, empty = model's default)"), type=INTEGER,
                defaultValue=None, optional=True, minValue=-1,
            ),
            "Neighbouring tiles overlap by this many pixels and are blended, so no seams show. "
            "Empty (or -1): the model's recommended overlap; 0 means no overlap.",
            advanced=True,
        ))
        self.addParameter(with_help(
            QgsProcessingParameterNumber(
                self.BATCH_SIZE, tr("Tiles per batch"), type=INTEGER, defaultValue=4,
                minValue=1, maxValue=256,
            ),
            "How many tiles the model scores at once. Higher is faster on a GPU and needs more "
            "memory.",
            advanced=True,
        ))
        self.addParameter(with_help(
            text_enum(self.DEVICE, tr("Device"), DEVICES),
            "Where the model runs: auto (the GPU when onnxruntime can use one, else the CPU), "
            "cpu, or cuda (fails if no CUDA GPU is usable).",
            advanced=True,
        ))
        self.addParameter(with_help(
            QgsProcessingParameterBand(
                self.BANDS, tr("Input bands (in the model's order; empty = automatic)"),
                defaultValue=None, parentLayerParameterName=self.INPUT, optional=True,
                allowMultiple=True,
            ),
            "Raster bands to feed the model, one per model band, in the model's order. Empty: "
            "bands are matched by their descriptions, else taken in order.",
            advanced=True,
        ))
        self.addParameter(with_help(
            text_enum(self.PROBABILITY_FORMAT, tr("Probability raster format"),
                      PROBABILITY_FORMATS),
            "Data type of the probability raster: float32 (values 0–1), or uint8 (0–254, a "
            "quarter of the size, with the scale 1/254 recorded in the file and 255 as nodata).",
            advanced=True,
        ))
        self.addParameter(with_help(
            QgsProcessingParameterBoolean(self.RESCALE, tr("Rescale input values"),
                                          defaultValue=False),
            "The raster's values are sampled before the run: values far off the range the model "
            "expects (e.g. 0–1 reflectance or 8-bit values into a 0–10000 Sentinel-2 model, "
            "16-bit values into an 8-bit model) stop the run with what was found. Checked: they "
            "are mapped linearly onto the model's range instead, and the mapping is logged.",
            advanced=True,
        ))

    def checkParameterValues(
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> tuple[bool, str]:
        """Accept a model name or .onnx path for MODEL too, and check the model can be found."""
        try:
            self.model_path(parameters, context)
        except (LandslideMapperError, QgsProcessingException) as exc:
            return False, str(exc)
        checked = dict(parameters)
        checked[self.MODEL] = CUSTOM_MODEL  # validated above; the enum only knows its options
        return super().checkParameterValues(checked, context)

    def model_path(self, parameters: dict[str, Any],
                   context: QgsProcessingContext) -> Path | str:
        """The .onnx file MODEL / MODEL_FILE point at, or ``auto`` (see :func:`model_path`)."""
        return model_path(parameters,
                          self.parameterAsString(parameters, self.MODEL_FILE, context),
                          self.parameterAsString(parameters, self.MODEL, context),
                          options=self.parameterDefinition(self.MODEL).options())

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        from ..core.mapping.engine import map_landslides

        input_path = self.raster_path(parameters, self.INPUT, context)
        dem_path = self.raster_path(parameters, self.DEM, context)
        try:
            model = self.model_path(parameters, context)
        except LandslideMapperError as exc:
            raise QgsProcessingException(str(exc)) from exc
        threshold = self.optional_number(parameters, self.THRESHOLD, context,
                                         integer=False, unset_below=1e-9)
        tile_size = self.optional_number(parameters, self.TILE_SIZE, context,
                                         integer=True, unset_below=1)
        overlap = self.optional_number(parameters, self.OVERLAP, context,
                                       integer=True, unset_below=0)
        bands = self.parameterAsInts(parameters, self.BANDS, context) or None
        device = self.enum_text(parameters, self.DEVICE, context)
        probability_format = self.enum_text(parameters, self.PROBABILITY_FORMAT, context)
        probability_path = self.output_path(parameters, self.OUTPUT_PROBABILITY, context)
        mask_path = self.output_path(parameters, self.OUTPUT_MASK, context)
        polygons_path = self.output_path(parameters, self.OUTPUT_POLYGONS, context)
        report_path = self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context) or None
        if polygons_path is None:
            raise QgsProcessingException(
                "OUTPUT_POLYGONS: no destination given; expected a GeoPackage path "
                "(or TEMPORARY_OUTPUT)."
            )
        progress, is_canceled, log = feedback_callbacks(feedback)
        feedback.pushInfo(f"Model: {model}")
        try:
            result = map_landslides(
                input_path,
                model,
                probability_path=probability_path,
                mask_path=mask_path,
                polygons_path=polygons_path,
                report_path=report_path,
                threshold=threshold,
                tile_size=tile_size,
                overlap=overlap,
                batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
                device=device,
                bands=bands,
                dem=dem_path,
                **self.slope_options(parameters, context),
                tta=self.parameterAsBoolean(parameters, self.TTA, context),
                probability_format=probability_format,
                rescale=self.parameterAsBoolean(parameters, self.RESCALE, context),
                **self.polygon_options(parameters, context),
                progress=progress,
                is_canceled=is_canceled,
                log=log,
            )
        except LandslideMapperError as exc:
            raise QgsProcessingException(str(exc)) from exc
        feedback.pushInfo(
            f"{result.polygon_count} landslide polygon(s) mapped with model "
            f"{result.model_name} on {result.provider} in {result.seconds:.1f} s."
        )
        # Report the destinations as QGIS gave them: they key the layers it loads on completion
        # (the polygons with their layer named when the GeoPackage holds other layers too).
        polygons_path = polygon_result(polygons_path, context)
        outputs = {
            self.OUTPUT_PROBABILITY: probability_path if result.probability_path else None,
            self.OUTPUT_MASK: mask_path if result.mask_path else None,
            self.OUTPUT_POLYGONS: polygons_path,
            self.OUTPUT_REPORT: report_path if result.report_path else None,
            self.POLYGON_COUNT: int(result.polygon_count),
            self.PROVIDER: str(result.provider),
        }
        source = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        made_by = f"{source.name() if source else Path(input_path).stem} ({result.model_name})"
        run = RunLayers()
        for kind, path in (("probability", outputs[self.OUTPUT_PROBABILITY]),
                           ("mask", outputs[self.OUTPUT_MASK]), ("polygons", polygons_path)):
            style_on_completion(context, path, kind, layer_name=output_layer_name(kind, made_by),
                                run=run)
        return outputs


def output_layer_name(kind: str, made_by: str) -> str:
    """The project layer name of an output: what it is, then the input and the model."""
    what = {"polygons": "landslides", "probability": "landslide probability",
            "mask": "landslide mask"}[kind]
    return f"{what}{TITLE_SEPARATOR}{made_by}"


def model_path(parameters: dict[str, Any], model_file: str, model_choice: str,
               options: list[str] | None = None) -> Path | str:
    """Resolve MODEL / MODEL_FILE to an .onnx path, or ``auto`` (see the algorithm's help).

    MODEL may be an option's text, its index in ``options`` (the parameter's; as older scripts
    and the batch dialog pass), ``auto``, a bundled model's name or an .onnx path. MODEL_FILE is
    used when MODEL is the custom entry or was not given at all.
    """
    options = model_options() if options is None else list(options)
    choice = (model_choice or "").strip()
    if choice.isdigit() and not is_unset(parameters, MapLandslidesAlgorithm.MODEL):
        index = int(choice)
        if index >= len(options):
            raise QgsProcessingException(
                f"MODEL: option {index} does not exist; expected 0 to {len(options) - 1} "
                f"({', '.join(options)}), a bundled model's name, or an .onnx path."
            )
        choice = options[index]
    custom = choice == CUSTOM_MODEL or is_unset(parameters, MapLandslidesAlgorithm.MODEL)
    if custom and model_file.strip():
        return resolve_model(model_file)
    if choice == CUSTOM_MODEL:
        raise QgsProcessingException(
            "MODEL_FILE: MODEL is 'Custom .onnx file…' but no model file is given; choose an "
            ".onnx model file, or pick a bundled model."
        )
    choice = option_model(choice)
    return AUTO_MODEL if choice == AUTO_MODEL else resolve_model(choice)


def _title(model: Any) -> str:
    """A bundled model's title for the help; read once per file version (models can be large).

    Without the packages that read contracts (onnx), the title of its model card
    ('# name: title'), else nothing.
    """
    try:
        return _contract_title(str(model.path), model.path.stat().st_mtime_ns)
    except (LandslideMapperError, OSError) as exc:
        return f"(unusable: {exc})"
    except ImportError:
        first = model.card().split("\n", 1)[0] if model.card_path else ""
        heading = first.lstrip("#").strip()
        prefix = f"{model.name}:"
        return heading[len(prefix):].strip() if heading.startswith(prefix) else ""


@lru_cache(maxsize=64)
def _contract_title(path: str, _mtime_ns: int) -> str:
    return read_contract(path).title

