#!/usr/bin/python3
"""test_no_uring.py: without io_uring the server serves through epoll, saying so.

Runs the server under no_uring (a seccomp filter that makes io_uring_setup,
io_uring_enter and io_uring_register fail with EPERM, as podman's and Docker
25's default profiles or kernel.io_uring_disabled do) and requires:
  - by default (-o io_backend=auto) it serves, with exactly one line on
    stderr that says io_uring is unavailable, how to enable it, and that the
    epoll backend runs; `stats settings` reports io_backend epoll;
  - with -o io_backend=io_uring it refuses to start instead: a non-zero exit
    within a few seconds, exactly that one clear line, nothing left
    listening;
and, without the wrapper, that -o io_backend=epoll is obeyed and reported,
and that an unknown backend is refused with the accepted names.
The whole protocol suites run on the epoll backend too: the
integration.*_epoll entries (harness.py's CORECACHE_ITEST_NO_URING).

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


def one_line(test, err):
    lines = [l for l in err.splitlines() if l.strip()]
    test.assertEqual(len(lines), 1, "want exactly one line on stderr: %r" % err)
    line = lines[0]
    test.assertIn("io_uring", line)
    test.assertRegex(line, re.compile(r"unavailable|not available|not permitted|disabled|"
                                      r"EPERM|denied", re.I))
    test.assertRegex(line, re.compile(r"enable|allow|sysctl|seccomp", re.I))
    return line


def set_get(test, srv):
    with srv.conn() as c:
        c.send(b"set k 5 0 2\r\nhi\r\nget k\r\n")
        test.assertEqual(c.recv_until(b"END\r\n"), b"STORED\r\nVALUE k 5 2\r\nhi\r\nEND\r\n")


class NoUringTest(unittest.TestCase):

    def test_issue16_no_uring_serves_with_epoll(self):
        srv = harness.Server(["-t", "2"])
        srv.argv = lambda port, base=srv.argv: [WRAPPER] + base(port)
        with srv:
            set_get(self, srv)
            self.assertEqual(srv.stats("settings").get("io_backend"), "epoll")
            line = one_line(self, srv.stderr_text())
            self.assertIn("I/O backend: epoll", line)
            # the cross-shard path (a key owned by the other shard) and many
            # connections at once, through the eventfd wakeups
            conns = [srv.conn() for _ in range(8)]
            try:
                for i, c in enumerate(conns):
                    c.send(b"".join(b"set k%d_%d 0 0 1\r\n%d\r\n" % (i, j, j % 10) for j in range(50)))
                for c in conns:
                    self.assertEqual(c.recv_exact(len(b"STORED\r\n") * 50), b"STORED\r\n" * 50)
                for i, c in enumerate(conns):
                    c.send(b"get " + b" ".join(b"k%d_%d" % (i, j) for j in range(50)) + b"\r\n")
                    reply = c.recv_until(b"END\r\n")
                    self.assertEqual(reply.count(b"VALUE "), 50)
            finally:
                for c in conns:
                    c.close()
            st = srv.stats()
            self.assertGreater(int(st["forwarded_out"]), 0, "no request crossed shards")
        self.assertEqual(srv.returncode, 0)

    def test_no_uring_io_backend_io_uring_fails_fast_with_one_line(self):
        port = harness.free_port()
        argv = ([WRAPPER, harness.SERVER, "-p", str(port), "-l", "127.0.0.1"]
                + harness.user_flags() + ["-t", "2", "-o", "io_backend=io_uring"])
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
        line = one_line(self, err)
        self.assertNotIn("epoll", line)
        # nothing is left listening on the port
        s = socket.socket()
        try:
            self.assertNotEqual(s.connect_ex(("127.0.0.1", port)), 0)
        finally:
            s.close()

    def test_issue16_io_backend_epoll_forced(self):
        with harness.Server(["-t", "2", "-o", "io_backend=epoll"]) as srv:
            set_get(self, srv)
            self.assertEqual(srv.stats("settings").get("io_backend"), "epoll")
            self.assertEqual(srv.stderr_text().strip(), "corecache: I/O backend: epoll (-o io_backend=epoll)")

    def test_issue16_io_backend_default_reported(self):
        with harness.Server(["-t", "1"]) as srv:
            set_get(self, srv)
            backend = srv.stats("settings").get("io_backend")
            # io_uring where this kernel gives it; said on stderr otherwise
            self.assertIn(backend, ("io_uring", "epoll"))
            self.assertEqual(backend == "epoll", "I/O backend: epoll" in srv.stderr_text())

    def test_issue16_io_backend_unknown_refused(self):
        proc = subprocess.run([harness.SERVER, "-o", "io_backend=kqueue"] + harness.user_flags(),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=10)
        self.assertEqual(proc.returncode, 2, proc.stderr)  # EXIT_USAGE, as for every bad option
        self.assertIn(b"auto, io_uring or epoll", proc.stderr)


if __name__ == "__main__":
    harness.main()
