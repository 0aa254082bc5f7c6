#!/usr/bin/env bash
# One entry point for Slipway's benchmarks (`make bench`). Installs what it needs, builds release.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh bench
command -v bc >/dev/null || { [ "$(id -u)" -eq 0 ] && apt-get install -y -qq bc >/dev/null; }
swift build -c release
for c in 1 32 256; do
  Benchmarks/ingest.sh "$c" "${BENCH_SECONDS:-15}"
done
