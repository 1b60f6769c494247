#!/usr/bin/python3
"""tls.py: TLS throughput, server CPU per request and handshake rate, corecache
against memcached 1.6.18 -Z with the same certificates, in one run.

For each round (the servers interleaved, medians over rounds reported):
  * corecache plain, corecache -Z and memcached -Z (-t THREADS, -m 1024,
    memcached also -U 0), each started fresh, pinned with taskset to
    --server-cpus; keys prefilled; then corecache-bench (plain or --tls),
    pinned to --client-cpus, closed loop, get:set 9:1, 100-byte values,
    --connections connections, at pipeline 1 and 16 for --duration seconds;
  * server CPU per request = utime+stime (/proc/PID/stat) over the measured
    window / requests;
  * the handshake rate: `openssl s_time -new` (full handshakes, one client
    process, TLS 1.3 with the default groups) for --duration seconds
    against each TLS server.

On a machine with few CPUs the generator, which does TLS too, runs out of
CPU before the server does; then throughput measures the generator.
--server-cpu-quota F (root, cgroup v1 `cpu` or v2) caps every server at F
of one CPU, the same for all, so that the server is the bottleneck: the
report says which mode was used, and the server's CPU use in each run.

Certificates (EC P-256, a CA and a server certificate) are made in a
temporary directory with the openssl CLI. Prints a Markdown report (the TLS
section of bench/RESULTS.md) and, with --json FILE, the raw figures.

Run from the repository root, after building:
    cmake -B build && cmake --build build -j
    /usr/bin/python3 bench/tls.py --build-dir build
"""

import argparse
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import free_port  # noqa: E402

MEMCACHED = "/usr/bin/memcached"


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60)


def make_certs(d):
    os.chmod(d, 0o755)
    ec = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    openssl("genpkey", *ec, "-out", f"{d}/ca.key")
    openssl("req", "-x509", "-new", "-key", f"{d}/ca.key", "-days", "2", "-subj", "/CN=bench CA",
            "-out", f"{d}/ca.pem")
    openssl("genpkey", *ec, "-out", f"{d}/server.key")
    openssl("req", "-new", "-key", f"{d}/server.key", "-subj", "/CN=localhost", "-out", f"{d}/server.csr")
    with open(f"{d}/ext", "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", f"{d}/server.csr", "-CA", f"{d}/ca.pem", "-CAkey", f"{d}/ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", f"{d}/ext", "-out", f"{d}/server.pem")
    for name in os.listdir(d):
        os.chmod(os.path.join(d, name), 0o644)


class CpuCap:
    """A cgroup capping the servers at `quota` of one CPU (v1 cpu or v2)."""

    def __init__(self, quota):
        self.dir = None
        period = 100000
        for root, v2 in (("/sys/fs/cgroup/cpu", False), ("/sys/fs/cgroup/unified", True),
                         ("/sys/fs/cgroup", True)):
            if not os.path.isdir(root):
                continue
            d = os.path.join(root, f"corecache-tls-bench-{os.getpid()}")
            try:
                os.mkdir(d)
                if v2:
                    with open(os.path.join(d, "cpu.max"), "w") as f:
                        f.write(f"{int(quota * period)} {period}")
                else:
                    with open(os.path.join(d, "cpu.cfs_period_us"), "w") as f:
                        f.write(str(period))
                    with open(os.path.join(d, "cpu.cfs_quota_us"), "w") as f:
                        f.write(str(int(quota * period)))
                self.dir = d
                return
            except OSError:
                try:
                    os.rmdir(d)
                except OSError:
                    pass
        sys.exit("tls.py: --server-cpu-quota needs root and a cgroup cpu controller")

    def add(self, pid):
        with open(os.path.join(self.dir, "cgroup.procs"), "w") as f:
            f.write(str(pid))

    def remove(self):
        if self.dir is not None:
            try:
                os.rmdir(self.dir)
            except OSError:
                pass


