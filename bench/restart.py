#!/usr/bin/env python3
"""restart.py: warm restart time against item count, corecache -e beside
memcached 1.6.18 -e, in one run (issue 14).

For each item count and each server, freshly started with the same flags
(`-t 2 -m M`, M sized to the items; memcached also `-U 0`) and its memory
file in a fresh tmpfs directory:
  1. load N items (keys k0..kN-1, 100-byte values, no TTL) with pipelined
     sets, a batch of 5000 at a time with its replies;
  2. stop it gracefully: corecache with SIGTERM, memcached with SIGUSR1
     (its graceful stop, the one that saves; its SIGTERM does not), and
     time the signal to the exit (drain and save);
  3. start it again on the same file once the wall clock's second changed
     (memcached refuses a start in the second of its stop), and time the
     exec to the first hit on k0 (serving with its data), then compare
     curr_items with before.

    /usr/bin/python3 bench/restart.py                       # 1M and 10M (if memory allows)
    /usr/bin/python3 bench/restart.py --items 1000000 --results bench/RESULTS.md

10M items need about 2 GiB of tmpfs per server (one at a time) and the
same in free memory; a count that does not fit is skipped with a line
saying so. Rerun it in a quiet window: on a shared machine the load phase
dominates the run time, and stop and start times move with the load.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VALUE = b"x" * 100
BATCH = 5000


def user_flags():
    return ["-u", "nobody"] if os.geteuid() == 0 else []


def mem_mb(items):
    """-m for `items` 100-byte items: about 170 bytes each, plus room."""
    return max(256, items * 200 // (1 << 20) + 128)


def meminfo_mb(field):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) // 1024
    return 0


def shm_free_mb(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize // (1 << 20)


class Server:
    def __init__(self, name, binary, memdir, mb):
        self.name, self.binary, self.mb = name, binary, mb
        self.file = os.path.join(memdir, name)
        self.proc = None
        self.port = None

    def argv(self):
        a = [self.binary, "-p", str(self.port), "-l", "127.0.0.1", "-U", "0", "-t", "2",
             "-m", str(self.mb), "-e", self.file] + user_flags()
        return a

    def start(self):
        self.port = benchlib.free_port()
        self.log = tempfile.TemporaryFile()
        t0 = time.monotonic()
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        return t0

    def conn(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=60)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def wait_hit(self, key, deadline):
        """Polls until `get key` hits; returns when it did (monotonic)."""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited: %s" % (self.name, self.log_text()))
            try:
                with self.conn() as s:
                    s.sendall(b"get %s\r\n" % key)
                    buf = b""
                    while not buf.endswith(b"END\r\n"):
                        chunk = s.recv(65536)
                        if not chunk:
                            raise OSError("closed")
                        buf += chunk
                    if buf.startswith(b"VALUE"):
                        return time.monotonic()
                    return None  # serving, but empty
            except OSError:
                time.sleep(0.005)
        raise RuntimeError("%s did not serve within the deadline" % self.name)

    def wait_serving(self, deadline):
        while time.monotonic() < deadline:
            try:
                with self.conn() as s:
                    s.sendall(b"version\r\n")
                    if s.recv(100).startswith(b"VERSION"):
                        return
            except OSError:
                time.sleep(0.01)
        raise RuntimeError("%s did not start" % self.name)

    def curr_items(self):
        with self.conn() as s:
            s.sendall(b"stats\r\n")
            buf = b""
            while not buf.endswith(b"END\r\n"):
                buf += s.recv(65536)
        for line in buf.decode().split("\r\n"):
            if line.startswith("STAT curr_items "):
                return int(line.split()[2])
        return -1

    def stop(self, signum):
        t0 = time.monotonic()
        os.kill(self.proc.pid, signum)
        self.proc.wait(timeout=600)
        return time.monotonic() - t0

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def log_text(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")


def load(srv, items):
    """Pipelined sets, a batch at a time, each batch's replies read before
    the next (noreply sets are not used: see the report of issue 14)."""
    with srv.conn() as s:
        for start in range(0, items, BATCH):
            n = min(items, start + BATCH) - start
            s.sendall(b"".join(b"set k%d 0 0 100\r\n%s\r\n" % (i, VALUE)
                               for i in range(start, start + n)))
            buf = b""
            while len(buf) < n * 8:  # "STORED\r\n"
                chunk = s.recv(1 << 20)
                if not chunk:
                    raise RuntimeError("%s closed the connection while loading" % srv.name)
                buf += chunk
            if buf != b"STORED\r\n" * n:
                raise RuntimeError("%s: a set failed: %r" % (srv.name, buf[:200]))


def run_one(name, binary, items, memdir):
    srv = Server(name, binary, memdir, mem_mb(items))
    try:
        srv.start()
        srv.wait_serving(time.monotonic() + 60)
        t = time.monotonic()
        load(srv, items)
        load_s = time.monotonic() - t
        before = srv.curr_items()
        stop_s = srv.stop(signal.SIGTERM if name == "corecache" else signal.SIGUSR1)
        # memcached 1.6.18 refuses its saved state when it starts in the
        # same second it stopped ("restart incompatible due to setting for
        # [stop_time]": its time delta must be > 0); both servers wait for
        # the next second, so both are timed alike
        stopped = time.time()
        while int(time.time()) <= int(stopped) + 1:
            time.sleep(0.01)
        t0 = srv.start()
        hit = srv.wait_hit(b"k0", t0 + 600)
        start_s = (hit - t0) if hit is not None else float("nan")
        after = srv.curr_items()
        srv.stop(signal.SIGTERM)
        return {"server": name, "items": items, "mb": srv.mb, "load_s": load_s, "stop_s": stop_s,
                "start_s": start_s, "before": before, "after": after}
    finally:
        srv.kill()


def render(rows):
    out = ["| server | items | -m | stop: signal to exit (s) | start: exec to first hit (s) "
           "| curr_items before | after |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "skipped" in r:
            out.append("| %s | %d | | skipped: %s | | | |" % (r["server"], r["items"], r["skipped"]))
            continue
        out.append("| %s | %d | %d | %.2f | %.2f | %d | %d |" % (
            r["server"], r["items"], r["mb"], r["stop_s"], r["start_s"], r["before"], r["after"]))
    return "\n".join(out)


KEEP_BEGIN = "<!-- kept by compare.py: sections of other scripts -->"
BEGIN, END = "<!-- bench/restart.py begin -->", "<!-- bench/restart.py end -->"


def write_section(path, table):
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=REPO).stdout.strip() or "unknown"
    section = "\n".join([
        BEGIN,
        "## Warm restart time (issue 14)",
        "",
        "`%s` (commit %s, %s, kernel %s, load average %.1f at the end). Each server freshly started "
        "with `-t 2 -m M -e FILE` on tmpfs (memcached also `-U 0`), N keys of 100 bytes loaded, "
        "stopped gracefully (corecache SIGTERM, memcached SIGUSR1) and started again on the same "
        "file; the start is timed from exec to the first hit."
        % (" ".join(["bench/restart.py"] + sys.argv[1:]), commit, time.strftime("%Y-%m-%d"),
           os.uname().release, os.getloadavg()[0]),
        "",
        table,
        "",
        END,
    ])
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
    p.add_argument("--items", default="1000000,10000000", help="comma-separated item counts")
    p.add_argument("--corecache", default=os.path.join(REPO, "build", "corecache"))
    p.add_argument("--memcached", default="/usr/bin/memcached")
    p.add_argument("--tmpfs", default="/dev/shm", help="where the memory files go (a tmpfs)")
    p.add_argument("--results", help="write this script's section of a Markdown file (bench/RESULTS.md)")
    args = p.parse_args()
    rows = []
    for items in (int(x) for x in args.items.split(",")):
        need = mem_mb(items)
        for name, binary in (("corecache", args.corecache), ("memcached", args.memcached)):
            # the file, plus the server's own memory (index, connections)
            short = need * 2 > meminfo_mb("MemAvailable") or need + 64 > shm_free_mb(args.tmpfs)
            if short:
                rows.append({"server": name, "items": items,
                             "skipped": "needs %d MiB of tmpfs and twice that free" % need})
                print("%s %d items: skipped (memory)" % (name, items), flush=True)
                continue
            memdir = tempfile.mkdtemp(prefix="corecache-restart-bench-", dir=args.tmpfs)
            os.chmod(memdir, 0o777)  # the server runs as nobody under root
            try:
                r = run_one(name, binary, items, memdir)
            finally:
                shutil.rmtree(memdir, True)
            rows.append(r)
            print("%s %d items: loaded in %.1f s, stop %.2f s, start to first hit %.2f s, "
                  "curr_items %d -> %d" % (name, items, r["load_s"], r["stop_s"], r["start_s"],
                                           r["before"], r["after"]), flush=True)
    table = render(rows)
    print(table)
    if args.results:
        write_section(args.results, table)


if __name__ == "__main__":
    main()
