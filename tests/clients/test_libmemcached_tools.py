#!/usr/bin/python3
"""test_libmemcached_tools.py: Debian's libmemcached-tools as their users
run them, each against corecache and against memcached 1.6.18: memccp,
memccat, memcexist, memctouch, memcrm, memcping, memcstat, memcflush,
memcdump and the two load generators, memcslap and memcaslap (memaslap,
whose text-mode keys hold control bytes: issue 16). Exit codes and outputs
must match memcached's where they are deterministic, and each step asserts
its own result. memcdump differs by design: memcached 1.6.18 dumps only
the COLD segment of its segmented LRU (nothing for freshly set keys),
corecache every key (see io/cachedump.c)."""

import os
import re
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clientlib  # noqa: E402
from clientlib import harness  # noqa: E402

TOOLS = {t: clientlib.need(t, "libmemcached-tools")
         for t in ("memccp", "memccat", "memcexist", "memctouch", "memcrm", "memcping", "memcstat",
                   "memcflush", "memcdump", "memcslap", "memcaslap")}


def session(servers, workdir):
    """Runs the tools in order; returns [(step, exit code, output)]."""
    s = "--servers=" + ",".join("127.0.0.1:%d" % srv.port for srv in servers)
    files = []
    for i, size in enumerate((1, 100, 5000, 200000)):
        path = os.path.join(workdir, "file%d.bin" % i)
        with open(path, "wb") as f:
            f.write(bytes(0x21 + (j * 7 + i) % 90 for j in range(size)))
        files.append(path)
    steps = [("memccp", [TOOLS["memccp"], s] + files)]
    for path in files:
        steps.append(("memccat " + os.path.basename(path), [TOOLS["memccat"], s, os.path.basename(path)]))
    steps += [
        ("memcexist present", [TOOLS["memcexist"], s, "file0.bin"]),
        ("memcexist absent", [TOOLS["memcexist"], s, "nothing"]),
        ("memctouch present", [TOOLS["memctouch"], s, "-e", "100", "file1.bin"]),
        ("memctouch absent", [TOOLS["memctouch"], s, "-e", "100", "nothing"]),
        ("memcrm", [TOOLS["memcrm"], s, "file2.bin"]),
        ("memccat removed", [TOOLS["memccat"], s, "file2.bin"]),
        ("memcping", [TOOLS["memcping"], s]),
        ("memcflush", [TOOLS["memcflush"], s]),
        ("memccat flushed", [TOOLS["memccat"], s, "file0.bin"]),
    ]
    out = []
    for name, cmd in steps:
        code, text = clientlib.run(cmd, timeout=60)
        out.append((name, code, text))
    return out, files


class ToolsTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="corecache-tools-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_tools_match_memcached(self):
        results = {}
        for name, binary in (("corecache", None), ("memcached", clientlib.MEMCACHED)):
            servers = clientlib.cluster(2, binary=binary, name=name)
            try:
                results[name], files = session(servers, self.tmp)
            finally:
                clientlib.stop_all(servers)
        ours, theirs = results["corecache"], results["memcached"]
        self.assertEqual([(n, c) for n, c, _ in ours], [(n, c) for n, c, _ in theirs])
        for (name, code, text), (_, _, ref) in zip(ours, theirs):
            self.assertEqual(text, ref, name)
        got = {n: (c, t) for n, c, t in ours}
        for path in files:
            with open(path, "rb") as f:
                want = f.read()
            code, text = got["memccat " + os.path.basename(path)]
            self.assertEqual(code, 0)
            self.assertEqual(text.encode(), want + b"\n", path)
        self.assertEqual(got["memcexist present"][0], 0)
        self.assertNotEqual(got["memcexist absent"][0], 0)
        self.assertEqual(got["memctouch present"][0], 0)
        self.assertNotEqual(got["memctouch absent"][0], 0)
        self.assertNotEqual(got["memccat removed"][0], 0)
        self.assertEqual(got["memcping"][0], 0)
        self.assertNotEqual(got["memccat flushed"][0], 0)

    def test_memcstat_reports_memcached_protocol_version(self):
        for name, binary in (("corecache", None), ("memcached", clientlib.MEMCACHED)):
            servers = clientlib.cluster(1, binary=binary, name=name)
            try:
                code, text = clientlib.run([TOOLS["memcstat"], "--servers=127.0.0.1:%d" % servers[0].port])
                self.assertEqual(code, 0, text)
                self.assertIn("\tversion: 1.6.18\n", text, name)
                self.assertRegex(text, r"\tcurr_items: \d+\n")
            finally:
                clientlib.stop_all(servers)

    def test_memcdump_lists_every_key_on_corecache(self):
        if harness.is_memcached():
            self.skipTest("memcached dumps only its COLD segment")
        servers = clientlib.cluster(2, flags=["-t", "4", "-m", "128"])
        try:
            s = "--servers=" + ",".join("127.0.0.1:%d" % srv.port for srv in servers)
            paths = []
            for i in range(60):
                path = os.path.join(self.tmp, "k%02d" % i)
                with open(path, "wb") as f:
                    f.write(b"x" * (i * 97 + 1))
                paths.append(path)
            code, text = clientlib.run([TOOLS["memccp"], s] + paths)
            self.assertEqual(code, 0, text)
            code, text = clientlib.run([TOOLS["memcdump"], s])
            self.assertEqual(code, 0, text)
            self.assertEqual(sorted(text.split()), ["k%02d" % i for i in range(60)])
        finally:
            clientlib.stop_all(servers)

    def test_load_generators(self):
        for name, binary in (("corecache", None), ("memcached", clientlib.MEMCACHED)):
            servers = clientlib.cluster(1, binary=binary, name=name)
            try:
                addr = "127.0.0.1:%d" % servers[0].port
                code, text = clientlib.run([TOOLS["memcslap"], "--servers=" + addr, "--concurrency=4",
                                            "--execute-number=500"], timeout=120)
                self.assertEqual(code, 0, (name, text))
                self.assertIn("Time to set", text)
                code, text = clientlib.run([TOOLS["memcaslap"], "-s", addr, "-T", "2", "-c", "8",
                                            "-x", "8000"], timeout=120)
                self.assertEqual(code, 0, (name, text))
                got = dict(re.findall(r"^(cmd_get|cmd_set|get_misses): (\d+)$", text, re.M))
                self.assertEqual((got.get("cmd_get"), got.get("cmd_set"), got.get("get_misses")),
                                 ("7200", "800", "0"), (name, text))
                code, text = clientlib.run([TOOLS["memcaslap"], "-s", addr, "-T", "2", "-c", "8",
                                            "-x", "4000", "-B"], timeout=120)
                self.assertEqual(code, 0, (name, "binary", text))
                got = dict(re.findall(r"^(cmd_get|get_misses): (\d+)$", text, re.M))
                self.assertEqual(got.get("get_misses"), "0", (name, "binary", text))
            finally:
                clientlib.stop_all(servers)


if __name__ == "__main__":
    harness.main()
