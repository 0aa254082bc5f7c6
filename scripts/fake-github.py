#!/usr/bin/env python3
"""A small stand-in for GitHub's REST API that checks every request the way GitHub would.

Tests start it (GitHub itself cannot be reached here): `fake-github.py --port P --token T` for a
personal token, or `--app-id ID --installation-id N --app-public-key FILE --installation-token T`
for a GitHub App (the JWT's RS256 signature is verified with openssl, and iat/exp/iss checked).
Every request must carry `User-Agent: slipway/…` and `Accept: application/vnd.github+json`.

Control endpoints for tests (no auth): GET /_control/state, POST /_control/fail
{"count": 3, "status": 500, "headers": {...}}, POST /_control/deliver {"repo": "o/r", "event":
"push", "payload": {...}} (sends to the repository's hook like GitHub: recorded as failed when the
hook URL does not answer), POST /_control/hook {"repo": ..., "url": ...} (another service's hook).
"""
import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATE = {"statuses": [], "hooks": {}, "deliveries": {}, "requests": [], "violations": [], "fail": [], "next_id": 1000, "tokens": []}
LOCK = threading.Lock()
ARGS = None


def b64url_decode(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def verify_jwt(token):
    try:
        header_b64, claims_b64, signature_b64 = token.split(".")
        header = json.loads(b64url_decode(header_b64))
        claims = json.loads(b64url_decode(claims_b64))
    except Exception as error:
        return f"malformed JWT: {error}"
    if header.get("alg") != "RS256":
        return "JWT alg is not RS256"
    now = int(time.time())
    if str(claims.get("iss")) != str(ARGS.app_id):
        return f"JWT iss {claims.get('iss')} is not the app id"
    if not (now - 120 <= claims.get("iat", 0) <= now):
        return "JWT iat is not within the last two minutes"
    if not (now < claims.get("exp", 0) <= now + 600):
        return "JWT exp is not within ten minutes"
    with tempfile.TemporaryDirectory() as tmp:
        data, sig = os.path.join(tmp, "data"), os.path.join(tmp, "sig")
        with open(data, "wb") as f:
            f.write(f"{header_b64}.{claims_b64}".encode())
        with open(sig, "wb") as f:
            f.write(b64url_decode(signature_b64))
        result = subprocess.run(
            ["openssl", "dgst", "-sha256", "-verify", ARGS.app_public_key, "-signature", sig, data], capture_output=True)
    return None if result.returncode == 0 else "JWT signature does not verify with the app's public key"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, status, body, headers=None):
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, str(value))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return "invalid"

    def handle_any(self, method):
        path = urllib.parse.urlparse(self.path)
        body = self.body()
        if path.path.startswith("/_control/"):
            return self.control(method, path.path, body)
        auth = self.headers.get("Authorization", "")
        with LOCK:
            STATE["requests"].append({"method": method, "path": self.path, "authorization": auth, "body": body})
        problems = []
        if not self.headers.get("User-Agent", "").startswith("slipway/"):
            problems.append("User-Agent must be slipway/<version>")
        if self.headers.get("Accept") != "application/vnd.github+json":
            problems.append("Accept must be application/vnd.github+json")
        if body == "invalid":
            problems.append("body is not JSON")
        if problems:
            with LOCK:
                STATE["violations"].extend(problems)
            return self.send_json(400, {"message": "; ".join(problems)})
        m = re.fullmatch(r"/app/installations/(\d+)/access_tokens", path.path)
        if m and method == "POST":
            if not auth.startswith("Bearer ") or ARGS.app_public_key is None:
                return self.send_json(401, {"message": "A JSON web token could not be decoded"})
            problem = verify_jwt(auth[7:])
            if problem or m.group(1) != str(ARGS.installation_id):
                with LOCK:
                    STATE["violations"].append(problem or "wrong installation")
                return self.send_json(401, {"message": problem or "wrong installation"})
            expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
            with LOCK:
                STATE["tokens"].append(ARGS.installation_token)
            return self.send_json(201, {"token": ARGS.installation_token, "expires_at": expires})
        accepted = {f"Bearer {t}" for t in ([ARGS.token] if ARGS.token else []) + ([ARGS.installation_token] if ARGS.installation_token else [])}
        accepted |= {a.replace("Bearer ", "token ") for a in accepted}
        if auth not in accepted:
            return self.send_json(401, {"message": "Bad credentials"})
        with LOCK:
            if STATE["fail"]:
                failure = STATE["fail"].pop(0)
                return self.send_json(failure["status"], {"message": "injected failure"}, failure.get("headers"))
        return self.api(method, path.path, body)

    def api(self, method, path, body):
        m = re.fullmatch(r"/repos/([^/]+/[^/]+)/statuses/([0-9a-f]{40})", path)
        if m and method == "POST":
            if not isinstance(body, dict) or body.get("state") not in ("pending", "success", "failure", "error") or not body.get("context"):
                return self.send_json(422, {"message": "Validation Failed"})
            if len(body.get("description", "")) > 140:
                return self.send_json(422, {"message": "description is too long (maximum is 140 characters)"})
            with LOCK:
                STATE["statuses"].append({"repo": m.group(1), "sha": m.group(2), **body})
            return self.send_json(201, {"id": len(STATE["statuses"]), **body})
        m = re.fullmatch(r"/repos/([^/]+/[^/]+)/hooks", path)
        if m:
            repo = m.group(1)
            with LOCK:
                hooks = STATE["hooks"].setdefault(repo, [])
                if method == "GET":
                    return self.send_json(200, hooks)
                if method == "POST":
                    if not isinstance(body, dict) or "url" not in body.get("config", {}):
                        return self.send_json(422, {"message": "Validation Failed"})
                    STATE["next_id"] += 1
                    hook = {"id": STATE["next_id"], "name": "web", "active": body.get("active", True), "events": body.get("events", ["push"]),
                            "config": dict(body["config"])}
                    hooks.append(hook)
                    return self.send_json(201, self.public(hook))
        m = re.fullmatch(r"/repos/([^/]+/[^/]+)/hooks/(\d+)", path)
        if m:
            repo, hook_id = m.group(1), int(m.group(2))
            with LOCK:
                hooks = STATE["hooks"].setdefault(repo, [])
                hook = next((h for h in hooks if h["id"] == hook_id), None)
                if hook is None:
                    return self.send_json(404, {"message": "Not Found"})
                if method == "PATCH":
                    hook["config"] = dict(body["config"])
                    hook["events"] = body.get("events", hook["events"])
                    hook["active"] = body.get("active", hook["active"])
                    return self.send_json(200, self.public(hook))
                if method == "DELETE":
                    hooks.remove(hook)
                    self.send_response(204)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
        m = re.fullmatch(r"/repos/([^/]+/[^/]+)/hooks/(\d+)/deliveries", path)
        if m and method == "GET":
            with LOCK:
                items = [{k: d[k] for k in ("id", "guid", "status", "status_code", "event", "redelivery")}
                         for d in STATE["deliveries"].get(int(m.group(2)), [])]
            return self.send_json(200, list(reversed(items)))
        m = re.fullmatch(r"/repos/([^/]+/[^/]+)/hooks/(\d+)/deliveries/(\d+)/attempts", path)
        if m and method == "POST":
            hook_id, delivery_id = int(m.group(2)), int(m.group(3))
            with LOCK:
                original = next((d for d in STATE["deliveries"].get(hook_id, []) if d["id"] == delivery_id), None)
                hook = next((h for hooks in STATE["hooks"].values() for h in hooks if h["id"] == hook_id), None)
            if original is None or hook is None:
                return self.send_json(404, {"message": "Not Found"})
            send(hook, original["event"], original["payload"], original["guid"], redelivery=True)
            return self.send_json(202, {})
        return self.send_json(404, {"message": "Not Found"})

    @staticmethod
    def public(hook):
        config = {k: v for k, v in hook["config"].items() if k != "secret"}
        if "secret" in hook["config"]:
            config["secret"] = "********"
        return {**hook, "config": config}

    def control(self, method, path, body):
        with LOCK:
            if path == "/_control/state":
                return self.send_json(200, {k: STATE[k] for k in ("statuses", "hooks", "requests", "violations", "tokens")} | {
                    "deliveries": {str(k): v for k, v in STATE["deliveries"].items()}})
            if path == "/_control/fail":
                STATE["fail"] = [{"status": body.get("status", 500), "headers": body.get("headers", {})} for _ in range(body.get("count", 1))]
                return self.send_json(200, {})
            if path == "/_control/hook":
                STATE["next_id"] += 1
                STATE["hooks"].setdefault(body["repo"], []).append(
                    {"id": STATE["next_id"], "name": "web", "active": True, "events": ["push"], "config": {"url": body["url"], "content_type": "json"}})
                return self.send_json(200, {})
        if path == "/_control/deliver":
            with LOCK:
                hooks = [h for h in STATE["hooks"].get(body["repo"], []) if h["config"]["url"].endswith("/webhooks/github")]
            if not hooks:
                return self.send_json(404, {"message": "no hook"})
            delivery = send(hooks[-1], body.get("event", "push"), body["payload"], str(uuid.uuid4()), redelivery=False)
            return self.send_json(200, delivery)
        return self.send_json(404, {"message": "unknown control"})

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PATCH(self):
        self.handle_any("PATCH")

    def do_DELETE(self):
        self.handle_any("DELETE")


