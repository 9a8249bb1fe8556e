"""The annotator's loop in QGIS: export_training_chips, train_model, evaluate_landslides.

The scene is the two-rectangle raster of ``conftest.py`` (10 m pixels, UTM): BIG is 20 x 20
pixels, SMALL 5 x 8. Polygons drawn on exactly those pixels give 400 + 40 landslide pixels.
"""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import numpy as np
import processing
import pytest
import shapely
from pyproj import Transformer
from qgis.core import QgsProcessingException, QgsProcessingFeedback, QgsVectorLayer
from shapely.geometry import box

from landslide_mapper.core.contract import read_contract
from tests.qgis.conftest import BIG, SMALL
from tests.support import PX, UTM, X0, Y0, make_raster, pixel_box, write_polygons

pytestmark = pytest.mark.qgis

TINY_MODEL = {"architecture": "unet", "encoder": "resnet18", "encoder_depth": 3,
              "decoder_channels": [32, 16, 8]}


class Recorder(QgsProcessingFeedback):
    """Keeps every message and the last progress value."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def pushInfo(self, info: str) -> None:  # noqa: N802 (Qt name)
        self.lines.append(info)
        super().pushInfo(info)

    def pushWarning(self, warning: str) -> None:  # noqa: N802
        self.lines.append(warning)
        super().pushWarning(warning)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def export(scene: Path, polygons: Path, out: Path, feedback=None, **extra):
    params = {"INPUT": str(scene), "POLYGONS": str(polygons), "TILE_SIZE": 32,
              "KEEP_EMPTY": 1.0, "VAL_FRACTION": 0.0, "OUTPUT": str(out), **extra}
    return processing.run("landslide_mapper:export_training_chips", params,
                          feedback=feedback or QgsProcessingFeedback())


def landslide_pixels(manifest: Path) -> int:
    doc = json.loads(manifest.read_text())
    return sum(s["landslide"] for s in doc["pixels"].values())


def test_export_chips(provider, scene: Path, tmp_path: Path):
    polys = write_polygons(tmp_path / "ls.gpkg", [pixel_box(*BIG), pixel_box(*SMALL)])
    res = export(scene, polys, tmp_path / "chips")
    # 80 x 96 pixels in 32 px chips: 3 x 3 chips
    assert res["TRAIN_CHIPS"] == 9 and res["VAL_CHIPS"] == 0
    assert landslide_pixels(Path(res["MANIFEST"])) == 400 + 40
    assert len(list((tmp_path / "chips/train/masks").glob("*.tif"))) == 9


def test_export_with_checked_extent_and_other_crs(provider, scene: Path, tmp_path: Path):
    to_ll = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    ll = shapely.transform(shapely.segmentize(pixel_box(*BIG), 10), lambda xy: np.column_stack(
        to_ll.transform(xy[:, 0], xy[:, 1])))
    polys = write_polygons(tmp_path / "ll.gpkg", [ll], crs="EPSG:4326")
    fb = Recorder()
    # checked: the top 32 rows only
    extent = f"{X0},{X0 + 96 * PX},{Y0 - 32 * PX},{Y0} [{UTM}]"
    res = export(scene, polys, tmp_path / "chips", feedback=fb, CHECKED_EXTENT=extent)
    assert "reprojected" in fb.text
    doc = json.loads(Path(res["MANIFEST"]).read_text())
    px = doc["pixels"]["train"]
    assert px["landslide"] + px["background"] == 32 * 96  # only the checked rows are known
    assert abs(px["landslide"] - 400) <= 4
    assert doc["polygons_summary"]["reprojected_from"]


def test_export_bad_polygons(provider, scene: Path, tmp_path: Path):
    outside = box(0, 0, 100, 100)
    a, b = (X0 + 100, Y0 - 100), (X0 + 300, Y0 - 300)
    bowtie = shapely.Polygon([a, (b[0], a[1]), (a[0], b[1]), b, a])
    polys = write_polygons(tmp_path / "bad.gpkg", [outside, bowtie])
    fb = Recorder()
    res = export(scene, polys, tmp_path / "chips", feedback=fb)
    assert "outside the raster" in fb.text and "repaired" in fb.text
    assert 180 <= landslide_pixels(Path(res["MANIFEST"])) <= 220
    empty = write_polygons(tmp_path / "empty.gpkg", [])
    with pytest.raises(QgsProcessingException, match="no polygons"):
        export(scene, empty, tmp_path / "chips2")
    assert not (tmp_path / "chips2").exists() or not any((tmp_path / "chips2").iterdir())


def test_evaluate(provider, tmp_path: Path):
    pred = np.zeros((40, 40), "uint8")
    pred[0:10, 0:10] = 1      # matches the first reference square exactly
    pred[20:24, 20:24] = 1    # a false alarm
    mask = make_raster(tmp_path / "pred.tif", pred)
    ref = write_polygons(tmp_path / "ref.gpkg", [pixel_box(*(0, 10, 0, 10)),
                                                 pixel_box(*(30, 35, 30, 35))])
    res = processing.run("landslide_mapper:evaluate_landslides", {
        "PREDICTED": str(mask), "REFERENCE": str(ref),
        "OUTPUT_POLYGONS": str(tmp_path / "pred_matched.gpkg"),
        "OUTPUT_REFERENCE": str(tmp_path / "ref_matched.gpkg"),
        "OUTPUT_REPORT": str(tmp_path / "report.html")}, feedback=QgsProcessingFeedback())
    # TP 100, FP 16, FN 25
    assert res["PRECISION"] == pytest.approx(100 / 116)
    assert res["RECALL"] == pytest.approx(100 / 125)
    assert res["IOU"] == pytest.approx(100 / 141)
    assert (res["HITS"], res["MISSES"], res["FALSE_ALARMS"]) == (1, 1, 1)
    layer = QgsVectorLayer(res["OUTPUT_POLYGONS"], "pred", "ogr")
    assert sorted(f["status"] for f in layer.getFeatures()) == ["false_alarm", "hit"]
    layer = QgsVectorLayer(res["OUTPUT_REFERENCE"], "ref", "ogr")
    assert sorted(f["status"] for f in layer.getFeatures()) == ["hit", "miss"]
    assert "<table" in Path(res["OUTPUT_REPORT"]).read_text()


@pytest.fixture
def chips(scene: Path, tmp_path: Path) -> Path:
    polys = write_polygons(tmp_path / "ls.gpkg", [pixel_box(*BIG), pixel_box(*SMALL)])
    from landslide_mapper.core.loop.chips import export_training_chips

    export_training_chips(scene, polys, tmp_path / "chips", tile_size=32,
                          keep_empty_fraction=1.0, val_fraction=0.3, block_size_tiles=1)
    return tmp_path / "chips"


def fake_python(path: Path, fit_body: str) -> Path:
    """A training interpreter that answers the torch probe for real but whose ``fit`` is fake."""
    path.write_text(
        "#!/bin/sh\n"
        f'case "$*" in *" fit "*) {fit_body} ;; esac\n'
        f'exec "{sys.executable}" "$@"\n')
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def train(chips: Path, out: Path, feedback=None, **extra):
    params = {"CHIPS": str(chips), "EPOCHS": 1, "MAX_STEPS": 1, "THREADS": 1,
              "OUTPUT_MODEL": str(out), **extra}
    return processing.run("landslide_mapper:train_model", params,
                          feedback=feedback or QgsProcessingFeedback())


def test_train_process_that_dies(provider, chips: Path, tmp_path: Path, monkeypatch):
    pytest.importorskip("torch")
    py = fake_python(tmp_path / "python", 'echo "epoch 1 | loss 0.9"; '
                     'echo "RuntimeError: out of memory on the training device"; exit 3')
    monkeypatch.setenv("LANDSLIDE_MAPPER_PYTHON", str(py))
    before = sorted(p.relative_to(chips) for p in chips.rglob("*"))
    with pytest.raises(QgsProcessingException) as err:
        train(chips, tmp_path / "new.onnx")
    text = str(err.value)
    assert "exited with code 3" in text and "out of memory on the training device" in text
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob(".new*"))
    assert sorted(p.relative_to(chips) for p in chips.rglob("*")) == before  # chips untouched
    assert "out of memory" in (tmp_path / "new_run" / "output.log").read_text()


def test_interpreter_without_torch(provider, chips: Path, tmp_path: Path, monkeypatch):
    py = tmp_path / "python"
    py.write_text("#!/bin/sh\necho \"ModuleNotFoundError: No module named 'torch'\" >&2\nexit 1\n")
    py.chmod(0o755)
    monkeypatch.setenv("LANDSLIDE_MAPPER_PYTHON", str(py))
    with pytest.raises(QgsProcessingException, match="expected torch"):
        train(chips, tmp_path / "new.onnx")
    assert not (tmp_path / "new.onnx").exists()


@pytest.mark.slow
def test_train_tiny_model_on_cpu(provider, chips: Path, tmp_path: Path):
    torch = pytest.importorskip("torch")
    import yaml

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({"model": TINY_MODEL, "batch_size": 4}))
    fb = Recorder()
    progress: list[float] = []
    fb.progressChanged.connect(progress.append)
    res = train(chips, tmp_path / "new.onnx", feedback=fb, BASE=str(config))
    model = Path(res["OUTPUT_MODEL"])
    contract = read_contract(model)
    assert contract.band_count == 3 and [b.name for b in contract.bands] == ["red", "green", "blue"]
    assert contract.metrics  # held-out scores of the validation chips
    assert "epoch 1 |" in fb.text  # the training process's lines reached the log
    assert progress and max(progress) == 100
    if not torch.cuda.is_available():
        assert "No GPU found" in fb.text and "training on the CPU" in fb.text
    assert Path(res["RUN_DIR"], "output.log").is_file()
    # the new model maps with the engine straight away
    from landslide_mapper.core.mapping.engine import map_landslides

    out = map_landslides(str(chips.parent / "scene.tif"), str(model),
                         probability_path=tmp_path / "p.tif")
    assert Path(out.probability_path).is_file()
