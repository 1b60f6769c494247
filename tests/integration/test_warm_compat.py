#!/usr/bin/env python3
"""Warm restart (-e FILE, issue 14): what memcached 1.6.18's own t/restart.t
found missing, pinned here, plus what the start reports about itself.

- `stats settings` shows memory_file as memcached does: the path given to -e,
  "(null)" without one.
- `stats` and /metrics say what the start made of the memory file:
  warm_restart_items (items reattached), warm_restart_cold (0 it reattached,
  1 a new file, 2 the last stop was not clean, 3 other settings, 4 damage) and
  memory_file_numa_bound (shards whose mapping mbind bound to their node; the
  start-up log says so too).
- FILE.meta is the commit record written once every shard saved: present after
  a graceful stop, deleted by the next start. A file there that is not
  corecache's (empty, as t/restart.t makes it, or memcached's own metadata)
  refuses the start and is left alone; shard files left clean without the
  record (a stop that did not finish) start empty.
- hash_power_level reads in memcached's units: 16 by default, 17 once 2^17
  items went in, still 17 after they were deleted and the server restarted
  (the index keeps its size across a restart, as memcached's table does);
  -o hashpower=20 starts at 20.

corecache only: these are corecache's files, log lines and facts (memcached's
own behaviour is what t/restart.t checks, tests/compat/memcached-t.sh).
"""

import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import metrics_server  # noqa: E402


def stats(srv, group=""):
    return srv.stats(group)


