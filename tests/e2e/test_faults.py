"""Faults per surface, as a user meets them: the ``landslide-mapper`` command and ``qgis_process``.

Every case asserts the same things: a non-zero exit, one line that names the input (or output),
what was expected and what was found, no traceback, no file that existed before changed (hashed
before and after), no partial file left. The faults:

- an input GeoTIFF truncated, or damaged, in the middle: the header reads, a block halfway fails
  (so the run is well under way when it fails), for every command that reads rasters;
- a reference that is not a vector file, a contract file that is not UTF-8;
- a full disk (a real 1 MB tmpfs filled to its last byte; root only, skipped with the reason
  elsewhere: ``tests/unit/test_staging.py`` injects the same faults without mounting);
- SIGTERM in the middle of a run (exit 143, nothing left) and SIGKILL (its partial files are
  removed by the next run writing to that folder).
"""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil

from landslide_mapper.core.mapping.engine import map_landslides
from landslide_mapper.core.models.dummy import build_dummy_model
from tests.support import make_raster

CLI = [sys.executable, "-m", "landslide_mapper.cli"]
#: What existed in an output folder before a failed run; every case checks it is unchanged.
EARLIER = ("p.tif", "m.tif", "ls.gpkg", "stack.tif", "slope.tif", "model2.onnx", "report.md")


def run_cli(*args: object, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    env.pop("LANDSLIDE_MAPPER_DEBUG", None)
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=300, **kw)


def quiet(command: str) -> tuple[str, ...]:
    """No progress bar, for the commands that draw one."""
    return ("--quiet",) if command in ("map", "vectorize", "prepare", "slope", "chips") else ()


def listing(folder: Path) -> dict[str, str]:
    """Every file under ``folder``, hidden ones too, with its SHA-256."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def damaged_copy(src: Path, dst: Path, how: str) -> Path:
    """A tiled, compressed copy of ``src`` (its directory first, as GDAL writes copies) whose
    data is cut off (``truncated``) or overwritten (``damaged``) halfway through."""
    rasterio.shutil.copy(src, dst, driver="GTiff", tiled=True, blockxsize=64, blockysize=64,
                         compress="deflate")
    with rasterio.open(dst) as ds:
        ny = -(-ds.height // 64)
        offset = int(ds.get_tag_item(f"BLOCK_OFFSET_1_{ny // 2}", "TIFF", bidx=1))
        size = int(ds.get_tag_item(f"BLOCK_SIZE_1_{ny // 2}", "TIFF", bidx=1))
    if how == "truncated":
        os.truncate(dst, offset + size // 2)
    else:
        with open(dst, "r+b") as f:
            f.seek(offset + 2)
            f.write(b"\xff" * (size - 2))  # a deflate block of the reserved type: invalid
    return dst


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Inputs, good and bad: a 3-band scene, its mask and polygons, a DEM, a model, and broken
    copies (truncated, damaged, not a vector, not UTF-8)."""
    d = tmp_path_factory.mktemp("fault_inputs")
    rng = np.random.default_rng(7)
    scene = make_raster(d / "scene.tif", rng.integers(0, 255, (3, 512, 512)).astype(np.uint8),
                        descriptions=["red", "green", "blue"])
    build_dummy_model(d / "model.onnx", weights=[1 / 300] * 3, bias=-1.2, name="noise")
    map_landslides(scene, d / "model.onnx", mask_path=d / "mask.tif",
                   polygons_path=d / "pred.gpkg")
    yy, xx = np.mgrid[0:512, 0:512]
    make_raster(d / "dem.tif", (xx * 0.5 + yy * 0.3 + 20 * np.sin(xx / 9)).astype(np.float32))
    for name in ("scene", "mask", "dem"):
        damaged_copy(d / f"{name}.tif", d / f"{name}_truncated.tif", "truncated")
    damaged_copy(d / "scene.tif", d / "scene_damaged.tif", "damaged")
    (d / "notvector.gpkg").write_text("id,name\n1,not a GeoPackage\n", encoding="utf-8")
    (d / "notvector.csv").write_text("id,name\n1,not polygons\n", encoding="utf-8")
    (d / "contract_latin1.json").write_bytes('{"name": "d\u00e9bris"}'.encode("latin-1"))
    (d / "contract_binary.json").write_bytes(bytes(range(256)))
    return d


