#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test. The README's test command.
#   tests/run.sh              everything; then the unit and concurrency tests again under
#                             ASan+UBSan and under TSan (tests/sanitize.sh; SHOAL_SANITIZERS=0 skips)
#   tests/run.sh -L unit      only one ctest label (unit, integration, fuse, slow), no sanitizers
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
export CCACHE_BASEDIR="$PWD"
# Line tables only (-g1): full debug info costs a third of the compile time,
# and backtraces need no more.
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" >/dev/null
cmake --build build
status=0
(cd build && ctest --output-on-failure --timeout 900 "$@") || status=$?
if [ $# -eq 0 ] && [ "${SHOAL_SANITIZERS:-1}" != 0 ]; then
  # One after the other: each build uses both cores.
  tests/sanitize.sh asan || status=1
  tests/sanitize.sh tsan || status=1
fi
exit $status
