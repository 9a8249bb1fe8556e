"""The built plugin zip: its layout, its metadata, and the plugin loaded from it by QGIS.

The loading runs in a fresh Python (the repository's package is already imported here) that sees
only the unzipped plugin folder, as a user's QGIS would.
"""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from tests.qgis.test_provider import ALGORITHMS
from tests.support import REPO

pytestmark = pytest.mark.qgis

BUILD = REPO / "scripts" / "build_plugin_zip.py"


@pytest.fixture(scope="module")
def plugin_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, str(BUILD), "--out-dir", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    [built] = list(out.glob("*.zip"))
    return built


def repo_version() -> str:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(REPO / "metadata.txt", encoding="utf-8")
    return parser["general"]["version"]


#: The QGIS plugin repository refuses uploads above about 25 MB.
MAX_ZIP_BYTES = 25 * 10**6


def test_zip_fits_the_plugin_repository_with_every_bundled_model(plugin_zip):
    assert plugin_zip.stat().st_size <= MAX_ZIP_BYTES, plugin_zip.stat().st_size
    bundled = sorted(p.name for p in (REPO / "resources" / "models").glob("*.onnx"))
    with zipfile.ZipFile(plugin_zip) as zf:
        zipped = sorted(n.rsplit("/", 1)[1] for n in zf.namelist()
                        if n.startswith("landslide_mapper/resources/models/")
                        and n.endswith(".onnx"))
    assert bundled and zipped == bundled


def test_zip_layout(plugin_zip):
    assert plugin_zip.name == f"landslide_mapper-{repo_version()}.zip"
    with zipfile.ZipFile(plugin_zip) as zf:
        names = zf.namelist()
    assert all(n.startswith("landslide_mapper/") for n in names)
    for required in (
        "landslide_mapper/__init__.py", "landslide_mapper/plugin.py",
        "landslide_mapper/metadata.txt", "landslide_mapper/LICENSE", "landslide_mapper/README.md",
        "landslide_mapper/processing/provider.py", "landslide_mapper/core/mapping/engine.py",
        "landslide_mapper/resources/icons/landslide_mapper.svg",
        "landslide_mapper/resources/styles/probability.qml",
        "landslide_mapper/resources/styles/mask.qml",
        "landslide_mapper/resources/styles/polygons.qml",
    ):
        assert required in names, required
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".partial"))]
    assert not [n for n in names if "/tests/" in n or "egg-info" in n]
    # The training module ships for the training environment's Python, never imported by QGIS.
    assert "landslide_mapper/training/cli.py" in names
    assert "landslide_mapper/requirements.txt" in names
    assert "landslide_mapper/locks/linux_x86_64-py3.11-cpu.txt" in names  # what the installer uses


def test_metadata_is_complete_and_parses_as_qgis_reads_it(plugin_zip):
    with zipfile.ZipFile(plugin_zip) as zf:
        text = zf.read("landslide_mapper/metadata.txt").decode("utf-8")
    parser = configparser.ConfigParser()  # QGIS's own reader: interpolation on, like qgis.utils
    parser.read_string(text)
    meta = parser["general"]
    for key in ("name", "qgisMinimumVersion", "description", "about", "version", "author",
                "email", "repository", "tracker", "homepage", "tags", "category", "icon",
                "hasProcessingProvider", "experimental"):
        assert meta.get(key, "").strip(), key
    assert meta["qgisMinimumVersion"] == "3.22"
    assert meta["hasProcessingProvider"] == "yes"
    assert meta["category"] == "Analysis"
    assert meta["repository"] == "https://github.com/landslide-mapper/landslide-mapper"
    assert meta["tracker"] == "https://github.com/landslide-mapper/landslide-mapper/issues"
    for dependency in ("rasterio", "onnxruntime", "fiona", "shapely", "pyproj"):
        assert dependency in meta["about"]
    with zipfile.ZipFile(plugin_zip) as zf:
        assert f"landslide_mapper/{meta['icon']}" in zf.namelist()


