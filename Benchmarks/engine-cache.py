#!/usr/bin/env python3
"""Engine cache benchmark: the same rebuild after a one-line change on
  (a) the engine that built the previous commit (warm layer cache),
  (b) a cold engine with `cache: registry` (layers from <repo>:buildcache, pushed by the warm engine's build),
  (c) a cold engine without it (every layer built again).

Needs the test environment (scripts/test-env.sh: local dockerd, TCP+TLS dockerd, registry, git server)
and a build of slipway (SLIPWAY_BIN, default .build/release/slipway, else .build/debug/slipway).
    Benchmarks/engine-cache.py [slow_seconds=20] [layer_mb=20]

The Dockerfile has a slow early layer (`sleep` plus a layer of random bytes, as a dependency install
would be) and the one-line change is in a file copied after it. "Cold" means the TLS engine holds
nothing of this Dockerfile: its build cache is pruned and the benchmark's images removed before
each cold build. The times are the run's `build` step as `slipway run show --output json` reports it.
Targets (issue 14): (b) <= 1.5 x (a), and (c) >= 2 x (b).
"""
import json, os, shutil, socket, subprocess, sys, tempfile, time, urllib.request, uuid

from benchlib import ROOT, env_file, free_port, run, slipway_binary, wait_http

SLOW = int(sys.argv[1]) if len(sys.argv) > 1 else 20
LAYER_MB = int(sys.argv[2]) if len(sys.argv) > 2 else 20


