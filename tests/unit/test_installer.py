"""The package installer without QGIS: finding QGIS's Python per platform, choosing the lock
file, pip's command line, GPU detection, failure paragraphs (hash mismatches included), the
check of the installed packages against QGIS's own, and the install staying all-or-nothing (with a
fake pip, and with the real one on tiny wheels)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from landslide_mapper.core.errors import CancelledError
from landslide_mapper.processing import locks
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


def write_lock(folder: Path, pins: dict[str, str], name: str = "linux_x86_64-py3.11-cpu.txt",
               numpy: str = "1.24.2") -> Path:
    """A lock file as scripts/lock_requirements.py writes it: name -> hash (or version==hash)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["# Landslide Mapper lock file", "# variant: cpu",
             f"# numpy: {numpy} (resolved against, not installed)"]
    for pin, sha in pins.items():
        lines += [f"{pin} \\", f"    --hash=sha256:{sha}"]
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _plan(tmp_path: Path, **kw) -> pi.InstallPlan:
    host = Host("linux", "/usr/bin/qgis", "/usr", "/usr", (3, 11), machine="x86_64")
    kw.setdefault("python", [sys.executable])
    kw.setdefault("lock", write_lock(tmp_path / "locks", {"rasterio==1.4.4": "0" * 64,
                                                          "affine==2.4.0": "1" * 64}))
    return pi.InstallPlan(target=tmp_path / "deps" / "py3.11",
                          requirements=["rasterio>=1.3", "affine<3"], host=host,
                          numpy_version="1.24.2", **kw)


def test_pip_command_installs_the_lock_alone_and_offline_the_folder_alone(tmp_path):
    plan = _plan(tmp_path, wheels=tmp_path / "wheels")
    cmd = pi.pip_command(plan, tmp_path / "stage")
    assert cmd[:5] == [sys.executable, "-m", "pip", "install", "--target"]
    assert {"--only-binary=:all:", "--no-deps", "--require-hashes"} <= set(cmd)
    assert cmd[cmd.index("--find-links") + 1] == str(tmp_path / "wheels") and "--no-index" in cmd
    assert cmd[-2:] == ["-r", str(plan.lock)] and "-c" not in cmd
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


PIP_HASH_MISMATCH = """\
Looking in links: /media/usb/wheels
Processing /media/usb/wheels/rasterio-1.4.4-cp311-cp311-manylinux_2_28_x86_64.whl (from -r \
/p/locks/linux_x86_64-py3.11-cpu.txt (line 12))
ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE. If you have updated the \
package versions, please update the hashes. Otherwise, examine the package contents carefully; \
someone may have tampered with them.
    rasterio==1.4.4 from file:///media/usb/wheels/rasterio-1.4.4-cp311-cp311-manylinux_2_28_x86_\
64.whl (from -r /p/locks/linux_x86_64-py3.11-cpu.txt (line 12)):
        Expected sha256 00000000000000000000000000000000000000000000000000000000000000aa
             Got        ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff11
"""


def test_a_hash_mismatch_is_one_paragraph_naming_the_file_and_the_source(tmp_path):
    plan = _plan(tmp_path, wheels=Path("/media/usb/wheels"))
    text = pi.explain_failure(PIP_HASH_MISMATCH.splitlines(), plan, 1)
    assert text.startswith(
        "Refused: the wheel folder /media/usb/wheels offered a file that is not the one the lock "
        "file linux_x86_64-py3.11-cpu.txt lists, for rasterio==1.4.4 "
        "(rasterio-1.4.4-cp311-cp311-manylinux_2_28_x86_64.whl: sha256 ffffffffffffffff…, the "
        "lock lists 0000000000000000…).")
    assert "Do not edit the lock file to accept it." in text
    assert text.endswith("Nothing was changed.") and "\n" not in text
    online = pi.explain_failure(PIP_HASH_MISMATCH.splitlines(),
                                _plan(tmp_path, index_url="https://mirror.example/simple"), 1)
    assert online.startswith("Refused: the package index https://mirror.example/simple offered")


