"""``evaluate(tta=True)``: held-out scores with each image in its 8 orientations averaged."""

from __future__ import annotations

from landslide_mapper.core.models.dummy import build_dummy_model
from tests.unit.test_tta import asymmetric_model
from training.evaluate import evaluate

OPTIONS = {"label": "threshold=127"}


def scores(model, tiles, tta: bool) -> dict:
    return evaluate(model, tiles, fmt="tiles", options=OPTIONS, tta=tta)[tiles.name]


def test_tta_keeps_the_scores_of_a_pointwise_model(tiles, tmp_path):
    model = tmp_path / "linear.onnx"
    build_dummy_model(model, weights=[0.05, 0.0, 0.0], bias=-5.0)  # bright red = landslide
    plain, tta = scores(model, tiles, False), scores(model, tiles, True)
    assert plain["tp"] > 0
    assert {k: plain[k] for k in ("tp", "fp", "fn", "tn")} == \
        {k: tta[k] for k in ("tp", "fp", "fn", "tn")}


def test_tta_changes_the_scores_of_an_orientation_bound_model(tiles, tmp_path):
    model = tmp_path / "corner.onnx"
    asymmetric_model(model)
    plain, tta = scores(model, tiles, False), scores(model, tiles, True)
    assert plain["tp"] > 0
    assert (plain["tp"], plain["fp"]) != (tta["tp"], tta["fp"])