def main():
    e = env_file()
    binary = slipway_binary()
    work = tempfile.mkdtemp(prefix="slipway-engcache-", dir="/var/tmp")
    name = "engcache%d" % os.getpid()
    bare = os.path.join(e["SLIPWAY_TEST_GIT_ROOT"], "public", name + ".git")
    url = "%s/public/%s.git" % (e["SLIPWAY_TEST_GIT_URL"], name)
    src = os.path.join(work, "src")
    gitenv = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@b", GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@b")
    run(["git", "init", "-q", "--bare", bare])
    run(["git", "init", "-q", "-b", "main", src])
    os.makedirs(os.path.join(src, "app"))
    nonce = uuid.uuid4().hex  # no earlier benchmark's cache applies
    with open(os.path.join(src, "app/Dockerfile"), "w") as f:
        f.write("FROM %s\nRUN echo %s && sleep %d && busybox head -c %d /dev/urandom > /deps\nCOPY app.txt /app.txt\nRUN cat /app.txt\n" % (
            e["SLIPWAY_TEST_BASE_IMAGE"], nonce, SLOW, LAYER_MB * 1000000))

    def commit(text):
        with open(os.path.join(src, "app/app.txt"), "w") as f:
            f.write(text + "\n")
        run(["git", "-C", src, "add", "-A"], env=gitenv)
        run(["git", "-C", src, "commit", "-qm", text], env=gitenv)
        run(["git", "-C", src, "push", "-q", "--force", bare, "HEAD:refs/heads/main"], env=gitenv)

    tls = e["SLIPWAY_TEST_TLS_DIR"]
    registry = e["SLIPWAY_TEST_REGISTRY"]
    port = free_port()
    os.makedirs(os.path.join(work, "secrets"))
    with open(os.path.join(work, "secrets/webhook"), "w") as f:
        f.write("bench-secret")
    os.chmod(os.path.join(work, "secrets/webhook"), 0o600)

    def task(task_name, label, repo, cache):
        return """  - name: %s
    context: "%s#main:app"
    tags: ["%s/%s:{{.Run.ID}}"]
    engine_labels: [%s]
%s""" % (task_name, url, registry, repo, label, "    cache: registry\n" if cache else "")

    with open(os.path.join(work, "slipway.yaml"), "w") as f:
        f.write("""listen: "127.0.0.1:%d"
data_dir: "data"
admin_socket: "slipway.sock"
webhook: { secret_files: ["secrets/webhook"] }
builds: { docker: "%s", network: "none", buildkit: true, default_timeout: "10m" }
registries:
  - { server: "%s", username: "%s", password_file: "%s" }
engines:
  - { name: warm, host: "%s", max_concurrent: 1, labels: [warm] }
  - name: cold
    host: "%s"
    max_concurrent: 1
    labels: [cold]
    tls: { ca_file: "%s/ca.pem", cert_file: "%s/client.pem", key_file: "%s/client-key.pem" }
tasks:
%s%s%s%s""" % (port, e["SLIPWAY_TEST_DOCKER"], registry, e["SLIPWAY_TEST_REGISTRY_USER"], e["SLIPWAY_TEST_REGISTRY_PASSWORD_FILE"],
                 e["SLIPWAY_TEST_DOCKER_HOST"], e["SLIPWAY_TEST_TLS_DOCKER_HOST"], tls, tls, tls,
                 task("a-warm", "warm", name + "-a", False), task("b-seed", "warm", name + "-b", True),
                 task("b-cold-cached", "cold", name + "-b", True), task("c-cold", "cold", name + "-c", False)))
    config = os.path.join(work, "slipway.yaml")
    cold_env = dict(os.environ, DOCKER_HOST=e["SLIPWAY_TEST_TLS_DOCKER_HOST"], DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=tls + "/client-dir")

    def make_cold():
        """The cold engine forgets everything of this benchmark: build cache and images."""
        run([e["SLIPWAY_TEST_DOCKER"], "builder", "prune", "-af"], env=cold_env)
        images = run([e["SLIPWAY_TEST_DOCKER"], "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"], env=cold_env).stdout.split()
        mine = [i for i in images if name in i]
        if mine:
            run([e["SLIPWAY_TEST_DOCKER"], "rmi", "-f"] + mine, env=cold_env)

    def build(task_name):
        out = run([binary, "task", "run", task_name, "--no-logs", "--config", config]).stdout
        run_id = next(w for w in out.split() if w.startswith("sw")).rstrip(":,.")
        while True:
            shown = json.loads(run([binary, "run", "show", run_id, "--output", "json", "--config", config]).stdout)
            if shown["status"] not in ("Queued", "Running"):
                break
            time.sleep(0.2)
        assert shown["status"] == "Succeeded", (task_name, shown)
        log = open(os.path.join(work, "data/runs/%s.log" % run_id)).read()
        return shown["durations"]["build"], shown["engine"], log

    daemon = subprocess.Popen([binary, "serve", "--config", config], stderr=open(os.path.join(work, "daemon.log"), "w"),
                              env=dict(os.environ, DOCKER_HOST=e["SLIPWAY_TEST_DOCKER_HOST"]), cwd=work)
    try:
        wait_http("http://127.0.0.1:%d/healthz" % port)
        commit("version 1")
        first, _, _ = build("a-warm")                    # the warm engine builds the previous commit
        build("b-seed")                                  # ... and pushes <repo>-b:buildcache with inline cache metadata
        commit("version 2")                              # the one-line change
        a, a_engine, _ = build("a-warm")
        make_cold()
        c, c_engine, _ = build("c-cold")
        make_cold()
        b, b_engine, b_log = build("b-cold-cached")
        assert (a_engine, b_engine, c_engine) == ("warm", "cold", "cold"), (a_engine, b_engine, c_engine)
        reused = "CACHED" in b_log or "Using cache" in b_log
        print("RESULT engine_cache slow_layer_s=%d layer_mb=%d first_build_s=%.2f" % (SLOW, LAYER_MB, first))
        print("RESULT engine_cache a_warm_s=%.2f b_cold_registry_cache_s=%.2f c_cold_s=%.2f b_over_a=%.2f c_over_b=%.2f cache_reused=%s" % (
            a, b, c, b / a, c / b, reused))
        print("TARGET b <= 1.5 x a: %s; c >= 2 x b: %s" % ("met" if b <= 1.5 * a else "NOT met", "met" if c >= 2 * b else "NOT met"))
    finally:
        daemon.terminate()
        daemon.wait()
        if os.environ.get("KEEP"):
            print("kept", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(bare, ignore_errors=True)


if __name__ == "__main__":
    main()
