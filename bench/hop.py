#!/usr/bin/python3
"""hop.py: what the cross-shard hop costs (issue 17): corecache -t 1 against -t 2 in one run.

With one shard every key is served where it arrives; with N shards (N-1)/N of the keys
arriving on a connection are owned by another shard and cross the hop (io/route.c). This
script starts corecache fresh for every measurement (the same memory, unpinned, as the
issue's figures were taken), loads it with corecache-bench, and reports for each server
thread count:

  * ops/s of the closed-loop run;
  * server CPU µs per request: utime+stime of the whole process (/proc/PID/stat) over the
    run, divided by the requests answered;
  * the shards' CPU split: each thread's utime+stime (/proc/PID/task/*/stat) over the run;
    the -t busiest threads are the shards (the main thread only waits), and the split is
    max/min of them.

Workloads: 90% get / 10% set of 100-byte values at pipeline 16 and 1 with uniform keys,
the same with Zipf 0.99 keys at pipeline 16, and reads only at pipeline 16 of uniform keys
against one hot key read by every connection. With memtier_benchmark on PATH, the issue's
memtier recipe (25 clients x 2 threads, pipeline 16, 100-byte values, keys loaded first) runs
too: 1:9 set:get over 100k uniform keys and Zipf 0.99 keys, and reads only of 100k uniform
keys against one hot key. memtier's requests are its ops/s times the test time.

--baseline BINARY measures another build of corecache in the same run, interleaved (each
configuration: baseline, then this build), so a change shows beside what it changed.

Targets (issue 17): -t 2 CPU/request at pipeline 16 <= 1.2x -t 1's; -t 2 ops/s >= -t 1's;
with the hot key, -t 2 ops/s within 10% of uniform reads and the shards' CPU within 1.5x.
The table says for each whether this run met it: on a machine shared with other work the
figures move, so the lead reruns it in a quiet window.

Run from the repository root after building:
    /usr/bin/python3 bench/hop.py --build-dir build            (writes its section of bench/RESULTS.md)
    /usr/bin/python3 bench/hop.py --quick --no-write           (a short run, printed only)
Every server is one we started, stopped by its PID; every load run is bounded in time.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from benchlib import free_port  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")

# name, title, pipeline, key distribution, keys, get:set
WORKLOADS = [
    ("uniform-p16", "90% get, uniform keys, pipeline 16", 16, "uniform", 100_000, "9:1"),
    ("uniform-p1", "90% get, uniform keys, pipeline 1", 1, "uniform", 100_000, "9:1"),
    ("zipf-p16", "90% get, Zipf 0.99 keys, pipeline 16", 16, "zipf", 100_000, "9:1"),
    ("reads-p16", "reads only, uniform keys, pipeline 16", 16, "uniform", 100_000, "1:0"),
    ("hot-p16", "reads only, one hot key, pipeline 16", 16, "uniform", 1, "1:0"),
]


class HopError(Exception):
    pass


def thread_ticks(pid):
    """{tid: utime+stime} of every thread of pid."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[int(tid)] = int(fields[11]) + int(fields[12])
        except OSError:
            continue
    return out


