#!/usr/bin/env python3
"""rolling_restart.py: the hit ratio of a cache-aside client through a
rolling restart of a warm 3-node cluster, corecache beside memcached 1.6.18,
in one run (issue 14).

For each server: `deploy/cluster.sh --warm` starts 3 nodes on loopback ports
(`-t 1 -m 64`, each with -e on a tmpfs directory of its own), a client maps
20000 keys to nodes with pymemcache's rendezvous hash and loads them, then
runs cache-aside (get; on a miss or an error, set) while `cluster.sh
rolling-restart` stops and restarts each node in turn, waiting for it to
answer before the next. Stops are graceful: SIGTERM for corecache, SIGUSR1
for memcached (the one signal on which it saves its -e memory). The hit
ratio is printed per 250 ms; the section in RESULTS.md gives, per server,
the lowest ratio in any 250 ms, the ratio over the whole restart, and the
hits among the first 3000 requests after the restart ended (a node back
cold misses about a third of them).

    /usr/bin/python3 bench/rolling_restart.py [--results bench/RESULTS.md]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from pymemcache.client.base import Client
from pymemcache.client.rendezvous import RendezvousHash

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER_SH = os.path.join(REPO, "deploy", "cluster.sh")
NKEYS = 20_000
VALUE = b"v" * 100


class CacheAside:
    def __init__(self, servers):
        self.addrs = [(h, int(p)) for h, p in (s.rsplit(":", 1) for s in servers)]
        self.ring = RendezvousHash()
        for i in range(len(self.addrs)):
            self.ring.add_node(i)
        self.clients = [None] * len(self.addrs)

    def get_or_load(self, key):
        i = self.ring.get_node(key)
        try:
            if self.clients[i] is None:
                self.clients[i] = Client(self.addrs[i], connect_timeout=0.5, timeout=2)
            if self.clients[i].get(key) is not None:
                return True
            self.clients[i].set(key, VALUE, noreply=False)
        except Exception:  # noqa: BLE001: the node is restarting
            if self.clients[i] is not None:
                self.clients[i].close()
            self.clients[i] = None
        return False

    def close(self):
        for c in self.clients:
            if c is not None:
                c.close()


def run(name, binary, signal_name):
    tmp = tempfile.mkdtemp(prefix="corecache-rolling-bench-")
    state = os.path.join(tmp, "state")
    sh = [CLUSTER_SH, "--state", state]
    out = subprocess.run(sh + ["-n", "3", "--binary", binary, "--warm", "--stop-signal", signal_name,
                               "start", "--", "-t", "1", "-m", "64"],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError("cluster.sh start: %s" % out.stderr)
    client = CacheAside(out.stdout.strip().split(","))
    try:
        keys = ["key:%d" % i for i in range(NKEYS)]
        for k in keys:
            client.get_or_load(k)
        proc = subprocess.Popen(sh + ["rolling-restart"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        err = {}
        reader = threading.Thread(target=lambda: err.update(text=proc.stderr.read().decode(),
                                                            done=time.monotonic()))
        reader.start()
        trace = []
        t0 = time.monotonic()
        start, n, h, j, total_n, total_h = t0, 0, 0, 0, 0, 0
        while proc.poll() is None and time.monotonic() < t0 + 300:
            hit = client.get_or_load(keys[(j * 7919) % NKEYS])
            h += hit
            n += 1
            j += 1
            if time.monotonic() - start >= 0.25:
                trace.append((start - t0, n, h))
                total_n += n
                total_h += h
                start, n, h = time.monotonic(), 0, 0
        proc.wait(timeout=300)
        reader.join()
        proc.stderr.close()
        total_n += n
        total_h += h
        after = sum(client.get_or_load(keys[(i * 7919 + 13) % NKEYS]) for i in range(3000))
        return {"server": name, "trace": trace, "restart_s": err["done"] - t0,
                "loop_s": time.monotonic() - t0,
                "overall": total_h / max(total_n, 1),
                "min": min((hh / nn for _, nn, hh in trace if nn), default=0.0),
                "after": after, "log": err.get("text", "")}
    finally:
        client.close()
        subprocess.run(sh + ["stop"], stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
        shutil.rmtree(tmp, True)


KEEP_BEGIN = "<!-- kept by compare.py: sections of other scripts -->"
BEGIN, END = "<!-- bench/rolling_restart.py begin -->", "<!-- bench/rolling_restart.py end -->"


def write_section(path, rows):
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=REPO).stdout.strip() or "unknown"
    lines = [BEGIN, "## Hit ratio through a rolling restart (issue 14)", "",
             "`%s` (commit %s, %s, load average %.1f at the end). 3 nodes `-t 1 -m 64 -e` on tmpfs, "
             "20000 keys of 100 bytes, a cache-aside client (rendezvous hash, no rehashing: a down "
             "node's keys miss); stops by SIGTERM (corecache) or SIGUSR1 (memcached)."
             % (" ".join(["bench/rolling_restart.py"] + sys.argv[1:]), commit,
                time.strftime("%Y-%m-%d"), os.getloadavg()[0]),
             "",
             "| server | rolling-restart took (s) | client loop ran (s) | lowest 250 ms hit ratio "
             "| hit ratio during the loop | hits of the first 3000 requests after |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append("| %s | %.1f | %.1f | %.3f | %.3f | %d |" % (
            r["server"], r["restart_s"], r["loop_s"], r["min"], r["overall"], r["after"]))
    lines += ["", "Hit ratio per 250 ms (seconds since the restart began: ratio):", ""]
    for r in rows:
        lines.append("- %s: %s" % (r["server"], ", ".join("%.1f: %.2f" % (t, hh / nn)
                                                          for t, nn, hh in r["trace"] if nn)))
    lines += ["", END]
    section = "\n".join(lines)
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + section + text[text.index(END) + len(END):]
    else:
        tls = text.find("\n## TLS")
        head, tail = (text[:tls], text[tls:]) if tls >= 0 else (text, "")
        if KEEP_BEGIN not in head:
            head = head.rstrip("\n") + "\n\n" + KEEP_BEGIN + "\n"
        text = head.rstrip("\n") + "\n\n" + section + "\n" + tail
    with open(path, "w") as f:
        f.write(text)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corecache", default=os.path.join(REPO, "build", "corecache"))
    p.add_argument("--memcached", default="/usr/bin/memcached")
    p.add_argument("--results", help="write this script's section of a Markdown file (bench/RESULTS.md)")
    args = p.parse_args()
    os.environ["CORECACHE_CLUSTER_MODE"] = "ports"
    rows = []
    for name, binary, sig in (("corecache", args.corecache, "TERM"), ("memcached", args.memcached, "USR1")):
        r = run(name, binary, sig)
        rows.append(r)
        print(r["log"], end="")
        print("%s: rolling-restart %.1f s, client loop %.1f s, lowest 250 ms ratio %.3f, during %.3f, after %d/3000" % (
            name, r["restart_s"], r["loop_s"], r["min"], r["overall"], r["after"]), flush=True)
        for t, n, h in r["trace"]:
            print("  %6.2f %5d %.3f" % (t, n, h / n if n else 0.0))
    if args.results:
        write_section(args.results, rows)


if __name__ == "__main__":
    main()
