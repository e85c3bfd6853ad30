#!/usr/bin/env bash
# The PyTorch data-loading benchmark (bench/loader.py) on a fresh local
# cluster: shoal-test-cluster (tests/python/cluster_main.cc) starts shoal-meta,
# 3 shoal-storage nodes and the FUSE mount on loopback in a fresh /tmp
# directory and stops everything when this script's end of its stdin closes.
#
#   bench/loader.sh [--files N] [--workers 0,2,4] [--systems LIST] [--json FILE]
#                   [--nfs] [--nfs-work DIR] [--clean]
#
# --nfs (or nfs-open in --systems) adds the nfs-open system: a plain Dataset
# reading the same dataset over NFS (libnfs through ctypes) from a private
# NFS-Ganesha on 127.0.0.1 (bench/nfs-ganesha.sh) that exports a local copy of
# the dataset in --nfs-work (default /var/tmp/shoal-loader-nfs: data-N/ holds
# the copy, kept for the next run unless --clean; state/ ganesha's config and
# logs). The copy is written first, then ganesha starts, in its own memory
# cgroup capped at 256 MiB + 1/16 of the dataset (NFS_MEM_MAX overrides), so
# with the page cache dropped before every epoch it reads the disk, as in
# compare.sh. Ganesha's CPU is the server CPU of the nfs-open cells. Without
# NFS-Ganesha installed (bench/install-bench-deps.sh installs it) nfs-open is
# skipped, saying so. With nfs-open the only system, no Shoal copy is written
# (a 100,000-file dataset is ~29 GB per copy: the two runs can be made apart).
# Ganesha and the cluster are always stopped on exit, also on errors and
# Ctrl-C / SIGTERM.
#
# Needs the build (cmake --build build --target shoal_python shoal-test-cluster)
# and root (FUSE mount, dropping the page cache, ganesha's cgroup). Server CPU
# counts every process of that cluster (meta, storage, FUSE daemon).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${SHOAL_BUILD:-$root/build}

log() { echo "loader.sh: $*" >&2; }
die() { log "$*"; exit 1; }
cell_deadline=${LOADER_DEADLINE:-86400}  # the whole loader.py run (all cells), before it is killed
source "$root/bench/bench-lib.sh"

files=100000  # loader.py's default
systems=shoal-tensor,shoal-native,shoal-sample,fuse-open
nfs=0
nfs_work=/var/tmp/shoal-loader-nfs
clean=0
pass=()
while (($#)); do
  case $1 in
    --files) files=${2:?}; pass+=(--files "$2"); shift 2 ;;
    --systems) systems=${2:?}; shift 2 ;;
    --nfs) nfs=1; shift ;;
    --nfs-work) nfs_work=${2:?}; shift 2 ;;
    --clean) clean=1; shift ;;
    *) pass+=("$1"); shift ;;
  esac
done
[[ $files =~ ^[0-9]+$ ]] && ((files > 0)) || die "--files wants a positive integer"
[[ ,$systems, == *,nfs-open,* ]] && nfs=1
((nfs)) && [[ ,$systems, != *,nfs-open,* ]] && systems+=,nfs-open
if ((nfs)) && ! ganesha_installed; then
  log "NFS-Ganesha is not installed (bench/install-bench-deps.sh installs it): skipping nfs-open"
  nfs=0
  systems=$(echo ",$systems," | sed 's/,nfs-open,/,/g; s/^,//; s/,$//')
  [ -n "$systems" ] || exit 0
fi
data=$nfs_work/data-$files
state=$nfs_work/state

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_bounded_child
  nfs_stop
  if [ -n "$cluster_pid" ]; then
    eval "exec $cluster_in>&-"  # end of its input: the cluster unmounts and stops
    wait "$cluster_pid" 2>/dev/null || true
  fi
  if ((clean && nfs)); then
    log "removing the NFS copy of the dataset ($data)"
    rm -rf "$data"
  fi
  exit "$rc"
}
cluster_pid=
cluster_in=
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# An asynchronous command: Ctrl-C (SIGINT) does not reach it, only the closing
# of its input stops it, so it always unmounts.
coproc CLUSTER { exec "$build/tests/shoal-test-cluster"; }
cluster_pid=$CLUSTER_PID cluster_in=${CLUSTER[1]}
read -r -t 120 line <&"${CLUSTER[0]}" || die "cluster did not start"
case $line in ready*) ;; *) die "$line" ;; esac
eval "$(echo "${line#ready }" | tr ' ' '\n' | sed 's/^/c_/')"
log "cluster in $c_dir"
loader=(env PYTHONPATH="$build/client/python" /usr/bin/python3 "$root/bench/loader.py" --config "$c_config"
        --mount "$c_mount" --server-dir "$c_dir")
if ((nfs)); then
  mkdir -p "$data" "$state"
  # Both copies first: ganesha must not see the files change behind it.
  bounded - "${loader[@]}" --nfs-dir "$data" --make-only --systems "$systems" "${pass[@]}" || die "making the dataset failed"
  data_bytes=$(du -sb "$data" | cut -f1)
  nfs_start "$data" "$state" "$(nfs_mem_for "$data_bytes")"
  log "NFS-Ganesha (pid $ganesha_pid) exports $data ($((data_bytes >> 20)) MiB) at $nfs_url, memory cap $((nfs_mem >> 20)) MiB"
  loader+=(--nfs-dir "$data" --nfs-url "$nfs_url" --nfs-server-pids "$ganesha_pid")
fi
# In the background and waited for, so that a signal interrupts the wait and
# the EXIT trap stops it and everything else.
rc=0
bounded - "${loader[@]}" --systems "$systems" "${pass[@]}" || rc=$?
((!nfs)) || ganesha_alive
exit "$rc"