# --- lock files ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("platform", "machine", "key"), [
    ("linux", "x86_64", "linux_x86_64"), ("linux", "aarch64", "linux_aarch64"),
    ("win32", "AMD64", "win_amd64"), ("win32", "ARM64", "win_arm64"),
    ("darwin", "arm64", "macos_arm64"), ("darwin", "x86_64", "macos_x86_64"),
])
def test_each_host_names_its_lock_platform(platform, machine, key):
    assert locks.platform_key(platform, machine) == key


SHIPPED = [(pl, py) for pl in ("linux_x86_64", "win_amd64", "macos_arm64", "macos_x86_64")
           for py in ("3.9", "3.10", "3.11", "3.12")]


@pytest.mark.parametrize(("platform", "python"), SHIPPED)
def test_the_plugin_ships_a_lock_for_each_platform_and_python_qgis_has(platform, python):
    for variant in ("cpu", "training") + (("gpu",) if not platform.startswith("macos") else ()):
        path = locks.find_lock(platform, python, variant)
        lock = locks.read_lock(path)
        assert (lock.header["python"], lock.header["variant"]) == (python, variant)
        assert lock.header["platform"].split(" ", 1)[0] == platform
        assert lock.runtime == ("onnxruntime-gpu" if variant == "gpu" else "onnxruntime")
        assert {"rasterio", "onnx", "shapely", "pyproj", "fiona", "dask",
                "distributed"} <= set(lock.packages)
        # numpy: QGIS's own serves; only the training environment (its own venv) gets one.
        assert ("numpy" in lock.packages) == (variant == "training")
        if variant != "training":
            assert re.fullmatch(r"1\.\d+\.\d+", lock.numpy), lock.header["numpy"]


def test_every_shipped_lock_pins_each_package_with_a_hash():
    paths = sorted(locks.LOCKS.glob("*.txt"))
    assert len(paths) >= 40
    for path in paths:
        logical = path.read_text().replace("\\\n", " ").splitlines()
        pins = [line for line in logical if line and not line.startswith("#")]
        assert pins, path.name
        for line in pins:
            assert re.match(r"^[a-z0-9-]+==\S+ ", line), (path.name, line)
            assert re.search(r"--hash=sha256:[0-9a-f]{64}", line), (path.name, line)


def test_the_locks_are_made_from_the_current_requirements():
    sys.path.insert(0, str(locks.PACKAGE.parent))
    from scripts.lock_requirements import stale_locks

    stale = stale_locks()
    assert not stale, (f"{stale}: requirements changed since these were made; run "
                       "python scripts/lock_requirements.py")


def test_a_changed_requirement_makes_a_lock_stale(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# comment\nrasterio>=1.3\nonnxruntime>=1.16\n")
    before = locks.inputs_digest(locks.lock_inputs("cpu", requirements))
    requirements.write_text("rasterio >= 1.3   # comments and spaces do not count\n"
                            "onnxruntime>=1.16\n")
    assert locks.inputs_digest(locks.lock_inputs("cpu", requirements)) == before
    assert locks.inputs_digest(locks.lock_inputs("gpu", requirements)) != before
    requirements.write_text("rasterio>=1.4\nonnxruntime>=1.16\n")
    assert locks.inputs_digest(locks.lock_inputs("cpu", requirements)) != before


def test_no_lock_for_the_host_is_one_paragraph_with_the_next_step(tmp_path):
    write_lock(tmp_path, {"a==1": "0" * 64}, name="linux_x86_64-py3.11-cpu.txt")
    write_lock(tmp_path, {"a==1": "0" * 64}, name="win_amd64-py3.9-cpu.txt")
    assert locks.find_lock("linux_x86_64", "3.11", "cpu", tmp_path).name == \
        "linux_x86_64-py3.11-cpu.txt"
    with pytest.raises(LookupError) as err:
        locks.find_lock("linux_aarch64", "3.13", "gpu", tmp_path)
    text = str(err.value)
    assert text.startswith("No lock file for Python 3.13 on linux_aarch64 (GPU build, "
                           "onnxruntime-gpu): the installer installs only the exact, "
                           "hash-checked versions a lock file lists")
    assert f"({tmp_path}) cover Python 3.9, 3.11 on linux_x86_64, win_amd64." in text
    assert ("'python scripts/lock_requirements.py --platform linux_aarch64 --python 3.13 "
            "--variant gpu'") in text
    assert "'Lock file' option" in text
    assert text.endswith("Nothing was changed.") and "\n" not in text


def test_host_distributions_leave_out_the_plugin_folders(tmp_path, monkeypatch):
    def dist(folder: Path, name: str, version: str) -> None:
        info = folder / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\n"
                                       f"Version: {version}\n")

    qgis, deps = tmp_path / "qgis", tmp_path / "profile" / "landslide_mapper_deps" / "py3.11"
    dist(qgis, "PyYAML", "6.0")
    dist(deps, "PyYAML", "6.0.4")
    dist(deps, "dask", "2026.8.0")
    dist(tmp_path / "later", "PyYAML", "5.1")
    monkeypatch.setattr(sys, "path", [str(qgis), str(deps), str(tmp_path / "later")])
    found = locks.host_distributions(exclude=[deps.parent])
    assert found == {"pyyaml": "6.0"}  # the first found wins; the plugin's folders do not count


