#!/usr/bin/env python3
"""Stack single-band rasters on one grid into a multi-band GeoTIFF, each band described.

    scripts/stack_bands.py OUT.tif B04.tif B03.tif B02.tif --names sentinel2:B04,sentinel2:B03,sentinel2:B02

The engine maps model bands to raster bands by description, so a stack made here is matched by
name. Rasters must share CRS, transform and size (this copies, it does not resample). Copied block by
block; written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import rasterio
from rasterio.windows import Window


def stack(out: Path, inputs: list[Path], names: list[str]) -> Path:
    if len(names) != len(inputs):
        raise SystemExit(f"--names: expected {len(inputs)} names (one per input), found {len(names)}")
    sources = [rasterio.open(p) for p in inputs]
    try:
        first = sources[0]
        for path, src in zip(inputs[1:], sources[1:]):
            if (src.crs, src.transform, src.shape) != (first.crs, first.transform, first.shape):
                raise SystemExit(
                    f"{path}: grid differs from {inputs[0]} (CRS {src.crs} vs {first.crs}, "
                    f"transform {tuple(src.transform)[:6]} vs {tuple(first.transform)[:6]}, size "
                    f"{src.shape} vs {first.shape}); resample it onto the same grid first")
        profile = first.profile | dict(driver="GTiff", count=len(inputs), tiled=True, blockxsize=256,
                                       blockysize=256, compress="deflate", interleave="band")
        tmp = out.with_name(f".{out.name}.partial")
        with rasterio.open(tmp, "w", **profile) as dst:
            for row in range(0, first.height, 256):
                window = Window(0, row, first.width, min(256, first.height - row))
                for band, src in enumerate(sources, start=1):
                    dst.write(src.read(1, window=window), band, window=window)
            for band, name in enumerate(names, start=1):
                dst.set_band_description(band, name)
        tmp.replace(out)
        return out
    finally:
        for src in sources:
            src.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("inputs", type=Path, nargs="+")
    parser.add_argument("--names", required=True, help="band descriptions, comma separated")
    args = parser.parse_args(argv)
    out = stack(args.output, args.inputs, [n.strip() for n in args.names.split(",")])
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
