#!/usr/bin/env bash
# Old against new binaries on one running local cluster, back to back: for each
# round, for each variant directory, restart the cluster's storage servers and
# FUSE daemon from that directory (meta keeps running), then run the 4 KiB
# random-read cells with that directory's shoal-bench. On a noisy machine the
# rounds alternate, so quote medians over them (bench/swap-ab-summary.py).
#
#   bench/swap-ab.sh ROUNDS DIR...
#
# Each DIR holds shoal-storage, shoal-fuse, shoal-bench and shoal (any of them
# may be a wrapper script that execs the real one with other flags).
# Environment: SHOAL_HOME (the cluster of deploy/local-cluster.sh up, default
# /var/tmp/shoal-local; it must hold /bench.dat, made with
# `shoal-bench make native --path /bench.dat --size 1g`), DISK_FILE (a file on
# the local disk for the disk cells, made with `shoal-bench make posix`),
# CELLS (default "disk64 native64 fuse64 disk1 native1 fuse1"), SECS (per
# cell, default 5), OUT (results are appended there, default
# /tmp/swap-ab.out). One line per cell: variant cell iops p50_us p99_us
# cpu_s_per_gb errors.
set -uo pipefail
home=${SHOAL_HOME:-/var/tmp/shoal-local}
mnt=$home/mnt
secs=${SECS:-5}
cells=${CELLS:-"disk64 native64 fuse64 disk1 native1 fuse1"}
disk_file=${DISK_FILE:-/var/tmp/bench-disk/bench.dat}
out=${OUT:-/tmp/swap-ab.out}
(($# >= 2)) || { echo "usage: $0 ROUNDS DIR..." >&2; exit 2; }
rounds=$1; shift

pid_of() { cat "$home/run/$1.pid" 2>/dev/null; }
stop_one() {
  local p; p=$(pid_of "$1")
  [ -n "$p" ] || return 0
  kill -TERM "$p" 2>/dev/null
  for _ in $(seq 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && kill -KILL "$p"
  rm -f "$home/run/$1.pid"
}
start_one() {  # name command...
  local name=$1; shift
  setsid "$@" >>"$home/log/$name.log" 2>&1 </dev/null &
  echo $! >"$home/run/$name.pid"
}
mounted() { grep -q " $mnt fuse.shoal " /proc/mounts; }
online() { [ "$("$1/shoal" --config "$home/conf/client.toml" status 2>/dev/null | grep -c ' online ')" -ge 3 ]; }
swap() {
  local d=$1
  mounted && fusermount3 -u "$mnt"
  stop_one fuse
  for i in 1 2 3; do stop_one "storage$i"; done
  for i in 1 2 3; do start_one "storage$i" "$d/shoal-storage" --config "$home/conf/storage$i.toml"; done
  for _ in $(seq 300); do online "$d" && break; sleep 0.1; done
  start_one fuse "$d/shoal-fuse" --config "$home/conf/fuse.toml"
  for _ in $(seq 300); do mounted && break; sleep 0.1; done
  stat "$mnt/." >/dev/null || { echo "swap-ab: the mount does not answer" >&2; exit 1; }
}
cell() {  # variant dir cell
  local v=$1 d=$2 c=$3 j
  j=$(mktemp)
  local servers="$(pid_of meta),$(pid_of storage1),$(pid_of storage2),$(pid_of storage3)"
  local qd=${c//[a-z]/} args
  case $c in
    disk*) args=(posix --path "$disk_file") ;;
    native*) args=(native --config "$home/conf/client.toml" --path /bench.dat --server-pids "$servers") ;;
    fuse*) args=(posix --path "$mnt/bench.dat" --server-pids "$servers,$(pid_of fuse)") ;;
    *) echo "swap-ab: unknown cell $c" >&2; exit 2 ;;
  esac
  timeout $((secs * 4 + 30)) "$d/shoal-bench" "${args[@]}" --bs 4k --qd "$qd" --seconds "$secs" --json "$j" >/dev/null
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[2], sys.argv[3], d['iops'], d['p50_us'], d['p99_us'], d['cpu_s_per_gb'], d['errors'])" \
    "$j" "$v" "$c" | tee -a "$out"
  rm -f "$j"
}
for _ in $(seq "$rounds"); do
  for d in "$@"; do
    swap "$d"
    for c in $cells; do cell "$(basename "$d")" "$d" "$c"; done
  done
done
