#!/usr/bin/env bash
# Shoal next to the local disk and NFS-Ganesha, measured in one run on one
# machine, printed as one markdown table (plus a PNG chart and optional JSON).
#
#   bench/compare.sh [--quick] [--size-gib N] [--seconds S] [--files N]
#                    [--json FILE] [--png FILE] [--bench PATH] [--work DIR] [--clean]
#                    [--meta-files N] [--meta-tree DxF] [--meta-json FILE] [--meta-only | --no-meta]
#                    [--loader-files N]
#
# Systems (columns):
#   disk          fio, io_uring, O_DIRECT on a file in --work (default /var/tmp/shoal-compare)
#   shoal-native  shoal-bench native: libshoal's batch API against the local cluster
#   shoal-fuse    fio, io_uring, O_DIRECT on the same-size file in the Shoal FUSE mount
#   nfs           shoal-bench nfs (libnfs) against NFS-Ganesha (bench/nfs-ganesha.sh)
#                 exporting the disk file's directory; page cache dropped before the
#                 cell and ganesha capped by a memory cgroup, so it reads the disk
#   nfs-warm      the same after the whole file was read once (served from page cache)
# Workloads (rows): random reads over one large file at 4 KiB, 128 KiB, 1 MiB x
# QD1, QD64 (one thread); then a small-file dataset (--files files of
# 64-512 KiB) read whole in shuffled order at QD64, one pass (each file once) (disk and shoal-fuse use
# shoal-bench posix there, since fio cannot shuffle whole files).
#
# CPU: "CPU s/GB" is the CPU time of the whole system that served the reads
# (client + servers) per GB read. Client: the reader (fio's rusage, or
# shoal-bench's own). Servers: utime+stime from /proc of shoal-meta, the
# shoal-storage processes and the shoal-fuse daemon (the FUSE daemon is
# Shoal's side of the mount, so it counts as server), or of ganesha. Kernel
# time spent outside those processes (interrupts, kworkers) is not counted.
#
# The page cache is dropped before every cold cell (needs root); the cluster
# is brought up with deploy/local-cluster.sh (SHOAL_HOME, default
# /var/tmp/shoal-local) and brought down again only if this script started
# it. Ganesha, its cgroup and running readers are always stopped on exit,
# also on Ctrl-C / SIGTERM. Dataset files are kept for the next run unless
# --clean is given.
#
# Metadata (bench/meta-bench, mdtest-style): create, stat, open-read-close,
# readdir-plus (ls -l), remove of --meta-files files per process (default
# 5000; --quick 1000) and the small-file tree (--meta-tree DxF: D directories
# of F files of 4 KiB, default 100x1000; --quick 10x100; 0 for none) written,
# listed (ls -lR) and removed, with 1 and 2 processes, on the Shoal mount and
# on a directory of the local disk (--work). Printed as a second table;
# --meta-json FILE keeps meta-bench's objects (an array of
# {"system","procs",...meta-bench's --json}). --meta-only skips the read
# workloads (and NFS), --no-meta skips these.
# --loader-files N (default 0: off) then also runs the PyTorch data-loading benchmark
# (bench/loader.sh: ShoalDataset vs open() on the mount, samples/s and CPU per epoch) on a
# dataset of N files, on its own fresh cluster.
#
# --json FILE writes one JSON array, one object per cell:
#   {"system","workload":"file"|"dataset","bs","qd","iops","mbps","p50_us","p99_us",
#    "client_cpu_s","server_cpu_s","cpu_s_per_gb","ops","bytes","seconds","errors"}
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

