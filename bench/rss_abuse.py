#!/usr/bin/env python3
"""rss_abuse.py: resident memory under abuse, corecache beside memcached 1.6.18.

Each server is started fresh with the same flags (-t 2 -m 64, memcached also
-U 0) on a free 127.0.0.1 port and put through three abuses, one server at a
time, in one run; VmRSS of the server process is sampled every 0.2 s:

  flood   a set flood for --flood-seconds (default 60) by corecache-bench
          (16 connections, 16 requests in flight each, 1,000,000 keys,
          values 100..4000 bytes): RSS at start, peak, and at the end;
          also the sets done, recv_nobufs (receives that found no
          provided buffer) and the server's CPU time per set
  idle    --idle-conns (default 10000) connections opened and left idle
          (the script raises its own descriptor limit; both servers get
          -c idle+100): RSS before, with them open, and the growth per
          connection
  slow    one client pipelines --slow-gets (default 100000) gets of a
          1000-byte value and reads nothing for --slow-wait seconds (5),
          then reads every reply: RSS before, peak while it does not read,
          after; the replies are counted, so a server that dropped some
          is seen

Results are printed as a Markdown table, each figure in MiB; --json FILE
writes them too, and --results bench/RESULTS.md puts the table in its own
section there (replacing the previous one; bench/compare.py keeps it when
it rewrites the file). Everything stays on 127.0.0.1 and every loop is
bounded.

    bench/rss_abuse.py --build build --results bench/RESULTS.md   # the full run, about 4 minutes
    bench/rss_abuse.py --build build --flood-seconds 10    # quicker
"""

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time

import benchlib  # noqa: E402
from benchlib import free_port, rss_kb, server_stats  # noqa: E402


def rss_mib(pid):
    return rss_kb(pid) / 1024.0


class Sampler:
    """Samples a process's RSS every 0.2 s in a thread; keeps the peak."""

    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, 0.0, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, rss_mib(self.pid))
            except OSError:
                return
            self.stop.wait(0.2)

    def __enter__(self):
        self.peak = rss_mib(self.pid)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.peak = max(self.peak, rss_mib(self.pid))


class Server:
    def __init__(self, name, argv):
        self.name, self.port = name, free_port()
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.argv = argv + ["-p", str(self.port), "-l", "127.0.0.1"] + user
        self.proc = None

    def __enter__(self):
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                time.sleep(0.2)
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("%s did not start: %s" % (self.name, self.argv))

    def __exit__(self, *exc):
        self.proc.terminate()  # our own child, by PID
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    @property
    def pid(self):
        return self.proc.pid


