#!/usr/bin/env bash
# Installs Shoal's build and runtime dependencies from Debian's packages, only
# when one is missing (so a warm machine pays nothing). Extra package names
# given as arguments are installed the same way (bench/install-bench-deps.sh).
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config librocksdb-dev liburing-dev libfuse3-dev fuse3
      libprotobuf-dev protobuf-compiler libibverbs-dev librdmacm-dev libisal-dev libssl-dev openssl
      libgtest-dev libgmock-dev libbenchmark-dev libtomlplusplus-dev libcli11-dev libspdlog-dev
      libfmt-dev fio ccache libnfs-dev
      python3-dev pybind11-dev python3-numpy python3-torch "$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
