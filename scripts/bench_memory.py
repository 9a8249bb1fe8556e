#!/usr/bin/env python
"""Benchmark of peak memory: map over raster shapes, vectorize on pathological masks, evaluate on
far-apart inputs. Prints a table of peak resident memory (RSS) and wall time per case.

    python scripts/bench_memory.py                          # every case
    python scripts/bench_memory.py --cases map-wide,vectorize-random
    python scripts/bench_memory.py --timeout 300 --cap-gb 3 # per case: give up after, kill above
    python scripts/bench_memory.py --package-root /tmp/old  # measure another copy of the package

Each case runs in its own process (its inputs are made beforehand, in another process, and cached
in ``$LANDSLIDE_MAPPER_BENCH_CACHE`` or the temp folder). Peak RSS is the larger of the kernel's
figure for the process (``getrusage``'s ``ru_maxrss`` via ``wait4``) and what a watchdog sampling
the process every 0.1 s saw; the watchdog kills a case that passes ``--cap-gb`` or ``--timeout``
(reported as such), so a case that grows without bound cannot take the machine down.

Cases (every raster 10 m pixels in UTM 33N; the map cases use a tiny exact dummy model, so the
figures are the engine's own, not a network's):

* ``map-square`` 8192 x 8192, ``map-wide`` 128000 x 512, ``map-tall`` 512 x 128000,
  ``map-very-wide`` 512000 x 128: 3-band uint16 with a landslide blob every 200 px; probability,
  mask and polygons are written.
* ``vectorize-random``: 4000 x 4000 mask, 62 % of pixels set at random (seed 0).
* ``vectorize-mesh``: 4000 x 4000 mask, a 1-pixel grid every 8 pixels: one polygon, 250 000 holes.
* ``evaluate-far``: predicted and reference polygons 100 km apart (north-east), pixel size 1 m.
* ``evaluate-far-auto``: the same, with the pixel size left to the evaluation.
* ``evaluate-raster``: a 12000 x 12000 uint8 predicted mask (a 20 x 20 blob every 200 px)
  against a reference mask on the same grid (the blobs 5 px to the east).
* ``evaluate-raster-polygons``: the same predicted mask against the reference blobs as a
  polygon file (3600 squares).
* ``evaluate-raster-warped``: the same predicted mask against the reference mask on a 5 m grid
  (24000 x 24000, reprojected onto the predicted grid).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
UTM = "EPSG:32633"
X0, Y0 = 500_000.0, 5_000_000.0
PIXEL = 10.0
MAP_SHAPES = {  # width, height
    "map-square": (8192, 8192),
    "map-wide": (128_000, 512),
    "map-tall": (512, 128_000),
    "map-very-wide": (512_000, 128),
}
EVAL_RASTER_CASES = ["evaluate-raster", "evaluate-raster-polygons", "evaluate-raster-warped"]
CASES = [*MAP_SHAPES, "vectorize-random", "vectorize-mesh", "evaluate-far", "evaluate-far-auto",
         *EVAL_RASTER_CASES]
MASK_SIZE = 4000
EVAL_SIZE = 12_000


def cache_dir() -> Path:
    default = Path(tempfile.gettempdir()) / "lm-bench-memory"
    d = Path(os.environ.get("LANDSLIDE_MAPPER_BENCH_CACHE", default))
    d.mkdir(parents=True, exist_ok=True)
    return d


# ---------------------------------------------------------------------------------------------
# Inputs (made in a process of their own, block by block, so making them is not measured)


def _profile(width: int, height: int, count: int, dtype: str, nodata: Any = None) -> dict:
    from affine import Affine

    return dict(driver="GTiff", width=width, height=height, count=count, dtype=dtype, crs=UTM,
                transform=Affine(PIXEL, 0, X0, 0, -PIXEL, Y0), tiled=True, blockxsize=256,
                blockysize=256, compress="deflate", nodata=nodata, bigtiff="IF_SAFER")


def make_scene(path: Path, width: int, height: int) -> None:
    """3-band uint16: 1000 everywhere, 3000 on a 20 x 20 blob every 200 px (both axes)."""
    import numpy as np
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(path, "w", **_profile(width, height, 3, "uint16")) as dst:
        dst.descriptions = ("red", "green", "blue")
        step = 4096
        for r in range(0, height, 256):
            h = min(256, height - r)
            rows = (np.arange(r, r + h) % 200 < 20)[:, None]
            for c in range(0, width, step):
                w = min(step, width - c)
                blob = rows & (np.arange(c, c + w) % 200 < 20)[None, :]
                band = np.where(blob, 3000, 1000).astype(np.uint16)
                dst.write(np.stack([band] * 3), window=Window(c, r, w, h))


def make_mask(path: Path, kind: str) -> None:
    import numpy as np
    import rasterio

    n = MASK_SIZE
    if kind == "random":
        mask = (np.random.default_rng(0).random((n, n)) < 0.62).astype(np.uint8)
    else:  # a 1-pixel grid every 8 pixels: one component with (n / 8) ** 2 holes
        idx = np.arange(n) % 8 == 0
        mask = (idx[:, None] | idx[None, :]).astype(np.uint8)
    with rasterio.open(path, "w", **_profile(n, n, 1, "uint8", nodata=255)) as dst:
        dst.write(mask[None])


def make_blob_mask(path: Path, size: int, shift: int, pixel: float = PIXEL) -> None:
    """uint8 0/1: a 20 x 20 (x 10 m) blob every 200 px (x 10 m), ``shift`` (x 10 m) east."""
    import numpy as np
    import rasterio
    from affine import Affine
    from rasterio.windows import Window

    k = round(PIXEL / pixel)
    profile = _profile(size * k, size * k, 1, "uint8")
    profile["transform"] = Affine(pixel, 0, X0, 0, -pixel, Y0)
    with rasterio.open(path, "w", **profile) as dst:
        cols = ((np.arange(size * k) // k - shift) % 200 < 20)[None, :]
        for r in range(0, size * k, 256):
            h = min(256, size * k - r)
            rows = ((np.arange(r, r + h) // k) % 200 < 20)[:, None]
            dst.write((rows & cols).astype(np.uint8)[None], window=Window(0, r, size * k, h))


def make_blob_polygons(path: Path, size: int, shift: int) -> None:
    import fiona
    from shapely.geometry import box, mapping

    schema = {"geometry": "Polygon", "properties": {"id": "int"}}
    with fiona.open(path, "w", driver="GPKG", crs=UTM, schema=schema) as dst:
        n = 0
        for r in range(0, size, 200):
            for c in range(0, size, 200):
                x, y = X0 + (c + shift) * PIXEL, Y0 - r * PIXEL
                n += 1
                dst.write({"geometry": mapping(box(x, y - 20 * PIXEL, x + 20 * PIXEL, y)),
                           "properties": {"id": n}})


def make_eval_rasters(folder: Path) -> dict[str, Path]:
    paths = {"pred": folder / f"eval_pred_{EVAL_SIZE}.tif",
             "ref": folder / f"eval_ref_{EVAL_SIZE}.tif",
             "ref_5m": folder / f"eval_ref_5m_{EVAL_SIZE}.tif",
             "ref_gpkg": folder / f"eval_ref_{EVAL_SIZE}.gpkg"}
    for key, shift, pixel in (("pred", 0, PIXEL), ("ref", 5, PIXEL), ("ref_5m", 5, PIXEL / 2)):
        if not paths[key].exists():
            make_blob_mask(paths[key], EVAL_SIZE, shift, pixel)
    if not paths["ref_gpkg"].exists():
        make_blob_polygons(paths["ref_gpkg"], EVAL_SIZE, 5)
    return paths


def make_far_polygons(folder: Path) -> tuple[Path, Path]:
    """Ten 50 m squares predicted near (X0, Y0), ten reference squares 100 km north-east."""
    import fiona
    from shapely.geometry import box, mapping

    schema = {"geometry": "Polygon", "properties": {"id": "int"}}
    paths = []
    for name, dx in (("predicted", 0.0), ("reference", 100_000.0)):
        p = folder / f"far_{name}_ne.gpkg"
        if not p.exists():
            with fiona.open(p, "w", driver="GPKG", crs=UTM, schema=schema) as dst:
                for i in range(10):
                    x, y = X0 + dx + i * 200.0, Y0 + dx
                    dst.write({"geometry": mapping(box(x, y, x + 50, y + 50)),
                               "properties": {"id": i + 1}})
        paths.append(p)
    return paths[0], paths[1]


def make_inputs(case: str, folder: Path) -> None:
    if case in MAP_SHAPES:
        w, h = MAP_SHAPES[case]
        path = folder / f"scene_{w}x{h}.tif"
        if not path.exists():
            make_scene(path, w, h)
        model = folder / "dummy_blob.onnx"
        if not model.exists():
            from landslide_mapper.core.models.dummy import build_dummy_model

            # logit = 0.001 * red - 2: -1 on the background, +1 on the blobs
            build_dummy_model(model, weights=[0.001, 0.0, 0.0], bias=-2.0, pixel_size_m=PIXEL,
                              tile_size=256, overlap=32, name="dummy-blob")
    elif case.startswith("vectorize-"):
        kind = case.split("-", 1)[1]
        path = folder / f"mask_{kind}.tif"
        if not path.exists():
            make_mask(path, kind)
    elif case in EVAL_RASTER_CASES:
        make_eval_rasters(folder)
    else:
        make_far_polygons(folder)


# ---------------------------------------------------------------------------------------------
# One case, in the measured process


def run_case(case: str, folder: Path, out: Path) -> str:
    """Run ``case``; return a short outcome (what was written, or the one-line refusal)."""
    from landslide_mapper.core.errors import LandslideMapperError

    try:
        if case in MAP_SHAPES:
            from landslide_mapper.core.mapping.engine import map_landslides

            w, h = MAP_SHAPES[case]
            res = map_landslides(folder / f"scene_{w}x{h}.tif", folder / "dummy_blob.onnx",
                                 probability_path=out / "p.tif", mask_path=out / "m.tif",
                                 polygons_path=out / "l.gpkg")
            return f"{res.polygon_count} polygons, {res.tiles} tiles"
        if case.startswith("vectorize-"):
            from landslide_mapper.core.polygons.vectorize import vectorize_mask

            kind = case.split("-", 1)[1]
            res = vectorize_mask(folder / f"mask_{kind}.tif", out / "l.gpkg")
            return f"{res.count} polygons"
        from landslide_mapper.core.loop.evaluation import evaluate_landslides

        if case in EVAL_RASTER_CASES:
            paths = make_eval_rasters(folder)
            ref = paths[{"evaluate-raster": "ref", "evaluate-raster-polygons": "ref_gpkg",
                         "evaluate-raster-warped": "ref_5m"}[case]]
            res = evaluate_landslides(paths["pred"], ref, out_polygons=out / "m.gpkg")
            return (f"{res.hits} hits of {res.predicted_count}/{res.reference_count}, pixel F1 "
                    f"{res.pixel['f1']:.2f}")
        pred, ref = make_far_polygons(folder)
        size = 1.0 if case == "evaluate-far" else None
        res = evaluate_landslides(pred, ref, pixel_size=size)
        return f"grid {res.grid['width']} x {res.grid['height']}, F1 {res.pixel['f1']:.2f}"
    except LandslideMapperError as exc:
        return "refused: " + str(exc).splitlines()[0]


# ---------------------------------------------------------------------------------------------
# The driver: a process per case, watched


def _env(package_root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(package_root), env.get("PYTHONPATH", ""))
                                        if p)
    return env


def measure(case: str, package_root: Path, folder: Path, timeout: float,
            cap_bytes: int) -> dict[str, Any]:
    import psutil

    subprocess.run([sys.executable, __file__, "--make", case, "--folder", str(folder)],
                   env=_env(REPO), check=True)
    with tempfile.TemporaryDirectory(prefix="lm-bench-out-") as out:
        cmd = [sys.executable, __file__, "--run", case, "--folder", str(folder), "--out", out]
        logs = Path(out) / "stdout.txt", Path(out) / "stderr.txt"
        t0 = time.perf_counter()
        with open(logs[0], "w") as so, open(logs[1], "w") as se:
            proc = subprocess.Popen(cmd, env=_env(package_root), stdout=so, stderr=se)
        watched, peak, killed = psutil.Process(proc.pid), 0, ""
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            try:
                peak = max(peak, watched.memory_info().rss)
            except psutil.Error:
                pass
            elapsed = time.perf_counter() - t0
            if peak > cap_bytes or elapsed > timeout:
                killed = (f"killed above {cap_bytes / 2**30:.1f} GB" if peak > cap_bytes
                          else f"killed after {timeout:.0f} s, still running")
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.1)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t0
        stdout, stderr = (p.read_text(errors="replace") for p in logs)
    peak = max(peak, usage.ru_maxrss * 1024)
    if killed:
        outcome = killed
    elif proc.returncode != 0:
        outcome = "failed: " + (stderr.strip().splitlines() or ["?"])[-1]
    else:
        outcome = (stdout.strip().splitlines() or ["?"])[-1]
    return {"case": case, "peak_mb": peak / 2**20, "seconds": seconds, "outcome": outcome}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated, of: " +
                    ", ".join(CASES))
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per case")
    ap.add_argument("--cap-gb", type=float, default=4.0, help="kill a case above this RSS")
    ap.add_argument("--package-root", type=Path, default=REPO,
                    help="folder holding the landslide_mapper package to measure")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON")
    ap.add_argument("--make", help=argparse.SUPPRESS)
    ap.add_argument("--run", help=argparse.SUPPRESS)
    ap.add_argument("--folder", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    folder = args.folder or cache_dir()
    if args.make:
        make_inputs(args.make, folder)
        return
    if args.run:
        print(run_case(args.run, folder, args.out))
        return
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        ap.error(f"unknown case(s) {', '.join(unknown)}; expected some of {', '.join(CASES)}")
    print(f"package: {args.package_root / 'landslide_mapper'}; inputs in {folder}")
    print(f"{'case':<20} {'peak RSS MB':>12} {'seconds':>9}  outcome")
    rows = []
    for case in cases:
        row = measure(case, args.package_root, folder, args.timeout, int(args.cap_gb * 2**30))
        rows.append(row)
        print(f"{case:<20} {row['peak_mb']:>12.0f} {row['seconds']:>9.1f}  {row['outcome']}",
              flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