class Server:
    """corecache started by us on a free port; stopped by its PID."""

    def __init__(self, binary, threads, memory, log_dir, name):
        self.port = free_port()
        cmd = [binary, "-p", str(self.port), "-l", "127.0.0.1", "-t", str(threads), "-m", str(memory)]
        if os.geteuid() == 0:
            cmd += ["-u", "nobody"]
        self.log_path = os.path.join(log_dir, f"{name}-t{threads}-{self.port}.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        deadline = time.monotonic() + 10
        import socket
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.close()
                raise HopError(f"{binary} exited with {self.proc.returncode} at start: see {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise HopError(f"{binary} not listening on {self.port} after 10 s")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM to our pid only
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()


def run_bench(args, port, extra, timeout):
    cmd = [args.bench, "-s", "127.0.0.1", "-p", str(port), "-q", "--json"] + extra
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise HopError(f"corecache-bench failed ({r.returncode}): {' '.join(cmd)}: {r.stderr.strip()[-300:]}")
    return json.loads(r.stdout)


# The server's own counters that say where a forwarded request's cost goes, per request:
# keys sent to their owner, loop iterations (one io_uring_enter each), completions handled,
# wakeups of a sleeping shard (MSG_RING), and read counts sent to owners (issue 17, X_BUMP).
COUNTERS = ("forwarded_out", "uring_submits", "uring_completions", "xchan_wakeups", "peek_bumps_out")


def server_stats(port):
    """The counters above (and cmd_get, cmd_set) of the server's `stats`, as ints."""
    stats = benchlib.server_stats(port)
    return {k: int(v) for k, v in stats.items() if k in COUNTERS + ("cmd_get", "cmd_set")}

def measured(server, threads, fn):
    """Runs fn() and returns (its result, process CPU s, per-shard CPU s sorted, counter deltas)."""
    s0 = server_stats(server.port)
    before = thread_ticks(server.pid)
    result = fn()
    after = thread_ticks(server.pid)
    s1 = server_stats(server.port)
    deltas = sorted(((after.get(t, 0) - before.get(t, 0)) / TICK for t in after), reverse=True)
    return result, sum(deltas), deltas[:threads], {k: s1.get(k, 0) - s0.get(k, 0) for k in s1}


def bench_point(args, binary, threads, w, log_dir, name):
    _, _, pipeline, dist, keys, ratio = w
    s = Server(binary, threads, args.memory, log_dir, name)
    try:
        load = ["-c", str(args.connections), "-t", str(args.client_threads), "-P", str(pipeline),
                "--ratio", ratio, "-k", str(keys), "--key-dist", dist, "--value-size", "100"]
        run_bench(args, s.port, load + ["--prefill-only"], 120)
        report, cpu, shards, counts = measured(s, threads, lambda: run_bench(
            args, s.port, load + ["-d", str(args.duration)], args.duration + 60))
        if report.get("requests", 0) <= 0:
            raise HopError(f"{name} -t {threads} {w[0]}: no requests answered")
        return {"ops": report["ops_per_sec"], "requests": report["requests"],
                "cpu_us": cpu * 1e6 / report["requests"], "shards": shards, "counts": counts}
    finally:
        s.stop()


# name, key pattern, keys, set:get (memtier's order)
MEMTIER = [
    ("memtier-p16", ["--key-pattern=R:R"], 100_000, "1:9"),
    ("memtier-zipf-p16", ["--key-pattern=Z:Z", "--key-zipf-exp=0.99"], 100_000, "1:9"),
    ("memtier-reads-p16", ["--key-pattern=R:R"], 100_000, "0:1"),
    ("memtier-hot-p16", ["--key-pattern=R:R"], 1, "0:1"),
]


def memtier_point(args, binary, threads, mw, log_dir, name):
    """The issue's memtier recipe (25 clients x 2 threads, pipeline 16, 100-byte values), keys
    loaded first; mw is a MEMTIER row."""
    wname, pattern, keys, ratio = mw
    s = Server(binary, threads, args.memory, log_dir, name)
    try:
        base = [args.memtier, "-s", "127.0.0.1", "-p", str(s.port), "--protocol=memcache_text",
                "--hide-histogram", "--key-minimum=1", f"--key-maximum={keys}", "--data-size=100"]
        subprocess.run(base + ["--key-pattern=P:P", "--ratio=1:0", "--requests=allkeys", "--clients=1",
                               "--threads=1"], capture_output=True, timeout=120, check=True)
        out = os.path.join(log_dir, f"{wname}-{name}-t{threads}.json")
        cmd = base + pattern + ["--clients=25", "--threads=2", f"--ratio={ratio}", "--pipeline=16",
                                f"--test-time={args.duration}", f"--json-out-file={out}"]

        def go():
            subprocess.run(cmd, capture_output=True, timeout=args.duration + 60, check=True)
            with open(out) as f:
                return json.load(f)["ALL STATS"]["Totals"]

        totals, cpu, shards, counts = measured(s, threads, go)
        ops = totals["Ops/sec"]
        requests = ops * args.duration
        return {"ops": ops, "requests": requests, "cpu_us": cpu * 1e6 / requests if requests else 0,
                "shards": shards, "counts": counts}
    finally:
        s.stop()


def median_point(points):
    points = sorted(points, key=lambda p: p["ops"])
    return points[len(points) // 2]


def split(p):
    sh = p["shards"]
    if len(sh) < 2 or min(sh) <= 0:
        return "-" if len(sh) < 2 else "inf"
    return f"{max(sh) / min(sh):.2f}x"


def fmt_ops(v):
    return f"{v / 1000:.0f}K"


def per_request(p, key):
    """A counter per request the server counted (gets + sets), or '-'."""
    c = p.get("counts", {})
    n = c.get("cmd_get", 0) + c.get("cmd_set", 0)
    return f"{c[key] / n:.3f}" if n > 0 and key in c else "-"


def run(args):
    log_dir = tempfile.mkdtemp(prefix="hop-")
    builds = ([("baseline", args.baseline)] if args.baseline else []) + [("corecache", args.binary)]
    rows = {}  # (tool, workload, build, threads) -> point
    workloads = [w for w in WORKLOADS if args.workloads is None or w[0] in args.workloads]
    try:
        for rnd in range(args.rounds):
            for w in workloads:
                for threads in args.threads:
                    for name, binary in builds:
                        p = bench_point(args, binary, threads, w, log_dir, name)
                        rows.setdefault(("corecache-bench", w[0], name, threads), []).append(p)
                        print(f"round {rnd + 1} {w[0]:12} {name:9} -t {threads}: {fmt_ops(p['ops'])} ops/s, "
                              f"{p['cpu_us']:.2f} us/req, shards {split(p)}, iterations/req "
                              f"{per_request(p, 'uring_submits')}", file=sys.stderr)
            if args.memtier:
                for mw in MEMTIER:
                    for threads in args.threads:
                        for name, binary in builds:
                            p = memtier_point(args, binary, threads, mw, log_dir, name)
                            wname = mw[0]
                            rows.setdefault(("memtier", wname, name, threads), []).append(p)
                            print(f"round {rnd + 1} {wname:12} {name:9} -t {threads}: {fmt_ops(p['ops'])} ops/s, "
                                  f"{p['cpu_us']:.2f} us/req, shards {split(p)}", file=sys.stderr)
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)
    return {k: median_point(v) for k, v in rows.items()}, builds


def targets(res, build, t1, tn):
    """The issue's four targets, for one build, per tool, as (target, figure, met)."""
    out = []
    for tool, mixed, reads, hot in (("corecache-bench", "uniform-p16", "reads-p16", "hot-p16"),
                                    ("memtier", "memtier-p16", "memtier-reads-p16", "memtier-hot-p16")):
        g = lambda w, t: res.get((tool, w, build, t))
        a, b = g(mixed, t1), g(mixed, tn)
        if a and b:
            r = b["cpu_us"] / a["cpu_us"]
            out.append((f"{tool}: -t {tn} CPU/request at p16 <= 1.2x -t {t1}'s", f"{r:.2f}x", r <= 1.2))
            r = b["ops"] / a["ops"]
            out.append((f"{tool}: -t {tn} ops/s at p16 >= -t {t1}'s", f"{r:.2f}x", r >= 1.0))
        u, h = g(reads, tn), g(hot, tn)
        if u and h:
            r = h["ops"] / u["ops"]
            out.append((f"{tool}: -t {tn} hot key ops/s within 10% of uniform reads", f"{r:.2f}x", r >= 0.9))
            sh = h["shards"]
            if len(sh) >= 2 and min(sh) > 0:
                r = max(sh) / min(sh)
                out.append((f"{tool}: -t {tn} hot key, shards' CPU within 1.5x", f"{r:.2f}x", r <= 1.5))
    return out


def markdown(res, builds, args):
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=REPO).stdout.strip() or "unknown"
    # no path of this machine in the report: a baseline binary is named by its role
    argv = ["bench/hop.py"] + ["BASELINE" if a.startswith("/") else a for a in sys.argv[1:]]
    lines = ["## The cross-shard hop: -t 1 against -t 2 (issue 17)", "",
             f"`{' '.join(argv)}` (commit {commit}, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, "
             f"kernel {os.uname().release}). Each point a fresh server (`-m {args.memory}`, unpinned), "
             f"{args.duration} s of load, median of {args.rounds} round(s); corecache-bench with "
             f"{args.connections} connections over {args.client_threads} threads, 100-byte values. CPU/request: the server's utime+stime "
             "over the run divided by the requests answered; shards: the busiest thread's CPU over "
             "the least busy shard's.", "",
             "Per request (the server's `stats` over the run): keys forwarded to their owner, loop "
             "iterations (one io_uring_enter each), completions handled, wakeups sent to a sleeping shard, "
             "and gets served from the owner's memory that the owner still had to count (issue 17's read "
             "counts, one-way; a get served there with no count is in no column).",
             "",
             "| tool | workload | build | -t | ops/s | CPU µs/request | shards' CPU max/min "
             "| forwarded | iterations | completions | wakeups | read counts sent |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for (tool, w, name, threads), p in sorted(res.items(), key=lambda kv: (kv[0][0] != "corecache-bench",
                                                                          kv[0][1], kv[0][2], kv[0][3])):
        lines.append(f"| {tool} | {w} | {name} | {threads} | {fmt_ops(p['ops'])} | {p['cpu_us']:.2f} | {split(p)} "
                     f"| {' | '.join(per_request(p, k) for k in COUNTERS)} |")
    t1, tn = min(args.threads), max(args.threads)
    for name, _ in builds:
        tg = targets(res, name, t1, tn)
        if tg and t1 != tn:
            lines += ["", f"Targets, {name}:", "", "| target | this run | met |", "| --- | --- | --- |"]
            lines += [f"| {t} | {f} | {'yes' if ok else 'no'} |" for t, f, ok in tg]
    return "\n".join(lines)




