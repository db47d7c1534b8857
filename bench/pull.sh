#!/usr/bin/env bash
# Image pull from a registry on 127.0.0.1 (Debian's docker-registry), berthd vs containerd, in one
# run (see TARGETS.md): a ~200 MB image of 5 gzip layers, pulled and unpacked into overlayfs.
#   berth images pull  -> berthd (the daemon fetches and unpacks: transfer service)
#   ctr images pull    -> berthd (ctr fetches and unpacks through the v1 API)
#   ctr images pull    -> containerd
# Each round removes the image and waits for the garbage collection, so every pull starts empty.
# Reported per way: wall time (median of RUNS) and CPU seconds (client + daemon, median).
# Usage: bench/pull.sh [RUNS (default 3)] [LAYER_MB (default 40)]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUNS="${1:-3}"
LAYER_MB="${2:-40}"
command -v docker-registry >/dev/null || { echo "docker-registry is not installed (scripts/setup.sh)" >&2; exit 1; }

start_berthd
start_containerd

# ---- the registry ----
REG_DIR="$BENCH_DIR/registry"
mkdir -p "$REG_DIR/storage"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$REG_DIR/config.yml" <<CFG
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $REG_DIR/storage}
http: {addr: 127.0.0.1:$PORT}
CFG
docker-registry serve "$REG_DIR/config.yml" >"$REG_DIR/log" 2>&1 &
BENCH_PIDS+=("$!")
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
REF="127.0.0.1:$PORT/bench/big:1"

# ---- the image: 5 layers of LAYER_MB each, 90% random (so ~LAYER_MB compressed), 10% zeros ----
OCI="$BENCH_DIR/oci"
mkdir -p "$OCI/blobs/sha256" "$BENCH_DIR/layers"
put() {  # put FILE MEDIATYPE -> descriptor JSON
  local h; h=$(sha256sum "$1" | cut -c1-64); mv "$1" "$OCI/blobs/sha256/$h"
  printf '{"mediaType":"%s","digest":"sha256:%s","size":%s}' "$2" "$h" "$(stat -c%s "$OCI/blobs/sha256/$h")"
}
layers=() diffs=()
for i in 1 2 3 4 5; do
  d="$BENCH_DIR/layers/$i"; mkdir -p "$d/data$i"
  head -c $((LAYER_MB * 9 * 1024 / 10))K /dev/urandom >"$d/data$i/random"
  head -c $((LAYER_MB * 1024 / 10))K /dev/zero >"$d/data$i/zeros"
  tar -C "$d" --sort=name --owner=0 --group=0 --numeric-owner -cf "$d.tar" "data$i"
  diffs+=("\"sha256:$(sha256sum "$d.tar" | cut -c1-64)\"")
  gzip -1 -n "$d.tar"
  layers+=("$(put "$d.tar.gz" application/vnd.oci.image.layer.v1.tar+gzip)")
  rm -rf "$d"
done
arch=$(dpkg --print-architecture)
printf '{"architecture":"%s","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[%s]}}' \
  "$arch" "$(IFS=,; echo "${diffs[*]}")" >"$BENCH_DIR/config.json"
config=$(put "$BENCH_DIR/config.json" application/vnd.oci.image.config.v1+json)
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":%s,"layers":[%s]}' \
  "$config" "$(IFS=,; echo "${layers[*]}")" >"$BENCH_DIR/manifest.json"
manifest=$(put "$BENCH_DIR/manifest.json" application/vnd.oci.image.manifest.v1+json)
jq -c '{schemaVersion: 2, manifests: [. + {annotations: {"org.opencontainers.image.ref.name": "1"}}]}' \
  <<<"$manifest" >"$OCI/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' >"$OCI/oci-layout"
skopeo copy --quiet --dest-tls-verify=false "oci:$OCI:1" "docker://$REF"
total=$(du -sb "$OCI/blobs" | cut -f1)
rm -rf "$OCI"
echo "== pull $REF: 5 layers, $((total / 1048576)) MiB compressed, $RUNS rounds (median)"

B() { "$BERTH_BIN/berth" -a "$BERTHD_SOCK" "$@"; }
CB() { ctr -a "$BERTHD_SOCK" "$@"; }
CC() { ctr -a "$CONTAINERD_SOCK" "$@"; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
# measure NAME DAEMON_PID CMD...: appends wall ms and CPU ms (client + daemon) to results
declare -A wall cpu
measure() {
  local name=$1 pid=$2; shift 2
  local d0 d1 t0 t1 c
  d0=$(cpu_ticks "$pid")
  TIMEFORMAT='%U %S'
  t0=$(date +%s%N)
  c=$({ time "$@" >/dev/null; } 2>&1 | tail -n 1)
  t1=$(date +%s%N)
  d1=$(cpu_ticks "$pid")
  wall[$name]+="$(((t1 - t0) / 1000000)) "
  cpu[$name]+="$(awk -v c="$c" -v d=$((d1 - d0)) -v hz="$HZ" 'BEGIN{split(c,a," "); printf "%.0f", (a[1]+a[2])*1000 + d*1000/hz}') "
}

for r in $(seq 1 "$RUNS"); do
  measure "berth images pull -> berthd" "$BERTHD_PID" B images pull --plain-http "$REF"
  B images rm --sync "$REF" >/dev/null
  measure "ctr images pull -> berthd" "$BERTHD_PID" CB images pull --plain-http "$REF"
  B images rm --sync "$REF" >/dev/null
  measure "ctr images pull -> containerd" "$CONTAINERD_PID" CC images pull --plain-http "$REF"
  CC images rm --sync "$REF" >/dev/null
done

ref_wall=$(tr ' ' '\n' <<<"${wall[ctr images pull -> containerd]}" | grep . | median)
ref_cpu=$(tr ' ' '\n' <<<"${cpu[ctr images pull -> containerd]}" | grep . | median)
for name in "berth images pull -> berthd" "ctr images pull -> berthd" "ctr images pull -> containerd"; do
  w=$(tr ' ' '\n' <<<"${wall[$name]}" | grep . | median)
  c=$(tr ' ' '\n' <<<"${cpu[$name]}" | grep . | median)
  printf "%-34s wall %7s ms (ratio %s)   cpu %7s ms (ratio %s)\n" "$name" "$w" "$(ratio "$w" "$ref_wall")" \
    "$c" "$(ratio "$c" "$ref_cpu")"
done
