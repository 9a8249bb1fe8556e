#!/usr/bin/env bash
# Set up everything the tests need (QGIS, the venv with the training and test extras) and run them.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/unit -x
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
export QT_QPA_PLATFORM=offscreen
exec .venv/bin/python -m pytest "$@"
