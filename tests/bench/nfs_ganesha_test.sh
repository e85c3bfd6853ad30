#!/usr/bin/env bash
# Smoke test of bench/nfs-ganesha.sh: `up` serves a directory over NFS on
# 127.0.0.1 (a file read back through libnfs's nfs-cat is byte-identical, and
# nfs-ls lists it), ganesha sits in its capped memory cgroup when one is
# available, a second `up` reuses the running server, and `down` leaves
# nothing behind (process gone, port closed, cgroup removed).
#
# Needs root (cgroup, ganesha's capabilities) and the packages from
# bench/install-bench-deps.sh; exits 77 (skipped) without them.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
script=$root/bench/nfs-ganesha.sh

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
command -v ganesha.nfsd >/dev/null && command -v nfs-cat >/dev/null ||
  { echo "SKIP: run bench/install-bench-deps.sh first"; exit 77; }

tmp=$(mktemp -d /var/tmp/nfs-ganesha-test.XXXXXX)
state=$tmp/state
fail() { echo "FAIL: $*" >&2; sed -n '/CRIT\|MAJ\|FATAL/p' "$state/ganesha.log" 2>/dev/null | tail -n 5 >&2; exit 1; }
cleanup() { "$script" down "$state" >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT
mkdir -p "$tmp/export/sub"
head -c $((3 << 20)) /dev/urandom >"$tmp/export/sub/data.bin"

url=$(NFS_MEM_MAX=64M "$script" up "$tmp/export" "$state" | tail -n 1)
[[ $url == nfs://127.0.0.1/export\?* ]] || fail "unexpected URL '$url'"
pid=$(cat "$state/ganesha.pid.ours")
kill -0 "$pid" || fail "ganesha ($pid) is not running"
port=${url##*nfsport=}; port=${port%%&*}
listeners=$(ss -Htln "( sport = :$port )")
grep -q '127.0.0.1' <<<"$listeners" || fail "nothing listens on 127.0.0.1:$port"
if grep -v '127.0.0.1' <<<"$listeners" | grep -q .; then fail "port $port is open beyond 127.0.0.1"; fi

base=${url%%\?*}; query=${url#*\?}
timeout 20 nfs-cat "$base/sub/data.bin?$query" >"$tmp/readback" || fail "nfs-cat failed"
cmp -s "$tmp/export/sub/data.bin" "$tmp/readback" || fail "read-back differs from the exported file"
listing=$(timeout 20 nfs-ls "$base/sub?$query") || fail "nfs-ls failed"
grep -q data.bin <<<"$listing" || fail "nfs-ls does not list data.bin"

cg=
if [ -f "$state/cgroup" ]; then
  cg=$(cat "$state/cgroup")
  grep -qx "$pid" "$cg/cgroup.procs" || fail "ganesha is not in its cgroup $cg"
  limit=$(cat "$cg/memory.max" 2>/dev/null || cat "$cg/memory.limit_in_bytes")
  [ "$limit" = $((64 << 20)) ] || fail "cgroup limit is $limit, want $((64 << 20))"
else
  echo "note: no memory cgroup on this machine; cap not tested"
fi

again=$("$script" up "$tmp/export" "$state" 2>/dev/null | tail -n 1)
[ "$again" = "$url" ] || fail "second up gave '$again', want '$url'"
[ "$(cat "$state/ganesha.pid.ours")" = "$pid" ] || fail "second up started another server"

"$script" down "$state" 2>/dev/null
state_of=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo gone)
[ "$state_of" = gone ] || [ "$state_of" = Z ] || fail "ganesha ($pid) still runs after down"
[ -z "$(ss -Htln "( sport = :$port )")" ] || fail "port $port still open after down"
[ -z "$cg" ] || [ ! -d "$cg" ] || fail "cgroup $cg still exists after down"
echo PASS
