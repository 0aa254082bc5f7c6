#!/usr/bin/env bash
# One entry point for Slipway's benchmarks (`make bench`): installs what it needs, builds release,
# prints the ingest comparison against adnanh/webhook and the pipeline overhead.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh bench
swift build -c release
Benchmarks/compare.py "${BENCH_SECONDS:-10}" 1,32,256
if [ -f .test-env/env ] || scripts/test-env.sh; then
  Benchmarks/pipeline.py "${BENCH_RUNS:-20}"
fi