def pipelined(port, lines, expect):
    """Sends the request lines in batches and checks every reply line."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        buf = b""
        for start in range(0, len(lines), 2000):
            part = lines[start:start + 2000]
            s.sendall(b"".join(part))
            while buf.count(b"\r\n") < len(part):
                chunk = s.recv(1 << 20)
                if not chunk:
                    raise AssertionError("connection closed")
                buf += chunk
            replies = buf.split(b"\r\n", len(part))
            buf = replies[-1]
            for r in replies[:-1]:
                if r != expect:
                    raise AssertionError("%r instead of %r" % (r, expect))


@unittest.skipIf(harness.is_memcached(), "corecache's files, facts and log lines")
class WarmCompatTest(unittest.TestCase):
    def setUp(self):
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self.memdir = tempfile.mkdtemp(prefix="corecache-warmc-", dir=base)
        os.chmod(self.memdir, 0o777)  # the server runs as nobody under root
        self.addCleanup(shutil.rmtree, self.memdir, True)
        self.mem = os.path.join(self.memdir, "mem")

    def start(self, flags=(), metrics=False):
        cls = metrics_server.MetricsServer if metrics else harness.Server
        srv = cls(["-e", self.mem, "-t", "2", "-m", "64"] + list(flags)).start()
        srv.command(b"version\r\n", terminator=b"\r\n", timeout=60)
        self.wait_log(srv, "warm restart")
        self.wait_log(srv, "NUMA node")
        return srv

    def wait_log(self, srv, text):
        """The log lines come once every shard is up, a moment after the
        first reply: wait for the line itself."""
        deadline = time.monotonic() + 30
        while text not in srv.stderr_text():
            if time.monotonic() > deadline:
                raise AssertionError("no %r in the log:\n%s" % (text, srv.stderr_text()))
            time.sleep(0.02)
        return srv.stderr_text()

    def facts(self, srv):
        st = stats(srv)
        return (int(st["warm_restart_items"]), int(st["warm_restart_cold"]),
                int(st["memory_file_numa_bound"]))

    def test_memory_file_setting(self):
        with harness.Server(["-t", "1"]) as plain:
            self.assertEqual(stats(plain, "settings")["memory_file"], "(null)")
            self.assertEqual(self.facts(plain), (0, 0, 0))
        srv = self.start()
        self.assertEqual(stats(srv, "settings")["memory_file"], self.mem)
        srv.stop()

    def test_start_facts_and_metrics(self):
        numa = os.path.isdir("/sys/devices/system/node/node0")
        srv = self.start(metrics=True)
        items, cold, bound = self.facts(srv)
        self.assertEqual((items, cold), (0, 1))  # a new file
        log = srv.stderr_text()
        if numa:  # libnuma works here: each mapping must be bound, and say so
            self.assertEqual(bound, 2, log)
            self.assertIn("2 mappings bound to each shard's NUMA node with mbind", log)
        else:
            self.assertEqual(bound, 0, log)
            self.assertIn("not (no NUMA support)", log)
        pipelined(srv.port, [b"set k%d 0 0 1\r\nx\r\n" % i for i in range(1000)], b"STORED")
        srv.stop(signal.SIGTERM)
        srv = self.start(metrics=True)
        self.assertEqual(self.facts(srv), (1000, 0, bound))
        m = metrics_server.samples(srv.scrape())
        got = {k: v for k, v in m.items() if "warm_restart" in k or "numa_bound" in k}
        self.assertIn(1000.0, got.values(), got)
        self.assertEqual(len(got), 3, got)
        srv.kill()
        srv = self.start()
        self.assertEqual(self.facts(srv)[:2], (0, 2))  # killed: not clean
        srv.stop(signal.SIGTERM)
        srv = self.start(["-m", "32"])
        self.assertEqual(self.facts(srv)[:2], (0, 3))  # other settings
        srv.stop()

    def test_commit_record(self):
        srv = self.start()
        self.assertFalse(os.path.exists(self.mem + ".meta"))
        pipelined(srv.port, [b"set k%d 0 0 1\r\nx\r\n" % i for i in range(100)], b"STORED")
        srv.stop(signal.SIGTERM)
        with open(self.mem + ".meta") as f:
            self.assertTrue(f.readline().startswith("corecache memory file commit record"))
        srv = self.start()
        self.assertIn("reattached 100 items", srv.stderr_text())
        self.assertFalse(os.path.exists(self.mem + ".meta"), "the start must delete the record")
        srv.stop(signal.SIGTERM)
        # every shard saved and left its file clean, but the record is gone,
        # as if the stop had not finished: nothing is trusted
        os.unlink(self.mem + ".meta")
        srv = self.start()
        self.assertIn("starting empty: the last stop was not clean (no commit record", srv.stderr_text())
        self.assertEqual(self.facts(srv)[:2], (0, 2))
        srv.stop()

    def test_unrecognised_metadata_refuses_the_start(self):
        for content in (b"", b"T-restart-meta\nKversion 1.6.18\n"):  # t/restart.t's; memcached's
            with open(self.mem + ".meta", "wb") as f:
                f.write(content)
            other = harness.Server(["-e", self.mem, "-t", "2", "-m", "64"])
            try:
                other.start(attempts=1)
            except harness.ServerStartError:
                pass
            rc = other.wait(30)
            self.assertNotIn(rc, (None, 0), "started with %r in FILE.meta" % content)
            self.assertIn("is not a corecache commit record", other.stderr_text())
            with open(self.mem + ".meta", "rb") as f:
                self.assertEqual(f.read(), content, "a file that is not ours was changed")
        os.unlink(self.mem + ".meta")
        srv = self.start()
        srv.stop()

    def test_hash_power_level_survives_a_restart(self):
        srv = self.start()
        self.assertEqual(int(stats(srv)["hash_power_level"]), 16)
        n = 1 << 17
        pipelined(srv.port, [b"set z%d 0 0 0\r\n\r\n" % i for i in range(n)], b"STORED")
        self.assertEqual(int(stats(srv)["hash_power_level"]), 17)
        pipelined(srv.port, [b"delete z%d\r\n" % i for i in range(n)], b"DELETED")
        srv.stop(signal.SIGTERM)
        srv = self.start()
        self.assertEqual(int(stats(srv)["hash_power_level"]), 17)
        srv.stop()
        with harness.Server(["-t", "2", "-o", "hashpower=20"]) as big:
            self.assertEqual(int(stats(big)["hash_power_level"]), 20)


if __name__ == "__main__":
    unittest.main(verbosity=2)