class Server:
    def __init__(self, name, argv, cpus, cap=None):
        self.name, self.argv, self.cpus, self.cap = name, argv, cpus, cap
        self.proc = None
        self.port = None

    def start(self):
        self.port = free_port()
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        cmd = ["taskset", "-c", self.cpus] + self.argv + ["-p", str(self.port), "-l", "127.0.0.1"] + user
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.proc.stderr.read().decode()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                if self.cap is not None:
                    self.cap.add(self.proc.pid)
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def bench(args, srv, tls, pipeline, prefill):
    cmd = ["taskset", "-c", args.client_cpus, args.bench, "-p", str(srv.port), "-c", str(args.connections),
           "-t", str(args.client_threads), "-P", str(pipeline), "-d", str(args.duration), "-k", str(args.keys),
           "--value-size", "100", "--ratio", "9:1", "--json", "-q"]
    if tls:
        cmd.append("--tls")
    if prefill:
        cmd.append("--prefill")
    before = cpu_ticks(srv.proc.pid)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=args.duration * 4 + 60)
    wall = time.monotonic() - t0
    after = cpu_ticks(srv.proc.pid)
    # the generator's CPU (it exited and was reaped: RUSAGE_CHILDREN grew by it)
    done = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (done.ru_utime + done.ru_stime) - (children.ru_utime + children.ru_stime)
    if out.returncode != 0:
        raise RuntimeError(f"corecache-bench failed on {srv.name}: {out.stderr.decode()[-500:]}")
    report = json.loads(out.stdout)
    ops = report["ops_per_sec"]
    requests = report["requests"]
    ticks = after - before
    hz = os.sysconf("SC_CLK_TCK")
    # the prefill is in the CPU window too: it is small (keys x 1 set) next to the run
    if report.get("errors"):
        raise RuntimeError(f"corecache-bench saw errors on {srv.name}: {report.get('first_error')}")
    return {"rps": float(ops), "requests": int(requests),
            "cpu_us_per_req": ticks / hz * 1e6 / max(int(requests), 1), "wall": wall,
            "server_cpu": ticks / hz / wall,
            "client_cpu_us_per_req": client_cpu * 1e6 / max(int(requests), 1)}


def handshakes(args, srv, certs):
    cmd = ["taskset", "-c", args.client_cpus, "openssl", "s_time", "-connect", f"127.0.0.1:{srv.port}",
           "-new", "-time", str(int(args.duration)), "-CAfile", f"{certs}/ca.pem"]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=args.duration + 60)
    m = re.search(rb"(\d+) connections in (\d+) real seconds", out.stdout)
    if m is None:
        raise RuntimeError(f"openssl s_time against {srv.name}: {out.stdout.decode()[-300:]}")
    return int(m.group(1)) / max(int(m.group(2)), 1), int(m.group(1))


