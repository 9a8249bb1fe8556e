#!/usr/bin/env bash
# Install the Landslide Mapper plugin zip into a QGIS 3 profile and enable it.
#
#   scripts/install_plugin.sh                      build dist/landslide_mapper-VERSION.zip, install
#                                                  into the "default" profile, enable it
#   scripts/install_plugin.sh --profile NAME       another QGIS profile
#   scripts/install_plugin.sh --zip PATH           install this zip instead of building one
#   scripts/install_plugin.sh --profiles-dir DIR   profiles folder (default:
#                                                  ~/.local/share/QGIS/QGIS3/profiles)
#
# Replaces an installed copy. The plugin's Python packages (rasterio, onnxruntime, fiona,
# shapely, pyproj) come from the plugin's own installer (Plugins > Landslide Mapper > Install
# Python packages, or qgis_process run landslide_mapper:install_dependencies), or from .venv when
# QGIS is started with scripts/qgis.sh.
# Quit QGIS before installing; it rewrites QGIS3.ini on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

profile="default"
zip=""
profiles_dir="${QGIS_PROFILES_DIR:-$HOME/.local/share/QGIS/QGIS3/profiles}"
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="${2:?--profile needs a profile name}"; shift 2 ;;
    --zip) zip="${2:?--zip needs a path}"; shift 2 ;;
    --profiles-dir) profiles_dir="${2:?--profiles-dir needs a folder}"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "install_plugin.sh: unknown option '$1' (expected --profile, --zip or --profiles-dir)" >&2; exit 2 ;;
  esac
done

python="python3"
[ -x .venv/bin/python ] && python=".venv/bin/python"

if [ -z "$zip" ]; then
  zip="$("$python" scripts/build_plugin_zip.py | sed -E 's/ \(.*$//')"
fi
if [ ! -f "$zip" ]; then
  echo "install_plugin.sh: zip '$zip' not found (build it with scripts/build_plugin_zip.py)" >&2
  exit 1
fi

profile_dir="$profiles_dir/$profile"
plugins_dir="$profile_dir/python/plugins"
mkdir -p "$plugins_dir"
rm -rf "$plugins_dir/landslide_mapper"
"$python" - "$zip" "$plugins_dir" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as zf:
    names = zf.namelist()
    bad = [n for n in names if not n.startswith("landslide_mapper/") or ".." in n.split("/")]
    if bad:
        sys.exit(f"install_plugin.sh: {sys.argv[1]} is not a Landslide Mapper plugin zip "
                 f"(unexpected entries: {', '.join(bad[:3])})")
    zf.extractall(sys.argv[2])
EOF

# Enable the plugin: set landslide_mapper=true in the [PythonPlugins] section of QGIS3.ini,
# editing only that line so the rest of QGIS's settings file stays as QGIS wrote it.
ini="$profile_dir/QGIS/QGIS3.ini"
mkdir -p "$(dirname "$ini")"
touch "$ini"
"$python" - "$ini" <<'EOF'
import sys
path = sys.argv[1]
lines = open(path, encoding="utf-8").read().splitlines()
out, in_section, done = [], False, False
for line in lines:
    stripped = line.strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        if in_section and not done:
            out.append("landslide_mapper=true")
            done = True
        in_section = stripped == "[PythonPlugins]"
    elif in_section and stripped.split("=", 1)[0].strip() == "landslide_mapper":
        if not done:
            out.append("landslide_mapper=true")
            done = True
        continue
    out.append(line)
if not done:
    if not in_section:
        if out and out[-1].strip():
            out.append("")
        out.append("[PythonPlugins]")
    out.append("landslide_mapper=true")
open(path, "w", encoding="utf-8").write("\n".join(out) + "\n")
EOF

echo "Installed $(basename "$zip") into $plugins_dir/landslide_mapper and enabled it in $ini"
