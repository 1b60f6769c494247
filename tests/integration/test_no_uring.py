#!/usr/bin/python3
"""test_no_uring.py: without io_uring the server fails fast with one clear line.

Runs the server under no_uring (a seccomp filter that makes io_uring_setup,
io_uring_enter and io_uring_register fail with EPERM, as Docker's default
profile or kernel.io_uring_disabled do) and requires: a non-zero exit
within a few seconds, no listening socket left behind, and exactly one
line on stderr that says io_uring is unavailable and how to enable it.

memcached does not use io_uring, so against memcached this test cannot
apply: it exits 77 (skip) and says so. The wrapper itself is checked by the
separate CTest entry integration.no_uring_wrapper (no_uring --check).
"""

import os
import re
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

if harness.is_memcached():
    harness.skip_process("CORECACHE_SERVER is memcached, which does not use io_uring; "
                         "this test applies to corecache only")

WRAPPER = os.environ.get("CORECACHE_NO_URING_BIN")
if not WRAPPER or not os.access(WRAPPER, os.X_OK):
    sys.stderr.write("CORECACHE_NO_URING_BIN must name the built no_uring wrapper\n")
    sys.exit(1)

_check = subprocess.run([WRAPPER, "--check"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        timeout=30)
if _check.returncode == harness.SKIP:
    harness.skip_process("seccomp filters unavailable: " + _check.stdout.decode(errors="replace"))
if _check.returncode != 0:
    sys.stderr.write("no_uring --check failed:\n" + _check.stdout.decode(errors="replace"))
    sys.exit(1)


class NoUringTest(unittest.TestCase):

    def test_no_uring_fails_fast_with_one_line(self):
        port = harness.free_port()
        argv = ([WRAPPER, harness.SERVER, "-p", str(port), "-l", "127.0.0.1"]
                + harness.user_flags() + ["-t", "2"])
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            self.fail("still running 5s after start without io_uring")
        took = time.monotonic() - start
        err = err.decode(errors="replace")
        sys.stdout.write("exit %d after %.2fs; stderr: %r\n" % (proc.returncode, took, err))
        self.assertNotEqual(proc.returncode, 0)
        self.assertLess(proc.returncode, 128, "killed by a signal, not a clean exit")
        lines = [l for l in err.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, "want exactly one line on stderr")
        line = lines[0]
        self.assertIn("io_uring", line)
        self.assertRegex(line, re.compile(r"unavailable|not available|not permitted|disabled|"
                                          r"EPERM|denied", re.I))
        self.assertRegex(line, re.compile(r"enable|allow|sysctl|seccomp", re.I))
        # nothing is left listening on the port
        s = socket.socket()
        try:
            self.assertNotEqual(s.connect_ex(("127.0.0.1", port)), 0)
        finally:
            s.close()


if __name__ == "__main__":
    harness.main()
