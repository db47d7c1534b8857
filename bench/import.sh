#!/usr/bin/env bash
# Image import + unpack throughput, berthd vs containerd in one run, overlayfs and native:
#   big     a ~200 MB image of 5 gzip layers (incompressible data, so the work is hashing,
#           decompressing and writing)
#   small   one layer of 20,000 small files (the work is creating files)
# Both are OCI archives built here. Each run imports into a fresh namespace (content sharing
# off on both daemons) so every byte is ingested and applied again. Clients: containerd's ctr for
# both daemons (same client, so the daemons are compared), and berth's own import against berthd.
# Usage: bench/import.sh [RUNS (default 3)] [MB (default 200)] [FILES (default 20000)]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUNS="${1:-3}"
MB="${2:-200}"
FILES="${3:-20000}"

start_berthd $'[plugins."io.containerd.metadata.v1.rocksdb"]\ncontent_sharing_policy = "isolated"'
start_containerd $'[plugins."io.containerd.metadata.v1.bolt"]\ncontent_sharing_policy = "isolated"'

# make_archive OUT NAME LAYER.tar... : an OCI layout tar with gzip layers.
make_archive() {
  local out=$1 name=$2 dir layer gz diff digest size diffs="" layers=""
  shift 2
  dir=$(mktemp -d "$BENCH_DIR/layout.XXXXXX")
  mkdir -p "$dir/blobs/sha256"
  for layer in "$@"; do
    diff=$(sha256sum "$layer" | cut -d' ' -f1)
    gzip -1 -c "$layer" >"$dir/tmp.gz"
    digest=$(sha256sum "$dir/tmp.gz" | cut -d' ' -f1)
    size=$(stat -c %s "$dir/tmp.gz")
    mv "$dir/tmp.gz" "$dir/blobs/sha256/$digest"
    diffs+="${diffs:+,}\"sha256:$diff\""
    layers+="${layers:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$digest\",\"size\":$size}"
  done
  blob() {  # JSON -> prints "digest size"
    local d
    d=$(printf '%s' "$1" | sha256sum | cut -d' ' -f1)
    printf '%s' "$1" >"$dir/blobs/sha256/$d"
    echo "$d ${#1}"
  }
  local config manifest c m
  config="{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[$diffs]}}"
  read -r c csize < <(blob "$config")
  manifest="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$c\",\"size\":$csize},\"layers\":[$layers]}"
  read -r m msize < <(blob "$manifest")
  echo '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci-layout"
  echo "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$m\",\"size\":$msize,\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"},\"annotations\":{\"io.containerd.image.name\":\"$name\"}}]}" >"$dir/index.json"
  tar -C "$dir" -cf "$out" oci-layout index.json blobs
  rm -rf "$dir"
}

echo "== building images ($MB MB in 5 layers; $FILES small files)"
per=$((MB / 5))
big_layers=()
for l in 1 2 3 4 5; do
  mkdir -p "$BENCH_DIR/src$l"
  head -c "${per}M" /dev/urandom >"$BENCH_DIR/src$l/data$l"
  tar -C "$BENCH_DIR/src$l" -cf "$BENCH_DIR/layer$l.tar" .
  rm -rf "$BENCH_DIR/src$l"
  big_layers+=("$BENCH_DIR/layer$l.tar")
done
make_archive "$BENCH_DIR/big.tar" bench/big:1 "${big_layers[@]}"
rm -f "${big_layers[@]}"
mkdir -p "$BENCH_DIR/small/d0"
for i in $(seq 1 "$FILES"); do
  [[ $((i % 1000)) -eq 0 ]] && mkdir -p "$BENCH_DIR/small/d$((i / 1000))"
  head -c $((i % 2048 + 1)) /dev/zero >"$BENCH_DIR/small/d$((i / 1000))/f$i"
done
tar -C "$BENCH_DIR/small" -cf "$BENCH_DIR/small.tar" .
rm -rf "$BENCH_DIR/small"
make_archive "$BENCH_DIR/smallimg.tar" bench/small:1 "$BENCH_DIR/small.tar"
rm -f "$BENCH_DIR/small.tar"
to_mb() { awk -v b="$(stat -c %s "$1")" 'BEGIN{ printf "%.1f", b / 1048576 }'; }
big_mb=$(to_mb "$BENCH_DIR/big.tar")
small_mb=$(to_mb "$BENCH_DIR/smallimg.tar")

declare -A ms
ns=0
timed() {  # key command...
  local key=$1 t0 t1
  shift
  sync
  t0=$(now_ns)
  "$@" >/dev/null
  t1=$(now_ns)
  ms[$key]+="$(( (t1 - t0) / 1000000 )) "
}
for run in $(seq 1 "$RUNS"); do
  for img in big smallimg; do
    for sn in overlayfs native; do
      ns=$((ns + 1))
      timed "$img/$sn/ctr-containerd" ctr -a "$CONTAINERD_SOCK" -n "b$ns" images import \
        --snapshotter "$sn" "$BENCH_DIR/$img.tar"
      ns=$((ns + 1))
      timed "$img/$sn/ctr-berthd" ctr -a "$BERTHD_SOCK" -n "b$ns" images import \
        --snapshotter "$sn" "$BENCH_DIR/$img.tar"
      ns=$((ns + 1))
      timed "$img/$sn/berth-berthd" "$BERTH_BIN/berth" -a "$BERTHD_SOCK" -n "b$ns" images import \
        -q --snapshotter "$sn" "$BENCH_DIR/$img.tar"
    done
  done
done

med() { tr ' ' '\n' <<<"$1" | grep . | median; }
mbps() { awk -v mb="$1" -v ms="$2" 'BEGIN{ if (ms == 0) print "NA"; else printf "%.1f", mb * 1000 / ms }'; }
echo
echo "== import + unpack, median of $RUNS (ms, MB/s of the archive); ratio = berthd / containerd time"
printf '%-28s %12s %12s %12s %7s %7s\n' image/snapshotter "ctr→containerd" "ctr→berthd" "berth→berthd" ratio ratio2
for img in big smallimg; do
  size=$big_mb
  [[ $img == smallimg ]] && size=$small_mb
  for sn in overlayfs native; do
    c=$(med "${ms[$img/$sn/ctr-containerd]}")
    b=$(med "${ms[$img/$sn/ctr-berthd]}")
    o=$(med "${ms[$img/$sn/berth-berthd]}")
    printf '%-28s %6s %5s %6s %5s %6s %5s %7s %7s\n' "$img ($size MB)/$sn" "$c" "$(mbps "$size" "$c")" \
      "$b" "$(mbps "$size" "$b")" "$o" "$(mbps "$size" "$o")" "$(ratio "$b" "$c")" "$(ratio "$o" "$c")"
  done
done
echo "ratio: ctr→berthd vs ctr→containerd; ratio2: berth→berthd vs ctr→containerd (lower is better)"
echo "daemon peak RSS (KiB): berthd $(hwm_kib "$BERTHD_PID")  containerd $(hwm_kib "$CONTAINERD_PID")"
