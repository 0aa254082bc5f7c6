#!/usr/bin/env bash
# Cost growth: ingest rate and admin listing latency with 10k, 100k and 1M events in the log
# (and a run per 10 events, three state rows each), seeded with SQL before the daemon starts.
#   Benchmarks/growth.sh [seconds=10]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
bin="${SLIPWAY_BIN:-.build/release/slipway}"
[ -x "$bin" ] || { echo "no release binary at $bin: run 'make release' first" >&2; exit 1; }
body=Tests/Fixtures/github/push.json
for n in ${GROWTH_SIZES:-10000 100000 1000000}; do
  work=$(mktemp -d /var/tmp/slipway-growth.XXXXXX)
  mkdir -p "$work/secrets" "$work/data"
  (umask 077; echo "growth-secret" > "$work/secrets/webhook")
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  printf 'listen: "127.0.0.1:%s"\ndata_dir: "data"\nadmin_socket: "slipway.sock"\nwebhook: { secret_files: ["secrets/webhook"] }\n' "$port" > "$work/slipway.yaml"
  # Create the schema, then seed.
  "$bin" serve --config "$work/slipway.yaml" 2>/dev/null & pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  kill -TERM $pid; wait $pid || true
  runs=$((n / 10))
  sqlite3 "$work/data/slipway.sqlite" <<SQL
PRAGMA journal_mode=WAL;
BEGIN;
WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < $n)
INSERT INTO events (received_at, delivery_id, hook_id, event_type, signature, headers, body)
SELECT '2026-11-26T00:00:00.000Z', 'seed-' || i, '1', 'push', 'sha256:seed', '{}', readfile('$body') FROM k;
WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < $runs)
INSERT INTO runs (id, run_id, task, trigger, event_seq, attempt, repo_url, branch, commit_sha, created_at)
SELECT i, 'sw' || i, 'task' || (i % 20), 'push', i * 10, 1, 'https://g/r.git', 'main', printf('%040d', i), '2026-11-26T00:00:00.000Z' FROM k;
INSERT INTO run_states (run, status, at) SELECT id, 'Queued', created_at FROM runs;
INSERT INTO run_states (run, status, at) SELECT id, 'Running', created_at FROM runs;
INSERT INTO run_states (run, status, at) SELECT id, CASE WHEN id % 7 = 0 THEN 'Failed' ELSE 'Succeeded' END, created_at FROM runs;
INSERT INTO cursors (name, seq, updated_at) VALUES ('matcher', $n, '2026-11-26T00:00:00.000Z')
  ON CONFLICT (name) DO UPDATE SET seq = excluded.seq;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
SQL
  "$bin" serve --config "$work/slipway.yaml" 2> "$work/daemon.log" & pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  latency() {  # median of 21 requests, ms
    for _ in $(seq 21); do curl -s -o /dev/null -w '%{time_total}\n' --unix-socket "$work/slipway.sock" "http://x$1"; done \
      | sort -n | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)] * 1000}'
  }
  runs_ms=$(latency "/v1/runs?top=15")
  failed_ms=$(latency "/v1/runs?top=15&status=Failed")
  task_ms=$(latency "/v1/runs?top=15&task=task3")
  events_ms=$(latency "/v1/events?top=15")
  # Distinct signed bodies: a repeated body would be a duplicate, not an append.
  python3 Benchmarks/signed-bodies.py growth-secret "$body" "$(( seconds * 30000 ))" "$work/bodies.tsv" "g$n-$RANDOM"
  rps=$(BENCH_BODIES="$work/bodies.tsv" BENCH_THREADS=2 BENCH_RUN="g$n" \
    wrk -t2 -c32 -d"${seconds}s" -s Benchmarks/wrk-deliveries.lua "http://127.0.0.1:$port/webhooks/github" | sed -n 's/.* rps=\([0-9]*\).* p99_ms=\([0-9.]*\).*/\1 \2/p')
  rss=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
  kill -TERM $pid; wait $pid || true
  echo "RESULT growth events=$n runs=$runs ingest_rps=${rps% *} ingest_p99_ms=${rps#* } run_list_ms=$runs_ms run_list_failed_ms=$failed_ms run_list_task_ms=$task_ms event_list_ms=$events_ms peak_rss_kb=$rss"
  rm -rf "$work"
done
