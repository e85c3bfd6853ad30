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
if [ $# -ne 0 ] || [ "${SHOAL_SANITIZERS:-1}" = 0 ]; then
  (cd build && ctest --output-on-failure --timeout 900 "$@") || status=$?
  exit $status
fi
# The test runs leave most of the CPU idle (fsync and loopback bound), so each
# sanitizer build runs, at a lower priority, beside the tests before it:
#   main tests + ASan build, then ASan tests + TSan build, then TSan tests.
build_in_background() {  # kind; sets bg_pid
  nice -n 10 tests/sanitize.sh "$1" --build-only >"build/sanitize-$1-build.log" 2>&1 &
  bg_pid=$!
}
finish_build() {  # kind pid
  local rc=0
  wait "$2" || rc=$?
  if [ $rc -ne 0 ]; then cat "build/sanitize-$1-build.log"; else tail -n 1 "build/sanitize-$1-build.log"; fi
  return $rc
}
build_in_background asan
asan_build=$bg_pid
(cd build && ctest --output-on-failure --timeout 900) || status=$?
asan_built=1
finish_build asan "$asan_build" || { status=1; asan_built=0; }
build_in_background tsan
tsan_build=$bg_pid
if [ $asan_built = 1 ]; then tests/sanitize.sh asan --test-only || status=1; fi
if finish_build tsan "$tsan_build"; then
  tests/sanitize.sh tsan --test-only || status=1
else
  status=1
fi
exit $status