size_gib=4
seconds=10
files=10000
quick=0
json_out=
png_out=
bench_bin=${SHOAL_BENCH:-}
work=/var/tmp/shoal-compare
clean=0
meta_files=5000
meta_tree=100x1000
meta_json=
meta_mode=both  # both, only, none
meta_bin=${SHOAL_META_BENCH:-}
loader_files=0
usage() {
  sed -n '5,7p' "$0" | sed 's/^# *//' >&2
  exit 2
}
while (($#)); do
  case $1 in
    --quick) quick=1; shift ;;
    --size-gib) size_gib=${2:?}; shift 2 ;;
    --seconds) seconds=${2:?}; shift 2 ;;
    --files) files=${2:?}; shift 2 ;;
    --json) json_out=${2:?}; shift 2 ;;
    --png) png_out=${2:?}; shift 2 ;;
    --bench) bench_bin=${2:?}; shift 2 ;;
    --work) work=${2:?}; shift 2 ;;
    --clean) clean=1; shift ;;
    --meta-files) meta_files=${2:?}; shift 2 ;;
    --meta-tree) meta_tree=${2:?}; shift 2 ;;
    --meta-json) meta_json=${2:?}; shift 2 ;;
    --meta-only) meta_mode=only; shift ;;
    --no-meta) meta_mode=none; shift ;;
    --loader-files) loader_files=${2:?}; shift 2 ;;
    -h|--help) usage ;;
    *) echo "compare: unknown argument $1" >&2; usage ;;
  esac
done
[[ $size_gib =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "compare: --size-gib wants a number" >&2; exit 2; }
[[ $seconds =~ ^[0-9]+$ ]] && ((seconds > 0)) || { echo "compare: --seconds wants a positive integer" >&2; exit 2; }
[[ $files =~ ^[0-9]+$ ]] && ((files > 0)) || { echo "compare: --files wants a positive integer" >&2; exit 2; }
if ((quick)); then
  # Explicit flags given before or after --quick win only if they differ from the defaults.
  [ "$size_gib" = 4 ] && size_gib=1
  [ "$seconds" = 10 ] && seconds=3
  [ "$files" = 10000 ] && files=1000
  [ "$meta_files" = 5000 ] && meta_files=1000
  [ "$meta_tree" = 100x1000 ] && meta_tree=10x100
fi
[[ $meta_files =~ ^[0-9]+$ ]] && ((meta_files > 0)) || { echo "compare: --meta-files wants a positive integer" >&2; exit 2; }
[[ $meta_tree =~ ^[0-9]+x[0-9]+$ || $meta_tree = 0 ]] || { echo "compare: --meta-tree wants DxF (e.g. 100x1000) or 0" >&2; exit 2; }
size_bytes=$(/usr/bin/python3 -c "print(int(float('$size_gib') * (1 << 30)) // (1 << 20) << 20)")
((size_bytes >= 64 << 20)) || { echo "compare: --size-gib too small (at least 64 MiB)" >&2; exit 2; }

export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2}
home=${SHOAL_HOME:-/var/tmp/shoal-local}
build=${SHOAL_BUILD:-$root/build}
bench_bin=${bench_bin:-$build/bench/shoal-bench}
meta_bin=${meta_bin:-$build/bench/meta-bench}
data=$work/data            # exported by ganesha; holds the disk file and the disk/NFS dataset
state=$work/state          # ganesha config, logs, recovery; our own logs
cells=$work/cells.jsonl
disk_file=$data/bench.dat
min_file=$((64 << 10))
max_file=$((512 << 10))
cell_deadline=$((seconds * 4 + 120))  # any one reader gets this long before it is killed
clk_tck=$(getconf CLK_TCK)

log() { echo "compare: $*" >&2; }
die() { log "$*"; exit 1; }
# bounded, stop_bounded_child, drop_caches, cpu_ticks, nfs_mem_for, nfs_start,
# nfs_stop, ganesha_alive (shared with loader.sh)
source "$root/bench/bench-lib.sh"
# Ganesha's memory cap (nfs_mem_for): its working memory plus page cache of a
# sixteenth of the file.
nfs_mem=$(nfs_mem_for "$size_bytes")

