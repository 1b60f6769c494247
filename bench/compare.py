#!/usr/bin/python3
"""compare.py: corecache against memcached 1.6 and the io_uring ceiling, under identical loads.

One command starts each server in turn (fresh for every measurement, pinned with
taskset, the same thread count and memory), drives it with corecache-bench, and
writes bench/RESULTS.md, bench/results.json and bench/results.png:

  * per workload: peak requests/s (closed loop), p50/p99/p99.9 latency at a fixed
    rate of half of memcached's peak (open loop, no coordinated omission), server
    CPU time per request (utime+stime from /proc/<pid>/stat over the measured
    window), and memory per item (VmRSS growth over N items of 100-byte values);
    ratios corecache/memcached and corecache/ceiling;
  * a sweep of throughput and latency against the connection count (the plot);
  * the memtier_benchmark recipes for the same workloads, as a cross-check, when
    memtier_benchmark is on PATH (skipped with a message when it is not).

Server processes are started and stopped by PID. Every run is bounded in time.
--quick runs everything briefly on small key sets and writes into a temporary
directory (never over the committed results); --check then asserts the report is
sane (used by the CTest smoke test). The script installs nothing: the plot needs
Debian's python3-matplotlib (apt-get install python3-matplotlib).

Run with /usr/bin/python3 from the repository root, after building:
    cmake -B build && cmake --build build -j
    /usr/bin/python3 bench/compare.py --build-dir build
"""

import argparse
import importlib.util
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP = 77  # CTest's skip code, for --check when a server binary is missing
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import KEEP_BEGIN  # noqa: E402  (RESULTS.md from it on: other scripts' sections, kept)


@dataclass(frozen=True)
class Workload:
    """One load, declared once: corecache-bench and memtier both derive from it."""
    name: str
    title: str
    connections: int = 50
    pipeline: int = 1
    get: int = 9
    set: int = 1
    multiget: int = 1
    keys: int = 100_000
    dist: str = "uniform"
    skew: float = 0.99
    value: int = 100

    def describe(self, keys: int) -> str:
        dist = f"Zipf {self.skew:g}" if self.dist == "zipf" else "uniform"
        mg = f", {self.multiget} keys per get" if self.multiget > 1 else ""
        get = round(100 * self.get / (self.get + self.set))
        return (f"{get}% get / {100 - get}% set, {self.value}-byte values, "
                f"{self.connections} connections, pipeline {self.pipeline}{mg}, "
                f"{keys} keys ({dist})")


WORKLOADS = [
    Workload("get90-p1", "90/10, 100 B, 50 connections, pipeline 1"),
    Workload("get90-p16", "90/10, 100 B, 50 connections, pipeline 16", pipeline=16),
    Workload("multiget10", "multi-get of 10 keys", multiget=10),
    Workload("zipf099", "Zipf 0.99 over 1M keys", keys=1_000_000, dist="zipf"),
    Workload("value4k", "4 KiB values", value=4096),
]
SWEEP_WORKLOAD = "get90-p1"
SWEEP_FULL = [1, 2, 5, 10, 25, 50, 100]
SWEEP_QUICK = [1, 10, 50]
PERCENTILES = ["p50", "p90", "p99", "p99.9"]

# Each server: how to find its binary and its command line. All three take
# memcached's -p -l -t -m -u.
SERVERS = {
    "memcached": {"default": ["/usr/bin/memcached"], "label": "memcached"},
    "corecache": {"default": ["{build}/corecache", "{build}/io/corecache"], "label": "corecache"},
    "ceiling": {"default": ["{build}/bench/corecache-ceiling"], "label": "ceiling"},
    # Another corecache build (--baseline PATH, e.g. the commit before a
    # change), measured in the same run: before and after side by side.
    "baseline": {"default": [], "label": "baseline"},
}
SERVER_ARGS = ["-p", "{port}", "-l", "127.0.0.1", "-t", "{threads}", "-m", "{memory}"]


class CompareError(Exception):
    pass


STARTED = time.monotonic()


