#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (labels unit, privileged, e2e).
# Run as root: privileged tests skip themselves otherwise. Extra arguments go to ctest,
# e.g. scripts/test.sh -L unit   or   scripts/test.sh -R DaemonTest
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

"$ROOT/scripts/setup.sh"

cd "$ROOT/build"
ctest --output-on-failure --timeout 600 -j "${BERTH_TEST_JOBS:-2}" "$@"
