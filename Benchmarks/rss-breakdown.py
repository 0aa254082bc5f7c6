#!/usr/bin/env python3
"""Where the idle daemon's resident memory is: anonymous vs file-backed, by mapping and by ELF section.

    Benchmarks/rss-breakdown.py [settle_seconds=4]

Starts the daemon (SLIPWAY_BIN; the installed binary is the static one:
`swift build -c release --static-swift-stdlib --build-path .build-static`, then
SLIPWAY_BIN=.build-static/release/slipway) on a fresh data_dir with a webhook secret and no tasks,
waits for /healthz, lets it settle, and reads /proc/PID/status, /proc/PID/smaps and
/proc/PID/pagemap (the "present" bit of every page of the executable's mappings, which needs no
privilege). For `.text` it also prints how the resident pages lie: runs of contiguous resident
pages (multiples of 16 pages = the kernel mapping 64 KB around a fault, or whole large folios).
Target (issue 18): idle RSS <= 25 MB for the installed binary.
"""
import os, re, shutil, signal, struct, subprocess, sys, tempfile, time
from collections import Counter

from benchlib import free_port, slipway_binary, wait_http

SETTLE = float(sys.argv[1]) if len(sys.argv) > 1 else 4


def sections(binary):
    out = subprocess.run(["readelf", "-SW", binary], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        m = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)", line)
        if m and int(m.group(2), 16) and int(m.group(3), 16):
            yield m.group(1), int(m.group(2), 16), int(m.group(3), 16)


def main():
    binary = os.path.realpath(slipway_binary())
    work = tempfile.mkdtemp(prefix="slipway-rss-", dir="/var/tmp")
    port = free_port()
    os.makedirs(os.path.join(work, "secrets"))
    with open(os.path.join(work, "secrets", "webhook"), "w") as f:
        f.write("rss-benchmark-secret\n")
    os.chmod(os.path.join(work, "secrets", "webhook"), 0o600)
    with open(os.path.join(work, "slipway.yaml"), "w") as f:
        f.write('listen: "127.0.0.1:%d"\ndata_dir: "data"\nadmin_socket: "slipway.sock"\n'
                'webhook: { secret_files: ["secrets/webhook"] }\n' % port)
    log = open(os.path.join(work, "daemon.log"), "w")
    daemon = subprocess.Popen([binary, "serve", "--config", os.path.join(work, "slipway.yaml")], cwd=work, stderr=log)
    try:
        wait_http("http://127.0.0.1:%d/healthz" % port)
        time.sleep(SETTLE)
        pid = daemon.pid
        status = dict(l.split(":", 1) for l in open("/proc/%d/status" % pid) if ":" in l)
        print("binary %s (%.0f MB on disk)" % (binary, os.path.getsize(binary) / 1e6))
        for key in ("VmRSS", "RssAnon", "RssFile", "Threads"):
            print("%-8s %s" % (key, status[key].strip()))
        # Resident kB by mapping (smaps), largest first.
        by_map, name, perms = Counter(), "", ""
        for line in open("/proc/%d/smaps" % pid):
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                parts = line.split()
                perms, name = parts[1], (parts[5] if len(parts) > 5 else "[anon]")
            elif line.startswith("Rss:"):
                by_map["%s %s" % (perms, os.path.basename(name) if name.startswith("/") else name)] += int(line.split()[1])
        print("\n== resident kB by mapping ==")
        for key, kb in by_map.most_common(12):
            print("%8d  %s" % (kb, key))
        # The executable's load base: its mapping at file offset 0.
        base = None
        for line in open("/proc/%d/maps" % pid):
            parts = line.split()
            if len(parts) > 5 and os.path.realpath(parts[5]) == binary and int(parts[2], 16) == 0:
                base = int(parts[0].split("-")[0], 16)
                break
        pagemap = open("/proc/%d/pagemap" % pid, "rb")

        def present(start, size):
            bits = []
            for page in range((base + start) // 4096, (base + start + size + 4095) // 4096):
                pagemap.seek(page * 8)
                bits.append(struct.unpack("Q", pagemap.read(8))[0] >> 63)
            return bits

        print("\n== the executable's sections: size and resident kB ==")
        text_bits = []
        for section, start, size in sections(binary):
            bits = present(start, size)
            if section == ".text":
                text_bits = bits
            if sum(bits) * 4 >= 64:
                print("%-22s %8d kB  resident %8d kB" % (section, size // 1024, sum(bits) * 4))
        runs, current = [], 0
        for bit in text_bits + [0]:
            if bit:
                current += 1
            elif current:
                runs.append(current)
                current = 0
        sixteen = sum(r for r in runs if r % 16 == 0)
        print("\n.text: %d resident pages in %d runs; %d%% of them in runs that are multiples of 16 pages (64 KB); longest run %d pages"
              % (sum(text_bits), len(runs), 100 * sixteen // max(1, sum(text_bits)), max(runs or [0])))
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=10)
        except subprocess.TimeoutExpired:
            daemon.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
