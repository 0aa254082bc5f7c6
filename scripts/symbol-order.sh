#!/usr/bin/env bash
# Regenerates scripts/symbol-order.txt, the function order the release link uses
# (Package.swift: lld --symbol-ordering-file), so the code an idle or ingesting daemon runs lies
# together instead of spread over 28 MB of .text (every 4 KB page run maps 64 KB or more).
#
#   scripts/symbol-order.sh            (needs valgrind: apt-get install valgrind; ~2 min)
#
# Runs the static release binary (without its debug info: valgrind cannot read Swift's) under
# callgrind: start-up until /healthz answers, then 20 signed deliveries, /healthz and /metrics and
# 25 s of timers (engine health, status). Functions the second part ran come first, then those
# only start-up ran. A stale list is harmless: names no longer in the binary are ignored, new
# functions go where the linker would put them anyway. Regenerate after larger changes and check
# Benchmarks/rss-breakdown.py.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install valgrind" >&2; exit 1; }
swift build -c release --static-swift-stdlib --build-path .build-static >/dev/null
# The daemon as the benchmarks start it (Benchmarks/daemon.sh: fresh data dir, secret, port and
# distinct signed bodies), but the stripped copy, under callgrind.
order=$(mktemp -d /var/tmp/slipway-order.XXXXXX)
objcopy --strip-debug "$(realpath .build-static/release/slipway)" "$order/slipway"
export SLIPWAY_BIN="$order/slipway" BENCH_COUNT=20 BENCH_TMP="$order"
BENCH_WRAP="valgrind --tool=callgrind --demangle=no --dump-instr=no --compress-strings=no --compress-pos=no"
BENCH_WRAP+=" --callgrind-out-file=$order/cg.out"
. Benchmarks/daemon.sh
curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || { tail -20 "$work/daemon.log" >&2; exit 1; }
sleep 2
callgrind_control --dump "$pid" >/dev/null   # cg.out.1: start-up
n=0
while IFS=$'\t' read -r sig delivery; do
  n=$((n + 1))
  printf '%s' "$delivery" | curl -sf -o /dev/null -H "X-GitHub-Event: push" -H "X-GitHub-Delivery: order-$n" \
    -H "X-Hub-Signature-256: $sig" -H "Content-Type: application/json" --data-binary @- "http://127.0.0.1:$port/webhooks/github"
done < "$bodies"
for path in /healthz /metrics /healthz; do curl -sf -o /dev/null "http://127.0.0.1:$port$path"; done
sleep 25
curl -sf "http://127.0.0.1:$port/healthz" >/dev/null
callgrind_control --dump "$pid" >/dev/null   # cg.out.2: steady state
python3 - "$order" "$order/slipway" scripts/symbol-order.txt <<'EOF'
import re, subprocess, sys
scratch, binary, out = sys.argv[1:]
defined = set()
for line in subprocess.run(["nm", "--defined-only", binary], capture_output=True, text=True, check=True).stdout.splitlines():
    parts = line.split()
    if len(parts) == 3 and parts[1] in "tTwW":
        defined.add(parts[2])
def functions(path):
    names, seen, obj = [], set(), ""
    for line in open(path, errors="replace"):
        if line.startswith("ob="):
            obj = line[3:].strip()
        elif line.startswith("fn=") and obj.endswith("/slipway"):
            name = re.sub(r"'\d+$", "", re.sub(r"^\(\d+\)\s*", "", line[3:].strip()))
            if name in defined and name not in seen:
                seen.add(name)
                names.append(name)
    return names
startup, steady = functions(scratch + "/cg.out.1"), functions(scratch + "/cg.out.2")
order = steady + [n for n in startup if n not in set(steady)]
with open(out, "w") as f:
    f.write("\n".join(order) + "\n")
print("%s: %d functions (%d run after start-up, %d only at start-up)" % (out, len(order), len(steady), len(order) - len(steady)))
EOF
