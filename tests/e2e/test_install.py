"""Installing the plugin as a new user does: a fresh QGIS profile, the zip, the package installer.

Every QGIS here is ``qgis_process.bin`` started with a clean environment (``env -i`` style: no
project venv on ``PYTHONPATH``, a fresh ``QGIS_CUSTOM_CONFIG_PATH``), so the only Python packages
it sees are the system Python's and what ``landslide_mapper:install_dependencies`` installs into
the profile. Covered: the online install (the lock file for this host, hash-checked) then mapping
one raster and many (``map_many`` on Dask) in new processes, a second run being a no-op, the
offline install from a wheel folder (``pip download`` of the lock once, cached in
``.cache/wheels`` under a name holding the hash of the requirements and the lock), a failing
install (unreachable index) that leaves QGIS loading the plugin, a wheel folder lacking a
package, and a wheel whose hash is not the lock's (refused, nothing installed). pip's HTTP cache
lives in ``.cache/pip`` so repeated runs download nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

import fiona
import numpy as np
import pytest

from landslide_mapper.processing.locks import find_lock, platform_key, read_lock
from tests.support import REPO, make_raster, shared_data
from tests.unit.test_installer import sha256, tiny_wheel, write_lock

QGIS_PROCESS = shutil.which("qgis_process.bin") or "/usr/bin/qgis_process.bin"
QGIS_PYTHON = "/usr/bin/python3"  # the interpreter whose library QGIS embeds (Debian's QGIS)
CACHE = REPO / ".cache"
INSTALL = "landslide_mapper:install_dependencies"
MAP = "landslide_mapper:map_landslides"
MAP_MANY = "landslide_mapper:map_many"

pytestmark = [
    pytest.mark.qgis,
    pytest.mark.slow,  # each install runs pip (about 30 s); each qgis_process call about 3 s
    pytest.mark.skipif(not Path(QGIS_PROCESS).is_file(),
                       reason=f"qgis_process.bin not found ({QGIS_PROCESS})"),
    pytest.mark.skipif(not Path(QGIS_PYTHON).is_file(), reason=f"{QGIS_PYTHON} not found"),
]


def _system_python(code: str) -> str:
    done = subprocess.run([QGIS_PYTHON, "-c", code], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@dataclass
class FreshQgis:
    """A QGIS profile folder with the plugin zip installed and enabled, run through qgis_process."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def profile(self) -> Path:
        return self.config / "profiles" / "default"

    @property
    def deps(self) -> Path:
        version = _system_python("import sys; print('%d.%d' % sys.version_info[:2])")
        return self.profile / "python" / "landslide_mapper_deps" / f"py{version}"

    def env(self) -> dict[str, str]:
        runtime = self.root / "runtime"
        runtime.mkdir(mode=0o700, exist_ok=True)
        (self.root / "home").mkdir(exist_ok=True)
        return {
            "HOME": str(self.root / "home"), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
            "XDG_RUNTIME_DIR": str(runtime), "QT_QPA_PLATFORM": "offscreen",
            "QGIS_CUSTOM_CONFIG_PATH": str(self.config),
            "PIP_CACHE_DIR": str(CACHE / "pip"),  # pip's own HTTP cache: repeated runs are fast
        }

    def run(self, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
        done = subprocess.run([QGIS_PROCESS, *args], capture_output=True, text=True,
                              timeout=timeout, env=self.env(), cwd=str(self.root))
        done.output = done.stdout + done.stderr  # type: ignore[attr-defined]
        return done


def fresh_qgis(root: Path, plugin_zip: Path) -> FreshQgis:
    """Unzip the plugin into a new profile's plugin folder and enable it, as a user would."""
    qgis = FreshQgis(root)
    plugins = qgis.profile / "python" / "plugins"
    plugins.mkdir(parents=True)
    with zipfile.ZipFile(plugin_zip) as zf:
        zf.extractall(plugins)
    enabled = qgis.run("plugins", "enable", "landslide_mapper")
    assert enabled.returncode == 0, enabled.output
    return qgis


@pytest.fixture(scope="module")
def plugin_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("zip")
    built = subprocess.run([QGIS_PYTHON, str(REPO / "scripts" / "build_plugin_zip.py"),
                            "--out-dir", str(out)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    [path] = out.glob("*.zip")
    return path


def host_lock(variant: str = "cpu") -> Path:
    """The plugin's lock file for QGIS's Python on this machine."""
    version = _system_python("import sys; print('%d.%d' % sys.version_info[:2])")
    machine = _system_python("import platform; print(platform.machine())")
    return find_lock(platform_key("linux", machine), version, variant)


@pytest.fixture(scope="session")
def wheel_folder() -> Path:
    """The wheels of the CPU lock file for QGIS's Python, as an offline install uses them.

    Made once with ``pip download`` of the lock (as a user prepares an offline install on a
    connected machine) and kept in ``.cache/wheels``, in a folder named after the hash of the
    requirements and the lock, so a changed requirement set downloads again; skipped with the
    reason when pip cannot download.
    """
    numpy = _system_python("import numpy; print(numpy.__version__)")
    version = _system_python("import sys; print('%d.%d' % sys.version_info[:2])")
    lock = host_lock()
    digest = hashlib.sha256((REPO / "landslide_mapper" / "requirements.txt").read_bytes()
                            + lock.read_bytes()).hexdigest()[:12]
    folder = CACHE / "wheels" / f"py{version}-numpy{numpy}-{digest}"
    if (folder / "COMPLETE").is_file():
        return folder
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    done = subprocess.run(
        [QGIS_PYTHON, "-m", "pip", "download", "--only-binary=:all:", "--no-deps",
         "--require-hashes", "-d", str(partial), "-r", str(lock)],
        capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        pytest.skip(f"pip download failed, no wheel folder: {done.stderr.strip()[-300:]}")
    (partial / "COMPLETE").write_text("pip download finished\n")
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return folder


def small_scene(folder: Path) -> Path:
    """An RGB orthophoto-like raster (0.5 m pixels) with one bright scar."""
    rng = np.random.default_rng(7)
    data = (rng.random((3, 160, 160)) * 60 + 60).astype("uint8")
    data[:, 40:110, 30:120] = 215
    from affine import Affine

    return make_raster(folder / "scene.tif", data,
                       transform=Affine(0.5, 0, 500000.0, 0, -0.5, 4000000.0),
                       descriptions=["red", "green", "blue"])


def map_with(qgis: FreshQgis, raster: Path, model: str, out: Path) -> int:
    """Map ``raster`` in a new qgis_process; the number of polygons written."""
    done = qgis.run("run", MAP, "--", f"INPUT={raster}", f"MODEL={model}",
                    f"OUTPUT_POLYGONS={out}")
    assert done.returncode == 0, done.output[-3000:]
    assert out.is_file(), done.output[-3000:]
    with fiona.open(out) as src:
        return len(src)


def _record(qgis: FreshQgis) -> dict:
    return json.loads((qgis.deps / "landslide_mapper_install.json").read_text())


@pytest.fixture(scope="module")
def installed(tmp_path_factory, plugin_zip) -> tuple[FreshQgis, subprocess.CompletedProcess]:
    """A fresh profile whose packages were installed online by the installer."""
    qgis = fresh_qgis(tmp_path_factory.mktemp("online"), plugin_zip)
    before = qgis.run("list")
    assert "needs the Python package(s)" in before.output
    assert INSTALL in before.stdout and MAP in before.stdout  # registered even so
    return qgis, qgis.run("run", INSTALL)


def test_online_install_then_map_in_a_new_process(installed, tmp_path):
    qgis, done = installed
    assert done.returncode == 0, done.output[-3000:]
    assert "Installed: rasterio" in done.output
    assert "onnxruntime: CPU build" in done.output or "onnxruntime: GPU build" in done.output
    assert "--require-hashes" in done.output and "--no-deps" in done.output
    record = _record(qgis)
    assert {"rasterio", "onnx", "shapely", "fiona", "affine", "dask", "distributed"} <= set(
        record["packages"])
    lock = read_lock(host_lock("gpu" if record["onnxruntime"] == "onnxruntime-gpu" else "cpu"))
    assert (record["lock"], record["lock_sha256"]) == (lock.path.name, lock.sha256)
    assert record["packages"] == lock.packages  # exactly the lock: nothing more, nothing else
    assert "Checked: every installed package's requirements are met, QGIS's own packages " \
        "included" in done.output
    assert record["packages"]["affine"].split(".")[0] != "3"
    # QGIS's own numpy is never replaced: no numpy in the plugin's folder.
    assert not list(qgis.deps.glob("numpy*"))
    assert record["numpy"] == _system_python("import numpy; print(numpy.__version__)")
    assert not [p.name for p in qgis.deps.parent.iterdir() if p.name.startswith(".")]
    assert map_with(qgis, small_scene(tmp_path), "aerial-rgb", tmp_path / "out.gpkg") >= 1


def test_installed_wheels_use_their_own_geos_inside_qgis(installed, tmp_path):
    """The wheels in the profile folder coexist with QGIS's GEOS/GDAL/PROJ (RTLD_DEEPBIND):
    exact areas of known squares, not empty or broken polygons."""
    qgis, done = installed
    assert done.returncode == 0
    mask = np.zeros((20, 20), dtype="uint8")
    mask[2:5, 2:5] = 1  # 3 x 3 pixels of 10 m: 900 m2
    mask[10:14, 8:13] = 1  # 4 x 5 pixels: 2000 m2
    raster = make_raster(tmp_path / "mask.tif", mask)
    out = tmp_path / "squares.gpkg"
    run = qgis.run("run", "landslide_mapper:vectorize_mask", "--", f"INPUT={raster}",
                   f"OUTPUT_POLYGONS={out}", "MIN_AREA_M2=0")
    assert run.returncode == 0, run.output[-3000:]
    with fiona.open(out) as src:
        areas = sorted(f["properties"]["area_m2"] for f in src)
    assert areas == [900, 2000]


def test_second_run_is_a_no_op_that_says_what_is_installed(installed):
    qgis, first = installed
    assert first.returncode == 0
    stamp = (qgis.deps / "landslide_mapper_install.json").stat().st_mtime_ns
    again = qgis.run("run", INSTALL)
    assert again.returncode == 0, again.output[-3000:]
    assert "Already installed, nothing to do: rasterio" in again.output
    assert "Running:" not in again.output  # pip did not run
    assert (qgis.deps / "landslide_mapper_install.json").stat().st_mtime_ns == stamp
    listed = qgis.run("list")
    assert "needs the Python package(s)" not in listed.output


@pytest.mark.realdata
def test_iburi_scene_mapped_after_install(installed, tmp_path):
    qgis, done = installed
    assert done.returncode == 0
    folder = shared_data("sentinel2_iburi2018", "post-event")
    from landslide_mapper.core.inputs.sentinel2 import prepare_sentinel2_stack

    raster = tmp_path / "iburi_rgb.tif"
    prepare_sentinel2_stack([folder / f"download.{b}.tif" for b in ("B4", "B3", "B2")], raster,
                            bands=["B04", "B03", "B02"])
    assert map_with(qgis, raster, "sentinel2-rgb", tmp_path / "iburi.gpkg") > 0


def test_map_many_runs_on_dask_after_install(installed, tmp_path):
    """The installer brings Dask distributed: map_many maps two rasters in a new qgis_process,
    its workers separate Python processes (qgis_process's executable is QGIS's python3)."""
    qgis, done = installed
    assert done.returncode == 0
    for side in ("east", "west"):
        (tmp_path / side).mkdir()
    scenes = [small_scene(tmp_path / side) for side in ("east", "west")]
    out = tmp_path / "many"
    run = qgis.run("run", MAP_MANY, "--", *(f"INPUT={s}" for s in scenes), "MODEL=aerial-rgb",
                   "WORKERS=2", f"OUTPUT_FOLDER={out}")
    assert run.returncode == 0, run.output[-3000:]
    assert "Dask workers: separate Python processes (/usr/bin/python3, Python 3." in run.output
    results = dict(line.split(":\t", 1) for line in run.stdout.splitlines() if ":\t" in line)
    assert (results["MAPPED"], results["FAILED"]) == ("2", "0"), run.output[-3000:]
    with fiona.open(results["OUTPUT_POLYGONS"]) as src:
        sources = sorted({f["properties"]["source"] for f in src})
        count = len(src)
    assert sources == sorted(str(s) for s in scenes) and count == int(results["POLYGON_COUNT"])
    assert count >= 2
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert len(folders) == 2 and all(f.startswith("scene-") for f in folders)
    assert (out / "summary.csv").is_file()


def test_a_wheel_whose_hash_is_not_the_locks_is_refused(tmp_path, plugin_zip):
    """A lock of one small package and a wheel folder serving another file of the same name and
    version (rebuilt, tampered): refused with the paragraph, nothing installed; the released file
    then installs."""
    released = tiny_wheel(tmp_path / "released", "lm_probe")
    lock = write_lock(tmp_path / "lock", {"lm-probe==1.0": sha256(released)},
                      name="tiny-lock.txt")
    tampered = tiny_wheel(tmp_path / "wheels", "lm_probe", value=666)
    qgis = fresh_qgis(tmp_path / "profile", plugin_zip)
    done = qgis.run("run", INSTALL, "--", f"WHEELS={tampered.parent}", f"LOCK={lock}")
    assert done.returncode != 0
    assert "--no-index" in done.output and "--require-hashes" in done.output
    assert (f"Refused: the wheel folder {tampered.parent} offered a file that is not the one the "
            f"lock file tiny-lock.txt lists, for lm-probe==1.0 (lm_probe-1.0-py3-none-any.whl: "
            f"sha256 {sha256(tampered)[:16]}…, the lock lists {sha256(released)[:16]}…).") \
        in done.output
    assert "Nothing was changed." in done.output
    assert not qgis.deps.parent.exists()
    shutil.copy(released, tampered)
    accepted = qgis.run("run", INSTALL, "--", f"WHEELS={tampered.parent}", f"LOCK={lock}")
    assert "Installed: lm-probe 1.0" in accepted.output, accepted.output[-3000:]
    assert (qgis.deps / "lm_probe.py").read_text() == "VALUE = 42\n"


def test_offline_install_from_a_wheel_folder_alone(tmp_path, plugin_zip, wheel_folder):
    qgis = fresh_qgis(tmp_path / "offline", plugin_zip)
    done = qgis.run("run", INSTALL, "--", f"WHEELS={wheel_folder}", "RUNTIME=cpu")
    assert done.returncode == 0, done.output[-3000:]
    assert "--no-index" in done.output and f"Looking in links: {wheel_folder}" in done.output
    assert "Looking in indexes" not in done.output
    assert _record(qgis)["source"] == str(wheel_folder)
    assert map_with(qgis, small_scene(tmp_path), "aerial-rgb", tmp_path / "out.gpkg") >= 1


def test_wheel_folder_lacking_a_package_names_it(tmp_path, plugin_zip, wheel_folder):
    partial = tmp_path / "wheels"
    partial.mkdir()
    for wheel in wheel_folder.glob("*.whl"):
        if not wheel.name.startswith("onnx-"):
            (partial / wheel.name).symlink_to(wheel)
    qgis = fresh_qgis(tmp_path / "profile", plugin_zip)
    done = qgis.run("run", INSTALL, "--", f"WHEELS={partial}", "RUNTIME=cpu")
    assert done.returncode != 0
    onnx = read_lock(host_lock()).packages["onnx"]
    assert f"No installable wheel of onnx=={onnx} was found in the wheel folder {partial}" \
        in done.output
    assert not qgis.deps.exists()


def test_failing_install_leaves_qgis_and_the_plugin_as_they_were(tmp_path, plugin_zip):
    qgis = fresh_qgis(tmp_path / "failing", plugin_zip)
    plugins_before = sorted(p.relative_to(qgis.profile).as_posix()
                            for p in (qgis.profile / "python").rglob("*"))
    done = qgis.run("run", INSTALL, "--", "INDEX_URL=http://127.0.0.1:9/")
    assert done.returncode != 0
    assert ("The package index http://127.0.0.1:9/ cannot be reached (no network connection, "
            "or a proxy in between).") in done.output
    assert "Nothing was changed." in done.output
    after = sorted(p.relative_to(qgis.profile).as_posix()
                   for p in (qgis.profile / "python").rglob("*")
                   if "__pycache__" not in p.parts)
    assert after == [p for p in plugins_before if "__pycache__" not in p]
    # A second QGIS start still loads the plugin, with its installer and the warning.
    again = qgis.run("list")
    assert again.returncode == 0
    assert INSTALL in again.stdout and MAP in again.stdout
    assert "needs the Python package(s)" in again.output
    # Running an engine algorithm then refuses with the way out, not a traceback.
    refused = qgis.run("run", MAP, "--", f"INPUT={small_scene(tmp_path)}", "MODEL=aerial-rgb",
                       f"OUTPUT_POLYGONS={tmp_path / 'x.gpkg'}")
    assert refused.returncode != 0
    assert "Map landslides needs the Python package(s) rasterio" in refused.output
    assert "Traceback" not in refused.output



GUI_SCRIPT = """
import json, os, traceback
from qgis.PyQt.QtCore import QTimer
from qgis.utils import iface

OUT = os.environ["SHOTS"]
report, keep = {}, []


def finish():
    with open(os.path.join(OUT, "report.json"), "w") as f:
        json.dump(report, f)
    iface.actionExit().trigger()


def step(name, then):
    def run():
        try:
            then()
        except Exception:
            report.setdefault("errors", []).append(traceback.format_exc())
            QTimer.singleShot(200, finish)
    QTimer.singleShot(2500, run)


def shoot_bar():
    iface.mainWindow().resize(1280, 800)
    step("resized", shoot_maximized)


def shoot_maximized():
    bar = iface.messageBar()
    iface.mainWindow().grab().save(os.path.join(OUT, "main_window_missing_packages.png"))
    bar.grab().save(os.path.join(OUT, "message_bar.png"))
    from qgis.PyQt.QtWidgets import QLabel
    report["bar"] = [label.text() for item in bar.items() for label in item.findChildren(QLabel)
                     if label.objectName() == "landslideMapperMissingText"]
    report["buttons"] = [b.text() for item in bar.items()
                         for b in item.findChildren(__import__("qgis.PyQt.QtWidgets",
                                                               fromlist=["QPushButton"]).QPushButton)]
    menus = [a for a in iface.pluginMenu().actions() if a.menu() and "Landslide" in a.text()]
    report["plugin_menu"] = [s.text() for a in menus for s in a.menu().actions()]
    import processing
    from qgis.core import QgsApplication
    provider = QgsApplication.processingRegistry().providerById("landslide_mapper")
    for alg in sorted(a.name() for a in provider.algorithms()):  # every dialog opens
        dlg = processing.createAlgorithmDialog("landslide_mapper:" + alg)
        report.setdefault("help", {})[alg] = len(dlg.algorithm().shortHelpString())
        dlg.resize(1100, 800)
        dlg.show()
        keep.append((alg, dlg))
    step("dialogs", shoot_dialogs)


def shoot_dialogs():
    for alg, dlg in keep:
        if alg in ("map_landslides", "install_dependencies"):
            dlg.grab().save(os.path.join(OUT, alg + "_dialog.png"))
        report.setdefault("dialogs", []).append(alg)
        dlg.close()
    QTimer.singleShot(200, finish)


step("bar", shoot_bar)
"""


@pytest.mark.skipif(not shutil.which("xvfb-run"), reason="xvfb-run not installed")
@pytest.mark.skipif(not shutil.which("qgis"), reason="the QGIS desktop (qgis) is not installed")
def test_desktop_shows_the_missing_packages_message_and_opens_the_dialogs(tmp_path, plugin_zip):
    """QGIS desktop under Xvfb, fresh profile, packages missing: the red message (whole, with its
    install button), the menu entry, and the Map landslides and installer dialogs open.
    Screenshots are kept in the test's folder (copied to $LANDSLIDE_MAPPER_SHOTS when set)."""
    qgis = fresh_qgis(tmp_path / "desktop", plugin_zip)
    shots = tmp_path / "shots"
    shots.mkdir()
    script = tmp_path / "shots.py"
    script.write_text(GUI_SCRIPT)
    env = {**qgis.env(), "SHOTS": str(shots)}
    env.pop("QT_QPA_PLATFORM")
    done = subprocess.run(
        ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", "qgis", "--nologo",
         "--noversioncheck", "--code", str(script)],
        capture_output=True, text=True, timeout=180, env=env, cwd=str(tmp_path))
    report_file = shots / "report.json"
    assert report_file.is_file(), done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(report_file.read_text())
    assert not report.get("errors"), report.get("errors")
    [bar] = report["bar"]
    assert bar.startswith("the Python packages rasterio, onnxruntime") and "<" not in bar
    assert bar.endswith("Install them with the button (also in Plugins > Landslide Mapper); "
                        "QGIS's own packages stay as they are.")
    assert report["buttons"] == ["Install Python packages…"]
    assert report["plugin_menu"] == ["Install Python packages…"]
    assert {"map_landslides", "install_dependencies", "vectorize_mask", "train_model",
            "prepare_sentinel2_stack"} <= set(report["dialogs"])
    assert all(length > 200 for length in report["help"].values()), report["help"]
    for name in ("message_bar", "map_landslides_dialog", "install_dependencies_dialog"):
        assert (shots / f"{name}.png").stat().st_size > 2000, name
    if os.environ.get("LANDSLIDE_MAPPER_SHOTS"):
        shutil.copytree(shots, os.environ["LANDSLIDE_MAPPER_SHOTS"], dirs_exist_ok=True)
