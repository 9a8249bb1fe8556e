#!/usr/bin/env bash
# Start QGIS desktop (or, with --process, qgis_process) with the engine's Python packages from the
# project's .venv visible to the Landslide Mapper plugin.
#
#   scripts/qgis.sh [QGIS ARGS...]
#   scripts/qgis.sh --process run landslide_mapper:map_landslides -- INPUT=... OUTPUT_POLYGONS=...
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
if [ ! -x "$here/.venv/bin/python" ]; then
  echo "qgis.sh: $here/.venv is missing; run scripts/setup.sh first" >&2
  exit 1
fi
site="$("$here/.venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")"
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
if [ "${1:-}" = "--process" ]; then
  shift
  # Debian's qgis_process wrapper adds --noversioncheck, which QGIS 3.22 rejects: call the binary.
  bin="$(command -v qgis_process.bin || echo /usr/lib/qgis/qgis_process.bin)"
  [ -x "$bin" ] || bin="$(command -v qgis_process)"
  export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
  exec "$bin" "$@"
fi
exec qgis "$@"
