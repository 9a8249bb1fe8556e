#!/usr/bin/env python
"""Benchmark of the mapping engine: end-to-end speed against the raw model, and peak memory.

    python scripts/bench_engine.py                      # 10980 x 10980, 14-band, dummy conv3 model
    python scripts/bench_engine.py --size 4096 --batch-size 8
    python scripts/bench_engine.py --input scene.tif --model model.onnx
    python scripts/bench_engine.py --sizes 2048,4096,8192   # peak memory at three raster sizes
    python scripts/bench_engine.py --sizes 4096x2048,4096x8192   # width x height: same width
    python scripts/bench_engine.py --model sentinel2-rgb --size 2048 --batch-size 8
                                   # an int8 bundled model against its float source (git history)
    python scripts/bench_engine.py --model aerial-rgb --size 1024 --batch-size 8 --threads 1 \
        --model-only               # the networks alone, one thread, CPU time

The default raster (a Sentinel-2-like 14-band uint16 tiled GeoTIFF with smooth blobs and noise) is
generated once into the cache folder and reused. End-to-end time covers probability, mask and
polygons. The raw figure runs the same model with the same session settings on the same number of
tiles and batch size, from input arrays made in advance: the time the model alone needs.

Each run times the float (fp32) and the int8 version of the model, raw and end to end, on the
same tiles: a float model is quantized once (calibrated on the raster, cached), an int8 one is
compared with its float source (``--float``, or recovered from the git history). It prints the
ratios, peak memory, which operators took the time (onnxruntime profiling) and whether this CPU
has the VNNI instructions int8 convolutions need to pay off.
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


def model_pair(model: Path, scene: Path, args, cache: Path) -> tuple[Path | None, Path | None]:
    """(float, int8) versions of ``model``: the one given, and its counterpart."""
    from scripts.float_model import float_source

    contract = read_contract(model)
    if contract.quantization:
        fp32 = args.float_model or float_source(model, cache / f"{contract.name}-float.onnx")
        if fp32 is None:
            print(f"note          no float model for {model} (give --float): int8 only")
        return fp32, model
    if args.no_int8:
        return model, None
    if args.int8_model:
        return model, args.int8_model
    from landslide_mapper.core.mapping.calibration import quantize_with_rasters
    from landslide_mapper.core.models.quantize import file_sha256

    out = cache / f"{Path(model).stem}-int8-{file_sha256(Path(model))[:12]}.onnx"
    if not out.exists():
        print(f"quantizing    {model} -> {out} (calibrated on 32 tiles of {scene.name})",
              file=sys.stderr)
        quantize_with_rasters(model, out, [scene], tiles=32)
    return model, out


def cpu_int8_support() -> str:
    """What this CPU offers int8 kernels, from /proc/cpuinfo (Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown (no /proc/cpuinfo)"
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines()
                  if ln.startswith("model name")), "?")
    have = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    vnni = {"avx512_vnni", "avx_vnni"} & flags
    return (f"{model}; {', '.join(have) or 'no AVX2'}: int8 dot products "
            + ("in one instruction (VNNI vpdpbusd)" if vnni else
               "in two steps (vpmaddubsw + vpmaddwd, no VNNI: expect little int8 gain)"))


def kernel_profile(model: Path, args, top: int = 4) -> str:
    """The operators that took the time for one batch (onnxruntime profiling), as one line."""
    import collections

    import onnxruntime as ort

    contract = read_contract(model)
    size = args.tile_size or contract.tile_size
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads or 0
    opts.enable_profiling = True
    opts.profile_file_prefix = str(cache_dir() / "ort-profile")
    session = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).normal(
        0, 1, (args.batch_size, contract.band_count, size, size)).astype(np.float32)
    name = session.get_inputs()[0].name
    for _ in range(2):
        session.run(None, {name: x})
    trace = Path(session.end_profiling())
    times: collections.Counter = collections.Counter()
    for event in json.loads(trace.read_text()):
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            times[event["args"]["op_name"]] += event["dur"]
    trace.unlink()
    total = sum(times.values()) or 1
    ops = ", ".join(f"{op} {100 * t / total:.0f} %" for op, t in times.most_common(top))
    return f"{session.get_providers()[0]}: {ops} ({total / 2e3:.0f} ms per batch)"


def fastest_batch(models: dict[str, Path], args, rounds: int = 15) -> dict[str, float]:
    """Milliseconds of the fastest batch of each model, the models taking turns on the same input:
    on a machine shared with other jobs the fastest batch is the one least disturbed. With one
    thread onnxruntime computes in the calling thread, and the figure is that thread's CPU time
    (immune to waiting for a core); else wall time."""
    clock = time.thread_time if args.threads == 1 else time.perf_counter
    sessions, best = {}, {}
    for kind, path in models.items():
        contract = read_contract(path)
        sessions[kind] = (create_session(path, contract, threads=args.threads), contract)
    contract = next(iter(sessions.values()))[1]
    size = args.tile_size or contract.tile_size
    x = np.random.default_rng(1).normal(
        0, 1, (args.batch_size, contract.band_count, size, size)).astype(np.float32)
    for _ in range(rounds):
        for kind, (session, _) in sessions.items():
            t0 = clock()
            run_batch(session, x)
            best[kind] = min(best.get(kind, float("inf")), 1e3 * (clock() - t0))
    return best


