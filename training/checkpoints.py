"""Reading and writing ``.pt`` files without running code from them.

A training checkpoint (``last.pt``/``best.pt``) holds plain values only: tensors, numbers,
strings, booleans, ``None`` and lists/tuples/dicts of them (the config as a JSON-compatible dict,
the optimiser and schedule state, scores, the run's per-band mean/std). Every ``.pt`` file this
package reads goes through :func:`load_plain`, i.e. ``torch.load(..., weights_only=True)``: a
file that holds pickled Python objects (an old-format checkpoint, or a crafted one) is refused
with a one-line error before any of it runs.

What lives here: :func:`save_checkpoint` (plain values, written atomically),
:func:`load_checkpoint` (a checkpoint, its structure checked), :func:`load_plain` (any
``.pt``/``.pth`` file of plain values, e.g. a pretrained state dict). Imports nothing else from
:mod:`training`.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

#: What a checkpoint must hold to rebuild its network (``model``) or to resume a run (``resume``).
REQUIRED = {
    "model": ("model", "config", "mean", "std"),
    "weights": ("model",),
    "resume": ("model", "config", "mean", "std", "optimizer", "epoch", "best", "best_epoch"),
}


def plain(value: Any, where: str = "checkpoint") -> Any:
    """``value`` with numpy scalars/arrays and paths turned into plain Python values.

    Tensors stay tensors. Anything else that ``torch.load(weights_only=True)`` could not read
    back (a dataclass, a class instance) raises ``TypeError`` naming where it sits.
    """
    if isinstance(value, torch.Tensor) or value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return float(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {
            (k if isinstance(k, (str, int)) else str(k)): plain(v, f"{where}[{k!r}]")
            for k, v in value.items()
        }
    if isinstance(value, tuple):
        return tuple(plain(v, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(value, list):
        return [plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(
        f"{where}: expected tensors and plain values only, found a {type(value).__name__}"
    )


def save_checkpoint(state: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``state`` (plain values, see :func:`plain`) to ``path`` via a ``.partial`` file."""
    path = Path(path)
    data = plain(dict(state), f"checkpoint {path.name}")
    tmp = path.with_name(path.name + ".partial")
    torch.save(data, str(tmp))
    tmp.replace(path)
    return path


def load_plain(path: str | os.PathLike[str], what: str = "checkpoint") -> Any:
    """The contents of a ``.pt`` file read with ``weights_only=True`` (no code runs).

    Raises ``FileNotFoundError`` or ``ValueError`` with one line naming the file, what was
    expected and what was found.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path}: file not found")
    expected = "plain tensors and values (read without running code)"
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"{what} {path}: expected {expected}, found {_found(exc)}; it was not loaded "
            "(a file you trust from an older version: load it with torch.load(weights_only="
            "False) and save it again with training.checkpoints.save_checkpoint)"
        ) from None
    except Exception as exc:  # a truncated, corrupt or non-PyTorch file: many error types
        first = (str(exc).strip().splitlines() or [""])[0] or type(exc).__name__
        raise ValueError(
            f"{what} {path}: expected a PyTorch file of {expected}, found an unreadable file "
            f"({first[:160]})"
        ) from None


def _found(exc: Exception) -> str:
    """What a refused file holds, in a few words (the first global it asked for)."""
    text = str(exc)
    m = re.search(r"GLOBAL ([\w.<>]+)", text)
    if m:
        return f"pickled Python objects (it asks for {m.group(1)})"
    detail = text.split("WeightsUnpickler error:", 1)[-1].split("Check the documentation")[0]
    lines = [ln.strip() for ln in detail.splitlines() if ln.strip()]
    return f"content that is not plain values ({(lines or ['unreadable'])[0][:160]})"


def load_checkpoint(path: str | os.PathLike[str], need: str = "model") -> dict[str, Any]:
    """A training checkpoint, read without running code, with its structure checked.

    ``need``: ``model`` (network and normalisation: export, evaluate), ``weights`` (the
    ``model`` state dict only: ``init_from``) or ``resume`` (also the optimiser and progress).
    """
    ckpt = load_plain(path, "checkpoint")
    problem = _structure_problem(ckpt, REQUIRED[need])
    if problem:
        raise ValueError(
            f"checkpoint {path}: expected a training checkpoint (a run's best.pt or last.pt), "
            f"found {problem}"
        )
    return ckpt


def _structure_problem(ckpt: Any, keys: tuple[str, ...]) -> str | None:
    if not isinstance(ckpt, dict):
        return f"a {type(ckpt).__name__} instead of a dict"
    missing = [k for k in keys if k not in ckpt]
    if missing:
        return "no " + ", ".join(repr(k) for k in missing)
    problem = state_dict_problem(ckpt["model"], "'model'")
    if problem:
        return problem
    if "config" in keys:
        cfg = ckpt["config"]
        if not isinstance(cfg, dict) or not all(
            isinstance(cfg.get(k), dict) for k in ("model", "data")
        ):
            return "a 'config' that is not a config dict (with 'model' and 'data' sections)"
        mean, std = ckpt["mean"], ckpt["std"]
        if not (_numbers(mean) and _numbers(std) and len(mean) == len(std) and mean):
            return "'mean'/'std' that are not two lists of numbers of the same length"
    if "optimizer" in keys and not isinstance(ckpt["optimizer"], dict):
        return "an 'optimizer' that is not a state dict"
    if "epoch" in keys and not isinstance(ckpt["epoch"], int):
        return f"an 'epoch' that is not a whole number ({ckpt['epoch']!r})"
    return None


def state_dict_problem(sd: Any, name: str = "state dict") -> str | None:
    """Why ``sd`` is not a state dict (str -> tensor), or None."""
    if not isinstance(sd, dict) or not sd:
        return f"a {name} that is not a non-empty dict"
    bad = [k for k, v in sd.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))]
    if bad:
        return f"a {name} with entries that are not named tensors ({', '.join(map(str, bad[:3]))})"
    return None


def _numbers(seq: Any) -> bool:
    return isinstance(seq, (list, tuple)) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in seq
    )


__all__ = ["load_checkpoint", "load_plain", "plain", "save_checkpoint", "state_dict_problem"]
