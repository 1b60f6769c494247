#!/usr/bin/python3
"""test_memccapable.py: libmemcached's protocol conformance tool, ascii and binary.

Runs `memccapable -h 127.0.0.1 -p PORT -a` (ascii) and `... -b` (binary)
against a fresh server each and requires exit status 0 and its closing "All
tests passed" line. Its output is always printed, so a failing sub-test
("[FAIL]") is named in the log.
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

    def run_memccapable(self, mode):
        proc = subprocess.run(
            [MEMCCAPABLE, "-h", "127.0.0.1", "-p", str(self.server.port), mode, "-t", "10"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            timeout=120)
        out = proc.stdout.decode(errors="replace")
        sys.stdout.write(out)
        self.assertEqual(proc.returncode, 0, "memccapable exited %d" % proc.returncode)
        self.assertIn("All tests passed", out)
        self.assertNotIn("[FAIL]", out)
        self.assertTrue(self.server.running(), "server died under memccapable")
        return out

    def test_memccapable_ascii_all_pass(self):
        out = self.run_memccapable("-a")
        # it ran the ascii suite, not nothing
        self.assertGreaterEqual(out.count("[pass]"), 20)
        self.assertNotIn("binary", out)

    def test_memccapable_binary_all_pass(self):
        out = self.run_memccapable("-b")
        # it ran the binary suite (27 tests in libmemcached 1.0.18), not nothing
        self.assertGreaterEqual(out.count("[pass]"), 27)
        self.assertEqual(out.count("binary "), out.count("[pass]"))


if __name__ == "__main__":
    harness.main()
