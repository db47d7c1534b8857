#!/usr/bin/env bash
# Content store throughput: ingest and read back a 1 GiB blob through containerd's own ctr,
# against berthd and against containerd, interleaved in one run; plus each daemon's peak RSS.
# Usage: bench/content.sh [RUNS (default 3)] [SIZE_MIB (default 1024)]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUNS="${1:-3}"
SIZE_MIB="${2:-1024}"

echo "== generating ${SIZE_MIB} MiB of random data"
head -c "$((SIZE_MIB << 20))" /dev/urandom >"$BENCH_DIR/blob"
DIGEST="sha256:$(sha256sum "$BENCH_DIR/blob" | cut -d' ' -f1)"
start_berthd
start_containerd

declare -A ingest_ms read_ms
one_run() {  # name sock
  local name=$1 sock=$2 t0 t1 t2
  sync
  t0=$(now_ns)
  ctr -a "$sock" -n bench content ingest "bench-$RANDOM" <"$BENCH_DIR/blob" >/dev/null
  t1=$(now_ns)
  ctr -a "$sock" -n bench content get "$DIGEST" >/dev/null
  t2=$(now_ns)
  ingest_ms[$name]+="$(( (t1 - t0) / 1000000 )) "
  read_ms[$name]+="$(( (t2 - t1) / 1000000 )) "
  # Remove it so the next ingest writes the bytes again (both daemons collect on delete).
  ctr -a "$sock" -n bench content rm "$DIGEST" >/dev/null
  sleep 1
}

for i in $(seq 1 "$RUNS"); do
  echo "== run $i/$RUNS"
  one_run berthd "$BERTHD_SOCK"
  one_run containerd "$CONTAINERD_SOCK"
done

report() {  # name pid
  local ing rd
  ing=$(tr ' ' '\n' <<<"${ingest_ms[$1]}" | grep . | median)
  rd=$(tr ' ' '\n' <<<"${read_ms[$1]}" | grep . | median)
  printf '%-11s ingest %6s ms (%4s MB/s)   read %6s ms (%4s MB/s)   peak RSS %6s KiB\n' "$1" \
    "$ing" "$(awk -v s="$SIZE_MIB" -v t="$ing" 'BEGIN{printf "%.0f", s*1.048576/(t/1000)}')" \
    "$rd" "$(awk -v s="$SIZE_MIB" -v t="$rd" 'BEGIN{printf "%.0f", s*1.048576/(t/1000)}')" "$(hwm_kib "$2")"
  eval "${1}_ingest=$ing ${1}_read=$rd"
}
echo
echo "== ${SIZE_MIB} MiB blob, median of $RUNS runs, client: containerd's ctr"
report berthd "$BERTHD_PID"
report containerd "$CONTAINERD_PID"
echo "ratio (berthd time / containerd time): ingest $(ratio "$berthd_ingest" "$containerd_ingest")  read $(ratio "$berthd_read" "$containerd_read")"