def write_section(args, lines):
    """The report as RESULTS.md's trailing "## TLS" section (one per mode)."""
    mode = "capped" if args.server_cpu_quota > 0 else "uncapped"
    argv = sys.argv[1:]
    if "--json" in argv:  # a scratch file of the runner's, not part of the command to rerun
        i = argv.index("--json")
        argv = argv[:i] + argv[i + 2:]
    cmd = " ".join(["/usr/bin/python3", "bench/tls.py"] + argv)
    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, cwd=os.path.dirname(os.path.abspath(__file__))).stdout
    block = [f"### {mode}", "", f"- Command: `{cmd}`",
             f"- Commit: {commit.decode().strip() or 'unknown'}",
             f"- Date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}",
             f"- Load average at the end: {open('/proc/loadavg').read().split()[0]}",
             ""] + lines + [""]
    with open(args.write_results) as f:
        text = f.read()
    head, sep, section = text.partition("\n## TLS")
    section = (sep + section) if sep else "\n## TLS\n\n"
    # replace this mode's block, keep the other's
    marker = f"\n### {mode}\n"
    if marker in section:
        before, _, rest = section.partition(marker)
        nxt = rest.find("\n### ")
        section = before + ("\n" + rest[nxt + 1:] if nxt >= 0 else "\n")
    section = section.rstrip("\n") + "\n\n" + "\n".join(block)
    with open(args.write_results, "w") as f:
        f.write(head.rstrip("\n") + "\n" + section)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--memcached", default=MEMCACHED)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--threads", type=int, default=1, help="server threads (-t)")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--client-threads", type=int, default=1)
    ap.add_argument("--keys", type=int, default=100000)
    ap.add_argument("--server-cpus", default="0")
    ap.add_argument("--client-cpus", default="1")
    ap.add_argument("--server-cpu-quota", type=float, default=0,
                    help="cap each server at this fraction of one CPU (cgroup; 0: no cap)")
    ap.add_argument("--json", help="write the raw figures here")
    ap.add_argument("--write-results", metavar="MD",
                    help="also replace the trailing '## TLS' section of this file (bench/RESULTS.md) "
                         "with the report (compare.py --render keeps that section)")
    args = ap.parse_args()
    args.bench = os.path.join(args.build_dir, "bench", "corecache-bench")
    corecache = os.path.join(args.build_dir, "corecache")
    for path in (args.bench, corecache, args.memcached):
        if not os.access(path, os.X_OK):
            sys.exit(f"tls.py: {path} is missing (build first; memcached: apt-get install memcached)")
    if b"enable-ssl" not in subprocess.run([args.memcached, "-h"], stdout=subprocess.PIPE).stdout:
        sys.exit(f"tls.py: {args.memcached} has no TLS (-Z)")
    certs = tempfile.mkdtemp(prefix="corecache-tls-bench-")
    try:
        make_certs(certs)
        tls_opts = f"ssl_chain_cert={certs}/server.pem,ssl_key={certs}/server.key"
        common = ["-t", str(args.threads), "-m", "1024"]
        servers = [
            ("corecache plain", [corecache] + common, False),
            ("corecache TLS", [corecache] + common + ["-Z", "-o", tls_opts], True),
            ("memcached TLS", [args.memcached] + common + ["-U", "0", "-Z", "-o", tls_opts], True),
        ]
        results = {name: {"p1": [], "p16": [], "handshakes": [], "hs_cpu_us": []} for name, _, _ in servers}
        cap = CpuCap(args.server_cpu_quota) if args.server_cpu_quota > 0 else None
        for rnd in range(args.rounds):
            for name, argv, tls in servers:
                srv = Server(name, argv, args.server_cpus, cap).start()
                try:
                    for i, pipeline in enumerate((1, 16)):
                        r = bench(args, srv, tls, pipeline, prefill=(i == 0))
                        results[name][f"p{pipeline}"].append(r)
                        print(f"round {rnd + 1} {name:16} p{pipeline:<3} {r['rps']:>10.0f} req/s "
                              f"{r['cpu_us_per_req']:.2f} us CPU/req (generator {r['client_cpu_us_per_req']:.2f})",
                              file=sys.stderr)
                    if tls:
                        before = cpu_ticks(srv.proc.pid)
                        rate, count = handshakes(args, srv, certs)
                        cpu_us = (cpu_ticks(srv.proc.pid) - before) / os.sysconf("SC_CLK_TCK") * 1e6 / max(count, 1)
                        results[name]["handshakes"].append(rate)
                        results[name]["hs_cpu_us"].append(cpu_us)
                        print(f"round {rnd + 1} {name:16} handshakes {rate:.0f}/s {cpu_us:.0f} us CPU each",
                              file=sys.stderr)
                finally:
                    srv.stop()
    finally:
        shutil.rmtree(certs, ignore_errors=True)
        if cap is not None:
            time.sleep(0.5)
            cap.remove()

    def med(name, key, field):
        return statistics.median(r[field] for r in results[name][key])

    mode = (f"servers capped at {args.server_cpu_quota:g} CPU (cgroup)" if args.server_cpu_quota > 0
            else "servers uncapped")
    lines = [f"-t {args.threads}, {args.connections} connections, {mode}; medians of {args.rounds} rounds "
             f"of {args.duration:g} s",
             "",
             "| server | p1 req/s | p1 CPU us/req | p16 req/s | p16 CPU us/req | p16 server CPU | "
             "p16 generator CPU us/req | handshakes/s | CPU us/handshake |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, _, tls in servers:
        hs = f"{statistics.median(results[name]['handshakes']):.0f}" if tls else "-"
        hs_cpu = f"{statistics.median(results[name]['hs_cpu_us']):.0f}" if tls else "-"
        lines.append(f"| {name} | {med(name, 'p1', 'rps'):.0f} | {med(name, 'p1', 'cpu_us_per_req'):.2f} | "
                     f"{med(name, 'p16', 'rps'):.0f} | {med(name, 'p16', 'cpu_us_per_req'):.2f} | "
                     f"{med(name, 'p16', 'server_cpu'):.2f} | {med(name, 'p16', 'client_cpu_us_per_req'):.2f} | "
                     f"{hs} | {hs_cpu} |")
    ratio_mc = med("corecache TLS", "p16", "rps") / med("memcached TLS", "p16", "rps")
    cost = 1 - med("corecache TLS", "p16", "rps") / med("corecache plain", "p16", "rps")
    lines.append("")
    lines.append(f"- corecache TLS / memcached TLS at pipeline 16: {ratio_mc:.2f}x (target >= 1.5x)")
    cpu_cost = 1 - med("corecache plain", "p16", "cpu_us_per_req") / med("corecache TLS", "p16", "cpu_us_per_req")
    lines.append(f"- TLS cost at pipeline 16: {cost * 100:.1f}% of corecache's plain throughput (target <= 25%)")
    lines.append(f"- TLS cost at pipeline 16 by server CPU per request: {cpu_cost * 100:.1f}% (the throughput a "
                 f"CPU-bound server loses; the honest figure when generator and server share few cores, as the "
                 f"generator, which does TLS too, may set the pace: see its CPU per request)")
    lines.append(f"- corecache TLS / memcached TLS at pipeline 1: "
                 f"{med('corecache TLS', 'p1', 'rps') / med('memcached TLS', 'p1', 'rps'):.2f}x")
    print("\n".join(lines))
    if args.write_results:
        write_section(args, lines)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
