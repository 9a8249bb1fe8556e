"""evaluate_landslides: pixel scores by hand, object matching, areas, reports, training parity."""

from __future__ import annotations

import json
from pathlib import Path

import fiona
import numpy as np
import pytest
from shapely.geometry import box

from landslide_mapper.core.errors import InputError
from landslide_mapper.core.loop.evaluation import evaluate_landslides, match_polygons
from tests.support import make_raster, pixel_box, write_polygons


def mask(tmp_path: Path, name: str, *boxes, shape=(50, 50), nodata=None) -> Path:
    a = np.zeros(shape, "uint8")
    for r0, r1, c0, c1 in boxes:
        a[r0:r1, c0:c1] = 1
    return make_raster(tmp_path / name, a, nodata=nodata)


def test_pixel_scores_by_hand(tmp_path: Path):
    # predicted 10 x 10 at cols 10..19, reference 10 x 10 at cols 15..24: overlap 10 x 5
    pred = mask(tmp_path, "p.tif", (10, 20, 10, 20))
    ref = mask(tmp_path, "r.tif", (10, 20, 15, 25))
    res = evaluate_landslides(pred, ref)
    p = res.pixel
    assert (p["tp"], p["fp"], p["fn"], p["tn"]) == (50, 50, 50, 2500 - 150)
    assert p["precision"] == pytest.approx(0.5) and p["recall"] == pytest.approx(0.5)
    assert p["f1"] == pytest.approx(0.5) and p["iou_dataset"] == pytest.approx(50 / 150)
    assert p["accuracy"] == pytest.approx((50 + 2350) / 2500)
    # object IoU 1/3: no hit at 0.5, a hit at 0.3
    assert (res.hits, res.misses, res.false_alarms) == (0, 1, 1)
    low = evaluate_landslides(pred, ref, iou_threshold=0.3)
    assert (low.hits, low.misses, low.false_alarms) == (1, 0, 0)
    assert low.object_precision == low.object_recall == low.object_f1 == 1.0


def test_probability_raster_threshold_and_nodata(tmp_path: Path):
    prob = np.zeros((20, 20), "float32")
    prob[0:10, 0:10] = 0.7
    prob[10:20, 0:10] = 0.4
    prob[0:5, 10:20] = -1  # nodata: never scored
    p = make_raster(tmp_path / "prob.tif", prob, nodata=-1)
    r = mask(tmp_path, "r.tif", (0, 20, 0, 10), shape=(20, 20))
    res = evaluate_landslides(p, r, threshold=0.5)
    assert res.pixel["pixels"] == 400 - 50
    assert (res.pixel["tp"], res.pixel["fn"]) == (100, 100)
    res = evaluate_landslides(p, r, threshold=0.3)
    assert (res.pixel["tp"], res.pixel["fn"], res.pixel["fp"]) == (200, 0, 0)


def test_reference_polygons_rasterized_on_predicted_grid_and_area(tmp_path: Path):
    pred = mask(tmp_path, "p.tif", (10, 20, 10, 20), (30, 40, 30, 40))
    ref = write_polygons(tmp_path / "ref.gpkg",
                         [pixel_box(10, 20, 10, 20), pixel_box(0, 5, 40, 45)])
    res = evaluate_landslides(pred, ref)
    assert (res.pixel["tp"], res.pixel["fp"], res.pixel["fn"]) == (100, 100, 25)
    assert (res.hits, res.false_alarms, res.misses) == (1, 1, 1)
    # only rows 0..24 count: the second predicted square is out of the area
    res = evaluate_landslides(pred, ref, area=pixel_box(0, 25, 0, 50).bounds)
    assert res.pixel["pixels"] == 25 * 50
    assert (res.pixel["tp"], res.pixel["fp"], res.pixel["fn"]) == (100, 0, 25)
    assert (res.predicted_count, res.hits, res.false_alarms, res.misses) == (1, 1, 0, 1)


def test_both_polygons_at_a_pixel_size_and_other_crs(tmp_path: Path):
    ref = write_polygons(tmp_path / "ref.gpkg", [pixel_box(0, 10, 0, 10)])
    pred = write_polygons(tmp_path / "pred.gpkg", [pixel_box(0, 10, 0, 5)])
    res = evaluate_landslides(pred, ref, pixel_size=5.0)
    assert res.pixel["tp"] == 200 and res.pixel["fn"] == 200  # 5 m pixels: 4 per 10 m pixel
    assert res.pixel["iou_dataset"] == pytest.approx(0.5)
    assert res.hits == 1  # IoU exactly 0.5


def test_greedy_one_to_one_matching():
    refs = [box(0, 0, 10, 10), box(10, 0, 20, 10)]
    preds = [box(1, 0, 11, 10), box(0, 0, 9, 10), box(100, 100, 101, 101)]
    m = match_polygons(preds, refs, 0.5)
    # pred 1 vs ref 0: IoU 0.9 wins; pred 0 vs ref 0 (9/11) is taken, vs ref 1 (1/19) too low
    assert m.pred_match == [-1, 0, -1] and m.ref_match == [1, -1]
    assert m.pred_iou[1] == pytest.approx(0.9) and m.hits == 1
    assert m.pred_iou[0] == pytest.approx(9 / 11)  # best IoU reported for a false alarm