# --- the install itself, with a fake pip ------------------------------------------------------

FAKE_PIP = textwrap.dedent('''
    import os, sys, time
    args = sys.argv[1:]
    target = args[args.index("--target") + 1]
    mode = os.environ["FAKE_PIP"]
    print("Collecting rasterio==1.4.4", flush=True)
    if mode == "fail":
        print("ERROR: No matching distribution found for rasterio==1.4.4")
        sys.exit(1)
    if mode == "hang":
        time.sleep(60)
    requires = {"rasterio": ["numpy>=1.24", "affine", "click-plugins ; python_version < '3'"],
                "affine": [], "numpy": []}
    for name in ("rasterio-1.4.4", "affine-2.4.0", "numpy-1.24.2"):
        pkg, version = name.split("-")
        os.makedirs(os.path.join(target, pkg), exist_ok=True)
        info = os.path.join(target, name + ".dist-info")
        os.makedirs(info, exist_ok=True)
        with open(os.path.join(info, "METADATA"), "w") as f:
            f.write(f"Metadata-Version: 2.1\\nName: {pkg}\\nVersion: {version}\\n")
            f.write("".join(f"Requires-Dist: {r}\\n" for r in requires[pkg]))
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


def _fake_plan(tmp_path, fake_pip, mode, host_packages=None):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(fake_pip), "FAKE_PIP": mode}
    plan = _plan(tmp_path)
    # pip_environment drops PYTHONPATH (QGIS's own); the fake pip needs it, so set env directly.
    host = {"numpy": "1.24.2"} if host_packages is None else host_packages
    return pi.InstallPlan(**{**plan.__dict__, "env": env, "host_packages": host})


def test_install_puts_the_packages_in_place_without_numpy(tmp_path, fake_pip):
    lines: list[str] = []
    record = pi.install(_fake_plan(tmp_path, fake_pip, "ok"), log=lines.append)
    target = tmp_path / "deps" / "py3.11"
    assert sorted(p.name for p in target.iterdir()) == [
        "affine", "affine-2.4.0.dist-info", pi.RECORD, "rasterio", "rasterio-1.4.4.dist-info"]
    assert record["packages"] == {"rasterio": "1.4.4", "affine": "2.4.0"}  # QGIS's numpy serves
    assert json.loads((target / pi.RECORD).read_text())["numpy"] == "1.24.2"
    assert record["lock"] == "linux_x86_64-py3.11-cpu.txt"
    assert record["lock_sha256"] == hashlib.sha256(
        (tmp_path / "locks" / record["lock"]).read_bytes()).hexdigest()
    assert any(line.startswith("Successfully installed") for line in lines)
    assert "Checked: every installed package's requirements are met, QGIS's own packages " \
        "included (numpy 1.24.2)." in lines
    assert [p.name for p in target.parent.iterdir()] == ["py3.11"]  # no temporary leftovers


@pytest.mark.parametrize(("host", "problem"), [
    ({"numpy": "1.21.5"}, "rasterio 1.4.4 needs numpy>=1.24 but QGIS's Python has numpy 1.21.5"),
    ({}, "rasterio 1.4.4 needs numpy>=1.24, which neither QGIS's Python nor the lock provides"),
])
def test_packages_qgis_numpy_does_not_satisfy_are_refused(tmp_path, fake_pip, host, problem):
    target = tmp_path / "deps" / "py3.11"
    target.mkdir(parents=True)
    (target / "kept.txt").write_text("earlier install")
    with pytest.raises(pi.InstallError) as err:
        pi.install(_fake_plan(tmp_path, fake_pip, "ok", host_packages=host), log=lambda _l: None)
    text = str(err.value)
    assert problem in text and "\n" not in text
    assert "The packages of the lock file linux_x86_64-py3.11-cpu.txt do not work with the " \
        "packages QGIS's own Python already has" in text
    assert "was resolved against numpy 1.24.2" in text
    assert "'python scripts/lock_requirements.py --platform linux_x86_64 --python 3.11" in text
    assert text.endswith("Nothing was changed.")
    assert sorted(p.name for p in target.iterdir()) == ["kept.txt"]
    assert [p.name for p in target.parent.iterdir()] == ["py3.11"]


def test_a_package_qgis_already_has_must_fit_and_its_own_copy_is_ignored(tmp_path, fake_pip):
    # QGIS's affine 3 comes first on sys.path: rasterio would get it.
    with pytest.raises(pi.InstallError, match=re.escape(
            "rasterio 1.4.4 needs affine<3 but QGIS's Python has affine 3.0")):
        _folder_with_requirement(tmp_path, fake_pip, "affine<3",
                                 {"numpy": "1.24.2", "affine": "3.0"})
    # QGIS's own rasterio is the one imported: the folder's rasterio and its needs never apply.
    record = pi.install(_fake_plan(tmp_path, fake_pip, "ok",
                                   {"numpy": "1.21.5", "rasterio": "1.3.0"}), log=lambda _l: None)
    assert record["packages"]["rasterio"] == "1.4.4"


def _folder_with_requirement(tmp_path, fake_pip, requirement, host):
    """Run the fake pip with rasterio requiring ``requirement`` instead of plain affine."""
    pip_main = fake_pip / "pip" / "__main__.py"
    pip_main.write_text(FAKE_PIP.replace('"affine", "click', f'"{requirement}", "click'))
    return pi.install(_fake_plan(tmp_path, fake_pip, "ok", host), log=lambda _l: None)


def test_a_changed_lock_makes_the_install_out_of_date(tmp_path, fake_pip, monkeypatch):
    monkeypatch.setattr(pi, "missing_modules", lambda names=(): [])  # importable, as after use
    plan = _fake_plan(tmp_path, fake_pip, "ok")
    record = pi.install(plan, log=lambda _l: None)
    assert pi.up_to_date(plan) == record
    plan.lock.write_text(plan.lock.read_text().replace("2.4.0", "2.4.1"))
    assert pi.up_to_date(plan) is None


def test_a_failed_install_keeps_the_earlier_one(tmp_path, fake_pip):
    target = tmp_path / "deps" / "py3.11"
    target.mkdir(parents=True)
    (target / "kept.txt").write_text("earlier install")
    with pytest.raises(pi.InstallError, match="No installable wheel of rasterio==1.4.4"):
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


def tiny_wheel(folder: Path, name: str, value: int = 42) -> Path:
    """A minimal pure-Python wheel (module ``name`` with VALUE = ``value``), made on the spot.

    Two wheels of the same name and version with different values have different sha256 hashes,
    as a rebuilt or tampered wheel does."""
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-1.0-py3-none-any.whl"
    info = f"{name}-1.0.dist-info"
    files = {f"{name}.py": f"VALUE = {value}\n",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                              "Tag: py3-none-any\n"}
    with zipfile.ZipFile(path, "w") as zf:
        for arc, text in files.items():
            zf.writestr(zipfile.ZipInfo(arc, date_time=(2020, 1, 1, 0, 0, 0)), text)
        zf.writestr(zipfile.ZipInfo(f"{info}/RECORD", date_time=(2020, 1, 1, 0, 0, 0)),
                    "".join(f"{a},,\n" for a in files) + f"{info}/RECORD,,\n")
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _real_pip_plan(tmp_path: Path, wheels: Path, lock: Path) -> pi.InstallPlan:
    return pi.InstallPlan(python=[sys.executable], target=tmp_path / "deps" / "py3.11",
                          requirements=[], lock=lock, wheels=wheels,
                          host=Host("linux", sys.executable, sys.prefix, sys.exec_prefix,
                                    sys.version_info[:2], machine="x86_64"),
                          env=pi.pip_environment(dict(os.environ), isolated=True))


@pytest.mark.slow  # runs the real pip three times on tiny wheels (a few seconds)
def test_real_pip_refuses_a_wheel_whose_hash_is_not_in_the_lock(tmp_path):
    good = tiny_wheel(tmp_path / "released", "lm_probe")
    lock = write_lock(tmp_path / "locks", {"lm-probe==1.0": sha256(good)})
    tampered = tiny_wheel(tmp_path / "wheels", "lm_probe", value=666)
    assert sha256(tampered) != sha256(good)
    plan = _real_pip_plan(tmp_path, tampered.parent, lock)
    with pytest.raises(pi.InstallError) as err:
        pi.install(plan, log=lambda _l: None)
    text = str(err.value)
    assert text.startswith(f"Refused: the wheel folder {tampered.parent} offered a file that is "
                           "not the one the lock file linux_x86_64-py3.11-cpu.txt lists, for "
                           f"lm-probe==1.0 (lm_probe-1.0-py3-none-any.whl: sha256 "
                           f"{sha256(tampered)[:16]}…, the lock lists {sha256(good)[:16]}…).")
    assert text.endswith("Nothing was changed.") and "\n" not in text
    assert not (tmp_path / "deps").exists()
    # A lock line without a hash is refused too, before anything is installed.
    unhashed = tmp_path / "locks" / "unhashed.txt"
    unhashed.write_text("lm-probe==1.0\n")
    with pytest.raises(pi.InstallError, match="lists a package without its exact version and "
                                              "sha256 hash"):
        pi.install(_real_pip_plan(tmp_path, tampered.parent, unhashed), log=lambda _l: None)
    # The released file itself installs.
    shutil.copy(good, tampered)
    record = pi.install(plan, log=lambda _l: None)
    assert record["packages"] == {"lm-probe": "1.0"}
    assert (tmp_path / "deps" / "py3.11" / "lm_probe.py").read_text() == "VALUE = 42\n"


@pytest.mark.slow  # makes a real virtual environment and runs its pip (about 10 s)
def test_training_environment_is_made_in_place_or_not_at_all(tmp_path):
    from landslide_mapper.processing import training_env

    released = tmp_path / "released"
    probe, extra = tiny_wheel(released, "lm_probe"), tiny_wheel(released, "lm_probe_training")
    lock = write_lock(tmp_path / "locks", {"lm-probe==1.0": sha256(probe),
                                           "lm-probe-training==1.0": sha256(extra)},
                      name="linux_x86_64-py3.11-training.txt")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    shutil.copy(probe, wheels)  # lm_probe_training is not in the folder
    plan = _real_pip_plan(tmp_path, wheels, lock)
    profile = tmp_path / "profile"
    with pytest.raises(pi.InstallError, match="No installable wheel of lm-probe-training==1.0"):
        training_env.install_training_env(plan, profile, lock, log=lambda _l: None)
    assert not list((profile / "python" / "landslide_mapper_training").iterdir())

    shutil.copy(extra, wheels)
    python = training_env.install_training_env(plan, profile, lock, log=lambda _l: None)
    assert python == profile / "python" / "landslide_mapper_training" / "venv" / "bin" / "python"
    done = subprocess.run([str(python), "-c", "import lm_probe, lm_probe_training; "
                           "print(lm_probe.VALUE)"], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "42", done.stderr
    assert [p.name for p in python.parents[2].iterdir()] == ["venv"]  # no temporary leftovers
    record = json.loads((python.parents[1] / training_env.RECORD).read_text())
    assert record == {"lock": lock.name, "lock_sha256": sha256(lock)}
