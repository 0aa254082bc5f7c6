#!/usr/bin/env python3
"""Writes COUNT distinct signed push bodies, one per line: "sha256=<hmac>\t<compact JSON>".

A body already in the event log is a duplicate whatever its delivery id (SECURITY.md, replay),
so a benchmark that posts one body under many ids would measure the duplicate path: every
delivery of the ingest benchmarks is a distinct, signed body from this file.
    signed-bodies.py SECRET BODY.json COUNT OUT [PREFIX]
"""
import hashlib
import hmac
import json
import sys

secret, source, count, out = sys.argv[1].encode(), sys.argv[2], int(sys.argv[3]), sys.argv[4]
prefix = sys.argv[5] if len(sys.argv) > 5 else "bench"
payload = json.load(open(source))
with open(out, "w") as f:
    for i in range(count):
        payload["bench_nonce"] = f"{prefix}-{i}"
        body = json.dumps(payload, separators=(",", ":"))
        signature = "sha256=" + hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()
        f.write(f"{signature}\t{body}\n")
