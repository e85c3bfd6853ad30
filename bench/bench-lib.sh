# Shared by bench/compare.sh and bench/loader.sh (sourced, not run): bounded
# children, cold caches, CPU ticks, and the private NFS-Ganesha that serves the
# NFS cells (bench/nfs-ganesha.sh), capped so that it reads the disk.
#
# The sourcing script defines log and die, and sets root (the repository) and
# cell_deadline (seconds any one bounded child may run). Globals this file
# keeps: child (the bounded child running now), nfs_up, nfs_state, nfs_url,
# nfs_mem, ganesha_pid. The sourcing script's EXIT trap calls
# stop_bounded_child and nfs_stop.

child=
nfs_up=0
nfs_state=
nfs_url=
nfs_mem=
ganesha_pid=
warned_drop=0

# Runs a command in the background with a deadline and waits for it, so that a
# signal to the script interrupts the wait (its trap then stops the child).
# Its output goes to log_file (- : where the script's goes): redirecting the
# call instead would also send the script's own messages (and the trap's) there
# while it waits.
bounded() {  # log_file command...
  local log_file=$1; shift
  if [ "$log_file" = - ]; then
    timeout --kill-after=10 "$cell_deadline" "$@" &
  else
    timeout --kill-after=10 "$cell_deadline" "$@" >>"$log_file" 2>&1 &
  fi
  child=$!
  local rc=0
  wait "$child" || rc=$?
  child=
  return "$rc"
}

stop_bounded_child() {  # from an EXIT trap: the child still running, if any
  if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  child=
}

drop_caches() {
  sync
  if ! echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
    ((warned_drop++)) || log "warning: cannot drop the page cache (not root?): cold figures may be warm"
  fi
}

cpu_ticks() {  # pids...: summed utime+stime of those processes, in ticks
  local sum=0 p t
  for p in "$@"; do
    # Fields after the command name (which may hold spaces) start at 3; utime, stime are 14, 15.
    t=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || t=0
    sum=$((sum + ${t:-0}))
  done
  echo "$sum"
}

ganesha_installed() {  # what nfs-ganesha.sh needs (it installs it when missing; callers that must not install ask first)
  command -v ganesha.nfsd >/dev/null && command -v nfs-ls >/dev/null &&
    [ -e /usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so ]
}

# Ganesha's memory cap for serving data_bytes cold: its own working memory (up
# to ~100 MiB of buffers at QD64 x 1 MiB; at 64 MiB the kernel OOM-killed it)
# plus page cache of a sixteenth of the data. No swap, so what the cap squeezes
# is the page cache. NFS_MEM_MAX overrides.
nfs_mem_for() {  # data_bytes
  echo "${NFS_MEM_MAX:-$(((256 << 20) + $1 / 16))}"
}

# Starts ganesha exporting export_dir with the memory cap mem (bytes); sets
# nfs_up, nfs_state, nfs_url, nfs_mem and ganesha_pid. Write the exported files
# before: ganesha caches what it has seen and misses later changes behind it.
nfs_start() {  # export_dir state_dir mem
  mkdir -p "$2"
  nfs_state=$2 nfs_mem=$3
  nfs_up=1  # from here on nfs_stop has something to stop, even if up fails half-way
  NFS_MEM_MAX=$nfs_mem "$root/bench/nfs-ganesha.sh" up "$1" "$2" >"$2/url.out" || die "NFS-Ganesha did not start"
  nfs_url=$(tail -n 1 "$2/url.out")
  ganesha_pid=$(cat "$2/ganesha.pid.ours")
}

nfs_stop() {  # from an EXIT trap: stops what nfs_start started, removes its cgroup
  ((nfs_up)) || return 0
  "$root/bench/nfs-ganesha.sh" down "$nfs_state" >&2 || true
  nfs_up=0
}

ganesha_alive() {  # after an NFS cell: a dead ganesha (its cgroup's OOM killer?) ends the run
  local st
  st=$(awk '{print $3}' "/proc/$ganesha_pid/stat" 2>/dev/null) || st=gone
  [ "$st" != gone ] && [ "$st" != Z ] && return 0
  die "ganesha ($ganesha_pid) died during the last cell; an OOM kill in its cgroup? (dmesg; raise NFS_MEM_MAX, now $nfs_mem)"
}
