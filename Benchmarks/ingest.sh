#!/usr/bin/env bash
# Ingest benchmark: signed ~3 KB push deliveries with unique ids against the release build,
# every one durably appended (WAL, synchronous=FULL, group commit).
#   Benchmarks/ingest.sh [connections=32] [seconds=15]
# Prints one RESULT line from wrk, the daemon's peak RSS, the events stored and the group-commit factor.
set -euo pipefail
cd "$(dirname "$0")/.."
connections="${1:-32}"
seconds="${2:-15}"
. Benchmarks/daemon.sh
idle_rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)

BENCH_BODIES="$bodies" BENCH_THREADS="$(( connections < 2 ? 1 : 2 ))" BENCH_RUN="b$RANDOM" \
  wrk -t"$(( connections < 2 ? 1 : 2 ))" -c"$connections" -d"${seconds}s" --latency -s Benchmarks/wrk-deliveries.lua "http://127.0.0.1:$port/webhooks/github" \
  | grep '^RESULT' | sed "s/^RESULT/RESULT slipway connections=$connections/"

peak_rss=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
cpu_ticks=$(awk '{print $14 + $15}' /proc/$pid/stat)
# CPU seconds by thread (dispatch threads take their queue's name while they run it): is one serial?
threads=$(for t in /proc/$pid/task/*; do printf '%s\t%s\n' "$(tr ' ' '_' < "$t/comm")" "$(awk '{print $14 + $15}' "$t/stat")"; done \
  | awk -F'\t' -v hz="$(getconf CLK_TCK)" '{c[$1] += $2} END {for (n in c) if (c[n] > 0) printf "%s=%.2f ", n, c[n] / hz}')
kill -TERM "$pid"; wait "$pid" || true
stored=$(sqlite3 "$work/data/slipway.sqlite" 'SELECT count(*) FROM events')
closed=$(grep -o 'event log closed.*' "$work/daemon.log" || true)
commits=$(grep -o ' commits=[0-9]*' <<< "$closed" | cut -d= -f2)
checkpoints=$(grep -o ' checkpoints=[0-9]*' <<< "$closed" | cut -d= -f2 || true)
writer_checkpoints=$(grep -o ' writer_checkpoints=[0-9]*' <<< "$closed" | cut -d= -f2 || true)
echo "threads_cpu_s $threads"
echo "daemon idle_rss_kb=$idle_rss peak_rss_kb=$peak_rss cpu_s=$(echo "scale=2; $cpu_ticks / $(getconf CLK_TCK)" | bc) events_stored=$stored commits=$commits checkpoints=${checkpoints:-?} writer_checkpoints=${writer_checkpoints:-?} body_bytes=$(stat -c %s "$body")"
