#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for a bounded time from its seed corpus.
# Usage: tests/fuzz/run.sh BUILD_DIR [SECONDS_PER_TARGET (default 20)]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:?build dir}"
SECONDS_EACH="${2:-20}"
CC=clang CXX=clang++ cmake -S "$HERE" -B "$OUT" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
# Quiet when it builds; the compiler's output when it does not.
if ! cmake --build "$OUT" -j 2 >"$OUT/build.log" 2>&1; then
  tail -40 "$OUT/build.log"
  exit 1
fi
for target in fuzz_image_model:model fuzz_layer_apply:layer; do
  bin="${target%%:*}"
  corpus="${target##*:}"
  work="$(mktemp -d /tmp/berth-fuzz-corpus.XXXXXX)"
  scratch="$(mktemp -d /tmp/berth-fuzz-scratch.XXXXXX)"
  cp "$HERE/corpus/$corpus/"* "$work/" 2>/dev/null || true
  echo "== $bin for ${SECONDS_EACH}s"
  if ! BERTH_FUZZ_DIR="$scratch" "$OUT/$bin" -max_total_time="$SECONDS_EACH" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 "$work" 2>"$OUT/$bin.log"; then
    tail -40 "$OUT/$bin.log"
    rm -rf "$work" "$scratch"
    exit 1
  fi
  tail -3 "$OUT/$bin.log"
  rm -rf "$work" "$scratch"
done
