#!/usr/bin/env bash
# The PyTorch data-loading benchmark (bench/loader.py) on a fresh local
# cluster: shoal-test-cluster (tests/python/cluster_main.cc) starts shoal-meta,
# 3 shoal-storage nodes and the FUSE mount on loopback in a fresh /tmp
# directory and stops everything when this script's end of its stdin closes.
#
#   bench/loader.sh [--files N] [--workers 0,2,4] [--json FILE]
#
# Needs the build (cmake --build build --target shoal_python shoal-test-cluster)
# and root (FUSE mount, dropping the page cache). Server CPU counts every
# process of that cluster (meta, storage, FUSE daemon).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${SHOAL_BUILD:-$root/build}
coproc CLUSTER { exec "$build/tests/shoal-test-cluster"; }
trap 'exec {CLUSTER[1]}>&-; wait "$CLUSTER_PID" 2>/dev/null || true' EXIT
read -r -t 120 line <&"${CLUSTER[0]}" || { echo "loader.sh: cluster did not start" >&2; exit 1; }
case $line in ready*) ;; *) echo "loader.sh: $line" >&2; exit 1 ;; esac
eval "$(echo "${line#ready }" | tr ' ' '\n' | sed 's/^/c_/')"
echo "loader.sh: cluster in $c_dir" >&2
PYTHONPATH=$build/client/python /usr/bin/python3 "$root/bench/loader.py" --config "$c_config" --mount "$c_mount" \
  --server-dir "$c_dir" "$@"
