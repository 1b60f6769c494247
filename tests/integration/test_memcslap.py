#!/usr/bin/python3
"""test_memcslap.py: libmemcached's load generator against the server.

For each of --test=set, get and mget, memcslap runs 4 threads for a bounded
--execute-number against a fresh server. memcslap exits 0 even when every
request failed (it prints "Fatal error for key ..." and counts fewer keys),
so the test also requires: no error or failure line in its output, the
summary line "Time to <test> N keys by 4 threads" with N = 4 x executions,
a server that still answers, and `stats` counters that grew by exactly what
was sent (cmd_set for set and the initial load; cmd_get and get_hits for the
reads, which all target keys that were loaded).
Exits 77 (skip) when memcslap (libmemcached-tools) is not installed.
"""

import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

MEMCSLAP = shutil.which("memcslap") or shutil.which("memslap")
if MEMCSLAP is None:
    harness.skip_process("memcslap not found (apt-get install libmemcached-tools)")

CONCURRENCY = 4
EXECUTE = 2000


class MemcslapTest(unittest.TestCase):

    def setUp(self):
        self.server = harness.Server().start()

    def tearDown(self):
        self.server.stop()

    def slap(self, test):
        argv = [MEMCSLAP, "--servers=127.0.0.1:%d" % self.server.port, "--test=%s" % test,
                "--concurrency=%d" % CONCURRENCY, "--execute-number=%d" % EXECUTE]
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=120)
        out = proc.stdout.decode(errors="replace")
        sys.stdout.write("$ %s\n%s" % (" ".join(argv), out))
        self.assertEqual(proc.returncode, 0, "memcslap exited %d" % proc.returncode)
        bad = [l for l in out.splitlines() if re.search(r"error|fail", l, re.I)]
        self.assertEqual(bad, [])
        m = re.search(r"Time to %s\s+(\d+) keys by\s+(\d+) threads" % test, out)
        self.assertIsNotNone(m, "no summary line for %s" % test)
        self.assertEqual(int(m.group(1)), CONCURRENCY * EXECUTE)
        self.assertEqual(int(m.group(2)), CONCURRENCY)
        return out

    def stats(self):
        s = self.server.stats()
        return {k: int(s[k]) for k in ("cmd_set", "cmd_get", "get_hits", "curr_connections")}

    def check_answers(self):
        self.assertEqual(self.server.command(b"set probe 0 0 2\r\nok\r\nget probe\r\n",
                                             terminator=b"END\r\n"),
                         b"STORED\r\nVALUE probe 0 2\r\nok\r\nEND\r\n")

    def test_memcslap_set(self):
        before = self.stats()
        self.slap("set")
        after = self.stats()
        self.assertEqual(after["cmd_set"] - before["cmd_set"], CONCURRENCY * EXECUTE)
        self.check_answers()

    def test_memcslap_get(self):
        before = self.stats()
        out = self.slap("get")
        after = self.stats()
        self.assertRegex(out, r"Time to set\s+%d keys:" % EXECUTE)  # initial load
        self.assertEqual(after["cmd_set"] - before["cmd_set"], EXECUTE)
        self.assertEqual(after["cmd_get"] - before["cmd_get"], CONCURRENCY * EXECUTE)
        self.assertEqual(after["get_hits"] - before["get_hits"], CONCURRENCY * EXECUTE)
        self.check_answers()

    def test_memcslap_mget(self):
        before = self.stats()
        out = self.slap("mget")
        after = self.stats()
        self.assertRegex(out, r"Time to set\s+%d keys:" % EXECUTE)
        self.assertEqual(after["cmd_set"] - before["cmd_set"], EXECUTE)
        self.assertEqual(after["cmd_get"] - before["cmd_get"], CONCURRENCY * EXECUTE)
        self.assertEqual(after["get_hits"] - before["get_hits"], CONCURRENCY * EXECUTE)
        self.check_answers()


if __name__ == "__main__":
    harness.main()
