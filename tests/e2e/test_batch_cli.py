"""``landslide-mapper batch`` pointed at a real Dask cluster: a scheduler and two workers started
as separate processes (``dask scheduler``, ``dask worker``) on the loopback address.

The processes are always terminated in the fixture's teardown; every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import fiona
import numpy as np
import pytest
import rasterio

from landslide_mapper.core.models.dummy import build_dummy_model
from tests.support import make_raster

CLI = [sys.executable, "-m", "landslide_mapper.cli"]
# The venv's ``dask`` command (the one installed with distributed), as an operator starts it.
DASK_CLI = str(Path(sys.executable).parent / "dask")
DASK = [DASK_CLI, "scheduler"]
WORKER = [DASK_CLI, "worker"]
START_TIMEOUT_S = 60


def run(*args, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=300, **kw)


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in reversed(procs):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in reversed(procs):
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory) -> str:
    """The address of a scheduler on 127.0.0.1 with two single-thread workers."""
    from distributed import Client

    folder = tmp_path_factory.mktemp("dask")
    file = folder / "scheduler.json"
    logs = open(folder / "dask.log", "w")
    procs = [subprocess.Popen([*DASK, "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(file)], stdout=logs, stderr=logs,
                              cwd=folder)]
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not file.is_file():
            if time.monotonic() > deadline or procs[0].poll() is not None:
                pytest.fail(f"dask scheduler did not start: {(folder / 'dask.log').read_text()}")
            time.sleep(0.2)
        for k in range(2):
            procs.append(subprocess.Popen(
                [*WORKER, "--scheduler-file", str(file), "--nthreads", "1", "--nworkers", "1",
                 "--no-dashboard", "--host", "127.0.0.1", "--name", f"worker-{k}",
                 "--local-directory", str(folder / f"w{k}")], stdout=logs, stderr=logs,
                cwd=folder))
        with Client(scheduler_file=str(file), timeout=START_TIMEOUT_S) as client:
            client.wait_for_workers(2, timeout=START_TIMEOUT_S)
            address = client.scheduler.address
        yield address
    finally:
        _stop(procs)
        logs.close()


@pytest.fixture()
def rasters(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(3):
        data = np.full((3, 120, 100), 10, np.uint16)
        data[:, 10 + 20 * k:30 + 20 * k, 20:40] = 200  # one 20 x 20 bright square each
        make_raster(folder / f"scene{k}.tif", data, descriptions=["red", "green", "blue"])
    (folder / "corrupt.tif").write_bytes(b"not a raster")
    return folder


@pytest.fixture()
def model(tmp_path: Path) -> Path:
    path = tmp_path / "bright.onnx"
    build_dummy_model(path, weights=[1 / 30] * 3, bias=-10.0, name="bright", tile_size=64,
                      overlap=16)
    return path


def test_batch_on_a_separate_scheduler_and_workers(tmp_path, scheduler, rasters, model):
    out = tmp_path / "out"
    res = run("batch", rasters, "--model", model, "--out-dir", out, "--scheduler", scheduler)
    assert res.returncode == 1, res.stderr  # the corrupt file failed
    assert "Scheduler tcp://127.0.0.1" in res.stderr and "2 workers" in res.stderr
    lines = {line.split()[0]: line for line in res.stdout.splitlines() if line.split()}
    assert lines["corrupt"].split()[1] == "failed" and "corrupt.tif" in lines["corrupt"]
    for k in range(3):
        assert lines[f"scene{k}"].split()[1:4] == ["done", "1", "4.00"]
    with fiona.open(out / "landslides.gpkg") as layer:
        sources = sorted(Path(f["properties"]["source"]).name for f in layer)
    assert sources == ["scene0.tif", "scene1.tif", "scene2.tif"]

    # The same raster split into blocks of rows on the two workers: identical to 'map'.
    scene = rasters / "scene1.tif"
    res = run("map", scene, "--model", model, "--probability", tmp_path / "p.tif",
              "--mask", tmp_path / "m.tif", "--quiet")
    assert res.returncode == 0, res.stderr
    res = run("batch", scene, "--model", model, "--out-dir", tmp_path / "split", "--scheduler",
              scheduler, "--split-rows", "25", "--quiet")
    assert res.returncode == 0, res.stderr
    for mine, theirs in (("p.tif", "probability.tif"), ("m.tif", "mask.tif")):
        with rasterio.open(tmp_path / mine) as a, \
                rasterio.open(tmp_path / "split" / "scene1" / theirs) as b:
            np.testing.assert_array_equal(a.read(), b.read())


def test_local_cluster_and_rerun(tmp_path, rasters, model):
    (rasters / "corrupt.tif").unlink()
    out = tmp_path / "out"
    res = run("batch", str(rasters / "scene*.tif"), "--model", model, "--out-dir", out,
              "--workers", "2", "--threads-per-worker", "1")
    assert res.returncode == 0, res.stderr
    assert "Local cluster: 2 workers x 1 model thread" in res.stderr
    assert "dashboard: http" in res.stdout
    res = run("batch", str(rasters / "scene*.tif"), "--model", model, "--out-dir", out, "-q")
    assert res.returncode == 0 and res.stdout.count("skipped") == 3


def test_options_of_a_single_run_on_a_local_cluster(tmp_path, rasters, model):
    """--slope and --min-slope drop the flat landslide (the summary says where), --layer names the
    inventory's layer, and --rescale is a setting of its own (the rasters are mapped again)."""
    import csv

    (rasters / "corrupt.tif").unlink()
    slope = np.where(np.arange(120) < 50, 30.0, 0.0)[:, None].repeat(100, 1)  # flat south
    slope_path = make_raster(tmp_path / "slope.tif", slope.astype(np.float32))
    out = tmp_path / "out"
    args = ["batch", str(rasters / "scene*.tif"), "--model", model, "--out-dir", out,
            "--workers", "1", "--quiet"]
    res = run(*args, "--min-slope", "5")
    assert res.returncode == 1 and "Minimum slope 5 degrees: expected a DEM or a slope raster" \
        in res.stderr and not out.exists()
    res = run(*args, "--slope", slope_path, "--min-slope", "10", "--layer", "event")
    assert res.returncode == 0, res.stderr
    lines = {line.split()[0]: line.split() for line in res.stdout.splitlines() if line.split()}
    assert lines["raster"][:6] == ["raster", "status", "polygons", "area_ha", "dropped",
                                   "dropped_ha"]
    assert [lines[f"scene{k}"][1:6] for k in range(3)] == [
        ["done", "1", "4.00", "0", "0.00"], ["done", "1", "4.00", "0", "0.00"],
        ["done", "0", "0.00", "1", "4.00"]]
    assert "1 polygon (4.00 ha) dropped for a mean slope under 10 degrees" in res.stdout
    assert fiona.listlayers(out / "landslides.gpkg") == ["event"]
    with fiona.open(out / "landslides.gpkg", layer="event") as layer:
        assert sorted(Path(f["properties"]["source"]).name for f in layer) == [
            "scene0.tif", "scene1.tif"]
    with open(out / "summary.csv", newline="") as f:
        assert [r["slope_dropped"] for r in csv.DictReader(f)] == ["0", "0", "1"]
    res = run(*args, "--slope", slope_path, "--min-slope", "10", "--layer", "event",
              "--rescale")
    assert res.returncode == 0 and res.stdout.count(" done ") == 3, res.stderr
