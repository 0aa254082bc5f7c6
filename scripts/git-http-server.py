#!/usr/bin/env python3
"""Git over HTTP for Slipway's tests: `git http-backend` (real git smart HTTP) behind basic auth.

Repositories live in GIT_PROJECT_ROOT. Paths under /private/ need the password in the token
file (any user name, as GitHub accepts with a personal access token); /public/ is open.
Every request is logged with its path and whether it was authorised, never the password.

    git-http-server.py --root DIR --port N --token-file FILE
"""
import argparse, base64, http.server, os, socketserver, subprocess, sys

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def authorised(self):
        if not self.path.startswith("/private/"):
            return True
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            _, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except Exception:
            return False
        with open(self.server.token_file) as f:
            return password == f.read().strip()

    def handle_git(self):
        if not self.authorised():
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="slipway-test-git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        env = {
            "GIT_PROJECT_ROOT": self.server.root, "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": path,
            "QUERY_STRING": query, "REQUEST_METHOD": self.command, "REMOTE_USER": "test",
            "CONTENT_TYPE": self.headers.get("Content-Type", ""), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        }
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        env["CONTENT_LENGTH"] = str(len(body))
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.split(b"\r\n"):
            name, _, value = line.decode().partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = handle_git
    do_POST = handle_git

    def log_message(self, fmt, *args):
        sys.stderr.write("git-http %s %s\n" % (self.address_string(), fmt % args))

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--root", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--token-file", required=True)
    a = p.parse_args()
    server = Server(("127.0.0.1", a.port), Handler)
    server.root, server.token_file = os.path.abspath(a.root), a.token_file
    server.serve_forever()

if __name__ == "__main__":
    main()