def cpu_seconds(pid):
    """utime + stime of a process so far (/proc/PID/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def flood(server, bench, seconds):
    start = rss_mib(server.pid)
    cpu0 = cpu_seconds(server.pid)
    with Sampler(server.pid) as s:
        subprocess.run([bench, "-p", str(server.port), "-c", "16", "-t", "2", "-P", "16", "-d", str(seconds),
                        "--ratio", "0:1", "--keys", "1000000", "--value-size", "100-4000", "-q"],
                       stdout=subprocess.DEVNULL, timeout=seconds + 60)
    cpu = cpu_seconds(server.pid) - cpu0
    stats = server_stats(server.port)
    sets = int(stats.get("cmd_set", 0))
    return {"start": start, "peak": s.peak, "end": rss_mib(server.pid),
            "recv_nobufs": stats.get("recv_nobufs"), "sets": sets,
            "cpu_us_per_set": cpu * 1e6 / sets if sets else None}




def idle(server, count):
    before = rss_mib(server.pid)
    socks = []
    try:
        for _ in range(count):
            socks.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
        # every connection accepted and set up: one request on the last
        socks[-1].sendall(b"version\r\n")
        socks[-1].recv(100)
        time.sleep(1.0)
        with_conns = rss_mib(server.pid)
    finally:
        for s in socks:
            s.close()
    return {"before": before, "open": with_conns, "per_conn_bytes": (with_conns - before) * 1048576 / count}


def slow_reader(server, gets, wait):
    value = b"v" * 1000
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as c:
        c.sendall(b"set slowkey 0 0 %d\r\n%s\r\n" % (len(value), value))
        assert c.recv(100) == b"STORED\r\n"
    before = rss_mib(server.pid)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    payload = b"get slowkey\r\n" * gets
    sent = [0]

    def writer():
        try:
            sent[0] = sock.sendall(payload) or len(payload)
        except OSError:
            pass

    with Sampler(server.pid) as s:
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        time.sleep(wait)
        paused = rss_mib(server.pid)
        one = b"VALUE slowkey 0 1000\r\n" + value + b"\r\nEND\r\n"
        want, got = len(one) * gets, 0
        deadline = time.monotonic() + 120
        while got < want and time.monotonic() < deadline:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
        t.join(10)
    sock.close()
    return {"before": before, "paused": paused, "peak": s.peak, "after": rss_mib(server.pid),
            "replies_complete": got == want}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build", help="the build directory (corecache, bench/corecache-bench)")
    ap.add_argument("--memcached", default="/usr/bin/memcached")
    ap.add_argument("--flood-seconds", type=int, default=60)
    ap.add_argument("--idle-conns", type=int, default=10000)
    ap.add_argument("--slow-gets", type=int, default=100000)
    ap.add_argument("--slow-wait", type=float, default=5.0)
    ap.add_argument("--corecache-args", default="", help="extra corecache flags, e.g. '--recv-buffers 64'")
    ap.add_argument("--skip-memcached", action="store_true", help="run corecache only (a quick look)")
    ap.add_argument("--abuses", default="flood,idle,slow",
                    help="which abuses to run, comma-separated (a quick look; --results needs all three)")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--results", help="put the table in its section of this Markdown file (bench/RESULTS.md)")
    args = ap.parse_args()

    abuses = set(args.abuses.split(","))
    if args.results and abuses != {"flood", "idle", "slow"}:
        sys.exit("rss_abuse: --results needs all three abuses")
    need = args.idle_conns + 200
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            sys.exit("rss_abuse: %d idle connections need `ulimit -n %d` (the hard limit is %d)" % (
                args.idle_conns, need, hard))
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))

    bench = os.path.join(args.build, "bench", "corecache-bench")
    common = ["-t", "2", "-m", "64", "-c", str(args.idle_conns + 100)]
    servers = [("corecache", [os.path.join(args.build, "corecache")] + common + args.corecache_args.split()),
               ("memcached 1.6.18", [args.memcached, "-U", "0"] + common)]
    if args.skip_memcached:
        servers = servers[:1]
    results = {}
    for name, argv in servers:
        r = {}
        if "flood" in abuses:
            with Server(name, argv) as srv:
                r["flood"] = flood(srv, bench, args.flood_seconds)
        if "idle" in abuses:
            with Server(name, argv) as srv:
                r["idle"] = idle(srv, args.idle_conns)
        if "slow" in abuses:
            with Server(name, argv) as srv:
                r["slow"] = slow_reader(srv, args.slow_gets, args.slow_wait)
        results[name] = r
        sys.stderr.write("rss_abuse: %s done\n" % name)

    names = [n for n, _ in servers]
    if abuses != {"flood", "idle", "slow"}:
        print(json.dumps(results, indent=1))
        return
    table = render(names, results, args)
    print(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=1)
    if args.results:
        write_section(args.results, table, args)




def write_section(path, table, args):
    """Replaces (or appends) this script's section of a Markdown file."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip() or "unknown"
    argv = ["bench/rss_abuse.py"]  # the command, less --json FILE (a path of this machine)
    skip = False
    for a in sys.argv[1:]:
        if skip or a.startswith("--json"):
            skip = a == "--json"
            continue
        argv.append(a)
    section = "\n".join([
        "## Resident memory under abuse",
        "",
        "`%s` (commit %s, %s, kernel %s). VmRSS of the server process, sampled every 0.2 s; "
        "each abuse on a fresh server with `-t 2 -m 64 -c %d` (memcached also `-U 0`)."
        % (" ".join(argv), commit, time.strftime("%Y-%m-%d"), os.uname().release, args.idle_conns + 100),
        "",
        table,
    ])
    benchlib.write_section(path, "rss_abuse.py", section)


def render(names, results, args):
    rows = [
        ("set flood %d s, -m 64: RSS at start" % args.flood_seconds, "flood", "start"),
        ("set flood: peak RSS", "flood", "peak"),
        ("set flood: RSS at the end", "flood", "end"),
        ("%d idle connections: RSS before" % args.idle_conns, "idle", "before"),
        ("%d idle connections: RSS with them open" % args.idle_conns, "idle", "open"),
        ("slow reader, %d pipelined gets: RSS before" % args.slow_gets, "slow", "before"),
        ("slow reader: peak RSS while it does not read", "slow", "peak"),
        ("slow reader: RSS after it read everything", "slow", "after"),
    ]
    out = ["| RSS, MiB | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for label, group, field in rows:
        out.append("| %s | %s |" % (label, " | ".join("%.1f" % results[n][group][field] for n in names)))
    out.append("| idle connections: bytes per connection | %s |" % " | ".join(
        "%.0f" % results[n]["idle"]["per_conn_bytes"] for n in names))
    out.append("| slow reader: every reply arrived | %s |" % " | ".join(
        "yes" if results[n]["slow"]["replies_complete"] else "NO" for n in names))
    out.append("| set flood: sets done / receives that found no buffer (recv_nobufs) | %s |" % " | ".join(
        "%s / %s" % (results[n]["flood"]["sets"] or "-", results[n]["flood"]["recv_nobufs"] or "-")
        for n in names))
    out.append("| set flood: server CPU (user+system) per set, us | %s |" % " | ".join(
        "%.2f" % results[n]["flood"]["cpu_us_per_set"] if results[n]["flood"]["cpu_us_per_set"] else "-"
        for n in names))
    return "\n".join(out)


if __name__ == "__main__":
    main()
