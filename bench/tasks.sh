#!/usr/bin/env bash
# Containers end to end, berthd + berth-shim vs containerd + containerd-shim-runc-v2 + runc, in one
# run (see TARGETS.md):
#   run --rm IMG /bin/true, client to container gone, median of RUNS, interleaved:
#     berth run --rm -> berthd;  ctr run --rm (runtime io.containerd.berth.v1) -> berthd;
#     ctr run --rm -> containerd (runc)
#   50 containers started in parallel (run -d), until all RUNNING; then kill + delete them
#   daemon RSS idle and with 50 running; shim RSS (one alone) and PSS/RSS each with 50
#   daemon restart (kill -9) with 50 running tasks, until all are listed again
# Usage: bench/tasks.sh [RUNS (default 30)] [PARALLEL (default 50)]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUNS="${1:-30}"
PAR="${2:-50}"
IMG=bench.local/busybox:1

start_berthd
start_containerd
B() { "$BERTH_BIN/berth" -a "$BERTHD_SOCK" "$@"; }
CB() { ctr -a "$BERTHD_SOCK" "$@"; }
CC() { ctr -a "$CONTAINERD_SOCK" "$@"; }
# ctr with a deadline, so a stuck call cannot stall the whole run.
CCt() { timeout 20 ctr -a "$CONTAINERD_SOCK" "$@"; }

# One busybox image, the same bytes in both daemons.
ROOTFS="$BENCH_DIR/rootfs"
mkdir -p "$ROOTFS/bin" "$ROOTFS/proc" "$ROOTFS/sys" "$ROOTFS/dev" "$ROOTFS/tmp" "$ROOTFS/etc"
cp /bin/busybox "$ROOTFS/bin/busybox"
for a in sh true sleep; do ln -s busybox "$ROOTFS/bin/$a"; done
B images import-rootfs --force --cmd /bin/sh "$ROOTFS" "$IMG" >/dev/null
B images export "$BENCH_DIR/img.tar" "$IMG"
CC images import "$BENCH_DIR/img.tar" >/dev/null

