#!/usr/bin/env python3
"""Ingest side by side: Slipway (every delivery durably appended, synchronous=FULL) vs adnanh/webhook.

Both get the same signed ~3 KB push delivery with unique delivery ids from the same wrk script,
at 1, 32 and 256 connections, alternated A/B/A/B in one run. webhook runs a hook whose HMAC rule
passes and whose second rule does not match, so it spawns nothing.

    Benchmarks/compare.py [seconds per round=10] [connections=1,32,256]

COMPARE_PIN=WRK_CPUS:SERVER_CPUS (e.g. 0:1) runs wrk on the first CPUs and every server on the
second (taskset), so the load generator does not take the servers' cores; the per-request budget
at 1.5x webhook is then the servers' cores alone.

COMPARE_TASK_PATH=1 adds a third server in the same rounds: Slipway with its event-loop fast path
off (SLIPWAY_WEBHOOK_FAST_PATH=0: the webhook answered by a Hummingbird route in a Swift task).

Needs: a release build (.build/release/slipway), wrk, webhook (make bench installs them).
"""
import hashlib, hmac, json, os, re, resource, shutil, socket, subprocess, sys, tempfile, time, urllib.request

from benchlib import ROOT, free_port, wait_http
SECONDS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
CONNECTIONS = [int(c) for c in (sys.argv[2] if len(sys.argv) > 2 else "1,32,256").split(",")]
TICK = os.sysconf("SC_CLK_TCK")
PIN = os.environ.get("COMPARE_PIN")

def cpu_list(spec):
    """The CPUs of a taskset list such as 1 or 0,2 or 1-3."""
    cpus = set()
    for part in spec.split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus

if PIN:
    WRK_CPUS, SERVER_CPUS = PIN.split(":")
    if cpu_list(WRK_CPUS) & cpu_list(SERVER_CPUS):
        raise SystemExit("COMPARE_PIN=%s: wrk and the servers share CPUs" % PIN)
    WRK_PREFIX, SERVER_PREFIX = ["taskset", "-c", WRK_CPUS], ["taskset", "-c", SERVER_CPUS]
    SERVER_CORES = len(cpu_list(SERVER_CPUS))
else:
    WRK_PREFIX, SERVER_PREFIX, SERVER_CORES = [], [], None

def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK

def peak_rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1)) / 1024

def events_stored(folder):
    out = subprocess.run(["sqlite3", os.path.join(folder, "data/slipway.sqlite"), "SELECT count(*) FROM events"], capture_output=True, text=True)
    return int(out.stdout.strip() or 0)