def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build-dir", default="build")
    p.add_argument("--baseline", help="another corecache binary, measured beside this build")
    p.add_argument("--threads", default="1,2", help="server -t values (default 1,2)")
    p.add_argument("--duration", type=int, default=5, help="seconds of load per point (default 5)")
    p.add_argument("--rounds", type=int, default=3, help="rounds, the median reported (default 3)")
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--client-threads", type=int, default=2,
                   help="corecache-bench threads (default 2, as memtier's recipe: a connection is "
                        "served by the shard of the CPU its packets arrive on, so one client thread "
                        "on one CPU would put most connections on one shard)")
    p.add_argument("--memory", type=int, default=1024, help="server -m (default 1024)")
    p.add_argument("--workloads", help="comma-separated subset of: " + ", ".join(w[0] for w in WORKLOADS))
    p.add_argument("--no-memtier", action="store_true", help="skip memtier_benchmark even when on PATH")
    p.add_argument("--quick", action="store_true", help="1 s points, one round (to see it work)")
    p.add_argument("--no-write", action="store_true", help="print the section, leave bench/RESULTS.md alone")
    p.add_argument("--results", default=os.path.join(REPO, "bench", "RESULTS.md"))
    args = p.parse_args(argv)
    args.threads = [int(t) for t in args.threads.split(",")]
    args.workloads = args.workloads.split(",") if args.workloads else None
    if args.quick:
        args.duration, args.rounds = 1, 1
    args.binary = os.path.join(args.build_dir, "corecache")
    args.bench = os.path.join(args.build_dir, "bench", "corecache-bench")
    for b in (args.binary, args.bench) + ((args.baseline,) if args.baseline else ()):
        if not os.access(b, os.X_OK):
            p.error(f"{b} not found: build first")
    args.memtier = None if args.no_memtier else shutil.which("memtier_benchmark")
    if args.memtier is None and not args.no_memtier:
        print("hop.py: memtier_benchmark not on PATH: its rows are skipped", file=sys.stderr)
    return args


def main(argv):
    args = parse_args(argv)
    try:
        res, builds = run(args)
    except (HopError, subprocess.SubprocessError, OSError, json.JSONDecodeError) as e:
        print(f"hop.py: {e}", file=sys.stderr)
        return 1
    section = markdown(res, builds, args)
    print(section)
    if not args.no_write:
        benchlib.write_section(args.results, "hop.py", section)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
