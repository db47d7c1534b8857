#!/usr/bin/env bash
# Installs every Debian package Berth needs (only those missing), then configures and builds
# into build/. Idempotent: a second run installs nothing and rebuilds only what changed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config git
  # fuzzing (libFuzzer comes with clang's runtime)
  clang libclang-rt-14-dev
  # libraries (see DESIGN.md "Build")
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libboost-dev libboost-filesystem-dev libboost-system-dev
  nlohmann-json3-dev librocksdb-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libtomlplusplus-dev libcli11-dev
  libarchive-dev libssl-dev libseccomp-dev libcap-dev
  # containerd's API protos, compiled at build time
  golang-github-containerd-containerd-dev
  # OCI peers used by the e2e tests and benchmarks
  containerd runc crun skopeo umoci busybox-static docker-registry
  # tools the tests use
  iproute2 procps util-linux
  # container networking: the CNI reference plugins (bridge, host-local, portmap, firewall,
  # loopback) and the iptables they drive
  containernetworking-plugins iptables
  # registry fixtures: certificates, htpasswd (bcrypt), the token issuer's JSON
  openssl apache2-utils jq
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  # A fresh machine may have no package lists yet; refresh once, retry once on a flaky mirror.
  $SUDO apt-get update -y -q || $SUDO apt-get update -y -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" ||
    { $SUDO apt-get update -y -q && $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"; }
fi

if [[ "${BERTH_SETUP_NO_BUILD:-0}" == 1 ]]; then exit 0; fi

# ccache: hash paths relative to the checkout so a fresh clone elsewhere (CI) reuses the cache.
export CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=1
BUILD_TYPE="${BERTH_BUILD_TYPE:-RelWithDebInfo}"
cmake -S "$ROOT" -B "$ROOT/build" -G Ninja \
  -DCMAKE_BUILD_TYPE="$BUILD_TYPE" \
  -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
cmake --build "$ROOT/build" -j "${BERTH_JOBS:-2}"
