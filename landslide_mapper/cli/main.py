"""The ``landslide-mapper`` command group: the engine without QGIS.

    landslide-mapper map SCENE.tif --model sentinel2-rgb --polygons landslides.gpkg
    landslide-mapper vectorize MASK.tif --polygons landslides.gpkg
    landslide-mapper models | info MODEL | contract THIRD_PARTY.onnx CONTRACT.json -o MODEL.onnx
    landslide-mapper prepare SAFE stack.tif | slope dem.tif slope.tif
    landslide-mapper chips | train | evaluate
    landslide-mapper quantize MODEL OUT.onnx --calibration RASTER_OR_FOLDER

Each command lives in its own module (or with its close family); this module only gathers them.
Bad input ends with a one-line reason and exit code 1; Ctrl-C cancels cleanly (exit code 130) and
leaves no half-written output.
"""

from __future__ import annotations

import click

from .batch import batch_command
from .loop import chips_command, evaluate_command, train_command
from .map import map_command
from .models import contract_command, info_command, models_command
from .prepare import prepare_command, slope_command
from .quantize import quantize_command
from .vectorize import vectorize_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="landslide-mapper")
def main() -> None:
    """Map landslides on georeferenced rasters with segmentation models (ONNX)."""


for _command in (map_command, vectorize_command, models_command, info_command, contract_command,
                 prepare_command, slope_command, chips_command, train_command, evaluate_command,
                 batch_command, quantize_command):
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    main()