started_cluster=0
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_bounded_child
  nfs_stop
  if ((clean)); then
    log "removing dataset files"
    rm -rf "$data"
    [ -n "${mnt:-}" ] && [ -d "$mnt" ] && rm -rf "$mnt/bench.dat" "$mnt/files" 2>/dev/null || true
  fi
  ((started_cluster)) && "$root/deploy/local-cluster.sh" down >&2 || true
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

bs_bytes() {  # 4k / 128k / 1m -> bytes
  case $1 in
    *k) echo $((${1%k} << 10)) ;;
    *m) echo $((${1%m} << 20)) ;;
    *) echo "$1" ;;
  esac
}

pid_of() { cat "$home/run/$1.pid" 2>/dev/null || true; }

# ---------------------------------------------------------------------------
# Setup: tools, cluster, files.
"$root/bench/install-bench-deps.sh"
mkdir -p "$data" "$state"
: >"$cells"
avail=$(df -B1 --output=avail "$work" | tail -1)
# Disk side: the big file + the dataset; Shoal's targets live under $home, usually the same disk.
need=$(( (size_bytes + files * (max_file + min_file) / 2) * 2 ))
[ "$meta_mode" != only ] || need=$((1 << 30))  # the metadata tree only: small
((avail > need)) || die "not enough space in $work: need ~$((need >> 20)) MiB, have $((avail >> 20)) MiB"

cluster_running() {
  local p
  p=$(pid_of meta)
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null && grep -q " ${SHOAL_MOUNT:-$home/mnt} fuse.shoal " /proc/mounts
}
if cluster_running; then
  log "local cluster already running; leaving it up afterwards"
  mnt=$("$root/deploy/local-cluster.sh" up | tail -n 1)
else
  started_cluster=1
  log "starting the local cluster (deploy/local-cluster.sh up; builds first)"
  mnt=$("$root/deploy/local-cluster.sh" up | tail -n 1)
fi
[ -d "$mnt" ] || die "local-cluster.sh did not print a mount point (got '$mnt')"
conf=$home/conf/client.toml
[ "$meta_mode" = only ] || [ -x "$bench_bin" ] || die "shoal-bench not found at $bench_bin (build it: cmake --build $build --target shoal-bench, or pass --bench)"
server_pids=()
for n in meta storage1 storage2 storage3 fuse; do
  p=$(pid_of "$n"); [ -n "$p" ] && server_pids+=("$p")
