#!/usr/bin/env bash
# Installs what bench/compare.sh needs beyond Shoal's own dependencies
# (deploy/install-deps.sh, which does the installing): NFS-Ganesha with its VFS
# backend, libnfs-utils (nfs-ls/nfs-cat to probe the export) and matplotlib for
# the chart. Only missing packages are installed; CI that does not run the NFS
# comparison never needs this. --no-install-recommends (in install-deps.sh)
# keeps out the kernel NFS server; rpcbind comes in as a dependency of
# nfs-ganesha but is never started by our scripts.
set -euo pipefail
exec "$(dirname "$0")/../deploy/install-deps.sh" nfs-ganesha nfs-ganesha-vfs libnfs-utils python3-matplotlib
