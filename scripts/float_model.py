#!/usr/bin/env python
"""The float model an int8 model was made from, recovered from the repository's git history.

The bundled models ship as int8 copies; their float sources are not kept in the tree (plugin
size), but every int8 contract records the digest of its source's network
(``quantization.source_graph_sha256``: operators and weights, not the metadata), and the float
files are in the history of ``resources/models/``. The float network found there is written with
the int8 model's own contract (less ``quantization``), so both run with the same settings.
Benchmarks and the real-data agreement test use this to compare the two.

    python scripts/float_model.py sentinel2-rgb /tmp/sentinel2-rgb-float.onnx
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from landslide_mapper.core.contract import read_contract  # noqa: E402
from landslide_mapper.core.models.registry import resolve_model  # noqa: E402


def float_source(model: str | Path, out: Path) -> Path | None:
    """Write the float source of int8 ``model`` to ``out``; None when git or the file is not at
    hand (not a checkout, or the source never committed under the same path)."""
    import onnx

    from landslide_mapper.core.contract import set_contract

    path = resolve_model(str(model)).resolve()
    contract = read_contract(path)
    want = contract.quantization.get("source_graph_sha256")
    if not want:
        return None
    try:
        rel = path.relative_to(REPO).as_posix()
        commits = subprocess.run(["git", "-C", str(REPO), "log", "--format=%H", "--", rel],
                                 capture_output=True, text=True, check=True).stdout.split()
    except (ValueError, OSError, subprocess.CalledProcessError):
        return None
    for commit in commits:
        blob = subprocess.run(["git", "-C", str(REPO), "show", f"{commit}:{rel}"],
                              capture_output=True, check=False).stdout
        if not blob:
            continue
        found = onnx.load_model_from_string(blob)
        digest = hashlib.sha256(found.graph.SerializeToString(deterministic=True)).hexdigest()
        if digest == want:
            set_contract(found, contract.with_updates(quantization={}))
            out.parent.mkdir(parents=True, exist_ok=True)
            onnx.save_model(found, str(out))
            return out
    return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="an int8 model: bundled name or .onnx path")
    p.add_argument("out", type=Path, help="where to write the float model")
    args = p.parse_args()
    found = float_source(args.model, args.out)
    if found is None:
        print(f"{args.model}: no float source found in the git history", file=sys.stderr)
        return 1
    print(found)
    return 0


if __name__ == "__main__":
    sys.exit(main())