def single_run(scene: Path, model: Path, args, cache: Path) -> None:
    """End to end and raw, float and int8, on the same tiles, in one run; then the ratios."""
    import rasterio

    with rasterio.open(scene) as ds:
        mpx = ds.width * ds.height / 1e6
        shape = f"{ds.width} x {ds.height} x {ds.count} {ds.dtypes[0]}"
    if args.json:  # one end-to-end run of the model as given (--sizes runs one per size)
        with tempfile.TemporaryDirectory(dir=cache) as out_dir:
            print(json.dumps(end_to_end(scene, model, args, Path(out_dir))))
        return
    fp32, int8 = model_pair(Path(model), scene, args, cache)
    runs = {k: m for k, m in (("fp32", fp32), ("int8", int8)) if m is not None}
    if args.model_only:
        best = fastest_batch(runs, args, rounds=25)
        what = "thread CPU time" if args.threads == 1 else "wall time"
        print("fastest batch " + ", ".join(f"{k} {ms:.1f} ms" for k, ms in best.items())
              + (f": int8 {best['fp32'] / best['int8']:.2f}x faster" if len(best) == 2 else "")
              + f" (of 25 batches of {args.batch_size} each, taking turns; {what})")
        for kind, path in runs.items():
            print(f"kernels {kind:<6}{kernel_profile(path, args, top=6)}")
        return
    e2e, raw = {}, {}
    for kind, path in runs.items():
        with tempfile.TemporaryDirectory(dir=cache) as out_dir:
            e2e[kind] = end_to_end(scene, path, args, Path(out_dir))
    tiles = next(iter(e2e.values()))["tiles"]
    for kind, path in runs.items():
        raw[kind] = raw_model(path, tiles, args)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    polygons = "" if args.no_polygons else " + polygons"
    print(f"raster        {scene} ({shape}, {mpx:.1f} Mpx)")
    print(f"machine       {os.cpu_count()} cores, load average {load:.1f} at the end; "
          f"CPU: {cpu_int8_support()}")
    print(f"tiles         {tiles}, batch {args.batch_size}, provider "
          f"{next(iter(e2e.values()))['provider']}")
    print(f"{'':14}{'wall s':>8}{'Mpx/s':>8}{'CPU s':>8}{'peak RSS MB':>13}  model")
    for kind, path in runs.items():
        r, (seconds, cpu, peak) = e2e[kind], raw[kind]
        print(f"raw {kind:<10}{seconds:>8.1f}{mpx / seconds:>8.2f}{cpu:>8.1f}{peak:>13.0f}  "
              f"{Path(path).name}")
        print(f"e2e {kind:<10}{r['seconds']:>8.1f}{mpx / r['seconds']:>8.2f}{r['cpu']:>8.1f}"
              f"{r['peak_rss_mb']:>13.0f}  probability + mask{polygons}, "
              f"{r['polygons']} polygons")
    for kind in runs:
        ratio = e2e[kind]["seconds"] / raw[kind][0]
        print(f"ratio         e2e / raw {kind} = {ratio:.2f} ({100 * (ratio - 1):+.0f} % over the "
              f"model alone; CPU time {e2e[kind]['cpu'] / raw[kind][1]:.2f})")
    if len(runs) == 2:
        print(f"int8 speed-up raw {raw['fp32'][0] / raw['int8'][0]:.2f}x (CPU time "
              f"{raw['fp32'][1] / raw['int8'][1]:.2f}x), end to end "
              f"{e2e['fp32']['seconds'] / e2e['int8']['seconds']:.2f}x (CPU time "
              f"{e2e['fp32']['cpu'] / e2e['int8']['cpu']:.2f}x)")
    best = fastest_batch(runs, args)
    print("fastest batch " + ", ".join(f"{k} {ms:.0f} ms" for k, ms in best.items())
          + (f": int8 {best['fp32'] / best['int8']:.2f}x faster (of 15 batches each, taking "
             "turns)" if len(best) == 2 else ""))
    for kind, path in runs.items():
        print(f"kernels {kind:<6}{kernel_profile(path, args)}")
        print(f"pipeline {kind:<5}{e2e[kind]['note']}")
    print(f"peak RSS      before the runs {next(iter(e2e.values()))['baseline_rss_mb']:.0f} MB")


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
    p.add_argument("--float", dest="float_model", type=Path, help="the float model of an int8 "
                   "--model (default: recovered from the git history by its contract's digest)")
    p.add_argument("--int8", dest="int8_model", type=Path, help="the int8 model of a float "
                   "--model (default: quantized once, calibrated on the raster, and cached)")
    p.add_argument("--no-int8", action="store_true", help="float model only")
    p.add_argument("--model-only", action="store_true", help="only the models: fastest batch "
                   "(with --threads 1, in CPU time) and the operators that took the time")
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
    single_run(scene, model, args, cache)

if __name__ == "__main__":
    main()
