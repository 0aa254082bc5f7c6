#!/usr/bin/env python3
"""Web page benchmark: time to first byte with 100k runs and a 100k-line run log.

    Benchmarks/ui-ttfb.py [runs=100000] [log_lines=100000] [requests=300]

Makes a data_dir the way a long-lived install has it: the daemon creates its schema, then the
runs (each with its queued and final state rows, as the pipeline appends them) are written in one
transaction, and the newest run gets a log of N lines. The daemon is started again with
`ui.listen` on loopback, and each page is fetched REQUESTS times one after another; TTFB is the
time from sending the request to the status line arriving. No docker is needed.
SLIPWAY_BIN picks the binary (default .build/release/slipway, else .build/debug/slipway).
Target (issue 15): the run page's p99 <= 50 ms.
"""
import http.client, json, os, shutil, socket, sqlite3, subprocess, sys, tempfile, time

from benchlib import ROOT, free_port, pct, slipway_binary

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
LINES = int(sys.argv[2]) if len(sys.argv) > 2 else 100000
REQUESTS = int(sys.argv[3]) if len(sys.argv) > 3 else 300


def main():
    binary = slipway_binary()
    work = tempfile.mkdtemp(prefix="slipway-uibench-", dir="/var/tmp")
    port, ui_port = free_port(), free_port()
    with open(os.path.join(work, "slipway.yaml"), "w") as f:
        f.write("""listen: "127.0.0.1:%d"
data_dir: "data"
admin_socket: "slipway.sock"
ui: { listen: "127.0.0.1:%d" }
tasks:
  - name: web
    context: "https://example.com/o/web.git#main:app"
    tags: ["registry.example/web:{{.Run.ID}}"]
    push: false
    enabled: false
""" % (port, ui_port))
    config = os.path.join(work, "slipway.yaml")

    def start():
        daemon = subprocess.Popen([binary, "serve", "--config", config], stderr=open(os.path.join(work, "daemon.log"), "a"), cwd=work)
        for _ in range(200):
            try:
                c = http.client.HTTPConnection("127.0.0.1", ui_port, timeout=2); c.request("GET", "/runs?top=1"); c.getresponse().read(); c.close()
                return daemon
            except Exception:
                time.sleep(0.05)
        daemon.kill()
        sys.exit("the daemon did not start: " + open(os.path.join(work, "daemon.log")).read()[-2000:])

    try:
        daemon = start()  # creates the schema
        daemon.terminate(); daemon.wait()
        db = sqlite3.connect(os.path.join(work, "data/slipway.sqlite"))
        t0 = time.time()
        with db:
            db.executemany(
                "INSERT INTO runs (id, run_id, task, trigger, repo_url, branch, commit_sha, created_at, engine) VALUES (?,?,?,?,?,?,?,?,?)",
                ((i, "sw%d" % i, "web", "manual", "https://example.com/o/web.git", "main", "%040x" % i,
                  "2026-11-%02dT10:00:00.000Z" % (1 + i * 25 // RUNS), "local") for i in range(1, RUNS + 1)))
            db.executemany(
                "INSERT INTO run_states (run, status, phase, kind, step, at, durations) VALUES (?,?,?,?,?,?,?)",
                ((i, s, ph, "build", st, "2026-11-%02dT10:00:0%d.000Z" % (1 + i * 25 // RUNS, k), d)
                 for i in range(1, RUNS + 1)
                 for k, (s, ph, st, d) in enumerate([("Queued", "queued", "", "{}"),
                                                      ("Succeeded", "ended", "push", '{"fetch":0.1,"checkout":0.1,"build":3.2,"push":0.4}')])))
        db.close()
        seeded = time.time() - t0
        newest = "sw%d" % RUNS
        os.makedirs(os.path.join(work, "data/runs"), exist_ok=True)
        with open(os.path.join(work, "data/runs/%s.log" % newest), "w") as f:
            for n in range(LINES):
                f.write("2026-11-26T10:00:00.000Z #%d 0.%03d step output line %d of the build, some more text to make it a realistic width\n" % (n % 40, n % 1000, n))
        log_mb = os.path.getsize(os.path.join(work, "data/runs/%s.log" % newest)) / 1e6
        daemon = start()
        pages = [("run page", "/runs/" + newest), ("runs list", "/runs"), ("runs filtered", "/runs?task=web&status=Succeeded"),
                 ("tasks", "/"), ("full log", "/runs/%s/log" % newest)]
        print("RESULT ui_ttfb runs=%d log_lines=%d log_mb=%.1f requests=%d binary=%s (seeded in %.1f s)" % (
            RUNS, LINES, log_mb, REQUESTS, os.path.relpath(binary, ROOT), seeded))
        for name, path in pages:
            times, size = [], 0
            for _ in range(REQUESTS):
                c = http.client.HTTPConnection("127.0.0.1", ui_port, timeout=30)
                t = time.perf_counter()
                c.request("GET", path)
                r = c.getresponse()
                ttfb = time.perf_counter() - t
                body = r.read() if path.endswith("/log") is False else r.read(65536)
                assert r.status == 200, (path, r.status, body[:300])
                size = max(size, len(body))
                c.close()
                times.append(ttfb * 1000)
            print("RESULT ui_ttfb page=%-14s p50_ms=%.2f p99_ms=%.2f max_ms=%.2f body_kb=%d" % (
                name, pct(times, 50), pct(times, 99), max(times), size // 1000))
        daemon.terminate(); daemon.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
