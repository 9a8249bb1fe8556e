"""Run configuration: a YAML file -> a plain dict with defaults, and the data sources it names.

Paths may use ``$LANDSLIDE_DATA`` (default: the ``shared/data`` folder beside the repository)
and ``~``; relative paths are taken from the config file's folder. ``model.encoder_weights``
(a file path) is taken from the folder of the file that names it, also through ``extends``.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .data.labels import LabelRule
from .data.readers import Pair, find_pairs
from .data.split import grid_block, holdout_groups, holdout_split, kfold_split

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = Path(__file__).resolve().parent / "configs"

DEFAULTS: dict[str, Any] = {
    "name": "model",
    "seed": 42,
    "model": {
        "architecture": "unet",
        "encoder": "mobilenet_v2",
        "decoder_channels": None,
        "encoder_weights": None,
        "freeze_encoder": False,
    },
    "data": {"tile_size": 128, "sources": [], "normalization": "auto", "kfold": None},
    "augment": {},
    "loss": {"name": "bce_dice"},
    "optimizer": {"name": "adam", "lr": 1e-3, "weight_decay": 0.0},
    "scheduler": {"name": "cosine", "min_lr": 1e-6},
    "epochs": 10,
    "batch_size": 16,
    "eval_batch_size": 16,
    "early_stopping": {"metric": "f1", "patience": 10},
    "threads": None,
    "workers": 0,
    "amp": False,
    "compile": False,
    "max_steps_per_epoch": None,
    "init_from": None,
    "threshold": 0.5,
    "contract": {},
}


#: Sections that an ``extends`` child replaces instead of merging into (their keys belong together).
_REPLACED = {"model", "loss", "augment", "optimizer", "scheduler", "early_stopping", "init_from"}


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, val in override.items():
        if isinstance(val, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], val)
        else:
            out[key] = copy.deepcopy(val)
    return out


def data_root() -> str:
    return os.environ.get("LANDSLIDE_DATA", str(REPO.parent / "shared" / "data"))


def expand_path(text: str | os.PathLike[str], base: Path | None = None) -> Path:
    env = dict(os.environ, LANDSLIDE_DATA=data_root())
    raw = (
        str(text)
        .replace("${LANDSLIDE_DATA}", env["LANDSLIDE_DATA"])
        .replace("$LANDSLIDE_DATA", env["LANDSLIDE_DATA"])
    )
    path = Path(os.path.expanduser(os.path.expandvars(raw)))
    if not path.is_absolute() and base is not None:
        path = base / path
    return path


def resolve_config_path(name_or_path: str | os.PathLike[str]) -> Path:
    """A config file path, or the name of a bundled config (``training/configs/NAME.yaml``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    bundled = CONFIG_DIR / f"{path.stem}.yaml"
    if bundled.is_file():
        return bundled
    names = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
    raise FileNotFoundError(f"config {name_or_path}: not found (a YAML file, or one of: {names})")


def load_config(
    source: str | os.PathLike[str] | Mapping[str, Any], **overrides: Any
) -> dict[str, Any]:
    """Config with defaults filled in; ``overrides`` (dotted keys allowed) win over the file."""
    if isinstance(source, Mapping):
        doc, base = dict(source), Path.cwd()
    else:
        path = resolve_config_path(source)
        doc = _read_yaml(path)
        base = path.resolve().parent
        doc["config_file"] = str(path)
    cfg = _merge(DEFAULTS, doc)
    for key, val in overrides.items():
        if val is None:
            continue
        node = cfg
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = val
    cfg["_base"] = str(base)
    return cfg


def _read_yaml(path: Path, depth: int = 0) -> dict[str, Any]:
    """A config document; ``extends: OTHER`` (a file beside it or a bundled name) merges over it."""
    import yaml

    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f) or {}
    weights = (doc.get("model") or {}).get("encoder_weights")
    if weights and str(weights).lower() != "imagenet":  # a file, from this file's folder
        doc["model"]["encoder_weights"] = str(expand_path(weights, path.resolve().parent).resolve())
    parent = doc.pop("extends", None)
    if parent:
        if depth > 5:
            raise ValueError(f"config {path}: 'extends' nests too deep (a cycle?)")
        candidate = path.resolve().parent / str(parent)
        parent_path = candidate if candidate.is_file() else resolve_config_path(parent)
        parent_doc = _read_yaml(parent_path, depth + 1)
        for key in _REPLACED & set(doc):
            parent_doc.pop(key, None)  # a section the child gives replaces the parent's whole
        doc = _merge(parent_doc, doc)
    return doc


