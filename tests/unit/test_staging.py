"""Outputs under temporary names: write failures caught before publishing, stale partials swept.

A full disk is tested twice: with a real, tiny tmpfs (root only; skipped with the reason
elsewhere) and with faults injected by monkeypatching (a GeoTIFF that loses its tail on close, a
failing fsync, a failing polygon write), so a machine without mount rights still tests it.
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from fiona.errors import FionaError

from landslide_mapper.core import staging
from landslide_mapper.core.errors import InputError, OutputError
from landslide_mapper.core.inputs.terrain import compute_slope
from landslide_mapper.core.mapping.engine import map_landslides
from landslide_mapper.core.models.dummy import build_dummy_model
from landslide_mapper.core.polygons.vectorize import vectorize_mask
from landslide_mapper.core.raster import io as rio
from tests.support import make_raster


def listing(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) and its SHA-256."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def scene(tmp_path: Path) -> Path:
    (tmp_path / "in").mkdir(exist_ok=True)
    data = np.random.default_rng(1).integers(0, 255, (3, 300, 300)).astype(np.uint8)
    return make_raster(tmp_path / "in" / "scene.tif", data, descriptions=["red", "green", "blue"])


@pytest.fixture()
def model(tmp_path: Path) -> Path:
    (tmp_path / "in").mkdir(exist_ok=True)
    path = tmp_path / "in" / "m.onnx"
    build_dummy_model(path, weights=[1 / 300] * 3, bias=-1.2, name="noise")
    return path


@pytest.fixture()
def out(tmp_path: Path) -> Path:
    """An output folder holding earlier results that must survive a failed run."""
    folder = tmp_path / "out"
    folder.mkdir()
    for name in ("p.tif", "m.tif", "ls.gpkg", "slope.tif"):
        (folder / name).write_bytes(b"earlier result " + name.encode())
    return folder


# ---------------------------------------------------------------------------- temporary names


def test_temporary_names_carry_host_and_pid_and_map_back_to_the_target(tmp_path):
    t = staging.temporary_sibling(tmp_path / "landslides.gpkg")
    assert t.parent == tmp_path and t.name.startswith(".landslides.lm-")
    assert f"-{os.getpid()}-" in t.name and t.suffix == ".gpkg"
    assert staging.published_path(t) == tmp_path / "landslides.gpkg"
    nested = staging.temporary_sibling(t)  # the engine stages, the polygon writer stages again
    assert staging.published_path(nested) == tmp_path / "landslides.gpkg"
    folder = staging.temporary_sibling(tmp_path / "chips")
    assert staging.published_path(folder / "train" / "a.tif") == tmp_path / "chips/train/a.tif"


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_sweep_removes_only_stale_partials_of_ours(tmp_path):
    host = staging.host_tag()
    other_host = f"{(int(host, 16) + 1) % 0x10000:04x}"
    dead = _dead_pid()
    old = time.time() - staging.STALE_AFTER_S - 60
    files = {
        f".p.lm-{host}-{dead}-0123abcd.partial.tif": True,             # dead writer, this host
        f".ls.lm-{host}-{dead}-0123abce.partial.gpkg-journal": True,    # its side-car
        f".p.lm-{host}-{os.getpid()}-0123abcf.partial.tif": False,      # this process: running
        f".p.lm-{other_host}-{dead}-0123abd0.partial.tif": False,       # other host, recent
        f".q.lm-{other_host}-{dead}-0123abd1.partial.tif": "old",       # other host, a day old
        ".p.89abcdef.partial.tif": False,                               # earlier naming, recent
        ".q.89abcdef.partial.tif": "old",                               # earlier naming, old
        ".r.partial-89abcdef.gpkg": "old",
        "p.tif": False,                                                 # not ours
        ".hidden.tif": "keep-old",                                      # not ours, old
        f"lm-{host}-{dead}-0123abd2.partial.tif": False,                # not hidden: not ours
    }
    for name, stale in files.items():
        (tmp_path / name).write_bytes(b"x")
        if stale in ("old", "keep-old"):
            os.utime(tmp_path / name, (old, old))
    stale_dir = tmp_path / f".chips.lm-{host}-{dead}-0123abd3.partial"
    (stale_dir / "train").mkdir(parents=True)
    (stale_dir / "train" / "a.tif").write_bytes(b"x")
    removed = {p.name for p in staging.sweep_stale(tmp_path)}
    expected = {n for n, s in files.items() if s in (True, "old")} | {stale_dir.name}
    assert removed == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(set(files) - expected)


def test_writing_an_output_sweeps_its_folder(tmp_path, scene, model):
    dead = _dead_pid()
    stale = tmp_path / "o" / f".p.lm-{staging.host_tag()}-{dead}-0123abcd.partial.tif"
    stale.parent.mkdir()
    stale.write_bytes(b"left by a killed run" * 1000)
    map_landslides(scene, model, probability_path=tmp_path / "o" / "p.tif")
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["p.tif"]


# ---------------------------------------------------------------------------- injected faults


def _truncating_create_output(monkeypatch, keep: float = 0.5) -> None:
    """Every raster the engine creates loses its tail on close, as on a disk that filled up."""
    real = rio.create_output

    class Truncating:
        def __init__(self, dst, path):
            self._dst, self._path = dst, Path(path)

        def __getattr__(self, name):
            return getattr(self._dst, name)

        def close(self):
            self._dst.close()
            os.truncate(self._path, int(self._path.stat().st_size * keep))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.close()

    def create_output(path, **kwargs):
        return Truncating(real(path, **kwargs), path)

    monkeypatch.setattr(rio, "create_output", create_output)


@pytest.mark.parametrize("outputs", [("p.tif",), ("m.tif",), ("p.tif", "m.tif", "ls.gpkg")])
def test_map_with_a_raster_cut_short_publishes_nothing(monkeypatch, scene, model, out, outputs):
    before = listing(out)
    _truncating_create_output(monkeypatch)
    paths = {"probability_path": "p.tif", "mask_path": "m.tif", "polygons_path": "ls.gpkg"}
    kwargs = {k: out / v for k, v in paths.items() if v in outputs}
    with pytest.raises(OutputError, match=r"blocks of the raster missing|cannot be read back"):
        map_landslides(scene, model, **kwargs)
    assert listing(out) == before


def test_a_failing_fsync_leaves_the_earlier_file(monkeypatch, scene, model, out):
    before = listing(out)

    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)
    for target in ("p.tif", "ls.gpkg"):
        with pytest.raises(OutputError) as err:
            map_landslides(scene, model, **{"probability_path" if target == "p.tif"
                                            else "polygons_path": out / target})
        message = str(err.value)
        assert "disk is full" in message and str(out / target) in message
        assert "previous file is unchanged" in message and "\n" not in message
        assert listing(out) == before
    dem = make_raster(out.parent / "in" / "dem.tif", np.arange(90000, dtype=np.float32)
                      .reshape(300, 300))
    with pytest.raises(OutputError, match="disk is full"):
        compute_slope(dem, out / "slope.tif")
    assert listing(out) == before


def test_a_failing_polygon_write_is_one_short_error(monkeypatch, scene, model, out, tmp_path):
    mask = tmp_path / "in" / "mask.tif"
    map_landslides(scene, model, mask_path=mask)
    before = listing(out)
    from fiona.collection import Collection

    def writerecords(self, records):
        raise FionaError(
            "sqlite3_exec(COMMIT) failed: database or disk is full\n"
            + "INSERT INTO landslides VALUES (...);" * 500)

    monkeypatch.setattr(Collection, "writerecords", writerecords)
    with pytest.raises(OutputError) as err:
        vectorize_mask(mask, out / "ls.gpkg")
    message = str(err.value)
    assert "\n" not in message and len(message) < 600, message  # no SQL dump
    assert str(out / "ls.gpkg") in message and "disk is full" in message
    assert listing(out) == before


def test_a_truncated_input_is_one_line_naming_it(tmp_path, model):
    rng = np.random.default_rng(2)
    src = make_raster(tmp_path / "plain.tif", rng.integers(0, 255, (3, 600, 600)).astype(np.uint8),
                      descriptions=["red", "green", "blue"])
    tiled = tmp_path / "cut.tif"
    rasterio.shutil.copy(src, tiled, driver="GTiff", tiled=True, compress="deflate")
    with rasterio.open(tiled) as ds:
        offset = int(ds.get_tag_item("BLOCK_OFFSET_1_1", "TIFF", bidx=1))
    os.truncate(tiled, offset + 10)
    with pytest.raises(InputError) as err:
        map_landslides(tiled, model, probability_path=tmp_path / "p.tif")
    message = str(err.value)
    assert message.startswith(f"Input raster {tiled}:") and "truncated or damaged" in message
    assert "expected a complete file" in message and "\n" not in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.tif", "in", "plain.tif"]


# ---------------------------------------------------------------------------- a real full disk


@pytest.fixture()
def tiny_disk(tmp_path):
    """A 1 MB tmpfs holding earlier results and filled up to its last byte (root only)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}); "
                    "the injected faults above cover the same checks")
    try:
        for name in ("p.tif", "m.tif", "ls.gpkg", "slope.tif"):
            (mount / name).write_bytes(b"earlier result " + name.encode())
        fill_up(mount / "filler")
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def fill_up(path: Path) -> None:
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def test_map_on_a_full_disk_fails_and_keeps_the_earlier_files(tiny_disk, scene, model):
    before = listing(tiny_disk)
    with pytest.raises(OutputError) as err:
        map_landslides(scene, model, probability_path=tiny_disk / "p.tif",
                       mask_path=tiny_disk / "m.tif", polygons_path=tiny_disk / "ls.gpkg")
    assert "\n" not in str(err.value) and str(tiny_disk) in str(err.value)
    assert listing(tiny_disk) == before


def test_slope_on_a_full_disk_fails_and_keeps_the_earlier_file(tiny_disk, tmp_path):
    dem = make_raster(tmp_path / "dem.tif", np.random.default_rng(3).random((300, 300))
                      .astype(np.float32) * 100)
    before = listing(tiny_disk)
    with pytest.raises(OutputError, match="Slope raster"):
        compute_slope(dem, tiny_disk / "slope.tif")
    assert listing(tiny_disk) == before
