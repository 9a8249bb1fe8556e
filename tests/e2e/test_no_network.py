"""The commands run without a network: nothing they do at run time reaches outside the machine.

Each command runs as a user runs it (a subprocess) with ``network_guard/sitecustomize.py`` on
``PYTHONPATH``: an audit hook in every Python process of the command (Dask workers included)
refuses any connect, send or name lookup towards another machine and writes it to a log. A
command passes when it exits 0, wrote what it should, the guard was loaded, and the log holds no
attempt. Local sockets (Unix, loopback: Dask's scheduler and workers) stay allowed. Native code
opening sockets without Python (GDAL's curl, for one) is outside what the hook sees.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from landslide_mapper.core.models.dummy import build_dummy_model
from tests.support import REPO, make_raster

sys.path.insert(0, str(REPO))
from scripts import make_fixtures as fx  # noqa: E402
from tests.training.conftest import tiny_config, write_tiles  # noqa: E402

GUARD = Path(__file__).resolve().parent / "network_guard"
#: Switches that make libraries stay offline on their own; cleared so the guard sees what a
#: user's machine (without them) would do.
OFFLINE_SWITCHES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")

pytestmark = pytest.mark.slow


def guarded(args, log: Path, cwd: Path) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run ``python ARGS`` under the guard; returns the process and the guard's log lines."""
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_SWITCHES}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(GUARD), str(REPO),
                                                    env.get("PYTHONPATH", "")) if p)
    env["LANDSLIDE_NETWORK_LOG"] = str(log)
    env["PYTHONWARNINGS"] = "ignore"
    log.unlink(missing_ok=True)
    res = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                         env=env, cwd=cwd, timeout=600)
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return res, lines


def check(res: subprocess.CompletedProcess, lines: list[str]) -> None:
    attempts = [line for line in lines if not line.startswith("loaded ")]
    assert res.returncode == 0, res.stderr[-3000:]
    assert any(line.startswith("loaded ") for line in lines), "the guard did not run"
    assert not attempts, "network access attempted:\n" + "\n".join(attempts)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("offline")
    rng = np.random.default_rng(7)
    scene = rng.integers(300, 1500, (3, 96, 96)).astype(np.uint16)
    scene[:, 30:60, 30:60] += 2500  # a bright patch
    mask = np.zeros((80, 80), np.uint8)
    mask[10:30, 10:30] = 1
    tiles = write_tiles(root / "tiles", n=4)
    config = root / "tiny.yaml"  # JSON is YAML
    config.write_text(json.dumps(tiny_config(tiles, epochs=1)), encoding="utf-8")
    safe = fx.make_l2a(root / "s2")
    dummy = root / "dummy.onnx"
    build_dummy_model(dummy, weights=[0.01, 0.01, 0.01], bias=-1.0, pixel_size_m=1.0)
    return {
        "root": root,
        "scene": make_raster(root / "scene.tif", scene, descriptions=["B04", "B03", "B02"]),
        "mask": make_raster(root / "mask.tif", mask),
        "tiles": tiles,
        "config": config,
        "s2_zip": fx.zip_product(safe),
        "s2_safe": safe,
        "dummy": dummy,
    }


MAPPER = ["-m", "landslide_mapper.cli"]
TRAIN = ["-m", "training.cli"]

#: command -> (arguments, given the inputs and an output folder; what it writes)
COMMANDS = {
    "map": (lambda i, out: [*MAPPER, "map", i["scene"], "--model", "sentinel2-rgb", "--polygons",
                            out / "ls.gpkg", "--probability", out / "p.tif", "--mask",
                            out / "m.tif", "-q"], ["ls.gpkg", "p.tif", "m.tif"]),
    "vectorize": (lambda i, out: [*MAPPER, "vectorize", i["mask"], "--polygons", out / "v.gpkg",
                                  "-q"], ["v.gpkg"]),
    "prepare zip": (lambda i, out: [*MAPPER, "prepare", i["s2_zip"], out / "stack.tif",
                                    "--bands", "B02,B03,B04", "-q"], ["stack.tif"]),
    "prepare SAFE": (lambda i, out: [*MAPPER, "prepare", i["s2_safe"], out / "stack.tif",
                                     "--bands", "B04,B11", "-q"], ["stack.tif"]),
    "batch": (lambda i, out: [*MAPPER, "batch", i["scene"], "--model", "sentinel2-rgb",
                              "--out-dir", out / "batch", "--workers", "1", "-q"],
              ["batch/summary.csv", "batch/landslides.gpkg"]),
    "train evaluate onnx": (lambda i, out: [*TRAIN, "evaluate", "--model", i["dummy"], "--data",
                                            i["tiles"], "--format", "tiles", "--label",
                                            "threshold=127", "--json", out / "s.json"],
                            ["s.json"]),
    "train fit": (lambda i, out: [*TRAIN, "fit", "--config", i["config"], "--run-dir",
                                  out / "run", "--max-steps", "1", "--threads", "1", "--quiet"],
                  ["run/best.pt"]),
}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_command_runs_without_network(inputs, tmp_path, name):
    if name.startswith("train"):
        pytest.importorskip("torch")
    make_args, written = COMMANDS[name]
    out = tmp_path / "out"
    out.mkdir()
    res, lines = guarded(make_args(inputs, out), tmp_path / "network.log", cwd=tmp_path)
    check(res, lines)
    missing = [w for w in written if not (out / w).exists()]
    assert not missing, f"{name} did not write {missing}: {res.stderr[-2000:]}"


def test_the_guard_catches_a_download(tmp_path):
    code = "import urllib.request; urllib.request.urlopen('http://example.com', timeout=5)"
    res, lines = guarded(["-c", code], tmp_path / "network.log", cwd=tmp_path)
    assert res.returncode != 0 and "blocked by the test's guard" in res.stderr
    assert [line.split(" from ")[0] for line in lines if line.startswith("blocked ")] == [
        "blocked socket.getaddrinfo 'example.com' pid " + lines[0].split()[-1]]
    with pytest.raises(AssertionError, match="network access attempted"):
        check(subprocess.CompletedProcess([], 0, "", ""), lines)


def test_the_guard_catches_a_connect_by_address_and_lets_loopback_through(tmp_path):
    code = ("import socket\n"
            "server = socket.create_server(('127.0.0.1', 0))\n"
            "socket.create_connection(server.getsockname(), timeout=5).close()\n"
            "try:\n"  # an address needs no name lookup: the connect itself is caught
            "    socket.socket().connect(('192.0.2.1', 80))\n"
            "except OSError as exc:\n"
            "    print(exc)\n")
    res, lines = guarded(["-c", code], tmp_path / "network.log", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "blocked by the test's guard: socket.connect ('192.0.2.1', 80)" in res.stdout
    blocked = [line for line in lines if line.startswith("blocked ")]
    assert len(blocked) == 1 and "('192.0.2.1', 80)" in blocked[0]
