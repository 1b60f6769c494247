#!/usr/bin/python3
"""test_memccapable.py: libmemcached's protocol conformance tool, ascii only.

Runs `memccapable -h 127.0.0.1 -p PORT -a` against a fresh server and
requires exit status 0 and its closing "All tests passed" line. Its output
is always printed, so a failing sub-test ("[FAIL]") is named in the log.
Exits 77 (skip) when memccapable (libmemcached-tools) is not installed.
"""

import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

MEMCCAPABLE = shutil.which("memccapable") or shutil.which("memcapable")
if MEMCCAPABLE is None:
    harness.skip_process("memccapable not found (apt-get install libmemcached-tools)")


class MemccapableTest(unittest.TestCase):

    def setUp(self):
        self.server = harness.Server().start()

    def tearDown(self):
        self.server.stop()

    def test_memccapable_ascii_all_pass(self):
        proc = subprocess.run(
            [MEMCCAPABLE, "-h", "127.0.0.1", "-p", str(self.server.port), "-a", "-t", "10"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            timeout=120)
        out = proc.stdout.decode(errors="replace")
        sys.stdout.write(out)
        self.assertEqual(proc.returncode, 0, "memccapable exited %d" % proc.returncode)
        self.assertIn("All tests passed", out)
        self.assertNotIn("[FAIL]", out)
        # it ran the ascii suite, not nothing
        self.assertGreaterEqual(out.count("[pass]"), 20)
        self.assertTrue(self.server.running(), "server died under memccapable")


if __name__ == "__main__":
    harness.main()
