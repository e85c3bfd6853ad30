#!/usr/bin/env bash
# Runs integration tests with every mount over FUSE io_uring (shoal-fuse
# --uring on): switches the fuse module's enable_uring on for the run and puts
# the old value back, also when the run fails or is interrupted.
#   tests/integration/over_uring.sh INTEGRATION_TEST_BINARY [gtest args]
# Exit 77 (skipped) on a kernel without FUSE over io_uring.
set -uo pipefail
param=/sys/module/fuse/parameters/enable_uring
[ -w "$param" ] || { echo "over_uring: no writable $param: skipped"; exit 77; }
old=$(cat "$param")
trap 'echo "$old" >"$param"' EXIT
echo Y >"$param"
SHOAL_TEST_FUSE_ARGS="--uring on" "$@"
