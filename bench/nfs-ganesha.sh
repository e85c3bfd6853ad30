#!/usr/bin/env bash
# A private NFS-Ganesha (FSAL VFS) on 127.0.0.1 for benchmarks: the NFS side of
# bench/compare.sh.
#
#   bench/nfs-ganesha.sh up <export-dir> <state-dir>   start; last stdout line: the libnfs URL
#   bench/nfs-ganesha.sh down <state-dir>              stop what `up` started, remove its cgroup
#   bench/nfs-ganesha.sh status <state-dir>            running or not, URL, cgroup memory
#
# NFSv4 over TCP only, on a port picked free at start; UDP, NLM and RQUOTA off.
# Why v4: ganesha 4.3 treats a failed rpcbind registration of NFSv3 as fatal,
# but only logs it for v4 ("Cannot register NFS V4 on TCP" in the log is
# expected), and v4 needs no MOUNT protocol; so no portmapper is needed and
# the system's rpcbind (if any) is never touched. libnfs 4.0 (Debian 12)
# reads and lists over v4 fine with ?version=4&nfsport=N, although its header
# still calls v4 "not yet functional".
#
# Config, log, pid file and NFSv4 recovery state all live in <state-dir>.
# The daemon runs in its own memory cgroup (v2: /sys/fs/cgroup/shoal-bench-nfs-<id>,
# v1: /sys/fs/cgroup/memory/shoal-bench-nfs-<id>; <id> from the state dir's path) capped at NFS_MEM_MAX (default
# 256M) so that it cannot hold the dataset in its own memory; page cache it
# faults in is charged to that cgroup and so stays below the cap too. Without a
# usable memory controller the server still runs, with a warning.
#
# Environment: NFS_PORT (default: first free from 20490),
# NFS_MEM_MAX (bytes or K/M/G suffix; 0 = no cgroup), NFS_WAIT_SECS (default 30).
set -euo pipefail

wait_secs=${NFS_WAIT_SECS:-30}

log() { echo "nfs-ganesha: $*" >&2; }
die() { log "$*"; exit 1; }
usage() { echo "usage: $0 up <export-dir> <state-dir> | down <state-dir> | status <state-dir>" >&2; exit 2; }

running() {  # pid: true while it runs (not a zombie)
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

ours() {  # state-dir: prints the pid when the pid file names a live ganesha started with our config
  local pid
  [ -f "$1/ganesha.pid" ] || return 1
  pid=$(cat "$1/ganesha.pid")
  [ -n "$pid" ] && running "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "-f $1/ganesha.conf" || return 1
  echo "$pid"
}

port_free() { ! ss -Htlna "( sport = :$1 )" 2>/dev/null | grep -q .; }

free_port() {  # first: first free TCP port >= first
  local p=$1
  while ((p < $1 + 200)); do
    if port_free "$p"; then echo "$p"; return; fi
    p=$((p + 1))
  done
  die "no free port in $1..$(($1 + 199))"
}

to_bytes() {  # 256M -> 268435456
  local v=$1
  case $v in
    *[Gg]) echo $((${v%?} << 30)) ;;
    *[Mm]) echo $((${v%?} << 20)) ;;
    *[Kk]) echo $((${v%?} << 10)) ;;
    *[0-9]) echo "$v" ;;
    *) die "bad NFS_MEM_MAX: $v" ;;
  esac
}

# Prints the directory of our memory cgroup after creating it with the cap, or
# nothing when there is no memory controller we can use.
make_cgroup() {  # bytes state-dir
  # One cgroup per state directory, so that two servers (two users of this
  # script) never share or remove each other's cap.
  local dir cgroup_name
  cgroup_name=shoal-bench-nfs-$(printf %s "$2" | md5sum | cut -c1-8)
  if grep -qw memory /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
    # cgroup v2 unified: children of the root get the controller only when the
    # root's subtree_control enables it.
    grep -qw memory /sys/fs/cgroup/cgroup.subtree_control ||
      echo +memory >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || return 0
    dir=/sys/fs/cgroup/$cgroup_name
    mkdir -p "$dir" 2>/dev/null || return 0
    echo "$1" >"$dir/memory.max" 2>/dev/null || return 0
    echo 0 >"$dir/memory.swap.max" 2>/dev/null || true
  elif [ -f /sys/fs/cgroup/memory/memory.limit_in_bytes ]; then
    dir=/sys/fs/cgroup/memory/$cgroup_name  # cgroup v1 memory hierarchy
    mkdir -p "$dir" 2>/dev/null || return 0
    echo "$1" >"$dir/memory.limit_in_bytes" 2>/dev/null || return 0
  else
    return 0
  fi
  echo "$dir"
}

remove_cgroup() {  # dir
  local dir=$1 deadline
  [ -n "$dir" ] && [ -d "$dir" ] || return 0
  # rmdir fails while a task is still inside (the daemon's exit is reaped
  # asynchronously), so retry for a bounded while.
  deadline=$((SECONDS + 10))
  until rmdir "$dir" 2>/dev/null; do
    ((SECONDS < deadline)) || { log "could not remove cgroup $dir"; return 0; }
    sleep 0.1
  done
}

answers() {  # url: true once an NFS client can list the export
  timeout 5 nfs-ls "$1" >/dev/null 2>&1
}