done
((${#server_pids[@]} >= 3)) || die "cannot find the cluster's pids in $home/run"
server_csv=$(IFS=,; echo "${server_pids[*]}")

have_size() { [ -f "$1" ] && [ "$(stat -c %s "$1")" = "$size_bytes" ]; }

if [ "$meta_mode" != only ]; then

if ! have_size "$disk_file"; then
  log "writing $((size_bytes >> 20)) MiB to $disk_file"
  rm -f "$disk_file"
  fio --name=fill --filename="$disk_file" --rw=write --bs=1m --size="$size_bytes" --direct=1 \
      --ioengine=io_uring --iodepth=8 --output=/dev/null
fi
if ! have_size "$mnt/bench.dat"; then
  log "writing $((size_bytes >> 20)) MiB to Shoal (/bench.dat)"
  rm -f "$mnt/bench.dat"
  fio --name=fill --filename="$mnt/bench.dat" --rw=write --bs=1m --size="$size_bytes" --direct=1 \
      --ioengine=io_uring --iodepth=8 --output=/dev/null || die "writing $mnt/bench.dat failed"
fi
count_files() { find "$1" -maxdepth 1 -type f 2>/dev/null | wc -l; }
if [ "$(count_files "$data/files")" != "$files" ]; then
  log "making $files files of $min_file-$max_file bytes in $data/files"
  rm -rf "$data/files"
  "$bench_bin" make posix --path "$data/files" --files "$files" --min-size "$min_file" --max-size "$max_file" >&2 ||
    die "shoal-bench make posix failed"
fi
if [ "$(count_files "$mnt/files")" != "$files" ]; then
  log "making $files files of $min_file-$max_file bytes in Shoal (/files)"
  rm -rf "$mnt/files"
  "$bench_bin" make posix --path "$mnt/files" --files "$files" --min-size "$min_file" --max-size "$max_file" >&2 ||
    die "shoal-bench make posix (dataset in the mount) failed"
fi

nfs_start "$data" "$state" "$nfs_mem"
fi  # meta_mode != only

# ---------------------------------------------------------------------------
# Measuring. Each cell appends one JSON object to $cells.

# Appends a cell from a shoal-bench JSON result, with our own server CPU figure
# (workload, bs and qd are what we asked for).
record_bench() {  # system json_file server_ticks workload bs_bytes qd
  /usr/bin/python3 - "$@" "$clk_tck" >>"$cells" <<'EOF'
import json, sys
system, path, ticks, workload, bs, qd, tck = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
r = json.load(open(path))
# shoal-bench measures the servers over its timed phase when given their pids;
# our /proc figure (the whole run, setup included) is the fallback.
server = float(r["server_cpu_s"]) if ticks > 0 and "server_cpu_s" in r else ticks / tck
client = float(r.get("client_cpu_s", 0.0))
gb = r["bytes"] / 1e9
print(json.dumps({
    "system": system, "workload": workload, "bs": bs, "qd": qd,
    "iops": r["iops"], "mbps": r["mbps"], "p50_us": r.get("p50_us"), "p99_us": r.get("p99_us"),
    "client_cpu_s": round(client, 3), "server_cpu_s": round(server, 3),
    "cpu_s_per_gb": round((client + server) / gb, 3) if gb > 0 else None,
    "ops": r["ops"], "bytes": r["bytes"], "seconds": r["seconds"],
    "errors": r.get("errors", 0) + r.get("verify_failures", 0)}))
EOF
}

# Appends a cell from fio's JSON output.
record_fio() {  # system json_file server_ticks bs qd
  /usr/bin/python3 - "$@" "$clk_tck" >>"$cells" <<'EOF'
import json, sys
system, path, ticks, bs, qd, tck = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
text = open(path).read()
j = json.loads(text[text.index("{"):])  # fio may print notes before the JSON
job = j["jobs"][0]
rd = job["read"]
secs = job["job_runtime"] / 1000.0
client = (job["usr_cpu"] + job["sys_cpu"]) / 100.0 * secs
server = ticks / tck
pct = rd["clat_ns"].get("percentile", {})
us = lambda k: round(pct[k] / 1000.0, 1) if k in pct else None
gb = rd["io_bytes"] / 1e9
print(json.dumps({
    "system": system, "workload": "file", "bs": bs, "qd": qd,
    "iops": round(rd["iops"], 1), "mbps": round(rd["bw_bytes"] / 1e6, 1),
    "p50_us": us("50.000000"), "p99_us": us("99.000000"),
    "client_cpu_s": round(client, 3), "server_cpu_s": round(server, 3),
    "cpu_s_per_gb": round((client + server) / gb, 3) if gb > 0 else None,
    "ops": rd["total_ios"], "bytes": rd["io_bytes"], "seconds": secs,
    "errors": job.get("error", 0)}))
EOF
}

fio_cell() {  # system file bs qd server_pids...
  local system=$1 file=$2 bs=$3 qd=$4; shift 4
  local out=$state/last.fio.json before after
  before=$(cpu_ticks "$@")
  bounded "$state/fio.log" fio --name=randread --filename="$file" --rw=randread --bs="$bs" --iodepth="$qd" \
      --ioengine=io_uring --direct=1 --size="$size_bytes" --runtime="$seconds" --time_based \
      --norandommap --randrepeat=0 --numjobs=1 --output-format=json --output="$out" ||
    die "fio failed on $file (bs $bs, qd $qd; log: $state/fio.log)"
  after=$(cpu_ticks "$@")
  record_fio "$system" "$out" $((after - before)) "$(bs_bytes "$bs")" "$qd"
}

bench_cell() {  # system server_pid_csv workload bs qd shoal-bench-args...
  local system=$1 pids=$2 workload=$3 bs=$4 qd=$5; shift 5
  local out=$state/last.bench.json before after
  rm -f "$out"
  local extra=()
  [ -z "$pids" ] || extra=(--server-pids "$pids")
  [[ " $* " == *" --ops "* ]] || extra+=(--seconds "$seconds")  # a cell bounded by count sets its own
  before=$(cpu_ticks ${pids//,/ })
  echo "+ shoal-bench $* ${extra[*]}" >>"$state/bench.log"
  if ! bounded "$state/bench.log" "$bench_bin" "$@" "${extra[@]}" --json "$out"; then
    [[ $system != nfs* ]] || ganesha_alive
    die "shoal-bench $* failed (log: $state/bench.log)"
  fi
  [[ $system != nfs* ]] || ganesha_alive
  after=$(cpu_ticks ${pids//,/ })
  record_bench "$system" "$out" $((after - before)) "$workload" "$(bs_bytes "$bs")" "$qd"
}

file_cells() {  # bs qd
  local bs=$1 qd=$2
  log "file, bs $bs, qd $qd: disk"
  drop_caches; fio_cell disk "$disk_file" "$bs" "$qd"
  log "file, bs $bs, qd $qd: shoal-native"
  drop_caches; bench_cell shoal-native "$server_csv" file "$bs" "$qd" native --config "$conf" --path /bench.dat --bs "$bs" --qd "$qd"
  log "file, bs $bs, qd $qd: shoal-fuse"
  drop_caches; fio_cell shoal-fuse "$mnt/bench.dat" "$bs" "$qd" "${server_pids[@]}"
  log "file, bs $bs, qd $qd: nfs"
  drop_caches; bench_cell nfs "$ganesha_pid" file "$bs" "$qd" nfs --nfs-url "$nfs_url" --path /bench.dat --bs "$bs" --qd "$qd"
}

# Dataset cells read every file exactly once (one shuffled pass), so that no
# system gets to re-read what an earlier pass left in a cache.
one_pass=(--ops "$files" --seconds 0)
dataset_cells() {
  local qd=64
  log "dataset, qd $qd: disk"
  drop_caches; bench_cell disk "" dataset 0 "$qd" posix --dataset --path "$data/files" --qd "$qd" "${one_pass[@]}"
  log "dataset, qd $qd: shoal-native"
  drop_caches; bench_cell shoal-native "$server_csv" dataset 0 "$qd" native --dataset --config "$conf" --path /files --qd "$qd" "${one_pass[@]}"
  log "dataset, qd $qd: shoal-fuse"
  drop_caches; bench_cell shoal-fuse "$server_csv" dataset 0 "$qd" posix --dataset --path "$mnt/files" --qd "$qd" "${one_pass[@]}"
  log "dataset, qd $qd: nfs"
  drop_caches; bench_cell nfs "$ganesha_pid" dataset 0 "$qd" nfs --dataset --nfs-url "$nfs_url" --path /files --qd "$qd" "${one_pass[@]}"
}

bss=(4k 128k 1m)
qds=(1 64)
if [ "$meta_mode" != only ]; then
for bs in "${bss[@]}"; do for qd in "${qds[@]}"; do file_cells "$bs" "$qd"; done; done
dataset_cells

# Warm: everything the NFS cells read, read once through the page cache by
# this script (so the pages are charged to our cgroup, not ganesha's capped one).
log "warming the page cache for nfs-warm"
cat "$disk_file" >/dev/null
find "$data/files" -type f -exec cat {} + >/dev/null
for bs in "${bss[@]}"; do for qd in "${qds[@]}"; do
  log "file, bs $bs, qd $qd: nfs-warm"
  bench_cell nfs-warm "$ganesha_pid" file "$bs" "$qd" nfs --nfs-url "$nfs_url" --path /bench.dat --bs "$bs" --qd "$qd"
done; done
log "dataset, qd 64: nfs-warm"
bench_cell nfs-warm "$ganesha_pid" dataset 0 64 nfs --dataset --nfs-url "$nfs_url" --path /files --qd 64 "${one_pass[@]}"

# ---------------------------------------------------------------------------
# Report.
[ -n "$png_out" ] || png_out=$work/compare.png
all_json=$state/results.json
/usr/bin/python3 -c 'import json,sys; print(json.dumps([json.loads(l) for l in open(sys.argv[1]) if l.strip()], indent=1))' \
  "$cells" >"$all_json"
[ -z "$json_out" ] || cp "$all_json" "$json_out"
/usr/bin/python3 - "$all_json" "$size_bytes" "$seconds" "$files" <<'EOF'
import json, sys
cells = json.load(open(sys.argv[1]))
size, secs, nfiles = int(sys.argv[2]), sys.argv[3], sys.argv[4]
systems = ["disk", "shoal-native", "shoal-fuse", "nfs", "nfs-warm"]
def human(n):
    for unit, div in (("M", 1e6), ("k", 1e3)):
        if n >= div: return "%.1f%s" % (n / div, unit)
    return "%.0f" % n
def bsname(b):
    return "%dk" % (b >> 10) if b < (1 << 20) else "%dm" % (b >> 20)
rows = {}
for c in cells:
    key = ("file", c["bs"], c["qd"]) if c["workload"] == "file" else ("dataset", 0, c["qd"])
    rows.setdefault(key, {})[c["system"]] = c
def ratio(a, b):
    if not a or not b or not b["mbps"]: return "–"
    return "%.2f" % (a["mbps"] / b["mbps"])
print("Random reads of one %.1f GiB file, %s s per cell; dataset: %s files of 64–512 KiB, each read whole once, shuffled." % (size / (1 << 30), secs, nfiles))
print("Cells: IOPS / MB/s / p99 µs. CPU: CPU seconds (client + servers) per GB read.\n")
hdr = ["workload"] + systems + ["native/nfs", "fuse/nfs", "native/disk", "fuse/disk", "CPU s/GB " + " · ".join(systems)]
print("| " + " | ".join(hdr) + " |")
print("|" + "---|" * len(hdr))
for key in sorted(rows, key=lambda k: (k[0] != "file", k[1], k[2])):
    r = rows[key]
    name = ("%s QD%d" % (bsname(key[1]), key[2])) if key[0] == "file" else "files QD%d" % key[2]
    line = [name]
    for s in systems:
        c = r.get(s)
        line.append("%s / %.0f / %s" % (human(c["iops"]), c["mbps"], "%.0f" % c["p99_us"] if c.get("p99_us") is not None else "–") if c else "–")
    line += [ratio(r.get("shoal-native"), r.get("nfs")), ratio(r.get("shoal-fuse"), r.get("nfs")),
             ratio(r.get("shoal-native"), r.get("disk")), ratio(r.get("shoal-fuse"), r.get("disk"))]
    line.append(" · ".join("%.2f" % r[s]["cpu_s_per_gb"] if s in r and r[s].get("cpu_s_per_gb") is not None else "–" for s in systems))
    print("| " + " | ".join(line) + " |")
errs = sum(c.get("errors", 0) or 0 for c in cells)
if errs: print("\nWARNING: %d read errors/verify failures across cells" % errs)
EOF
if /usr/bin/python3 "$root/bench/plot_compare.py" "$all_json" "$png_out" >&2; then
  log "chart: $png_out"
else
  log "warning: chart not written"
fi
[ -z "$json_out" ] || log "json: $json_out"
fi  # meta_mode != only

# ---------------------------------------------------------------------------
# Metadata: meta-bench on the Shoal mount and on the local disk, 1 and 2 processes.
if [ "$meta_mode" != none ]; then
  [ -x "$meta_bin" ] || die "meta-bench not found at $meta_bin (build it: cmake --build $build --target meta-bench)"
  tree_args=(--tree-dirs 0)
  [ "$meta_tree" = 0 ] || tree_args=(--tree-dirs "${meta_tree%x*}" --tree-files "${meta_tree#*x}" --tree-size 4096)
  meta_cells=$state/meta-cells.jsonl
  : >"$meta_cells"
  mkdir -p "$data/meta"
  for procs in 1 2; do
    for system in disk shoal-fuse; do
      dir=$data/meta
      [ "$system" = disk ] || dir=$mnt
      out=$state/last.meta.json
      rm -f "$out"
      log "metadata, $procs process(es): $system ($dir)"
      echo "+ meta-bench --path $dir --procs $procs --files $meta_files ${tree_args[*]}" >>"$state/meta.log"
      # A whole tree on a slow system takes minutes: its own deadline.
      cell_deadline=${META_DEADLINE:-3600} bounded "$state/meta.log" "$meta_bin" --path "$dir" --procs "$procs" \
          --files "$meta_files" "${tree_args[@]}" --json "$out" ||
        die "meta-bench on $dir failed (log: $state/meta.log)"
      /usr/bin/python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); r["system"]=sys.argv[2]; print(json.dumps(r))' \
        "$out" "$system" >>"$meta_cells"
    done
  done
  meta_all=$state/meta-results.json
  /usr/bin/python3 -c 'import json,sys; print(json.dumps([json.loads(l) for l in open(sys.argv[1]) if l.strip()], indent=1))' \
    "$meta_cells" >"$meta_all"
  [ -z "$meta_json" ] || cp "$meta_all" "$meta_json"
  /usr/bin/python3 - "$meta_all" "$meta_files" "$meta_tree" <<'EOF'
import json, sys
cells = json.load(open(sys.argv[1]))
print("\nMetadata (meta-bench): %s files per process; tree %s files of 4 KiB. Cells: operations/s (tree-*: also seconds)." % (sys.argv[2], sys.argv[3]))
by = {(c["system"], c["procs"]): {p["name"]: p for p in c["phases"]} for c in cells}
phases = []
for c in cells:
    for p in c["phases"]:
        if p["name"] not in phases: phases.append(p["name"])
hdr = ["phase"]
for procs in (1, 2):
    hdr += ["disk %dp" % procs, "shoal-fuse %dp" % procs, "shoal/disk %dp" % procs]
print("| " + " | ".join(hdr) + " |")
print("|" + "---|" * len(hdr))
for name in phases:
    line = [name]
    for procs in (1, 2):
        d = by.get(("disk", procs), {}).get(name)
        s = by.get(("shoal-fuse", procs), {}).get(name)
        fmt = lambda p: "–" if not p else ("%.0f" % p["ops_per_s"] + (" (%.1f s)" % p["seconds"] if name.startswith("tree") else ""))
        line += [fmt(d), fmt(s), "%.2f" % (s["ops_per_s"] / d["ops_per_s"]) if d and s and d["ops_per_s"] else "–"]
    print("| " + " | ".join(line) + " |")
errs = sum(p["errors"] for c in cells for p in c["phases"])
if errs: print("\nWARNING: %d failed metadata operations" % errs)
EOF
  [ -z "$meta_json" ] || log "metadata json: $meta_json"
fi

if ((loader_files > 0)); then
  log "PyTorch data loading: bench/loader.sh --files $loader_files"
  "$root/bench/loader.sh" --files "$loader_files" || log "warning: loader benchmark failed"
fi
