#!/usr/bin/env bash
# Installs what bench/compare.sh needs beyond Shoal's own dependencies
# (deploy/install-deps.sh): NFS-Ganesha with its VFS backend, libnfs (library
# for shoal-bench's nfs backend, nfs-ls/nfs-cat to probe the export), fio and
# matplotlib for the chart. Only missing packages are installed; CI that does
# not run the NFS comparison never needs this.
set -euo pipefail
pkgs=(nfs-ganesha nfs-ganesha-vfs libnfs-dev libnfs-utils fio python3-matplotlib)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  # --no-install-recommends keeps out the kernel NFS server and friends;
  # rpcbind comes in as a dependency of nfs-ganesha but is not needed (the
  # client is given the ports) and is never started by our scripts.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
