#!/usr/bin/env bash
# OCI runtime latency on one busybox bundle, berth-runtime vs runc vs crun, interleaved in one run:
#   run /bin/true (create + start + wait + delete in one command), median of RUNS
#   create, start, delete as separate commands, medians
#   peak RSS of the runtime process during create (GNU time's %M)
# Two views, as in TARGETS.md: the host as it is (hybrid: berth-runtime vs runc; crun 1.8 refuses
# a cgroup2 mount with controllers), then a private mount namespace with /sys/fs/cgroup/unified
# unmounted (pure v1: all three). The host's mounts are not touched.
# Usage: bench/runtime.sh [RUNS (default 50)]
SCRIPT="$(readlink -f "$0")"
if [[ "${1:-}" == --inner-legacy ]]; then
  shift
  umount /sys/fs/cgroup/unified
  VIEW=legacy
else
  VIEW=host
fi
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUNS="${1:-50}"
RUNTIMES=(berth runc)
[[ $VIEW == legacy ]] && RUNTIMES=(berth runc crun)
command -v runc >/dev/null || { echo "runc is not installed (scripts/setup.sh)" >&2; exit 1; }
command -v crun >/dev/null || { echo "crun is not installed (scripts/setup.sh)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "GNU time is needed for RSS (apt-get install time)" >&2; exit 1; }

BUNDLE="$BENCH_DIR/bundle"
mkdir -p "$BUNDLE/rootfs/bin" "$BUNDLE/rootfs/proc" "$BUNDLE/rootfs/dev" "$BUNDLE/rootfs/sys"
cp /bin/busybox "$BUNDLE/rootfs/bin/busybox"
ln -s busybox "$BUNDLE/rootfs/bin/true"
(cd "$BUNDLE" && runc spec)
sed -i -e 's/"terminal": true/"terminal": false/' -e 's/"sh"$/"\/bin\/true"/' "$BUNDLE/config.json"
grep -q '"/bin/true"' "$BUNDLE/config.json" || { echo "could not edit the spec" >&2; exit 1; }

declare -A ROOTS=([berth]="$BENCH_DIR/state-berth" [runc]="$BENCH_DIR/state-runc" [crun]="$BENCH_DIR/state-crun")
rt() {  # name args...
  local name=$1
  shift
  case $name in
    berth) "$BERTH_BIN/berth-runtime" --root "${ROOTS[berth]}" "$@" ;;
    runc) runc --root "${ROOTS[runc]}" "$@" ;;
    crun) crun --root "${ROOTS[crun]}" "$@" ;;
  esac
}
cleanup_containers() {
  local name
  for name in berth runc crun; do rt "$name" delete --force bench >/dev/null 2>&1 || true; done
}
trap 'cleanup_containers; bench_cleanup' EXIT

declare -A run_ms create_ms start_ms delete_ms rss_kb
# Microseconds from bash itself (no subprocess, so the timing is the runtime's alone).
now_us() { t=${EPOCHREALTIME/./}; }
cd "$BUNDLE"
for i in $(seq 1 "$RUNS"); do
  for name in "${RUNTIMES[@]}"; do
    now_us; t0=$t
    rt "$name" run bench >/dev/null 2>&1 || { echo "$name run failed" >&2; rt "$name" run bench; exit 1; }
    now_us; run_ms[$name]+="$((t - t0)) "
    now_us; t0=$t
    rt "$name" create bench </dev/null >/dev/null 2>&1
    now_us; create_ms[$name]+="$((t - t0)) "
    now_us; t0=$t
    rt "$name" start bench >/dev/null 2>&1
    now_us; start_ms[$name]+="$((t - t0)) "
    sleep 0.01
    now_us; t0=$t
    rt "$name" delete --force bench >/dev/null 2>&1
    now_us; delete_ms[$name]+="$((t - t0)) "
  done
done
rss_of() {  # name command...: peak RSS (KiB) of `command create`
  local name=$1
  shift
  # Into a file: the container's init keeps our stdio open.
  /usr/bin/time -o "$BENCH_DIR/rss" -f '%M' "$@" create bench </dev/null >/dev/null 2>&1 || true
  cat "$BENCH_DIR/rss"
  rt "$name" delete --force bench >/dev/null 2>&1 || true
}
rss_kb[berth]=$(rss_of berth "$BERTH_BIN/berth-runtime" --root "${ROOTS[berth]}")
rss_kb[runc]=$(rss_of runc runc --root "${ROOTS[runc]}")
[[ $VIEW == legacy ]] && rss_kb[crun]=$(rss_of crun crun --root "${ROOTS[crun]}")

med() {  # microsecond list -> median in ms
  [[ -n "${1// /}" ]] || { echo NA; return; }
  tr ' ' '\n' <<<"$1" | grep . | median | awk '{ printf "%.1f", $1 / 1000 }'
}
echo "== $VIEW view: OCI runtime on a busybox bundle, medians of $RUNS (ms); ratio = berth-runtime / peer"
printf '%-10s %12s %8s %8s %14s %14s\n' step berth-runtime runc crun "ratio vs runc" "ratio vs crun"
for step in run create start delete; do
  unset -n arr 2>/dev/null || true
  declare -n arr="${step}_ms"
  b=$(med "${arr[berth]}"); r=$(med "${arr[runc]}"); c=$(med "${arr[crun]:-}")
  printf '%-10s %12s %8s %8s %14s %14s\n' "$step" "$b" "$r" "$c" "$(ratio "$b" "$r")" "$(ratio "$b" "$c")"
done
echo "peak RSS of the create command (KiB): berth-runtime ${rss_kb[berth]}  runc ${rss_kb[runc]}  crun ${rss_kb[crun]:-NA}"
if [[ $VIEW == host ]]; then
  echo
  unshare -m --propagation private bash "$SCRIPT" --inner-legacy "$RUNS"
fi
