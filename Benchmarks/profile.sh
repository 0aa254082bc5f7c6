#!/usr/bin/env bash
# CPU profile of the ingest path: the release daemon under wrk load (32 connections unless given),
# sampled with `perf record -g`, then the top shared objects and Slipway/Hummingbird/NIO frames.
#   Benchmarks/profile.sh [seconds=10] [connections=32]   (needs perf: apt-get install linux-perf)
#   BENCH_KEEP=/tmp/perf.data keeps the recording for `perf report -i` (the work dir is removed).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
connections="${2:-32}"
command -v perf >/dev/null || { echo "perf is missing: apt-get install linux-perf" >&2; exit 1; }
. Benchmarks/daemon.sh
threads=$(( connections < 2 ? 1 : 2 ))
BENCH_BODIES="$bodies" BENCH_THREADS=$threads BENCH_RUN="p$RANDOM" \
  wrk -t$threads -c"$connections" -d"${seconds}s" -s Benchmarks/wrk-deliveries.lua "http://127.0.0.1:$port/webhooks/github" > "$work/wrk.txt" &
sleep 1
perf record -F 999 -g -p "$pid" -o "$work/perf.data" -- sleep "$(( seconds - 3 ))" 2>/dev/null
wait %2 || true
grep '^RESULT' "$work/wrk.txt"
echo "== by shared object (self) =="
perf report -i "$work/perf.data" --no-children --sort dso -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -10
echo "== Slipway, Hummingbird and logging frames (inclusive) =="
perf report -i "$work/perf.data" --children --sort sym -g none 2>/dev/null | grep -v '^#' \
  | grep -E 'Slipway|Webhook|Intake|JSON|LineLog|Database|EventLog|Signature|HMAC|Router' | head -25 | swift demangle --simplified | cut -c1-160
