# Shared helpers for the benchmark scripts: private berthd and containerd instances, timing,
# statistics. Each daemon is started with its own root, state and socket under $BENCH_DIR and is
# stopped by PID when the script exits.
set -euo pipefail

BERTH_ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BERTH_BIN="$BERTH_ROOT_DIR/build/bin"
BENCH_DIR="${BENCH_DIR:-$(mktemp -d /tmp/berth-bench.XXXXXX)}"
BENCH_PIDS=()

bench_cleanup() {
  local pid
  for pid in "${BENCH_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${BENCH_PIDS[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$BENCH_DIR"
}
trap bench_cleanup EXIT

[[ $(id -u) -eq 0 ]] || { echo "benchmarks run as root" >&2; exit 1; }
command -v containerd >/dev/null || { echo "containerd is not installed (scripts/setup.sh)" >&2; exit 1; }

now_ns() { date +%s%N; }
rss_kib() { awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kib() { awk '/^VmHWM:/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
median() { sort -n | awk '{a[NR]=$1} END{ if (NR==0) {print "NA"; exit} print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2 }'; }

wait_socket() {  # path pid
  for _ in $(seq 1 200); do
    [[ -S "$1" ]] && return 0
    kill -0 "$2" 2>/dev/null || { echo "daemon $2 died" >&2; return 1; }
    sleep 0.05
  done
  echo "socket $1 did not appear" >&2
  return 1
}

# start_berthd [EXTRA_TOML]: sets BERTHD_PID and BERTHD_SOCK
start_berthd() {
  local dir="$BENCH_DIR/berthd"
  mkdir -p "$dir"
  BERTHD_SOCK="$dir/berth.sock"
  printf 'version = 2\n%s\n' "${1:-}" >"$dir/config.toml"
  "$BERTH_BIN/berthd" --config "$dir/config.toml" --root "$dir/root" --state "$dir/state" \
    --address "$BERTHD_SOCK" --log-level warn >"$dir/log" 2>&1 &
  BERTHD_PID=$!
  BENCH_PIDS+=("$BERTHD_PID")
  wait_socket "$BERTHD_SOCK" "$BERTHD_PID"
}

# start_containerd [EXTRA_TOML]: sets CONTAINERD_PID and CONTAINERD_SOCK
start_containerd() {
  local dir="$BENCH_DIR/containerd"
  mkdir -p "$dir"
  CONTAINERD_SOCK="$dir/containerd.sock"
  cat >"$dir/config.toml" <<CFG
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"
${1:-}
CFG
  containerd --config "$dir/config.toml" --log-level warn >"$dir/log" 2>&1 &
  CONTAINERD_PID=$!
  BENCH_PIDS+=("$CONTAINERD_PID")
  wait_socket "$CONTAINERD_SOCK" "$CONTAINERD_PID"
}

# ratio A B -> A/B with 2 decimals
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b == 0 || a == "NA" || b == "NA") print "NA"; else printf "%.2f", a / b }'; }
