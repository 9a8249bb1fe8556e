"""The inventory report: the power-law fit, the numbers it states, a page that needs nothing
online, and the mapping run that writes it with its other outputs."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import fiona
import numpy as np
import pytest
from shapely.geometry import mapping

from landslide_mapper.core.contract import read_contract
from landslide_mapper.core.errors import CancelledError, OutputError
from landslide_mapper.core.mapping.engine import map_landslides
from landslide_mapper.core.models.dummy import build_dummy_model
from landslide_mapper.core.report import ReportRun, build_report, check_report_target
from landslide_mapper.core.report.inventory import read_inventory, scene_date
from landslide_mapper.core.report.overview import read_overview, rgb_band_indexes
from landslide_mapper.core.report.powerlaw import (
    MIN_AREAS,
    fit_power_law,
    log_binned_density,
    mle_exponent,
)
from landslide_mapper.core.report.scores import score_rows
from tests.support import make_raster, pixel_box


def power_law_sample(rng, beta: float, cutoff: float, n: int) -> np.ndarray:
    """Areas >= cutoff with density ~ A^-beta (inverse of the CDF)."""
    return cutoff * (1.0 - rng.random(n)) ** (-1.0 / (beta - 1.0))


# ---------------------------------------------------------------------------------------------
# The power-law fit


@pytest.mark.parametrize("beta", [2.0, 2.4, 2.8])
def test_mle_recovers_a_known_exponent(beta):
    rng = np.random.default_rng(7)
    areas = power_law_sample(rng, beta, 500.0, 4000)
    estimate, n = mle_exponent(areas, 500.0)
    assert n == 4000
    assert abs(estimate - beta) < 3 * (beta - 1) / np.sqrt(n)  # within 3 standard errors


def test_ks_cutoff_finds_where_the_power_law_starts():
    # Below 1000 m2 the areas are spread evenly (a rollover, no power law); above, beta = 2.4.
    rng = np.random.default_rng(11)
    areas = np.concatenate([rng.uniform(100.0, 1000.0, 2000),
                            power_law_sample(rng, 2.4, 1000.0, 3000)])
    rng.shuffle(areas)
    fit = fit_power_law(areas)
    assert fit is not None
    assert 700.0 < fit.cutoff < 1500.0
    assert abs(fit.beta - 2.4) < 0.1
    assert fit.n == 5000 and fit.n_tail == int((areas >= fit.cutoff).sum())
    # A cutoff far inside the rollover fits worse than the one chosen.
    low, _ = mle_exponent(areas, 150.0)
    assert abs(low - 2.4) > 0.3


def test_fit_survives_pixel_sized_areas():
    # Areas that are whole numbers of 100 m2 pixels repeat: ties must not break the KS distance.
    rng = np.random.default_rng(3)
    areas = np.round(power_law_sample(rng, 2.5, 2000.0, 2000) / 100.0) * 100.0
    fit = fit_power_law(areas)
    assert fit is not None and abs(fit.beta - 2.5) < 0.15


def test_too_few_areas_are_not_fitted():
    rng = np.random.default_rng(5)
    assert fit_power_law(power_law_sample(rng, 2.4, 100.0, MIN_AREAS - 1)) is None
    assert fit_power_law(power_law_sample(rng, 2.4, 100.0, MIN_AREAS + 50)) is not None


def test_log_binned_density_is_count_over_n_times_width():
    centres, density, counts = log_binned_density([10.0, 20.0, 150.0, 700.0], bins_per_decade=1)
    # bins [10, 100) and [100, 1000]
    assert counts.tolist() == [2, 2]
    assert centres == pytest.approx([np.sqrt(10 * 100), np.sqrt(100 * 1000)])
    assert density == pytest.approx([2 / (4 * 90.0), 2 / (4 * 900.0)])


# ---------------------------------------------------------------------------------------------
# What the report states


def _polygons(path: Path, with_areas: bool = True) -> Path:
    """Four squares of 30, 20, 50 and 10 pixels a side at 10 m (UTM), ids 1..4."""
    sides = [30, 20, 50, 10]
    props = {"id": "int", "perimeter_m": "float", "prob_mean": "float",
             "centroid_lon": "float", "centroid_lat": "float", "slope_mean": "float"}
    if with_areas:
        props["area_m2"] = "float"
    schema = {"geometry": "Polygon", "properties": props}
    with fiona.open(path, "w", driver="GPKG", schema=schema, crs="EPSG:32654",
                    layer="landslides") as dst:
        for k, side in enumerate(sides):
            r0 = 5 + 55 * (k // 2)
            c0 = 5 + 60 * (k % 2)
            values = {"id": k + 1, "perimeter_m": 40.0 * side, "prob_mean": 0.5 + k / 10,
                      "centroid_lon": 141.0 + k / 100, "centroid_lat": 42.0 + k / 100,
                      "slope_mean": 10.0 + 5 * k}
            if with_areas:
                values["area_m2"] = 100.0 * side * side
            dst.write({"geometry": mapping(pixel_box(r0, r0 + side, c0, c0 + side)),
                       "properties": values})
    return path


def _largest_rows(html: str) -> list[list[str]]:
    table = html.split("<h2>Largest landslides</h2>", 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table)[1:]  # the first row is the heading
    return [re.findall(r"<td class='n'>(.*?)</td>", r) for r in rows]


@pytest.mark.parametrize("with_areas", [True, False])
def test_inventory_numbers_of_known_polygons(tmp_path, with_areas):
    path = _polygons(tmp_path / "ls.gpkg", with_areas)
    inventory = read_inventory(path, "landslides")
    assert inventory.count == 4
    assert inventory.total_m2 == pytest.approx(100.0 * (30**2 + 20**2 + 50**2 + 10**2))
    assert [a["id"] for _, a in inventory.largest(3)] == [3, 1, 2]
    assert [a["area_m2"] for _, a in inventory.largest(2)] == pytest.approx([250_000, 90_000])


def _scene(tmp_path: Path, **kw) -> Path:
    data = np.full((3, 120, 130), 40, np.uint16)
    data[:, :, :10] = 0  # a black collar: no data, shown transparent
    data[0, 20:40, 30:50] = 300
    return make_raster(tmp_path / "scene.tif", data, descriptions=["red", "green", "blue"], **kw)


def test_report_states_count_total_and_largest(tmp_path):
    polygons = _polygons(tmp_path / "ls.gpkg")
    html = build_report(ReportRun(raster=_scene(tmp_path), polygons=polygons, layer="landslides"))
    assert "<div class='key'>4</div>" in html
    assert "39.00 ha" in html and "0.390 km²" in html  # 390 000 m2
    rows = _largest_rows(html)
    assert [r[1] for r in rows] == ["3", "1", "2", "4"]           # id, largest first
    assert [r[2] for r in rows] == ["25.00", "9.00", "4.00", "1.00"]  # ha
    assert rows[0][4] == "2\u202f000.0"                           # perimeter (m)
    assert rows[0][7] == "0.700" and rows[0][8] == "20.0"         # mean probability, slope
    assert "Too few landslides for a power-law fit" in html
    assert "<h2>Terrain of the landslides</h2>" in html and "slope: slope_mean" in html
    assert "not recorded in the raster" in html                  # no acquisition date
    assert "held-out scores not recorded" in html


def test_report_is_one_self_contained_page(tmp_path):
    polygons = _polygons(tmp_path / "ls.gpkg")
    model = tmp_path / "m.onnx"
    build_dummy_model(model, metrics={"f1": 0.81, "precision": 0.8, "recall": 0.82})
    html = build_report(ReportRun(raster=_scene(tmp_path), polygons=polygons, layer="landslides",
                                  contract=read_contract(model), model_file=model))
    assert not re.search(r"(src|href)\s*=\s*['\"]?\s*(https?:)?//", html, re.I)
    assert not re.search(r"<script|<link|@import|url\(", html, re.I)
    sources = re.findall(r"src='([^']*)'", html)
    assert len(sources) >= 2 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "0.810" in html  # the contract's F1


def test_scores_flat_nested_and_none():
    columns, rows = score_rows({"all": {"f1": 0.6, "images": 9}, "a": {"f1": 0.7, "recall": 0.5}})
    assert [name for name, _ in rows] == ["a", "all"] and columns == ["images", "recall", "f1"]
    assert score_rows({"f1": 0.9})[1] == [("held-out data", {"f1": 0.9})]
    assert score_rows({}) == ([], [])


def test_scene_date_from_metadata_or_product_name():
    assert scene_date({"ACQUISITION_DATE": "2018-09-11T01:36:51Z"}) == (
        "2018-09-11", "metadata item ACQUISITION_DATE")
    name = "S2B_MSIL2A_20180911T013651_N0208_R031_T54TWN_20180911T060412.SAFE.zip"
    assert scene_date({"product": f"/data/{name}"})[0] == "2018-09-11"
    assert scene_date({}, "S2A_MSIL1C_20180901T013651_N0206.tif")[0] == "2018-09-01"
    assert scene_date({"TIFFTAG_DATETIME": "2024:01:02 10:00:00"}) == (None, None)


def test_overview_bands_and_bounded_size(tmp_path):
    l4s = [[f"sentinel2:B{k:02d}"] for k in (1, 2, 3, 4, 5)]
    assert rgb_band_indexes(l4s, [1, 2, 3, 4, 5], 5) == [4, 3, 2]
    assert rgb_band_indexes([["nir"], ["swir"]], [1, 2], 2) == [1]
    assert rgb_band_indexes(None, None, 4) == [1, 2, 3]
    overview = read_overview(_scene(tmp_path), [1, 2, 3], size=50)
    assert max(overview.rgba.shape[:2]) <= 50
    assert (overview.rgba[:, 0, 3] == 0).all() and (overview.rgba[:, -1, 3] == 255).all()


# ---------------------------------------------------------------------------------------------
# A mapping run that writes the report


@pytest.fixture()
def bright(tmp_path):
    path = tmp_path / "bright.onnx"
    # logit = (r + g + b) / 30 - 10: the red square (300 + 40 + 40) is a landslide, nothing else
    build_dummy_model(path, weights=[1 / 30] * 3, bias=-10.0, name="bright",
                      metrics={"held_out": {"f1": 0.75, "images": 12}})
    return path


def test_map_writes_the_report_with_the_polygons(tmp_path, bright):
    scene = _scene(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    result = map_landslides(scene, bright, polygons_path=out / "ls.gpkg",
                            report_path=out / "report.html")
    assert result.report_path == out / "report.html"
    assert sorted(p.name for p in out.iterdir()) == ["ls.gpkg", "report.html"]
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<div class='key'>1</div>" in html and "4.00 ha" in html  # 20 x 20 pixels at 10 m
    assert "bright" in html and "0.750" in html
    assert "Terrain of the landslides" not in html  # no DEM, no slope or elevation attributes


def test_report_path_on_the_input_is_refused(tmp_path, bright):
    scene = _scene(tmp_path)
    html_input = tmp_path / "notes.html"
    html_input.write_text("keep me", encoding="utf-8")
    before = scene.read_bytes()
    with pytest.raises(OutputError, match="Report"):
        map_landslides(scene, bright, polygons_path=tmp_path / "ls.gpkg", report_path=scene)
    with pytest.raises(OutputError, match="notes.html"):
        map_landslides(html_input, bright, polygons_path=tmp_path / "ls.gpkg",
                       report_path=html_input)
    assert scene.read_bytes() == before and html_input.read_text(encoding="utf-8") == "keep me"
    assert not (tmp_path / "ls.gpkg").exists()


def test_report_needs_polygons_and_an_html_name(tmp_path, bright):
    scene = _scene(tmp_path)
    with pytest.raises(OutputError, match="polygon output"):
        map_landslides(scene, bright, mask_path=tmp_path / "m.tif", report_path=tmp_path / "r.html")
    with pytest.raises(OutputError, match="html"):
        map_landslides(scene, bright, polygons_path=tmp_path / "ls.gpkg",
                       report_path=tmp_path / "r.pdf")
    with pytest.raises(OutputError, match="same file"):
        map_landslides(scene, bright, polygons_path=tmp_path / "ls.gpkg",
                       mask_path=tmp_path / "r.html", report_path=tmp_path / "r.html")


def test_a_failed_or_cancelled_run_leaves_no_report_and_no_polygons(tmp_path, bright,
                                                                    monkeypatch):
    scene = _scene(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(CancelledError):
        map_landslides(scene, bright, polygons_path=out / "ls.gpkg",
                       report_path=out / "report.html", is_canceled=lambda: True)
    assert list(out.iterdir()) == []

    def broken(run):
        raise OutputError("Report: drawing failed")

    monkeypatch.setattr("landslide_mapper.core.report.build.build_report", broken)
    with pytest.raises(OutputError, match="drawing failed"):
        map_landslides(scene, bright, polygons_path=out / "ls.gpkg",
                       report_path=out / "report.html")
    assert list(out.iterdir()) == []


def test_missing_matplotlib_is_refused_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(OutputError, match="matplotlib"):
        check_report_target(tmp_path / "report.html")
