"""The annotator's loop on real Sentinel-2 data (Chittagong): chips, a short fine-tune, evaluation.

The data: 64 overlapping 256 px tiles (EPSG:4326, bands R, G, B, NIR as float DN) with labels
0 unlabelled, 1 not a landslide, 2 landslide. They are mosaicked; label 2 becomes the landslide
polygons and labels 1 + 2 the checked area, so unlabelled pixels stay unknown (255 in the masks)
and are never scored. Chips are exported with whole 4 x 4-chip blocks held out.

"Before" is a model after a single training step (what the annotator starts from, here a
checkpoint, since the bundled models ship as ONNX only); "after" is that model fine-tuned from its
checkpoint on the training chips for a few epochs on the CPU. Both map the mosaic with the engine
and are scored with ``evaluate_landslides`` on the held-out blocks only.

Margin: the labelled pixels are mostly landslide (~70 % of the held-out ones), so a model that
calls everything a landslide already scores F1 ~0.8 and IoU ~0.7; those scores cannot show
learning. Balanced accuracy, (recall + specificity) / 2 with specificity = TN / (TN + FP), is 0.5
for any constant or random answer whatever the share of landslides. The starting model is at that
level (it calls every pixel a landslide); the fine-tuned one must reach 0.5 + 0.05 and beat the
starting model by 0.05. With ~450 landslide and ~200 background held-out pixels the standard error
of a balanced accuracy is about 0.5 * sqrt(0.25 / 450 + 0.25 / 200) ~ 0.02, so 0.05 is more than
two standard errors. Precision must rise too (fewer false alarms on background).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import fiona
import numpy as np
import pytest
import rasterio
import shapely
from rasterio.features import shapes
from rasterio.merge import merge

from tests.support import REPO, shared_data

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

TINY = {"model": {"architecture": "unet", "encoder": "resnet18", "encoder_depth": 3,
                  "decoder_channels": [32, 16, 8]},
        "loss": {"name": "bce_dice"}, "augment": {"flips": True, "rotate90": True},
        "eval_batch_size": 16, "seed": 0}


def _polygons(mask: np.ndarray, transform, path: Path, crs) -> int:
    geoms = [shapely.geometry.shape(g) for g, v in shapes(mask.astype("uint8"), mask=mask,
                                                           transform=transform) if v]
    with fiona.open(path, "w", driver="GPKG", crs_wkt=crs.to_wkt(),
                    schema={"geometry": "Polygon", "properties": {"id": "int"}}) as dst:
        for i, g in enumerate(geoms):
            dst.write({"geometry": shapely.geometry.mapping(g), "properties": {"id": i}})
    return len(geoms)


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> dict[str, Path]:
    root = shared_data("sentinel2_chittagong")
    out = tmp_path_factory.mktemp("chittagong")
    images = sorted((root / "images").glob("*.tif"))
    labels = sorted((root / "labels").glob("*.tif"))
    assert len(images) == len(labels) == 64
    mosaic, transform = merge([str(p) for p in images])
    label, label_transform = merge([str(p) for p in labels])
    assert label_transform == transform and label.shape[1:] == mosaic.shape[1:]
    with rasterio.open(images[0]) as src:
        crs = src.crs
    profile = dict(driver="GTiff", width=mosaic.shape[2], height=mosaic.shape[1], crs=crs,
                   transform=transform, tiled=True, compress="deflate")
    raster = out / "mosaic.tif"
    with rasterio.open(raster, "w", count=4, dtype="float32", nodata=0, **profile) as dst:
        dst.write(mosaic.astype("float32"))
        for i, name in enumerate(("red", "green", "blue", "nir"), start=1):
            dst.set_band_description(i, name)
    lab = label[0]
    reference = np.where(lab == 2, 1, np.where(lab == 1, 0, 255)).astype("uint8")
    ref_path = out / "reference.tif"
    with rasterio.open(ref_path, "w", count=1, dtype="uint8", nodata=255, **profile) as dst:
        dst.write(reference[None])
    n_land = _polygons(lab == 2, transform, out / "landslides.gpkg", crs)
    n_checked = _polygons(lab > 0, transform, out / "checked.gpkg", crs)
    assert n_land > 10 and n_checked > 10
    return {"raster": raster, "reference": ref_path, "landslides": out / "landslides.gpkg",
            "checked": out / "checked.gpkg", "dir": out}


def test_chips_fine_tune_and_evaluate(scene: dict[str, Path]):
    pytest.importorskip("torch")
    import yaml

    from landslide_mapper.core.loop.chips import export_training_chips
    from landslide_mapper.core.loop.evaluation import evaluate_landslides
    from landslide_mapper.core.loop.training_run import train_on_chips
    from landslide_mapper.core.mapping.engine import map_landslides

    out = scene["dir"]
    chips = export_training_chips(
        scene["raster"], scene["landslides"], out / "chips", checked_area=scene["checked"],
        tile_size=64, keep_empty_fraction=0.5, val_fraction=0.25, block_size_tiles=4, seed=3)
    print(f"\nchips: {chips.train_chips} train, {chips.val_chips} val; pixels {chips.pixels}")
    assert chips.val_chips > 0 and chips.pixels["val"]["landslide"] > 50
    with rasterio.open(scene["raster"]) as src, rasterio.open(scene["reference"]) as ref:
        lab = ref.read(1)
        # unlabelled ground is unknown in every mask
        for mask_path in sorted((out / "chips/train/masks").glob("*.tif"))[:20]:
            with rasterio.open(mask_path) as m:
                win = rasterio.windows.from_bounds(*m.bounds, transform=src.transform)
                r0, c0 = int(round(win.row_off)), int(round(win.col_off))
                expect = lab[r0:r0 + 64, c0:c0 + 64].copy()
                got = m.read(1)[:expect.shape[0], :expect.shape[1]]
                with rasterio.open(str(mask_path).replace("masks", "images")) as im:
                    image = im.read()[:, :expect.shape[0], :expect.shape[1]]
                expect[(image == 0).any(axis=0)] = 255  # the mosaic's nodata is unknown too
                known = expect != 255
                np.testing.assert_array_equal(got[known], expect[known])
                assert (got[~known] == 255).all()

    # held-out area: the validation chips' extents
    val_boxes = []
    for p in (out / "chips/val/masks").glob("*.tif"):
        with rasterio.open(p) as m:
            val_boxes.append(shapely.box(*m.bounds))
    area = out / "val_area.gpkg"
    with fiona.open(area, "w", driver="GPKG", crs="EPSG:4326",
                    schema={"geometry": "Polygon", "properties": {"id": "int"}}) as dst:
        for i, g in enumerate(shapely.get_parts(shapely.union_all(val_boxes))):
            dst.write({"geometry": shapely.geometry.mapping(g), "properties": {"id": i}})

    extra = dict(TINY, batch_size=8)
    before = train_on_chips(out / "chips", out / "before.onnx", epochs=1, max_steps=1,
                            threads=2, device="cpu", extra_config=extra)
    after = train_on_chips(out / "chips", out / "after.onnx",
                           checkpoint=str(before.run_dir / "best.pt"), epochs=4, threads=2,
                           device="cpu", learning_rate=3e-3, extra_config=extra)
    assert json.loads((after.run_dir / "summary.json").read_text())["epochs_run"] == 4
    with open(after.run_dir / "train_config.yaml") as f:
        assert "init_from" in yaml.safe_load(f)

    scores = {}
    for label, model in (("before", before.model_path), ("after", after.model_path)):
        prob = out / f"prob_{label}.tif"
        map_landslides(str(scene["raster"]), str(model), probability_path=prob)
        res = evaluate_landslides(prob, scene["reference"], area=area,
                                  report_path=out / f"report_{label}.md")
        scores[label] = res.pixel
        print(f"{label}: precision {res.pixel['precision']:.3f} recall "
              f"{res.pixel['recall']:.3f} F1 {res.pixel['f1']:.3f} IoU "
              f"{res.pixel['iou_dataset']:.3f} on {res.pixel['pixels']} held-out pixels "
              f"(TP {res.pixel['tp']}, FP {res.pixel['fp']}, FN {res.pixel['fn']}); objects: "
              f"{res.hits} hits, {res.misses} misses, {res.false_alarms} false alarms")
    s0, s1 = scores["before"], scores["after"]
    assert s0["pixels"] == s1["pixels"] > 0  # the same held-out pixels

    def balanced_accuracy(s: dict) -> float:
        specificity = s["tn"] / (s["tn"] + s["fp"]) if s["tn"] + s["fp"] else 0.0
        return (s["recall"] + specificity) / 2

    b0, b1 = balanced_accuracy(s0), balanced_accuracy(s1)
    p = (s1["tp"] + s1["fn"]) / s1["pixels"]
    print(f"balanced accuracy before {b0:.3f}, after {b1:.3f}; share of landslide pixels {p:.3f} "
          f"(all-landslide baseline: F1 {2 * p / (1 + p):.3f}, IoU {p:.3f})")
    assert b1 >= max(b0, 0.5) + 0.05
    assert s1["precision"] > s0["precision"]


def test_cli_chips_and_evaluate(scene: dict[str, Path]):
    """The same loop's export and evaluation from the ``landslide-mapper`` command."""
    out = scene["dir"] / "cli"
    out.mkdir()
    cmd = [sys.executable, "-m", "landslide_mapper.cli"]
    run = subprocess.run(cmd + ["chips", str(scene["raster"]), str(scene["landslides"]),
                                str(out / "chips"), "--checked-area", str(scene["checked"]),
                                "--tile-size", "64", "-q"],
                         capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr
    manifest = json.loads((out / "chips/manifest.json").read_text())
    assert manifest["counts"]["train"] > 0 and "EPSG:4326" in manifest["crs_name"]
    run = subprocess.run(cmd + ["evaluate", str(scene["reference"]), str(scene["landslides"]),
                                "--json"], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    # the reference mask against its own polygons: identical on every scored pixel
    assert doc["pixel"]["f1"] == pytest.approx(1.0) and doc["pixel"]["fp"] == 0
