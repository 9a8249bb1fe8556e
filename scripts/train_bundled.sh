#!/usr/bin/env bash
# Reproduce the bundled models in resources/models/ and their held-out scores.
#
#   scripts/train_bundled.sh [NAME ...]   (default: the three bundled models, in this order:
#                                          sentinel2-rgb-imagenet aerial-rgb-imagenet sentinel2-l4s-imagenet)
#
# The bundled models start from the ImageNet encoder weights in ../shared/pretrained: config
# NAME-imagenet trains, exports, scores and quantizes in runs/NAME-imagenet/bundled/, and its int8
# copy then becomes resources/models/NAME.onnx (the contract renamed NAME). A plain NAME
# (sentinel2-rgb, ...) is the earlier recipe from random weights, written straight to
# resources/models/NAME.onnx.
#
# Reads the public data from $LANDSLIDE_DATA (default ../shared/data). Each model: train, export
# with its contract (onnxruntime vs torch parity checked), then score the ONNX file with
# onnxruntime on every source's held-out split (heldout.json in the run folder), then replace it by
# its int8 copy (see the end of the loop). sentinel2-l4s(-imagenet) starts from the
# sentinel2-rgb(-imagenet) checkpoint, so train that first. On a CPU, set THREADS (default 1) and
# prefix with nice.
set -euo pipefail
cd "$(dirname "$0")/.."
export LANDSLIDE_DATA="${LANDSLIDE_DATA:-$(cd .. && pwd)/shared/data}"
PY=.venv/bin/python
THREADS="${THREADS:-1}"
models=("$@")
[ ${#models[@]} -eq 0 ] && models=(sentinel2-rgb-imagenet aerial-rgb-imagenet sentinel2-l4s-imagenet)

for name in "${models[@]}"; do
  run="runs/$name/bundled"
  base="${name%-imagenet}"   # the bundled model a NAME-imagenet variant is evaluated like
  dest=resources/models
  [ "$base" != "$name" ] && dest="$run"
  $PY -m training.cli fit --config "$name" --run-dir "$run" --threads "$THREADS" --quiet
  $PY -m training.cli export --checkpoint "$run/best.pt" --out "$dest/$name.onnx"
  $PY -m training.cli evaluate --model "$dest/$name.onnx" --config "$name" \
      --threads "$THREADS" --json "$run/heldout.json"
  if [ "$base" = sentinel2-rgb ]; then
    # The same model on raw Sentinel-2 digital numbers (L4S patches x the dataset's vector: no
    # 8-bit rendering, no per-patch stretch), on the L4S HDF5 patches that are not in its
    # training folder (ID_MAP.csv says which are).
    sub="$run/landslide4sense_h5_raw_dn"
    rm -rf "$sub" && mkdir -p "$sub/images" "$sub/masks"
    $PY - "$LANDSLIDE_DATA" "$sub" <<'PYEOF'
import csv, os, sys
data, out = sys.argv[1], sys.argv[2]
rows = csv.DictReader(open(os.path.join(data, "landslide4sense_rgb", "ID_MAP.csv")))
trained = {r["l4s_traindata_image"].split("/")[-1] for r in rows if r["split"] == "train"}
for name in sorted(os.listdir(os.path.join(data, "landslide4sense_h5", "images"))):
    if name in trained:
        continue
    n = name[len("image_"):]
    os.symlink(os.path.join(data, "landslide4sense_h5", "images", name), os.path.join(out, "images", name))
    os.symlink(os.path.join(data, "landslide4sense_h5", "masks", "mask_" + n), os.path.join(out, "masks", "mask_" + n))
PYEOF
    $PY -m training.cli evaluate --model "$dest/$name.onnx" --data "$sub" --format l4s-h5 \
        --channels 3,2,1 --units raw --threads "$THREADS" --json "$run/l4s_h5_raw_dn.json"
    # record that score in the contract too (same checkpoint, exported again)
    $PY -m training.cli export --checkpoint "$run/best.pt" --out "$dest/$name.onnx" \
        --metrics-json "$run/l4s_h5_raw_dn.json"
  fi
  # What ships is the int8 copy (plugin zip <= 25 MB): calibrated on the training split (and, for
  # sentinel2-rgb, on real raw-DN scenes, which span brighter values than its 8-bit renderings),
  # scored against the float model on the held-out split (runs/NAME/bundled/heldout_int8.json).
  # The float export stays in the run folder.
  mv "$dest/$name.onnx" "$run/$name-float.onnx"
  # 7-bit weights (no saturation on x86 CPUs without VNNI) where they keep F1 within 1 point of
  # the float model: all three ImageNet-started models; not the earlier aerial-rgb (model cards).
  extra=()
  [ "$base" = sentinel2-rgb ] && extra=(--calibration "$LANDSLIDE_DATA/sentinel2_chittagong/images")
  [ "$name" != aerial-rgb ] && extra+=(--reduce-range)
  $PY -m training.cli quantize --model "$run/$name-float.onnx" --config "$name" \
      --out "$dest/$name.onnx" "${extra[@]}" --threads "$THREADS" \
      --json "$run/heldout_int8.json"
  if [ "$base" != "$name" ]; then
    # the int8 copy ships under the bundled name (the float export stays in the run folder)
    $PY - "$dest/$name.onnx" "$base" "resources/models/$base.onnx" <<'PYEOF'
import dataclasses, sys
from landslide_mapper.core.contract import read_contract, write_contract
src, name, out = sys.argv[1:4]
write_contract(src, dataclasses.replace(read_contract(src), name=name), out)
print(f"{out}: {name}")
PYEOF
  fi
done
