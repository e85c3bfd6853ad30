#!/usr/bin/env bash
# A whole Shoal cluster on this machine: shoal-meta, 3 shoal-storage processes
# (one target directory each) on loopback, a generated cluster key, and a FUSE
# mount.
#
#   deploy/local-cluster.sh up       install, build, start, mount; prints the mount point
#   deploy/local-cluster.sh down     unmount and stop exactly the processes `up` started
#   deploy/local-cluster.sh status   processes and the cluster table
#
# The first `up` creates the cluster (shoal-meta --init) and formats the
# targets (shoal-storage --format); it leaves $SHOAL_HOME/state/ markers so
# that later ones never do either again: a lost database or an emptied target
# is then refused, as it would be in production.
#
# Environment: SHOAL_HOME (state, default /var/tmp/shoal-local), SHOAL_MOUNT
# (default $SHOAL_HOME/mnt), SHOAL_PORT (meta port, default 9000; storage
# uses the next three; Prometheus metrics on port+100 (meta) and port+101..103),
# SHOAL_BUILD (build directory, default ./build), SHOAL_LINK_DIR (where `up`
# links the shoal CLI, default /usr/local/bin), SHOAL_STORAGE_EXTRA (lines
# added to each storage server's config, e.g. "journal_mib = 0" for an A/B),
# SHOAL_FUSE_EXTRA (lines added to the mount's config, e.g. "uring = 'on'").
#
# The CLI finds this cluster's config by itself: $SHOAL_HOME/conf/client.toml
# when SHOAL_HOME is set, else /var/tmp/shoal-local/conf/client.toml.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
home=${SHOAL_HOME:-/var/tmp/shoal-local}
mnt=${SHOAL_MOUNT:-$home/mnt}
port=${SHOAL_PORT:-9000}
build=${SHOAL_BUILD:-$root/build}
bin_meta=$build/meta/shoal-meta
bin_storage=$build/storage/shoal-storage
bin_fuse=$build/client/fuse/shoal-fuse
bin_cli=$build/client/cli/shoal
link_dir=${SHOAL_LINK_DIR:-/usr/local/bin}
nodes=3

log() { echo "local-cluster: $*" >&2; }
die() { log "$*"; exit 1; }

