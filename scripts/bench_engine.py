#!/usr/bin/env python
"""Benchmark of the mapping engine: end-to-end speed against the raw model, and peak memory.

    python scripts/bench_engine.py                      # 10980 x 10980, 14-band, dummy conv3 model
    python scripts/bench_engine.py --size 4096 --batch-size 8
    python scripts/bench_engine.py --input scene.tif --model model.onnx
    python scripts/bench_engine.py --sizes 2048,4096,8192   # peak memory at three raster sizes
    python scripts/bench_engine.py --sizes 4096x2048,4096x8192   # width x height: same width

The default raster (a Sentinel-2-like 14-band uint16 tiled GeoTIFF with smooth blobs and noise) is
generated once into the cache folder and reused. End-to-end time covers probability, mask and
polygons. The raw figure runs the same model with the same session settings on the same number of
tiles and batch size, from input arrays made in advance: the time the model alone needs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from landslide_mapper.core.contract import read_contract  # noqa: E402
from landslide_mapper.core.mapping.engine import map_landslides  # noqa: E402
from landslide_mapper.core.models.dummy import build_dummy_model  # noqa: E402
from landslide_mapper.core.models.registry import resolve_model  # noqa: E402
from landslide_mapper.core.models.runtime import create_session, run_batch, to_probability  # noqa: E402

N_BANDS = 14
S2_BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12",
            "slope_deg", "dem_m"]
BASE, AMPLITUDE, NOISE = 1000.0, 800.0, 20.0


def cache_dir() -> Path:
    default = Path(tempfile.gettempdir()) / "lm-bench"
    d = Path(os.environ.get("LANDSLIDE_MAPPER_BENCH_CACHE", default))
    d.mkdir(parents=True, exist_ok=True)
    return d


def parse_size(text: str) -> tuple[int, int]:
    """'4096' -> (4096, 4096); '4096x2048' -> (width 4096, height 2048)."""
    w, _, h = text.lower().partition("x")
    return int(w), int(h or w)


def make_scene(size: int | str, folder: Path) -> Path:
    """A width x height, 14-band uint16 tiled GeoTIFF (made once, strip by strip, and cached)."""
    width, height = parse_size(str(size))
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    name = str(width) if width == height else f"{width}x{height}"
    path = folder / f"scene_{name}_{N_BANDS}b.tif"
    if path.exists():
        return path
    tmp = path.with_suffix(".partial.tif")
    profile = dict(driver="GTiff", width=width, height=height, count=N_BANDS, dtype="uint16",
                   crs="EPSG:32645", transform=from_origin(300000, 3100000, 10, 10), tiled=True,
                   blockxsize=512, blockysize=512, compress="deflate", predictor=2, zlevel=1,
                   bigtiff="IF_SAFER", nodata=0)
    rng = np.random.default_rng(0)
    x = np.arange(width, dtype=np.float32)
    print(f"generating {path} ...", file=sys.stderr)
    with rasterio.open(tmp, "w", **profile) as dst:
        for i, name in enumerate(S2_BANDS, start=1):
            dst.set_band_description(i, name)
        for r0 in range(0, height, 512):
            h = min(512, height - r0)
            y = np.arange(r0, r0 + h, dtype=np.float32)[:, None]
            # Blobs of a few hundred pixels: a few hundred landslide-like patches per scene.
            blob = np.sin(x[None] / 83.0) * np.sin(y / 97.0) + 0.3 * np.sin((x[None] + y) / 41.0)
            field = BASE + AMPLITUDE * np.clip(blob, -1, 1)
            block = np.empty((N_BANDS, h, width), np.uint16)
            for b in range(N_BANDS):
                block[b] = np.clip(field + rng.normal(0, NOISE, field.shape), 1, 65535)
            dst.write(block, window=Window(0, r0, width, h))
    tmp.replace(path)
    return path


def default_model(folder: Path) -> Path:
    """A 14-band conv3 dummy model: landslide where the blob field is above its mid level."""
    path = folder / "dummy_conv3_14b.onnx"
    if not path.exists():
        w = np.full(N_BANDS, 1.0 / (N_BANDS * 200.0), np.float32)
        build_dummy_model(path, kind="conv3", bands=S2_BANDS, weights=w,
                          bias=-(BASE + 0.5 * AMPLITUDE) / 200.0, pixel_size_m=10.0,
                          tile_size=512, overlap=64, name="bench-conv3")
    return path


def heavy_model(folder: Path, width: int = 32, layers: int = 3) -> Path:
    """A 14-band network with the cost of a small segmentation model (3x3 convolutions, ReLU).

    Same contract as the conv3 dummy; about 60 kFLOP per pixel, so the model, not the I/O, sets
    the pace, as with a real network.
    """
    import onnx
    from onnx import helper, numpy_helper

    path = folder / f"dummy_heavy_{width}x{layers}_14b.onnx"
    if path.exists():
        return path
    build_dummy_model(path, kind="conv3", bands=S2_BANDS, weights=np.zeros(N_BANDS, np.float32),
                      pixel_size_m=10.0, tile_size=512, overlap=64, name="bench-heavy")
    model = onnx.load(str(path))
    rng = np.random.default_rng(0)
    nodes, inits, prev, c_in = [], [], "input", N_BANDS
    for i in range(layers + 1):
        last = i == layers
        c_out, k = (1, 1) if last else (width, 3)
        w = rng.normal(0, (2.0 / (c_in * k * k)) ** 0.5, (c_out, c_in, k, k)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"),
                  numpy_helper.from_array(np.zeros(c_out, np.float32), f"b{i}")]
        out = "output" if last else f"c{i}"
        nodes.append(helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [out], pads=[k // 2] * 4))
        if not last:
            nodes.append(helper.make_node("Relu", [out], [f"r{i}"]))
            prev = f"r{i}"
        c_in = c_out
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    del model.graph.initializer[:]
    model.graph.initializer.extend(inits)
    onnx.checker.check_model(model)
    onnx.save_model(model, str(path))
    return path


class PeakRSS:
    """Peak resident memory of this process, sampled in a thread (psutil)."""

    def __init__(self, interval: float = 0.02):
        import psutil

        self.proc, self.interval, self.peak = psutil.Process(), interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self) -> "PeakRSS":
        self.baseline = self.proc.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def cpu_seconds() -> float:
    """CPU time of this process so far (all threads): steadier than wall time on a busy machine."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def end_to_end(scene: Path, model: Path, args, out_dir: Path) -> dict:
    with PeakRSS() as rss:
        c0 = cpu_seconds()
        t0 = time.perf_counter()
        result = map_landslides(
            scene, model, probability_path=out_dir / "probability.tif",
            mask_path=out_dir / "mask.tif",
            polygons_path=None if args.no_polygons else out_dir / "landslides.gpkg",
            batch_size=args.batch_size, tile_size=args.tile_size, overlap=args.overlap,
            threads=args.threads)
        seconds = time.perf_counter() - t0
        cpu = cpu_seconds() - c0
    busy = next((m for m in result.messages if "busy" in m), "")
    return dict(seconds=seconds, cpu=cpu, tiles=result.tiles, polygons=result.polygon_count,
                provider=result.provider, peak_rss_mb=rss.peak / 2**20,
                baseline_rss_mb=rss.baseline / 2**20, note=busy)


