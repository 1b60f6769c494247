#!/usr/bin/env python3
"""bench/hitratio.py: hit ratio per megabyte, corecache beside memcached 1.6.

A cache-aside client (get; on a miss, set the value) at a fixed -m, run
against each server in turn with the same flags, the same key sequence and
the same value sizes. Reports, per phase: hit ratio, items and bytes held,
evictions and the server's RSS. Everything is bounded: a fixed number of
requests per phase, a socket timeout, a wall-clock limit per run.

    bench/hitratio.py [--build build] [--memory 64] [--threads 2]
                      [--requests 400000] [--keys 200000] [--quick] [--markdown]

Workloads (each a fresh server per run):

  zipf099   Zipf 0.99 popularity over --keys keys, value sizes from the
            "web" spread below (fixed per key); phases: warm, measure.
  zipf08    the same at Zipf 0.8 (a flatter popularity).
  shift     Zipf 0.99; in phase "small" every value is 50..500 B, in phase
            "large" the same keys carry 1..16 KB values ("small values in the
            morning, larger ones in the afternoon"), then "large2" keeps the
            large sizes: the steady state after the drift.

Value sizes ("web" spread, log-uniform inside each band, chosen by key):
  40% 16..128 B, 35% 128 B..1 KB, 20% 1..8 KB, 5% 8..64 KB.

The client sends gets in batches of --batch distinct keys (one multi-get;
duplicates inside a batch are dropped, the same for both servers), then
sets every missed key with noreply on the same connection, so the next
batch sees them. The key sequence comes from a seeded generator: both
servers see exactly the same requests.
"""
import argparse
import bisect
import os
import random
import socket
import subprocess
import sys
import time

import benchlib  # noqa: E402
from benchlib import free_port, rss_kb  # noqa: E402,F401 (rss_per_item.py imports rss_kb from here)

MEMCACHED = "/usr/bin/memcached"


