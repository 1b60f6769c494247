#!/usr/bin/env python3
"""Warm restart (-e FILE, issue 14) on hugetlbfs.

hugetlbfs maps only whole huge pages at huge-page offsets, so the memory file
keeps its arena at offset 0 and its header in the last huge page
(io/memfile.c). The test reserves a few huge pages (vm.nr_hugepages, raised by
what it needs and put back after), mounts a hugetlbfs of its own in a
temporary directory, and checks that corecache -e there starts, says it is on
hugetlbfs, keeps every item across a graceful restart, and starts empty after
SIGKILL. Skipped (77) with the reason where the machine does not allow that:
not root, no hugetlbfs, or the kernel cannot find the huge pages.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

NR = "/proc/sys/vm/nr_hugepages"
# 16 MiB per shard: 8 huge pages of arena, 1 for the header, 1 for the saved
# image (FILE.i.meta); 1 for the commit record FILE.meta; 2 to spare
SHARDS, MEGS = 2, 32
NEED = SHARDS * (MEGS // SHARDS // 2 + 2) + 1 + 2


def skip(why):
    print("SKIP: %s" % why)
    sys.exit(77)


def hugepage_kib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("Hugepagesize:"):
                return int(line.split()[1])
    return 0


def free_hugepages():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("HugePages_Free:"):
                return int(line.split()[1])
    return 0


class Reservation:
    """Raises vm.nr_hugepages by NEED for the test's life; puts it back."""

    def __enter__(self):
        with open(NR) as f:
            self.before = int(f.read())
        self.raised = False
        if free_hugepages() < NEED:
            with open(NR, "w") as f:
                f.write(str(self.before + NEED))
            self.raised = True
        return self

    def __exit__(self, *exc):
        if self.raised:
            with open(NR, "w") as f:
                f.write(str(self.before))


def load(port, n):
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"".join(b"set h%d %d 0 %d\r\n%s\r\n" % (i, i, len(b"v%d" % i) * 50, b"v%d" % i * 50)
                           for i in range(n)))
        buf = b""
        while buf.count(b"\r\n") < n:
            chunk = s.recv(65536)
            if not chunk:
                raise AssertionError("closed")
            buf += chunk
        assert buf == b"STORED\r\n" * n, buf[:200]


def hits(port, n):
    got = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        f = s.makefile("rb")
        for i in range(n):
            s.sendall(b"get h%d\r\n" % i)
            line = f.readline()
            if line.startswith(b"VALUE"):
                _, _, flags, size = line.split()
                data = f.read(int(size) + 2)[:-2]
                assert int(flags) == i and data == b"v%d" % i * 50, (i, line, data[:40])
                assert f.readline() == b"END\r\n"
                got += 1
            else:
                assert line == b"END\r\n", line
    return got


class WarmHugetlbfsTest(unittest.TestCase):
    MOUNT = None  # set by main: a hugetlbfs mount with the pages reserved

    def server(self, flags):
        srv = harness.Server(flags)
        self.addCleanup(srv.kill)  # a failed assertion must not leave it holding huge pages
        return srv.start()

    def test_warm_restart_on_hugetlbfs(self):
        mem = os.path.join(self.MOUNT, "mem")
        flags = ["-e", mem, "-t", str(SHARDS), "-m", str(MEGS)]
        srv = self.server(flags)
        self.wait_log(srv, "NUMA node")
        log = srv.stderr_text()
        self.assertIn("starting empty: no saved state", log)
        self.assertIn("on hugetlbfs (%d KiB pages)" % hugepage_kib(), log)
        # the arena and the header are whole huge pages of the file
        size = os.stat(mem + ".0").st_size
        self.assertEqual(size % (hugepage_kib() * 1024), 0, size)
        load(srv.port, 3000)
        srv.stop(signal.SIGTERM)
        srv = self.server(flags)
        self.wait_log(srv, "NUMA node")
        self.assertIn("reattached 3000 items in 2 shards", srv.stderr_text())
        self.assertEqual(hits(srv.port, 3000), 3000)
        srv.kill()
        srv = self.server(flags)
        self.wait_log(srv, "NUMA node")
        self.assertIn("starting empty: the last stop was not clean", srv.stderr_text())
        self.assertEqual(hits(srv.port, 100), 0)
        srv.stop()

    def wait_log(self, srv, text):
        deadline = time.monotonic() + 30
        while text not in srv.stderr_text():
            if time.monotonic() > deadline:
                raise AssertionError("no %r in the log:\n%s" % (text, srv.stderr_text()))
            time.sleep(0.02)


def main():
    if harness.is_memcached():
        skip("corecache's memory file layout and log lines")
    if os.geteuid() != 0:
        skip("mounting hugetlbfs and reserving huge pages need root")
    if not os.path.exists(NR) or hugepage_kib() == 0:
        skip("no huge page support in this kernel")
    with open("/proc/filesystems") as f:
        if "hugetlbfs" not in f.read():
            skip("no hugetlbfs in /proc/filesystems")
    mnt = tempfile.mkdtemp(prefix="corecache-huge-")
    try:
        with Reservation():
            if free_hugepages() < NEED:
                skip("the kernel could not reserve %d huge pages (HugePages_Free %d)"
                     % (NEED, free_hugepages()))
            r = subprocess.run(["mount", "-t", "hugetlbfs", "-o", "mode=0777", "none", mnt],
                               capture_output=True, text=True)
            if r.returncode != 0:
                skip("cannot mount hugetlbfs: %s" % r.stderr.strip())
            try:
                WarmHugetlbfsTest.MOUNT = mnt
                result = unittest.main(verbosity=2, exit=False).result
            finally:
                subprocess.run(["umount", mnt], check=False)
    finally:
        shutil.rmtree(mnt, True)
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