@pytest.fixture()
def out(tmp_path: Path) -> Path:
    """An output folder holding earlier results."""
    folder = tmp_path / "out"
    folder.mkdir()
    for name in EARLIER:
        (folder / name).write_bytes(b"earlier result: " + name.encode())
    return folder


def assert_one_line_error(done: subprocess.CompletedProcess, *names: str) -> str:
    """Non-zero exit; stderr is one line (no traceback) naming ``names``, expected and found."""
    text = done.stdout + done.stderr
    assert done.returncode != 0, text
    assert "Traceback" not in text, text
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, text
    line = lines[0]
    for name in names:
        assert name in line, line
    assert "expected" in line.lower() and "found" in line.lower(), line
    return line


def assert_nothing_changed(folder: Path, before: dict[str, str]) -> None:
    after = listing(folder)
    assert after == before, {k: v for k, v in after.items() if before.get(k) != v}
    assert not [p for p in folder.rglob(".*")], "partial files left"


# ---------------------------------------------------------------------------- bad inputs, CLI

READ_FAULTS = {
    "map-truncated": lambda d, o: ("scene_truncated.tif", "map", d / "scene_truncated.tif",
                                   "--model", d / "model.onnx", "--probability", o / "p.tif",
                                   "--polygons", o / "ls.gpkg"),
    "map-damaged": lambda d, o: ("scene_damaged.tif", "map", d / "scene_damaged.tif",
                                 "--model", d / "model.onnx", "--mask", o / "m.tif"),
    "vectorize-truncated": lambda d, o: ("mask_truncated.tif", "vectorize",
                                         d / "mask_truncated.tif", "--polygons", o / "ls.gpkg"),
    "prepare-truncated": lambda d, o: ("scene_truncated.tif", "prepare",
                                       d / "scene_truncated.tif", o / "stack.tif"),
    "slope-truncated": lambda d, o: ("dem_truncated.tif", "slope", d / "dem_truncated.tif",
                                     o / "slope.tif"),
    "chips-truncated": lambda d, o: ("scene_truncated.tif", "chips", d / "scene_truncated.tif",
                                     d / "pred.gpkg", o / "chips"),
    "evaluate-truncated": lambda d, o: ("mask_truncated.tif", "evaluate",
                                        d / "mask_truncated.tif", d / "pred.gpkg",
                                        "--report", o / "report.md"),
    "evaluate-reference-not-vector": lambda d, o: ("notvector.gpkg", "evaluate", d / "pred.gpkg",
                                                   d / "notvector.gpkg"),
    "evaluate-reference-csv": lambda d, o: ("notvector.csv", "evaluate", d / "pred.gpkg",
                                            d / "notvector.csv"),
    "contract-latin1": lambda d, o: ("contract_latin1.json", "contract", d / "model.onnx",
                                     d / "contract_latin1.json", "-o", o / "model2.onnx"),
    "contract-binary": lambda d, o: ("contract_binary.json", "contract", d / "model.onnx",
                                     d / "contract_binary.json", "-o", o / "model2.onnx"),
}


@pytest.mark.parametrize("case", sorted(READ_FAULTS))
def test_cli_bad_input(case, data, out):
    name, *args = READ_FAULTS[case](data, out)
    before = listing(out)
    inputs_before = listing(data)
    done = run_cli(*args, *quiet(args[0]))
    assert_one_line_error(done, name)
    assert_nothing_changed(out, before)
    assert listing(data) == inputs_before


# ---------------------------------------------------------------------------- a full disk, CLI


