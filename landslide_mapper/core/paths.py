"""One check, shared by every command and algorithm: no output lands on an input or another output.

Paths are compared as the files they end up naming: resolved, symlinks followed (and, for files that
exist, by device and inode, so hard links and case-insensitive file systems count too), with the
side-car files a format writes (a shapefile's ``.shx``, ``.dbf``, ...). A GeoPackage is a container:
an output layer may share the file of an input layer or of another output layer, never the layer
itself. An output folder may not be, or hold, an input. :func:`check_distinct` runs before anything
is written and raises :class:`~.errors.OutputError` naming both paths.

``path|layername=NAME`` names one layer of a GeoPackage (the QGIS spelling); :func:`split_layer`
takes it apart.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Union

from .errors import OutputError

#: The files a shapefile is made of (and the indexes tools add beside it).
SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx")


def split_layer(source: Any) -> tuple[str, str | None]:
    """``"inventory.gpkg|layername=roads"`` -> ``("inventory.gpkg", "roads")``; no layer -> None."""
    text = os.fspath(source) if isinstance(source, os.PathLike) else str(source)
    if "|" not in text:
        return text, None
    path, _, rest = text.partition("|")
    layer = None
    for option in rest.split("|"):
        key, _, value = option.partition("=")
        if key.strip().lower() == "layername" and value.strip():
            layer = value.strip()
    return path, layer


@dataclass(frozen=True)
class Place:
    """An input or output of a run: its role (as the user knows it), path and, in a GeoPackage,
    layer. ``folder``: an output folder, which must not be or hold an input."""

    role: str
    path: Path
    layer: str | None = None
    folder: bool = False

    @classmethod
    def of(cls, role: str, source: Any, layer: str | None = None,
           folder: bool = False) -> "Place":
        path, named = split_layer(source)
        return cls(role, Path(path), layer or named, folder)

    def shown(self) -> str:
        return f"{self.path}|layername={self.layer}" if self.layer else str(self.path)


Given = Union[Place, tuple]


def check_distinct(inputs: Iterable[Given], outputs: Iterable[Given]) -> None:
    """Refuse an output that is an input, or another output (same file, or same GeoPackage layer).

    ``inputs`` and ``outputs`` are :class:`Place` objects or ``(role, path[, layer])`` tuples; an
    entry whose path is None or empty is skipped. Raises OutputError naming both sides.
    """
    ins = list(_places(inputs))
    outs = list(_places(outputs))
    in_keys = [(p, _keys(p)) for p in ins]
    for out in outs:
        out_keys = _keys(out)
        for inp, keys in in_keys:
            if out.folder and _inside(inp.path, out.path):
                raise OutputError(
                    f"{out.role} {out.path}: expected a folder apart from the inputs, found it "
                    f"holds the {_lower(inp.role)} {inp.shown()}. Choose another folder.")
            if out_keys & keys and _same_layer(out, inp, input_side=True):
                raise OutputError(
                    f"{out.role} {out.shown()}: expected an output apart from the inputs, found "
                    f"the same {_thing(out)} as the {_lower(inp.role)} {inp.shown()}"
                    f"{_via(out, inp)}. {_advice(out)}")
    for k, later in enumerate(outs):
        later_keys = _keys(later)
        for earlier in outs[:k]:
            if later_keys & _keys(earlier) and _same_layer(later, earlier, input_side=False):
                raise OutputError(
                    f"{later.role} {later.shown()}: expected each output at its own path, found "
                    f"the same {_thing(later)} as the {_lower(earlier.role)} {earlier.shown()}"
                    f"{_via(later, earlier)}. {_advice(later)}")


def _places(given: Iterable[Given]) -> Iterator[Place]:
    for item in given:
        place = item if isinstance(item, Place) else Place.of(*item) if item[1] not in (
            None, "") else None
        if place is not None and str(place.path) not in ("", "."):
            yield place


def _files(place: Place) -> list[Path]:
    """The files a place stands for: the file itself and a shapefile's side-cars."""
    if place.path.suffix.lower() in SHAPEFILE_PARTS:
        return [place.path.with_suffix(ext) for ext in SHAPEFILE_PARTS]
    return [place.path]


def _keys(place: Place) -> set[Any]:
    """What makes two files the same: the resolved path, and device and inode when it exists."""
    keys: set[Any] = set()
    for path in _files(place):
        real = os.path.realpath(os.path.expanduser(str(path)))
        keys.add(os.path.normcase(real))
        try:
            st = os.stat(real)
        except OSError:
            continue
        keys.add((st.st_dev, st.st_ino))
    return keys


def _inside(path: Path, folder: Path) -> bool:
    real = Path(os.path.realpath(os.path.expanduser(str(path))))
    top = Path(os.path.realpath(os.path.expanduser(str(folder))))
    return real == top or top in real.parents


def _same_layer(out: Place, other: Place, *, input_side: bool) -> bool:
    """Same file: the same data unless both are layers of one GeoPackage with different names."""
    if out.path.suffix.lower() != ".gpkg" or other.path.suffix.lower() != ".gpkg":
        return True
    a = out.layer
    b = other.layer if other.layer or not input_side else _first_layer(other.path)
    if a is None or b is None:
        return True
    return a.lower() == b.lower()  # GeoPackage table names ignore case


def _first_layer(path: Path) -> str | None:
    """The layer read from a GeoPackage named without a layer (its first); None if unknown."""
    try:
        import fiona

        layers = fiona.listlayers(str(path))
    except Exception:  # not there yet or unreadable: assume the worst, same layer
        return None
    return layers[0] if layers else None


def _thing(place: Place) -> str:
    return "GeoPackage layer" if place.layer and place.path.suffix.lower() == ".gpkg" else "file"


def _via(a: Place, b: Place) -> str:
    """Where both lead, when a symlink or a relative spelling hides it."""
    spelled = [os.path.abspath(os.path.expanduser(str(p.path))) for p in (a, b)]
    real = [os.path.realpath(p) for p in spelled]
    if real[0] == real[1] and spelled != real:
        return f" (both lead to {real[0]})"
    return ""


def _advice(place: Place) -> str:
    if place.path.suffix.lower() == ".gpkg":
        return "Choose another path, or another layer name in the GeoPackage."
    return "Choose another path."


def _lower(role: str) -> str:
    """A role in the middle of a sentence: 'Input raster' -> 'input raster', '--dem' stays."""
    return role[:1].lower() + role[1:] if role[:1].isupper() and not role[1:2].isupper() else role
