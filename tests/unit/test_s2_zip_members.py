"""A zipped Sentinel-2 product is read in place, and only through members inside the product.

The crafted zip holds, next to a valid Level-2A product, members whose names lead outside it
(absolute, a drive, ``..``, backslashes) and a link. Each is a band file or metadata that would be
picked before the real one if it were read (a band file without a resolution sorts first; the
first metadata file wins), with values the real product does not have.
"""

from __future__ import annotations

import stat
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio

from landslide_mapper.core.inputs.s2_product import _safe_members, read_source
from landslide_mapper.core.inputs.sentinel2 import prepare_sentinel2_stack
from tests.support import REPO

sys.path.insert(0, str(REPO))
from scripts import make_fixtures as fx  # noqa: E402

ESCAPING = [
    "../MTD_MSIL2A.xml",
    "../evil/IMG_DATA/T54TWN_20220906T013651_B02.jp2",
    "/abs/IMG_DATA/T54TWN_20220906T013651_B03.jp2",
    "C:/evil/IMG_DATA/T54TWN_20220906T013651_B04.jp2",
    "..\\..\\evil/IMG_DATA/T54TWN_20220906T013651_B08.jp2",
    "\\evil/IMG_DATA/T54TWN_20220906T013651_B11.jp2",
]
LINK = "S2.SAFE/GRANULE/G/IMG_DATA/T54TWN_20220906T013651_B12.jp2"


@pytest.fixture(scope="module")
def product(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("crafted")
    safe = fx.make_l2a(root / "product")
    evil = root / "evil.jp2"  # a valid band file of other values (the 10 m field of B12)
    fx._jp2(evil, fx.band_values("B12", 10).astype(np.uint16), 10)
    meta = fx._mtd_l2a("02.09", 0)  # no radiometric offset: other values again
    crafted = root / "crafted" / "S2B_MSIL2A_CRAFTED.SAFE.zip"
    crafted.parent.mkdir()
    with zipfile.ZipFile(crafted, "w", zipfile.ZIP_STORED) as z:
        for name in ESCAPING:
            z.writestr(zipfile.ZipInfo(name), meta if name.endswith(".xml") else evil.read_bytes())
        link = zipfile.ZipInfo(LINK)
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(link, str(evil))
        for p in sorted(safe.rglob("*")):
            if p.is_file():
                z.write(p, p.relative_to(safe.parent).as_posix())
    return {"safe": safe, "zip": crafted}


def _stack(path):
    with rasterio.open(path) as ds:
        return ds.read(), [ds.tags(i)["source"] for i in range(1, ds.count + 1)]


def test_members_leading_outside_are_ignored_with_a_note(product, tmp_path):
    bands = ["B02", "B03", "B04", "B08", "B11", "B12"]
    clean = prepare_sentinel2_stack(product["safe"], tmp_path / "clean.tif", bands=bands)
    crafted = prepare_sentinel2_stack(product["zip"], tmp_path / "crafted.tif", bands=bands)
    got, sources = _stack(crafted.path)
    np.testing.assert_array_equal(got, _stack(clean.path)[0])
    assert all(s.startswith(f"/vsizip/{product['zip']}/S2B_MSIL2A_") for s in sources), sources
    notes = [m for m in crafted.messages if "zip member(s) ignored" in m]
    assert len(notes) == 1 and "\n" not in notes[0]
    assert f"{len(ESCAPING) + 1} zip member(s)" in notes[0]
    assert all(repr(name) in notes[0] for name in ESCAPING[:5])  # five named, then "..."
    assert notes[0].endswith("...; only members inside the product are read.")
    assert read_source(product["zip"]).bands["B02"].path.endswith("_B02_10m.jp2")


def test_nothing_is_extracted(product, tmp_path, monkeypatch):
    work, scratch = tmp_path / "cwd", tmp_path / "scratch"
    work.mkdir()
    scratch.mkdir()
    monkeypatch.chdir(work)  # a relative '../evil' would land next to it
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setenv("CPL_TMPDIR", str(scratch))
    monkeypatch.setenv("TMPDIR", str(scratch))

    def refuse(*args, **kwargs):
        raise AssertionError("a zip member was extracted")

    monkeypatch.setattr(zipfile.ZipFile, "extract", refuse)
    monkeypatch.setattr(zipfile.ZipFile, "extractall", refuse)
    before = {p for p in product["zip"].parent.parent.rglob("*")}
    out = tmp_path / "out" / "stack.tif"
    out.parent.mkdir()
    prepare_sentinel2_stack(product["zip"], out, bands=["B02", "B11"])
    after = {p for p in product["zip"].parent.parent.rglob("*")}
    assert after == before
    assert list(work.iterdir()) == [] and list(scratch.iterdir()) == []
    assert not Path("/abs").exists() and sorted(out.parent.iterdir()) == [out]


@pytest.mark.parametrize("name, kept", [
    ("S2.SAFE/GRANULE/G/IMG_DATA/R10m/T_B02_10m.jp2", True),
    ("S2.SAFE/MTD_MSIL2A.xml", True),
    ("S2.SAFE/a..b/..c/x.jp2", True),  # dots inside a name are not a parent folder
    ("/etc/x", False),
    ("\\x", False),
    ("//server/share/x", False),
    ("C:x", False),
    ("c:\\x\\y", False),
    ("S2.SAFE/../../x", False),
    ("S2.SAFE\\..\\..\\x", False),
    ("..", False),
])
def test_member_names(name, kept):
    info = zipfile.ZipInfo(name)
    assert _safe_members([info]) == (([name], []) if kept else ([], [name]))


def test_cli_prepare_shows_the_note(product, tmp_path):
    from click.testing import CliRunner

    from landslide_mapper.cli.main import main

    res = CliRunner().invoke(main, ["prepare", str(product["zip"]), str(tmp_path / "s.tif"),
                                    "--bands", "B02"])
    assert res.exit_code == 0, res.output
    assert "zip member(s) ignored" in res.output and "'../MTD_MSIL2A.xml'" in res.output