def send(hook, event, payload, guid, redelivery):
    """Delivers like GitHub: signed with the hook's secret; the outcome is recorded either way."""
    data = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "X-GitHub-Event": event, "X-GitHub-Delivery": guid,
               "X-GitHub-Hook-ID": str(hook["id"]), "User-Agent": "GitHub-Hookshot/fake"}
    secret = hook["config"].get("secret")
    if secret:
        headers["X-Hub-Signature-256"] = "sha256=" + hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()
    url = urllib.parse.urlparse(hook["config"]["url"])
    status, code = "OK", 0
    try:
        conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=5)
        conn.request("POST", url.path, body=data, headers=headers)
        code = conn.getresponse().status
        if code >= 300:
            status = f"Invalid HTTP Response: {code}"
    except OSError as error:
        status = f"failed to connect to host: {error}"
    with LOCK:
        STATE["next_id"] += 1
        delivery = {"id": STATE["next_id"], "guid": guid, "status": status, "status_code": code, "event": event,
                    "redelivery": redelivery, "payload": payload}
        STATE["deliveries"].setdefault(hook["id"], []).append(delivery)
    return {k: delivery[k] for k in ("id", "guid", "status")}


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token")
    parser.add_argument("--app-id")
    parser.add_argument("--installation-id")
    parser.add_argument("--app-public-key")
    parser.add_argument("--installation-token")
    ARGS = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    print(f"fake GitHub on 127.0.0.1:{ARGS.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
