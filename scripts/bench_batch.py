#!/usr/bin/env python
"""Benchmark of batch mapping on Dask distributed: N rasters with 1 and with 2 workers.

    python scripts/bench_batch.py                        # 6 generated 1024 x 1024 rasters, sentinel2-rgb
    python scripts/bench_batch.py --rasters 8 --size 2048 --workers 1,2,4
    python scripts/bench_batch.py --input '/data/scenes/*.tif' --model sentinel2-rgb --bands 1,2,3
    python scripts/bench_batch.py --national-tiles 300 --cluster-workers 64

By default every run uses a local cluster sized to the cores (workers x model threads = cores),
so a speed-up above 1 is what running rasters side by side gains over giving one raster all the
cores; with ``--threads-per-worker 1`` each worker has one thread, as when adding machines.
It prints the per-raster seconds of each run, the wall time, the speed-up against the first worker
count, the measured cost per megapixel, and from that the arithmetic of a national-scale run: how
long T Sentinel-2 tiles (10980 x 10980 px) take on a cluster of W workers like this machine's.
"""

from __future__ import annotations

import argparse
import glob
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from landslide_mapper.core.batch.run import map_many  # noqa: E402
from landslide_mapper.core.models.runtime import usable_cores  # noqa: E402

S2_TILE_PX = 10980 * 10980


def make_rasters(n: int, size: int, folder: Path) -> list[Path]:
    """``n`` Sentinel-2-like RGB uint16 GeoTIFFs (smooth blobs + noise), made once and cached."""
    import rasterio
    from rasterio.transform import from_origin

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        path = folder / f"scene_{size}_{k:03d}.tif"
        paths.append(path)
        if path.exists():
            continue
        rng = np.random.default_rng(k)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
        blobs = sum(np.exp(-((xx - rng.random()) ** 2 + (yy - rng.random()) ** 2) / 0.002)
                    for _ in range(12))
        data = np.stack([1000 + 1500 * blobs + rng.normal(0, 40, (size, size))
                         for _ in range(3)]).clip(0, 10000).astype(np.uint16)
        profile = {"driver": "GTiff", "width": size, "height": size, "count": 3,
                   "dtype": "uint16", "crs": "EPSG:32654", "tiled": True, "compress": "deflate",
                   "transform": from_origin(500000 + k * size * 10, 4000000, 10, 10)}
        tmp = path.with_suffix(".partial.tif")
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data)
            for i, name in enumerate(("B04", "B03", "B02"), start=1):
                dst.set_band_description(i, f"sentinel2:{name}")
        os.replace(tmp, path)
    return paths


def megapixels(paths: list[Path]) -> float:
    import rasterio

    total = 0
    for p in paths:
        with rasterio.open(p) as ds:
            total += ds.width * ds.height
    return total / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rasters", type=int, default=6)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--input", help="glob of existing rasters instead of generated ones")
    ap.add_argument("--model", default="sentinel2-rgb")
    ap.add_argument("--bands", help="e.g. 1,2,3")
    ap.add_argument("--workers", default="1,2", help="worker counts to compare; repeat them "
                    "(1,2,1,2) on a busy machine: the best run of each counts")
    ap.add_argument("--threads-per-worker", type=int, help="model threads of every worker, "
                    "fixed (as when adding machines) [cores / workers]")
    ap.add_argument("--national-tiles", type=int, default=250,
                    help="Sentinel-2 tiles of the national-scale example")
    ap.add_argument("--cluster-workers", type=int, default=32,
                    help="workers of the national-scale example (each like this machine's)")
    args = ap.parse_args()

    cache = Path(os.environ.get("LANDSLIDE_MAPPER_BENCH_CACHE",
                                Path(tempfile.gettempdir()) / "lm-bench"))
    paths = (sorted(Path(p) for p in glob.glob(args.input)) if args.input
             else make_rasters(args.rasters, args.size, cache / "batch"))
    bands = [int(b) for b in args.bands.split(",")] if args.bands else None
    mpx = megapixels(paths)
    cores = usable_cores()
    print(f"{len(paths)} rasters, {mpx:.1f} Mpx in all, model {args.model}, {cores} cores")
    walls = {}
    per_mpx = None
    for n in (int(w) for w in args.workers.split(",")):
        with tempfile.TemporaryDirectory(prefix="lm-bench-batch-") as out:
            t0 = time.perf_counter()
            result = map_many([str(p) for p in paths], args.model, out, workers=n, force=True,
                              threads_per_worker=args.threads_per_worker, bands=bands)
            wall = time.perf_counter() - t0
        if not result.ok:
            bad = [f"{o.name}: {o.error}" for o in result.outcomes if not o.ok]
            raise SystemExit("failed rasters:\n" + "\n".join(bad))
        secs = [o.seconds for o in result.outcomes]
        # Mapping time: first raster started -> last raster finished (cluster start left out).
        span = (max(o.started + o.seconds for o in result.outcomes)
                - min(o.started for o in result.outcomes))
        walls[n] = min(span, walls.get(n, span))
        threads = args.threads_per_worker or max(1, cores // n)
        print(f"\n{n} worker{'s' if n != 1 else ''} x {threads} model thread"
              f"{'s' if threads != 1 else ''}: mapping {span:.1f} s, {len(paths) / span:.2f} "
              f"rasters/s ({wall:.1f} s with the cluster's start and stop)")
        print("  per raster (s): " + ", ".join(f"{s:.1f}" for s in secs))
        print(f"  mean {np.mean(secs):.2f} s per raster, {sum(secs) / mpx:.3f} s per Mpx on one "
              "worker")
        # The machine's throughput: wall seconds per megapixel with the whole machine busy.
        per_mpx = span / mpx if per_mpx is None else min(per_mpx, span / mpx)
    first = next(iter(walls))
    for n, wall in walls.items():
        if n != first:
            print(f"\nspeed-up {first} -> {n} workers (best runs, {walls[first]:.1f} s -> "
                  f"{wall:.1f} s): {walls[first] / wall:.2f}x")

    tile_s = per_mpx * S2_TILE_PX / 1e6
    t, w = args.national_tiles, args.cluster_workers
    rounds = math.ceil(t / w)
    print(f"\nNational scale: one Sentinel-2 tile (10980 x 10980 px, {S2_TILE_PX / 1e6:.1f} Mpx) "
          f"costs {tile_s / 60:.1f} min on a machine like this one ({per_mpx:.3f} s/Mpx, best "
          f"run). {t} tiles on {w} such machines: ceil({t}/{w}) = {rounds} rounds x "
          f"{tile_s / 60:.1f} min = {rounds * tile_s / 3600:.1f} h "
          f"({t * tile_s / 3600:.0f} machine-hours in all; one machine alone: "
          f"{t * tile_s / 3600:.0f} h).")


if __name__ == "__main__":
    main()
