#!/usr/bin/env bash
# Random reads on Shoal's FUSE mount and through libshoal's batch API, next to
# the same reads on the local disk, in one run, printed as ratios (the
# performance issue adds NFS-Ganesha).
#
#   bench/randread.sh [--size-gib N] [--runtime S]
#
# Brings the local cluster up if it is not (deploy/local-cluster.sh), writes a
# dataset file of N GiB (default 4) into the mount and one on the local disk,
# then runs fio (O_DIRECT, libaio) at 4 KiB QD64 and 1 MiB QD16 on both, and
# `shoal-bench native` (libshoal's BatchReader) with the same reads in flight.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
size_gib=4
runtime=10
while (($#)); do
  case $1 in
    --size-gib) size_gib=$2; shift 2 ;;
    --runtime) runtime=$2; shift 2 ;;
    *) echo "usage: $0 [--size-gib N] [--runtime S]" >&2; exit 2 ;;
  esac
done
home=${SHOAL_HOME:-/var/tmp/shoal-local}
mnt=$("$root/deploy/local-cluster.sh" up | tail -1)
disk_file=$home/bench-disk.dat
shoal_file=$mnt/bench.dat

make_file() {  # path
  local want=$((size_gib << 30))
  if [ -f "$1" ] && [ "$(stat -c %s "$1")" = "$want" ]; then return; fi
  fio --name=fill --filename="$1" --rw=write --bs=1m --size="$want" --direct=1 --ioengine=libaio \
      --iodepth=8 --output=/dev/null
}
make_file "$disk_file"
make_file "$shoal_file"

# Prints IOPS and MB/s of one fio run.
run() {  # file bs depth
  fio --name=rr --filename="$1" --rw=randread --bs="$2" --iodepth="$3" --direct=1 --ioengine=libaio \
      --runtime="$runtime" --time_based --numjobs=1 --group_reporting --output-format=json \
    | /usr/bin/python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]["read"]; print("%.0f %.0f" % (j["iops"], j["bw_bytes"]/1e6))'
}

bench_bin=${SHOAL_BUILD:-$root/build}/bench/shoal-bench
bench_json=$(mktemp)
trap 'rm -f "$bench_json"' EXIT
# Prints IOPS and MB/s of one shoal-bench native run.
native() {  # bs depth
  "$bench_bin" native --config "$home/conf/client.toml" --path /bench.dat --bs "$1" --qd "$2" \
      --seconds "$runtime" --json "$bench_json" >/dev/null
  /usr/bin/python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print("%.0f %.0f" % (j["iops"], j["mbps"]))' "$bench_json"
}
ratio() { /usr/bin/python3 -c "print('%-14s %-14s %12.2f %10.2f' % ('', '$1', $2 / $3, $4 / max($5, 1)))"; }

printf "%-14s %-14s %12s %10s\n" workload target IOPS MB/s
for spec in "4k 4096 64" "1m 1048576 16"; do
  set -- $spec
  read -r d_iops d_bw < <(run "$disk_file" "$1" "$3")
  read -r s_iops s_bw < <(run "$shoal_file" "$1" "$3")
  read -r b_iops b_bw < <(native "$2" "$3")
  printf "%-14s %-14s %12s %10s\n" "randread $1 QD$3" disk "$d_iops" "$d_bw"
  printf "%-14s %-14s %12s %10s\n" "" shoal-fuse "$s_iops" "$s_bw"
  printf "%-14s %-14s %12s %10s\n" "" libshoal-batch "$b_iops" "$b_bw"
  ratio "fuse/disk" "$s_iops" "$d_iops" "$s_bw" "$d_bw"
  ratio "batch/disk" "$b_iops" "$d_iops" "$b_bw" "$d_bw"
done
