#!/usr/bin/env bash
# Set up Landslide Mapper and map landslides on a raster with a bundled model.
#
#   scripts/demo.sh                      the 2018 Hokkaido Eastern Iburi earthquake scene (Sentinel-2
#                                        post-event B4/B3/B2, from ../shared/data/sentinel2_iburi2018)
#   scripts/demo.sh SCENE.tif [MODEL]    your own raster, with a bundled model's name or an .onnx file
#
# Outputs land in out/: probability and mask GeoTIFFs, landslide polygons (GeoPackage) and the
# inventory report (HTML).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
mkdir -p out
model="${2:-sentinel2-rgb}"
dem=()
if [ $# -ge 1 ]; then
  scene="$1"
else
  data="${LANDSLIDE_DATA:-../shared/data}/sentinel2_iburi2018/post-event"
  if [ ! -d "$data" ]; then
    echo "demo.sh: no raster given and the demo scene $data is absent; run: scripts/demo.sh SCENE.tif [MODEL]" >&2
    exit 2
  fi
  scene=out/iburi2018_post_rgb.tif
  .venv/bin/landslide-mapper prepare "$data/download.B4.tif" "$data/download.B3.tif" \
    "$data/download.B2.tif" "$scene" --model "$model" --quiet >/dev/null
  # the scene's DSM: each polygon gets its slope and elevation (slope_mean, elev_min, ...)
  dsm="$data/../dem/download.DSM.tif"
  [ -f "$dsm" ] && dem=(--dem "$dsm")
fi
name="$(basename "${scene%.*}")"
.venv/bin/landslide-mapper map "$scene" --model "$model" \
  --probability "out/${name}_probability.tif" --mask "out/${name}_mask.tif" \
  --polygons "out/${name}_landslides.gpkg" --min-area 500 --report "out/${name}_report.html" \
  ${dem[@]+"${dem[@]}"}
