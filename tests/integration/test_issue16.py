#!/usr/bin/python3
"""test_issue16.py: the bugs issue 16 found with real clients, pinned.

Each test drives the server under test (and, where it compares, Debian's
memcached 1.6.18 on another port) the way the client that found the bug
does:
  - libmemcached (pylibmc) sends Django's timeout=0 as exptime 4294967295:
    memcached stores it as already expired and the connection stays in
    step; corecache used to refuse the line and read the data as a command;
  - VERSION: the Node `memcached` package took the last x.y.z of
    "1.6.18-corecache-0.1.0"; the line must be memcached's protocol level,
    and corecache's own release must be in `stats`, -V and /metrics;
  - a second server on a port already served must refuse to start (exit 71,
    "Address already in use") instead of joining the SO_REUSEPORT group;
  - `stats cachedump` (memcdump, php-memcached getAllKeys()) in memcached's
    format, across shards;
  - memaslap (Debian's memcaslap) text mode, whose keys hold control bytes;
  - --strict-keys keeps the old key check and never desynchronizes.
"""

import os
import re
import shutil
import subprocess
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

MEMCACHED = "/usr/bin/memcached"
CORECACHE = not harness.is_memcached()


def both_servers(flags=None):
    """The server under test and memcached, same flags."""
    return [harness.Server(flags=flags), harness.Server(flags=flags, binary=MEMCACHED, name="memcached")]


