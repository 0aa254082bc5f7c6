#!/usr/bin/env python3
"""Pipeline benchmark: what Slipway adds to a build, measured against the same commands by hand.

Needs the test environment (scripts/test-env.sh) and a release build (swift build -c release).
    Benchmarks/pipeline.py [runs=20]

Reports, over N pushes built one after another:
  dispatch  webhook 202 (events.received_at) -> the `$ docker build` line of the run log (p50/p99);
            this includes the mirror fetch and the checkout of the exact commit
  run       202 -> run Succeeded (build + push included)
  by hand   a shell-equivalent sequence: fresh `git clone` + `docker build` + `docker push`
  mirror    fetch step of the first run (clone --mirror) vs the later ones (fetch into the warm mirror)
"""
import datetime, hashlib, hmac, json, os, shutil, socket, sqlite3, statistics, subprocess, sys, tempfile, time, urllib.request

from benchlib import ROOT, env_file, free_port, pct, run, ts, wait_http

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20

def main():
    e = env_file()
    binary = os.environ.get("SLIPWAY_BIN", os.path.join(ROOT, ".build/release/slipway"))
    work = tempfile.mkdtemp(prefix="slipway-pipe-", dir="/var/tmp")
    name = "bench%d" % os.getpid()
    bare = os.path.join(e["SLIPWAY_TEST_GIT_ROOT"], "public", name + ".git")
    url = "%s/public/%s.git" % (e["SLIPWAY_TEST_GIT_URL"], name)
    src = os.path.join(work, "src")
    gitenv = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@b", GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@b")
    run(["git", "init", "-q", "--bare", bare])
    run(["git", "init", "-q", "-b", "main", src])
    os.makedirs(os.path.join(src, "app"))
    with open(os.path.join(src, "app/Dockerfile"), "w") as f:
        f.write("FROM %s\nCOPY payload.txt /payload.txt\nRUN wc -c /payload.txt\n" % e["SLIPWAY_TEST_BASE_IMAGE"])
    # Some history, so clone vs fetch differs as it does for a real repository.
    for i in range(30):
        with open(os.path.join(src, "app/history-%d.txt" % i), "w") as f:
            f.write(os.urandom(20000).hex())
        run(["git", "-C", src, "add", "-A"], env=gitenv)
        run(["git", "-C", src, "commit", "-qm", "history %d" % i], env=gitenv)

    secret = "bench-secret"
    os.makedirs(os.path.join(work, "secrets"))
    with open(os.path.join(work, "secrets/webhook"), "w") as f:
        f.write(secret)
    os.chmod(os.path.join(work, "secrets/webhook"), 0o600)
    port = free_port()
    registry = e["SLIPWAY_TEST_REGISTRY"]
    with open(os.path.join(work, "slipway.yaml"), "w") as f:
        f.write("""listen: "127.0.0.1:%d"
data_dir: "data"
webhook: { secret_files: ["secrets/webhook"] }
builds: { docker: "%s", network: "none", buildkit: true, max_concurrent: 1 }
registries:
  - { server: "%s", username: "%s", password_file: "%s" }
tasks:
  - name: bench
    context: "%s#main:app"
    tags: ["%s/%s:{{.Run.ID}}"]
""" % (port, e["SLIPWAY_TEST_DOCKER"], registry, e["SLIPWAY_TEST_REGISTRY_USER"], e["SLIPWAY_TEST_REGISTRY_PASSWORD_FILE"], url, registry, name))
    denv = dict(os.environ, DOCKER_HOST=e["SLIPWAY_TEST_DOCKER_HOST"])
    daemon = subprocess.Popen([binary, "serve", "--config", os.path.join(work, "slipway.yaml")], stderr=open(os.path.join(work, "daemon.log"), "w"), env=denv)
    try:
        wait_http("http://127.0.0.1:%d/healthz" % port)
        db = os.path.join(work, "data/slipway.sqlite")
        dispatch, total, fetch, phases = [], [], [], []
        for i in range(N):
            with open(os.path.join(src, "app/payload.txt"), "w") as f:
                f.write("run %d %s\n" % (i, time.time()))
            run(["git", "-C", src, "add", "-A"], env=gitenv)
            run(["git", "-C", src, "commit", "-qm", "bench %d" % i], env=gitenv)
            run(["git", "-C", src, "push", "-q", "--force", bare, "HEAD:refs/heads/main"], env=gitenv)
            sha = run(["git", "-C", src, "rev-parse", "HEAD"]).stdout.strip()
            body = json.dumps({"ref": "refs/heads/main", "after": sha, "before": "0" * 40, "head_commit": {"message": "bench"},
                               "commits": [{"added": [], "modified": ["app/payload.txt"], "removed": []}],
                               "repository": {"clone_url": url}}).encode()
            sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            req = urllib.request.Request("http://127.0.0.1:%d/webhooks/github" % port, data=body, method="POST", headers={
                "Content-Type": "application/json", "X-GitHub-Event": "push", "X-GitHub-Delivery": "bench-%d" % i, "X-Hub-Signature-256": sig})
            answered = time.time()
            seq = json.load(urllib.request.urlopen(req))["event"]
            run_id = "sw%d" % (i + 1)
            while True:
                con = sqlite3.connect(db)
                row = con.execute("""SELECT s.status, s.at, s.durations FROM runs r JOIN run_states s ON s.seq =
                    (SELECT MAX(seq) FROM run_states WHERE run = r.id) WHERE r.run_id = ?""", (run_id,)).fetchone()
                received = con.execute("SELECT received_at FROM events WHERE seq = ?", (seq,)).fetchone()[0]
                con.close()
                if row and row[0] not in ("Queued", "Running"):
                    break
                time.sleep(0.02)
            assert row[0] == "Succeeded", (run_id, row)
            with open(os.path.join(work, "data/runs/%s.log" % run_id)) as f:
                lines = f.readlines()
            start = next(l.split(" ", 1)[0] for l in lines if " $ docker build " in l)
            first = lines[0].split(" ", 1)[0]
            checkout = next(l.split(" ", 1)[0] for l in lines if " read-tree " in l)
            dispatch.append((ts(start) - ts(received)) * 1000)
            # where the dispatch time goes: event stored -> run log opened (matcher + builder claim),
            # -> checkout starts (mirror fetch), -> docker build starts (checkout, build preparation)
            phases.append(((ts(first) - ts(received)) * 1000, (ts(checkout) - ts(first)) * 1000, (ts(start) - ts(checkout)) * 1000))
            total.append(ts(row[1]) - ts(received))
            fetch.append(json.loads(row[2])["fetch"])

        # The same work by hand: a new commit each time, fresh clone + checkout + build + push.
        cfg = os.path.join(work, "hand-docker")
        os.makedirs(cfg)
        with open(e["SLIPWAY_TEST_REGISTRY_PASSWORD_FILE"]) as pw:
            subprocess.run([e["SLIPWAY_TEST_DOCKER"], "--config", cfg, "login", "-u", e["SLIPWAY_TEST_REGISTRY_USER"], "--password-stdin", registry],
                           stdin=pw, env=denv, check=True, capture_output=True)
        hand, clones = [], []
        for i in range(min(N, 10)):
            with open(os.path.join(src, "app/payload.txt"), "w") as f:
                f.write("hand %d %s\n" % (i, time.time()))
            run(["git", "-C", src, "commit", "-qam", "hand %d" % i], env=gitenv)
            run(["git", "-C", src, "push", "-q", "--force", bare, "HEAD:refs/heads/main"], env=gitenv)
            sha = run(["git", "-C", src, "rev-parse", "HEAD"]).stdout.strip()
            d = tempfile.mkdtemp(dir=work)
            t0 = time.time()
            run(["git", "clone", "-q", url, d + "/repo"])
            clones.append(time.time() - t0)
            run(["git", "-C", d + "/repo", "checkout", "-q", sha])
            tag = "%s/%s:hand%d" % (registry, name, i)
            run([e["SLIPWAY_TEST_DOCKER"], "--config", cfg, "build", "--network", "none", "--progress", "plain", "-t", tag, d + "/repo/app"],
                env=dict(denv, DOCKER_BUILDKIT="1"))
            run([e["SLIPWAY_TEST_DOCKER"], "--config", cfg, "push", tag], env=denv)
            hand.append(time.time() - t0)
            shutil.rmtree(d)

        print("RESULT dispatch_phases_p50_ms queue=%.1f fetch=%.1f checkout_and_prepare=%.1f" % tuple(
            statistics.median(p[k] for p in phases) for k in range(3)))
        print("RESULT pipeline runs=%d dispatch_p50_ms=%.1f dispatch_p99_ms=%.1f run_p50_s=%.3f run_p99_s=%.3f by_hand_p50_s=%.3f overhead_p50=%+.1f%%" % (
            N, pct(dispatch, 50), pct(dispatch, 99), pct(total, 50), pct(total, 99), statistics.median(hand),
            (pct(total, 50) / statistics.median(hand) - 1) * 100))
        print("RESULT mirror first_fetch_s=%.3f (clone --mirror) warm_fetch_p50_s=%.3f fresh_clone_by_hand_p50_s=%.3f" % (
            fetch[0], statistics.median(fetch[1:]) if len(fetch) > 1 else float("nan"), statistics.median(clones)))
    finally:
        daemon.terminate()
        daemon.wait()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(bare, ignore_errors=True)

if __name__ == "__main__":
    main()
