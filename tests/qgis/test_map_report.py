"""``landslide_mapper:map_landslides`` with its optional inventory report (OUTPUT_REPORT)."""

from __future__ import annotations

import processing
import pytest
from qgis.core import QgsProcessingException

pytestmark = pytest.mark.qgis

ALG = "landslide_mapper:map_landslides"


def test_report_is_written_and_returned(provider, scene, model, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    result = processing.run(ALG, {
        "INPUT": str(scene), "MODEL": str(model), "OUTPUT_PROBABILITY": None, "OUTPUT_MASK": None,
        "OUTPUT_POLYGONS": str(out / "ls.gpkg"), "OUTPUT_REPORT": str(out / "report.html")})
    assert result["OUTPUT_REPORT"] == str(out / "report.html")
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<div class='key'>2</div>" in html and "rectangles" in html  # the two rectangles


def test_report_is_optional_and_off_by_default(provider, scene, model, tmp_path):
    result = processing.run(ALG, {"INPUT": str(scene), "MODEL": str(model),
                                  "OUTPUT_POLYGONS": str(tmp_path / "ls.gpkg")})
    assert result["OUTPUT_REPORT"] is None
    assert not list(tmp_path.glob("*.html"))


def test_report_over_the_input_is_refused(provider, scene, model, tmp_path):
    before = scene.read_bytes()
    with pytest.raises(QgsProcessingException, match="expected an .html file name"):
        processing.run(ALG, {"INPUT": str(scene), "MODEL": str(model),
                             "OUTPUT_POLYGONS": str(tmp_path / "ls.gpkg"),
                             "OUTPUT_REPORT": str(scene)})
    assert scene.read_bytes() == before and not (tmp_path / "ls.gpkg").exists()
