#!/usr/bin/env bash
# Builds the unit and concurrency test binaries with sanitizers and runs them.
#   tests/sanitize.sh asan [--build-only|--test-only] [ctest args]
#                      AddressSanitizer + UndefinedBehaviorSanitizer, in build-asan
#   tests/sanitize.sh tsan [--build-only|--test-only] [ctest args]
#                      ThreadSanitizer, in build-tsan
# Only the test binaries are built (target unit_tests), with line tables only:
# ASan+UBSan at -Og (UBSan's checks make -O1 compile twice as long), TSan at -O1
# (it is too slow unoptimised). CI stays short. Any finding fails the
# test that made it; suppressions (tests/*.supp) are for third-party code only.
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:-}"
case "$kind" in
  asan) sanitize=address,undefined dir=build-asan opt=-Og ;;
  tsan) sanitize=thread dir=build-tsan opt=-O1 ;;
  *) echo "usage: $0 asan|tsan [ctest args]" >&2; exit 2 ;;
esac
shift
phase=all
case "${1:-}" in
  --build-only) phase=build; shift ;;
  --test-only) phase=test; shift ;;
esac
export CCACHE_BASEDIR="$PWD"
start=$(date +%s)
if [ "$phase" != test ]; then
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS="$opt -g1" \
    -DSHOAL_SANITIZE="$sanitize" >/dev/null
  cmake --build "$dir" --target unit_tests
fi
built=$(date +%s)
if [ "$phase" = build ]; then
  echo "sanitize $kind: build $((built - start)) s"
  exit 0
fi
export ASAN_OPTIONS="detect_leaks=1:check_initialization_order=1:strict_init_order=1"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp"
status=0
(cd "$dir" && ctest --output-on-failure --timeout 900 -L 'unit|concurrency' "$@") || status=$?
echo "sanitize $kind: build $((built - start)) s, tests $(($(date +%s) - built)) s, status $status"
exit $status