class Server:
    def __init__(self, name, argv):
        self.name = name
        self.port = free_port()
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.proc = subprocess.Popen(argv + ["-p", str(self.port), "-l", "127.0.0.1"] + user,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("%s did not start" % self.name)
                time.sleep(0.05)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def stop(self):
        self.sock.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def recv_until(self, term):
        while True:
            i = self.buf.find(term)
            if i >= 0:
                out, self.buf = self.buf[:i + len(term)], self.buf[i + len(term):]
                return out
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise RuntimeError("%s closed the connection" % self.name)
            self.buf += chunk

    def recv_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise RuntimeError("%s closed the connection" % self.name)
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def multiget(self, keys):
        """The set of keys found."""
        self.sock.sendall(b"get " + b" ".join(keys) + b"\r\n")
        found = set()
        while True:
            line = self.recv_until(b"\r\n")
            if line == b"END\r\n":
                return found
            parts = line.split()
            if parts[0] != b"VALUE":
                raise RuntimeError("%s: unexpected %r" % (self.name, line[:80]))
            found.add(parts[1])
            self.recv_exact(int(parts[3]) + 2)

    def set_noreply(self, items, blob):
        out = []
        for key, size in items:
            out.append(b"set %s 0 0 %d noreply\r\n" % (key, size))
            out.append(blob[:size])
            out.append(b"\r\n")
        self.sock.sendall(b"".join(out))

    def stats(self):
        self.sock.sendall(b"stats\r\n")
        text = self.recv_until(b"END\r\n").decode()
        out = {}
        for line in text.split("\r\n"):
            p = line.split()
            if len(p) == 3 and p[0] == "STAT":
                out[p[1]] = p[2]
        return out


def zipf_cdf(n, s):
    acc, cdf = 0.0, []
    for i in range(1, n + 1):
        acc += 1.0 / (i ** s)
        cdf.append(acc)
    return [c / acc for c in cdf]


WEB_BANDS = [(0.40, 16, 128), (0.35, 128, 1024), (0.20, 1024, 8192), (0.05, 8192, 65536)]


def size_web(rng):
    r = rng.random()
    for p, lo, hi in WEB_BANDS:
        if r < p:
            break
        r -= p
    return int(lo * (hi / lo) ** rng.random())


def size_uniform_log(rng, lo, hi):
    return int(lo * (hi / lo) ** rng.random())


def sizes_for(nkeys, kind, seed):
    rng = random.Random(seed)
    if kind == "web":
        return [size_web(rng) for _ in range(nkeys)]
    if kind == "small":
        return [size_uniform_log(rng, 50, 500) for _ in range(nkeys)]
    if kind == "large":
        return [size_uniform_log(rng, 1000, 16000) for _ in range(nkeys)]
    raise ValueError(kind)


WORKLOADS = {
    "zipf099": (0.99, [("warm", "web"), ("measure", "web")]),
    "zipf08": (0.8, [("warm", "web"), ("measure", "web")]),
    "shift": (0.99, [("small", "small"), ("large", "large"), ("large2", "large")]),
}


def run(server, workload, args, blob):
    skew, phases = WORKLOADS[workload]
    cdf = zipf_cdf(args.keys, skew)
    # a fixed permutation so that popular keys are not the low numbers (the
    # servers hash them anyway; this keeps sizes and ranks independent)
    perm = list(range(args.keys))
    random.Random(7).shuffle(perm)
    keys = [b"hr:%d" % perm[i] for i in range(args.keys)]
    rng = random.Random(12345)
    results = []
    deadline = time.monotonic() + args.time_limit
    for phase, kind in phases:
        size = sizes_for(args.keys, kind, {"web": 99, "small": 11, "large": 22}[kind])
        gets = hits = 0
        t0 = time.monotonic()
        while gets < args.requests and time.monotonic() < deadline:
            batch = {}
            while len(batch) < args.batch:
                i = bisect.bisect_left(cdf, rng.random())
                if i >= args.keys:
                    i = args.keys - 1
                batch[keys[i]] = size[i]
            found = server.multiget(list(batch))
            gets += len(batch)
            hits += len(found)
            server.set_noreply([(k, s) for k, s in batch.items() if k not in found], blob)
        st = server.stats()
        results.append({
            "phase": phase, "gets": gets, "hit_ratio": hits / gets if gets else 0.0,
            "items": int(st.get("curr_items", 0)), "bytes": int(st.get("bytes", 0)),
            "evictions": int(st.get("evictions", 0)), "rss_kb": rss_kb(server.proc.pid),
            "seconds": time.monotonic() - t0,
            "engine": {k: st[k] for k in ("evict_kept", "ghost_hits", "seg_compacted",
                                          "seg_dead_bytes", "seg_small") if k in st},
        })
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--memory", type=int, default=64, help="-m for both servers (MB)")
    ap.add_argument("--threads", type=int, default=2, help="-t for both servers")
    ap.add_argument("--keys", type=int, default=200000)
    ap.add_argument("--requests", type=int, default=400000, help="gets per phase")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--time-limit", type=float, default=300, help="seconds per run, at most")
    ap.add_argument("--workloads", default="zipf099,zipf08,shift")
    ap.add_argument("--servers", default="memcached,corecache", help="which to run, in order")
    ap.add_argument("--quick", action="store_true", help="a tenth of the requests")
    ap.add_argument("--markdown", action="store_true", help="print a RESULTS.md section")
    ap.add_argument("--results", help="write this script's section of a Markdown file "
                                      "(bench/RESULTS.md)")
    args = ap.parse_args()
    if args.quick:
        args.requests //= 10
    corecache = os.path.join(args.build, "corecache")
    for path in (corecache, MEMCACHED):
        if not os.access(path, os.X_OK):
            print("%s not found (build first; apt-get install memcached)" % path, file=sys.stderr)
            return 2
    blob = b"v" * 70000
    known = {"memcached": [MEMCACHED, "-U", "0"], "corecache": [corecache]}
    servers = [(name, known[name]) for name in args.servers.split(",")]
    common = ["-t", str(args.threads), "-m", str(args.memory)]
    rows = []
    for workload in args.workloads.split(","):
        for name, argv in servers:
            server = Server(name, argv + common)
            try:
                for r in run(server, workload, args, blob):
                    r.update(workload=workload, server=name)
                    rows.append(r)
                    print("%-8s %-9s %-8s gets %7d  hit %.4f  items %7d  bytes %6.1f MB  "
                          "evictions %8d  rss %6.1f MB" %
                          (workload, name, r["phase"], r["gets"], r["hit_ratio"], r["items"],
                           r["bytes"] / 1e6, r["evictions"], r["rss_kb"] / 1024) +
                          ("  %s" % r["engine"] if r["engine"] else ""),
                          file=sys.stderr, flush=True)
            finally:
                server.stop()
    table = ["| workload | phase | server | hit ratio | items | bytes (MB) | evictions | RSS (MB) |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        table.append("| %s | %s | %s | %.4f | %d | %.1f | %d | %.1f |" %
                     (r["workload"], r["phase"], r["server"], r["hit_ratio"], r["items"],
                      r["bytes"] / 1e6, r["evictions"], r["rss_kb"] / 1024))
    if args.markdown:
        print("\n".join(table))
    if args.results:
        flags = " ".join(a for a in sys.argv[1:] if not a.startswith("--results") and
                         a != args.results)
        section = ("## Hit ratio per megabyte (bench/hitratio.py)\n\n"
                   "Written by `/usr/bin/python3 bench/hitratio.py %s --results bench/RESULTS.md` "
                   "(`-t %d -m %d` for both servers, memcached also `-U 0`; %d keys, %d gets "
                   "per phase; workloads and value sizes: the script's docstring). Hit ratios do "
                   "not depend on the machine's speed.\n\n%s\n"
                   % (flags, args.threads, args.memory, args.keys, args.requests, "\n".join(table)))
        benchlib.write_section(args.results, "hitratio.py", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
