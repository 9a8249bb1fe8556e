"""Finding models: the bundled ones by name, any other by path.

Bundled models live in ``resources/models/NAME.onnx`` with a model card ``NAME.md`` beside them.
In the repository ``resources/`` sits next to the package; in the installed plugin it sits inside
it. ``LANDSLIDE_MAPPER_MODELS`` (a path list) adds folders to search.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..contract import ModelContract, read_contract
from ..errors import ModelError

_PACKAGE = Path(__file__).resolve().parents[2]  # the landslide_mapper package


def resources_dir() -> Path:
    """The resources folder: inside the package (plugin zip) or beside it (repository)."""
    for candidate in (_PACKAGE / "resources", _PACKAGE.parent / "resources"):
        if candidate.is_dir():
            return candidate
    return _PACKAGE.parent / "resources"


def model_dirs() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("LANDSLIDE_MAPPER_MODELS", "").split(os.pathsep) if p]
    return [*extra, resources_dir() / "models"]


@dataclass(frozen=True)
class BundledModel:
    name: str
    path: Path
    card_path: Path | None

    @property
    def contract(self) -> ModelContract:
        return read_contract(self.path)

    def card(self) -> str:
        return self.card_path.read_text(encoding="utf-8") if self.card_path else ""


def bundled_models() -> list[BundledModel]:
    """All models found in the model folders, first folder wins on a name clash."""
    found: dict[str, BundledModel] = {}
    for folder in model_dirs():
        if not folder.is_dir():
            continue
        for onnx_path in sorted(folder.glob("*.onnx")):
            name = onnx_path.stem
            card = onnx_path.with_suffix(".md")
            found.setdefault(name, BundledModel(name, onnx_path, card if card.is_file() else None))
    return list(found.values())


def folder_message(source: str, folder: Path) -> str:
    """What to say when a folder is given where a model file is expected."""
    inside = sorted(p.name for p in folder.glob("*.onnx"))[:5]
    hint = (f"; it holds {', '.join(inside)}: give one of them, e.g. {folder / inside[0]}"
            if inside else "; it holds no .onnx file")
    return (f"{source}: expected an .onnx model file (or a bundled model's name), found a "
            f"folder{hint}.")


def resolve_model(name_or_path: str | os.PathLike[str]) -> Path:
    """A bundled model's name, or a path to an .onnx file -> the file's path."""
    text = str(name_or_path).strip()
    if not text:
        raise ModelError("Model: none given (expected a bundled model's name or an .onnx path).")
    path = Path(text).expanduser()
    if path.is_dir():
        raise ModelError(folder_message(f"Model {text}", path))
    if path.suffix.lower() == ".onnx" or os.sep in text or path.is_file():
        if not path.is_file():
            raise ModelError(f"Model {text}: file not found (expected an .onnx file).")
        return path
    models = bundled_models()
    for model in models:
        if model.name == text:
            return model.path
    names = ", ".join(m.name for m in models) or "none installed"
    raise ModelError(
        f"Model {text!r}: not a bundled model and not an .onnx file. Bundled models: {names}."
    )
