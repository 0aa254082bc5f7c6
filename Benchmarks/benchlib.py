"""Helpers the benchmark scripts share: the test environment's values, processes, ports, timing."""
import datetime, os, socket, subprocess, time, urllib.error, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def env_file():
    """The test environment's values (.test-env/env, written by scripts/test-env.sh)."""
    values = {}
    with open(os.path.join(ROOT, ".test-env/env")) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            values[k] = v
    return values


def run(args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def ts(text):
    """A Slipway timestamp (2026-11-27T10:00:00.000Z) as epoch seconds."""
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()


def pct(values, p):
    values = sorted(values)
    return values[max(0, min(len(values) - 1, int(round(p / 100 * (len(values) - 1)))))]


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    return port


def slipway_binary():
    """SLIPWAY_BIN, else the release build, else the debug build."""
    binary = os.environ.get("SLIPWAY_BIN") or next(
        (p for p in (os.path.join(ROOT, ".build/release/slipway"), os.path.join(ROOT, ".build/debug/slipway")) if os.path.exists(p)), None)
    assert binary, "build slipway first (swift build -c release)"
    return binary


def wait_http(url):
    """Until `url` answers (any HTTP status counts); exits after 10 s."""
    for _ in range(100):
        try:
            urllib.request.urlopen(url, timeout=1); return
        except urllib.error.HTTPError:
            return
        except Exception:
            time.sleep(0.1)
    raise SystemExit("server at %s did not start" % url)