def test_build_is_reproducible(plugin_zip, tmp_path):
    done = subprocess.run([sys.executable, str(BUILD), "--out-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / plugin_zip.name).read_bytes() == plugin_zip.read_bytes()


LOADER = textwrap.dedent(
    r'''
    import json, sys
    from pathlib import Path

    plugins_dir, scene, model, out = sys.argv[1:5]
    sys.path.insert(0, plugins_dir)

    from qgis.core import QgsApplication
    app = QgsApplication([], False)
    app.initQgis()
    sys.path.append(str(Path(app.pkgDataPath()) / "python" / "plugins"))  # QGIS's processing
    from processing.core.Processing import Processing
    Processing.initialize()
    import processing
    import qgis.utils
    from qgis.PyQt.QtWidgets import QMainWindow

    report = {}
    registry = QgsApplication.processingRegistry()

    class MessageBar:
        messages = []
        def pushMessage(self, title, text, level=0, duration=0):
            self.messages.append(text)

    class Iface:
        """Just what the plugin calls on QGIS's interface."""
        def __init__(self):
            self.window, self.bar, self.menu, self.toolbar = QMainWindow(), MessageBar(), [], []
        def mainWindow(self): return self.window
        def messageBar(self): return self.bar
        def addPluginToRasterMenu(self, menu, action): self.menu.append((menu, action))
        def removePluginRasterMenu(self, menu, action): self.menu.remove((menu, action))
        plugin_menu = []
        def addPluginToMenu(self, menu, action): self.plugin_menu.append((menu, action))
        def removePluginMenu(self, menu, action): self.plugin_menu.remove((menu, action))
        def addToolBarIcon(self, action): self.toolbar.append(action)
        def removeToolBarIcon(self, action): self.toolbar.remove(action)

    # 1. A missing dependency gives a message, not a traceback; the provider (with its
    #    installer) registers even so.
    sys.modules["onnxruntime"] = None
    import landslide_mapper
    iface = Iface()
    plugin = landslide_mapper.classFactory(iface)
    plugin.initGui()
    report["missing_messages"] = iface.bar.messages
    report["provider_when_missing"] = registry.providerById("landslide_mapper") is not None
    report["plugin_menu_when_missing"] = [(m, a.text()) for m, a in iface.plugin_menu]
    plugin.unload()
    del sys.modules["onnxruntime"]

    # 2. QGIS's own plugin loader, from the plugin folder.
    qgis.utils.plugin_paths = [plugins_dir]
    qgis.utils.updateAvailablePlugins()
    report["available"] = "landslide_mapper" in qgis.utils.available_plugins
    qgis.utils.iface = Iface()
    report["loaded"] = qgis.utils.loadPlugin("landslide_mapper")
    report["started"] = qgis.utils.startPlugin("landslide_mapper")
    report["module_file"] = sys.modules["landslide_mapper"].__file__
    provider = registry.providerById("landslide_mapper")
    report["algorithms"] = sorted(a.id() for a in provider.algorithms()) if provider else []
    report["menu"] = [(m, a.text()) for m, a in qgis.utils.iface.menu]
    report["toolbar"] = len(qgis.utils.iface.toolbar)

    opened = []
    processing.execAlgorithmDialog = lambda alg_id, *a, **k: opened.append(alg_id)
    qgis.utils.iface.menu[0][1].trigger()
    report["dialog"] = opened

    from landslide_mapper.processing.styling import style_path
    report["style"] = str(style_path("polygons"))
    result = processing.run("landslide_mapper:map_landslides",
                            {"INPUT": scene, "MODEL": model, "OUTPUT_POLYGONS": out})
    report["polygon_count"] = result["POLYGON_COUNT"]

    report["unloaded"] = qgis.utils.unloadPlugin("landslide_mapper")
    report["provider_after_unload"] = registry.providerById("landslide_mapper") is not None
    report["menu_after_unload"] = len(qgis.utils.iface.menu) + len(qgis.utils.iface.toolbar)
    print("REPORT " + json.dumps(report))
    app.exitQgis()
    '''
)


def test_plugin_loads_from_the_unzipped_zip(plugin_zip, tmp_path, scene, model):
    plugins_dir = tmp_path / "plugins"
    with zipfile.ZipFile(plugin_zip) as zf:
        zf.extractall(plugins_dir)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH="",
               QGIS_CUSTOM_CONFIG_PATH=str(tmp_path / "config"),
               PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run(
        [sys.executable, "-c", LOADER, str(plugins_dir), str(scene), str(model),
         str(tmp_path / "out.gpkg")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env,
    )
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("REPORT ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(lines[-1][len("REPORT "):])

    assert report["provider_when_missing"] is True
    [message] = report["missing_messages"]
    assert "onnxruntime" in message and "Install Python packages" in message
    assert "pip install" not in message
    assert report["plugin_menu_when_missing"] == [["&Landslide Mapper",
                                                   "Install Python packages…"]]

    assert report["available"] and report["loaded"] and report["started"]
    plugin_root = (plugins_dir / "landslide_mapper").resolve()
    assert Path(report["module_file"]).resolve().parent == plugin_root
    assert sorted(report["algorithms"]) == sorted(ALGORITHMS)
    assert report["menu"] == [["&Landslide Mapper", "Map landslides…"]]
    assert report["toolbar"] == 1
    assert report["dialog"] == ["landslide_mapper:map_landslides"]
    assert Path(report["style"]).resolve().is_relative_to(plugin_root)
    assert report["polygon_count"] == 2
    assert report["unloaded"] is True
    assert report["provider_after_unload"] is False
    assert report["menu_after_unload"] == 0


def test_install_script_unzips_and_enables(plugin_zip, tmp_path):
    profiles = tmp_path / "profiles"
    ini = profiles / "work" / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True)
    ini.write_text("[General]\nx=1\n\n[PythonPlugins]\nother=true\nlandslide_mapper=false\n\n"
                   "[Qgis]\ny=2\n", encoding="utf-8")
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "install_plugin.sh"), "--profiles-dir", str(profiles),
         "--profile", "work", "--zip", str(plugin_zip)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    installed = profiles / "work" / "python" / "plugins" / "landslide_mapper"
    assert (installed / "metadata.txt").is_file()
    assert (installed / "resources" / "styles" / "mask.qml").is_file()
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read(ini, encoding="utf-8")
    assert parser["PythonPlugins"]["landslide_mapper"] == "true"
    assert parser["PythonPlugins"]["other"] == "true"
    assert parser["General"]["x"] == "1" and parser["Qgis"]["y"] == "2"
    assert ini.read_text(encoding="utf-8").count("landslide_mapper=") == 1


def test_plugin_and_package_versions_agree():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    with open(REPO / "pyproject.toml", "rb") as f:
        package_version = tomllib.load(f)["project"]["version"]
    assert repo_version() == package_version
