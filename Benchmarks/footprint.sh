#!/usr/bin/env bash
# Footprint: idle RSS after start, then RSS and open file descriptors as deliveries accumulate
# (32 connections in 5 s rounds of wrk) up to TARGET events; growth between the half-way mark and
# the end is what matters (a leak shows as steady growth).
#   Benchmarks/footprint.sh [target_events=200000]
# SLIPWAY_BIN picks the binary (default .build/release/slipway; the installed one is built with
# --static-swift-stdlib: `swift build -c release --static-swift-stdlib --build-path .build-static`).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:-200000}"
# One distinct body per delivery (a repeated body is a duplicate and stores nothing), with room to spare.
export BENCH_COUNT="${BENCH_COUNT:-$(( target + target / 5 + 20000 ))}"
. Benchmarks/daemon.sh
sleep 1
rss() { awk '/VmRSS/ {print $2}' /proc/$pid/status; }
fds() { ls /proc/$pid/fd | wc -l; }
events() { sqlite3 "$work/data/slipway.sqlite" 'SELECT COALESCE(MAX(seq),0) FROM events'; }
echo "| events | RSS MB | open fds |"
echo "| --- | --- | --- |"
printf '| 0 (idle) | %.1f | %s |\n' "$(echo "$(rss)/1024" | bc -l)" "$(fds)"
round=0
while [ "$(events)" -lt "$target" ]; do
  round=$((round + 1))
  BENCH_BODIES="$bodies" BENCH_THREADS=2 BENCH_OFFSET="$(( $(events) / 2 ))" BENCH_RUN="f$round-$RANDOM" \
    wrk -t2 -c32 -d5s -s Benchmarks/wrk-deliveries.lua "http://127.0.0.1:$port/webhooks/github" > /dev/null
  sleep 1   # connections closed, the matcher caught up
  now=$(events)
  printf '| %s | %.1f | %s |\n' "$now" "$(echo "$(rss)/1024" | bc -l)" "$(fds)"
  if [ "$now" = "${before:-}" ]; then
    echo "no new events in a round: the $BENCH_COUNT distinct bodies are used up (raise BENCH_COUNT)" >&2
    break
  fi
  before=$now
done
echo "peak RSS MB: $(awk '/VmHWM/ {printf "%.1f", $2/1024}' /proc/$pid/status)"
