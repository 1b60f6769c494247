#!/usr/bin/python3
"""test_concurrency.py: runs the concurrency.c model checker against a server.

concurrency.c opens 50 connections that pipeline random batches of
set/get/delete/incr/decr/append over disjoint key sets and checks every
reply against a per-key model, then multi-gets all 10,000 keys (see its file
comment). This wrapper starts a fresh server, runs the checker with bounded
rounds and a time limit, prints its output, and requires exit status 0 and a
server that still answers and still stops cleanly.

The checker's path comes from CORECACHE_CONCURRENCY_BIN (CMake sets it).
CORECACHE_CONCURRENCY_ARGS adds arguments (e.g. "--seed 42" to replay a run).
"""

import os
import shlex
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

BIN = os.environ.get("CORECACHE_CONCURRENCY_BIN")
if not BIN or not os.access(BIN, os.X_OK):
    sys.stderr.write("CORECACHE_CONCURRENCY_BIN must name the built concurrency checker\n")
    sys.exit(1)


class ConcurrencyTest(unittest.TestCase):

    def setUp(self):
        self.server = harness.Server(["-t", "2", "-c", "256"]).start()

    def tearDown(self):
        self.server.stop()

    def test_concurrency_50_pipelined_connections_match_model(self):
        argv = [BIN, "--port", str(self.server.port), "--conns", "50", "--keys", "10000",
                "--rounds", "1000", "--seconds", "60"]
        if harness.is_memcached():
            # two memcached behaviours corecache does not share; see the
            # file comment of concurrency.c
            argv.append("--memcached-quirks")
        argv += shlex.split(os.environ.get("CORECACHE_CONCURRENCY_ARGS", ""))
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=150)
        out = proc.stdout.decode(errors="replace")
        sys.stdout.write(out)
        self.assertEqual(proc.returncode, 0, "concurrency checker failed")
        self.assertRegex(out, r"final get checked 10000 keys; 0 mismatches, 0 protocol errors")
        self.assertEqual(self.server.command(b"version\r\n", terminator=b"\r\n")[:8], b"VERSION ")


if __name__ == "__main__":
    harness.main()
