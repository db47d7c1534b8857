#!/usr/bin/env bash
# Berth's main job, from a fresh machine: install dependencies, build, start berthd on its default
# embedded configuration (root /var/lib/berth, state /run/berth, socket /run/berth/berth.sock),
# build a busybox image from the host's busybox-static, show it through berth and containerd's ctr,
# and run a container from it with both. Needs root.
#
# The daemon is stopped at the end; BERTH_KEEP=1 leaves it running.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ $(id -u) -ne 0 ]]; then
  echo "quickstart: berthd manages /var/lib/berth and /run/berth; run as root (sudo $0)" >&2
  exit 1
fi

"$ROOT/scripts/setup.sh"

BIN="$ROOT/build/bin"
SOCK=/run/berth/berth.sock
LOG="$(mktemp /tmp/berthd-quickstart.XXXXXX.log)"
pid=""

cleanup() {
  if [[ -n "$pid" && "${BERTH_KEEP:-0}" != 1 ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    echo "== berthd (pid $pid) stopped; its log: $LOG"
  fi
}
trap cleanup EXIT

if "$BIN/berth" -a "$SOCK" --timeout 2s version >/dev/null 2>&1; then
  echo "== a berthd is already serving $SOCK; using it"
else
  echo "== starting berthd (default configuration), log: $LOG"
  "$BIN/berthd" >"$LOG" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    [[ -S "$SOCK" ]] && "$BIN/berth" --timeout 1s version >/dev/null 2>&1 && break
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "berthd exited:" >&2
      cat "$LOG" >&2
      pid=""
      exit 1
    fi
    sleep 0.1
  done
fi

echo
echo "== berth version"
"$BIN/berth" version
echo
echo "== berth plugins ls"
"$BIN/berth" plugins ls
echo
echo "== building a busybox image from the host's busybox-static (berth images import-rootfs)"
ROOTFS="$(mktemp -d /tmp/berth-quickstart-rootfs.XXXXXX)"
mkdir -p "$ROOTFS/bin" "$ROOTFS/etc" "$ROOTFS/tmp" "$ROOTFS/proc" "$ROOTFS/sys" "$ROOTFS/dev"
cp /bin/busybox "$ROOTFS/bin/busybox"
chroot "$ROOTFS" /bin/busybox --install -s /bin
echo "root:x:0:0:root:/root:/bin/sh" >"$ROOTFS/etc/passwd"
"$BIN/berth" images import-rootfs --force --cmd /bin/sh "$ROOTFS" docker.io/library/busybox:latest
rm -rf "$ROOTFS"
echo
echo "== berth images ls"
"$BIN/berth" images ls
echo
echo "== containerd's ctr against berthd: ctr -a $SOCK images ls"
ctr -a "$SOCK" images ls
echo
echo "== berth run --rm docker.io/library/busybox:latest quickstart-\$\$ (a container through berthd and berth-shim)"
"$BIN/berth" run --rm docker.io/library/busybox:latest "quickstart-$$" \
  sh -c 'echo "hello from a Berth container: $(hostname), pid $$, $(ls /bin | wc -l) busybox applets"'
echo
echo "== the same with containerd's ctr: ctr -a $SOCK run --rm --runtime io.containerd.berth.v1 ..."
ctr -a "$SOCK" run --rm --runtime io.containerd.berth.v1 docker.io/library/busybox:latest "quickstart-ctr-$$" \
  echo "hello through ctr"
if [[ "${BERTH_KEEP:-0}" == 1 && -n "$pid" ]]; then
  echo
  echo "== berthd keeps running as pid $pid (stop it with: kill $pid)"
  pid=""
fi