def main():
    work = tempfile.mkdtemp(prefix="slipway-compare-", dir="/var/tmp")
    body_path = os.path.join(ROOT, "Tests/Fixtures/github/push.json")
    secret = "compare-secret"
    body = open(body_path, "rb").read()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    # Distinct signed bodies, made anew for every Slipway round: a body already in the log is a
    # duplicate whatever its delivery id, and the duplicate path is not what is measured.
    bodies_path = os.path.join(work, "bodies.tsv")
    count = os.environ.get("BENCH_COUNT", str(max(50000, SECONDS * 25000)))
    def make_bodies(tag):
        subprocess.run([sys.executable, os.path.join(ROOT, "Benchmarks/signed-bodies.py"), secret, body_path, count, bodies_path, tag], check=True)
    os.makedirs(os.path.join(work, "secrets"))
    with open(os.path.join(work, "secrets/webhook"), "w") as f:
        f.write(secret)
    os.chmod(os.path.join(work, "secrets/webhook"), 0o600)
    sp, wp = free_port(), free_port()
    with open(os.path.join(work, "slipway.yaml"), "w") as f:
        f.write('listen: "127.0.0.1:%d"\ndata_dir: "data"\nadmin_socket: "slipway.sock"\nwebhook: { secret_files: ["secrets/webhook"] }\n' % sp)
    with open(os.path.join(work, "hooks.json"), "w") as f:
        json.dump([{
            "id": "github", "execute-command": "/bin/true", "response-message": "ok",
            "trigger-rule": {"and": [
                {"match": {"type": "payload-hmac-sha256", "secret": secret, "parameter": {"source": "header", "name": "X-Hub-Signature-256"}}},
                {"match": {"type": "value", "value": "refs/heads/never-matches", "parameter": {"source": "payload", "name": "ref"}}},
            ]},
        }], f)
    slipway = subprocess.Popen(SERVER_PREFIX + [os.path.join(ROOT, ".build/release/slipway"), "serve", "--config", os.path.join(work, "slipway.yaml")],
                               stderr=open(os.path.join(work, "slipway.log"), "w"))
    task_path = os.environ.get("COMPARE_TASK_PATH") == "1"
    if task_path:
        tp = free_port()
        task_dir = os.path.join(work, "task")
        os.makedirs(os.path.join(task_dir, "secrets"))
        shutil.copy(os.path.join(work, "secrets/webhook"), os.path.join(task_dir, "secrets/webhook"))
        os.chmod(os.path.join(task_dir, "secrets/webhook"), 0o600)
        with open(os.path.join(task_dir, "slipway.yaml"), "w") as f:
            f.write('listen: "127.0.0.1:%d"\ndata_dir: "data"\nadmin_socket: "slipway.sock"\nwebhook: { secret_files: ["secrets/webhook"] }\n' % tp)
        slipway_task = subprocess.Popen(SERVER_PREFIX + [os.path.join(ROOT, ".build/release/slipway"), "serve", "--config", os.path.join(task_dir, "slipway.yaml")],
                                        stderr=open(os.path.join(work, "slipway-task.log"), "w"), env=dict(os.environ, SLIPWAY_WEBHOOK_FAST_PATH="0"))
    webhook = subprocess.Popen(SERVER_PREFIX + ["webhook", "-hooks", os.path.join(work, "hooks.json"), "-ip", "127.0.0.1", "-port", str(wp)],
                               stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "webhook.log"), "w"))
    servers = {"slipway": (slipway, "http://127.0.0.1:%d/webhooks/github" % sp), "webhook": (webhook, "http://127.0.0.1:%d/hooks/github" % wp)}
    folders = {"slipway": work}
    names = ["slipway", "webhook"]
    if task_path:
        servers["slipway-task"] = (slipway_task, "http://127.0.0.1:%d/webhooks/github" % tp)
        folders["slipway-task"] = task_dir
        names.append("slipway-task")
    try:
        wait_http("http://127.0.0.1:%d/healthz" % sp)
        wait_http("http://127.0.0.1:%d/hooks/github" % wp)
        if task_path:
            wait_http("http://127.0.0.1:%d/healthz" % tp)
        results = {}
        for c in CONNECTIONS:
            for rnd in range(2 * len(names)):
                name = names[rnd % len(names)]
                proc, url = servers[name]
                if name != "webhook" or not os.path.exists(bodies_path):
                    make_bodies("%s-%d-%d" % (name, c, rnd))
                stored_before = events_stored(folders[name]) if name != "webhook" else 0
                before = cpu_seconds(proc.pid)
                children = resource.getrusage(resource.RUSAGE_CHILDREN)
                env = dict(os.environ, BENCH_BODIES=bodies_path, BENCH_THREADS=str(min(2, c)), BENCH_RUN="%s-%d-%d-%d" % (name, c, rnd, time.time()))
                out = subprocess.run(WRK_PREFIX + ["wrk", "-t%d" % min(2, c), "-c%d" % c, "-d%ds" % SECONDS, "--latency", "-s", os.path.join(ROOT, "Benchmarks/wrk-deliveries.lua"), url],
                                     env=env, capture_output=True, text=True).stdout
                line = next((l for l in out.splitlines() if l.startswith("RESULT")), None)
                if line is None:
                    raise SystemExit("wrk against %s printed no result:\n%s\n%s" % (name, out, open(os.path.join(work, name + ".log")).read()[-2000:]))
                r = dict(kv.split("=") for kv in line.split()[1:])
                r = {k: float(v) for k, v in r.items()}
                r["cpu_per_10k"] = (cpu_seconds(proc.pid) - before) / max(r["requests"], 1) * 10000
                # The load generator shares the cores: its CPU per request is part of the budget.
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                wrk_cpu = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
                r["wrk_cpu_per_10k"] = wrk_cpu / max(r["requests"], 1) * 10000
                if name != "webhook":
                    # Every 2xx'd delivery a new durable event: the duplicate path is not what was measured.
                    r["stored"] = events_stored(folders[name]) - stored_before
                    print("round %s c=%d: %d requests answered, %d events stored, %d bodies reused" % (
                        name, c, int(r["requests"]), int(r["stored"]), int(r.get("reused_bodies", 0))), flush=True)
                results.setdefault((name, c), []).append(r)
        if PIN:
            print("pinned: wrk on CPUs %s, servers on CPUs %s" % (WRK_CPUS, SERVER_CPUS))
        print("| server | conns | requests/s | p50 ms | p99 ms | p99.9 ms | non-2xx | CPU s / 10k | wrk CPU s / 10k | peak RSS MB |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for c in CONNECTIONS:
            for name in names:
                rs = results[(name, c)]
                avg = lambda k: sum(r[k] for r in rs) / len(rs)
                print("| %s | %d | %.0f | %.2f | %.2f | %.2f | %d | %.2f | %.2f | %.1f |" % (
                    name, c, avg("rps"), avg("p50_ms"), avg("p99_ms"), avg("p999_ms"), sum(r["non2xx"] for r in rs),
                    avg("cpu_per_10k"), avg("wrk_cpu_per_10k"), peak_rss_mb(servers[name][0].pid)))
            ratio = (sum(r["rps"] for r in results[("slipway", c)]) / sum(r["rps"] for r in results[("webhook", c)]))
            print("|  | %d | slipway/webhook = %.2fx |  |  |  |  |  |  |  |" % (c, ratio))
            # What 1.5x webhook's rate leaves a server per request on these cores, after wrk's share
            # (pinned: the servers' own cores).
            webhook_rps = sum(r["rps"] for r in results[("webhook", c)]) / len(results[("webhook", c)])
            wrk_us = sum(r["wrk_cpu_per_10k"] for r in results[("webhook", c)]) / len(results[("webhook", c)]) * 100
            if SERVER_CORES:
                budget_us = SERVER_CORES / (1.5 * webhook_rps) * 1e6
            else:
                budget_us = os.cpu_count() / (1.5 * webhook_rps) * 1e6 - wrk_us
            print("|  | %d | at 1.5x webhook (%.0f/s) a server may use %.0f us CPU per request (webhook uses %.0f, slipway %.0f) |  |  |  |  |  |  |  |" % (
                c, 1.5 * webhook_rps, budget_us,
                sum(r["cpu_per_10k"] for r in results[("webhook", c)]) / len(results[("webhook", c)]) * 100,
                sum(r["cpu_per_10k"] for r in results[("slipway", c)]) / len(results[("slipway", c)]) * 100))
            if task_path:
                gain = (sum(r["rps"] for r in results[("slipway", c)]) / sum(r["rps"] for r in results[("slipway-task", c)]))
                print("|  | %d | fast path / task path = %.2fx |  |  |  |  |  |  |" % (c, gain))
        stored = subprocess.run(["sqlite3", os.path.join(work, "data/slipway.sqlite"), "SELECT count(*) FROM events"], capture_output=True, text=True).stdout.strip()
        print("\nslipway events stored durably: %s" % stored)
    finally:
        for proc, _ in servers.values():
            proc.terminate(); proc.wait()
        shutil.rmtree(work, ignore_errors=True)

if __name__ == "__main__":
    main()
