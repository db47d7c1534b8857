#!/usr/bin/env bash
# What networking costs a container, Berth vs containerd, interleaved in one run:
#   berth run --rm --net berth IMG true   -> berthd (CNI in the daemon: bridge, portmap, firewall,
#                                            tuning + the loopback network)
#   ctr run --rm --cni IMG true           -> containerd (CNI in ctr: the same conflist)
# and both without a network, so the set-up cost of networking shows as the difference.
# The bench owns everything it makes: bridges bbench0/cbench0 on 10.231.250.0/24 and
# 10.231.251.0/24 (no masquerade), host-local leases under its temp dir, the conflist ctr reads
# (/etc/cni/net.d/00-berth-bench.conflist, the first one ctr picks), the iptables chains the
# plugins made if they were not there before, and ip_forward.
# Usage: bench/network.sh [RUNS (default 20)]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUNS="${1:-20}"
IMG=bench.local/busybox:1
[[ -x /usr/lib/cni/bridge ]] || { echo "containernetworking-plugins is missing (scripts/setup.sh)" >&2; exit 1; }

CTR_CONF_DIR=/etc/cni/net.d
CTR_CONF="$CTR_CONF_DIR/00-berth-bench.conflist"
[[ -e $CTR_CONF ]] && { echo "$CTR_CONF exists: another bench is running?" >&2; exit 1; }
made_conf_dir=0
[[ -d $CTR_CONF_DIR ]] || made_conf_dir=1
ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)
chains_before=$(for t in filter nat mangle; do iptables-save -t $t | awk -v t=$t '/^:/{print t, substr($1, 2)}'; done)

network_cleanup() {
  rm -f "$CTR_CONF"
  ((made_conf_dir)) && rmdir "$CTR_CONF_DIR" /etc/cni 2>/dev/null
  ip link del bbench0 2>/dev/null || true
  ip link del cbench0 2>/dev/null || true
  local t c line
  while read -r t c; do
    grep -qx "$t $c" <<<"$chains_before" && continue
    iptables-save -t "$t" | grep -- "-j $c\b" | grep '^-A' | while read -r line; do
      eval "iptables -w -t $t -D ${line#-A }" 2>/dev/null || true
    done
    iptables -w -t "$t" -F "$c" 2>/dev/null || true
  done < <(for t in filter nat mangle; do iptables-save -t $t | awk -v t=$t '/^:/{print t, substr($1, 2)}'; done)
  while read -r t c; do
    grep -qx "$t $c" <<<"$chains_before" || iptables -w -t "$t" -X "$c" 2>/dev/null || true
  done < <(for t in filter nat mangle; do iptables-save -t $t | awk -v t=$t '/^:/{print t, substr($1, 2)}'; done)
  echo "$ip_forward" >/proc/sys/net/ipv4/ip_forward
}
trap 'network_cleanup; bench_cleanup' EXIT

start_berthd "[plugins.\"io.berth.network.v1.cni\"]
  conf_dir = \"$BENCH_DIR/berth-net.d\"
  default_bridge = \"bbench0\"
  default_subnet = \"10.231.250.0/24\"
  default_masquerade = false"
start_containerd
B() { "$BERTH_BIN/berth" -a "$BERTHD_SOCK" "$@"; }
CC() { timeout 30 ctr -a "$CONTAINERD_SOCK" "$@"; }

mkdir -p "$CTR_CONF_DIR"
cat >"$CTR_CONF" <<JSON
{"cniVersion":"1.0.0","name":"bench","plugins":[
  {"type":"bridge","bridge":"cbench0","isGateway":true,"ipMasq":false,"hairpinMode":true,
   "ipam":{"type":"host-local","dataDir":"$BENCH_DIR/ctr-ipam","ranges":[[{"subnet":"10.231.251.0/24"}]],
           "routes":[{"dst":"0.0.0.0/0"}]}},
  {"type":"portmap","capabilities":{"portMappings":true}},
  {"type":"firewall"},{"type":"tuning"}]}
JSON

ROOTFS="$BENCH_DIR/rootfs"
mkdir -p "$ROOTFS/bin" "$ROOTFS/proc" "$ROOTFS/sys" "$ROOTFS/dev" "$ROOTFS/tmp" "$ROOTFS/etc"
cp /bin/busybox "$ROOTFS/bin/busybox"
for a in sh true; do ln -s busybox "$ROOTFS/bin/$a"; done
B images import-rootfs --force --cmd /bin/sh "$ROOTFS" "$IMG" >/dev/null
B images export "$BENCH_DIR/img.tar" "$IMG"
CC images import "$BENCH_DIR/img.tar" >/dev/null

declare -A ms
now_us() { t=${EPOCHREALTIME/./}; }
timed() {  # key command...
  local key=$1
  shift
  now_us; local t0=$t
  "$@" >/dev/null 2>"$BENCH_DIR/err" || { echo "$key failed:" >&2; cat "$BENCH_DIR/err" >&2; exit 1; }
  now_us; ms[$key]+="$(((t - t0) / 1000)) "
}
# warm-up, then interleaved A B A B
B run --rm --net berth "$IMG" w1 true >/dev/null
CC run --rm --cni "$IMG" w2 true >/dev/null
for i in $(seq 1 "$RUNS"); do
  timed berth_net B run --rm --net berth "$IMG" "bn$i" true
  timed ctr_cni CC run --rm --cni "$IMG" "cn$i" true
  timed berth_none B run --rm "$IMG" "bo$i" true
  timed ctr_none CC run --rm "$IMG" "co$i" true
done

# Nothing may be left of the containers' networks.
left=$(ip -o link show master bbench0 2>/dev/null; ip -o link show master cbench0 2>/dev/null)
[[ -z $left ]] || echo "warning: veths left: $left" >&2

med() { tr ' ' '\n' <<<"${ms[$1]}" | grep . | median; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN{print a - b}'; }
bn=$(med berth_net); cn=$(med ctr_cni); bo=$(med berth_none); co=$(med ctr_none)
echo "# network set-up cost, median of $RUNS runs (ms), interleaved"
printf '%-44s %8s %8s %6s\n' scenario Berth containerd ratio
printf '%-44s %8s %8s %6s\n' "run --rm, CNI bridge (berth --net / ctr --cni)" "$bn" "$cn" "$(ratio "$bn" "$cn")"
printf '%-44s %8s %8s %6s\n' "run --rm, no network" "$bo" "$co" "$(ratio "$bo" "$co")"
printf '%-44s %8s %8s %6s\n' "networking's own cost (difference)" "$(minus "$bn" "$bo")" "$(minus "$cn" "$co")" "$(ratio "$(minus "$bn" "$bo")" "$(minus "$cn" "$co")")"
