"""``landslide-mapper map --report`` as a user runs it: a subprocess, exit codes, files written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support import bright_model, make_raster, shared_data

CLI = [sys.executable, "-m", "landslide_mapper.cli"]


def run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=300)


@pytest.fixture()
def scene(tmp_path: Path) -> Path:
    """Forty bright squares of 3 to 12 pixels a side at 10 m on a dark field."""
    rng = np.random.default_rng(0)
    data = np.full((3, 400, 400), 10, np.uint16)
    for k in range(40):
        side = int(rng.integers(3, 13))
        r, c = 20 + 45 * (k // 8), 10 + 48 * (k % 8)
        data[:, r:r + side, c:c + side] = 200
    return make_raster(tmp_path / "scene.tif", data, descriptions=["red", "green", "blue"])


@pytest.fixture()
def model(tmp_path: Path) -> Path:
    return bright_model(tmp_path / "bright.onnx")


def test_map_writes_a_report(tmp_path, scene, model):
    out = tmp_path / "out"
    out.mkdir()
    res = run("map", scene, "--model", model, "--polygons", out / "ls.gpkg", "--min-area", "0",
              "--report", out / "report.html", "--quiet")
    assert res.returncode == 0, res.stderr
    assert f"report: {out / 'report.html'}" in res.stdout
    assert sorted(p.name for p in out.iterdir()) == ["ls.gpkg", "report.html"]
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<div class='key'>40</div>" in html
    assert "power-law exponent β" in html  # 40 landslides: fitted


def test_report_without_polygons_is_a_usage_error(tmp_path, scene, model):
    res = run("map", scene, "--model", model, "--mask", tmp_path / "m.tif",
              "--report", tmp_path / "r.html", "-q")
    assert res.returncode == 2 and "--report needs --polygons" in res.stderr
    assert not (tmp_path / "m.tif").exists()


def test_report_over_an_input_is_refused(tmp_path, scene, model):
    # The DEM is checked as an input before it is read: a report over it stops the run first.
    page = tmp_path / "notes.html"
    page.write_text("kept", encoding="utf-8")
    res = run("map", scene, "--model", model, "--polygons", tmp_path / "ls.gpkg",
              "--dem", page, "--report", page, "-q")
    assert res.returncode == 1
    assert re.search(r"Report .*notes\.html.*same file as the DEM", res.stderr), res.stderr
    assert page.read_text(encoding="utf-8") == "kept" and not (tmp_path / "ls.gpkg").exists()
    res = run("map", scene, "--model", model, "--polygons", tmp_path / "ls.gpkg",
              "--report", scene, "-q")
    assert res.returncode == 1 and "expected an .html file name" in res.stderr


@pytest.mark.realdata
def test_report_of_the_iburi_scene(tmp_path):
    post = shared_data("sentinel2_iburi2018", "post-event")
    stack = tmp_path / "iburi.tif"
    bands = [post / f"download.{b}.tif" for b in ("B4", "B3", "B2")]
    assert run("prepare", *bands, stack, "--model", "sentinel2-rgb", "-q").returncode == 0
    res = run("map", stack, "--model", "sentinel2-rgb", "--polygons", tmp_path / "ls.gpkg",
              "--min-area", "500", "--report", tmp_path / "report.html", "-q")
    assert res.returncode == 0, res.stderr
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    beta = float(re.search(r"<b>β = ([0-9.]+) ±", html).group(1))
    assert 1.5 < beta < 4.0  # a power-law tail was fitted to hundreds of scars
    assert "WGS 84 (EPSG:4326)" in html and "landslide4sense_rgb" in html
