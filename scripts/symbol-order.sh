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
bin=$(realpath .build-static/release/slipway)
work=$(mktemp -d /var/tmp/slipway-order.XXXXXX)
trap 'kill "$vg" 2>/dev/null || true; rm -rf "$work"' EXIT
objcopy --strip-debug "$bin" "$work/slipway"
mkdir -p "$work/secrets"
(umask 077; echo "order-secret" > "$work/secrets/webhook")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'listen: "127.0.0.1:%s"\ndata_dir: "data"\nadmin_socket: "slipway.sock"\nwebhook: { secret_files: ["secrets/webhook"] }\n' "$port" > "$work/slipway.yaml"
(cd "$work" && exec valgrind --tool=callgrind --demangle=no --dump-instr=no --compress-strings=no --compress-pos=no \
  --callgrind-out-file="$work/cg.out" ./slipway serve --config slipway.yaml > valgrind.log 2>&1) &
vg=$!
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 1; done
curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || { tail -20 "$work/valgrind.log" >&2; exit 1; }
sleep 2
callgrind_control --dump "$vg" >/dev/null   # cg.out.1: start-up
python3 - "$port" <<'EOF'
import hashlib, hmac, sys, urllib.request, uuid
port = sys.argv[1]
body = open("Tests/Fixtures/github/push.json", "rb").read().rstrip()
for i in range(20):
    b = body[:-1] + b',"order_%d":%d}' % (i, i)
    sig = "sha256=" + hmac.new(b"order-secret", b, hashlib.sha256).hexdigest()
    r = urllib.request.Request("http://127.0.0.1:%s/webhooks/github" % port, data=b, headers={
        "X-GitHub-Event": "push", "X-GitHub-Delivery": str(uuid.uuid4()), "X-Hub-Signature-256": sig,
        "Content-Type": "application/json"})
    assert urllib.request.urlopen(r).status == 202
for path in ("/healthz", "/metrics", "/healthz"):
    urllib.request.urlopen("http://127.0.0.1:%s%s" % (port, path)).read()
EOF
sleep 25
curl -sf "http://127.0.0.1:$port/healthz" >/dev/null
callgrind_control --dump "$vg" >/dev/null   # cg.out.2: steady state
python3 - "$work" "$work/slipway" scripts/symbol-order.txt <<'EOF'
import re, subprocess, sys
work, binary, out = sys.argv[1:]
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
startup, steady = functions(work + "/cg.out.1"), functions(work + "/cg.out.2")
order = steady + [n for n in startup if n not in set(steady)]
with open(out, "w") as f:
    f.write("\n".join(order) + "\n")
print("%s: %d functions (%d run after start-up, %d only at start-up)" % (out, len(order), len(steady), len(order) - len(steady)))
EOF
