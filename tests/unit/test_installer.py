"""The package installer without QGIS: finding QGIS's Python per platform, pip's command line,
GPU detection, failure paragraphs, and the install staying all-or-nothing (with a fake pip)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from landslide_mapper.core.errors import CancelledError
from landslide_mapper.processing import package_installer as pi
from landslide_mapper.processing.dependencies import deps_dir, use_deps_folder
from landslide_mapper.processing.host_python import Host, find_host_python, python_candidates


def _finder(files: set[str], versions: dict[str, str]):
    """A fake file system (a set of paths) and fake interpreters (path -> 'X.Y')."""
    return dict(is_file=lambda p: p in files,
                version_of=lambda cmd: versions.get(cmd[-1]))


# --- Linux ------------------------------------------------------------------------------------

def test_linux_debian_qgis_finds_the_system_python_of_its_version():
    host = Host("linux", "/usr/bin/qgis", "/usr", "/usr", (3, 11))
    files = {"/usr/bin/python3.11", "/usr/bin/python3", "/usr/bin/python3.9"}
    found = find_host_python(host, **_finder(files, {"/usr/bin/python3.11": "3.11",
                                                     "/usr/bin/python3": "3.11"}))
    assert found == ["/usr/bin/python3.11"]


def test_linux_qgis_process_bin_and_a_python3_of_another_version():
    host = Host("linux", "/usr/lib/qgis/qgis_process.bin", "/usr", "/usr", (3, 12))
    files = {"/usr/bin/python3", "/usr/local/bin/python3.12"}
    found = find_host_python(host, **_finder(files, {"/usr/bin/python3": "3.11",
                                                     "/usr/local/bin/python3.12": "3.12"}))
    assert found == ["/usr/local/bin/python3.12"]


def test_linux_conda_qgis_uses_its_environment_python():
    prefix = "/home/u/miniforge3/envs/qgis"
    host = Host("linux", f"{prefix}/bin/qgis", prefix, prefix, (3, 12))
    files = {f"{prefix}/bin/python3.12", "/usr/bin/python3.12"}
    found = find_host_python(host, **_finder(files, {f"{prefix}/bin/python3.12": "3.12",
                                                     "/usr/bin/python3.12": "3.12"}))
    assert found == [f"{prefix}/bin/python3.12"]


def test_a_plain_python_importing_qgis_is_its_own_interpreter():
    host = Host("linux", "/work/.venv/bin/python", "/work/.venv", "/work/.venv", (3, 11))
    assert python_candidates(host)[0] == ["/work/.venv/bin/python"]


def test_no_interpreter_of_the_version_names_the_places_looked_at():
    host = Host("linux", "/usr/bin/qgis", "/usr", "/usr", (3, 13))
    with pytest.raises(LookupError) as err:
        find_host_python(host, **_finder({"/usr/bin/python3"}, {"/usr/bin/python3": "3.11"}))
    text = str(err.value)
    assert "QGIS's Python 3.13" in text
    assert "/usr/bin/python3 (Python 3.11)" in text and "/usr/bin/python3.13" in text


# --- Windows ----------------------------------------------------------------------------------

def test_windows_osgeo4w_finds_apps_python():
    host = Host("win32", r"C:\OSGeo4W\bin\qgis-ltr-bin.exe", r"C:\OSGeo4W\apps\Python39",
                r"C:\OSGeo4W\apps\Python39", (3, 9), {"OSGEO4W_ROOT": r"C:\OSGeo4W"})
    files = {r"C:\OSGeo4W\apps\Python39\python.exe", r"C:\OSGeo4W\bin\python-qgis-ltr.bat"}
    found = find_host_python(host, **_finder(files, {
        r"C:\OSGeo4W\apps\Python39\python.exe": "3.9"}))
    assert found == [r"C:\OSGeo4W\apps\Python39\python.exe"]


def test_windows_standalone_installer_with_spaces_and_a_wrong_exec_prefix():
    root = r"C:\Program Files\QGIS 3.34.4"
    host = Host("win32", rf"{root}\bin\qgis-bin.exe", r"C:\Python312", r"C:\Python312",
                (3, 12), {})
    files = {rf"{root}\apps\Python312\python.exe", r"C:\Python312\python.exe"}
    found = find_host_python(host, **_finder(files, {
        r"C:\Python312\python.exe": "3.11",  # a user's own Python: wrong version, skipped
        rf"{root}\apps\Python312\python.exe": "3.12"}))
    assert found == [rf"{root}\apps\Python312\python.exe"]


def test_windows_falls_back_to_the_python_qgis_bat_through_cmd():
    host = Host("win32", r"D:\OSGeo4W\bin\qgis-bin.exe", r"D:\OSGeo4W\apps\Python39",
                r"D:\OSGeo4W\apps\Python39", (3, 9), {})
    bat = r"D:\OSGeo4W\bin\python-qgis.bat"
    found = find_host_python(host, **_finder({bat}, {bat: "3.9"}))
    assert found == ["cmd", "/c", bat]


# --- macOS ------------------------------------------------------------------------------------

def test_macos_bundle_finds_contents_macos_bin_python():
    app = "/Applications/QGIS-LTR.app/Contents"
    host = Host("darwin", f"{app}/MacOS/QGIS", f"{app}/Frameworks/Python.framework/Versions/3.9",
                f"{app}/Frameworks/Python.framework/Versions/3.9", (3, 9))
    files = {f"{app}/MacOS/bin/python3", "/usr/bin/python3"}
    found = find_host_python(host, **_finder(files, {f"{app}/MacOS/bin/python3": "3.9",
                                                     "/usr/bin/python3": "3.9"}))
    assert found == [f"{app}/MacOS/bin/python3"]


def test_macos_bundle_with_the_framework_python_only():
    app = "/Applications/QGIS.app/Contents"
    host = Host("darwin", f"{app}/MacOS/QGIS", "/x", "/x", (3, 11))
    framework = f"{app}/Frameworks/Python.framework/Versions/3.11/bin/python3.11"
    found = find_host_python(host, **_finder({framework}, {framework: "3.11"}))
    assert found == [framework]
    assert "/usr/bin/python3" not in str(python_candidates(host))  # Apple's Python is not QGIS's


def test_the_running_interpreter_is_found_here():
    assert find_host_python() == [sys.executable]  # a plain Python is its own interpreter


# --- requirements, GPU, pip's command -----------------------------------------------------------

def test_requirements_keep_the_pins_and_swap_onnxruntime_for_a_gpu():
    cpu = pi.read_requirements()
    names = [pi.requirement_name(r) for r in cpu]
    assert {"rasterio", "onnxruntime", "onnx", "shapely", "fiona", "pyproj"} <= set(names)
    assert "affine<3" in cpu and any(r.startswith("numpy") and "<2" in r for r in cpu)
    gpu = pi.read_requirements(gpu=True, host_numpy="1.24.2")
    assert any(r.startswith("onnxruntime-gpu>=") for r in gpu)
    assert "onnxruntime" not in [pi.requirement_name(r) for r in gpu]
    assert not [r for r in gpu if pi.requirement_name(r) == "numpy"]  # held by a constraint


def _done(code: int, out: str = "") -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess([], code, out, "")


def test_gpu_found_by_nvidia_smi():
    gpu, why = pi.nvidia_gpu("linux", run=lambda *a, **k: _done(
        0, "GPU 0: NVIDIA H200 (UUID: GPU-1234)\n"), load_library=lambda _n: None)
    assert gpu and why == "NVIDIA GPU found by nvidia-smi: GPU 0: NVIDIA H200"


def test_no_gpu_without_nvidia_smi_and_driver():
    def no_smi(*a, **k):
        raise FileNotFoundError("nvidia-smi")

    def no_lib(name):
        raise OSError(name)

    gpu, why = pi.nvidia_gpu("linux", run=no_smi, load_library=no_lib)
    assert not gpu and why == "no NVIDIA GPU driver (nvidia-smi not found, libcuda.so.1 not found)"
    gpu, why = pi.nvidia_gpu("win32", run=no_smi, load_library=no_lib)
    assert not gpu and "nvcuda.dll" in why
    assert pi.nvidia_gpu("darwin")[0] is False


def _plan(tmp_path: Path, **kw) -> pi.InstallPlan:
    host = Host("linux", "/usr/bin/qgis", "/usr", "/usr", (3, 11))
    kw.setdefault("python", [sys.executable])
    return pi.InstallPlan(target=tmp_path / "deps" / "py3.11",
                          requirements=["rasterio>=1.3", "affine<3"], host=host,
                          numpy_version="1.24.2", **kw)


def test_pip_command_offline_uses_the_folder_alone(tmp_path):
    plan = _plan(tmp_path, wheels=tmp_path / "wheels")
    cmd = pi.pip_command(plan, tmp_path / "stage", tmp_path / "c.txt")
    assert cmd[:5] == [sys.executable, "-m", "pip", "install", "--target"]
    assert "--only-binary=:all:" in cmd
    assert cmd[cmd.index("--find-links") + 1] == str(tmp_path / "wheels") and "--no-index" in cmd
    assert cmd[-2:] == ["rasterio>=1.3", "affine<3"]
    env = pi.pip_environment({"PIP_FIND_LINKS": "/x", "HTTPS_PROXY": "p", "PATH": "/b",
                              "PYTHONPATH": "/venv"}, isolated=True)
    assert "PIP_FIND_LINKS" not in env and env["PIP_CONFIG_FILE"]
    assert env["HTTPS_PROXY"] == "p" and "PYTHONPATH" not in env
    online = pi.pip_environment({"PIP_INDEX_URL": "https://mirror"}, isolated=False)
    assert online["PIP_INDEX_URL"] == "https://mirror"


@pytest.mark.parametrize(("log", "expected"), [
    ("/usr/bin/python3: No module named pip", "pip is not available for QGIS's Python"),
    ("WARNING: Retrying ... 'NewConnectionError(... [Errno 111] Connection refused)'\n"
     "ERROR: No matching distribution found for rasterio>=1.3",
     "The package index cannot be reached"),
    ("ProxyError('Cannot connect to proxy.')", "The proxy refused the connection"),
    ("ERROR: Could not find a version that satisfies the requirement onnxruntime>=1.16 (from "
     "versions: none)\nERROR: No matching distribution found for onnxruntime>=1.16",
     "No installable wheel of onnxruntime>=1.16 was found in the package index for Python "
     "3.11 on linux"),
    ("OSError: [Errno 28] No space left on device", "is full"),
    ("something odd", "pip failed (exit code 1)"),
])
def test_failures_become_one_paragraph_with_the_next_step(tmp_path, log, expected):
    text = pi.explain_failure(log.splitlines(), _plan(tmp_path), 1)
    assert expected in text
    assert text.endswith("Nothing was changed.") and "\n" not in text


# --- the install itself, with a fake pip ------------------------------------------------------

FAKE_PIP = textwrap.dedent('''
    import os, sys, time
    args = sys.argv[1:]
    target = args[args.index("--target") + 1]
    mode = os.environ["FAKE_PIP"]
    print("Collecting rasterio>=1.3", flush=True)
    if mode == "fail":
        print("ERROR: No matching distribution found for rasterio>=1.3")
        sys.exit(1)
    if mode == "hang":
        time.sleep(60)
    for name in ("rasterio-1.4.4", "affine-2.4.0", "numpy-1.24.2"):
        pkg = name.split("-")[0]
        os.makedirs(os.path.join(target, pkg), exist_ok=True)
        os.makedirs(os.path.join(target, name + ".dist-info"), exist_ok=True)
    print("Installing collected packages: rasterio, affine, numpy")
    print("Successfully installed rasterio-1.4.4 affine-2.4.0 numpy-1.24.2")
''')


@pytest.fixture()
def fake_pip(tmp_path):
    """A 'python' that, run as '-m pip install ...', behaves like pip as FAKE_PIP says."""
    pkg = tmp_path / "fake" / "pip"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text(FAKE_PIP)
    return tmp_path / "fake"


def _fake_plan(tmp_path, fake_pip, mode):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(fake_pip), "FAKE_PIP": mode}
    plan = _plan(tmp_path)
    # pip_environment drops PYTHONPATH (QGIS's own); the fake pip needs it, so set env directly.
    return pi.InstallPlan(**{**plan.__dict__, "env": env})


def test_install_puts_the_packages_in_place_without_numpy(tmp_path, fake_pip):
    lines: list[str] = []
    record = pi.install(_fake_plan(tmp_path, fake_pip, "ok"), log=lines.append)
    target = tmp_path / "deps" / "py3.11"
    assert sorted(p.name for p in target.iterdir()) == [
        "affine", "affine-2.4.0.dist-info", pi.RECORD, "rasterio", "rasterio-1.4.4.dist-info"]
    assert record["packages"] == {"rasterio": "1.4.4", "affine": "2.4.0"}  # QGIS's numpy serves
    assert json.loads((target / pi.RECORD).read_text())["numpy"] == "1.24.2"
    assert any(line.startswith("Successfully installed") for line in lines)
    assert [p.name for p in target.parent.iterdir()] == ["py3.11"]  # no temporary leftovers


def test_a_failed_install_keeps_the_earlier_one(tmp_path, fake_pip):
    target = tmp_path / "deps" / "py3.11"
    target.mkdir(parents=True)
    (target / "kept.txt").write_text("earlier install")
    with pytest.raises(pi.InstallError, match="No installable wheel of rasterio>=1.3"):
        pi.install(_fake_plan(tmp_path, fake_pip, "fail"))
    assert [p.name for p in target.parent.iterdir()] == ["py3.11"]
    assert (target / "kept.txt").read_text() == "earlier install"


def test_a_failed_first_install_leaves_no_folder(tmp_path, fake_pip):
    with pytest.raises(pi.InstallError):
        pi.install(_fake_plan(tmp_path, fake_pip, "fail"))
    assert not (tmp_path / "deps").exists()


def test_cancel_stops_pip_and_changes_nothing(tmp_path, fake_pip):
    seen: list[str] = []
    with pytest.raises(CancelledError, match="pip was stopped"):
        pi.install(_fake_plan(tmp_path, fake_pip, "hang"), log=seen.append,
                   is_canceled=lambda: any(s.startswith("Collecting") for s in seen))
    assert not (tmp_path / "deps").exists()


def test_deps_folder_is_appended_after_qgis_own_paths(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert use_deps_folder(tmp_path) is None  # nothing installed: sys.path untouched
    folder = deps_dir(tmp_path)
    folder.mkdir(parents=True)
    assert use_deps_folder(tmp_path) == folder
    assert sys.path[-1] == str(folder)
    use_deps_folder(tmp_path)
    assert sys.path.count(str(folder)) == 1


def test_train_model_finds_the_profile_training_environment_by_itself(tmp_path, monkeypatch):
    from landslide_mapper.core.loop import training_run

    plugins = tmp_path / "profile" / "python" / "plugins"  # the installed plugin's REPO
    plugins.mkdir(parents=True)
    monkeypatch.setattr(training_run, "REPO", plugins)
    monkeypatch.delenv("LANDSLIDE_MAPPER_PYTHON", raising=False)
    python = training_run.training_env_python()
    assert python == tmp_path / "profile" / "python" / "landslide_mapper_training" / "venv" / (
        "Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    assert training_run.find_python() != str(python)  # not made yet: falls back to python3
    python.parent.mkdir(parents=True)
    python.write_text("")
    assert training_run.find_python() == str(python)


def _tiny_wheel(folder: Path, name: str) -> Path:
    """A minimal pure-Python wheel (module ``name`` with VALUE = 42), made on the spot."""
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-1.0-py3-none-any.whl"
    info = f"{name}-1.0.dist-info"
    files = {f"{name}.py": "VALUE = 42\n",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                              "Tag: py3-none-any\n"}
    with zipfile.ZipFile(path, "w") as zf:
        for arc, text in files.items():
            zf.writestr(arc, text)
        zf.writestr(f"{info}/RECORD", "".join(f"{a},,\n" for a in files) + f"{info}/RECORD,,\n")
    return path


@pytest.mark.slow  # makes a real virtual environment and runs its pip (about 10 s)
def test_training_environment_is_made_in_place_or_not_at_all(tmp_path, monkeypatch):
    from landslide_mapper.processing import training_env

    wheels = tmp_path / "wheels"
    _tiny_wheel(wheels, "lm_probe")
    (tmp_path / "req.txt").write_text("lm_probe\n")
    (tmp_path / "req-training.txt").write_text("lm_probe_training\n")  # not in the folder
    monkeypatch.setattr(training_env, "REQUIREMENTS", tmp_path / "req.txt")
    monkeypatch.setattr(training_env, "TRAINING_REQUIREMENTS", tmp_path / "req-training.txt")
    plan = pi.InstallPlan(python=[sys.executable], target=tmp_path / "unused", requirements=[],
                          host=Host("linux", sys.executable, sys.prefix, sys.exec_prefix,
                                    sys.version_info[:2]),
                          wheels=wheels, env=pi.pip_environment(dict(os.environ), isolated=True))
    profile = tmp_path / "profile"
    with pytest.raises(pi.InstallError, match="No installable wheel of lm_probe_training"):
        training_env.install_training_env(plan, profile, log=lambda _l: None)
    assert not list((profile / "python" / "landslide_mapper_training").iterdir())

    _tiny_wheel(wheels, "lm_probe_training")
    python = training_env.install_training_env(plan, profile, log=lambda _l: None)
    assert python == profile / "python" / "landslide_mapper_training" / "venv" / "bin" / "python"
    done = subprocess.run([str(python), "-c", "import lm_probe, lm_probe_training; "
                           "print(lm_probe.VALUE)"], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "42", done.stderr
    assert [p.name for p in python.parents[2].iterdir()] == ["venv"]  # no temporary leftovers