@dataclass
class Sources:
    """Training pairs (with per-pair repeats) and held-out pairs per source name."""

    train: list[Pair]
    repeats: list[int]
    val: dict[str, list[Pair]]
    rules: dict[str, str]


def _pairs(src: Mapping[str, Any], root: Path, part: Mapping[str, Any] | None) -> list[Pair]:
    opts = dict(src)
    if part:
        opts.update(part)
    return find_pairs(
        src.get("format", "tiles"),
        root,
        images=opts.get("images", "images"),
        masks=opts.get("masks", "masks"),
        label=LabelRule.parse(src.get("label")),
        channels=src.get("channels"),
        source=src["name"],
        split=opts.get("split", "TrainData"),
    )


def build_sources(cfg: Mapping[str, Any]) -> Sources:
    """Find every source's pairs and split them into training and held-out sets.

    Per source, one of: ``train``/``val`` sub-settings (separate folders, e.g. an official
    split), ``holdout: {fraction, seed}`` (see :mod:`training.data.split`), or the config's
    ``data.kfold: {k, fold, seed}``; ``val_only: true`` keeps a source for scoring only.
    """
    base = Path(cfg.get("_base", "."))
    train: list[Pair] = []
    repeats: list[int] = []
    val: dict[str, list[Pair]] = {}
    rules: dict[str, str] = {}
    kfold = cfg["data"].get("kfold")
    for src in cfg["data"]["sources"]:
        if "name" not in src or "root" not in src:
            raise ValueError(f"data source {src!r}: needs 'name' and 'root'")
        root = expand_path(src["root"], base)
        if not root.exists():
            raise FileNotFoundError(f"data source {src['name']}: folder {root} not found")
        if "train" in src or "val" in src:
            tr = _pairs(src, root, src.get("train")) if "train" in src else []
            va = _pairs(src, root, src.get("val")) if "val" in src else []
            rules[src["name"]] = "separate folders: " + ", ".join(
                f"{k}={dict(src[k])}" for k in ("train", "val") if k in src
            )
        else:
            pairs = _pairs(src, root, None)
            if src.get("val_only"):
                tr, va = [], pairs
                rules[src["name"]] = "scored only, never trained on"
            elif kfold:
                k, fold, seed = int(kfold["k"]), int(kfold["fold"]), int(kfold.get("seed", 0))
                tr, va = kfold_split(pairs, k, fold, seed)
                rules[src["name"]] = f"k-fold: fold {fold} of {k}, seed {seed}"
            else:
                h = src.get("holdout", {"fraction": 0.2, "seed": 0})
                frac, seed = float(h.get("fraction", 0.2)), int(h.get("seed", 0))
                if h.get("names"):
                    tr, va = _named_holdout(pairs, [str(n) for n in h["names"]], src["name"])
                    rules[src["name"]] = f"held out {len(va)} of {len(pairs)} named: " + ", ".join(
                        p.image.stem for p in va
                    )
                    train += tr
                    repeats += [int(src.get("repeats", 1))] * len(tr)
                    val[src["name"]] = va
                    continue
                if h.get("grid_columns"):
                    cols, block = int(h["grid_columns"]), int(h.get("block", 4))
                    tr, va = holdout_groups(
                        pairs, lambda p: grid_block(p.image.stem, cols, block), frac, seed
                    )
                    how = f"whole {block}x{block}-tile blocks of the {cols}-column tile grid"
                else:
                    tr, va = holdout_split(pairs, frac, seed)
                    how = "tiles sorted by name, shuffled"
                rules[src["name"]] = (
                    f"held out {len(va)} of {len(pairs)} ({how}; fraction {frac}, seed {seed})"
                )
        train += tr
        repeats += [int(src.get("repeats", 1))] * len(tr)
        if va:
            val[src["name"]] = va
    if not train:
        raise ValueError("config: no training images found in data.sources")
    return Sources(train, repeats, val, rules)


def _named_holdout(
    pairs: list[Pair], names: list[str], source: str
) -> tuple[list[Pair], list[Pair]]:
    """Hold out the pairs whose image is named (file name or stem) in ``names``."""
    wanted = set(names)
    found = {n for p in pairs for n in (p.image.name, p.image.stem) if n in wanted}
    missing = sorted(wanted - found)
    if missing:
        raise ValueError(
            f"data source {source}: holdout.names lists {', '.join(missing)}, "
            "which are not among its images"
        )
    held = [p for p in pairs if p.image.name in wanted or p.image.stem in wanted]
    return [p for p in pairs if p not in held], held