# Waits until "$@" succeeds, for at most $1 seconds.
wait_for() {
  local secs=$1; shift
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

running() {  # pid: true while it runs (a zombie waiting for its reaper does not)
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

alive() {  # pidfile: true when it names a live process of ours
  local f=$1 pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  running "$pid" && grep -q shoal "/proc/$pid/cmdline" 2>/dev/null
}

start() {  # name, command...
  local name=$1; shift
  if alive "$home/run/$name.pid"; then log "$name already running"; return; fi
  setsid "$@" >>"$home/log/$name.log" 2>&1 < /dev/null &
  echo $! >"$home/run/$name.pid"
}

cli() { "$bin_cli" --config "$home/conf/client.toml" "$@"; }

# Puts `shoal` on the PATH: a symlink to this build's CLI. A file there that
# is not a symlink (an installed shoal) is left alone.
link_cli() {
  local link="$link_dir/shoal"
  mkdir -p "$link_dir"
  if [ -e "$link" ] && [ ! -L "$link" ]; then
    log "$link exists and is not a symlink; leaving it (this build's CLI: $bin_cli)"
    return
  fi
  ln -sfn "$bin_cli" "$link"
  if [ "$home" = /var/tmp/shoal-local ]; then log "CLI: $link (try: shoal status)"
  else log "CLI: $link (export SHOAL_HOME=$home so that it finds this cluster)"; fi
}

mounted() { grep -q " $mnt fuse.shoal " /proc/mounts; }

nodes_online() { [ "$(cli status 2>/dev/null | grep -c ' online ')" -ge "$nodes" ]; }

up_or_dead() {  # name, command...: true once the command succeeds or the process has exited
  local name=$1; shift
  "$@" || ! alive "$home/run/$name.pid"
}

nodes_online_or_one_dead() {
  nodes_online && return 0
  for i in $(seq 1 $nodes); do alive "$home/run/storage$i.pid" || return 0; done
  return 1
}

last_words() { printf '%s (log: %s)' "$(tail -n 1 "$home/log/$1.log" 2>/dev/null)" "$home/log/$1.log"; }

up() {
  "$root/deploy/install-deps.sh"
  if [ ! -d "$build" ]; then cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null; fi
  cmake --build "$build" >/dev/null
  mkdir -p "$home"/{conf,log,run,meta,state} "$mnt"
  [ -f "$home/conf/cluster.key" ] || (umask 077; openssl rand -hex 32 >"$home/conf/cluster.key")
  local common="cluster_id = 'local'
cluster_key_file = '$home/conf/cluster.key'"
  printf "%s\nlisten = '127.0.0.1:%d'\ndata_dir = '%s/meta'\nheartbeat_timeout_ms = 5000\nmetrics_listen = '127.0.0.1:%d'\n" \
    "$common" "$port" "$home" $((port + 100)) >"$home/conf/meta.toml"
  printf "%s\nmeta_address = '127.0.0.1:%d'\n" "$common" "$port" >"$home/conf/client.toml"
  printf "%s\nmeta_address = '127.0.0.1:%d'\nmountpoint = '%s'\n" "$common" "$port" "$mnt" >"$home/conf/fuse.toml"
  if [ -n "${SHOAL_FUSE_EXTRA:-}" ]; then printf "%s\n" "$SHOAL_FUSE_EXTRA" >>"$home/conf/fuse.toml"; fi
  # Three servers share this machine's cores: one event loop each, not one per core.
  for i in $(seq 1 $nodes); do
    printf "%s\nevent_loops = 1\nmeta_address = '127.0.0.1:%d'\nlisten = '127.0.0.1:%d'\nnode_id = %d\ntargets = ['%d:%s/target%d']\nmetrics_listen = '127.0.0.1:%d'\n" \
      "$common" "$port" $((port + i)) "$i" $((i * 100 + 1)) "$home" "$i" $((port + 100 + i)) >"$home/conf/storage$i.toml"
    if [ -n "${SHOAL_STORAGE_EXTRA:-}" ]; then printf "%s\n" "$SHOAL_STORAGE_EXTRA" >>"$home/conf/storage$i.toml"; fi
  done

  local init=() format=()
  [ -f "$home/state/initialised" ] || init=(--init)
  start meta "$bin_meta" --config "$home/conf/meta.toml" "${init[@]}"
  wait_for 30 up_or_dead meta cli status
  cli status >/dev/null 2>&1 || die "shoal-meta did not come up: $(last_words meta)"
  touch "$home/state/initialised"
  for i in $(seq 1 $nodes); do
    format=()
    [ -f "$home/state/formatted$i" ] || format=(--format)
    start "storage$i" "$bin_storage" --config "$home/conf/storage$i.toml" "${format[@]}"
  done
  wait_for 30 nodes_online_or_one_dead
  for i in $(seq 1 $nodes); do
    alive "$home/run/storage$i.pid" || die "shoal-storage $i did not start: $(last_words "storage$i")"
  done
  wait_for 30 nodes_online || die "storage nodes did not register; see $home/log/storage*.log"
  for i in $(seq 1 $nodes); do touch "$home/state/formatted$i"; done
  if ! mounted; then
    start fuse "$bin_fuse" --config "$home/conf/fuse.toml"
    wait_for 30 mounted || die "mount did not appear; see $home/log/fuse.log"
  fi
  wait_for 10 stat "$mnt/." || die "mount does not answer"
  link_cli
  log "cluster up; logs in $home/log"
  echo "$mnt"
}

stop() {  # name
  local f="$home/run/$1.pid" pid
  alive "$f" || { rm -f "$f"; return 0; }
  pid=$(cat "$f")
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_for 15 eval "! running $pid"; then
    log "$1 ($pid) ignored SIGTERM; killing"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

down() {
  if mounted; then fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true; fi
  stop fuse
  for i in $(seq 1 $nodes); do stop "storage$i"; done
  stop meta
  log "cluster down"
}

status() {
  for f in "$home"/run/*.pid; do
    [ -e "$f" ] || continue
    if alive "$f"; then echo "$(basename "$f" .pid): running (pid $(cat "$f"))"; else echo "$(basename "$f" .pid): dead"; fi
  done
  mounted && echo "mounted on $mnt" || echo "not mounted"
  cli status || true
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