def test_outputs_polygons_and_report(tmp_path: Path):
    pred = mask(tmp_path, "p.tif", (10, 20, 10, 20), (30, 34, 30, 34))
    ref = write_polygons(tmp_path / "ref.gpkg",
                         [pixel_box(10, 20, 10, 21), pixel_box(0, 5, 40, 45)])
    res = evaluate_landslides(pred, ref, out_polygons=tmp_path / "m.gpkg",
                              report_path=tmp_path / "report.html")
    with fiona.open(tmp_path / "m.gpkg", layer="predicted") as src:
        rows = sorted((f.properties["status"], f.properties["match_id"],
                       round(f.properties["match_iou"], 4), f.properties["area_m2"]) for f in src)
    # match_id is the reference feature's id (the GeoPackage FID, from 1)
    assert rows == [("false_alarm", -1, 0.0, 1600.0), ("hit", 1, round(100 / 110, 4), 10000.0)]
    with fiona.open(tmp_path / "m.gpkg", layer="reference") as src:
        assert sorted(f.properties["status"] for f in src) == ["hit", "miss"]
    # the reference polygons to a file of their own (the GeoPackage then holds one layer)
    evaluate_landslides(pred, ref, out_polygons=tmp_path / "p.gpkg",
                        out_reference=tmp_path / "ref.geojson")
    with fiona.open(tmp_path / "ref.geojson") as src:
        assert sorted(f.properties["status"] for f in src) == ["hit", "miss"]
    assert fiona.listlayers(tmp_path / "p.gpkg") == ["predicted"]
    text = (tmp_path / "report.html").read_text()
    assert "<table" in text and "object recall" in text and "0.5000" in text
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["objects"]["hits"] == 1 == res.hits
    res.markdown().index("| hits (IoU >= 0.5) | 1 |")
    evaluate_landslides(pred, ref, report_path=tmp_path / "report.md")
    assert "| pixel f1 |" in (tmp_path / "report.md").read_text()


def test_no_overlap_is_an_error(tmp_path: Path):
    pred = mask(tmp_path, "p.tif", (1, 2, 1, 2))
    far = write_polygons(tmp_path / "far.gpkg", [box(0, 0, 10, 10)])
    with pytest.raises(InputError, match="no pixel is scored"):
        evaluate_landslides(pred, tmp_path / "p.tif", area=(0, 0, 10, 10))
    res = evaluate_landslides(pred, far)  # reference off the grid: nothing found, all pixels kept
    assert res.pixel["tp"] == 0 and res.reference_count == 1


def test_training_scores_with_the_same_definitions():
    """Training's validation and this evaluation share one implementation of the metrics."""
    metrics = pytest.importorskip("training.metrics")
    from landslide_mapper.core.loop import metrics as core_metrics

    assert metrics.scores is core_metrics.scores
    assert metrics.SegmentationScores is core_metrics.SegmentationScores


def test_raster_inputs_scored_in_strips(tmp_path: Path, monkeypatch):
    """Rasters are read a few rows at a time: counts, polygons and matches do not change."""
    from affine import Affine

    from landslide_mapper.core.loop import evaluation_scan
    from tests.support import UTM_ORIGIN

    pred = np.zeros((40, 30), "uint8")
    pred[5:30, 3:6] = pred[5:30, 10:13] = pred[27:30, 3:13] = 1  # a U, joined on row 27
    pred[35:38, 20:25] = 1
    ref = np.zeros((40, 30), "uint8")
    ref[5:30, 3:13] = ref[35:38, 20:26] = 1
    ref[0, :] = 255  # unknown: not scored
    p, r = make_raster(tmp_path / "p.tif", pred), make_raster(tmp_path / "r.tif", ref)
    t = UTM_ORIGIN
    r5 = make_raster(tmp_path / "r5.tif", np.kron(ref, np.ones((2, 2), "uint8")),
                     transform=Affine(t.a / 2, 0, t.c, 0, t.e / 2, t.f))
    whole = evaluate_landslides(p, r)
    monkeypatch.setattr(evaluation_scan, "STRIP_PIXELS", 2 * 30)  # two rows a strip
    res = evaluate_landslides(p, r, out_polygons=tmp_path / "m.gpkg")
    assert res.as_dict() == whole.as_dict()
    valid = ref != 255
    land, truth = (pred == 1) & valid, (ref == 1) & valid
    expected = [int(np.count_nonzero(a & b & valid)) for a, b in
                ((land, truth), (land, ~truth), (~land, truth), (~land, ~truth))]
    assert [res.pixel[k] for k in ("tp", "fp", "fn", "tn")] == expected
    assert (res.predicted_count, res.reference_count, res.hits) == (2, 2, 2)
    with fiona.open(tmp_path / "m.gpkg", layer="predicted") as src:
        rows = sorted((f.properties["area_m2"], round(f.properties["match_iou"], 4)) for f in src)
    u = int(np.count_nonzero(pred[:30]))
    assert rows == [(1500.0, round(15 / 18, 4)), (u * 100.0, round(u / 250, 4))]
    warped = evaluate_landslides(p, r5)  # 5 m reference, read onto the 10 m grid in strips
    assert warped.pixel == whole.pixel and warped.hits == 2