def log(msg: str) -> None:
    print(f"compare: [{time.monotonic() - STARTED:5.1f}s] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_ticks(pid: int) -> int:
    """utime + stime of every thread of pid, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise CompareError(f"pid {pid}: no VmRSS")


def listens_on(pid: int, port: int) -> bool:
    """True when pid itself owns the socket listening on 127.0.0.1:port, so
    that we never measure somebody else's server that holds the port."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    local, state, inode = cols[1], cols[3], cols[9]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port and inode in inodes:
                        return True
        except OSError:
            continue
    return False


class Server:
    """A server process we started, pinned, on a port we chose; stopped by PID."""

    def __init__(self, name: str, binary: str, args, log_dir: str):
        self.name = name
        self.port = free_port()
        values = {"port": self.port, "threads": args.server_threads, "memory": args.memory}
        cmd = [binary] + [a.format(**values) for a in SERVER_ARGS]
        if os.geteuid() == 0:
            cmd += ["-u", "nobody"]
        self.cmd = ["taskset", "-c", args.server_cpus] + cmd
        self.log_path = os.path.join(log_dir, f"{name}-{self.port}.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid  # taskset execs the server: same pid
        try:
            self._wait_ready()
        except Exception:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CompareError(f"{self.name} exited with {self.proc.returncode} at start: "
                                   f"{self.tail()}")
            if listens_on(self.pid, self.port):
                with socket.create_connection(("127.0.0.1", self.port), timeout=2):
                    return
            time.sleep(0.05)
        raise CompareError(f"{self.name} (pid {self.pid}) not listening on {self.port} after 10 s")

    def tail(self) -> str:
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()[-500:].strip()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM to our pid only
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()


class Compare:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.servers = []
        self.started = []  # every Server, for cleanup
        self.results = {"workloads": {}, "memory": {}, "sweep": {}, "memtier": {}}
        self.log_dir = None
        self.memtier = shutil.which("memtier_benchmark")
        if args.no_memtier:
            self.memtier = None

    # --- helpers ----------------------------------------------------------

    def keys(self, w: Workload) -> int:
        return min(w.keys, 10_000) if self.quick else w.keys

    def bench(self, port: int, extra, timeout: float) -> dict:
        """Runs corecache-bench --json; any error in the run is fatal."""
        if self.args.verbose:
            log(f"corecache-bench {' '.join(str(a) for a in extra)}")
        cmd = [self.args.bench, "-s", "127.0.0.1", "-p", str(port), "--json", "-q",
               "--cpus", self.args.client_cpus] + [str(a) for a in extra]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise CompareError(f"{shlex.join(cmd)}: still running after {timeout:.0f} s")
        report = None
        if r.stdout.strip():
            report = json.loads(r.stdout)
        if r.returncode != 0:
            why = r.stderr.strip()
            if report is not None:
                why += f" ({report['errors']} errors; first: {report['first_error']})"
            raise CompareError(f"{shlex.join(cmd)}: exit {r.returncode}: {why}")
        return report

    def load_args(self, w: Workload, connections=None):
        conns = connections or w.connections
        threads = min(self.args.client_threads, conns)
        a = ["-c", conns, "-t", threads, "-P", w.pipeline, "--ratio", f"{w.get}:{w.set}",
             "--multiget", w.multiget, "--keys", self.keys(w), "--key-dist", w.dist,
             "--value-size", w.value, "--protocol", self.args.protocol]
        if w.dist == "zipf":
            a += ["--zipf-skew", w.skew]
        return a

    def prefill(self, server: Server, w: Workload) -> None:
        keys = self.keys(w)
        self.bench(server.port, self.load_args(w) + ["--prefill-only"], timeout=60 + keys / 5000)

    def start(self, name: str) -> Server:
        s = Server(name, self.binaries[name], self.args, self.log_dir)
        self.started.append(s)
        return s

    def stop(self, s: Server) -> None:
        if not s.alive():
            raise CompareError(f"{s.name} (pid {s.pid}) died during the run: {s.tail()}")
        s.stop()

    # --- measurements -----------------------------------------------------

    def measure_workload(self, name: str, w: Workload, ws: dict) -> dict:
        """On one fresh server: prefill, peak (closed loop), then latency at the
        fixed rate (open loop). The first server measured (memcached, when
        selected) sets ws["fixed_rate"] to half of its peak."""
        s = self.start(name)
        out = {}
        try:
            self.prefill(s, w)
            warmup = 0 if self.quick else 1
            ticks0 = cpu_ticks(s.pid)
            peak = self.bench(s.port, self.load_args(w) + ["-d", self.args.duration, "-w", warmup],
                              timeout=self.args.duration + warmup + 60)
            ticks = cpu_ticks(s.pid) - ticks0
            served = peak["requests"] + peak["counters"]["warmup_requests"]
            out["peak"] = slim(peak)
            out["cpu_us_per_request_peak"] = ticks / os.sysconf("SC_CLK_TCK") * 1e6 / served
            if "fixed_rate" not in ws:
                ws["fixed_rate"] = peak["ops_per_sec"] / 2
                ws["fixed_rate_from"] = name
            rate = ws["fixed_rate"]
            log(f"{w.name}: {name}: {peak['ops_per_sec']:.0f}/s peak; open loop at {rate:.0f}/s")
            ticks0 = cpu_ticks(s.pid)
            fixed = self.bench(s.port, self.load_args(w) + ["-d", self.args.duration, "-w", warmup,
                                                            "-r", f"{rate:.0f}"],
                               timeout=self.args.duration + warmup + 60)
            ticks = cpu_ticks(s.pid) - ticks0
            served = fixed["requests"] + fixed["counters"]["warmup_requests"]
            out["fixed"] = slim(fixed)
            # The target compares CPU per request at the same rate for every
            # server: a saturated server's CPU per request says less.
            out["cpu_us_per_request_fixed"] = ticks / os.sysconf("SC_CLK_TCK") * 1e6 / served
            if fixed["ops_per_sec"] < 0.95 * rate:
                out["fixed_note"] = f"reached {fixed['ops_per_sec']:.0f} of {rate:.0f}/s"
            # --quick exercises the recipe on the first workload only.
            if self.memtier and self.memtier_supports(w) and (
                    not self.quick or w == self.workloads[0]):
                self.results["memtier"].setdefault(w.name, {})[name] = self.run_memtier(s, w)
            self.stop(s)
        finally:
            s.stop()
        return out

    def measure_memory(self, name: str) -> dict:
        items = 20_000 if self.quick else 1_000_000
        s = self.start(name)
        try:
            time.sleep(0.2)
            before = rss_kib(s.pid)
            self.bench(s.port, ["-c", 50, "-t", min(self.args.client_threads, 50), "--keys", items,
                                "--value-size", 100, "--protocol", self.args.protocol,
                                "--prefill-only"], timeout=60 + items / 5000)
            time.sleep(0.2)
            after = rss_kib(s.pid)
            self.stop(s)
        finally:
            s.stop()
        return {"items": items, "rss_before_kib": before, "rss_after_kib": after,
                "bytes_per_item": (after - before) * 1024 / items}

    def measure_sweep(self, name: str) -> list:
        w = next(x for x in WORKLOADS if x.name == SWEEP_WORKLOAD)
        points = []
        s = self.start(name)
        try:
            self.prefill(s, w)
            for conns in (SWEEP_QUICK if self.quick else SWEEP_FULL):
                r = self.bench(s.port, self.load_args(w, conns) + ["-d", self.args.sweep_duration],
                               timeout=self.args.sweep_duration + 60)
                points.append({"connections": conns, "ops_per_sec": r["ops_per_sec"],
                               **{p: r["latency_us"][p] for p in PERCENTILES}})
            self.stop(s)
        finally:
            s.stop()
        return points

    # --- memtier_benchmark ------------------------------------------------

    def memtier_supports(self, w: Workload) -> bool:
        """memtier has no meta protocol, and its memcache_binary aborts on
        --multi-key-get (memtier_benchmark 2.x), so those are not cross-checked."""
        if self.args.protocol == "meta":
            return False
        return not (self.args.protocol == "binary" and w.multiget > 1)

    def memtier_cmd(self, port: int, w: Workload, duration: float):
        """The memtier_benchmark recipe for a workload (memtier's --ratio is SET:GET,
        -c is per thread; keys are ours, key:1 .. key:N-1, so prefilled keys hit)."""
        threads = min(self.args.client_threads, w.connections)
        proto = "memcache_binary" if self.args.protocol == "binary" else "memcache_text"
        cmd = ["memtier_benchmark", "-s", "127.0.0.1", "-p", str(port), "-P", proto,
               f"--ratio={w.set}:{w.get}", "-d", str(w.value), "-t", str(threads),
               "-c", str(max(1, w.connections // threads)), f"--pipeline={w.pipeline}",
               "--key-prefix=key:", "--key-minimum=1", f"--key-maximum={self.keys(w) - 1}",
               f"--test-time={max(1, int(duration))}", "--hide-histogram"]
        if w.dist == "zipf":
            cmd += ["--key-pattern=Z:Z", f"--key-zipf-exp={w.skew}"]
        else:
            cmd += ["--key-pattern=R:R"]
        if w.multiget > 1:
            cmd += [f"--multi-key-get={w.multiget}"]
        return cmd

    def run_memtier(self, s: Server, w: Workload) -> dict:
        out = os.path.join(self.log_dir, f"memtier-{s.name}-{w.name}.json")
        cmd = ["taskset", "-c", self.args.client_cpus] + self.memtier_cmd(s.port, w, self.args.duration)
        cmd[3] = self.memtier
        cmd += [f"--json-out-file={out}"]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=self.args.duration + 60)
        except subprocess.TimeoutExpired:
            raise CompareError(f"{shlex.join(cmd)}: still running after timeout")
        if r.returncode != 0:
            raise CompareError(f"{shlex.join(cmd)}: exit {r.returncode}: {r.stderr[-300:]}")
        with open(out) as f:
            totals = json.load(f)["ALL STATS"]["Totals"]
        pct = totals.get("Percentile Latencies", {})
        return {"command": shlex.join(["memtier_benchmark"] + cmd[4:-1]), "ops_per_sec": totals["Ops/sec"],
                "p50": pct.get("p50.00", 0) * 1000, "p99": pct.get("p99.00", 0) * 1000,
                "p99.9": pct.get("p99.90", 0) * 1000,
                "connection_errors": totals.get("Connection Errors", 0)}

    # --- the whole comparison ---------------------------------------------

    def run(self) -> None:
        order = sorted(self.args.servers, key=lambda n: n != "memcached")  # memcached first
        self.log_dir = tempfile.mkdtemp(prefix="corecache-compare-logs-")
        try:
            for wl in self.workloads:
                ws = self.results["workloads"].setdefault(
                    wl.name, {"title": wl.title, "description": wl.describe(self.keys(wl)),
                              "servers": {}})
                # Rounds interleave the servers, so slow drift of this
                # machine's speed hits them alike; each figure is the median
                # of its rounds (the rounds' peaks are kept for the record).
                runs = {name: [] for name in order}
                for _ in range(self.args.repeat):
                    for name in order:
                        runs[name].append(self.measure_workload(name, wl, ws))
                for name in order:
                    ws["servers"][name] = median_run(runs[name])
            for name in order:
                log(f"memory per item: {name}")
                self.results["memory"][name] = self.measure_memory(name)
                log(f"connection sweep: {name}")
                self.results["sweep"][name] = self.measure_sweep(name)
        finally:
            for s in self.started:
                s.stop()


def median(values):
    v = sorted(values)
    return v[len(v) // 2] if v else None


def median_run(runs: list) -> dict:
    """One server's rounds of a workload reduced to medians: the peak of the
    round with the median peak, the fixed-rate run with the median p99, and the
    median CPU costs. The rounds' peaks are listed for the record."""
    by_peak = sorted(runs, key=lambda r: r["peak"]["ops_per_sec"])
    by_p99 = sorted(runs, key=lambda r: r["fixed"]["latency_us"]["p99"])
    out = {"peak": by_peak[len(runs) // 2]["peak"],
           "fixed": by_p99[len(runs) // 2]["fixed"],
           "cpu_us_per_request": median([r["cpu_us_per_request_fixed"] for r in runs]),
           "cpu_us_per_request_peak": median([r["cpu_us_per_request_peak"] for r in runs]),
           "peaks": [r["peak"]["ops_per_sec"] for r in runs]}
    notes = [r["fixed_note"] for r in runs if "fixed_note" in r]
    if notes:
        out["fixed_note"] = notes[0]
    return out


def slim(report: dict) -> dict:
    """The parts of a corecache-bench --json report that the results keep."""
    return {"ops_per_sec": report["ops_per_sec"], "requests": report["requests"],
            "seconds": report["seconds"], "hit_ratio": report["hit_ratio"],
            "latency_us": report["latency_us"], "send_lag_us": report["send_lag_us"],
            "errors": report["errors"]}


# --- report -------------------------------------------------------------------

def git_commit() -> str:
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head + ("-dirty" if dirty else "") if head else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) // 1024
    except OSError:
        mem = 0
    return f"{model}, {os.cpu_count()} CPUs, {mem} MiB"


def repo_relative(path: str) -> str:
    """A path inside the repository as the repository names it (results are
    committed, and must not carry this machine's layout)."""
    if not os.path.isabs(path):
        return path
    rel = os.path.relpath(path, REPO)
    return path if rel.startswith("..") else rel


def server_version(binary: str) -> str:
    try:
        r = subprocess.run([binary, "-V"], capture_output=True, text=True, timeout=5)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "?"


def ratio(a, b) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}"


# The targets, as (label, workload or None for all, metric, bound).
# metric names what corecache/other must satisfy: a ratio <= or >= bound.
TARGETS = [
    ("Server CPU per request at the fixed rate <= 0.6x memcached's", None, "cpu", "memcached", "<=", 0.6),
    ("Peak ops/s >= 1.3x memcached's at pipeline 1", "get90-p1", "peak", "memcached", ">=", 1.3),
    ("Peak ops/s >= 2x memcached's at pipeline 16", "get90-p16", "peak", "memcached", ">=", 2.0),
    ("p99 at the fixed rate <= memcached's", None, "p99", "memcached", "<=", 1.0),
    (">= 80% of the ceiling's peak ops/s", None, "peak", "ceiling", ">=", 0.8),
    ("Memory per item <= memcached's", "memory", "memory", "memcached", "<=", 1.0),
]


def target_rows(c: "Compare"):
    """Each target checked against the results: (label, workload, ratio, met)."""
    res = c.results
    rows = []
    for label, only, metric, other, op, bound in TARGETS:
        if metric == "memory":
            a = res["memory"].get("corecache", {}).get("bytes_per_item")
            b = res["memory"].get(other, {}).get("bytes_per_item")
            pairs = [("1M items of 100 B", a, b)]
        else:
            pairs = []
            for wname, ws in res["workloads"].items():
                if only is not None and wname != only:
                    continue
                ours, theirs = ws["servers"].get("corecache"), ws["servers"].get(other)
                if ours is None or theirs is None:
                    continue
                pick = {"cpu": lambda r: r["cpu_us_per_request"],
                        "peak": lambda r: r["peak"]["ops_per_sec"],
                        "p99": lambda r: r["fixed"]["latency_us"]["p99"]}[metric]
                pairs.append((wname, pick(ours), pick(theirs)))
        for wname, a, b in pairs:
            if a is None or not b:
                continue
            r = a / b
            rows.append((label, wname, r, r <= bound if op == "<=" else r >= bound))
    return rows


def write_markdown(c: Compare, path: str, meta: dict) -> None:
    res = c.results
    names = [n for n in sorted(c.args.servers, key=lambda n: n != "memcached")]
    lines = [
        "# corecache against memcached and the ceiling",
        "",
        f"- Machine: {meta['machine']}",
        f"- Kernel: {meta['kernel']}",
        f"- Commit: {meta['commit']}",
        f"- Command: `{meta['command']}`",
        f"- Date: {meta['date']}",
        f"- Placement: each server on CPU(s) {c.args.server_cpus} with -t {c.args.server_threads} "
        f"-m {c.args.memory}; corecache-bench on CPU(s) {c.args.client_cpus} with "
        f"{c.args.client_threads} thread(s); {c.args.protocol} protocol",
        "- Servers: " + "; ".join(f"{n}: `{repo_relative(c.binaries[n])}` ({meta['versions'][n]})"
                                  for n in names),
        f"- Measured windows: {c.args.duration:g} s per run"
        + ("" if c.quick else " after 1 s of warmup")
        + f"; sweep points {c.args.sweep_duration:g} s" + (" (--quick)" if c.quick else ""),
        "",
        f"Each figure is the median of {c.args.repeat} round(s), the servers interleaved in each "
        "round, each run on a freshly started server. "
        "Peak: closed loop at the workload's connections and pipeline (the rounds' peaks are "
        "listed under each table). Latency: open loop at a "
        "fixed rate of half of memcached's peak for the workload, measured from each request's "
        "intended send time (no coordinated omission). CPU: server utime+stime per request, at "
        "the fixed rate (the same load for every server) and at peak. "
        "Memory: server VmRSS growth while setting "
        f"{next(iter(res['memory'].values()))['items'] if res['memory'] else 0} items of 100-byte "
        "values, divided by their number (measured once per server, repeated in each table). "
        "Gen. lag: how late the load generator wrote requests against their schedule in the "
        "fixed-rate run (p99); it is included in the latencies, so a large lag means the "
        "generator, not the server, fell behind.",
        "",
    ]
    cols = ["peak ops/s", "p50 µs", "p99 µs", "p99.9 µs", "CPU µs/req (fixed)",
            "CPU µs/req (peak)", "bytes/item", "gen. lag p99 µs"]
    for wname, ws in res["workloads"].items():
        rows = {}
        for n in names:
            r = ws["servers"].get(n)
            if r is None:
                continue
            lat = r.get("fixed", {}).get("latency_us", {})
            mem = res["memory"].get(n, {}).get("bytes_per_item")
            lag = (r.get("fixed", {}).get("send_lag_us") or {}).get("p99")
            rows[n] = [r["peak"]["ops_per_sec"], lat.get("p50"), lat.get("p99"), lat.get("p99.9"),
                       r["cpu_us_per_request"], r.get("cpu_us_per_request_peak"), mem, lag]
        lines += [f"## {wname}: {ws['title']}", "", ws["description"] + ".",
                  f"Fixed rate: {ws['fixed_rate']:.0f} requests/s (half of {ws['fixed_rate_from']}'s "
                  "peak).", "",
                  "| server | " + " | ".join(cols) + " |",
                  "|---" * (len(cols) + 1) + "|"]
        fmt = ["{:.0f}", "{:.1f}", "{:.1f}", "{:.1f}", "{:.2f}", "{:.2f}", "{:.1f}", "{:.1f}"]
        for n, vals in rows.items():
            cells = [f.format(v) if v is not None else "-" for f, v in zip(fmt, vals)]
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
        for other in ("memcached", "ceiling", "baseline"):
            if "corecache" in rows and other in rows:
                cells = [ratio(a, b) for a, b in zip(rows["corecache"][:-1], rows[other][:-1])] + ["-"]
                lines.append(f"| corecache/{other} | " + " | ".join(cells) + " |")
        lines += ["", "Peaks of the rounds: " + "; ".join(
            f"{n} " + ", ".join(f"{x:.0f}" for x in ws["servers"][n].get("peaks", []))
            for n in names if n in ws["servers"]) + "."]
        notes = [f"{n}: fixed-rate run {r['fixed_note']}" for n, r in ws["servers"].items()
                 if "fixed_note" in r]
        if notes:
            lines += ["", "Note: " + "; ".join(notes) + " (the load generator or the server could "
                      "not keep up; latencies then include the backlog)."]
        lines.append("")
    rows = target_rows(c)
    if rows:
        lines += ["## Targets", "",
                  "Each target of the benchmark issue, checked in this run (ratio = corecache / the "
                  "other server).", "",
                  "| target | workload | ratio | met |", "|---|---|---|---|"]
        for label, wname, r, met in rows:
            lines.append(f"| {label} | {wname} | {r:.2f} | {'yes' if met else '**no**'} |")
        lines.append("")
        analysis = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ANALYSIS.md")
        if os.path.exists(analysis) and not c.quick:
            with open(analysis) as f:
                lines += [f.read().rstrip(), ""]
    lines += ["## Throughput against connections", "",
              f"Workload {SWEEP_WORKLOAD}, closed loop, pipeline 1 (requests/s; p99 µs in brackets).",
              ""]
    conns = sorted({p["connections"] for pts in res["sweep"].values() for p in pts})
    lines += ["| server | " + " | ".join(f"{x} conns" for x in conns) + " |",
              "|---" * (len(conns) + 1) + "|"]
    for n, pts in res["sweep"].items():
        by = {p["connections"]: p for p in pts}
        lines.append(f"| {n} | " + " | ".join(
            f"{by[x]['ops_per_sec']:.0f} ({by[x]['p99']:.0f})" if x in by else "-" for x in conns) + " |")
    lines += ["", "![throughput and latency](results.png)", ""]
    lines += ["## memtier_benchmark cross-check", ""]
    if not res["memtier"]:
        lines += [meta["memtier_note"], ""]
    else:
        lines += ["Peak requests/s and latency by memtier_benchmark on the same servers, right after "
                  "corecache-bench's runs (same connections, pipeline, ratio, sizes and keys):", "",
                  "| workload | server | corecache-bench ops/s | memtier ops/s | memtier p50 µs | "
                  "memtier p99 µs |", "|---|---|---|---|---|---|"]
        for wname, per in res["memtier"].items():
            for n, m in per.items():
                ours = res["workloads"][wname]["servers"][n]["peak"]["ops_per_sec"]
                lines.append(f"| {wname} | {n} | {ours:.0f} | {m['ops_per_sec']:.0f} | "
                             f"{m['p50']:.0f} | {m['p99']:.0f} |")
        if any(not c.memtier_supports(w) for w in c.workloads):
            lines += ["", "Not cross-checked: " + ", ".join(w.name for w in c.workloads
                                                          if not c.memtier_supports(w)) +
                      " (memtier_benchmark's memcache_binary aborts on --multi-key-get)."]
        lines += ["", "Recipes (PORT is the server's port):", "", "```"]
        for w in c.workloads:
            if not c.memtier_supports(w):
                continue
            lines.append(shlex.join(c.memtier_cmd(0, w, c.args.duration)).replace("-p 0", "-p PORT"))
        lines += ["```", ""]
    # The sections other scripts own (benchlib.write_section) are kept:
    # everything from the KEEP_BEGIN marker on.
    kept = ""
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
        if KEEP_BEGIN in old:
            kept = old[old.index(KEEP_BEGIN):]
    text = "\n".join(lines)
    with open(path, "w") as f:
        f.write(text.rstrip("\n") + "\n\n" + kept.lstrip("\n") if kept else text)


def set_connection_ticks(ax, res) -> None:
    from matplotlib.ticker import NullLocator
    conns = sorted({p["connections"] for pts in res["sweep"].values() for p in pts})
    ax.set_xticks(conns)
    ax.set_xticklabels([str(x) for x in conns])
    ax.xaxis.set_minor_locator(NullLocator())


def write_plot(c: Compare, path: str) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    res = c.results
    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    ax = axes[0][0]
    for n, pts in res["sweep"].items():
        ax.plot([p["connections"] for p in pts], [p["ops_per_sec"] for p in pts], marker="o", label=n)
    ax.set_xscale("log")
    set_connection_ticks(ax, res)
    ax.set_xlabel("connections")
    ax.set_ylabel("requests/s")
    ax.set_title(f"Throughput against connections ({SWEEP_WORKLOAD}, closed loop)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax = axes[0][1]
    for n, pts in res["sweep"].items():
        line, = ax.plot([p["connections"] for p in pts], [p["p99"] for p in pts], marker="o",
                        label=f"{n} p99")
        ax.plot([p["connections"] for p in pts], [p["p50"] for p in pts], marker=".", ls="--",
                color=line.get_color(), label=f"{n} p50")
    ax.set_xscale("log")
    set_connection_ticks(ax, res)
    ax.set_yscale("log")
    ax.set_xlabel("connections")
    ax.set_ylabel("latency µs")
    ax.set_title("Closed-loop latency against connections")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    for ax, wname in zip(axes[1], [w.name for w in c.workloads][:2]):
        ws = res["workloads"].get(wname)
        if ws is None:
            ax.set_visible(False)
            continue
        for n, r in ws["servers"].items():
            lat = r.get("fixed", {}).get("latency_us")
            if lat:
                ax.plot(PERCENTILES + ["max"], [lat[p] for p in PERCENTILES + ["max"]], marker="o",
                        label=n)
        ax.set_yscale("log")
        ax.set_xlabel("percentile")
        ax.set_ylabel("latency µs")
        ax.set_title(f"{wname} at {ws['fixed_rate']:.0f} requests/s (open loop)")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def check(c: Compare, out_dir: str, plotted: bool) -> None:
    """--check: the report exists and every number in it is sane."""
    md = os.path.join(out_dir, "RESULTS.md")
    if not os.path.getsize(md):
        raise CompareError(f"{md} is empty")
    for wname, ws in c.results["workloads"].items():
        for n, r in ws["servers"].items():
            peak, fixed = r["peak"], r["fixed"]
            if not peak["ops_per_sec"] > 0 or peak["errors"] or fixed["errors"]:
                raise CompareError(f"{wname}/{n}: ops {peak['ops_per_sec']}, errors "
                                   f"{peak['errors']}+{fixed['errors']}")
            if peak["hit_ratio"] is not None and peak["hit_ratio"] < 0.99:
                raise CompareError(f"{wname}/{n}: hit ratio {peak['hit_ratio']} after prefill")
            if not fixed["latency_us"]["p50"] > 0 or not r["cpu_us_per_request"] >= 0:
                raise CompareError(f"{wname}/{n}: no latency or CPU time")
    for n, m in c.results["memory"].items():
        if not m["bytes_per_item"] > 0:
            raise CompareError(f"{n}: memory per item {m['bytes_per_item']}")
    if plotted and not os.path.getsize(os.path.join(out_dir, "results.png")):
        raise CompareError("results.png is empty")
    with open(md) as f:
        written = f.read()
    if render(os.path.join(out_dir, "results.json")) != 0:
        raise CompareError("--render could not read results.json back")
    with open(md) as f:
        if f.read() != written:
            raise CompareError("--render does not reproduce RESULTS.md from results.json")
    log(f"check: ok ({len(c.results['workloads'])} workloads, servers {', '.join(c.args.servers)})")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", default="corecache,memcached,ceiling",
                   help="comma-separated: corecache, memcached, ceiling (default: all three)")
    p.add_argument("--build-dir", default=os.path.join(REPO, "build"),
                   help="CMake build directory holding corecache and bench/ (default: build)")
    p.add_argument("--corecache", help="corecache binary (default: BUILD/corecache or BUILD/io/corecache)")
    p.add_argument("--ceiling", help="ceiling binary (default: BUILD/bench/corecache-ceiling)")
    p.add_argument("--memcached", help="memcached binary (default: /usr/bin/memcached)")
    p.add_argument("--baseline", help="another corecache binary (say, built from the commit before a "
                   "change), run as server `baseline` beside the others; bench/before_after.sh builds one")
    p.add_argument("--bench", help="corecache-bench binary (default: BUILD/bench/corecache-bench)")
    p.add_argument("--server-cpus", default="0", help="taskset CPU list for servers (default: 0)")
    p.add_argument("--client-cpus", default="1", help="CPU list for corecache-bench/memtier (default: 1)")
    p.add_argument("--server-threads", type=int, default=1, help="server -t (default: 1)")
    p.add_argument("--client-threads", type=int, default=1, help="load generator threads (default: 1)")
    p.add_argument("--memory", type=int, default=1024, help="server -m in MiB (default: 1024)")
    p.add_argument("--protocol", default="text", choices=["text", "meta", "binary"])
    p.add_argument("--duration", type=float, help="seconds per measured run (default: 10, quick: 0.5)")
    p.add_argument("--sweep-duration", type=float, help="seconds per sweep point (default: 5, quick: 0.3)")
    p.add_argument("--workloads", help="comma-separated subset of: " + ", ".join(w.name for w in WORKLOADS))
    p.add_argument("--out-dir", help="where to write RESULTS.md, results.json, results.png "
                   "(default: bench/, or a new temporary directory with --quick)")
    p.add_argument("--quick", action="store_true", help="short runs on small key sets (smoke test)")
    p.add_argument("--repeat", type=int, help="rounds per workload, servers interleaved; figures are "
                   "medians (default: 3, quick: 1)")
    p.add_argument("--check", action="store_true", help="assert the report is sane; exit 77 if a "
                   "server binary is missing")
    p.add_argument("--no-memtier", action="store_true", help="skip the memtier_benchmark cross-check")
    p.add_argument("-v", "--verbose", action="store_true", help="log every load generator run")
    p.add_argument("--keep-logs", action="store_true", help="keep the servers' and memtier's logs")
    p.add_argument("--print-memtier", action="store_true",
                   help="print the memtier_benchmark recipes (for --port) and exit")
    p.add_argument("--port", type=int, default=11211, help="port for --print-memtier")
    p.add_argument("--render", metavar="RESULTS_JSON",
                   help="run nothing: rewrite RESULTS.md and results.png (next to RESULTS_JSON) "
                   "from a finished run's results.json, e.g. after editing bench/ANALYSIS.md")
    a = p.parse_args(argv)
    a.servers = [s.strip() for s in a.servers.split(",") if s.strip()]
    if a.baseline and "baseline" not in a.servers:
        a.servers.append("baseline")
    for s in a.servers:
        if s not in SERVERS:
            p.error(f"--servers: unknown server '{s}' (choose from {', '.join(SERVERS)})")
    if len(set(a.servers)) != len(a.servers) or not a.servers:
        p.error("--servers: name each server once")
    if a.duration is None:
        a.duration = 0.5 if a.quick else 10.0
    if a.repeat is None:
        a.repeat = 1 if a.quick else 3
    if not 1 <= a.repeat <= 20:
        p.error("--repeat must be in 1..20")
    if a.sweep_duration is None:
        a.sweep_duration = 0.3 if a.quick else 5.0
    if not (0 < a.duration <= 600 and 0 < a.sweep_duration <= 600):
        p.error("--duration and --sweep-duration must be in (0, 600] seconds")
    return a


def find_binary(name: str, args) -> str:
    explicit = getattr(args, name)
    candidates = [explicit] if explicit else [c.format(build=args.build_dir)
                                              for c in SERVERS[name]["default"]]
    for c in candidates:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return os.path.abspath(c)
    raise FileNotFoundError(f"{name}: no executable at {' or '.join(candidates)}"
                            + ("" if explicit else f"; build it, or pass --{name} PATH"))


# The arguments the report describes, recorded in results.json for --render
# (none of them a path: results are committed).
REPORT_ARGS = ("servers", "server_cpus", "client_cpus", "server_threads", "client_threads",
               "memory", "protocol", "duration", "sweep_duration", "repeat", "quick", "no_memtier")


def render(path: str) -> int:
    """Rewrite a finished run's report from its results.json: the figures are
    the run's own; only the prose around them (ANALYSIS.md) may have changed."""
    with open(path) as f:
        results = json.load(f)
    meta = results.get("meta", {})
    if "args" not in meta or "binaries" not in meta:
        log(f"{path}: written by an older compare.py (no recorded arguments); run the comparison again")
        return 2
    c = Compare(argparse.Namespace(**meta["args"]))
    c.results, c.binaries = results, meta["binaries"]
    c.workloads = [w for w in WORKLOADS if w.name in results["workloads"]]
    out_dir = os.path.dirname(os.path.abspath(path))
    write_markdown(c, os.path.join(out_dir, "RESULTS.md"), meta)
    plotted = importlib.util.find_spec("matplotlib") is not None and \
        write_plot(c, os.path.join(out_dir, "results.png"))
    log(f"rendered {out_dir}/RESULTS.md" + (", results.png" if plotted else "") + f" from {path}")
    return 0


def main(argv) -> int:
    args = parse_args(argv)
    if args.render:
        return render(args.render)
    c = Compare(args)
    if args.workloads:
        wanted = [x.strip() for x in args.workloads.split(",")]
        unknown = [x for x in wanted if x not in {w.name for w in WORKLOADS}]
        if unknown:
            log(f"--workloads: unknown {', '.join(unknown)}")
            return 2
        c.workloads = [w for w in WORKLOADS if w.name in wanted]
    else:
        c.workloads = list(WORKLOADS)
    if args.print_memtier:
        for w in c.workloads:
            print(f"# {w.name}: {w.describe(c.keys(w))}")
            if not c.memtier_supports(w):
                print("# (not with memtier's memcache_binary: it aborts on --multi-key-get)")
                continue
            print(shlex.join(c.memtier_cmd(args.port, w, args.duration)))
        return 0

    try:
        c.binaries = {n: find_binary(n, args) for n in args.servers}
        args.bench = args.bench or os.path.join(args.build_dir, "bench", "corecache-bench")
        if not os.access(args.bench, os.X_OK):
            raise FileNotFoundError(f"corecache-bench: no executable at {args.bench}; build it "
                                    "(cmake --build BUILD --target corecache-bench) or pass --bench")
    except FileNotFoundError as e:
        log(str(e))
        return SKIP if args.check else 2
    if shutil.which("taskset") is None:
        log("taskset (util-linux) is needed to pin the servers")
        return 2
    have_plot = importlib.util.find_spec("matplotlib") is not None
    if not have_plot:
        if not args.quick:
            log("the plot needs matplotlib: apt-get install python3-matplotlib")
            return 2
        log("matplotlib is missing: no plot in --quick mode (apt-get install python3-matplotlib)")
    memtier_note = ""
    if args.no_memtier:
        memtier_note = "memtier_benchmark cross-check skipped (--no-memtier)."
    elif c.memtier is None:
        memtier_note = "memtier_benchmark is not on PATH: its cross-check was skipped."
        log(memtier_note)
    elif args.protocol == "meta":
        memtier_note = "memtier_benchmark does not speak the meta protocol: cross-check skipped."
        log(memtier_note)

    out_dir = args.out_dir or (tempfile.mkdtemp(prefix="corecache-compare-")
                               if args.quick else os.path.join(REPO, "bench"))
    os.makedirs(out_dir, exist_ok=True)
    meta = {"machine": machine(), "kernel": os.uname().release, "commit": git_commit(),
            "command": shlex.join(["/usr/bin/python3", os.path.relpath(__file__, REPO)] + argv),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "versions": {n: server_version(c.binaries[n]) for n in args.servers},
            "memtier_note": memtier_note,
            # what --render needs to write the report again
            "args": {k: getattr(args, k) for k in REPORT_ARGS},
            "binaries": {n: repo_relative(b) for n, b in c.binaries.items()}}
    started = time.monotonic()
    try:
        c.run()
    except (CompareError, subprocess.SubprocessError, OSError, json.JSONDecodeError) as e:
        log(f"failed: {e}")
        log(f"nothing was written (results are written only when the whole comparison "
            f"completes); server logs are in {c.log_dir}")
        return 1
    if not args.keep_logs:
        shutil.rmtree(c.log_dir, ignore_errors=True)
    # Everything ran: only now write, so a partial run never replaces results.
    c.results["meta"] = meta
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(c.results, f, indent=1)
    write_markdown(c, os.path.join(out_dir, "RESULTS.md"), meta)
    plotted = have_plot and write_plot(c, os.path.join(out_dir, "results.png"))
    log(f"done in {time.monotonic() - started:.0f} s: {out_dir}/RESULTS.md"
        + (", results.png" if plotted else "") + ", results.json")
    if args.check:
        try:
            check(c, out_dir, plotted)
        except CompareError as e:
            log(f"check failed: {e}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
