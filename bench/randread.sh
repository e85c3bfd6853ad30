#!/usr/bin/env bash
# Random reads on Shoal's FUSE mount next to the same reads on the local disk,
# in one run, printed as ratios (the performance issue adds NFS-Ganesha).
#
#   bench/randread.sh [--size-gib N] [--runtime S]
#
# Brings the local cluster up if it is not (deploy/local-cluster.sh), writes a
# dataset file of N GiB (default 4) into the mount and one on the local disk,
# then runs fio (O_DIRECT, libaio) at 4 KiB QD64 and 1 MiB QD16 on both.
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

printf "%-14s %-10s %12s %10s\n" workload target IOPS MB/s
for spec in "4k 64" "1m 16"; do
  set -- $spec
  read -r d_iops d_bw < <(run "$disk_file" "$1" "$2")
  read -r s_iops s_bw < <(run "$shoal_file" "$1" "$2")
  printf "%-14s %-10s %12s %10s\n" "randread $1 QD$2" disk "$d_iops" "$d_bw"
  printf "%-14s %-10s %12s %10s\n" "" shoal-fuse "$s_iops" "$s_bw"
  /usr/bin/python3 -c "print('%-14s %-10s %12.2f %10.2f' % ('', 'ratio', $s_iops / $d_iops, $s_bw / max($d_bw, 1)))"
done