def raw_model(model: Path, tiles: int, args) -> tuple[float, float, float]:
    """Seconds (wall and CPU) the model alone needs for ``tiles`` tiles in batches of
    ``batch_size``, and the peak RSS while it ran."""
    contract = read_contract(model)
    size = args.tile_size or contract.tile_size
    session = create_session(model, contract, threads=args.threads)
    rng = np.random.default_rng(1)
    full = rng.normal(0, 1, (args.batch_size, contract.band_count, size, size)).astype(np.float32)
    last = tiles % args.batch_size
    part = full[:last] if last else None
    run_batch(session, full[:1])  # warm-up, as the engine's first batch also pays it
    with PeakRSS() as rss:
        c0 = cpu_seconds()
        t0 = time.perf_counter()
        for _ in range(tiles // args.batch_size):
            to_probability(run_batch(session, full), contract.output_kind)
        if part is not None:
            to_probability(run_batch(session, part), contract.output_kind)
        seconds = time.perf_counter() - t0
        cpu = cpu_seconds() - c0
    return seconds, cpu, rss.peak / 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", type=Path, help="raster to map (default: a generated 14-band scene)")
    p.add_argument("--size", default="10980",
                   help="side of the generated scene in pixels, or WIDTHxHEIGHT")
    p.add_argument("--sizes", help="comma-separated sizes (each N or WIDTHxHEIGHT): print peak "
                   "memory at each, one process each")
    p.add_argument("--model", help="bundled model name or .onnx path (default: a 14-band conv3 "
                   "dummy; 'heavy': a 14-band network costing about as much as a small U-Net)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--tile-size", type=int)
    p.add_argument("--overlap", type=int)
    p.add_argument("--threads", type=int)
    p.add_argument("--no-polygons", action="store_true")
    p.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    cache = cache_dir()
    if args.model == "heavy":
        model = heavy_model(cache)
    else:
        model = resolve_model(args.model) if args.model else default_model(cache)

    if args.sizes:
        rows = []
        for size in args.sizes.split(","):
            make_scene(size, cache)
            cmd = [sys.executable, __file__, "--size", str(size), "--json",
                   "--batch-size", str(args.batch_size)]
            for flag in ("model", "tile_size", "overlap", "threads"):
                if getattr(args, flag) is not None:
                    cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
            if args.no_polygons:
                cmd.append("--no-polygons")
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rows.append((size, json.loads(out.strip().splitlines()[-1])))
        print(f"{'size':>11} {'Mpx':>8} {'seconds':>8} {'Mpx/s':>7} {'peak RSS MB':>12}")
        for size, r in rows:
            w, h = parse_size(size)
            mpx = w * h / 1e6
            print(f"{size:>11} {mpx:>8.1f} {r['seconds']:>8.1f} {mpx / r['seconds']:>7.2f} "
                  f"{r['peak_rss_mb']:>12.0f}")
        return

    scene = args.input or make_scene(args.size, cache)
    import rasterio

    with rasterio.open(scene) as ds:
        mpx = ds.width * ds.height / 1e6
        shape = f"{ds.width} x {ds.height} x {ds.count} {ds.dtypes[0]}"
    with tempfile.TemporaryDirectory(dir=cache) as out_dir:
        e2e = end_to_end(scene, model, args, Path(out_dir))
    if args.json:
        print(json.dumps(e2e))
        return
    raw, raw_cpu, raw_peak = raw_model(model, e2e["tiles"], args)
    print(f"raster        {scene} ({shape}, {mpx:.1f} Mpx)")
    print(f"model         {model} on {e2e['provider']}, batch {args.batch_size}, "
          f"{e2e['tiles']} tiles")
    polygons = "" if args.no_polygons else f" + {e2e['polygons']} polygons"
    print(f"end-to-end    {e2e['seconds']:.1f} s = {mpx / e2e['seconds']:.2f} Mpx/s "
          f"(probability + mask{polygons})")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine       {os.cpu_count()} cores, load average {load:.1f} at the end")
    print(f"raw model     {raw:.1f} s = {mpx / raw:.2f} Mpx/s (same tiles, batch size, session)")
    print(f"ratio         end-to-end / raw = {e2e['seconds'] / raw:.2f} "
          f"({100 * (e2e['seconds'] / raw - 1):+.0f} % over the model alone)")
    print(f"CPU time      end-to-end {e2e['cpu']:.1f} s, raw model {raw_cpu:.1f} s (all threads; "
          f"ratio {e2e['cpu'] / raw_cpu:.2f})")
    print(f"peak RSS      {e2e['peak_rss_mb']:.0f} MB end-to-end (process before the run: "
          f"{e2e['baseline_rss_mb']:.0f} MB; the raw model loop alone peaked at {raw_peak:.0f} MB)")
    print(f"pipeline      {e2e['note']}")


if __name__ == "__main__":
    main()