class Issue16Test(unittest.TestCase):

    def test_issue16_exptime_2_32_minus_1_stays_in_step(self):
        """pylibmc time=-1 (4294967295 on the wire): expired, and the next
        requests on the same connection get their own replies."""
        try:
            import pylibmc
        except ImportError:
            self.skipTest("python3-pylibmc missing")
        for srv in both_servers():
            with srv:
                mc = pylibmc.Client(["127.0.0.1:%d" % srv.port], binary=False)
                self.assertTrue(mc.set("keep", b"kept"))
                mc.set("gone", b"value", time=-1)
                raw = srv.command(b"get gone\r\n", terminator=b"END\r\n")
                self.assertEqual(raw, b"END\r\n", srv)
                self.assertIsNone(mc.get("gone"), srv)
                self.assertEqual(mc.get("keep"), b"kept", srv)
                self.assertTrue(mc.set("after", b"x" * 100))
                self.assertEqual(mc.get("after"), b"x" * 100, srv)
                self.assertTrue(mc.touch("after", -1))
                self.assertIsNone(mc.get("after"), srv)
                self.assertEqual(mc.get("keep"), b"kept", srv)
                mc.disconnect_all()

    def test_issue16_version_line_and_own_version(self):
        with harness.Server() as srv:
            self.assertEqual(srv.command(b"version\r\n", terminator=b"\r\n"), b"VERSION 1.6.18\r\n")
            stats = srv.stats()
            self.assertEqual(stats["version"], "1.6.18")
            if not CORECACHE:
                return
            out = subprocess.run([srv.binary, "-V"], capture_output=True, text=True, timeout=10)
            self.assertEqual(out.returncode, 0)
            m = re.match(r"corecache (\d+\.\d+\.\d+) \(memcached protocol 1\.6\.18\)$", out.stdout.strip())
            self.assertIsNotNone(m, out.stdout)
            self.assertEqual(stats["corecache_version"], m.group(1))

    def test_issue16_metrics_build_info(self):
        if not CORECACHE:
            self.skipTest("the built-in /metrics endpoint is corecache's")
        mport = harness.free_port()
        with harness.Server(flags=["-t", "2", "--metrics-port", str(mport)]) as srv:
            body = ""
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=5) as r:
                        body = r.read().decode()
                    break
                except OSError:
                    time.sleep(0.1)
            version = srv.stats()["corecache_version"]
            self.assertIn('corecache_build_info{version="%s",memcached_protocol="1.6.18"} 1' % version, body)
            self.assertIn('memcached_version{version="1.6.18"} 1', body)

    def test_issue16_second_server_on_a_served_port_refuses(self):
        for srv in both_servers():
            with srv:
                second = subprocess.run(srv.argv(srv.port), capture_output=True, text=True, timeout=20)
                self.assertEqual(second.returncode, 71, (srv, second.stderr))
                self.assertIn("Address already in use", second.stderr)
                if srv.binary != MEMCACHED and CORECACHE:
                    self.assertIn("failed to listen on TCP port %d: Address already in use" % srv.port,
                                  second.stderr)
                # the first server still owns every connection: no key goes missing
                for i in range(40):
                    with srv.conn() as c:
                        c.send(b"set k%d 0 0 1\r\nv\r\n" % i)
                        self.assertEqual(c.recv_until(b"\r\n"), b"STORED\r\n")
                for i in range(40):
                    with srv.conn() as c:
                        c.send(b"get k%d\r\n" % i)
                        self.assertEqual(c.recv_until(b"END\r\n"), b"VALUE k%d 0 1\r\nv\r\nEND\r\n" % i)

    def test_issue16_strict_keys_option_swallows(self):
        if not CORECACHE:
            self.skipTest("--strict-keys is corecache's")
        with harness.Server(flags=["-t", "2", "--strict-keys"]) as srv:
            with srv.conn() as c:
                c.send(b"set k\x01 0 0 5\r\nhello\r\nset ok 0 0 1\r\nv\r\nget ok k\x01\r\nget ok\r\n")
                self.assertEqual(c.recv_until(b"VALUE ok 0 1\r\nv\r\nEND\r\n"),
                                 b"CLIENT_ERROR bad command line format\r\nSTORED\r\n"
                                 b"CLIENT_ERROR bad command line format\r\nVALUE ok 0 1\r\nv\r\nEND\r\n")
        with harness.Server() as srv:  # the default: memcached's keys
            with srv.conn() as c:
                c.send(b"set k\x01 0 0 5\r\nhello\r\nget k\x01\r\n")
                self.assertEqual(c.recv_until(b"END\r\n"), b"STORED\r\nVALUE k\x01 0 5\r\nhello\r\nEND\r\n")

    def _fill(self, srv, n):
        keys = {}
        with srv.conn() as c:
            for i in range(n):
                key = "key:%d" % i
                size = (i * 37) % 3000 + 1
                ttl = 1000 if i % 2 else 0
                c.send(b"set %s 0 %d %d noreply\r\n%s\r\n" % (key.encode(), ttl, size, b"v" * size))
                keys[key] = (size, ttl)
            c.send(b"mn\r\n")
            c.recv_until(b"MN\r\n")
        stats = srv.stats()
        self.assertEqual((stats["curr_items"], stats["evictions"]), (str(n), "0"))
        return keys

    def test_issue16_stats_cachedump(self):
        if not CORECACHE:
            self.skipTest("memcached dumps only the COLD segment of its segmented LRU")
        with harness.Server(flags=["-t", "4", "-m", "256"]) as srv:
            keys = self._fill(srv, 600)
            now = int(srv.stats()["time"])
            line = re.compile(rb"^ITEM (\S+) \[(\d+) b; (\d+) s\]$")
            seen = {}
            classes = {int(k.split(":")[1]) for k in srv.stats("items") if k.endswith(":number")}
            # items count in the size classes memcached would use (core/sizeclass.c):
            # the fill's sizes span several
            self.assertTrue(len(classes) > 1 and classes <= set(range(1, 64)), classes)
            for cls in range(64):
                raw = srv.command(b"stats cachedump %d 0\r\n" % cls, terminator=b"END\r\n")
                lines = raw.split(b"\r\n")
                self.assertEqual(lines[-2:], [b"END", b""])
                if cls not in classes:
                    self.assertEqual(raw, b"END\r\n", cls)
                for l in lines[:-2]:
                    m = line.match(l)
                    self.assertIsNotNone(m, l)
                    seen[m.group(1).decode()] = (int(m.group(2)), int(m.group(3)))
            self.assertEqual(set(seen), set(keys))
            for key, (size, ttl) in keys.items():
                self.assertEqual(seen[key][0], size, key)
                if ttl == 0:
                    self.assertEqual(seen[key][1], 0, key)
                else:
                    self.assertTrue(now + ttl - 5 <= seen[key][1] <= now + ttl + 5, (key, seen[key], now))
            big = max(classes, key=lambda c: int(srv.stats("items")["items:%d:number" % c]))
            raw = srv.command(b"stats cachedump %d 3\r\n" % big, terminator=b"END\r\n")
            self.assertEqual(raw.count(b"ITEM "), 3)
            self.assertEqual(srv.command(b"stats cachedump 64 0\r\n", terminator=b"\r\n"),
                             b"CLIENT_ERROR Illegal slab id\r\n")

    def test_issue16_cachedump_errors_as_memcached(self):
        for srv in both_servers():
            with srv:
                for req, want in ((b"stats cachedump 1\r\n", b"CLIENT_ERROR bad command line\r\n"),
                                  (b"stats cachedump\r\n", b"CLIENT_ERROR bad command line\r\n"),
                                  (b"stats cachedump x 1\r\n", b"CLIENT_ERROR bad command line format\r\n"),
                                  (b"stats cachedump 1 -1\r\n", b"CLIENT_ERROR bad command line format\r\n"),
                                  (b"stats cachedump 4294967297 0\r\n", b"END\r\n"),  # 32 bits: class 1
                                  (b"stats cachedump 64 0\r\n", b"CLIENT_ERROR Illegal slab id\r\n"),
                                  (b"stats cachedump 2 5\r\n", b"END\r\n")):
                    self.assertEqual(srv.command(req, terminator=b"\r\n"), want, (srv, req))

    def test_issue16_memcdump_dumps_every_key(self):
        if not CORECACHE:
            self.skipTest("memcached dumps only the COLD segment of its segmented LRU")
        if shutil.which("memcdump") is None:
            self.skipTest("memcdump missing")
        with harness.Server(flags=["-t", "4", "-m", "256"]) as srv:
            keys = self._fill(srv, 500)
            out = subprocess.run(["memcdump", "--servers=127.0.0.1:%d" % srv.port],
                                 capture_output=True, text=True, timeout=60)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertEqual(set(out.stdout.split()), set(keys))

    def test_issue16_php_memcached_get_all_keys(self):
        if not CORECACHE:
            self.skipTest("memcached dumps only the COLD segment of its segmented LRU")
        if shutil.which("php") is None:
            self.skipTest("php-cli missing")
        script = ('$m = new Memcached(); $m->addServer("127.0.0.1", (int)$argv[1]);'
                  'for ($i = 0; $i < 50; $i++) { $m->set("php$i", str_repeat("x", $i * 50)); }'
                  '$k = $m->getAllKeys(); sort($k); echo implode("\\n", $k), "\\n";')
        with harness.Server(flags=["-t", "4", "-m", "256"]) as srv:
            out = subprocess.run(["php", "-r", script, str(srv.port)], capture_output=True, text=True,
                                 timeout=60)
            if "Class \"Memcached\" not found" in out.stderr + out.stdout:
                self.skipTest("php-memcached missing")
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertEqual(set(out.stdout.split()), {"php%d" % i for i in range(50)})

    def test_issue16_memaslap_text_mode(self):
        """memcaslap's keys hold control bytes; every get must hit."""
        tool = shutil.which("memcaslap") or shutil.which("memaslap")
        if tool is None:
            self.skipTest("memcaslap missing")
        for srv in both_servers():
            with srv:
                out = subprocess.run([tool, "-s", "127.0.0.1:%d" % srv.port, "-T", "2", "-c", "4",
                                      "-x", "4000"], capture_output=True, text=True, timeout=120)
                self.assertEqual(out.returncode, 0, (srv, out.stdout, out.stderr))
                got = dict(re.findall(r"^(cmd_get|cmd_set|get_misses): (\d+)$", out.stdout, re.M))
                self.assertEqual(got.get("cmd_set"), "400", (srv, out.stdout))
                self.assertEqual(got.get("cmd_get"), "3600", (srv, out.stdout))
                self.assertEqual(got.get("get_misses"), "0", (srv, out.stdout))
                stats = srv.stats()
                self.assertEqual(int(stats["get_misses"]), 0, srv)
                self.assertGreaterEqual(int(stats["get_hits"]), 3600, srv)


if __name__ == "__main__":
    harness.main()