@pytest.fixture()
def full_disk(tmp_path: Path):
    """A 1 MB tmpfs holding earlier results, filled to its last byte (root only)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}); "
                    "tests/unit/test_staging.py injects the same faults")
    try:
        for name in EARLIER:
            (mount / name).write_bytes(b"earlier result: " + name.encode())
        with open(mount / "filler", "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


DISK_FULL = {
    "map": lambda d, o: ("map", d / "scene.tif", "--model", d / "model.onnx",
                         "--probability", o / "p.tif", "--mask", o / "m.tif",
                         "--polygons", o / "ls.gpkg"),
    "map-polygons": lambda d, o: ("map", d / "scene.tif", "--model", d / "model.onnx",
                                  "--polygons", o / "ls.gpkg"),
    "vectorize": lambda d, o: ("vectorize", d / "mask.tif", "--polygons", o / "ls.gpkg"),
    "prepare": lambda d, o: ("prepare", d / "scene.tif", o / "stack.tif"),
    "slope": lambda d, o: ("slope", d / "dem.tif", o / "slope.tif"),
    "chips": lambda d, o: ("chips", d / "scene.tif", d / "pred.gpkg", o / "chips"),
    "evaluate": lambda d, o: ("evaluate", d / "mask.tif", d / "pred.gpkg",
                              "--report", o / "report.md"),
    "evaluate-polygons": lambda d, o: ("evaluate", d / "mask.tif", d / "pred.gpkg",
                                       "--polygons", o / "ls.gpkg"),
    "contract": lambda d, o: ("contract", d / "model.onnx", d / "contract.json",
                              "-o", o / "model2.onnx"),
}


@pytest.mark.parametrize("case", sorted(DISK_FULL))
def test_cli_full_disk(case, data, full_disk):
    if case == "contract":
        info = run_cli("info", data / "model.onnx", "--json")
        assert info.returncode == 0, info.stderr
        (data / "contract.json").write_text(info.stdout, encoding="utf-8")
    args = DISK_FULL[case](data, full_disk)
    before = listing(full_disk)
    done = run_cli(*args, *quiet(args[0]))
    line = assert_one_line_error(done, str(full_disk))
    assert "expected to write it completely" in line and "MB free there" in line, line
    assert_nothing_changed(full_disk, before)


# ---------------------------------------------------------------------------- signals, CLI


def _long_map(data: Path, folder: Path) -> subprocess.Popen:
    """A map run of several seconds: small tiles, one at a time, on a 1024 x 1024 scene."""
    big = data / "big.tif"
    if not big.exists():
        rng = np.random.default_rng(8)
        make_raster(big, rng.integers(0, 255, (3, 1024, 1024)).astype(np.uint8),
                    descriptions=["red", "green", "blue"])
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.Popen(
        [*CLI, "map", str(big), "--model", str(data / "model.onnx"), "--tile-size", "32",
         "--overlap", "16", "--batch-size", "1", "--probability", str(folder / "p.tif"),
         "--polygons", str(folder / "ls.gpkg"), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_partials(proc: subprocess.Popen, folder: Path, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if any(p.name.startswith(".") for p in folder.iterdir()):
            time.sleep(0.5)  # well into the run
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    pytest.fail("the run wrote no temporary file in time")


def test_sigterm_cancels_like_ctrl_c(data, out):
    before = listing(out)
    proc = _long_map(data, out)
    _wait_for_partials(proc, out)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stdout + stderr
    assert "Traceback" not in stderr and "cancelled" in stderr, stderr
    assert_nothing_changed(out, before)


def test_partials_of_a_killed_run_are_swept_by_the_next(data, out):
    before = listing(out)
    proc = _long_map(data, out)
    _wait_for_partials(proc, out)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    left = [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert left, "SIGKILL leaves the partial files it was writing"
    done = run_cli("vectorize", data / "mask.tif", "--polygons", out / "other.gpkg", "--quiet")
    assert done.returncode == 0, done.stderr
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    after = listing(out)
    assert {k: v for k, v in after.items() if k != "other.gpkg"} == before


# ---------------------------------------------------------------------------- qgis_process

QGIS_CASES = {
    "map-truncated": ("scene_truncated.tif", "landslide_mapper:map_landslides",
                      lambda d, o: {"INPUT": d / "scene_truncated.tif", "MODEL": d / "model.onnx",
                                    "OUTPUT_PROBABILITY": o / "p.tif",
                                    "OUTPUT_POLYGONS": o / "ls.gpkg"}),
    "vectorize-truncated": ("mask_truncated.tif", "landslide_mapper:vectorize_mask",
                            lambda d, o: {"INPUT": d / "mask_truncated.tif",
                                          "OUTPUT_POLYGONS": o / "ls.gpkg"}),
    "prepare-truncated": ("scene_truncated.tif", "landslide_mapper:prepare_sentinel2_stack",
                          lambda d, o: {"INPUT": d / "scene_truncated.tif",
                                        "OUTPUT": o / "stack.tif"}),
    "chips-truncated": ("scene_truncated.tif", "landslide_mapper:export_training_chips",
                        lambda d, o: {"INPUT": d / "scene_truncated.tif",
                                      "POLYGONS": d / "pred.gpkg", "OUTPUT": o / "chips"}),
    "evaluate-truncated": ("mask_truncated.tif", "landslide_mapper:evaluate_landslides",
                           lambda d, o: {"PREDICTED": d / "mask_truncated.tif",
                                         "REFERENCE": d / "pred.gpkg",
                                         "OUTPUT_POLYGONS": o / "eval.gpkg",
                                         "OUTPUT_REFERENCE": o / "eval_ref.gpkg",
                                         "OUTPUT_REPORT": o / "report.md"}),
    "evaluate-reference-not-vector": ("notvector.csv", "landslide_mapper:evaluate_landslides",
                                      lambda d, o: {"PREDICTED": d / "pred.gpkg",
                                                    "REFERENCE": d / "notvector.csv",
                                                    "OUTPUT_POLYGONS": o / "eval.gpkg",
                                                    "OUTPUT_REFERENCE": o / "eval_ref.gpkg",
                                                    "OUTPUT_REPORT": o / "report.md"}),
}


@pytest.fixture(scope="module")
def qgis_env(tmp_path_factory):
    """The plugin installed for ``qgis_process`` (the fixture of test_qgis_process.py)."""
    qp = pytest.importorskip("tests.e2e.test_qgis_process", reason="QGIS is not importable")
    if not Path(qp.QGIS_PROCESS).is_file():
        pytest.skip(f"qgis_process.bin not found ({qp.QGIS_PROCESS})")
    return qp.qgis_env.__wrapped__(tmp_path_factory), qp.qgis_process


def assert_qgis_error(done: subprocess.CompletedProcess, *names: str) -> str:
    """Non-zero exit, no traceback, and the engine's one-line message among QGIS's own lines."""
    text = done.stdout + done.stderr
    assert done.returncode != 0, text
    assert "Traceback" not in text, text
    ours = [line for line in text.splitlines()
            if all(n in line for n in names) and "expected" in line.lower()
            and "found" in line.lower()]
    assert ours, text
    return ours[0]


@pytest.mark.qgis
@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(QGIS_CASES))
def test_qgis_process_bad_input(case, data, out, qgis_env):
    env, qgis_process = qgis_env
    name, alg, params = QGIS_CASES[case]
    before = listing(out)
    done = qgis_process(env, "run", alg, "--",
                        *(f"{k}={v}" for k, v in params(data, out).items()))
    assert_qgis_error(done, name)
    assert_nothing_changed(out, before)


@pytest.mark.qgis
@pytest.mark.slow
def test_qgis_process_map_on_a_full_disk(data, full_disk, qgis_env):
    env, qgis_process = qgis_env
    before = listing(full_disk)
    done = qgis_process(env, "run", "landslide_mapper:map_landslides", "--",
                        f"INPUT={data / 'scene.tif'}", f"MODEL={data / 'model.onnx'}",
                        f"OUTPUT_PROBABILITY={full_disk / 'p.tif'}",
                        f"OUTPUT_MASK={full_disk / 'm.tif'}",
                        f"OUTPUT_POLYGONS={full_disk / 'ls.gpkg'}")
    line = assert_qgis_error(done, str(full_disk))
    assert "expected to write it completely" in line, line
    assert_nothing_changed(full_disk, before)
