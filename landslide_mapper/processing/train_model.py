"""Algorithm ``landslide_mapper:train_model``: train or fine-tune a model on exported chips.

Training runs in a separate Python process (torch never loads into QGIS); its output lines go
to the log and its epochs to the progress bar; cancel stops the process.
"""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputFolder,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..core.errors import LandslideMapperError
from .algorithm import (
    DOUBLE,
    FILE,
    INTEGER,
    LandslideMapperAlgorithm,
    feedback_callbacks,
    text_enum,
    tr,
    with_help,
)

try:
    from qgis.core import Qgis

    FOLDER = Qgis.ProcessingFileParameterBehavior.Folder
except AttributeError:  # QGIS < 3.36
    FOLDER = QgsProcessingParameterFile.Folder

DEVICES = ("auto", "cpu", "cuda")


class TrainModelAlgorithm(LandslideMapperAlgorithm):
    """Trains a segmentation model on a chip folder and writes an .onnx for Map landslides."""

    CHIPS = "CHIPS"
    BASE = "BASE"
    CHECKPOINT = "CHECKPOINT"
    EPOCHS = "EPOCHS"
    BATCH_SIZE = "BATCH_SIZE"
    LEARNING_RATE = "LEARNING_RATE"
    DEVICE = "DEVICE"
    THREADS = "THREADS"
    MAX_STEPS = "MAX_STEPS"
    OUTPUT_MODEL = "OUTPUT_MODEL"
    RUN_DIR = "RUN_DIR"
    F1 = "F1"
    IOU = "IOU"

    def name(self) -> str:
        return "train_model"

    def displayName(self) -> str:
        return tr("Train landslide model")

    def tags(self) -> list[str]:
        return [tr(t) for t in ("landslide", "training", "fine-tune", "model", "onnx", "gpu")]

    def shortHelpString(self) -> str:
        return tr(
            "<p>Trains a landslide model on a chip folder from <i>Export training chips</i> and "
            "writes a new .onnx model (with its contract and its scores on the held-out chips) "
            "that you can select as the model file in <i>Map landslides</i>.</p>"
            "<p><b>Base</b>: a bundled model's name, an .onnx model whose contract names its "
            "training config, a training config (.yaml file or a config's name), or empty for "
            "the default U-Net. <b>Fine-tuning a bundled model</b>: bundled models ship as "
            ".onnx only, which holds no trainable weights; training then uses the bundled "
            "model's own settings (architecture, loss, bands) and starts from the weights of a "
            "<b>checkpoint</b> (a run's best.pt) when you give one, otherwise from scratch. An "
            ".onnx model without a training config cannot be fine-tuned: train from a config "
            "instead. A model made here keeps its run folder (config, best.pt) beside it, so "
            "choosing it as the base continues from its own weights.</p>"
            "<p>Training runs in a separate Python (<code>LANDSLIDE_MAPPER_PYTHON</code>, else "
            "the project's .venv, else python3) that needs torch; QGIS stays responsive. Its "
            "log is shown here and the progress bar follows the epochs. The GPU is used when "
            "there is one (the log says which device ran); without one training falls back to "
            "the CPU, which is much slower: keep epochs low. Cancel stops training; the model "
            "file appears only when export finished. The run folder (log, checkpoints) is kept "
            "beside the model.</p>"
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.addParameter(with_help(
            QgsProcessingParameterFile(self.CHIPS, tr("Chip folder"), behavior=FOLDER),
            "A folder written by Export training chips (with manifest.json).",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterString(self.BASE, tr("Base model or training config"),
                                         optional=True),
            "A bundled model's name (e.g. sentinel2-rgb), an .onnx path, a training config "
            "(.yaml path or name); empty trains the default U-Net from scratch.",
        ))
        ckpt = QgsProcessingParameterFile(self.CHECKPOINT, tr("Start from checkpoint (.pt)"),
                                          behavior=FILE, extension="pt", optional=True)
        self.addParameter(with_help(
            ckpt, "Optional: torch weights (a run's best.pt) to start from; without it training "
            "starts from scratch.",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterNumber(self.EPOCHS, tr("Epochs"), type=INTEGER,
                                         defaultValue=10, minValue=1),
            "Passes over the training chips. A few suffice to fine-tune; more on the CPU take "
            "long.",
        ))
        self.addParameter(with_help(
            QgsProcessingParameterNumber(self.BATCH_SIZE, tr("Batch size"), type=INTEGER,
                                         defaultValue=0, minValue=0),
            "Chips per training step; 0 keeps the config's (16 by default).", advanced=True,
        ))
        self.addParameter(with_help(
            QgsProcessingParameterNumber(self.LEARNING_RATE, tr("Learning rate"), type=DOUBLE,
                                         defaultValue=0.0, minValue=0.0),
            "Adam learning rate; 0 keeps the config's (1e-3 by default).", advanced=True,
        ))
        self.addParameter(with_help(
            text_enum(self.DEVICE, tr("Device"), DEVICES),
            "auto uses the GPU when torch sees one, else the CPU; cuda insists on the GPU.",
            advanced=True,
        ))
        self.addParameter(with_help(
            QgsProcessingParameterNumber(self.THREADS, tr("CPU threads"), type=INTEGER,
                                         defaultValue=0, minValue=0),
            "CPU threads for training on the CPU; 0 lets torch choose.", advanced=True,
        ))
        self.addParameter(with_help(
            QgsProcessingParameterNumber(self.MAX_STEPS, tr("Steps per epoch (limit)"),
                                         type=INTEGER, defaultValue=0, minValue=0),
            "Stop each epoch after this many steps (a quick trial); 0 uses every chip.",
            advanced=True,
        ))
        self.addParameter(with_help(
            QgsProcessingParameterFileDestination(self.OUTPUT_MODEL, tr("New model"),
                                                  fileFilter="ONNX model (*.onnx)"),
            "The trained model (.onnx with its contract), ready for Map landslides.",
        ))
        self.addOutput(QgsProcessingOutputFolder(self.RUN_DIR, tr("Run folder")))
        self.addOutput(QgsProcessingOutputNumber(self.F1, tr("Held-out F1")))
        self.addOutput(QgsProcessingOutputNumber(self.IOU, tr("Held-out IoU")))

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from ..core.loop.training_run import train_on_chips

        out_model = self.parameterAsFileOutput(parameters, self.OUTPUT_MODEL, context)
        if not out_model.lower().endswith(".onnx"):
            out_model += ".onnx"
        progress, is_canceled, log = feedback_callbacks(feedback)

        def optional_int(name: str) -> int | None:
            value = self.parameterAsInt(parameters, name, context)
            return value if value > 0 else None

        lr = self.parameterAsDouble(parameters, self.LEARNING_RATE, context)
        try:
            result = train_on_chips(
                self.parameterAsFile(parameters, self.CHIPS, context), out_model,
                base=self.parameterAsString(parameters, self.BASE, context).strip() or None,
                checkpoint=self.parameterAsFile(parameters, self.CHECKPOINT, context) or None,
                epochs=self.parameterAsInt(parameters, self.EPOCHS, context),
                batch_size=optional_int(self.BATCH_SIZE), learning_rate=lr if lr > 0 else None,
                device=self.enum_text(parameters, self.DEVICE, context),
                threads=optional_int(self.THREADS), max_steps=optional_int(self.MAX_STEPS),
                progress=progress, is_canceled=is_canceled, log=log)
        except LandslideMapperError as exc:
            raise QgsProcessingException(str(exc)) from exc
        pooled = result.scores.get("all") or next(iter(result.scores.values()), {})
        # the messages were logged as training went; repeat the device one as a warning
        for message in result.messages:
            if message.startswith("No GPU"):
                feedback.pushWarning(message)
        feedback.pushInfo(
            f"New model: {result.model_path} (trained on {result.device}, {result.epochs_run} "
            f"epochs); held-out F1 {pooled.get('f1', float('nan')):.3f}, IoU "
            f"{pooled.get('iou_dataset', float('nan')):.3f}. Select it as the model file in "
            "Map landslides.")
        return {self.OUTPUT_MODEL: str(result.model_path), self.RUN_DIR: str(result.run_dir),
                self.F1: float(pooled.get("f1", 0.0)),
                self.IOU: float(pooled.get("iou_dataset", 0.0))}
