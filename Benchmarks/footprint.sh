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
bin="${SLIPWAY_BIN:-.build/release/slipway}"
[ -x "$bin" ] || { echo "no release binary at $bin: run 'make release' first" >&2; exit 1; }
work=$(mktemp -d /var/tmp/slipway-footprint.XXXXXX)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/secrets"
(umask 077; echo "bench-secret-$RANDOM" > "$work/secrets/webhook")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/slipway.yaml" <<YAML
listen: "127.0.0.1:$port"
data_dir: "data"
admin_socket: "slipway.sock"
webhook:
  secret_files: ["secrets/webhook"]
YAML
body=Tests/Fixtures/github/push.json
signature="sha256=$(openssl dgst -sha256 -hmac "$(cat "$work/secrets/webhook")" "$body" | sed 's/.*= //')"
"$bin" serve --config "$work/slipway.yaml" 2> "$work/daemon.log" &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
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
  BENCH_BODY="$body" BENCH_SIGNATURE="$signature" BENCH_RUN="f$round-$RANDOM" \
    wrk -t2 -c32 -d5s -s Benchmarks/wrk-deliveries.lua "http://127.0.0.1:$port/webhooks/github" > /dev/null
  sleep 1   # connections closed, the matcher caught up
  printf '| %s | %.1f | %s |\n' "$(events)" "$(echo "$(rss)/1024" | bc -l)" "$(fds)"
done
echo "peak RSS MB: $(awk '/VmHWM/ {printf "%.1f", $2/1024}' /proc/$pid/status)"
