#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test. The README's test command.
#   tests/run.sh              everything
#   tests/run.sh -L unit      only one ctest label (unit, integration, fuse, slow)
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build
cd build
ctest --output-on-failure --timeout 900 "$@"
