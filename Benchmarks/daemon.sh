# Sourced by ingest.sh, footprint.sh, profile.sh and scripts/symbol-order.sh: starts the release daemon (or $SLIPWAY_BIN)
# on a fresh data dir under /var/tmp and a free port, and stops it and removes the dir at exit.
# Sets: bin, work, port, pid, body (the ~3 KB push fixture), signature (its X-Hub-Signature-256),
# bodies (BENCH_COUNT distinct signed bodies). BENCH_WRAP: a command the daemon runs under (split
# on spaces, e.g. valgrind and its options); BENCH_TMP: a path of the caller's removed at exit too.
bin="${SLIPWAY_BIN:-.build/release/slipway}"
[ -x "$bin" ] || { echo "no release binary at $bin: run 'make release' first" >&2; exit 1; }
work=$(mktemp -d /var/tmp/slipway-bench.XXXXXX)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; [ -n "${BENCH_KEEP:-}" ] && cp "$work/perf.data" "$BENCH_KEEP" 2>/dev/null; rm -rf "$work" ${BENCH_TMP:+"$BENCH_TMP"}' EXIT
mkdir -p "$work/secrets"
(umask 077; echo "bench-secret-$RANDOM" > "$work/secrets/webhook")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'listen: "127.0.0.1:%s"\ndata_dir: "data"\nadmin_socket: "slipway.sock"\nwebhook: { secret_files: ["secrets/webhook"] }\n' "$port" > "$work/slipway.yaml"
body=Tests/Fixtures/github/push.json
signature="sha256=$(openssl dgst -sha256 -hmac "$(cat "$work/secrets/webhook")" "$body" | sed 's/.*= //')"
# Distinct signed bodies (BENCH_COUNT, default 300000): a repeated body would be a duplicate.
bodies="$work/bodies.tsv"
python3 Benchmarks/signed-bodies.py "$(cat "$work/secrets/webhook")" "$body" "${BENCH_COUNT:-300000}" "$bodies" "b$RANDOM"
# BENCH_JOURNAL=1: log to journald (a running systemd-journald), as under systemd: JOURNAL_STREAM
# names the log file, so the daemon takes it for its journal stream and sends its lines to the journal.
: > "$work/daemon.log"
[ -n "${BENCH_JOURNAL:-}" ] && export JOURNAL_STREAM="$(stat -c '%d:%i' "$work/daemon.log")"
# shellcheck disable=SC2086 # BENCH_WRAP is a command and its arguments
${BENCH_WRAP:-} "$bin" serve --config "$work/slipway.yaml" 2>> "$work/daemon.log" &
pid=$!
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
