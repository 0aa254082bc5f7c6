#!/usr/bin/env bash
# One entry point for Slipway's benchmarks (`make bench`): installs what it needs, builds release,
# and prints every table of Benchmarks/README.md: the ingest comparison against adnanh/webhook,
# cost growth at 10k/100k/1M events, the footprint, and the pipeline (needs the test environment,
# which it starts). BENCH_SECONDS, BENCH_RUNS and GROWTH_SIZES shorten it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh bench
swift build -c release
echo "== ingest: Slipway vs adnanh/webhook =="
Benchmarks/compare.py "${BENCH_SECONDS:-10}" 1,32,256
echo "== cost growth =="
Benchmarks/growth.sh "${BENCH_SECONDS:-10}"
echo "== footprint =="
Benchmarks/footprint.sh 200000
echo "== idle RSS of the installed (static) binary, by section =="
swift build -c release --static-swift-stdlib --build-path .build-static
SLIPWAY_BIN=.build-static/release/slipway Benchmarks/rss-breakdown.py
echo "== pipeline =="
[ -f .test-env/env ] && [ -S /run/slipway-test/docker.sock ] || scripts/test-env.sh
Benchmarks/pipeline.py "${BENCH_RUNS:-50}"
echo "== matcher lag at peak ingest =="
Benchmarks/matcher-lag.py "${BENCH_SECONDS:-10}" 32
echo "== engines: rebuild on a warm engine, a cold one with cache: registry, a cold one without =="
Benchmarks/engine-cache.py
echo "== web page: time to first byte with 100k runs and a 100k-line log =="
Benchmarks/ui-ttfb.py