stop_all_tasks() {
  local ids
  ids=$(B tasks ls 2>/dev/null | awk 'NR>1{print $1}') || true
  for id in $ids; do B tasks rm -f "$id" >/dev/null 2>&1 || true; done
  for id in $(B containers ls -q 2>/dev/null); do B containers rm "$id" >/dev/null 2>&1 || true; done
  ids=$(CCt tasks ls 2>/dev/null | awk 'NR>1{print $1}') || true
  for id in $ids; do CCt tasks kill -s KILL "$id" >/dev/null 2>&1 || true; done
  sleep 0.3
  for id in $ids; do CCt tasks rm -f "$id" >/dev/null 2>&1 || true; done
  for id in $(CCt containers ls -q 2>/dev/null); do CCt containers rm "$id" >/dev/null 2>&1 || true; done
}
# What a daemon that hung leaves: its shims (and their containers), mounts under BENCH_DIR, runc
# state of containerd's containers (kept in the global /run/containerd/runc) and cgroups.
reap_leftovers() {
  local p c id m
  for p in $(shim_pids "$BENCH_DIR" berth-shim) $(shim_pids "$BENCH_DIR" containerd-shim-runc-v2); do
    for c in $(pgrep -P "$p"); do kill -KILL "$c" 2>/dev/null || true; done
    kill -KILL "$p" 2>/dev/null || true
  done
  for m in $(awk -v d="$BENCH_DIR" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  for id in csolo $(seq -f 'q%g' 1 "$PAR") $(seq -f 'r%g' 1 "$RUNS"); do
    [[ -d /run/containerd/runc/default/$id ]] && runc --root /run/containerd/runc/default delete -f "$id" >/dev/null 2>&1
    for c in /sys/fs/cgroup/*/default/"$id"; do [[ -d $c ]] && rmdir "$c" 2>/dev/null; done
  done
  true
}
trap 'stop_all_tasks; reap_leftovers; bench_cleanup' EXIT

now_us() { t=${EPOCHREALTIME/./}; }
pss_kib() { awk '/^Pss:/{print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
shim_pids() {  # daemon socket, shim name
  local p
  for p in $(pgrep -f "$2"); do
    tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q -- "$1" && echo "$p"
  done
}
avg() { awk '{s+=$1; n++} END{ if (n) printf "%.0f", s/n; else print "NA" }'; }

echo "== run --rm $IMG /bin/true, $RUNS runs each, interleaved (ms, median)"
declare -A ms
for i in $(seq 1 "$RUNS"); do
  now_us; t0=$t
  B run --rm "$IMG" "b$i" /bin/true || { echo "berth run failed" >&2; exit 1; }
  now_us; ms[berth]+="$(((t - t0) / 1000)) "
  now_us; t0=$t
  CB run --rm --runtime io.containerd.berth.v1 "$IMG" "c$i" /bin/true || { echo "ctr -> berthd failed" >&2; exit 1; }
  now_us; ms[ctr_berthd]+="$(((t - t0) / 1000)) "
  now_us; t0=$t
  CC run --rm "$IMG" "r$i" /bin/true || { echo "ctr -> containerd failed" >&2; exit 1; }
  now_us; ms[containerd]+="$(((t - t0) / 1000)) "
done
berth_ms=$(tr ' ' '\n' <<<"${ms[berth]}" | grep . | median)
ctrb_ms=$(tr ' ' '\n' <<<"${ms[ctr_berthd]}" | grep . | median)
cd_ms=$(tr ' ' '\n' <<<"${ms[containerd]}" | grep . | median)
printf "%-44s %8s ms   ratio vs containerd+runc %s\n" "berth run --rm -> berthd (berth-shim)" "$berth_ms" "$(ratio "$berth_ms" "$cd_ms")"
printf "%-44s %8s ms   ratio vs containerd+runc %s\n" "ctr run --rm -> berthd (berth-shim)" "$ctrb_ms" "$(ratio "$ctrb_ms" "$cd_ms")"
printf "%-44s %8s ms\n" "ctr run --rm -> containerd (runc shim + runc)" "$cd_ms"

echo
echo "== one container running: shim RSS"
# Distinct ids per daemon: both put containers under the cgroup /default/<id>.
B run -d "$IMG" bsolo sleep 1000
CC run -d "$IMG" csolo sleep 1000
sleep 0.5
bs=$(shim_pids "$BERTHD_SOCK" berth-shim | head -1)
cs=$(shim_pids "$CONTAINERD_SOCK" containerd-shim-runc-v2 | head -1)
printf "%-44s %8s KiB   ratio %s\n" "berth-shim RSS" "$(rss_kib "$bs")" "$(ratio "$(rss_kib "$bs")" "$(rss_kib "$cs")")"
printf "%-44s %8s KiB\n" "containerd-shim-runc-v2 RSS" "$(rss_kib "$cs")"
B tasks rm -f bsolo >/dev/null && B containers rm bsolo >/dev/null
CC tasks kill -s KILL csolo >/dev/null; sleep 0.3; CC tasks rm -f csolo >/dev/null; CC containers rm csolo >/dev/null
berthd_idle=$(rss_kib "$BERTHD_PID")
containerd_idle=$(rss_kib "$CONTAINERD_PID")

all_running() {  # tasks-ls-command... ; counts RUNNING rows
  "$@" tasks ls 2>/dev/null | awk '$3=="RUNNING"' | wc -l
}
parallel_start() {  # id-prefix command...
  local prefix=$1
  shift
  now_us; local t0=$t
  for i in $(seq 1 "$PAR"); do "$@" "$IMG" "$prefix$i" sleep 1000 >/dev/null 2>&1 & done
  wait
  now_us
  echo $(((t - t0) / 1000))
}
echo
echo "== $PAR containers started in parallel (run -d), until all RUNNING (ms)"
b_start=$(parallel_start p B run -d)
[[ $(all_running B) -eq $PAR ]] || { echo "berthd: not all $PAR running" >&2; B tasks ls >&2; exit 1; }
c_start=$(parallel_start q CC run -d)
[[ $(all_running CC) -eq $PAR ]] || { echo "containerd: not all $PAR running" >&2; exit 1; }
printf "%-44s %8s ms   ratio %s\n" "berthd" "$b_start" "$(ratio "$b_start" "$c_start")"
printf "%-44s %8s ms\n" "containerd" "$c_start"

sleep 1
echo
echo "== memory with $PAR running"
mapfile -t bsh < <(shim_pids "$BERTHD_SOCK" berth-shim)
mapfile -t csh < <(shim_pids "$CONTAINERD_SOCK" containerd-shim-runc-v2)
b_pss=$(for p in "${bsh[@]}"; do pss_kib "$p"; done | avg)
c_pss=$(for p in "${csh[@]}"; do pss_kib "$p"; done | avg)
b_rss=$(for p in "${bsh[@]}"; do rss_kib "$p"; done | avg)
c_rss=$(for p in "${csh[@]}"; do rss_kib "$p"; done | avg)
printf "%-44s %8s KiB   ratio %s\n" "berthd RSS idle" "$berthd_idle" "$(ratio "$berthd_idle" "$containerd_idle")"
printf "%-44s %8s KiB\n" "containerd RSS idle" "$containerd_idle"
printf "%-44s %8s KiB   ratio %s\n" "berthd RSS with $PAR" "$(rss_kib "$BERTHD_PID")" "$(ratio "$(rss_kib "$BERTHD_PID")" "$(rss_kib "$CONTAINERD_PID")")"
printf "%-44s %8s KiB\n" "containerd RSS with $PAR" "$(rss_kib "$CONTAINERD_PID")"
printf "%-44s %8s KiB   ratio %s   (%d shims)\n" "berth-shim PSS each" "$b_pss" "$(ratio "$b_pss" "$c_pss")" "${#bsh[@]}"
printf "%-44s %8s KiB   (%d shims)\n" "containerd-shim-runc-v2 PSS each" "$c_pss" "${#csh[@]}"
printf "%-44s %8s KiB   ratio %s\n" "berth-shim RSS each" "$b_rss" "$(ratio "$b_rss" "$c_rss")"
printf "%-44s %8s KiB\n" "containerd-shim-runc-v2 RSS each" "$c_rss"

echo
echo "== daemon kill -9 and restart with $PAR running, until all listed (ms)"
restart_berthd() {
  kill -KILL "$BERTHD_PID"
  wait "$BERTHD_PID" 2>/dev/null || true
  now_us; local t0=$t
  local dir="$BENCH_DIR/berthd"
  "$BERTH_BIN/berthd" --config "$dir/config.toml" --root "$dir/root" --state "$dir/state" \
    --address "$BERTHD_SOCK" --log-level warn >>"$dir/log" 2>&1 &
  BERTHD_PID=$!
  BENCH_PIDS+=("$BERTHD_PID")
  until [[ $(all_running B) -eq $PAR ]]; do sleep 0.01; done
  now_us
  b_restart=$(((t - t0) / 1000))
}
restart_containerd() {
  kill -KILL "$CONTAINERD_PID"
  wait "$CONTAINERD_PID" 2>/dev/null || true
  now_us; local t0=$t
  local dir="$BENCH_DIR/containerd"
  containerd --config "$dir/config.toml" --log-level warn >>"$dir/log" 2>&1 &
  CONTAINERD_PID=$!
  BENCH_PIDS+=("$CONTAINERD_PID")
  until [[ $(all_running CC) -eq $PAR ]]; do sleep 0.01; done
  now_us
  c_restart=$(((t - t0) / 1000))
}
# Called directly (not in $(...)): the new daemons' PIDs must reach the cleanup.
restart_berthd
restart_containerd
printf "%-44s %8s ms   ratio %s\n" "berthd" "$b_restart" "$(ratio "$b_restart" "$c_restart")"
printf "%-44s %8s ms\n" "containerd" "$c_restart"

echo
echo "== kill + delete the $PAR (ms)"
now_us; t0=$t
# Wait for these jobs only: a bare `wait` would also wait for the daemons started in the background.
jobs_=()
for i in $(seq 1 "$PAR"); do (B tasks rm -f "p$i" >/dev/null && B containers rm "p$i" >/dev/null) & jobs_+=($!); done
wait "${jobs_[@]}"
now_us; b_del=$(((t - t0) / 1000))
now_us; t0=$t
jobs_=()
for i in $(seq 1 "$PAR"); do
  (CCt tasks kill -s KILL "q$i" >/dev/null 2>&1
   for _ in $(seq 1 100); do CCt tasks rm "q$i" >/dev/null 2>&1 && break; sleep 0.02; done
   CCt containers rm "q$i" >/dev/null || touch "$BENCH_DIR/ctr-failed") &
  jobs_+=($!)
done
wait "${jobs_[@]}"
now_us; c_del=$(((t - t0) / 1000))
if [[ -e $BENCH_DIR/ctr-failed ]]; then
  echo "(containerd: some ctr calls failed or timed out; its time is not comparable)"
  c_del=NA
fi
printf "%-44s %8s ms   ratio %s\n" "berthd" "$b_del" "$(ratio "$b_del" "$c_del")"
printf "%-44s %8s ms\n" "containerd" "$c_del"
