#!/usr/bin/env bash
# Snapshot latency, berthd vs containerd in one run (overlayfs, client: containerd's ctr):
#   1. prepare + mount + umount + remove of a fresh snapshot, RUNS times (median)
#   2. a 100-layer chain: time to prepare the top and mount it (mounted with berth's mount
#      helper for both daemons, since the printed mount command of a deep chain exceeds the
#      kernel's one-page option limit)
# Usage: bench/snapshots.sh [RUNS (default 20)] [LAYERS (default 100)]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUNS="${1:-20}"
LAYERS="${2:-100}"
start_berthd
start_containerd
MNT="$BENCH_DIR/mnt"
mkdir -p "$MNT"

declare -A cycle_ms chain_ms
cycle() {  # name sock i
  local name=$1 sock=$2 i=$3 t0 t1
  t0=$(now_ns)
  ctr -a "$sock" -n bench snapshots prepare "k$i" >/dev/null
  eval "$(ctr -a "$sock" -n bench snapshots mounts "$MNT" "k$i")"
  umount "$MNT"
  ctr -a "$sock" -n bench snapshots rm "k$i"
  t1=$(now_ns)
  cycle_ms[$name]+="$(( (t1 - t0) / 1000000 )) "
}

for i in $(seq 1 "$RUNS"); do
  cycle berthd "$BERTHD_SOCK" "$i"
  cycle containerd "$CONTAINERD_SOCK" "$i"
done

build_chain() {  # sock
  local sock=$1 parent="" l
  for l in $(seq 1 "$LAYERS"); do
    ctr -a "$sock" -n bench snapshots prepare "layer$l-a" $parent >/dev/null
    ctr -a "$sock" -n bench snapshots commit "layer$l" "layer$l-a"
    parent="layer$l"
  done
}
echo "== building $LAYERS-layer chains"
build_chain "$BERTHD_SOCK"
build_chain "$CONTAINERD_SOCK"
for i in 1 2 3; do
  for d in berthd containerd; do
    sock=$BERTHD_SOCK
    [[ $d == containerd ]] && sock=$CONTAINERD_SOCK
    t0=$(now_ns)
    ctr -a "$sock" -n bench snapshots prepare "top$i" "layer$LAYERS" >/dev/null
    "$BERTH_BIN/berth" -a "$sock" -n bench snapshots mount "$MNT" "top$i"
    t1=$(now_ns)
    [[ $(ls "$MNT" | wc -l) -ge 0 ]]
    umount "$MNT"
    chain_ms[$d]+="$(( (t1 - t0) / 1000000 )) "
  done
done

med() { tr ' ' '\n' <<<"$1" | grep . | median; }
b_cycle=$(med "${cycle_ms[berthd]}"); c_cycle=$(med "${cycle_ms[containerd]}")
b_chain=$(med "${chain_ms[berthd]}"); c_chain=$(med "${chain_ms[containerd]}")
echo
echo "== overlayfs, medians (ms)        berthd   containerd   ratio"
printf 'prepare+mount+umount+remove   %7s   %10s   %5s\n' "$b_cycle" "$c_cycle" "$(ratio "$b_cycle" "$c_cycle")"
printf 'prepare+mount of %3s layers    %7s   %10s   %5s\n' "$LAYERS" "$b_chain" "$c_chain" "$(ratio "$b_chain" "$c_chain")"
echo "daemon RSS now (KiB): berthd $(rss_kib "$BERTHD_PID")  containerd $(rss_kib "$CONTAINERD_PID")"
