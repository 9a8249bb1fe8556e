#!/usr/bin/env bash
# Set up Landslide Mapper on a Debian/Ubuntu machine. Idempotent: run it again at any time.
#
#   scripts/setup.sh             QGIS (system packages) + .venv with the engine and the CLI
#   scripts/setup.sh --tests     ... plus the training module and the test tools
#   scripts/setup.sh --training  ... plus the training module (PyTorch, segmentation-models-pytorch)
#
# QGIS comes from the system packages and its Python bindings belong to the system Python, so the
# venv is made from /usr/bin/python3 with --system-site-packages (``import qgis`` works inside it).
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
for arg in "$@"; do
  case "$arg" in
    --tests) extras="training,tests" ;;
    --training) [ -z "$extras" ] && extras="training" ;;
    *) echo "setup.sh: unknown option '$arg' (expected --tests or --training)" >&2; exit 2 ;;
  esac
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

need=()
[ -x /usr/bin/python3 ] || need+=(python3)
/usr/bin/python3 -c "import qgis.core" >/dev/null 2>&1 || need+=(qgis python3-qgis qgis-providers)
command -v qgis_process >/dev/null 2>&1 || need+=(qgis)
/usr/bin/python3 -c "import ensurepip, venv" >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  echo "Installing system packages: ${need[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
    "${need[@]}" python3-venv
fi

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import qgis.core" >/dev/null 2>&1; then
  rm -rf .venv
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
.venv/bin/python -m pip install -q --upgrade "pip>=23" >/dev/null
spec="."
[ -n "$extras" ] && spec=".[$extras]"
log="$(mktemp)"
if ! .venv/bin/python -m pip install -q -c constraints.txt -e "$spec" >"$log" 2>&1; then
  cat "$log" >&2; rm -f "$log"
  echo "setup.sh: installing the Python packages failed (see above)" >&2
  exit 1
fi
rm -f "$log"
.venv/bin/python -c "import qgis.core, rasterio, onnxruntime; print('Landslide Mapper set up:', 'QGIS', qgis.core.Qgis.QGIS_VERSION, '| rasterio', rasterio.__version__, '| onnxruntime', onnxruntime.__version__)"
