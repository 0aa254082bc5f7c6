#!/usr/bin/env bash
# Ingest benchmark: signed ~3 KB push deliveries with unique ids against the release build,
# every one durably appended (WAL, synchronous=FULL, group commit).
#   Benchmarks/ingest.sh [connections=32] [seconds=15]
# Prints one RESULT line from wrk, the daemon's peak RSS, the events stored and the group-commit factor.
# BENCH_JOURNAL=1 logs to a running systemd-journald (as under systemd) and prints its CPU and entries.
set -euo pipefail
cd "$(dirname "$0")/.."
connections="${1:-32}"
seconds="${2:-15}"
. Benchmarks/daemon.sh
idle_rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
# BENCH_JOURNAL=1 (see daemon.sh): journald's CPU is counted too; it is the daemon's logging cost.
journald=""
if [ -n "${BENCH_JOURNAL:-}" ]; then
  journald=$(pgrep -x systemd-journal || pgrep -f systemd-journald | head -1) || { echo "BENCH_JOURNAL=1 needs a running systemd-journald" >&2; exit 1; }
  journald_ticks=$(awk '{print $14 + $15}' /proc/$journald/stat)
fi

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
if [ -n "$journald" ]; then
  sleep 0.5  # journald reads its socket on its own time
  closed=$(journalctl --no-pager -o export _PID="$pid" MESSAGE="event log closed" | tr '\n' ' ' | tr 'A-Z' 'a-z' | sed 's/^/event log closed /' || true)
  journald_cpu=" journald_cpu_s=$(echo "scale=2; ($(awk '{print $14 + $15}' /proc/$journald/stat) - $journald_ticks) / $(getconf CLK_TCK)" | bc)"
  journal_entries=" journal_entries=$(journalctl --no-pager -o cat _PID="$pid" | wc -l)"
fi
commits=$(grep -o ' commits=[0-9]*' <<< "$closed" | cut -d= -f2 || true)
checkpoints=$(grep -o ' checkpoints=[0-9]*' <<< "$closed" | cut -d= -f2 || true)
writer_checkpoints=$(grep -o ' writer_checkpoints=[0-9]*' <<< "$closed" | cut -d= -f2 || true)
inline_commits=$(grep -o ' inline_commits=[0-9]*' <<< "$closed" | cut -d= -f2 || true)
echo "threads_cpu_s $threads"
echo "daemon idle_rss_kb=$idle_rss peak_rss_kb=$peak_rss cpu_s=$(echo "scale=2; $cpu_ticks / $(getconf CLK_TCK)" | bc) events_stored=$stored commits=$commits checkpoints=${checkpoints:-?} writer_checkpoints=${writer_checkpoints:-?} inline_commits=${inline_commits:-?} body_bytes=$(stat -c %s "$body")${journald_cpu:-}${journal_entries:-}"