up() {
  local export_dir=$1 state=$2
  command -v ganesha.nfsd >/dev/null && command -v nfs-ls >/dev/null &&
    [ -e /usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so ] || "$(dirname "$0")/install-bench-deps.sh"
  [ -d "$export_dir" ] || die "export directory $export_dir does not exist"
  export_dir=$(cd "$export_dir" && pwd -P)
  mkdir -p "$state/recovery"
  state=$(cd "$state" && pwd -P)
  if pid=$(ours "$state"); then
    log "already running (pid $pid)"
    cat "$state/url"
    return
  fi

  local nfs_port mem cg=
  nfs_port=${NFS_PORT:-$(free_port 20490)}
  port_free "$nfs_port" || die "NFS port $nfs_port is taken"
  mem=$(to_bytes "${NFS_MEM_MAX:-256M}")

  cat >"$state/ganesha.conf" <<EOF
# Written by bench/nfs-ganesha.sh; regenerated on every start.
NFS_CORE_PARAM {
  Bind_addr = 127.0.0.1;
  NFS_Port = $nfs_port;
  Protocols = 4;
  Enable_UDP = false;
  Enable_NLM = false;
  Enable_RQUOTA = false;
}
NFSV4 {
  Graceless = true;
  RecoveryBackend = fs;
  RecoveryRoot = "$state/recovery";
}
NFS_KRB5 { Active_krb5 = false; }
EXPORT_DEFAULTS {
  SecType = sys;
  Squash = no_root_squash;
}
EXPORT {
  Export_Id = 1;
  Path = "$export_dir";
  Pseudo = /export;
  Access_Type = RW;
  Protocols = 4;
  Transports = TCP;
  FSAL { Name = VFS; }
}
LOG {
  Default_Log_Level = EVENT;
}
EOF
  if [ "$mem" != 0 ]; then
    cg=$(make_cgroup "$mem" "$state")
    if [ -n "$cg" ]; then echo "$cg" >"$state/cgroup"
    else log "warning: no usable memory cgroup; ganesha runs without a memory cap"; fi
  fi
  : >"$state/ganesha.log"
  rm -f "$state/ganesha.pid"
  # -F keeps it in the foreground so that $! is the daemon itself; setsid
  # detaches it from our terminal and process group. The shell joins the
  # cgroup before it execs ganesha, so everything ganesha ever allocates or
  # faults in is charged there.
  setsid bash -c '[ -z "$1" ] || echo $$ >"$1/cgroup.procs" || exit 97; shift; exec "$@"' _ "$cg" \
    ganesha.nfsd -F -f "$state/ganesha.conf" -L "$state/ganesha.log" -p "$state/ganesha.pid" -N NIV_EVENT \
    </dev/null >>"$state/ganesha.out" 2>&1 &
  local pid=$!
  echo "$pid" >"$state/ganesha.pid.ours"
  local url="nfs://127.0.0.1/export?version=4&nfsport=$nfs_port"
  echo "$url" >"$state/url"
  local deadline=$((SECONDS + wait_secs))
  until answers "$url"; do
    if ! running "$pid"; then
      down "$state" >/dev/null 2>&1 || true
      die "ganesha exited: $(grep -E 'CRIT|FATAL|MAJ' "$state/ganesha.log" | tail -n 3) (log: $state/ganesha.log)"
    fi
    if ((SECONDS >= deadline)); then
      down "$state" >/dev/null 2>&1 || true
      die "ganesha did not answer within ${wait_secs}s (log: $state/ganesha.log)"
    fi
    sleep 0.2
  done
  log "up (pid $pid, port $nfs_port${cg:+, memory cap $mem in $cg})"
  echo "$url"
}

down() {
  local state=$1 pid cg=
  [ -d "$state" ] || { log "no state directory $state"; return 0; }
  [ -f "$state/cgroup" ] && cg=$(cat "$state/cgroup")
  # The pid we spawned is authoritative; ganesha's own pid file must agree.
  pid=$(cat "$state/ganesha.pid.ours" 2>/dev/null || true)
  if [ -n "$pid" ] && running "$pid" &&
     tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "-f $state/ganesha.conf"; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 15))
    while running "$pid"; do
      if ((SECONDS >= deadline)); then
        log "ganesha ($pid) ignored SIGTERM; killing"
        kill -KILL "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.1
    done
    log "stopped ganesha ($pid)"
  fi
  remove_cgroup "$cg"
  rm -f "$state/ganesha.pid" "$state/ganesha.pid.ours" "$state/cgroup" "$state/url"
}

status() {
  local state=$1 pid cg
  if pid=$(ours "$state"); then
    echo "ganesha: running (pid $pid) $(cat "$state/url" 2>/dev/null)"
  else
    echo "ganesha: not running"
  fi
  if [ -f "$state/cgroup" ]; then
    cg=$(cat "$state/cgroup")
    echo "cgroup $cg: $(cat "$cg/memory.current" "$cg/memory.usage_in_bytes" 2>/dev/null | head -1) bytes in use"
  fi
}

case "${1:-}" in
  up) (($# == 3)) || usage; up "$2" "$3" ;;
  down) (($# == 2)) || usage; down "$2" ;;
  status) (($# == 2)) || usage; status "$2" ;;
  *) usage ;;
esac
