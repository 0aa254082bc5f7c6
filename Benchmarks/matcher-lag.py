#!/usr/bin/env python3
"""Matcher lag at peak ingest: does matching keep up with the durable appends?

    Benchmarks/matcher-lag.py [seconds=10] [connections=32]

Starts the release daemon with two tasks the push fixture reaches the matcher for (one on the
fixture's repository but another branch, one on another repository), so every event is decoded
and gets a match trace per task. wrk sends distinct signed bodies at full speed; every 100 ms the
script reads (from a second SQLite connection, as the CLI would) the newest event's seq and the
matcher's cursor. Prints the largest lag in events and in seconds (the age of the oldest event not
yet matched), how long the matcher needed to catch up after the load stopped, and whether every
event has its traces. SLIPWAY_BIN picks the binary (default .build/release/slipway).
MATCHER_EVENT=pull_request sends the ~26 KB pull_request fixture instead (the matcher decodes it
for both tasks' traces, neither of which builds pull requests).
Target (issue 18): lag under 1 s at the peak ingest rate, traces complete.
"""
import datetime, os, shutil, socket, sqlite3, subprocess, sys, tempfile, time, urllib.request

from benchlib import ROOT, free_port, ts, wait_http

SECONDS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
EVENT = os.environ.get("MATCHER_EVENT", "push")
FIXTURE = {"push": "push.json", "pull_request": "pull_request.json"}.get(EVENT) or sys.exit("MATCHER_EVENT=%s: push or pull_request" % EVENT)
CONNECTIONS = int(sys.argv[2]) if len(sys.argv) > 2 else 32


def main():
    binary = os.environ.get("SLIPWAY_BIN", os.path.join(ROOT, ".build/release/slipway"))
    work = tempfile.mkdtemp(prefix="slipway-lag-", dir="/var/tmp")
    secret = "lag-secret"
    os.makedirs(os.path.join(work, "secrets"))
    with open(os.path.join(work, "secrets/webhook"), "w") as f:
        f.write(secret)
    os.chmod(os.path.join(work, "secrets/webhook"), 0o600)
    port = free_port()
    with open(os.path.join(work, "slipway.yaml"), "w") as f:
        f.write("""listen: "127.0.0.1:%d"
data_dir: "data"
admin_socket: "slipway.sock"
webhook: { secret_files: ["secrets/webhook"] }
tasks:
  - name: release-only
    context: "https://github.com/octo-org/aci-helloworld.git#release"
    tags: ["registry.example/a:{{.Run.ID}}"]
  - name: other-repo
    context: "https://github.com/octo-org/other.git#main"
    tags: ["registry.example/b:{{.Run.ID}}"]
""" % port)
    bodies = os.path.join(work, "bodies.tsv")
    subprocess.run([sys.executable, os.path.join(ROOT, "Benchmarks/signed-bodies.py"), secret, os.path.join(ROOT, "Tests/Fixtures/github", FIXTURE),
                    str(max(100000, SECONDS * 30000) if EVENT == "push" else SECONDS * 6000), bodies, "lag%d" % os.getpid()], check=True)
    daemon = subprocess.Popen([binary, "serve", "--config", os.path.join(work, "slipway.yaml")], stderr=open(os.path.join(work, "daemon.log"), "w"), cwd=work)
    try:
        wait_http("http://127.0.0.1:%d/healthz" % port)
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(work, "data/slipway.sqlite"), uri=True, timeout=5)
        env = dict(os.environ, BENCH_BODIES=bodies, BENCH_THREADS="2", BENCH_RUN="lag%d" % time.time(), BENCH_EVENT=EVENT)
        wrk = subprocess.Popen(["wrk", "-t2", "-c%d" % CONNECTIONS, "-d%ds" % SECONDS, "--latency", "-s", os.path.join(ROOT, "Benchmarks/wrk-deliveries.lua"),
                                "http://127.0.0.1:%d/webhooks/github" % port], env=env, stdout=subprocess.PIPE, text=True)
        worst_events, worst_seconds = 0, 0.0

        def sample():
            newest = db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
            cursor = (db.execute("SELECT seq FROM cursors WHERE name = 'matcher'").fetchone() or [0])[0]
            age = 0.0
            if newest > cursor:
                row = db.execute("SELECT received_at FROM events WHERE seq = ?", (cursor + 1,)).fetchone()
                if row:
                    age = time.time() - ts(row[0])
            return newest, cursor, age

        while wrk.poll() is None:
            newest, cursor, age = sample()
            worst_events, worst_seconds = max(worst_events, newest - cursor), max(worst_seconds, age)
            time.sleep(0.1)
        result = next(l for l in wrk.stdout.read().splitlines() if l.startswith("RESULT"))
        stopped = time.time()
        while True:
            newest, cursor, age = sample()
            if cursor >= newest:
                break
            time.sleep(0.02)
        catch_up = time.time() - stopped
        events = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        traced = db.execute("SELECT COUNT(DISTINCT event_seq) FROM match_traces").fetchone()[0]
        traces = db.execute("SELECT COUNT(*) FROM match_traces").fetchone()[0]
        print(result)
        # CPU by thread: the matcher runs on Swift's concurrency pool (`*.default-qos`), the
        # commits on the writer's dispatch threads (`*qos.overcommit`), HTTP on NIO's loops.
        tick = os.sysconf("SC_CLK_TCK")
        by_thread = {}
        for tid in os.listdir("/proc/%d/task" % daemon.pid):
            try:
                name = open("/proc/%d/task/%s/comm" % (daemon.pid, tid)).read().strip().replace(" ", "_")
                fields = open("/proc/%d/task/%s/stat" % (daemon.pid, tid)).read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            by_thread[name] = by_thread.get(name, 0) + (int(fields[11]) + int(fields[12])) / tick
        print("RESULT cpu_s_per_10k_events " + " ".join("%s=%.2f" % (n, c / max(events, 1) * 10000) for n, c in sorted(by_thread.items()) if c > 0))
        print("RESULT matcher_lag events=%d max_lag_events=%d max_lag_s=%.3f catch_up_after_load_s=%.3f traced_events=%d traces=%d complete=%s" % (
            events, worst_events, worst_seconds, catch_up, traced, traces, traced == events and traces == 2 * events))
    finally:
        daemon.terminate()
        daemon.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
